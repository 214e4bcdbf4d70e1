"""Keeps NaN, Inf and denormals out of the signal path, and counts what it removed.

Denormals (|x| < 1.18e-38 in float32) cost 10-100x per operation in IIR tails on x86 without
FTZ; NaN/Inf from a broken source would poison every recursive state downstream. Both are set
to 0 and counted; the counts are reported by the host (``Chain.stats``) and over OSC.
"""

from __future__ import annotations

import math

import numpy as np

FLT_MIN = np.float32(1.17549435e-38)
# The ufuncs' own reductions: ndarray.max()/min() go through Python wrappers that cost about as much as
# the reduction itself at a few hundred samples, twice per block.
_max_all, _min_all = np.maximum.reduce, np.minimum.reduce


class Sanitizer:
    """process(block): float32 (channels, n), cleaned in place. Counters: nonfinite, denormal."""

    def __init__(self):
        self.nonfinite = 0
        self.denormal = 0

    def prepare(self, max_block: int, channels: int) -> None:
        self._abs = np.zeros((channels, max_block), np.float32)  # |x| of the block
        # Per-sample masks: non-finite samples; then |x| < FLT_MIN, and |x| > 0 (their AND: denormals).
        self._b1 = np.zeros((channels, max_block), bool)
        self._b2 = np.zeros((channels, max_block), bool)

    def process(self, block: np.ndarray) -> int:
        """Clean ``block`` in place; return the number of samples replaced."""
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
            self.nonfinite += k
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
                self.denormal += k
                bad += k
        return bad
