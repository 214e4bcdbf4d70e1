"""The ``voice`` stage (dsp/voice/shift.py) on synthetic voiced sounds: a harmonic tone whose harmonics
follow one resonance (a formant at 1 kHz, Q 5), so the pitch and the envelope peak are both known.

Streaming == offline for any block partition, reset, NaN/Inf, every rate, allocation-free processing and
latency are checked for the slot by tests/test_stage_conformance.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from stage_testlib import make_section, run

from resculpt.dsp.features import Pitch, analyze

RATES = (16000, 48000)
FORMANT_HZ = 1000.0


def _tone(sr: int, f0: float, seconds: float = 1.0) -> np.ndarray:
    """(1, n) float32: harmonics of f0 up to 0.45 sr, amplitudes on a 2nd-order resonance at FORMANT_HZ
    (Q 5) with a gentle tilt, fixed random phases, peak 0.3."""
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(1)
    y = np.zeros_like(t)
    for h in range(1, int(0.45 * sr / f0)):
        f = h * f0
        a = 1.0 / np.sqrt((1 - (f / FORMANT_HZ) ** 2) ** 2 + (f / (5.0 * FORMANT_HZ)) ** 2) / (1 + f / 3000)
        y += a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)[None]


def _render(x, sr, params, stft="default"):
    return run(make_section(["voice"], sr, 1, params, stft=stft), x, 512)


def _f0(y, sr) -> float:
    """Median YIN F0 (Hz) of the frames after the first 0.25 s (the section's and YIN's start-up)."""
    f = analyze(Pitch(fmin_hz=40.0), y, sr)[:, 0]
    return float(np.nanmedian(f[50:]))


def _envelope_peak_hz(y, sr, f0) -> float:
    """Frequency of the envelope's peak, from the harmonic amplitudes of the last 0.7 s (Hann, the largest
    magnitude within 4 Hz of each harmonic h f0 below 4 kHz): the vertex of a least-squares parabola (dB
    over Hz) through the harmonics within 6 dB of the loudest."""
    seg = y[0, -int(0.7 * sr):].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    df = sr / seg.size
    hz = np.arange(1, int(4000 / f0)) * f0
    amp = np.array([spec[int((f - 4) / df): int((f + 4) / df) + 2].max() for f in hz])
    db = 20 * np.log10(amp)
    top = db > db.max() - 6.0
    c2, c1, _ = np.polyfit(hz[top], db[top], 2)
    return float(-c1 / (2 * c2))


def _cents(a, b) -> float:
    return float(1200 * np.log2(a / b))


@pytest.mark.parametrize("st", [-12.0, -7.0, -3.0, 4.0, 7.0, 12.0])
@pytest.mark.parametrize("sr", RATES)
def test_pitch_shift_lands_on_the_requested_f0_within_3_cents(sr, st):
    """A 150 Hz harmonic tone shifted by st semitones has its median F0 (YIN) at 150 * 2^(st/12) within 3
    cents, at 16 and 48 kHz."""
    x = _tone(sr, 150.0)
    y = _render(x, sr, {"voice.pitch_st": st})
    err = _cents(_f0(y, sr), _f0(x, sr)) - 100 * st
    assert abs(err) < 3.0, f"{sr} Hz, {st:+} st: F0 off by {err:+.2f} cents"


@pytest.mark.parametrize("ratio", [0.8, 1.25])
@pytest.mark.parametrize("sr", RATES)
def test_formant_shift_moves_the_envelope_peak_by_the_ratio_and_keeps_f0(sr, ratio):
    """formant_ratio moves the envelope peak (1 kHz formant of a 120 Hz tone) to ratio x its frequency
    within 6 % (the measured peak rides on harmonics 120 Hz apart, and the envelope is smoothed to ~500 Hz
    detail), while the F0 stays within 1 cent."""
    x = _tone(sr, 120.0)
    y = _render(x, sr, {"voice.formant_ratio": ratio})
    moved = _envelope_peak_hz(y, sr, 120.0) / _envelope_peak_hz(x, sr, 120.0)
    assert abs(moved / ratio - 1) < 0.06, f"{sr} Hz: envelope peak moved x{moved:.3f}, asked x{ratio}"
    assert abs(_cents(_f0(y, sr), _f0(x, sr))) < 1.0


@pytest.mark.parametrize("st", [-5.0, 5.0])
@pytest.mark.parametrize("sr", RATES)
def test_pitch_shift_keeps_the_envelope_peak_where_it_was(sr, st):
    """Shifting the pitch of a 120 Hz tone by +-5 st leaves its 1 kHz envelope peak within 6 %, where a
    resampling shift would move it by 33 % (+5 st) or 25 % (-5 st)."""
    x = _tone(sr, 120.0)
    y = _render(x, sr, {"voice.pitch_st": st})
    r = 2 ** (st / 12)
    moved = _envelope_peak_hz(y, sr, 120.0 * r) / _envelope_peak_hz(x, sr, 120.0)
    assert abs(moved - 1) < 0.06, f"{sr} Hz, {st:+} st: envelope peak moved x{moved:.3f}"


@pytest.mark.parametrize("stft", ["default", "low-latency"])
def test_neutral_settings_are_bit_transparent(stft):
    """pitch_st 0 and formant_ratio 1 (the defaults) give exactly the section's identity output, also after
    a shift has run and been set back to neutral (the stage leaves the spectrum untouched)."""
    x = _tone(48000, 150.0, 0.5)
    ident = run(make_section([], 48000, 1, stft=stft), x, 512)
    rig = make_section(["voice"], 48000, 1, stft=stft)
    np.testing.assert_array_equal(run(rig, x, 512), ident)
    rig.proc.reset()  # the frame grid starts again at the first sample, as in ``ident``
    n = x.shape[1]
    back = run(rig, x, 512, events=[(0, {"voice.pitch_st": 7.0, "voice.formant_ratio": 1.3}),
                                    (n // 2, {"voice.pitch_st": 0.0, "voice.formant_ratio": 1.0})])
    # From one window after the switch back, every frame is the input's own.
    w = rig.proc.n_fft
    np.testing.assert_array_equal(back[:, n // 2 + w:], ident[:, n // 2 + w:])


def test_silence_stays_exactly_silent_while_shifting():
    """All-zero input with a pitch and formant shift set gives all-zero output (no floor, no noise), and a
    tone after the silence comes out shifted."""
    sr = 48000
    x = np.zeros((1, sr // 2), np.float32)
    tone = _tone(sr, 150.0, 0.5)
    y = _render(np.concatenate([x, tone], 1), sr, {"voice.pitch_st": 7.0, "voice.formant_ratio": 1.2})
    assert not y[:, : sr // 2 - 1024].any()
    assert abs(_cents(_f0(y[:, sr // 2:], sr), 150.0) - 700) < 5.0
