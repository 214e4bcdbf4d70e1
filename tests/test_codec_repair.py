"""The band-replication stage (dsp/codec_repair.py, slot ``bwe``): finds a codec's edge, rebuilds the band
above it at the level the frame's top of the kept band sets, and leaves full-band audio alone.

The processor contract (streaming == offline, allocation, latency, rates) is the conformance suite's."""

from __future__ import annotations

import numpy as np
from resculpt.dsp.bands import BandMap
from scipy.signal import butter, sosfilt
from stage_testlib import make_section, run

SR = 48000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """(n,) float32: noise tilted -12 dB/oct above 500 Hz with a 4 Hz syllable envelope."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    X = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    X *= np.minimum(1.0, (np.maximum(f, 1.0) / 500.0) ** -2.0)
    x = np.fft.irfft(X, n)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * np.arange(n) / SR)
    return (0.1 * x / np.std(x)).astype(np.float32)


def _lowpass(x: np.ndarray, hz: float) -> np.ndarray:
    """A brick-wall low-pass (whole-signal FFT), as steep as a codec's band edge."""
    X = np.fft.rfft(x)
    X[np.fft.rfftfreq(x.size, 1 / SR) >= hz] = 0.0
    return np.fft.irfft(X, x.size).astype(np.float32)


def _band_db(x: np.ndarray, lo: float, hi: float) -> float:
    X = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2  # windowed: the strong low band must not leak up
    f = np.fft.rfftfreq(x.size, 1 / SR)
    return float(10 * np.log10(np.mean(X[(f >= lo) & (f < hi)]) + 1e-30))


def _repair(x: np.ndarray, **params) -> np.ndarray:
    rig = make_section(["codec"], SR, 1, params={f"codec.{k}": v for k, v in params.items()})
    return run(rig, x[None])[0]


def test_auto_mode_finds_a_4khz_codec_edge_and_rebuilds_4_to_8khz_near_the_continued_slope():
    """A speech-like signal low-passed at 4 kHz (brick wall): after the 1 s long-term spectrum
    has settled, the 4.5-7.5 kHz band comes back within 4 dB of the signal's own -12 dB/oct continuation, and
    nothing appears above codec.max_hz."""
    full = _speechlike(3.0)
    dec = _lowpass(full, 4000.0)
    y = _repair(dec)[SR:]
    ref, cut = full[SR:], dec[SR:]
    assert _band_db(cut, 4500, 7500) < _band_db(ref, 4500, 7500) - 30.0  # the test input really lost the band
    assert abs(_band_db(y, 4500, 7500) - _band_db(ref, 4500, 7500)) < 4.0
    assert abs(_band_db(y, 500, 3500) - _band_db(cut, 500, 3500)) < 0.1  # the kept band is left alone
    assert _band_db(y, 9000, 20000) < _band_db(ref, 4500, 7500) - 40.0


def test_auto_mode_leaves_full_band_audio_bit_identical():
    """Without an edge (the same signal, not low-passed) the stage passes every frame unchanged: the output equals
    an empty section's."""
    x = _speechlike(1.5)[None]
    empty = run(make_section([], SR, 1), x)
    assert np.array_equal(run(make_section(["codec"], SR, 1), x), empty)


def test_rebuilt_band_follows_each_frame_level_at_the_top_of_the_kept_band():
    """Two halves whose 2.8-4 kHz level differs by ~10 dB (a 12 dB boost above 2.5 kHz in the second, the low
    band unchanged): the rebuilt 4.5-7.5 kHz band differs by the same amount (within 2 dB): the continuation
    tracks the frame, it is not a fixed band gain."""
    x = _lowpass(_speechlike(2.0, seed=3), 4000.0)
    h = x.size // 2
    hi = sosfilt(butter(8, 2500.0, "highpass", fs=SR, output="sos"), x).astype(np.float32)
    x[h:] += (10 ** (12 / 20) - 1) * hi[h:]
    y = _repair(x, cutoff_hz=4000.0)
    a, b = slice(SR // 4, h - SR // 10), slice(h + SR // 4, x.size - SR // 10)
    d_ref = _band_db(x[b], 2800, 4000) - _band_db(x[a], 2800, 4000)
    d_out = _band_db(y[b], 4500, 7500) - _band_db(y[a], 4500, 7500)
    assert d_ref > 9.0
    assert abs(d_out - d_ref) < 2.0


def test_a_copied_tone_is_a_clean_steady_sinusoid_whole_cycles_per_hop():
    """A 3 kHz tone under a fixed 4 kHz edge is copied up by S = 2 kHz (a multiple of n_fft / hop bins), patch
    after patch: the copies overlap-add coherently into steady tones at 5 and 7 kHz (the rebuilt band's
    envelope varies < 1 dB over 10 ms frames, and the two lines hold > 95 % of its energy: no smear)."""
    t = np.arange(int(1.0 * SR)) / SR
    x = (0.1 * np.sin(2 * np.pi * 3000.0 * t)).astype(np.float32)
    y = _repair(x, cutoff_hz=4000.0)[SR // 4 :]
    hp = sosfilt(butter(12, 4000.0, "highpass", fs=SR, output="sos"), y)[SR // 10 :]
    env = np.sqrt(np.mean(hp[: hp.size // 480 * 480].reshape(-1, 480) ** 2, axis=1))
    assert 20 * np.log10(env.max() / env.min()) < 1.0
    P = np.abs(np.fft.rfft(hp * np.hanning(hp.size))) ** 2
    f = np.fft.rfftfreq(hp.size, 1 / SR)
    lines = (np.abs(f - 5000.0) < 30) | (np.abs(f - 7000.0) < 30)
    assert P[lines].sum() > 0.95 * P[f > 4000].sum()


def test_level_and_slope_move_the_rebuilt_band_as_documented():
    """codec.level_db lowers the rebuilt band by that many dB; a steeper codec.slope_db_oct lowers its top more
    than its bottom."""
    x = _lowpass(_speechlike(1.5, seed=5), 4000.0)
    base = _repair(x, cutoff_hz=4000.0)[SR // 4 :]
    low = _repair(x, cutoff_hz=4000.0, level_db=-6.0)[SR // 4 :]
    assert abs(_band_db(low, 4500, 7500) - _band_db(base, 4500, 7500) + 6.0) < 0.5
    steep = _repair(x, cutoff_hz=4000.0, slope_db_oct=-24.0)[SR // 4 :]
    drop_top = _band_db(base, 6500, 7500) - _band_db(steep, 6500, 7500)
    drop_bottom = _band_db(base, 4200, 5000) - _band_db(steep, 4200, 5000)
    assert drop_top > drop_bottom + 3.0


def test_band_map_covers_the_rebuilt_range_at_16khz():
    """At 16 kHz the rebuilt range (4-8 kHz) lies in valid ERB bands, so the stage's band gains reach it."""
    bm = BandMap(16000, 320)
    assert bm.valid[(bm.centers_hz > 4000) & (bm.centers_hz < 7500)].all()


def test_valley_postfilter_deepens_the_valleys_between_harmonics_and_keeps_the_power():
    """A 200 Hz harmonic series under white noise 30 dB down (the noise a codec leaves between harmonics):
    with codec.valley_db 6 the noise between the harmonics (> 60 Hz from any harmonic, 300-3500 Hz) falls by 1 to
    6 dB against the harmonics (the 20 ms frame's 50 Hz bins resolve a 200 Hz series coarsely: a harmonic's main
    lobe covers most of the spacing, so the mid-valley bins take most of the cut), and the overall power stays
    within 0.5 dB; replication off (max_hz 0)."""
    rng = np.random.default_rng(11)
    t = np.arange(int(1.5 * SR)) / SR
    x = sum(np.sin(2 * np.pi * 200.0 * h * t + h) / h for h in range(1, 20)) * 0.05
    x = (x + 10 ** (-30 / 20) * np.std(x) * 10 * rng.standard_normal(t.size) / np.sqrt(10)).astype(np.float32)
    y = _repair(x, valley_db=6.0, max_hz=0.0)[SR // 4 :]
    x = x[SR // 4 :]

    def peak_to_valley(s):
        P = np.abs(np.fft.rfft(s * np.hanning(s.size))) ** 2
        f = np.fft.rfftfreq(s.size, 1 / SR)
        band = (f > 300) & (f < 3500)
        d = np.abs(f - 200.0 * np.round(f / 200.0))
        return 10 * np.log10(P[band & (d < 5)].sum() / P[band & (d > 60)].sum())

    gain = peak_to_valley(y) - peak_to_valley(x)
    assert 1.0 < gain < 6.0
    assert abs(10 * np.log10(np.mean(y ** 2) / np.mean(x ** 2))) < 0.5
