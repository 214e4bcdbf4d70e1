"""Allocation-free helpers shared by the spectral stages (audio thread).

numpy allocates a temporary inside an in-place ufunc when the operands' dtypes differ (a casting
buffer, ~8 KB) or when an operand is broadcast onto the output (an overlap copy). Stages therefore
widen a real gain into a preallocated complex64 buffer first and multiply same-dtype, same-shape.
"""

from __future__ import annotations

import numpy as np


def apply_gain(spec: np.ndarray, gain: np.ndarray, cbuf: np.ndarray) -> None:
    """spec (channels, n_bins) complex64 *= gain, in place, without allocating.

    Args:
        gain: real gains broadcastable to spec: (n_bins,), (1, n_bins) or (channels, n_bins).
        cbuf: scratch complex64 of spec's shape.
    """
    np.copyto(cbuf, gain)
    np.multiply(spec, cbuf, out=spec)


try:  # numpy >= 2.0 implements the transforms as ufuncs; calling one directly skips np.fft's per-call
    from numpy.fft import _pocketfft_umath as _pfu  # argument handling (~2-3 us of a 5 ms frame's budget)
except ImportError:  # pragma: no cover - older or reorganised numpy: the public functions
    _pfu = None
if _pfu is not None and not all(hasattr(_pfu, k) for k in ("rfft_n_even", "rfft_n_odd", "irfft")):
    _pfu = None  # pragma: no cover


class RealFFT:
    """Real FFT of length ``n`` over the last axis, into preallocated outputs, for the audio thread.

    ``forward(x, out)``: x (..., n) float64 or float32 -> out (..., n // 2 + 1) complex128 / complex64.
    ``inverse(X, out)``: X (..., n // 2 + 1) complex -> out (..., n) of the matching real dtype.
    The numbers are those of ``np.fft.rfft`` / ``np.fft.irfft(X, n)`` (norm "backward"; tested equal).
    """

    def __init__(self, n: int):
        self.n = int(n)
        self._axes = [(-1,), (), (-1,)]
        if _pfu is not None:
            self._fwd = _pfu.rfft_n_even if self.n % 2 == 0 else _pfu.rfft_n_odd
            # np.fft passes 1/n in the input's real dtype (float32 for complex64 input).
            self._inv_fct = {np.dtype(np.complex64): np.reciprocal(np.float32(self.n)),
                             np.dtype(np.complex128): np.reciprocal(np.float64(self.n))}

    def forward(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        if _pfu is None:  # pragma: no cover
            return np.fft.rfft(x, axis=-1, out=out)
        return self._fwd(x, 1, axes=self._axes, out=out)

    def inverse(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        if _pfu is None:  # pragma: no cover
            return np.fft.irfft(X, n=self.n, axis=-1, out=out)
        return _pfu.irfft(X, self._inv_fct[X.dtype], axes=self._axes, out=out)
