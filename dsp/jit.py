"""Whether the optional compiled loops (numba, extra ``fast``) can run, and the one way they are compiled.

Stages with per-frame work of many small numpy calls (each ~1 us of call overhead, more than its arithmetic on a
few hundred bins) keep a numpy version and a compiled one with the same steps: ``dsp/voice/kernels.py`` (pitch shift,
anon stage) and ``models/mask/kernels.py`` (the mask stage). Without numba, or with ``RESCULPT_NO_KERNELS=1`` in
the environment, ``AVAILABLE`` is False and every stage runs its numpy code.
"""

from __future__ import annotations

import importlib.util
import os

AVAILABLE = importlib.util.find_spec("numba") is not None and os.environ.get("RESCULPT_NO_KERNELS", "") in ("", "0")


def njit():
    """numba's decorator as every compiled loop here uses it (cached on disk next to its module where writable, no
    GIL, numpy's error model: a division by zero gives inf/nan as numpy would, not an exception), or None when numba
    cannot be imported (e.g. built for another numpy). Importing numba costs ~0.5 s: call this from a stage's
    prepare(), never at import."""
    if not AVAILABLE:
        return None
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, nogil=True, error_model="numpy")


def warm_module(g: dict, bind) -> bool:
    """A kernels module's warm_up(), given its globals ``g`` (``AVAILABLE`` and ``_warm``) and ``bind(jit)``, which
    sets the module's dispatchers from its Python loops (and may run them once to compile): once per process;
    returns whether the loops are ready (False without numba: the stages run their numpy code)."""
    if g["_warm"] or not g["AVAILABLE"]:
        return g["_warm"]
    jit = njit()
    if jit is None:
        g["AVAILABLE"] = False
        return False
    bind(jit)
    g["_warm"] = True
    return True
