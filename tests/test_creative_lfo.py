"""Rhythmic / LFO mask (dsp/lfo_mask.py, slot ``lfo``)."""

import numpy as np
import pytest
from stage_testlib import make_section, run
from resculpt.dsp.lfo_mask import lfo_rate_hz

SLOTS = ["lfo"]


def _env(y, sr, lo_hz=None, hi_hz=None):
    """Frame envelope (dB per 5 ms hop, 20 ms window) of y, optionally of one band."""
    n, h = int(0.02 * sr), int(0.005 * sr)
    idx = np.arange(n)[None, :] + h * np.arange((y.size - n) // h)[:, None]
    p = np.abs(np.fft.rfft(y[idx] * np.hanning(n), axis=-1)) ** 2
    if lo_hz is not None:
        f = np.fft.rfftfreq(n, 1 / sr)
        p = p[:, (f >= lo_hz) & (f < hi_hz)]
    return p.mean(axis=1)


def _mod_freq(env, frame_rate=200.0):
    e = env - env.mean()
    spec = np.abs(np.fft.rfft(e * np.hanning(e.size), n=16 * e.size))
    f = np.fft.rfftfreq(16 * e.size, 1 / frame_rate)
    spec[f < 0.3] = 0
    return f[int(np.argmax(spec))]


def _noise(sr, seconds=4.0):
    return (0.1 * np.random.default_rng(5).standard_normal(int(seconds * sr))).astype(np.float32)[None, :]


@pytest.mark.parametrize("rate", [16000, 44100, 96000])
@pytest.mark.parametrize("rate_hz,shape", [(3.0, 0), (6.5, 0), (4.0, 1), (2.0, 2)])
def test_lfo_modulates_at_the_set_rate(rate, rate_hz, shape):
    """White noise through the LFO mask: the measured modulation frequency of the output envelope
    equals lfo.rate_hz within 0.05 Hz, at every rate (the phase advances hop / rate per frame)."""
    sr = rate
    rig = make_section(SLOTS, sr, 1, {"lfo.rate_hz": rate_hz, "lfo.shape": shape, "lfo.depth": 1.0})
    y = run(rig, _noise(sr), 512)[0]
    assert abs(_mod_freq(_env(y, sr)) - rate_hz) < 0.05


def test_lfo_tempo_sync_rate():
    """Synced: 120 bpm with 1/8 notes = 4 Hz (measured), 1/4T at 90 bpm = 2.25 Hz (formula)."""
    assert lfo_rate_hz(1.0, 120.0, 3) == pytest.approx(4.0)
    assert lfo_rate_hz(1.0, 90.0, 6) == pytest.approx(2.25)
    assert lfo_rate_hz(1.5, 0.0, 3) == 1.5
    sr = 48000
    rig = make_section(SLOTS, sr, 1, {"lfo.bpm": 120.0, "lfo.division": 3, "lfo.depth": 1.0})
    y = run(rig, _noise(sr), 512)[0]
    assert abs(_mod_freq(_env(y, sr)) - 4.0) < 0.05


def test_lfo_depth_sets_the_modulation_depth():
    """Sine at depth 1 swings the output by > 25 dB; at depth 0.5 by 4-8 dB (gain 1 .. 0.5 = 6 dB)."""
    sr = 48000

    def swing(depth):
        rig = make_section(SLOTS, sr, 1, {"lfo.rate_hz": 2.0, "lfo.depth": depth})
        e = 10 * np.log10(_env(run(rig, _noise(sr, 2.0), 512)[0], sr)[10:])
        return np.percentile(e, 98) - np.percentile(e, 2)

    assert swing(1.0) > 25.0
    assert 4.0 < swing(0.5) < 8.0


def test_lfo_spread_sweeps_the_phase_through_the_spectrum():
    """spread 0.55 cycles over 200 Hz - 8 kHz puts the bottom (200-400 Hz) and the top (6-8 kHz)
    of the band about half a cycle apart (envelope correlation < -0.7); spread 0 keeps them in
    phase (> 0.8)."""
    sr = 48000

    def corr(spread):
        rig = make_section(SLOTS, sr, 1, {"lfo.rate_hz": 3.0, "lfo.depth": 1.0, "lfo.spread_cycles": spread,
                                                 "lfo.low_hz": 200.0, "lfo.high_hz": 8000.0})
        y = run(rig, _noise(sr, 3.0), 512)[0]
        box = np.ones(5) / 5  # 25 ms smoothing of the measurement noise (the LFO period is 333 ms)
        a = np.convolve(np.log(_env(y, sr, 200, 400)[10:]), box, "valid")
        b = np.convolve(np.log(_env(y, sr, 6000, 8000)[10:]), box, "valid")
        return np.corrcoef(a, b)[0, 1]

    assert corr(0.55) < -0.7
    assert corr(0.0) > 0.8


def test_lfo_leaves_frequencies_outside_the_band_untouched():
    """With the band at 2-8 kHz, the level under 1 kHz and over 12 kHz is unchanged (< 0.5 dB)."""
    sr = 48000
    x = _noise(sr, 2.0)
    rig = make_section(SLOTS, sr, 1, {"lfo.depth": 1.0, "lfo.low_hz": 2000.0, "lfo.high_hz": 8000.0})
    y = run(rig, x, 512)[0]
    for lo, hi in ((50, 1000), (12000, 20000)):
        d = 10 * np.log10(_env(y, sr, lo, hi).mean() / _env(x[0], sr, lo, hi).mean())
        assert abs(d) < 0.5, (lo, hi, d)
    d_in = 10 * np.log10(_env(y, sr, 3000, 6000).mean() / _env(x[0], sr, 3000, 6000).mean())
    assert d_in < -3.0
