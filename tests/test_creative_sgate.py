"""Spectral gate with tilt (dsp/spectral_gate.py, slot ``sgate``): the creative-suite treatment."""

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
from resculpt.dsp.processor import SUPPORTED_RATES

SLOTS = ["sgate"]
PARAMS = {"sgate.threshold_db": -45.0, "sgate.tilt_db_oct": 6.0, "sgate.range_db": 40.0,
          "sgate.attack_ms": 3.0, "sgate.release_ms": 60.0}
EVENTS = [(0.1, {"sgate.tilt_db_oct": -3.0}), (0.2, {"sgate.threshold_db": -20.0})]


@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_sgate_streaming_equals_offline_for_any_block_partition(block):
    """Output of any block partition equals the one-call render to 1e-6 (params switched mid-stream)."""
    check_streaming_equals_offline(SLOTS, PARAMS, EVENTS, block)


def test_sgate_reset_then_rerun_is_identical():
    """reset() reopens every bin and clears the coefficient cache: bit-identical rerun."""
    check_reset_rerun_identical(SLOTS, PARAMS, EVENTS)


def test_sgate_zero_length_blocks_change_nothing():
    """Zero-length blocks between blocks are no-ops."""
    check_zero_length_blocks(SLOTS, PARAMS, EVENTS)


def test_sgate_nonfinite_input_gives_finite_output():
    """NaN/Inf input: output finite, gate recovers."""
    check_nonfinite_input(SLOTS, PARAMS, EVENTS)


def test_sgate_nan_spectrum_does_not_poison_the_gain_state():
    """Called directly with a NaN bin (no section guard), the per-bin gain state stays finite
    (a NaN level reads as silence: that bin closes, the next frame is normal again)."""
    sec, _table = make_section(SLOTS, 48000, 2, PARAMS)
    st = sec.stages[0]
    spec = np.full((2, sec.n_bins), 10.0 + 0j, np.complex64)
    spec[0, 5] = np.nan
    with np.errstate(invalid="ignore"):
        st.process_frame(spec)
    assert np.isfinite(st._gain).all()
    spec2 = np.full((2, sec.n_bins), 10.0 + 0j, np.complex64)
    st.process_frame(spec2)
    assert np.isfinite(spec2).all()


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", SUPPORTED_RATES)
def test_sgate_runs_at_every_rate_mono_and_stereo(rate, channels):
    """Every supported rate, mono and stereo: latency n_fft - 1, finite, streaming == offline."""
    check_rate_and_channels(SLOTS, PARAMS, EVENTS, rate, channels)


@pytest.mark.parametrize("linked", [True, False])
def test_sgate_allocates_nothing_per_call(linked):
    """No net allocation and no per-frame temporaries (linked: one gain row for both channels)."""
    check_no_allocation(SLOTS, PARAMS, linked=linked)


def _tone_levels(y, sr, freqs):
    seg = y[int(0.5 * sr) :]
    mag = np.abs(np.fft.rfft(seg * np.hanning(seg.size))) / (np.hanning(seg.size).sum() / 2)
    f = np.fft.rfftfreq(seg.size, 1 / sr)
    return [20 * np.log10(mag[np.argmin(np.abs(f - fr))] + 1e-12) for fr in freqs]


@pytest.mark.parametrize("rate", [16000, 48000])
def test_sgate_tilt_attenuates_quiet_highs_more_than_lows(rate):
    """Two equally quiet tones (-40 dBFS at 300 Hz and 5 kHz): with threshold -45 dB and tilt
    +6 dB/oct the 5 kHz tone sits ~24 dB under its local threshold and loses > 20 dB while the
    300 Hz one (threshold ~ -55 dB there) loses < 1 dB; with tilt 0 both pass alike."""
    sr = rate
    t = np.arange(int(1.2 * sr)) / sr
    x = (0.01 * np.sin(2 * np.pi * 300 * t) + 0.01 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)[None, :]
    base = {"sgate.threshold_db": -45.0, "sgate.range_db": 40.0, "sgate.knee_db": 6.0}
    sec, table = make_section(SLOTS, sr, 1, {**base, "sgate.tilt_db_oct": 6.0})
    lo, hi = _tone_levels(run(sec, table, x, 256)[0], sr, [300, 5000])
    lo_in, hi_in = _tone_levels(x[0], sr, [300, 5000])
    assert lo_in - lo < 1.0, (lo_in, lo)
    assert hi_in - hi > 20.0, (hi_in, hi)
    sec, table = make_section(SLOTS, sr, 1, {**base, "sgate.tilt_db_oct": 0.0})
    lo0, hi0 = _tone_levels(run(sec, table, x, 256)[0], sr, [300, 5000])
    assert abs((lo_in - lo0) - (hi_in - hi0)) < 1.0


def test_sgate_linked_stereo_applies_one_gain_to_both_channels():
    """Linked: a tone present only on the left keeps the same bins open on the right (the
    right channel's quiet copy of it passes), so the stereo image is not torn apart."""
    sr = 48000
    t = np.arange(int(0.8 * sr)) / sr
    tone = np.sin(2 * np.pi * 1000 * t)
    x = np.stack([0.3 * tone, 0.001 * tone]).astype(np.float32)
    params = {"sgate.threshold_db": -40.0, "sgate.range_db": 60.0}
    sec, table = make_section(SLOTS, sr, 2, params, linked=True)
    y = run(sec, table, x, 256)
    ratio = np.abs(y[1, int(0.4 * sr) :]).max() / np.abs(x[1, int(0.4 * sr) :]).max()
    assert 0.9 < ratio < 1.1
    sec, table = make_section(SLOTS, sr, 2, params, linked=False)
    y = run(sec, table, x, 256)
    assert np.abs(y[1, int(0.4 * sr) :]).max() < 0.1 * np.abs(x[1]).max()
