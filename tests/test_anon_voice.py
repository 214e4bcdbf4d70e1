"""The ``anon`` pseudo-speaker stage (dsp/voice/anon.py) on synthetic voiced sounds: harmonic tones on one
resonance (tests/test_voice_shift.py's ``_tone``), whose F0 is known.

Streaming == offline for any block partition, reset, NaN/Inf, every rate, allocation-free processing and
latency are checked for the slot by tests/test_stage_conformance.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from stage_testlib import make_section, run
from test_voice_shift import _f0, _tone

from resculpt.dsp.voice import anon, kernels

RATES = (16000, 48000)
STILL = {"anon.pitch_range": 1.0, "anon.timbre_pct": 0.0, "anon.formant_follow": 0.0, "anon.warp_alpha": 1.0}


def _stage(rig):
    return rig.proc.stages[0]


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("f0", (110.0, 230.0))
def test_tracked_median_f0_is_the_tone_f0_within_2_percent(sr, f0):
    """The stage's F0 search and median tracker find a steady harmonic tone's F0."""
    rig = make_section(["anon"], sr, 1, STILL)
    run(rig, _tone(sr, f0, 1.5), 512)
    assert abs(_stage(rig).median_hz / f0 - 1.0) < 0.02


@pytest.mark.parametrize("sr", RATES)
def test_different_input_pitches_come_out_at_the_target_pitch(sr):
    """Normalisation, not a shift: tones at 110 Hz and 230 Hz both leave at anon.f0_hz (within 3 %)."""
    target = 160.0
    for f0 in (110.0, 230.0):
        y = run(make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": target}), _tone(sr, f0, 1.5), 512)
        assert abs(_f0(y, sr) / target - 1.0) < 0.03, f0


@pytest.mark.parametrize("sr", RATES)
def test_a_voice_on_a_large_dc_offset_still_comes_out_at_the_target_pitch(sr):
    """A 180 Hz tone on a DC offset of 0.25 (a recording with a bad offset) leaves at anon.f0_hz 95 Hz (within
    3 %, read without the offset): the F0 search correlates its input less a running DC estimate. Correlated with
    the offset, no frame was voiced and the voice kept its own pitch."""
    x = _tone(sr, 180.0, 1.5) + np.float32(0.25)
    y = run(make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": 95.0}), x, 512)
    assert abs(_f0(y - y.mean(), sr) / 95.0 - 1.0) < 0.03


@pytest.mark.parametrize("sr", RATES)
def test_a_dc_offset_does_not_come_and_go_with_the_pauses(sr):
    """A 180 Hz voice in phrases (0-1 s, 1.5-2.5 s, 3-3.5 s) with silent pauses, on a 0.2 DC offset: the output's
    0-20 Hz band (less its mean) stays 30 dB under the voice. Shifted frames drop the DC bin and a pause's frames
    had kept it, so the offset switched with the pauses: a thump at every phrase."""
    from scipy.signal import butter, sosfilt

    n = int(3.5 * sr)
    x = np.zeros((1, n), np.float32)
    for a, b in ((0.0, 1.0), (1.5, 2.5), (3.0, 3.5)):
        x[:, int(a * sr) : int(b * sr)] = _tone(sr, 180.0, b - a)
    y = run(make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": 95.0}), x + np.float32(0.2), 512)[0]
    low = sosfilt(butter(4, 20.0, "lowpass", fs=sr, output="sos"), y - y.mean())
    assert 10 * np.log10(np.mean(low**2) / np.mean(x**2)) < -30.0


def _pop_tone(sr: int, f0: float, tilt_db_oct: float, seconds: float = 1.5) -> np.ndarray:
    """(1, n) float32: harmonics of f0 on the average speaker's envelope (anon.POP_DB) tilted by
    ``tilt_db_oct`` above 500 Hz, fixed random phases, peak 0.3."""
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(2)
    y = np.zeros_like(t)
    for h in range(1, int(min(0.45 * sr, 7500.0) / f0)):
        f = h * f0
        db = np.interp(f, anon.POP_HZ, anon.POP_DB) + tilt_db_oct * np.log2(max(f, 500.0) / 500.0)
        y += 10 ** (db / 20) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)[None]


def _slope_db_oct(y, sr) -> float:
    """Long-term level of 2-4 kHz minus 0.5-1 kHz, per octave (2 octaves apart), after the first 0.5 s."""
    s = np.abs(np.fft.rfft(y[0, sr // 2 :])) ** 2
    fr = np.fft.rfftfreq(y.shape[1] - sr // 2, 1 / sr)
    return float(10 * np.log10(s[(fr > 2000) & (fr < 4000)].sum() / s[(fr > 500) & (fr < 1000)].sum()) / 2.0)


@pytest.mark.parametrize("sr", RATES)
def test_timbre_replacement_brings_two_tilts_onto_the_target(sr):
    """anon.timbre_pct 100: a dark (-3 dB/oct) and a bright (+3 dB/oct) voice both come out with the target's
    long-term slope: their difference shrinks to under a quarter of the inputs' 6 dB/oct."""
    p = {**STILL, "anon.f0_hz": 150.0, "anon.timbre_pct": 100.0}
    dark, bright = _pop_tone(sr, 150.0, -3.0), _pop_tone(sr, 150.0, 3.0)
    before = _slope_db_oct(bright, sr) - _slope_db_oct(dark, sr)
    after = (_slope_db_oct(run(make_section(["anon"], sr, 1, p), bright, 512), sr)
             - _slope_db_oct(run(make_section(["anon"], sr, 1, p), dark, 512), sr))
    assert before > 5.0 and abs(after) < 0.25 * before


def test_a_seed_gives_the_same_voice_every_time_and_another_seed_another():
    """anon.seed > 0: the same seed renders bit-identically, a different one differently, and seed 0 is the
    preset's voice as set."""
    sr, x = 16000, _tone(16000, 140.0, 1.0)
    out = {s: run(make_section(["anon"], sr, 1, {"anon.seed": s}), x, 512) for s in (0, 7, 7.0, 8)}
    assert np.array_equal(out[7], out[7.0])
    assert not np.allclose(out[7], out[8], atol=1e-3)
    assert not np.allclose(out[0], out[7], atol=1e-3)


def test_drawn_pseudo_speakers_stay_in_natural_ranges():
    """draw(): over 2000 seeds at spread 1, F0 within +-12 semitones and 70-300 Hz, formant scale within the
    pitch's quarter +-20 %, alpha within -0.15 .. +0.05, tilt within +-6 dB/oct (the parameter's range); the
    draws spread over each range. At spread 0.5 every range is half as wide."""
    for spread in (1.0, 0.5):
        d = np.array([anon.draw(s, 140.0, 1.0, 0.85, -1.0, spread) for s in range(1, 2001)])
        st = 12 * np.log2(d[:, 0] / 140.0)
        lim = 12.0 * spread
        assert np.all((d[:, 0] >= 70.0) & (d[:, 0] <= 300.0))
        assert np.all(np.abs(st) <= lim + 1e-9) and st.max() > 0.9 * lim
        assert st.min() < (-0.9 * lim if spread < 1.0 else -11.5)  # 140 Hz -12 st is 70 Hz, the floor
        fr = d[:, 1] / 2.0 ** (0.25 * st / 12.0)
        assert np.all(np.abs(fr - 1.0) <= 0.2 * spread + 1e-6) and np.ptp(fr) > 0.36 * spread
        lo, hi = 0.85 - 0.15 * spread, 0.85 + 0.05 * spread
        assert np.all((d[:, 2] >= lo - 1e-9) & (d[:, 2] <= hi + 1e-9)) and np.ptp(d[:, 2]) > 0.9 * (hi - lo)
        assert np.all(np.abs(d[:, 3] + 1.0) <= 6.0 * spread + 1e-9) and np.all(np.abs(d[:, 3]) <= 6.0)
        assert np.ptp(d[:, 3]) > (11.0 if spread == 0.5 else 10.0) * spread


def test_session_seed_is_in_the_parameter_range():
    assert all(1 <= anon.session_seed() <= 999999 for _ in range(100))


def test_render_with_anon_random_draws_a_new_voice_per_session(tmp_path, capsys):
    """`resculpt render --anon-random` says the seed it drew on stderr; two sessions draw different seeds and
    render different voices, and the `--set`s it prints (the seed, the level-dynamics step off) render session N's
    voice again, bit for bit."""
    from resculpt.cli import main
    from resculpt.plugin_host.audio_io import read_audio, write_audio

    sr = 16000
    src = tmp_path / "in.wav"
    write_audio(src, np.tile(_tone(sr, 150.0, 1.0), (1, 1)), sr)
    seeds, outs = [], []
    for k in range(2):
        out = tmp_path / f"r{k}.wav"
        assert main(["render", str(src), "-o", str(out), "--preset", "anon-neutral", "--anon-random"]) == 0
        err = capsys.readouterr().err
        seeds.append(int(err.split("anon.seed=")[1].split()[0]))
        outs.append(read_audio(out)[0])
    assert seeds[0] != seeds[1] and not np.allclose(outs[0], outs[1], atol=1e-3)
    again = tmp_path / "again.wav"
    assert main(["render", str(src), "-o", str(again), "--preset", "anon-neutral", "-q",
                 "--set", f"anon.seed={seeds[0]}", "--set", "anon.dynamics_pct=0"]) == 0
    assert np.array_equal(read_audio(again)[0], outs[0])


def test_anon_random_turns_the_level_dynamics_off_unless_the_user_sets_it(tmp_path, capsys, monkeypatch):
    """`--anon-random` with a seed pinned (the session draw stubbed): alone, it renders as `--set anon.seed=N
    --set anon.dynamics_pct=0`; with `--set anon.dynamics_pct=100` it keeps the user's value and renders as the
    seed alone would with the preset's step; the two renders differ."""
    from resculpt.cli import main
    from resculpt.dsp.voice import anon as anon_mod
    from resculpt.plugin_host.audio_io import read_audio, write_audio

    monkeypatch.setattr(anon_mod, "session_seed", lambda: 4242)
    sr = 16000
    src = tmp_path / "in.wav"
    write_audio(src, np.tile(_tone(sr, 150.0, 1.0), (1, 1)), sr)

    def render(name, *args):
        out = tmp_path / name
        assert main(["render", str(src), "-o", str(out), "--preset", "anon-neutral", "-q", *args]) == 0
        return read_audio(out)[0]

    rnd = render("a.wav", "--anon-random")
    assert np.array_equal(rnd, render("b.wav", "--set", "anon.seed=4242", "--set", "anon.dynamics_pct=0"))
    kept = render("c.wav", "--anon-random", "--set", "anon.dynamics_pct=100")
    assert np.array_equal(kept, render("d.wav", "--set", "anon.seed=4242"))
    assert not np.allclose(rnd, kept, atol=1e-4)


# -- frame-selection envelope replacement (dsp/voice/codebook.py) ---------------------------------------
def _clustered_codebook(B: int = 40):
    """A codebook of 3 groups of 4 near-identical shapes (a bump at 500 Hz, 1.5 kHz, 3 kHz on the grid),
    each with its grid mean removed, as the built codebook's entries are."""
    from resculpt.dsp.voice import codebook

    grid = codebook.grid_hz(B)
    rng = np.random.default_rng(0)
    rows = []
    for fc in (500.0, 1500.0, 3000.0):
        bump = 1.5 * np.exp(-0.5 * ((grid - fc) / (0.15 * fc)) ** 2)
        for _ in range(4):
            r = bump + 0.01 * rng.standard_normal(B)
            rows.append(r - r.mean())
    return codebook.Codebook(grid, np.asarray(rows, np.float32), "test")


def test_knn_replaces_a_frames_shape_by_its_nearest_codebook_group_and_keeps_its_level():
    """A frame shaped near the 1.5 kHz group, 0.7 nepers above its long-term mean: with share 1 its shape re
    the mean becomes that group's average (within 0.05 nepers on the grid) and its level stays; share 0.5
    lands half way."""
    from resculpt.dsp.voice import codebook

    cb = _clustered_codebook()
    sr, nb = 16000, 161
    spacing = sr / 320
    knn = codebook.KnnEnvelope(cb, nb, spacing, 1, 200.0)
    knn.set_warp(1.0, 1.0)
    f = np.arange(nb) * spacing
    mean = (-0.3 * np.log2(np.maximum(f, 100.0) / 100.0)).astype(np.float32)
    near = 1.2 * np.exp(-0.5 * ((f - 1600.0) / 250.0) ** 2)
    d = (near - near[(f > 150) & (f < 7500)].mean() + 0.7).astype(np.float32)
    target = cb.entries[4:8].mean(axis=0)

    def on_grid(v):
        return np.interp(cb.grid, f, v)

    for share, want in ((1.0, target), (0.5, None)):
        knn.reset()
        w = mean + d
        knn.apply(w, mean, share, 0)
        got = on_grid(w - mean)
        level = got.mean()
        assert abs(level - on_grid(d).mean()) < 0.02
        if want is not None:
            assert np.max(np.abs((got - level) - want)) < 0.05
        else:
            half = 0.5 * (on_grid(d) - on_grid(d).mean()) + 0.5 * target
            assert np.max(np.abs((got - level) - half)) < 0.05


def test_knn_codebook_follows_the_pseudo_speakers_formant_scale():
    """set_warp(a): the codebook's 1.5 kHz group peaks near a x 1.5 kHz on the output grid."""
    from resculpt.dsp.voice import codebook

    cb = _clustered_codebook()
    knn = codebook.KnnEnvelope(cb, 161, 50.0, 1, 200.0)
    for a in (0.85, 1.0, 1.2):
        knn.set_warp(a, 1.0)
        peak = cb.grid[int(np.argmax(knn._cbw[:, 5]))]
        assert abs(peak / (1500.0 * a) - 1.0) < 0.08, a


def test_shipped_codebook_is_small_pooled_and_zero_mean_per_entry():
    """dsp/voice/anon_codebook.npz: under 200 kB, entries (K >= 256, B = grid) with their grid mean removed,
    built from at least 8 train speakers (its note names them)."""
    from resculpt.dsp.voice import codebook

    assert codebook.FILE.stat().st_size < 200_000
    cb = codebook.load()
    K, B = cb.entries.shape
    assert K >= 256 and B == cb.grid.shape[0]
    assert np.max(np.abs(cb.entries.mean(axis=1))) < 1e-2
    with np.load(codebook.FILE) as z:
        note = str(z["note"])
    assert int(re.search(r"frames of (\d+) LibriSpeech train", note).group(1)) >= 8


@pytest.mark.parametrize("sr", RATES)
def test_codebook_share_changes_a_voice_and_zero_share_leaves_it_as_without(sr):
    """anon.codebook_pct 100 changes the output of a voiced tone; 0 renders bit-identically to the stage's
    default (the parameter's default)."""
    x = _pop_tone(sr, 150.0, 0.0)
    base = run(make_section(["anon"], sr, 1, {"anon.f0_hz": 150.0}), x, 512)
    zero = run(make_section(["anon"], sr, 1, {"anon.f0_hz": 150.0, "anon.codebook_pct": 0.0}), x, 512)
    full = run(make_section(["anon"], sr, 1, {"anon.f0_hz": 150.0, "anon.codebook_pct": 100.0}), x, 512)
    assert np.array_equal(base, zero)
    assert np.all(np.isfinite(full))
    assert np.sqrt(np.mean((full - base) ** 2)) > 0.05 * np.sqrt(np.mean(base ** 2))


# -- synthesized excitation (anon.excite_pct) ------------------------------------------------------------
def _odd_tone(sr: int, f0: float, seconds: float = 1.5) -> np.ndarray:
    """(1, n) float32: only the odd harmonics of f0 below 4 kHz, equal amplitudes, fixed random phases, peak
    0.3: a fine structure (every other harmonic missing) that no glottal pulse train has."""
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(3)
    y = sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) for h in range(1, int(4000 / f0), 2))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)[None]


def _harmonic_db(y, sr, f0, hs) -> np.ndarray:
    """Levels (dB) of harmonics ``hs`` of the output's F0 after its first 0.5 s (Hann, the largest magnitude
    within 5 Hz of each), and the share of the 100 Hz .. 1.5 kHz power within 8 Hz of a harmonic. The output's
    F0 is read from its strongest peak within 3 % of f0 (the output follows the tracked median, which dithers by
    up to ~0.7 %: at the 11th harmonic more than the 5 Hz window): the fine structure is measured on the pitch the
    output has; the pitch itself is the median tests' guarantee."""
    seg = y[0, sr // 2 :].astype(np.float64)
    s = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    fr = np.fft.rfftfreq(seg.size, 1 / sr)
    # the 7th harmonic's peak (7x the resolution of the fundamental's), parabolic in dB, over 7
    b = np.flatnonzero(np.abs(fr - 7 * f0) <= 0.03 * 7 * f0)
    i = b[np.argmax(s[b])]
    a, m, c = 20 * np.log10(s[i - 1 : i + 2])
    f0 = (fr[i] + 0.5 * (a - c) / (a - 2 * m + c) * (fr[1] - fr[0])) / 7
    lv = np.array([s[np.abs(fr - h * f0) <= 5.0].max() for h in hs])
    band = (fr > 100) & (fr < 1500)
    near = band & (np.abs(fr / f0 - np.round(fr / f0)) * f0 <= 8.0)
    return 20 * np.log10(lv), float((s[near] ** 2).sum() / (s[band] ** 2).sum())


@pytest.mark.parametrize("sr", RATES)
def test_synthesized_excitation_is_harmonic_at_the_output_f0_and_fills_the_missing_harmonics(sr):
    """A tone of odd harmonics of 120 Hz, normalised onto 150 Hz: with anon.excite_pct 0 the output keeps the
    input's fine structure (even harmonics of 150 Hz more than 25 dB under the odd ones); with 100 the fine
    structure is the synthesized one, every harmonic of 150 Hz on the envelope (even ones within 6 dB of
    their odd neighbours) and over 90 % of the power below 1.5 kHz within 8 Hz of a harmonic of 150 Hz."""
    x = _odd_tone(sr, 120.0)
    p = {**STILL, "anon.f0_hz": 150.0}
    hs = np.arange(1, 13)
    keep, _ = _harmonic_db(run(make_section(["anon"], sr, 1, p), x, 512), sr, 150.0, hs)
    rig = make_section(["anon"], sr, 1, {**p, "anon.excite_pct": 100.0})
    syn, harmonic = _harmonic_db(run(rig, x, 512), sr, 150.0, hs)
    odd, even = slice(0, None, 2), slice(1, None, 2)
    assert np.max(keep[even] - keep[odd]) < -25.0
    assert np.max(np.abs(syn[even] - 0.5 * (syn[odd] + np.roll(syn[odd], -1)))[:-1]) < 6.0
    assert harmonic > 0.9
    assert _stage(rig).excite_harmonics > 20


@pytest.mark.parametrize("sr", RATES)
def test_band_voicing_reads_a_harmonic_low_band_as_periodic_and_a_noise_high_band_as_aperiodic(sr):
    """Harmonics of 150 Hz below 2 kHz plus white noise above 3 kHz: the measured periodicity is near 1 in
    the bands below 2 kHz and near 0 in those above 3 kHz, so the noise excitation goes where the input is
    noisy."""
    from scipy.signal import butter, sosfilt

    x = _pop_tone(sr, 150.0, 0.0)
    lp = sosfilt(butter(8, 2000, "low", fs=sr, output="sos"), x[0])
    hp = sosfilt(butter(8, 3000, "high", fs=sr, output="sos"), np.random.default_rng(4).standard_normal(x.shape[1]))
    x = (lp + 0.05 * hp / np.std(hp) * np.std(lp)).astype(np.float32)[None]
    rig = make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": 150.0, "anon.excite_pct": 100.0})
    st = _stage(rig)
    seen = []
    pf = st.process_frame

    def frame(spec):
        pf(spec)
        seen.append(st._xvb[0].copy())

    st.process_frame = frame
    run(rig, x, 512)
    v = np.median(np.array(seen[len(seen) // 2 : -10]), axis=0)
    edges = np.array((0.0,) + anon.EXCITE_BANDS_HZ)
    low, high = edges[1:] <= 2000.0, edges[:-1] >= 3000.0
    assert np.all(v[: len(edges) - 1][low] > 0.8), v
    assert np.all(v[: len(edges)][np.append(high, sr > 16000)] < 0.2), v


@pytest.mark.parametrize("sr", RATES)
def test_excite_share_zero_renders_as_without_and_the_same_settings_render_the_same(sr):
    """anon.excite_pct 0 renders bit-identically to the stage's default; 100 changes the voice, and renders the
    same samples in two fresh chains and after reset() (the noise generator restarts from a fixed state)."""
    x = _pop_tone(sr, 150.0, 0.0)
    p = {"anon.f0_hz": 150.0, "anon.seed": 77.0}
    base = run(make_section(["anon"], sr, 1, p), x, 512)
    zero = run(make_section(["anon"], sr, 1, {**p, "anon.excite_pct": 0.0}), x, 512)
    rig = make_section(["anon"], sr, 1, {**p, "anon.excite_pct": 100.0})
    full = run(rig, x, 512)
    again = run(make_section(["anon"], sr, 1, {**p, "anon.excite_pct": 100.0}), x, 512)
    rig.proc.reset()
    after_reset = run(rig, x, 512)
    assert np.array_equal(base, zero)
    assert np.all(np.isfinite(full))
    assert np.sqrt(np.mean((full - base) ** 2)) > 0.05 * np.sqrt(np.mean(base**2))
    assert np.array_equal(full, again)
    assert np.array_equal(full, after_reset)


# -- the harmonic shift (kernels.harmonic_frame) -------------------------------------------------------------
def _pitch_shares(y, sr, target: float, own: float) -> tuple[float, float, int]:
    """Shares of the output's voiced YIN frames (after the first 0.25 s) within 50 cents of ``target`` and within
    50 cents of ``own``, and the number of voiced frames."""
    from test_voice_shift import analyze, Pitch

    f = analyze(Pitch(fmin_hz=40.0), y, sr)[50:, 0]
    f = f[np.isfinite(f)]
    if not f.size:
        return 0.0, 0.0, 0
    near = lambda ref: float(np.mean(np.abs(1200 * np.log2(f / ref)) < 50.0))  # noqa: E731
    return near(target), near(own), int(f.size)


@pytest.mark.skipif(not kernels.AVAILABLE, reason="the harmonic shift is compiled only (numba, extra 'fast')")
@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("f0", (80.0, 95.0))
def test_a_low_voice_moved_up_an_octave_sounds_at_the_new_pitch_not_its_own(sr, f0, monkeypatch):
    """A tone at 80 or 95 Hz, whose harmonics lie 1.6-1.9 bins apart in the 20 ms window (the window does not
    resolve them), normalised onto twice its F0: YIN reads the output at the target (within 50 cents) on at
    least 95 % of its voiced frames and at the input's own F0 on none, over at least 90 % of the frames, and the
    level stays within 0.5 dB. The peak-locked shift alone (``AnonVoice.harmonic`` False) moves each lobe as one
    peak, and a lobe holds two harmonics at the input's spacing: its output reads at the input's F0 or is not
    voiced at all, and is ~3 dB quieter, which this test also pins so that it keeps testing the harmonic path."""
    x = _tone(sr, f0, 1.5)
    p = {**STILL, "anon.f0_hz": 2.0 * f0}
    rig = make_section(["anon"], sr, 1, p)
    y = run(rig, x, 512)
    on, own, n = _pitch_shares(y, sr, 2.0 * f0, f0)
    assert on >= 0.95 and own == 0.0 and n >= 0.9 * 250, (on, own, n)
    assert _stage(rig).harmonics > 20
    level = 20 * np.log10(np.std(y[0, sr // 2 :]) / np.std(x[0, sr // 2 :]))
    assert abs(level) < 0.5
    monkeypatch.setattr(anon.AnonVoice, "harmonic", False)
    y = run(make_section(["anon"], sr, 1, p), x, 512)
    on, own, n = _pitch_shares(y, sr, 2.0 * f0, f0)
    assert on < 0.5 and (own > 0.5 or n < 25), (on, own, n)
    assert 20 * np.log10(np.std(y[0, sr // 2 :]) / np.std(x[0, sr // 2 :])) < -2.0


@pytest.mark.skipif(not kernels.AVAILABLE, reason="the harmonic shift is compiled only (numba, extra 'fast')")
@pytest.mark.parametrize("sr", RATES)
def test_the_harmonic_shift_keeps_the_formant_where_it_was(sr):
    """A 95 Hz tone on a resonance at 1 kHz normalised onto 190 Hz: the output's envelope peak (a parabola through
    its harmonics' levels) stays within 5 % of the input's: the harmonics move, the formant does not."""
    from test_voice_shift import _envelope_peak_hz

    x = _tone(sr, 95.0, 1.5)
    rig = make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": 190.0})
    y = run(rig, x, 512)
    assert _stage(rig).harmonics > 20  # the frames went through the harmonic shift
    assert abs(_envelope_peak_hz(y, sr, 190.0) / _envelope_peak_hz(x, sr, 95.0) - 1.0) < 0.05


@pytest.mark.skipif(not kernels.AVAILABLE, reason="the harmonic shift is compiled only (numba, extra 'fast')")
def test_a_voice_whose_harmonics_the_window_resolves_keeps_the_peak_locked_shift():
    """The harmonic shift is for voices whose median F0 lies under anon.HARMONIC_BELOW_BINS bins (150 Hz in the
    20 ms window): a 220 Hz tone moved to 110 Hz never takes it, a 95 Hz one moved to 190 Hz does. A speaker
    stays on one path: the median, not each frame's F0, decides."""
    sr = 48000
    for f0, tgt, used in ((220.0, 110.0, False), (95.0, 190.0, True)):
        rig = make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": tgt})
        st = _stage(rig)
        calls = []
        orig = st._harmonic
        st._harmonic = lambda *a, _o=orig: (calls.append(1), _o(*a))[1]
        run(rig, _tone(sr, f0, 1.0), 512)
        assert bool(calls) == used, (f0, len(calls))


@pytest.mark.skipif(not kernels.AVAILABLE, reason="the harmonic shift is compiled only (numba, extra 'fast')")
@pytest.mark.parametrize("f0", (147.0, 150.0, 153.0))
def test_a_voice_on_the_harmonic_shifts_limit_stays_on_one_path(f0):
    """A tone at the limit (150 Hz in the 20 ms window), whose tracked median dithers across it, moved by a major
    third: once the median is trusted, every voiced frame takes the same path (the decision has a semitone of
    hysteresis either side); switching paths as the median dithered left the output's harmonics on the bins'
    grid (YIN read it at 50 Hz)."""
    sr = 48000
    rig = make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": 1.25 * f0})
    st = _stage(rig)
    path = []
    oh, osh = st._harmonic, st._shift
    st._harmonic = lambda *a: (path.append(1), oh(*a))[1]
    st._shift = lambda *a: (path.append(0), osh(*a))[1]
    y = run(rig, _tone(sr, f0, 1.5), 512)
    switches = int(np.sum(np.diff(path) != 0))
    assert switches == 0, switches
    assert abs(_f0(y, sr) / (1.25 * f0) - 1.0) < 0.03


# -- the far side (anon.far_hz) ---------------------------------------------------------------------
@pytest.mark.parametrize("sr", RATES)
def test_far_side_gives_a_low_voice_the_mirrored_high_pseudo_speaker_and_a_high_voice_the_low_one(sr):
    """anon.f0_hz 95 Hz with anon.far_hz 140 Hz: a 110 Hz voice (on the pseudo-speaker's side of 140 Hz) leaves
    at 140^2 / 95 = 206 Hz, a 180 Hz voice at 95 Hz (within 3 %); with the far side off both leave at 95 Hz."""
    p = {**STILL, "anon.f0_hz": 95.0}
    for f0, far, want in ((110.0, 140.0, 140.0**2 / 95.0), (180.0, 140.0, 95.0), (110.0, 0.0, 95.0),
                          (180.0, 0.0, 95.0)):
        y = run(make_section(["anon"], sr, 1, {**p, "anon.far_hz": far}), _tone(sr, f0, 1.5), 512)
        assert abs(_f0(y, sr) / want - 1.0) < 0.03, (f0, far)


@pytest.mark.parametrize("sr", RATES)
def test_the_mirrored_pseudo_speaker_has_the_negated_tilt(sr):
    """A 110 Hz voice under a dark low pseudo-speaker (95 Hz, formant ratio 0.88, -3 dB/oct) with anon.far_hz
    140 Hz comes out with the long-term slope of the mirrored one set directly (206 Hz, 1 / 0.88, +3 dB/oct)
    within 0.5 dB/oct, and more than 3 dB/oct brighter than the unmirrored one."""
    base = {**STILL, "anon.timbre_pct": 100.0, "anon.formant_ratio": 0.88, "anon.tilt_db_oct": -3.0,
            "anon.f0_hz": 95.0}
    x = _pop_tone(sr, 110.0, 0.0, 2.0)
    far = _slope_db_oct(run(make_section(["anon"], sr, 1, {**base, "anon.far_hz": 140.0}), x, 512), sr)
    mirrored = {**base, "anon.f0_hz": 140.0**2 / 95.0, "anon.formant_ratio": 1.0 / 0.88, "anon.tilt_db_oct": 3.0}
    direct = _slope_db_oct(run(make_section(["anon"], sr, 1, mirrored), x, 512), sr)
    plain = _slope_db_oct(run(make_section(["anon"], sr, 1, base), x, 512), sr)
    assert abs(far - direct) < 0.5 and far - plain > 3.0, (far, direct, plain)


@pytest.mark.parametrize("sr", RATES)
def test_the_mirrored_pseudo_speaker_has_the_inverted_formant_ratio(sr):
    """A 110 Hz voice on a 1 kHz resonance under a 95 Hz pseudo-speaker with formant ratio 0.88 and anon.far_hz
    140 Hz: its envelope peak lands within 3 % of where the mirrored pseudo-speaker set directly puts it (206 Hz,
    1 / 0.88), and more than 20 % above where the unmirrored one puts it (the ratio between the two is 1.29)."""
    from test_voice_shift import _envelope_peak_hz

    base = {**STILL, "anon.f0_hz": 95.0, "anon.formant_ratio": 0.88}
    x, up = _tone(sr, 110.0, 2.0), 140.0**2 / 95.0
    far = _envelope_peak_hz(run(make_section(["anon"], sr, 1, {**base, "anon.far_hz": 140.0}), x, 512), sr, up)
    mirrored = {**base, "anon.f0_hz": up, "anon.formant_ratio": 1.0 / 0.88}
    direct = _envelope_peak_hz(run(make_section(["anon"], sr, 1, mirrored), x, 512), sr, up)
    plain = _envelope_peak_hz(run(make_section(["anon"], sr, 1, base), x, 512), sr, 95.0)
    assert abs(far / direct - 1.0) < 0.03 and far / plain > 1.2, (far, direct, plain)


def _third_octaves_db(y, sr):
    """Levels (dB) of the last second of y in 15 third-octave bands from 200 Hz up (a Hann-windowed FFT)."""
    y = np.asarray(y)[0, -sr:]
    p = np.abs(np.fft.rfft(y * np.hanning(y.size))) ** 2
    f = np.fft.rfftfreq(y.size, 1.0 / sr)
    edges = 200.0 * 2.0 ** (np.arange(16) / 3.0)
    return np.array([10.0 * np.log10(p[(f >= a) & (f < b)].sum() + 1e-20) for a, b in zip(edges[:-1], edges[1:])])


@pytest.mark.parametrize("sr", RATES)
def test_the_mirrored_pseudo_speaker_takes_the_far_formant_ratio_where_one_is_set(sr):
    """The same voice and pseudo-speaker with anon.far_formant_ratio 0.8: once the mirror has glided in, the
    output's third-octave levels are within 1 dB of the mirrored pitch with formant ratio 0.8 set directly, and
    on average more than 3 dB from the reciprocal's (1 / 0.88); 0 keeps the reciprocal, bit for bit."""
    base = {**STILL, "anon.f0_hz": 95.0, "anon.formant_ratio": 0.88, "anon.far_hz": 140.0}
    x, up = _tone(sr, 110.0, 2.0), 140.0**2 / 95.0
    got = _third_octaves_db(run(make_section(["anon"], sr, 1, {**base, "anon.far_formant_ratio": 0.8}), x, 512), sr)
    direct = _third_octaves_db(run(make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": up,
                                                                    "anon.formant_ratio": 0.8}), x, 512), sr)
    y_rec = run(make_section(["anon"], sr, 1, base), x, 512)
    assert np.max(np.abs(got - direct)) < 1.0 and np.mean(np.abs(got - _third_octaves_db(y_rec, sr))) > 3.0
    np.testing.assert_array_equal(run(make_section(["anon"], sr, 1, {**base, "anon.far_formant_ratio": 0.0}), x, 512),
                                  y_rec)


def test_a_seeds_draw_moves_the_far_formant_ratio_as_it_moves_the_presets():
    """With anon.seed set, the mirrored voice's formant ratio is anon.far_formant_ratio moved by the draw's factor
    (drawn ratio / ratio as set): a voice on the drawn pseudo-speaker's side of 140 Hz comes out within 1 dB per
    third-octave band of the mirrored drawn targets set directly, and on average more than 3 dB from the same
    targets with the far ratio left undrawn."""
    sr, seed = 16000, 1
    base = {**STILL, "anon.f0_hz": 95.0, "anon.formant_ratio": 0.88, "anon.far_hz": 140.0,
            "anon.far_formant_ratio": 0.8, "anon.seed": float(seed)}
    f0_d, fr_d, al_d, _ = anon.draw(seed, 95.0, 0.88, 1.0, 0.0, 1.0)
    assert abs(fr_d / 0.88 - 1.0) > 0.1  # a draw that moves the ratio, or the check tells nothing
    x = _tone(sr, 110.0 if f0_d < 140.0 else 180.0, 2.0)
    got = _third_octaves_db(run(make_section(["anon"], sr, 1, base), x, 512), sr)
    mirrored = {**STILL, "anon.f0_hz": 140.0**2 / f0_d, "anon.warp_alpha": al_d}
    direct = _third_octaves_db(run(make_section(["anon"], sr, 1, {**mirrored, "anon.formant_ratio": 0.8 * fr_d / 0.88}),
                                   x, 512), sr)
    undrawn = _third_octaves_db(run(make_section(["anon"], sr, 1, {**mirrored, "anon.formant_ratio": 0.8}), x, 512), sr)
    assert np.max(np.abs(got - direct)) < 1.0 and np.mean(np.abs(got - undrawn)) > 3.0


@pytest.mark.parametrize("f0", (110.0, 137.0, 140.0, 143.0, 180.0))
def test_a_voice_takes_one_side_of_the_dividing_pitch_and_glides_there(f0):
    """Voices at 110 Hz (mirrored: under 140 Hz, as the 95 Hz pseudo-speaker), 180 Hz (not) and at the dividing
    pitch, whose tracked median dithers across it: the mirror's share moves one way only (a semitone of
    hysteresis either side), by less than a tenth per 5 ms frame (a glide of ~0.1 s, not a jump of up to an
    octave in pitch), and ends at 1 for 110 Hz and at 0 for 180 Hz."""
    sr = 48000
    rig = make_section(["anon"], sr, 1, {**STILL, "anon.f0_hz": 95.0, "anon.far_hz": 140.0})
    st = _stage(rig)
    share = []
    of = st._far_side
    st._far_side = lambda *a: (of(*a), share.append(st.far_share))[0]
    run(rig, _tone(sr, f0, 1.5), 512)
    d = np.diff(share)
    assert not (np.any(d > 0) and np.any(d < 0)), share
    assert np.max(np.abs(d)) < 0.1
    if f0 in (110.0, 180.0):
        assert share[-1] == (1.0 if f0 == 110.0 else 0.0)


@pytest.mark.parametrize("sr", RATES)
def test_excitation_phase_is_the_minimum_phase_of_the_envelope(sr):
    """The phase the synthesized harmonics are laid on, from the envelope's cepstrum (the stage's own tables), is
    a minimum-phase filter's: for the log magnitude of 1 / (1 - 0.5 e^{-iw}) (a one-pole, minimum phase, its
    cepstrum 0.5^q / q inside the smoothing's lifter) it gives that filter's phase within 0.01 rad at every bin."""
    rig = make_section(["anon"], sr, 1, {**STILL, "anon.excite_pct": 100.0})
    st = _stage(rig)
    n = 2 * (st._xps.shape[0] - 1)
    h = 1.0 / (1.0 - 0.5 * np.exp(-2j * np.pi * np.arange(n // 2 + 1) / n))
    cep = st._b1 @ np.log(np.abs(h)).astype(np.float32)
    phase = st._xps @ cep
    assert np.max(np.abs(phase - np.angle(h))) < 0.01
