"""Whether the optional compiled loops (numba, extra ``fast``) can run, and the one way they are compiled.

Code with per-frame or per-block work of many small numpy calls (each ~1 us of call overhead, more than its
arithmetic on a few hundred samples) keeps a numpy version and a compiled one with the same steps, each under a
name: ``voice`` (``dsp/voice/kernels.py``: pitch shift, anon stage), ``mask`` (``models/mask/kernels.py``), ``stft``
(``dsp/stft_kernels.py``: the STFT section's own loops), ``sanitize`` (``dsp/sanitize.py``: the host's NaN and
denormal guard), ``params`` (``dsp/params.py``: the parameter ramps) and ``meters`` (``plugin_host/meters.py``:
levels and the spectrum ring). Without numba, or with
``RESCULPT_NO_KERNELS=1`` in the environment, ``AVAILABLE`` is False and everything runs its numpy code;
``RESCULPT_NO_KERNELS=stft,sanitize,params`` (a comma list of names) turns off only those, for measuring a set of
loops against its numpy code.
"""

from __future__ import annotations

import importlib.util
import os

_OFF = os.environ.get("RESCULPT_NO_KERNELS", "").strip()
AVAILABLE = importlib.util.find_spec("numba") is not None and _OFF != "1"
_OFF_NAMES = frozenset(n.strip() for n in _OFF.split(",")) if _OFF not in ("", "0", "1") else frozenset()


# The per-block loops (``stft``, ``sanitize``, ``params``, ``meters``) save a few microseconds of numpy call overhead
# per block: at live, DAW and serve block sizes (64-1024 samples, a few hundred blocks a second) that is a tenth or
# more of the callback, at a render's 4096-sample blocks next to nothing, while importing numba and loading the loops
# takes ~1 s of a one-shot render's start (a scratch timing of a chain build on a loaded machine: 1.8 s against
# 0.01 s). So they are taken only by processors prepared for blocks up to this many samples; both paths give the same
# output.
PER_BLOCK_MAX = 2048


def available(name: str) -> bool:
    """Whether the loops called ``name`` may run: numba is installed and neither ``RESCULPT_NO_KERNELS=1`` nor a
    list naming ``name`` is set."""
    return AVAILABLE and name not in _OFF_NAMES


def njit(signatures=None):
    """numba's decorator as every compiled loop here uses it (cached on disk next to its module where writable, no
    GIL, numpy's error model: a division by zero gives inf/nan as numpy would, not an exception), or None when numba
    cannot be imported (e.g. built for another numpy). With ``signatures`` (a list of numba signatures) the loop is
    compiled for exactly those when decorated, and a call with other operand types converts to one of them (an array
    of any layout to an ``A``-layout parameter) or fails, but never compiles. Importing numba costs ~0.5 s: call
    this from a stage's prepare(), never at import."""
    if not AVAILABLE:
        return None
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(signatures, cache=True, nogil=True, error_model="numpy")


def warm_module(g: dict, bind) -> bool:
    """A kernels module's warm_up(), given its globals ``g`` (``AVAILABLE`` and ``_warm``) and ``bind(jit)``, which
    sets the module's dispatchers from its Python loops with ``jit(loop, signatures=None)`` (:func:`njit`'s decorator
    applied; with signatures, compiled there) and may run them once to compile: once per process; returns whether
    the loops are ready (False without numba: the stages run their numpy code)."""
    if g["_warm"] or not g["AVAILABLE"]:
        return g["_warm"]
    if njit() is None:
        g["AVAILABLE"] = False
        return False
    bind(lambda loop, signatures=None: njit(signatures)(loop))
    g["_warm"] = True
    return True
