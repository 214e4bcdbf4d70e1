"""HopWindow, the input window the STFT section and the frame analysers fill hop by hop."""

import tracemalloc

import numpy as np
import pytest
from resculpt.dsp.hop_window import HopWindow


@pytest.mark.parametrize("length, hop", [(960, 240), (480, 240), (240, 240)])
def test_at_every_completed_hop_the_window_holds_the_last_length_samples(length, hop, rng):
    """Whatever the segment sizes, a completed hop leaves buf == the stream's last ``length``
    samples (zeros before its start)."""
    x = rng.standard_normal((2, 5000)).astype(np.float32)
    padded = np.concatenate([np.zeros((2, length), np.float32), x], axis=1)
    w = HopWindow(2, length, hop)
    i = hops = 0
    while i < x.shape[1]:
        m = min(int(rng.integers(1, 3 * hop)), x.shape[1] - i, hop - w.fill)
        if w.write(x[:, i : i + m]):
            hops += 1
            end = length + hops * hop
            np.testing.assert_array_equal(w.buf, padded[:, end - length : end])
            w.shift()
        i += m
    assert hops == x.shape[1] // hop and w.fill == x.shape[1] % hop


def test_write_and_shift_allocate_no_array():
    """A one-hop shift done in place would make numpy allocate a (channels, length - hop)
    temporary (11.5 KB here); write and shift stay far below that."""
    w = HopWindow(2, 960, 240, np.float64)
    seg = np.ones((2, 240))
    w.write(seg)
    w.shift()  # first calls warm up any interpreter caches
    tracemalloc.start()
    try:
        for _ in range(8):
            w.write(seg[:, :100])
            w.write(seg[:, 100:])
            w.shift()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 720 * 8 // 4


def test_reset_empties_the_window():
    w = HopWindow(1, 8, 4)
    w.write(np.ones((1, 3), np.float32))
    w.reset()
    assert w.fill == 0 and not w.buf.any()
