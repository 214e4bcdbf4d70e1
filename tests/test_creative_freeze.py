"""Spectral freeze (dsp/spectral_freeze.py, slot ``freeze``)."""

import numpy as np
import pytest
from stage_testlib import make_section, run

SLOTS = ["freeze"]


def _tones_then_silence(sr, tone_s=0.3, silence_s=1.0):
    t = np.arange(int(tone_s * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.2 * np.sin(2 * np.pi * 1210.0 * t)
    return np.concatenate([y, np.zeros(int(silence_s * sr))]).astype(np.float32)[None, :]


def _peak_hz(y, sr):
    w = np.hanning(y.size)
    mag = np.abs(np.fft.rfft(y * w))
    k = int(np.argmax(mag))
    # Parabolic interpolation of the log-magnitude peak.
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-20)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / y.size, mag


def test_freeze_output_keeps_the_held_spectrum_after_the_input_goes_silent():
    """Hold captured during a 440 + 1210 Hz chord keeps sounding that chord, at its pitch and
    balance, for the whole second of silence that follows (mix 1: only the frozen spectrum)."""
    sr = 48000
    x = _tones_then_silence(sr)
    rig = make_section(SLOTS, sr, 1, {"freeze.mix": 1.0, "freeze.crossfade_ms": 20.0})
    y = run(rig, x, 256, [(int(0.15 * sr), {"freeze.hold": 1})])[0]
    live = x[0, int(0.1 * sr) : int(0.3 * sr)]
    tail = y[int(0.5 * sr) :]
    late = y[int(1.1 * sr) :]
    rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    assert rms(tail) > 0.5 * rms(live), (rms(tail), rms(live))
    assert abs(rms(late) / rms(y[int(0.5 * sr) : int(0.7 * sr)]) - 1.0) < 0.15, "the freeze decays"
    # Pitch-true: the strongest partial is still 440 Hz (phase-vocoder advance, not bin centres).
    f0, mag = _peak_hz(tail, sr)
    assert abs(f0 - 440.0) < 2.0, f0
    f = np.fft.rfftfreq(tail.size, 1 / sr)
    e440 = mag[(f > 420) & (f < 460)].max()
    e1210 = mag[(f > 1190) & (f < 1230)].max()
    assert 0.4 < e1210 / e440 < 1.0, e1210 / e440  # the chord's balance (0.2 / 0.3) is kept
    # Nothing but the chord: energy away from both partials is far below them.
    other = mag[((f > 600) & (f < 1000)) | ((f > 1500) & (f < 4000))].max()
    assert other < 0.05 * e440


def test_freeze_release_fades_out_within_the_crossfade_time():
    """After hold goes off the frozen sound is gone within crossfade + one window (input silent)."""
    sr = 48000
    x = _tones_then_silence(sr)
    rig = make_section(SLOTS, sr, 1, {"freeze.mix": 1.0, "freeze.crossfade_ms": 100.0})
    off = 0.6
    y = run(rig, x, 512, [(int(0.15 * sr), {"freeze.hold": 1}), (int(off * sr), {"freeze.hold": 0})])[0]
    assert np.abs(y[int(0.5 * sr) : int(off * sr)]).max() > 0.1
    mid = y[int((off + 0.04) * sr) : int((off + 0.06) * sr)]
    assert 0.0 < np.abs(mid).max(), "the release should fade, not cut"
    assert np.abs(y[int((off + 0.1 + 0.025) * sr) :]).max() < 1e-6


def test_freeze_armed_in_silence_captures_the_next_sound():
    """Pressing hold in silence arms the freeze; the first frame above arm_db is captured."""
    sr = 48000
    sil = np.zeros((1, int(0.2 * sr)), np.float32)
    x = np.concatenate([sil, _tones_then_silence(sr, 0.2, 0.6)], axis=1)
    rig = make_section(SLOTS, sr, 1, {"freeze.mix": 1.0, "freeze.hold": 1})
    y = run(rig, x, 128)[0]
    st = rig.proc.stages[0]
    assert st.captured
    assert np.abs(y[: int(0.15 * sr)]).max() < 1e-6  # nothing frozen before the sound
    f0, _ = _peak_hz(y[int(0.5 * sr) :], sr)
    assert abs(f0 - 440.0) < 2.0
