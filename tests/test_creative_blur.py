"""Spectral blur (dsp/spectral_blur.py, slot ``blur``)."""

import numpy as np
import pytest
from stage_testlib import make_section, run
from resculpt.dsp.bands import BandMap

SLOTS = ["blur"]


def _mags(y, sr):
    """|STFT| frames (frames, bins) with a 20 ms Hann / 5 ms hop, for measurements."""
    n, h = int(0.02 * sr), int(0.005 * sr)
    idx = np.arange(n)[None, :] + h * np.arange((y.size - n) // h)[:, None]
    return np.abs(np.fft.rfft(y[idx] * np.hanning(n), axis=-1))


def _flux(y, sr):
    """Normalised spectral flux over 32 ERB bands (band amplitudes: the per-bin Rayleigh jitter of
    any noise would otherwise set a floor that no smear can go under)."""
    m = np.sqrt(BandMap(sr, int(0.02 * sr)).band_power(_mags(y, sr).astype(np.float32) ** 2))
    return float(np.mean(np.sum(np.abs(np.diff(m, axis=0)), axis=1)) / np.mean(np.sum(m, axis=1)))


def _clicks(sr, seconds=1.5):
    """Noise bursts (10 ms) at irregular times over a quiet noise bed: a high-flux signal."""
    rng = np.random.default_rng(3)
    y = 0.01 * rng.standard_normal(int(seconds * sr))
    for t0 in rng.uniform(0.05, seconds - 0.05, 25):
        i = int(t0 * sr)
        y[i : i + int(0.01 * sr)] += 0.5 * rng.standard_normal(int(0.01 * sr))
    return y.astype(np.float32)[None, :]


def test_blur_time_smear_reduces_spectral_flux():
    """A 400 ms time smear cuts the normalised spectral flux of a burst train by more than half,
    relative to the same section with blur mix 0 (the latency-aligned dry)."""
    sr = 48000
    x = _clicks(sr)
    rig = make_section(SLOTS, sr, 1, {"blur.time_ms": 400.0, "blur.mix": 0.0})
    dry = run(rig, x, 512)[0]
    rig = make_section(SLOTS, sr, 1, {"blur.time_ms": 400.0, "blur.mix": 1.0})
    wet = run(rig, x, 512)[0]
    assert _flux(wet, sr) < 0.5 * _flux(dry, sr), (_flux(wet, sr), _flux(dry, sr))


def test_blur_freq_smear_flattens_harmonic_peaks():
    """A 400 Hz frequency smear fills the valleys between 200 Hz harmonics (peak/valley drops > 10 dB)."""
    sr = 48000
    t = np.arange(sr) / sr
    x = sum(np.sin(2 * np.pi * 200.0 * k * t) / k for k in range(1, 20)).astype(np.float32)[None, :] * 0.1

    def peak_valley(y):
        m = _mags(y[int(0.2 * sr) :], sr).mean(axis=0)
        f = np.fft.rfftfreq(int(0.02 * sr), 1 / sr)
        pk = [m[np.argmin(np.abs(f - 200 * k))] for k in range(2, 10)]
        vl = [m[np.argmin(np.abs(f - 200 * k - 100))] for k in range(2, 10)]
        return 20 * np.log10(np.mean(pk) / np.mean(vl))

    rig = make_section(SLOTS, sr, 1, {"blur.time_ms": 0.0, "blur.freq_hz": 0.0})
    dry = run(rig, x, 512)[0]
    rig = make_section(SLOTS, sr, 1, {"blur.time_ms": 0.0, "blur.freq_hz": 400.0, "blur.phase": 1})
    wet = run(rig, x, 512)[0]
    assert peak_valley(dry) - peak_valley(wet) > 10.0, (peak_valley(dry), peak_valley(wet))


def test_blur_random_phase_tail_rings_on_after_the_input_stops():
    """With random phase, a 1 s time smear keeps sounding after the input stops (a decaying wash),
    and the tail decays (it is a smear, not a freeze)."""
    sr = 48000
    x = np.zeros((1, int(1.5 * sr)), np.float32)
    x[0, : int(0.3 * sr)] = 0.3 * np.random.default_rng(0).standard_normal(int(0.3 * sr))
    rig = make_section(SLOTS, sr, 1, {"blur.time_ms": 1000.0, "blur.phase": 1})
    y = run(rig, x, 512)[0]
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))
    early, late = rms(y[int(0.4 * sr) : int(0.5 * sr)]), rms(y[int(1.3 * sr) : int(1.4 * sr)])
    assert early > 0.01
    assert 0.0 < late < 0.6 * early
