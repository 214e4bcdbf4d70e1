"""Spectral blur (dsp/spectral_blur.py, slot ``blur``)."""

import numpy as np
import pytest
from _creative_util import (
    BLOCK_SIZES,
    check_no_allocation,
    check_nonfinite_input,
    check_rate_and_channels,
    check_reset_rerun_identical,
    check_streaming_equals_offline,
    check_zero_length_blocks,
    make_section,
    run,
)
from resculpt.dsp.bands import BandMap
from resculpt.dsp.processor import SUPPORTED_RATES

SLOTS = ["blur"]
PARAMS = {"blur.time_ms": 120.0, "blur.freq_hz": 300.0, "blur.mix": 0.9}
# Switch to random phase and a wider smear mid-stream.
EVENTS = [(0.12, {"blur.phase": 1, "blur.freq_hz": 800.0}), (0.2, {"blur.time_ms": 0.0})]


@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_blur_streaming_equals_offline_for_any_block_partition(block):
    """Output of any block partition equals the one-call render to 1e-6 (params switched mid-stream)."""
    check_streaming_equals_offline(SLOTS, PARAMS, EVENTS, block)


def test_blur_reset_then_rerun_is_identical():
    """reset() clears the smear state and rewinds the random-phase sequence: bit-identical rerun."""
    check_reset_rerun_identical(SLOTS, PARAMS, EVENTS)


def test_blur_zero_length_blocks_change_nothing():
    """Zero-length blocks between blocks are no-ops."""
    check_zero_length_blocks(SLOTS, PARAMS, EVENTS)


def test_blur_nonfinite_input_gives_finite_output():
    """NaN/Inf input never enters the recursive smear state; output stays finite and recovers."""
    check_nonfinite_input(SLOTS, PARAMS, EVENTS)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", SUPPORTED_RATES)
def test_blur_runs_at_every_rate_mono_and_stereo(rate, channels):
    """Every supported rate, mono and stereo: latency n_fft - 1, finite, streaming == offline."""
    check_rate_and_channels(SLOTS, PARAMS, EVENTS, rate, channels)


@pytest.mark.parametrize("phase", [0, 1])
def test_blur_allocates_nothing_per_call(phase):
    """No net allocation and no per-frame temporaries, with both phase modes and both smears on."""
    check_no_allocation(SLOTS, {**PARAMS, "blur.phase": phase})


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
    sec, table = make_section(SLOTS, sr, 1, {"blur.time_ms": 400.0, "blur.mix": 0.0})
    dry = run(sec, table, x, 512)[0]
    sec, table = make_section(SLOTS, sr, 1, {"blur.time_ms": 400.0, "blur.mix": 1.0})
    wet = run(sec, table, x, 512)[0]
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

    sec, table = make_section(SLOTS, sr, 1, {"blur.time_ms": 0.0, "blur.freq_hz": 0.0})
    dry = run(sec, table, x, 512)[0]
    sec, table = make_section(SLOTS, sr, 1, {"blur.time_ms": 0.0, "blur.freq_hz": 400.0, "blur.phase": 1})
    wet = run(sec, table, x, 512)[0]
    assert peak_valley(dry) - peak_valley(wet) > 10.0, (peak_valley(dry), peak_valley(wet))


def test_blur_random_phase_tail_rings_on_after_the_input_stops():
    """With random phase, a 1 s time smear keeps sounding after the input stops (a decaying wash),
    and the tail decays (it is a smear, not a freeze)."""
    sr = 48000
    x = np.zeros((1, int(1.5 * sr)), np.float32)
    x[0, : int(0.3 * sr)] = 0.3 * np.random.default_rng(0).standard_normal(int(0.3 * sr))
    sec, table = make_section(SLOTS, sr, 1, {"blur.time_ms": 1000.0, "blur.phase": 1})
    y = run(sec, table, x, 512)[0]
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))
    early, late = rms(y[int(0.4 * sr) : int(0.5 * sr)]), rms(y[int(1.3 * sr) : int(1.4 * sr)])
    assert early > 0.01
    assert 0.0 < late < 0.6 * early
