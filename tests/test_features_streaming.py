"""Every feature extractor: streaming (any block partition) equals the offline per-file run."""

import numpy as np
import pytest
from resculpt.dsp.features import ALL, MFCC, BandEnvelope, Brightness, analyze, hop_size
from resculpt.dsp.processor import SUPPORTED_RATES

CLASSES = list(ALL) + [BandEnvelope, MFCC, Brightness]


def _signal(sr, channels, seconds, rng):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)
    x = np.stack([x, 0.7 * x[::-1]])[:channels]
    return x.astype(np.float32)


def _stream(cls, x, sr, sizes):
    p = cls()
    n = x.shape[1]
    p.prepare(sr, max(sizes), x.shape[0], history_frames=n // hop_size(sr) + 1)
    buf = x.copy()
    i = k = 0
    while i < n:
        m = min(sizes[k % len(sizes)], n - i)
        p.process(buf[:, i : i + m])
        i += m
        k += 1
    np.testing.assert_array_equal(buf, x)  # pass-through: the block is untouched
    return p.history[: p.frames].copy()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("sizes", [[1], [63], [64], [65], [512], [8193], "random"], ids=str)
def test_streaming_equals_offline_for_any_block_partition(cls, sizes, rng):
    """Rows from any block partition are bit-identical to the offline per-file run."""
    sr = 16000
    x = _signal(sr, 2, 0.3 if sizes == [1] else 0.8, rng)
    if sizes == "random":
        sizes = list(rng.integers(1, 3000, size=50))
    off = analyze(cls(), x, sr)
    st = _stream(cls, x, sr, sizes)
    assert off.shape == st.shape and off.shape[0] == x.shape[1] // hop_size(sr)
    np.testing.assert_array_equal(st, off)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("sr", SUPPORTED_RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_every_rate_and_channel_count_streams_like_offline(cls, sr, channels, rng):
    """At 16-96 kHz, mono and stereo, streaming in odd blocks equals offline, one row per 5 ms hop."""
    x = _signal(sr, channels, 0.5, rng)
    off = analyze(cls(), x, sr)
    st = _stream(cls, x, sr, [1000, 37, 4096])
    np.testing.assert_array_equal(st, off)
    assert off.shape == (x.shape[1] // hop_size(sr), len(cls.columns))
    assert abs(hop_size(sr) / sr - 0.005) < 1e-4


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_reset_then_rerun_repeats_exactly_and_zero_length_block_is_a_no_op(cls, rng):
    """reset() returns to the prepared state; an empty block changes nothing."""
    sr = 22050
    x = _signal(sr, 1, 0.4, rng)
    p = cls()
    p.prepare(sr, 2048, 1, history_frames=400)
    for rep in range(2):
        p.reset()
        b = x.copy()
        p.process(b[:, :0])
        for i in range(0, b.shape[1], 2048):
            p.process(b[:, i : i + 2048])
            p.process(b[:, :0])
        rows = p.history[: p.frames].copy()
        if rep == 0:
            first = rows
    np.testing.assert_array_equal(rows, first)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_nan_and_inf_input_leave_features_finite_or_nan_never_inf_and_block_untouched(cls, rng):
    """Non-finite samples are zeroed inside the analyser; no Inf reaches a feature row."""
    sr = 16000
    x = _signal(sr, 2, 0.5, rng)
    x[0, 1000:1010] = np.nan
    x[1, 3000] = np.inf
    x[0, 5000] = -np.inf
    b = x.copy()
    rows = analyze(cls(), b, sr)
    assert not np.isinf(rows).any()
    clean = x.copy()
    clean[~np.isfinite(clean)] = 0
    np.testing.assert_array_equal(np.nan_to_num(rows, nan=-999), np.nan_to_num(analyze(cls(), clean, sr), nan=-999))


def test_read_returns_each_row_once_in_order(rng):
    """The control side's read() hands out new rows exactly once."""
    from resculpt.dsp.features import Loudness

    sr = 16000
    p = Loudness()
    p.prepare(sr, 512, 1)
    x = _signal(sr, 1, 0.5, rng)
    got = []
    for i in range(0, x.shape[1], 512):
        p.process(x[:, i : i + 512].copy())
        got.append(p.read())
    allrows = np.concatenate(got)
    np.testing.assert_array_equal(np.nan_to_num(allrows), np.nan_to_num(analyze(Loudness(), x, sr)))
