"""The sliding input window of a hop-based analysis, filled from blocks of any size.

Both the STFT section (dsp/stft.py) and the frame analysers (dsp/features/base.py) keep the last
``length`` samples of their input and act once per completed hop: samples go into the window's
newest hop, and when that hop is complete the window (ending on the hop's last sample) is read and
then moved on by one hop.
"""

from __future__ import annotations

import numpy as np


class HopWindow:
    """The last ``length`` samples of a stream, ``buf`` (channels, length), newest sample last.

    The newest hop occupies ``buf[:, length - hop:]``, of which ``fill`` samples (0..hop) have
    arrived. The caller cuts its block into segments that end where a hop does (at most
    ``hop - fill`` samples each) and ``write``s them; when a write completes the hop the caller reads
    ``buf`` and calls ``shift``. Neither allocates. ``buf`` is one of two buffers that swap
    on every shift: read it through the attribute each time, never keep a reference across a shift.
    """

    __slots__ = ("_base", "_twin", "buf", "fill", "hop")

    def __init__(self, channels: int, length: int, hop: int, dtype=np.float32):
        if not 0 < hop <= length:
            raise ValueError(f"hop {hop} must be in 1..length ({length})")
        self.buf = np.zeros((channels, length), dtype)
        # Shifting by one hop copies into this twin and swaps: an overlapping in-place slice copy
        # (buf[:, :-hop] = buf[:, hop:]) makes numpy allocate a temporary.
        self._twin = np.zeros((channels, length), dtype)
        self.hop = hop
        self.fill = 0
        self._base = length - hop  # index of the newest hop's first sample

    def write(self, seg: np.ndarray) -> bool:
        """Append seg (channels, m), m <= hop - fill, to the newest hop; True when that completes it."""
        f = self.fill
        e = f + seg.shape[1]
        b = self._base
        self.buf[:, b + f : b + e] = seg
        self.fill = e
        return e == self.hop

    def shift(self) -> None:
        """Move the window on by one hop (the oldest hop leaves) and start an empty newest hop."""
        t = self._twin
        t[:, : self._base] = self.buf[:, self.hop :]
        self._twin, self.buf = self.buf, t
        self.fill = 0

    def reset(self) -> None:
        self.buf.fill(0)
        self._twin.fill(0)
        self.fill = 0
