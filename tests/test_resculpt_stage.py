"""The resculpting model as a product stage: engine choice (auto / model / match-eq) with and without its bundle,
the target plumbing shared with the match-EQ (one set_target, bad targets refused before anything changes), the
parameters (amount, match mode, overrides) and presets with a target. The stage's processor contract is
tests/test_stage_conformance.py's; its numbers against torch are tests/test_resculpt_export.py's."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from conftest import EXAMPLE
from resculpt.dsp.descriptors import describe
from resculpt.dsp.profile import DIM_BY_NAME, Profile, ProfileError, fingerprint
from resculpt.models import data
from resculpt.models.resculpt import bundle as rb
from resculpt.models.resculpt import common as C
from resculpt.models.resculpt.stage import OVERRIDES, ResculptTarget
from resculpt.plugin_host.chain import Chain, EngineError
from resculpt.plugin_host.layout import Layout
from resculpt.plugin_host.presets import load_preset
from resculpt.plugin_host.render import RenderError, render_file

SR = 16000
TARGET = Profile("target", {"centroid_hz": 800.0, "tilt_db_oct": -8.0, "lufs_integrated": -18.0},
                 band_env_db=list(-30.0 - 1.2 * np.arange(32)))


@pytest.fixture
def no_bundle(tmp_path, monkeypatch):
    monkeypatch.setenv(rb.BUNDLE_ENV, str(tmp_path / "no-bundle-here"))


@pytest.fixture
def clip(tmp_path):
    """3 s of the bundled speech at 16 kHz as a WAV file, and a target profile file."""
    x, sr = data.load(EXAMPLE)
    p = tmp_path / "in.wav"
    sf.write(p, x[: 3 * sr], sr, subtype="FLOAT")
    t = TARGET.save(tmp_path / "t.json")
    return p, t, x[: 3 * sr]


def test_without_a_bundle_auto_renders_with_the_match_eq_and_model_is_one_clear_error(no_bundle, clip, tmp_path):
    """No bundle: ``auto`` (the default) follows the target with the match-EQ; ``--engine model`` fails with one
    message naming the missing bundle and the way out, and writes no output."""
    inp, t, _ = clip
    assert render_file(inp, tmp_path / "a.wav", target=t)["engine"] == "match-eq"
    with pytest.raises(RenderError, match="not installed.*match-EQ"):
        render_file(inp, tmp_path / "m.wav", target=t, engine="model")
    assert not (tmp_path / "m.wav").exists()
    with pytest.raises(EngineError, match="not installed"):
        Chain(Layout(), SR, 1).set_target(TARGET, engine="model")


def test_with_a_bundle_the_model_engine_renders_and_the_old_flag_name_still_works(resculpt_bundle, clip, tmp_path):
    """With a bundle, ``engine="model"`` renders with the model (same length out, audibly changed); ``matcher=``
    is another name for ``engine=``; asking the match-EQ for ``match voice`` is refused (it cannot move F0 or
    formants)."""
    inp, t, x = clip
    # The model's own change: the loudness follower would pull this clip (-17.3 LUFS) toward the target's -18 and
    # hide part of it; the follower is tests/test_loudness_follow.py's.
    r = render_file(inp, tmp_path / "a.wav", target=t, match="voice", amount=0.8, engine="model",
                    sets={"resculpt.loudness_follow": 0.0})
    assert r["engine"] == "model"
    y, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    assert y.shape == x.shape
    assert np.sqrt(np.mean((y - x) ** 2)) > 0.1 * np.sqrt(np.mean(x**2))
    assert render_file(inp, tmp_path / "b.wav", target=t, matcher="match-eq")["engine"] == "match-eq"
    with pytest.raises(RenderError, match="needs the model engine"):
        render_file(inp, tmp_path / "c.wav", target=t, engine="match-eq", match="voice")


def _with_keep_validation(src, dst, keep_db, beats_match_eq=True, worse=("reference speech",)):
    """A copy of bundle folder ``src`` in ``dst`` whose config records ``keep_db`` (None: nothing) as its
    validation's identity check and ``beats_match_eq`` (None: no verdict) as its benchmark verdict against the
    match-EQ over the reference, descriptor and random speech cells (not beating it: on the cells ``worse``),
    the figures the auto engine reads; returns ``dst``."""
    import json
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    val = cfg.setdefault("training", {}).setdefault("val", {})
    val.pop("keep_env_max_db", None)
    if keep_db is not None:
        val["keep_env_max_db"] = keep_db
    cfg.pop("benchmark", None)
    if beats_match_eq is not None:
        cfg["benchmark"] = {"beats_match_eq_everywhere": beats_match_eq,
                            "worse_than_match_eq": [] if beats_match_eq else list(worse),
                            "cells": ["reference speech", "descriptor speech", "random speech"]}
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("keep_db, beats, engine", [(0.3, True, "model"), (0.5, True, "model"), (4.3, True, "match-eq"),
                                                   (None, True, "match-eq"), (0.3, False, "match-eq"),
                                                   (0.3, None, "match-eq")])
def test_auto_takes_the_model_only_when_it_kept_identity_within_half_a_db_and_beats_the_match_eq(
        resculpt_bundle, clip, tmp_path, monkeypatch, keep_db, beats, engine):
    """``auto`` takes the bundle only when its config's training validation moved the band envelope by at most
    0.5 dB with the input's own profile as target (none recorded: not taken) and its benchmark verdict says its
    profile error is below the match-EQ's on every target kind (worse somewhere, or no verdict: not taken);
    ``engine="model"`` takes it regardless."""
    monkeypatch.setenv(rb.BUNDLE_ENV, str(_with_keep_validation(resculpt_bundle, tmp_path / "bundle", keep_db, beats)))
    inp, t, _ = clip
    assert (rb.auto_refusal() is None) == (engine == "model")
    assert render_file(inp, tmp_path / "a.wav", target=t)["engine"] == engine
    assert render_file(inp, tmp_path / "m.wav", target=t, engine="model")["engine"] == "model"


def test_bad_targets_give_one_error_and_change_nothing(resculpt_bundle, tmp_path):
    """An infinite value, a fingerprint of silence (it measures nothing) and another schema version are refused
    with a ProfileError before either inbox changes; NaN means "unknown" in the schema and is accepted."""
    chain = Chain(Layout(spectral=("resculpt",)), SR, 1, 512)
    chain.set_target(TARGET)
    before = (chain._inboxes["match"].value, chain._inboxes["resculpt"].value)
    bad_inf = TARGET.copy()
    bad_inf.dims["tilt_db_oct"] = math.inf
    silence = fingerprint(np.zeros(4 * SR, np.float32), SR)
    for bad, msg in ((bad_inf, "infinite"), (silence, "silence")):
        with pytest.raises(ProfileError, match=msg):
            chain.set_target(bad)
        assert (chain._inboxes["match"].value, chain._inboxes["resculpt"].value) == before
    d = TARGET.to_dict() | {"schema_version": 2}
    (tmp_path / "v2.json").write_text(__import__("json").dumps(d))
    with pytest.raises(RenderError, match="schema_version 2"):
        render_file(EXAMPLE, tmp_path / "o.wav", target=tmp_path / "v2.json", engine="model")
    partial = TARGET.copy()
    partial.dims["centroid_hz"] = math.nan
    chain.set_target(partial)
    assert chain._inboxes["resculpt"].value is not before[1]


def test_overrides_are_unit_moves_of_the_target_in_conditioning_space():
    """bass/brightness add level-free low/high shelves to the target's band shape (dB / 3 dB); tilt adds a slope
    around 1 kHz and moves the tilt dimension by one z unit per 1.5 dB/oct; loudness moves the loudness dimension
    by one z unit per dB (only where the target knows the dimension)."""
    t = ResculptTarget.make(TARGET)
    ids = [p.id for p in OVERRIDES]
    timbre = 0
    bass, bright, tilt, loud = (t.dirs[timbre, ids.index(k)] for k in
                                ("resculpt.bass_db", "resculpt.brightness_db", "resculpt.tilt_db_oct", "resculpt.loudness_db"))
    shape = slice(2 * C.N_DIMS, 2 * C.N_DIMS + C.N_BANDS)
    ok = t.ok > 0
    assert bass[shape][ok][:4].min() > 0 > bass[shape][ok][-4:].max()
    assert bright[shape][ok][-4:].min() > 0 > bright[shape][ok][:4].max()
    assert abs(float(bass[shape][ok].sum())) < 1e-5 and abs(float(bright[shape][ok].sum())) < 1e-5
    i_tilt, i_loud = C.DIM_NAMES.index("tilt_db_oct"), C.DIM_NAMES.index("lufs_integrated")
    assert tilt[i_tilt] == pytest.approx(1.0 / DIM_BY_NAME["tilt_db_oct"].scale)
    assert loud[i_loud] == pytest.approx(1.0 / DIM_BY_NAME["lufs_integrated"].scale)
    assert np.count_nonzero(loud) == 1
    no_loud = TARGET.copy()
    no_loud.dims["lufs_integrated"] = math.nan
    assert not ResculptTarget.make(no_loud).dirs[timbre, ids.index("resculpt.loudness_db")].any()


def _run(chain, x, block=160):
    y = x.copy()
    for i in range(0, x.shape[1], block):
        chain.process(y[:, i : i + block])
    return y


def test_amount_zero_passes_the_input_and_the_overrides_reach_the_model(resculpt_bundle):
    """``resculpt.amount`` 0 gives what no target gives (the input, delayed by the look-ahead) to float rounding;
    at amount 1 a bass override changes the conditioning vector the model reads by its direction."""
    x, sr = data.load(EXAMPLE)
    x = x[None, : 2 * sr].astype(np.float32)
    ref = _run(Chain(Layout(spectral=("resculpt",)), sr, 1, 512), x)
    chain = Chain(Layout(spectral=("resculpt",)), sr, 1, 512, params={"resculpt.amount": 0.0})
    chain.set_target(TARGET)
    y0 = _run(chain, x)
    assert np.max(np.abs(y0 - ref)) < 1e-5 * np.max(np.abs(ref))
    st = next(s for s in chain.graph.stages if s.name == "resculpt")
    chain.params["resculpt.amount"] = 1.0
    _run(chain, x[:, :4000])
    c0 = st._cond[0].copy()
    chain.params["resculpt.bass_db"] = 6.0
    _run(chain, x[:, :4000])
    t = chain._inboxes["resculpt"].value
    np.testing.assert_allclose(st._cond[0] - c0, 6.0 * t.dirs[0, 0], atol=1e-5)


def test_the_stage_passes_descriptor_targets_in_relative_form(resculpt_bundle):
    """A descriptor ("more bass, a bit louder") is a delta: the stage passes it in relative form
    (``common.delta_cond`` at the stage's rate: flag 1, band offsets / 3 dB, scalar moves in z units) and does
    not rebuild it per frame (the graph adds the offsets to its own running shape); a loudness override moves
    the delta's relative loudness slot by one z unit per dB."""
    x, sr = data.load(EXAMPLE)
    x = x[None, : 2 * sr].astype(np.float32)
    chain = Chain(Layout(spectral=("resculpt",)), sr, 1, 512)
    d = describe("more bass, a bit louder")
    chain.set_target(d)
    _run(chain, x[:, : sr // 2])
    st = next(s for s in chain.graph.stages if s.name == "resculpt")
    want = C.delta_cond(d, sr, "timbre")
    # float32 round-off: the stage moves the tilt slot's offsets' slope from DELTA_COND_RATE's bands to its rate's
    np.testing.assert_allclose(st._cond[0], want, rtol=0, atol=1e-6)
    assert want[C.REL_I] == 1.0 and want[C.DZ0 + C.DIM_NAMES.index("lufs_integrated")] == pytest.approx(1.5)
    held = st._cond[0].copy()
    _run(chain, x[:, sr // 2 :])
    np.testing.assert_array_equal(st._cond[0], held)  # the same vector whatever the stream has heard
    chain.params["resculpt.loudness_db"] = 2.0
    _run(chain, x[:, :1000])
    moved = want.copy()
    moved[C.DZ0 + C.DIM_NAMES.index("lufs_integrated")] += 2.0 / DIM_BY_NAME["lufs_integrated"].scale
    np.testing.assert_allclose(st._cond[0], moved, atol=1e-6)


def test_a_bass_override_on_a_delta_adds_its_shelfs_slope_to_the_relative_tilt_move(resculpt_bundle):
    """A delta's tilt slot is its whole tilt move (``common.delta_z``), so ``resculpt.bass_db`` on a description
    moves it by the shelf's own least-squares slope over this rate's tilt bands, as if the shelf were part of the
    description's offsets (``common.delta_cond`` of the delta plus the shelf, within float32 round-off)."""
    from resculpt.dsp.descriptors import low_shelf
    from resculpt.dsp.features.spectral import tilt_slope_db_oct
    from resculpt.models.resculpt.stage import BASS_HZ

    x, sr = data.load(EXAMPLE)
    x = x[None, : sr // 2].astype(np.float32)
    chain = Chain(Layout(spectral=("resculpt",)), sr, 1, 512)
    d = describe("warmer")
    chain.set_target(d)
    chain.params["resculpt.bass_db"] = 6.0
    _run(chain, x)
    st = next(s for s in chain.graph.stages if s.name == "resculpt")
    i = C.DZ0 + C.DIM_NAMES.index("tilt_db_oct")
    shelf = low_shelf(BASS_HZ, 6.0)
    both = d.copy()
    both.band_env_db = list(d.env() + shelf)
    assert tilt_slope_db_oct(shelf, sr) < -0.3
    assert st._cond[0, i] == pytest.approx(C.delta_cond(both, sr, "timbre")[i], abs=1e-6)


@pytest.mark.parametrize("worse, delta_engine, absolute_engine", [
    (("reference music",), "model", "match-eq"), (("descriptor speech",), "match-eq", "model"),
    (("identity",), "match-eq", "match-eq"), ((), "model", "model")])
def test_auto_weighs_only_the_benchmark_cells_of_the_targets_form(resculpt_bundle, tmp_path, monkeypatch, worse,
                                                                  delta_engine, absolute_engine):
    """``auto`` takes the model for a description when no descriptor cell of the verdict is worse than the
    match-EQ, for an absolute profile when no reference or random cell is, and for neither when it leaves audio
    less alone (identity); with no target it asks for every cell. A verdict that does not list the cells it
    measured serves no form."""
    from resculpt.dsp.descriptors import describe
    from resculpt.dsp.profile import fingerprint
    from resculpt.plugin_host.chain import resolve_engine

    b = _with_keep_validation(resculpt_bundle, tmp_path / "bundle", 0.2, not worse, worse)
    monkeypatch.setenv(rb.BUNDLE_ENV, str(b))
    absolute = fingerprint(np.sin(2 * np.pi * 220 * np.arange(48000) / 48000).astype(np.float32), 48000)
    assert resolve_engine("auto", target=describe("warmer")) == delta_engine
    assert resolve_engine("auto", target=absolute) == absolute_engine
    assert resolve_engine("auto") == ("model" if not worse else "match-eq")
    cfg = json.loads((b / "config.json").read_text())
    del cfg["benchmark"]["cells"]
    (b / "config.json").write_text(json.dumps(cfg))
    assert resolve_engine("auto", target=describe("warmer")) == "match-eq"
    assert "does not list" in rb.auto_refusal(form="delta")


def test_a_chain_that_runs_one_engine_keeps_it_for_a_target_of_another_form(resculpt_bundle, tmp_path, monkeypatch):
    """With a verdict that takes the model for descriptions only, a description set on a running chain adds the
    model's stage, and an absolute profile set afterwards goes to that stage too instead of stacking the
    match-EQ on it (both engines would then move the sound)."""
    from resculpt.dsp.descriptors import describe
    from resculpt.dsp.profile import fingerprint

    monkeypatch.setenv(rb.BUNDLE_ENV, str(_with_keep_validation(resculpt_bundle, tmp_path / "b", 0.2, False,
                                                                ("reference speech",))))
    chain = Chain.from_preset("clean", 48000, 1, 512)
    assert chain.set_target(describe("warmer"), add_stage=True) == "model"
    absolute = fingerprint(np.sin(2 * np.pi * 220 * np.arange(48000) / 48000).astype(np.float32), 48000)
    assert chain.set_target(absolute, add_stage=True) == "model"
    assert "resculpt" in chain.layout.spectral and "match" not in chain.layout.spectral
    fresh = Chain.from_preset("clean", 48000, 1, 512)
    assert fresh.set_target(absolute, add_stage=True) == "match-eq"
    assert "match" in fresh.layout.spectral and "resculpt" not in fresh.layout.spectral


def test_presets_with_a_target_run_the_engine_of_the_moment(resculpt_bundle, monkeypatch, tmp_path):
    """A preset's target puts the engine's stage in its layout and publishes the target: the model with a bundle
    that passes the auto engine's identity check, the match-EQ without; a shipped target is found by name."""
    monkeypatch.setenv(rb.BUNDLE_ENV, str(_with_keep_validation(resculpt_bundle, tmp_path / "bundle", 0.2)))
    d = json.loads(load_preset("warm-radio").path.read_text())
    d.update(name="wideband", target={"profile": "wideband-speech"})
    (tmp_path / "wideband.json").write_text(json.dumps(d))
    c = Chain.from_preset(tmp_path / "wideband.json", 48000, 2)
    assert "resculpt" in c.layout.spectral and "match" not in c.layout.spectral
    assert c._inboxes["resculpt"].value is not None
    monkeypatch.setenv(rb.BUNDLE_ENV, str(tmp_path / "none"))
    c = Chain.from_preset("warm-radio", 48000, 2)
    assert "match" in c.layout.spectral and "resculpt" not in c.layout.spectral
    assert c._inboxes["match"].value is not None and c._inboxes["resculpt"].value.offsets is not None


def test_osc_profile_load_sets_the_target_from_a_shipped_name_and_refuses_a_bad_one(no_bundle, tmp_path):
    """/resculpt/profile/load takes a shipped target's name or a profile file; a bad one is an error reply and
    leaves the target as it was."""
    from resculpt.plugin_host.osc import OscServer

    srv = OscServer(Chain.from_preset("clean", 48000, 2, 512), port=0)
    me = ("127.0.0.1", 9)
    srv.handle_message("/resculpt/profile/load", ["wideband-speech"], me)
    t = srv.chain._inboxes["match"].value
    assert t is not None and "match" in srv.chain.layout.spectral
    bad = TARGET.to_dict() | {"schema_version": 9}
    (tmp_path / "bad.json").write_text(__import__("json").dumps(bad))
    errors = srv.stats["errors"]
    srv.handle_message("/resculpt/profile/load", [str(tmp_path / "bad.json")], me)
    assert srv.stats["errors"] == errors + 1 and "schema_version 9" in srv.last_error
    assert srv.chain._inboxes["match"].value is t


def test_osc_profile_input_holds_the_input_estimate_and_an_empty_path_learns_again(resculpt_bundle, tmp_path):
    """/resculpt/profile/input PATH sets the chain's input profile (the target stage's estimate held there); a delta
    is an error reply that changes nothing; no argument goes back to learning the input."""
    from resculpt.plugin_host.osc import OscServer

    srv = OscServer(Chain.from_preset("warm-radio", 48000, 2, 512), port=0)
    me = ("127.0.0.1", 9)
    x, sr = data.load(EXAMPLE)
    fingerprint(np.asarray(x[: 4 * sr], np.float32), sr).save(tmp_path / "me.json")
    srv.handle_message("/resculpt/profile/input", [str(tmp_path / "me.json")], me)
    srv.chain.reset()
    assert srv.chain.input_env is not None
    assert next(s for s in srv.chain.graph.stages if s.name in ("resculpt", "match"))._primed is not None
    describe("more bass").save(tmp_path / "delta.json")
    errors = srv.stats["errors"]
    srv.handle_message("/resculpt/profile/input", [str(tmp_path / "delta.json")], me)
    assert srv.stats["errors"] == errors + 1 and "not a delta" in srv.last_error
    assert srv.chain.input_env is not None
    srv.handle_message("/resculpt/profile/input", [], me)
    srv.chain.reset()
    assert srv.chain.input_env is None
    assert next(s for s in srv.chain.graph.stages if s.name in ("resculpt", "match"))._primed is None


def test_a_primed_running_fingerprint_is_what_the_stage_learns_from_a_long_steady_input(resculpt_bundle):
    """``ResculptStage.prime`` with a clip's long-term envelope (the fingerprint's) sets the model's running
    fingerprint state to what 20 s of that steady clip teach it: the same band levels within 0.2 dB on the bands
    a profile compares (centred from 60 Hz: below, the fingerprint's analysis is high-passed at 10 Hz and the
    stage's frames keep their DC bin, which at 48 kHz is band 0's only bin) and the same weight (the
    steady-state 1 / (1 - alpha), 600 frames for a 3 s time constant at a 5 ms hop, which 20 s reach within
    0.2 %); with ``hold`` it stays there while another clip streams."""
    from scipy.signal import lfilter

    from resculpt.dsp.profile import compare_mask, long_term_envelope

    sr = 48000
    x = (0.05 * lfilter([1.0], [1.0, -0.9], np.random.default_rng(0).standard_normal(20 * sr))).astype(np.float32)
    learned = Chain(Layout(spectral=("resculpt",)), sr, 1, 4096)
    learned.set_target(TARGET, engine="model")
    learned(x[None])
    st = learned.graph.stages[0]
    a = st._states[st._phase]
    primed = Chain(Layout(spectral=("resculpt",)), sr, 1, 4096)
    primed.set_target(TARGET, engine="model")
    ps = primed.graph.stages[0]
    ps.prime(long_term_envelope(x, sr))
    primed.reset()
    b = ps._states[ps._phase]
    ok = np.isfinite(long_term_envelope(x, sr)) & compare_mask()
    la = 10 * np.log10(a["run_num"][0, ok] / a["run_den"][0])
    lb = 10 * np.log10(b["run_num"][0, ok] / b["run_den"][0])
    assert np.abs(la - lb).max() < 0.2
    assert abs(float(b["run_den"][0, 0]) / float(a["run_den"][0, 0]) - 1.0) < 0.003
    # held (offline renders): the state stays there while a clip of another colour streams; not held, it follows it
    y = (0.05 * np.random.default_rng(1).standard_normal(2 * sr)).astype(np.float32)
    for hold in (True, False):
        ps.prime(long_term_envelope(x, sr), hold=hold)
        primed.reset()
        primed(y[None])
        c = ps._states[ps._phase]
        held = np.array_equal(c["run_num"][0], ps._primed[0]) and c["run_den"][0, 0] == ps._primed[1]
        assert held == hold
    ps.prime(None)
    primed.reset()
    assert np.count_nonzero(ps._states[ps._phase]["run_den"]) == 0


def test_a_model_render_primes_the_running_fingerprint_and_corrects_the_target_in_a_second_pass(
        resculpt_bundle, clip, tmp_path, monkeypatch):
    """Offline (``render.render_with_target``, as ``render_file`` runs the model engine), the model stage gets the
    input's long-term envelope before streaming, and a second pass moves the target's band envelope by what the
    first pass's output missed: the output lands closer to the target's envelope (and loudness) than one pass does,
    and than a stream that learns as it goes."""
    from resculpt.dsp.profile import band_distance_db, long_term_envelope
    from resculpt.models.resculpt.stage import ResculptStage
    from resculpt.plugin_host.render import render_with_target

    inp, t, x = clip
    x = x[None].astype(np.float32)
    seen = []
    real = ResculptStage.prime
    monkeypatch.setattr(ResculptStage, "prime",
                        lambda self, env, hold=False: (seen.append(env), real(self, env, hold))[1])

    loud = {}

    def run(passes, prime):
        c = Chain(Layout(spectral=("resculpt",)), SR, 1, 4096)
        c.set_target(TARGET, engine="model")
        y, info = render_with_target(c, x, SR, TARGET, 4096, passes=passes, prime=prime)
        loud[passes, prime] = abs(info["loudness_after_lufs"] - TARGET.dims["lufs_integrated"])
        return band_distance_db(long_term_envelope(y[0], SR), TARGET.band_env_db)

    live, one, two = run(1, False), run(1, True), run(2, True)
    # the second pass also moves the loudness goal by what the first pass's output measured
    assert loud[2, True] < loud[1, True] and loud[2, True] < 0.1, loud
    want = long_term_envelope(x[0], SR)
    ok = np.isfinite(want)
    assert seen[0] is None and np.allclose(seen[1][ok], want[ok])
    assert two < one - 0.05 and two < live - 0.05, (live, one, two)
    seen.clear()
    render_file(inp, tmp_path / "m.wav", target=t, engine="model")
    assert len(seen) == 1 and np.allclose(seen[0][ok], want[ok], atol=1e-3)


def test_a_model_renders_second_pass_keeps_the_bass_override_and_the_loudness(resculpt_bundle, clip):
    """The second pass corrects toward the target plus the overrides' band shapes, not the target alone: with
    ``resculpt.bass_db`` +6 toward the clip's own profile, the two-pass render's bands below 200 Hz rise by at least
    3 dB against 1-4 kHz, more than one pass gives (a second pass aimed at the target alone took the boost back to
    under 0.5 dB), and its loudness stays within 0.1 LU of the clip's."""
    from resculpt.dsp.descriptors import CENTERS
    from resculpt.dsp.profile import long_term_envelope
    from resculpt.plugin_host.render import render_with_target

    _, _, x = clip
    x = x[None].astype(np.float32)
    own = fingerprint(x[0], SR)
    e0 = long_term_envelope(x[0], SR)
    low, mid = (CENTERS < 200.0) & np.isfinite(e0), (CENTERS > 1000.0) & (CENTERS < 4000.0)

    def bass(passes):
        c = Chain(Layout(spectral=("resculpt",)), SR, 1, 4096)
        c.params["resculpt.bass_db"] = 6.0
        c.set_target(own, engine="model")
        y, info = render_with_target(c, x, SR, own, 4096, passes=passes)
        d = long_term_envelope(y[0], SR) - e0
        return float(d[low].mean() - d[mid].mean()), info["loudness_after_lufs"] - own.dims["lufs_integrated"]

    (b1, _), (b2, lu2) = bass(1), bass(2)
    assert b2 >= 3.0 and b2 > b1, (b1, b2)
    assert abs(lu2) < 0.1, lu2


@pytest.mark.parametrize("engine", ("match-eq", "model"))
def test_a_two_pass_render_at_half_amount_moves_half_way(resculpt_bundle, clip, engine):
    """``<stage>.amount`` 0.5 moves the envelope half way to the target in an offline render too: toward the clip's
    own envelope tilted by +-6 dB across the bands, the median share of each band's move after both passes is
    0.5 +- 0.03 (a second pass that corrected toward the whole target carried it past half way)."""
    from resculpt.dsp.profile import band_shape_diff, long_term_envelope
    from resculpt.plugin_host.render import render_with_target, with_match_stage

    _, _, x = clip
    x = x[None].astype(np.float32)
    own = fingerprint(x[0], SR)
    tgt = own.copy()
    tgt.band_env_db = list(np.asarray(own.band_env_db) + np.linspace(6.0, -6.0, 32))
    e0 = long_term_envelope(x[0], SR)
    want = band_shape_diff(np.asarray(tgt.band_env_db), e0)
    ok = np.isfinite(want) & (np.abs(want) > 1.0)
    if engine == "model":
        c = Chain(Layout(spectral=("resculpt",)), SR, 1, 4096)
        c.params["resculpt.amount"] = 0.5
        c.set_target(tgt, engine="model")
    else:
        c = with_match_stage(Chain(Layout(), SR, 1, 4096))
        c.params["match.amount"] = 0.5
    y, _ = render_with_target(c, x, SR, tgt, 4096, passes=2)
    got = band_shape_diff(long_term_envelope(y[0], SR), e0)
    assert abs(float(np.median(got[ok] / want[ok])) - 0.5) < 0.03


def _bright_env_terms(p: Profile, target: Profile) -> float:
    """The brightness and envelope part of ``distance_terms(p, target)`` (what the correction pass's tilt trades)."""
    from resculpt.dsp.profile import BRIGHT_DIMS, distance_terms

    terms, _ = distance_terms(p, target)
    return sum(v for k, v in terms.items() if k in BRIGHT_DIMS or k == "band_env_db")


def test_the_models_correction_pass_tilts_toward_a_brighter_typical_frame(resculpt_bundle, monkeypatch):
    """Real speech toward its own fingerprint with the frame medians brighter (centroid and roll-off x 1.25, tilt
    +1.5 dB/oct) and the same long-term envelope: the model's offline render picks a positive tilt for its second
    pass, and the output's brightness and envelope terms together are smaller than with the tilt held at 0. Toward
    its own fingerprint unchanged the tilt is 0; the match-EQ engine makes no tilt (a long-term spectrum match)."""
    from resculpt.dsp import profile as prof
    from resculpt.plugin_host.render import render_with_target

    x, sr = data.load(EXAMPLE)
    x = np.ascontiguousarray(x[: 6 * sr], np.float32)[None]
    fp = fingerprint(x, sr)
    t = fp.copy()
    t.kind = "target"
    t.dims.update(centroid_hz=1.25 * fp.dims["centroid_hz"], rolloff_hz=1.25 * fp.dims["rolloff_hz"],
                  tilt_db_oct=fp.dims["tilt_db_oct"] + 1.5)

    def render(target, engine="model"):
        ch = Chain(Layout(spectral=("resculpt" if engine == "model" else "match",)), sr, 1, 4096)
        ch.set_target(target, engine=engine)
        return render_with_target(ch, x, sr, target, 4096)

    y, info = render(t)
    assert info["brightness_tilt_db_oct"] > 0.0
    with_tilt = _bright_env_terms(fingerprint(y, sr), t)
    monkeypatch.setattr(prof, "brightness_tilt", lambda *a, **k: 0.0)
    y0, info0 = render(t)
    assert info0["brightness_tilt_db_oct"] == 0.0
    assert with_tilt < _bright_env_terms(fingerprint(y0, sr), t)
    monkeypatch.undo()
    _, info = render(fp)
    assert info["brightness_tilt_db_oct"] == 0.0
    _, info = render(t, "match-eq")
    assert "brightness_tilt_db_oct" not in info


def test_a_three_pass_model_render_with_a_range_move_and_a_brightness_tilt_keeps_correcting_the_envelope(
        resculpt_bundle):
    """Three passes toward a target that asks a loudness-range move and a brighter typical frame: every pass after
    the first aims at the envelope plus the tilt while the range corrects its own goal, so the third pass's envelope
    lands at least as near the target's as the second's, within 0.05 dB."""
    from resculpt.plugin_host.render import render_with_target

    x, sr = data.load(EXAMPLE)
    x = np.ascontiguousarray(x[: 6 * sr], np.float32)[None]
    fp = fingerprint(x, sr)
    t = fp.copy()
    t.kind = "target"
    t.dims.update(centroid_hz=1.25 * fp.dims["centroid_hz"], tilt_db_oct=fp.dims["tilt_db_oct"] + 1.5,
                  lra_lu=fp.dims["lra_lu"] + 3.0)
    after = {}
    for passes in (2, 3):
        ch = Chain(Layout(spectral=("resculpt",)), sr, 1, 4096)
        ch.set_target(t, engine="model")
        _, info = render_with_target(ch, x, sr, t, 4096, passes=passes)
        assert info["brightness_tilt_db_oct"] > 0.0
        after[passes] = info["distance_after_db"]
    assert after[3] <= after[2] + 0.05, after


def _max_band_change_db(y, x, sr) -> float:
    """Largest |long-term band level of y - that of x| (dB) over the compared bands both define."""
    from resculpt.dsp.profile import compare_mask, limit_bandwidth, long_term_envelope

    a, b = limit_bandwidth(long_term_envelope(y, sr)), limit_bandwidth(long_term_envelope(x, sr))
    ok = np.isfinite(a) & np.isfinite(b) & compare_mask()
    return float(np.max(np.abs(a[ok] - b[ok])))


@pytest.mark.parametrize("engine", ["model", "match-eq"])
def test_a_live_stream_primed_with_the_inputs_profile_keeps_the_identity_from_the_first_block(resculpt_bundle, engine):
    """A stream (no render, no priming by the whole input) toward the input's own profile: with that profile set as
    the chain's input profile, the output's long-term envelope stays within 0.5 dB of the input's on every band
    (the identity goal, met offline); learning the input as it goes, the same stream moves it by more than that."""
    x, sr = data.load(EXAMPLE, SR)
    x = np.ascontiguousarray(x[: 8 * SR], np.float32)[None]
    fp = fingerprint(x, SR)
    dev = {}
    for primed in (False, True):
        c = Chain(Layout(), SR, 1, 4096)
        c.set_target(fp, engine=engine, add_stage=True)
        if primed:
            c.set_input_profile(fp)
        dev[primed] = _max_band_change_db(c(x), x, SR)
    assert dev[True] < 0.5, dev
    assert dev[False] > 0.5, dev


def test_the_input_profile_outlives_a_preset_change_and_a_bad_one_changes_nothing(resculpt_bundle):
    """The input profile primes every graph the chain builds later (a preset with a target: the model's running
    fingerprint held there); a delta or a profile without a band envelope is refused and the chain keeps what it had;
    None goes back to learning the input."""
    x, _ = data.load(EXAMPLE, SR)
    fp = fingerprint(np.asarray(x[: 4 * SR], np.float32), SR)
    c = Chain(Layout(), SR, 1, 4096)
    c.set_input_profile(fp)
    c.load_preset("warm-radio")
    c.reset()
    st = next(s for s in c.graph.stages if s.name in ("resculpt", "match"))
    assert st._primed is not None and st._hold
    if st.name == "resculpt":
        assert st._holdT[0]
        ok = np.isfinite(fp.env())
        np.testing.assert_allclose(10.0 * np.log10(st._primed[0][ok] / st._primed[1]), fp.env()[ok], atol=1e-3)
    graph = c.graph
    for bad in (describe("more bass"), Profile("target")):
        with pytest.raises(ProfileError):
            c.set_input_profile(bad)
        c.reset()
        assert c.graph is graph
    c.set_input_profile(None)
    c.reset()
    st = next(s for s in c.graph.stages if s.name in ("resculpt", "match"))
    assert st._primed is None
