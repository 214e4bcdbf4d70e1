"""Keeps NaN, Inf and denormals out of the signal path, and counts what it removed.

Denormals (|x| < 1.18e-38 in float32) cost 10-100x per operation in IIR tails on x86 without
FTZ; NaN/Inf from a broken source would poison every recursive state downstream. Both are set
to 0 and counted; the counts are reported by the host (``Chain.stats``) and over OSC.
"""

from __future__ import annotations

import math

import numpy as np

from . import jit as _jit

FLT_MIN = np.float32(1.17549435e-38)
_F32 = np.dtype(np.float32)
# The ufuncs' own reductions: ndarray.max()/min() go through Python wrappers that cost about as much as
# the reduction itself at a few hundred samples, twice per block.
_max_all, _min_all = np.maximum.reduce, np.minimum.reduce


class Sanitizer:
    """process(block): float32 (channels, n), cleaned in place. Counters: nonfinite, denormal.

    With numba (extra ``fast``) the check is one compiled pass over the block (:func:`_clean`); otherwise a few
    numpy reductions. Both zero the same samples and count them the same way; the host runs two sanitizers per
    block: 5.5 us of a 128-sample mono callback in numpy, 1.0 us compiled (benchmarks/live_callback.py's pieces)."""

    use_kernels = True  # a test sets this False on an instance to run the numpy code
    kernel_max_block = _jit.PER_BLOCK_MAX  # larger blocks run the numpy code (dsp/jit.py says why)

    def __init__(self):
        self._counts = np.zeros(2, np.int64)  # non-finite, denormal samples replaced so far
        self._kern = False

    @property
    def nonfinite(self) -> int:
        return int(self._counts[0])

    @property
    def denormal(self) -> int:
        return int(self._counts[1])

    def prepare(self, max_block: int, channels: int) -> None:
        self._abs = np.zeros((channels, max_block), np.float32)  # |x| of the block
        # Per-sample masks: non-finite samples; then |x| < FLT_MIN, and |x| > 0 (their AND: denormals).
        self._b1 = np.zeros((channels, max_block), bool)
        self._b2 = np.zeros((channels, max_block), bool)
        self._kern = bool(self.use_kernels and max_block <= self.kernel_max_block and AVAILABLE and warm_up())

    def process(self, block: np.ndarray) -> int:
        """Clean ``block`` in place; return the number of samples replaced."""
        if self._kern and block.dtype == _F32:
            return clean(block, FLT_MIN, self._counts)
        n = block.shape[1]
        if n == 0:
            return 0
        a = self._abs[:, :n]
        np.abs(block, out=a)
        peak = _max_all(a, None)
        bad = 0
        if not math.isfinite(peak):
            b = self._b1[:, :n]
            np.isfinite(block, out=b)
            np.logical_not(b, out=b)
            k = int(np.count_nonzero(b))
            np.copyto(block, 0.0, where=b)
            np.copyto(a, 0.0, where=b)
            self._counts[0] += k
            bad += k
        # Denormal check only when something is that small; the common case costs one min().
        if _min_all(a, None) < FLT_MIN:
            b1, b2 = self._b1[:, :n], self._b2[:, :n]
            np.less(a, FLT_MIN, out=b1)
            np.greater(a, 0.0, out=b2)
            np.logical_and(b1, b2, out=b1)
            k = int(np.count_nonzero(b1))
            if k:
                np.copyto(block, 0.0, where=b1)
                self._counts[1] += k
                bad += k
        return bad


def _clean(block, flt_min, counts):
    """Zero the non-finite samples of ``block`` (channels, n) float32 and the denormal ones (0 < |x| < flt_min), in
    place; add their numbers to counts[0] and counts[1]; return how many were zeroed."""
    bad = 0
    for ch in range(block.shape[0]):
        for k in range(block.shape[1]):
            a = abs(block[ch, k])
            if not a <= np.float32(3.4028235e38):  # NaN or Inf
                block[ch, k] = 0.0
                counts[0] += 1
                bad += 1
            elif a < flt_min and a > 0.0:
                block[ch, k] = 0.0
                counts[1] += 1
                bad += 1
    return bad


def warm_up() -> bool:
    """Compile :func:`_clean` for a block of any memory layout (once per process; from numba's disk cache after the
    first time), so no audio callback compiles. False without numba (the numpy code runs)."""
    return _jit.warm_module(globals(), _bind)


def _bind(jit):
    global clean
    from numba import types as t

    clean = jit(_clean, [t.int64(t.Array(t.float32, 2, "A"), t.float32, t.Array(t.int64, 1, "C"))])


AVAILABLE = _jit.available("sanitize")
_warm = False
clean = None
