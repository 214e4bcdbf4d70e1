"""Spectral gate with tilt (dsp/spectral_gate.py, slot ``sgate``): the creative-suite treatment."""

import numpy as np
import pytest
from stage_testlib import make_section, run

SLOTS = ["sgate"]
PARAMS = {"sgate.threshold_db": -45.0, "sgate.tilt_db_oct": 6.0, "sgate.range_db": 40.0,
          "sgate.attack_ms": 3.0, "sgate.release_ms": 60.0}


def test_sgate_nan_spectrum_does_not_poison_the_gain_state():
    """Called directly with a NaN bin (no section guard), the per-bin gain state stays finite
    (a NaN level reads as silence: that bin closes, the next frame is normal again)."""
    rig = make_section(SLOTS, 48000, 2, PARAMS)
    st = rig.proc.stages[0]
    spec = np.full((2, rig.proc.n_bins), 10.0 + 0j, np.complex64)
    spec[0, 5] = np.nan
    with np.errstate(invalid="ignore"):
        st.process_frame(spec)
    assert np.isfinite(st._gain).all()
    spec2 = np.full((2, rig.proc.n_bins), 10.0 + 0j, np.complex64)
    st.process_frame(spec2)
    assert np.isfinite(spec2).all()


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
    rig = make_section(SLOTS, sr, 1, {**base, "sgate.tilt_db_oct": 6.0})
    lo, hi = _tone_levels(run(rig, x, 256)[0], sr, [300, 5000])
    lo_in, hi_in = _tone_levels(x[0], sr, [300, 5000])
    assert lo_in - lo < 1.0, (lo_in, lo)
    assert hi_in - hi > 20.0, (hi_in, hi)
    rig = make_section(SLOTS, sr, 1, {**base, "sgate.tilt_db_oct": 0.0})
    lo0, hi0 = _tone_levels(run(rig, x, 256)[0], sr, [300, 5000])
    assert abs((lo_in - lo0) - (hi_in - hi0)) < 1.0


def test_sgate_linked_stereo_applies_one_gain_to_both_channels():
    """Linked: a tone present only on the left keeps the same bins open on the right (the
    right channel's quiet copy of it passes), so the stereo image is not torn apart."""
    sr = 48000
    t = np.arange(int(0.8 * sr)) / sr
    tone = np.sin(2 * np.pi * 1000 * t)
    x = np.stack([0.3 * tone, 0.001 * tone]).astype(np.float32)
    params = {"sgate.threshold_db": -40.0, "sgate.range_db": 60.0}
    rig = make_section(SLOTS, sr, 2, params, linked=True)
    y = run(rig, x, 256)
    ratio = np.abs(y[1, int(0.4 * sr) :]).max() / np.abs(x[1, int(0.4 * sr) :]).max()
    assert 0.9 < ratio < 1.1
    rig = make_section(SLOTS, sr, 2, params, linked=False)
    y = run(rig, x, 256)
    assert np.abs(y[1, int(0.4 * sr) :]).max() < 0.1 * np.abs(x[1]).max()
