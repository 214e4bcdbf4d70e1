"""``resculpt.match`` = voice / all: the resculpt stage moves the input's median F0 onto the target's (and a
delta target's F0 and formant ratios) through the voice match (dsp/voice/match.py) before the model; timbre mode
leaves the pitch alone and is unchanged by the voice figures a target carries. The stage's processor contract
(streaming, allocation, latency) is tests/test_stage_conformance.py's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_voice_shift import FORMANT_HZ, _envelope_peak_hz, _f0, _tone

from resculpt.dsp.profile import Profile, empty_delta, fingerprint
from resculpt.dsp.stft import StreamingSTFT
from resculpt.dsp.voice.match import VoiceGoal, VoiceMatch
from resculpt.models import data
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.layout import Layout

SR = 16000
ENV = list(-30.0 - 1.2 * np.arange(32))


def _target(**dims) -> Profile:
    return Profile("target", {"centroid_hz": 800.0, "tilt_db_oct": -8.0, **dims}, band_env_db=ENV)


def _model(x, target, match, amount=1.0, sr=SR, **params):
    """The resculpt stage alone over ``x`` toward ``target``; ``params``: more ``resculpt.<name>`` values."""
    ch = Chain(Layout(spectral=("resculpt",)), sr, x.shape[0], 512)
    ch.params["resculpt.match"] = match
    ch.params["resculpt.amount"] = amount
    for k, v in params.items():
        ch.params[f"resculpt.{k}"] = v
    ch.set_target(target, engine="model")
    return ch(x)


@pytest.mark.parametrize("match", ("voice", "all"))
def test_a_120_hz_voice_leaves_at_the_targets_200_hz_median_under_match_voice_and_all(resculpt_bundle, match):
    """A harmonic voice at 120 Hz toward a target whose median F0 is 200 Hz comes out at 200 Hz within 3 %."""
    y = _model(_tone(SR, 120.0, 2.0), _target(f0_median_hz=200.0), match)
    assert abs(_f0(y, SR) / 200.0 - 1.0) < 0.03


def test_match_timbre_keeps_the_120_hz_pitch_and_ignores_the_targets_voice_figures(resculpt_bundle):
    """Timbre mode: the pitch stays within 1 %, and the output is bit-identical whether or not the target carries
    F0 and formant figures (they are the voice match's, not the timbre model's)."""
    x = _tone(SR, 120.0, 2.0)
    y = _model(x, _target(f0_median_hz=200.0, f1_hz=600.0, f2_hz=1700.0), "timbre")
    assert abs(_f0(y, SR) / 120.0 - 1.0) < 0.01
    np.testing.assert_array_equal(y, _model(x, _target(), "timbre"))


def test_amount_scales_the_pitch_move_geometrically(resculpt_bundle):
    """resculpt.amount 0.5 moves the median half way in semitones: 120 Hz toward 200 Hz leaves at 155 Hz (3 %)."""
    y = _model(_tone(SR, 120.0, 2.0), _target(f0_median_hz=200.0), "voice", amount=0.5)
    assert abs(_f0(y, SR) / math.sqrt(120.0 * 200.0) - 1.0) < 0.03


def test_a_delta_targets_f0_and_formant_ratios_move_a_synthetic_vowel(resculpt_bundle):
    """A delta asking F0 x 1.25 and formants x 1.2 (the voice match alone, no model): a 150 Hz vowel with its
    formant at 1 kHz leaves at 187.5 Hz (3 %) with its envelope peak within 6 % of 1.2 kHz."""
    d = empty_delta()
    d.dims.update(f0_median_hz=1.25, f1_hz=1.2, f2_hz=1.2, f3_hz=1.2)
    goal = VoiceGoal.from_profile(d)
    assert goal.relative and goal.formant_oct == pytest.approx(math.log2(1.2))
    vm = VoiceMatch()
    sec = StreamingSTFT("default", [vm])
    sec.prepare(SR, 512, 1)
    vm.set_goal(goal, 1.0)
    x = np.concatenate([_tone(SR, 150.0, 2.0), np.zeros((1, sec.latency_samples), np.float32)], axis=1)
    y = np.concatenate([sec.process(np.ascontiguousarray(x[:, i : i + 512])).copy()
                        for i in range(0, x.shape[1], 512)], axis=1)[:, sec.latency_samples :]
    assert abs(_f0(y, SR) / 187.5 - 1.0) < 0.03
    assert abs(_envelope_peak_hz(y, SR, 187.5) / (1.2 * FORMANT_HZ) - 1.0) < 0.06


@pytest.mark.parametrize("st", (-5.0, 4.0))
def test_the_pitch_override_moves_the_pitch_by_its_semitones_in_timbre_mode(resculpt_bundle, st):
    """resculpt.pitch_st moves a 150 Hz voice by its semitones (3 %) even in timbre mode, where the target's own
    voice figures move nothing; at 0 (the default) the render is bit-identical to one that never set it."""
    x = _tone(SR, 150.0, 2.0)
    y = _model(x, _target(f0_median_hz=200.0), "timbre", pitch_st=st)
    assert abs(_f0(y, SR) / (150.0 * 2 ** (st / 12)) - 1.0) < 0.03
    np.testing.assert_array_equal(_model(x, _target(), "timbre", pitch_st=0.0, formant_ratio=1.0),
                                  _model(x, _target(), "timbre"))


def test_the_pitch_override_adds_to_the_targets_median_in_voice_mode_and_scales_with_amount(resculpt_bundle):
    """In voice mode the override moves on from the target's median: 120 Hz toward a 200 Hz target with
    pitch_st -3 leaves at 200 * 2^(-3/12) Hz, and amount 0.5 takes half of the whole move in semitones (3 %)."""
    x = _tone(SR, 120.0, 2.0)
    y = _model(x, _target(f0_median_hz=200.0), "voice", pitch_st=-3.0)
    assert abs(_f0(y, SR) / (200.0 * 2 ** (-3 / 12)) - 1.0) < 0.03
    y = _model(x, _target(f0_median_hz=200.0), "voice", amount=0.5, pitch_st=-3.0)
    assert abs(_f0(y, SR) / (120.0 * (200.0 * 2 ** (-3 / 12) / 120.0) ** 0.5) - 1.0) < 0.03


@pytest.mark.parametrize("ratio", (0.85, 1.2))
def test_the_formant_override_moves_the_targets_envelope_peak_and_keeps_the_pitch(resculpt_bundle, ratio):
    """resculpt.formant_ratio warps the model's output: toward a target with a vowel's own envelope (its
    fingerprint: the model keeps the 1 kHz formant), the output's envelope peak sits at ratio x 1 kHz (6 %), the
    150 Hz pitch within 1 %."""
    x = _tone(SR, 150.0, 2.0)
    own = fingerprint(x[0], SR)
    y0 = _model(x, own, "timbre")
    assert abs(_envelope_peak_hz(y0, SR, 150.0) / FORMANT_HZ - 1.0) < 0.06
    y = _model(x, own, "timbre", formant_ratio=ratio)
    assert abs(_envelope_peak_hz(y, SR, 150.0) / (ratio * FORMANT_HZ) - 1.0) < 0.06
    assert abs(_f0(y, SR) / 150.0 - 1.0) < 0.01


def test_the_formant_override_after_a_voice_moved_up_keeps_the_envelope(resculpt_bundle, speech_clip):
    """Real speech (the bundled 93 Hz voice, band-limited at 8 kHz), 48 kHz, toward "clearer highs" with the pitch
    override at +10 st: adding the formant override at 1.05 moves the long-term band envelope (compared bands) by
    under 8 dB anywhere (the warp itself moves the band at the voice's bandwidth edge). Without the warp's floor
    this fails by far: the warp read the shifted, brightened output's envelope through the faint peaks between the
    moved harmonics and lifted the top bands by tens of dB."""
    from conftest import resample

    from resculpt.dsp.descriptors import describe
    from resculpt.dsp.profile import band_shape_diff, long_term_envelope

    sr = 48000
    x = resample(speech_clip[0], speech_clip[1], sr)[: 4 * sr][None]
    env = [long_term_envelope(_model(x, describe("clearer highs"), "timbre", sr=sr, pitch_st=10.0, formant_ratio=r)[0],
                              sr) for r in (1.0, 1.05)]
    assert np.nanmax(np.abs(band_shape_diff(env[1], env[0]))) < 8.0


@pytest.mark.parametrize("ratio", (0.8, 1.25))
def test_an_offline_render_with_the_formant_override_keeps_the_warp_and_lands_on_the_targets_loudness(
        resculpt_bundle, ratio):
    """render's passes correct the loudness, not the envelope, when the formant override warps it on purpose: toward
    the vowel's own profile, the output's envelope peak sits at ratio x 1 kHz (6 %) and its integrated loudness
    within 0.1 LU of the target's (correcting the envelope by the output's took part of the warp back and missed the
    loudness)."""
    from resculpt.plugin_host.render import render_with_target

    x = _tone(SR, 150.0, 2.0)
    own = fingerprint(x[0], SR)
    ch = Chain(Layout(spectral=("resculpt",)), SR, 1, 512)
    ch.params["resculpt.formant_ratio"] = ratio
    ch.set_target(own, engine="model")
    y, _ = render_with_target(ch, x, SR, own, 512)
    assert abs(_envelope_peak_hz(y, SR, 150.0) / (ratio * FORMANT_HZ) - 1.0) < 0.06
    assert abs(fingerprint(y[0], SR).dims["lufs_integrated"] - own.dims["lufs_integrated"]) < 0.1


def test_an_offline_render_keeps_a_delta_targets_formant_move_in_voice_mode(resculpt_bundle):
    """A delta asking formants x 0.85 under ``--match voice``, rendered offline in two passes: the 1 kHz envelope peak
    of a 150 Hz vowel leaves within 6 % of 850 Hz, the pitch within 1 % (a second pass that corrected the envelope
    toward the input's shape plus the delta's offsets took part of the warp back)."""
    from resculpt.plugin_host.render import render_with_target

    d = empty_delta()
    d.dims.update(f1_hz=0.85, f2_hz=0.85, f3_hz=0.85)
    x = _tone(SR, 150.0, 2.0)
    ch = Chain(Layout(spectral=("resculpt",)), SR, 1, 512)
    ch.params["resculpt.match"] = "voice"
    ch.set_target(d, engine="model")
    y, _ = render_with_target(ch, x, SR, d, 512, passes=2)
    assert abs(_envelope_peak_hz(y, SR, 150.0) / (0.85 * FORMANT_HZ) - 1.0) < 0.06
    assert abs(_f0(y, SR) / 150.0 - 1.0) < 0.01


def test_render_says_when_the_formants_were_moved_on_purpose(resculpt_bundle, tmp_path, capsys):
    """``render --match voice`` toward "deeper voice" (formants x 0.94) reports its envelope distance with a note
    that the formants moved on purpose (the distance to the target's shape then measures the move, not a miss); a
    timbre render toward the same description has no such note."""
    import soundfile as sf

    from resculpt.cli import main

    wav, prof = tmp_path / "v.wav", tmp_path / "deep.json"
    sf.write(wav, _tone(SR, 150.0, 2.0)[0], SR, subtype="FLOAT")
    assert main(["profile", "describe", "deeper voice", "-o", str(prof)]) == 0
    capsys.readouterr()
    note = "formants moved on purpose"
    assert main(["render", str(wav), "-o", str(tmp_path / "o.wav"), "--target", str(prof), "--engine", "model",
                 "--match", "voice"]) == 0
    assert note in capsys.readouterr().out
    assert main(["render", str(wav), "-o", str(tmp_path / "t.wav"), "--target", str(prof), "--engine", "model"]) == 0
    said = capsys.readouterr().out
    assert "band-envelope distance" in said and note not in said


def test_the_voice_overrides_need_a_target(resculpt_bundle):
    """Without a target the stage passes the input (delayed) whatever the overrides say: they move the target."""
    x = _tone(SR, 150.0, 1.0)
    ch = Chain(Layout(spectral=("resculpt",)), SR, 1, 512)
    ref = ch(x)
    ch = Chain(Layout(spectral=("resculpt",)), SR, 1, 512)
    ch.params["resculpt.pitch_st"] = 5.0
    np.testing.assert_array_equal(ch(x), ref)


def test_the_voice_match_tracks_a_steady_voices_median_within_1_percent():
    """The input's median F0 tracker (the F0 the move starts from) finds a steady 110 Hz and 230 Hz voice."""
    for f0 in (110.0, 230.0):
        vm = VoiceMatch()
        sec = StreamingSTFT("default", [vm])
        sec.prepare(SR, 512, 1)
        x = _tone(SR, f0, 1.5)
        for i in range(0, x.shape[1], 512):
            sec.process(np.ascontiguousarray(x[:, i : i + 512]))
        assert abs(vm.input_median_hz / f0 - 1.0) < 0.01, f0


def test_the_voice_match_tracks_a_voice_on_a_large_dc_offset():
    """A 120 Hz voice on a DC offset of 0.25 (a recording with a bad offset) is voiced and its median found within
    1 %: the F0 search correlates its input less a running DC estimate."""
    vm = VoiceMatch()
    sec = StreamingSTFT("default", [vm])
    sec.prepare(SR, 512, 1)
    x = _tone(SR, 120.0, 1.5) + np.float32(0.25)
    for i in range(0, x.shape[1], 512):
        sec.process(np.ascontiguousarray(x[:, i : i + 512]))
    assert abs(vm.input_median_hz / 120.0 - 1.0) < 0.01


def _glide(f0: float, depth_oct: float, seconds: float, rate_hz: float = 0.7) -> np.ndarray:
    """(1, n) float32: a harmonic voice whose F0 swings f0 * 2^(depth sin(2 pi rate t)) (intonation), 1/h
    amplitudes up to 0.45 SR, peak 0.3."""
    t = np.arange(int(SR * seconds)) / SR
    ph = 2 * np.pi * np.cumsum(f0 * 2.0 ** (depth_oct * np.sin(2 * np.pi * rate_hz * t))) / SR
    y = sum(np.sin(h * ph) / h for h in range(1, int(0.45 * SR / (f0 * 2 ** depth_oct))))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)[None]


def _voice_match(x, goal):
    vm = VoiceMatch()
    sec = StreamingSTFT("default", [vm])
    sec.prepare(SR, 512, 1)
    vm.set_goal(goal, 1.0)
    x = np.concatenate([x, np.zeros((1, sec.latency_samples), np.float32)], axis=1)
    y = np.concatenate([sec.process(np.ascontiguousarray(x[:, i : i + 512])).copy()
                        for i in range(0, x.shape[1], 512)], axis=1)[:, sec.latency_samples :]
    return y, vm


def _range_st(y, skip_s: float) -> float:
    from resculpt.dsp.features import Pitch, analyze

    f = analyze(Pitch(), y, SR)[int(skip_s * SR / 80) :, 0]
    f = f[np.isfinite(f)]
    return float(12.0 * np.log2(np.percentile(f, 90) / np.percentile(f, 10)))


@pytest.mark.parametrize("ratio", (0.5, 1.5))
def test_an_f0_range_goal_scales_the_intonation_onto_the_targets_range(ratio):
    """A voice swinging +-1/4 octave around 140 Hz (p90 - p10 about 5.7 semitones) toward a target range of
    0.5x or 1.5x of it: after the tracker's first second of voicing, the output's YIN range is within 15 % of
    the target's, and the input's own range is what the tracker measured (within 10 %)."""
    x = _glide(140.0, 0.25, 6.0)
    r_in = _range_st(x, 2.0)
    y, vm = _voice_match(x, VoiceGoal(range_st=ratio * r_in))
    assert abs(vm.range_st / r_in - 1.0) < 0.10
    assert abs(_range_st(y, 2.0) / (ratio * r_in) - 1.0) < 0.15


def test_a_level_goal_without_a_range_goal_keeps_the_intonation_within_10_percent():
    """An F0 level goal alone keeps the output's range within 10 % of the input's (the level move's running
    median follows a 1.4 s intonation swing a little: measured -8 %); with no goal the output's YIN range is
    the input's to 1 %."""
    x = _glide(140.0, 0.25, 6.0)
    r_in = _range_st(x, 2.0)
    y, _ = _voice_match(x, VoiceGoal(f0_oct=math.log2(140.0)))
    assert abs(_range_st(y, 2.0) / r_in - 1.0) < 0.10
    y, _ = _voice_match(x, None)
    assert abs(_range_st(y, 2.0) / r_in - 1.0) < 0.01


@pytest.mark.skipif(not data.have_data(), reason="shared data not found (set RESCULPT_DATA)")
def test_on_a_real_speaker_pair_match_voice_brings_the_output_median_f0_near_the_other_speakers(resculpt_bundle):
    """Two val-split speakers 3-10 semitones apart (the pair farthest apart within that: the voice DSP shifts at
    most 12 semitones, and a low voice an octave up is its known weak point), 6 s at 16 kHz: under --match voice
    the output's fingerprint median F0 is within a third of the input's distance to the target speaker's; under
    --match timbre it stays where the input was (within 1 semitone)."""
    seen, clips = set(), []
    for it in data.select("speech", "val"):
        if it.duration_s >= 6.0 and it.speaker not in seen:
            seen.add(it.speaker)
            x, _ = data.load(it, sample_rate=SR)
            clips.append(np.ascontiguousarray(x[None, : 6 * SR], np.float32))
    fps = [fingerprint(c, SR) for c in clips[:8]]
    med = [p.dims["f0_median_hz"] for p in fps]
    pairs = [(abs(12.0 * math.log2(a / b)), i, j) for i, a in enumerate(med) for j, b in enumerate(med)
             if i != j and 3.0 <= abs(12.0 * math.log2(a / b)) <= 10.0]
    err_in, hi, lo = max(pairs)
    x, target = clips[hi], fps[lo]

    def err(y):
        return abs(12.0 * math.log2(fingerprint(y, SR).dims["f0_median_hz"] / med[lo]))

    assert err(_model(x, target, "voice")) < err_in / 3.0
    assert abs(err(_model(x, target, "timbre")) - err_in) < 1.0


def _pause_spectrum(pause_db):
    """A 200 Hz voice (0-1.5 s and 2.5-3 s) over a background of 60 Hz hum (-30 dB re the voice's peak) and white
    noise (-60 dB), moved down 10 st by the voice match alone; returns (input, output) mean magnitude spectra (dB,
    50 Hz bins) over the pause's middle (1.75-2.35 s), and the aligned output (1, n)."""
    sr = SR
    n = 3 * sr
    t = np.arange(n) / sr
    rng = np.random.default_rng(3)
    bg = 0.3 * 10 ** (-30 / 20) * np.sin(2 * np.pi * 60.0 * t) + 0.3 * 10 ** (-60 / 20) * rng.standard_normal(n)
    v = np.zeros(n)
    v[: int(1.5 * sr)] = _tone(sr, 200.0, 1.5)[0]
    v[int(2.5 * sr):] = _tone(sr, 200.0, 0.5)[0]
    x = (v + bg).astype(np.float32)[None]
    vm = VoiceMatch()
    vm.pause_db = pause_db
    sec = StreamingSTFT("default", [vm])
    sec.prepare(sr, 512, 1)
    vm.set_goal(VoiceGoal(f0_oct=-10.0 / 12.0, relative=True), 1.0)
    xp = np.concatenate([x, np.zeros((1, sec.latency_samples), np.float32)], axis=1)
    y = np.concatenate([sec.process(np.ascontiguousarray(xp[:, i : i + 512])).copy()
                        for i in range(0, xp.shape[1], 512)], axis=1)[:, sec.latency_samples :]
    w = np.hanning(320)

    def spec(z):
        fr = [np.abs(np.fft.rfft(z[0, i : i + 320] * w)) for i in range(int(1.75 * sr), int(2.35 * sr), 80)]
        return 20 * np.log10(np.mean(fr, axis=0) + 1e-12)

    return spec(x), spec(y), y


def test_a_pause_keeps_its_hum_and_its_noise_level_when_the_voice_is_moved_down_10_semitones():
    """The background between phrases is not pitch-shifted with the voice: over the pause the 60 Hz hum's bin
    stays within 1 dB and the noise from 100 Hz to 700 Hz within 2 dB of the input's. Shifted with the voice
    (pause_db None), the hum's bin drops and the noise, raised onto the envelope the hum smears up, does not.
    The phrase after the pause is moved again (its F0 within 3 % of 200 Hz - 10 st)."""
    xi, yo, y = _pause_spectrum(VoiceMatch.pause_db)
    assert abs(yo[1] - xi[1]) < 1.0
    assert np.max(np.abs(yo[2:15] - xi[2:15])) < 2.0
    assert abs(_f0(y[:, int(2.5 * SR):], SR) / (200.0 * 2 ** (-10 / 12)) - 1.0) < 0.03
    xi, yo, _ = _pause_spectrum(None)
    assert abs(yo[1] - xi[1]) > 1.0 or np.max(np.abs(yo[2:15] - xi[2:15])) > 2.0


def test_soft_voice_under_the_pause_level_is_moved_with_the_voice(monkeypatch):
    """A 200 Hz voice, then the same voice 20 dB quieter in noise (periodic at AnonVoice's 0.5 correlation, under
    the voice match's stricter 0.8, and more than 12 dB under the speaker's level), moved down 10 st: over the quiet
    stretch the output's 112 Hz fundamental stands 10 dB over 200 Hz. Treated as a pause (the refused frames not
    flagged as voice), the quiet stretch keeps its 200 Hz, 10 dB over 112 Hz."""
    rng = np.random.default_rng(5)
    quiet = 0.1 * _tone(SR, 200.0, 1.5)[0] + 0.01 * rng.standard_normal(int(1.5 * SR))
    x = np.concatenate([_tone(SR, 200.0, 1.5)[0], quiet]).astype(np.float32)[None]
    goal = VoiceGoal(f0_oct=-10.0 / 12.0, relative=True)
    moved = 200.0 * 2 ** (-10 / 12)

    def level_db(y, f):
        seg = y[0, int(1.8 * SR) : int(2.9 * SR)].astype(np.float64)
        s = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
        return 20 * np.log10(s[np.abs(np.fft.rfftfreq(seg.size, 1 / SR) - f) <= 3.0].max())

    y, _ = _voice_match(x, goal)
    assert level_db(y, moved) - level_db(y, 200.0) > 10.0
    pick = VoiceMatch._pick

    def no_soft_voice(self, n, e):
        f = pick(self, n, e)
        self._weak_last = False
        return f

    monkeypatch.setattr(VoiceMatch, "_pick", no_soft_voice)
    y, _ = _voice_match(x, goal)
    assert level_db(y, 200.0) - level_db(y, moved) > 10.0


def _formant_oct(p: Profile, ref: Profile) -> float:
    """Mean log2 ratio of ``p``'s F1..F3 to ``ref``'s."""
    return float(np.mean([math.log2(p.dims[k] / ref.dims[k]) for k in ("f1_hz", "f2_hz", "f3_hz")]))


def _vowel(f0: float, scale: float = 1.0, sec: float = 3.0) -> np.ndarray:
    """(1, n) float32 at SR: a pulse train at ``f0`` (2 % vibrato at 3 Hz, a little noise) through three formant
    resonators at 700, 1700 and 2800 Hz (bandwidths 80, 100, 150 Hz), every frequency times ``scale``: the same
    vowel from a vocal tract ``scale`` times shorter."""
    from scipy.signal import lfilter

    n = int(sec * SR)
    ph = np.cumsum(f0 * (1.0 + 0.02 * np.sin(2 * np.pi * 3.0 * np.arange(n) / SR)) / SR)
    e = np.zeros(n)
    e[np.flatnonzero(np.diff(np.floor(ph)) > 0)] = 1.0
    y = lfilter([1.0], [1.0, -0.97], e) + 0.003 * np.random.default_rng(0).standard_normal(n)
    for f, bw in ((700.0, 80.0), (1700.0, 100.0), (2800.0, 150.0)):
        r, th = math.exp(-math.pi * bw * scale / SR), 2.0 * math.pi * f * scale / SR
        y = lfilter([1.0 - r], [1.0, -2.0 * r * math.cos(th), r * r], y)
    return (0.1 * y / np.max(np.abs(y))).astype(np.float32)[None]


def test_an_offline_render_moves_an_absolute_targets_formants_in_voice_mode_only(resculpt_bundle):
    """A 150 Hz vowel toward the fingerprint of the same vowel from a vocal tract 0.85 times as long (formants x
    0.85, envelope with them, same pitch): an offline render under ``--match voice`` measures the whole input's
    median formants first and warps the voice by their ratio to the target's (``info["formant_ratio"]``, the
    median of the two fingerprints' F1..F3 ratios), which lands the output's formants within 10 % (in log
    frequency) of the move the target asks; ``--match timbre`` (the model's band gains alone, no warp) misses it
    by at least twice as much; a live stream, which has not heard the whole input, primes no warp."""
    from resculpt.plugin_host.render import render_with_target, target_stage

    x = _vowel(150.0)
    fp = fingerprint(x, SR)
    t = fingerprint(_vowel(150.0, 0.85), SR)
    t.kind = "target"
    want = _formant_oct(t, fp)
    assert want < math.log2(0.88)
    err = {}
    for match in ("voice", "timbre"):
        ch = Chain(Layout(spectral=("resculpt",)), SR, 1, 4096)
        ch.params["resculpt.match"] = match
        ch.set_target(t, engine="model")
        y, info = render_with_target(ch, x, SR, t, 4096)
        err[match] = abs(_formant_oct(fingerprint(y, SR), fp) - want)
        if match == "voice":
            ratios = [math.log2(t.dims[k] / fp.dims[k]) for k in ("f1_hz", "f2_hz", "f3_hz")]
            assert math.log2(info["formant_ratio"]) == pytest.approx(float(np.median(ratios)), rel=1e-9)
        else:
            assert "formant_ratio" not in info
    assert err["voice"] < 0.1 * abs(want)
    assert err["timbre"] > 2.0 * err["voice"]
    ch = Chain(Layout(spectral=("resculpt",)), SR, 1, 4096)
    ch.params["resculpt.match"] = "voice"
    ch.set_target(t, engine="model")
    _, info = render_with_target(ch, x, SR, t, 4096, passes=1, prime=False)
    assert "formant_ratio" not in info and math.isnan(target_stage(ch)._voice.formant_oct_abs)


def test_render_says_by_how_much_it_warped_an_absolute_targets_formants(resculpt_bundle, tmp_path, capsys):
    """``render --match voice`` toward a fingerprint file of the same vowel from a shorter vocal tract prints the
    ratio of the formants it moved toward; ``--match timbre`` prints none."""
    import soundfile as sf

    from resculpt.cli import main

    wav, prof = tmp_path / "v.wav", tmp_path / "short.json"
    sf.write(wav, _vowel(150.0)[0], SR, subtype="FLOAT")
    t = fingerprint(_vowel(150.0, 1.15), SR)
    t.save(prof)
    said = {}
    for match in ("voice", "timbre"):
        assert main(["render", str(wav), "-o", str(tmp_path / f"{match}.wav"), "--target", str(prof), "--engine",
                     "model", "--match", match]) == 0
        said[match] = capsys.readouterr().out
    assert "voice match: the target's formants are x1.1" in said["voice"]
    assert "voice match" not in said["timbre"]
