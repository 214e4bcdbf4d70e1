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
