"""The McAdams anonymizer (dsp/voice/mcadams.py) against the VoicePrivacy B2 formulation.

The stage's streaming/allocation/latency contract is checked by tests/test_stage_conformance.py;
here: that it moves formants where φ -> φ^α puts them, as the reference algorithm does.
"""

from __future__ import annotations

import numpy as np
import pytest
from resculpt.dsp.features.formants import levinson
from resculpt.dsp.params import ParamTable
from resculpt.dsp.stft import StreamingSTFT
from resculpt.dsp.voice import mcadams
from resculpt.plugin_host import catalog
from scipy.signal import lfilter

VOWEL_A = ((730.0, 60.0), (1090.0, 90.0), (2440.0, 120.0))  # /a/: formant (Hz), bandwidth (Hz)


def _resonators(x, sr, formants):
    for f, b in formants:
        r = np.exp(-np.pi * b / sr)
        x = lfilter([1.0], [1.0, -2.0 * r * np.cos(2 * np.pi * f / sr), r * r], x)
    return x


def whispered_vowel(sr, seconds=2.0, formants=VOWEL_A, seed=0):
    """(n,) float32: white noise through the vowel's resonators (a smooth envelope: exact formants)."""
    x = _resonators(np.random.default_rng(seed).standard_normal(int(sr * seconds)), sr, formants)
    return (0.1 * x / np.std(x)).astype(np.float32)


def voiced_vowel(sr, seconds=2.0, f0=110.0, formants=VOWEL_A):
    """(n,) float32: a 110 Hz pulse train through the vowel's resonators."""
    e = np.zeros(int(sr * seconds))
    e[:: int(round(sr / f0))] = 1.0
    x = _resonators(lfilter([1.0], [1.0, -0.9], e), sr, formants)  # -6 dB/oct glottal tilt
    return (0.1 * x / np.std(x)).astype(np.float32)


def measured_formants(y, sr, order=8, fmax=5000.0):
    """Formant frequencies (Hz, ascending) of a steady signal: LPC of its 0..fmax band (whole signal)."""
    n = len(y)
    Y = np.fft.rfft(y * np.hanning(n))
    df = sr / n
    k = int(fmax / df)
    r = np.fft.irfft(np.abs(Y[: k + 1]) ** 2, 2 * k)[: order + 1]
    z = np.roots(levinson(r, order))
    z = z[z.imag > 0]
    fs = 2 * k * df
    f = np.angle(z) * fs / (2 * np.pi)
    bw = -np.log(np.abs(z)) * fs / np.pi
    return np.sort(f[(bw < 500.0) & (f > 150.0)])


def run_stage(x, sr, alpha, config="default"):
    """The stage alone in a StreamingSTFT, blocks of 256, output latency-aligned to ``x``."""
    table = ParamTable(catalog.all_param_specs())
    table.set_many({"mcadams.alpha": alpha}, notify=False)
    table.prepare(sr)
    table.snap()
    sec = StreamingSTFT(config, [mcadams.McAdams(table)], table=table)
    sec.prepare(sr, 256, 1)
    lat = sec.latency_samples
    buf = np.concatenate([x, np.zeros(lat, np.float32)])[None].copy()
    for i in range(0, buf.shape[1], 256):
        sec.process(buf[:, i : i + 256])
    return buf[0, lat:], sec


def reference_b2(x, sr, alpha, winlen_ms=20.0, shift_ms=10.0, order=20):
    """The VoicePrivacy 2020 B2 algorithm (anonymise_dir_mcadams.py), LPC by the autocorrelation method
    instead of librosa's Burg, without the final peak normalisation: per 20 ms frame every 10 ms, poles of
    the order-20 LPC, complex poles' angles φ -> φ^α, the frame's residual through the new all-pole filter,
    sqrt-Hann windowed twice, overlap-added."""
    winlen = int(winlen_ms * 1e-3 * sr)
    shift = int(shift_ms * 1e-3 * sr)
    w = np.hanning(winlen)
    win = np.sqrt(w / (w.sum() / shift))
    out = np.zeros(len(x))
    for start in range(0, len(x) - winlen, shift):
        frame = x[start : start + winlen] * win
        r = np.correlate(frame, frame, "full")[winlen - 1 : winlen + order]
        if r[0] <= 0:
            continue
        a = levinson(r, order)
        poles = np.roots(a)
        cplx = np.abs(poles.imag) > 1e-8
        ang = np.angle(poles[cplx])
        poles[cplx] = np.abs(poles[cplx]) * np.exp(1j * np.sign(ang) * np.abs(ang) ** alpha)
        a_new = np.real(np.poly(poles))
        res = lfilter(a, [1.0], frame)
        out[start : start + winlen] += lfilter([1.0], a_new, res) * win
    return out


@pytest.mark.parametrize("sr", [16000, 48000])
@pytest.mark.parametrize("alpha", [0.8, 0.6])
def test_formants_of_a_whispered_vowel_move_as_phi_to_the_alpha_predicts(sr, alpha):
    """Each formant of a noise-excited /a/ moves to 16000/(2π)·(2π·F/16000)^α (φ in radians at 16 kHz, as
    in the reference), within 2 %, at 16 and 48 kHz alike (730 Hz -> 930 Hz at α = 0.8)."""
    x = whispered_vowel(sr)
    y, _ = run_stage(x, sr, alpha)
    steady = slice(sr // 4, None)
    f_in = measured_formants(x[steady], sr)
    f_out = measured_formants(y[steady], sr)
    assert len(f_in) == 3 and len(f_out) == 3, (f_in, f_out)
    np.testing.assert_allclose(f_in, [f for f, _ in VOWEL_A], rtol=0.02)
    np.testing.assert_allclose(f_out, mcadams.warp_hz(f_in, alpha), rtol=0.02)


def test_voiced_vowel_formants_match_the_reference_algorithm():
    """On a 110 Hz voiced /a/ at 16 kHz the stage and the reference B2 algorithm (20 ms / 10 ms frames,
    time-domain residual resynthesis) put the formants at the same frequencies, within 3 %."""
    sr = 16000
    x = voiced_vowel(sr)
    y, _ = run_stage(x, sr, 0.8)
    ref = reference_b2(x.astype(np.float64), sr, 0.8)
    steady = slice(sr // 4, -sr // 4)
    f_stage, f_ref = measured_formants(y[steady], sr), measured_formants(ref[steady], sr)
    assert len(f_stage) == len(f_ref) >= 2, (f_stage, f_ref)
    np.testing.assert_allclose(f_stage, f_ref, rtol=0.03)
    # and both moved the first formant up by roughly what φ^α predicts (730 -> ~930 Hz)
    assert f_ref[0] > 850.0 and f_stage[0] > 850.0


def test_alpha_one_leaves_the_signal_as_it_was():
    """α = 1 is the identity: the output is the input delayed by the section's latency (float32 rounding)."""
    x = whispered_vowel(16000, seconds=0.5)
    y, _ = run_stage(x, 16000, 1.0)
    np.testing.assert_allclose(y, x, atol=1e-5)


def test_level_is_kept_within_2_db_and_latency_is_under_20_ms_at_48k():
    """|A|/|A'| has a 0 dB log-mean (both polynomials monic and minimum-phase): a vowel's RMS moves by less
    than 2 dB; the section's latency with the stage is under 20 ms at 48 kHz (default) and 10 ms (low-latency)."""
    sr = 48000
    x = voiced_vowel(sr, seconds=1.0)
    for config, limit_ms in (("default", 20.0), ("low-latency", 10.0)):
        y, sec = run_stage(x, sr, 0.8, config)
        assert sec.latency_samples <= limit_ms * 1e-3 * sr
        change_db = 20 * np.log10(np.std(y[sr // 4 :]) / np.std(x[sr // 4 :]))
        assert abs(change_db) < 2.0, (config, change_db)


def test_warp_hz_is_the_reference_angle_map():
    """warp_hz: 1 rad at 16 kHz (2546 Hz) is the fixed point; below it α < 1 moves up, above it down."""
    fixed = 16000 / (2 * np.pi)
    np.testing.assert_allclose(mcadams.warp_hz(fixed, 0.8), fixed)
    assert mcadams.warp_hz(700.0, 0.8) == pytest.approx(16000 / (2 * np.pi) * (2 * np.pi * 700 / 16000) ** 0.8)
    assert mcadams.warp_hz(4000.0, 0.8) < 4000.0
