"""The resculpt trainer (models/resculpt/train.py): a smoke run through the CLI, and resuming from a checkpoint
gives bit-identical weights to an uninterrupted run (same batches, RNG and optimiser state)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
from resculpt.models.resculpt import train as rtrain


def _args(out, *extra):
    a = rtrain.add_args(argparse.ArgumentParser()).parse_args(["--smoke", "--out", str(out), "--quiet", *extra])
    a.batch, a.segment_s, a.val_every, a.adv_start = 3, 0.5, 0, 0
    return a


def test_smoke_run_through_the_cli_writes_checkpoint_log_and_summary(tmp_path):
    """`resculpt train resculpt --smoke` runs 3 steps of every term it has weights for and leaves ckpt.pt,
    log.jsonl (finite losses per step, the closing validation) and summary.json (validation figures)."""
    from resculpt.cli import main

    assert main(["train", "resculpt", "--smoke", "--out", str(tmp_path), "--quiet"]) == 0
    ck = torch.load(tmp_path / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 3 and ck["data_position"] == 3 and "torch_rng" in ck and "opt_g" in ck
    recs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    rows = [r for r in recs if "loss" in r]
    vals = [r for r in recs if "val" in r]
    assert len(rows) == 3 and [v["step"] for v in vals] == [3]  # the closing validation of the call
    assert all(math.isfinite(v) for v in vals[0]["val"].values())
    for r in rows:
        for k in ("recon", "profile", "content", "identity", "adv", "fm", "disc"):
            assert math.isfinite(r[k]), (k, r)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["steps"] == 3 and all(math.isfinite(v) for v in s["val"].values())
    assert {"keep_env_max_db", "keep_env_worst_db", "descriptor_ratio"} <= set(s["val"])


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    """2 steps, stop, resume to 4 == 4 steps straight: every generator and discriminator weight identical."""
    a = _args(tmp_path / "a", "--steps", "4", "--stop-at", "2")
    rtrain.train(a)
    assert torch.load(tmp_path / "a" / "ckpt.pt", weights_only=False)["step"] == 2
    rtrain.train(_args(tmp_path / "a", "--steps", "4"))
    rtrain.train(_args(tmp_path / "b", "--steps", "4"))
    ca = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=False)
    cb = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=False)
    assert ca["step"] == cb["step"] == 4
    for part in ("net", "disc"):
        for k in cb[part]:
            assert torch.equal(ca[part][k], cb[part][k]), (part, k)


def test_train_continue_commits_only_the_resculpt_run_folder_and_resumes_it(tmp_path):
    """scripts/train-continue.sh resculpt reads RUN/train.args, trains into RUN (a 3-step smoke run), commits the
    run folder alone (`git commit -- RUN`: a file staged elsewhere in the worktree stays staged, uncommitted) and
    stops when the schedule is done; a second call resumes the checkpoint (no fresh start, no extra steps)."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    wt = tmp_path / "wt"
    (wt / "scripts").mkdir(parents=True)
    shutil.copy(repo / "scripts" / "train-continue.sh", wt / "scripts")
    (wt / ".venv").symlink_to(repo / ".venv")
    run = wt / "models" / "training" / "rs"
    run.mkdir(parents=True)
    (run / "train.args").write_text("# smoke\n--smoke\n--quiet\n")
    (wt / "other.txt").write_text("not the run's\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "STOP_MARGIN_S": "30"}

    def git(*a):
        return subprocess.run(["git", "-C", str(wt), *a], capture_output=True, text=True, check=True, env=env).stdout

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "start")
    git("add", "other.txt")
    cmd = ["bash", str(wt / "scripts" / "train-continue.sh"), "resculpt", "--run", "models/training/rs",
           "--minutes", "4", "--commit-every", "1"]
    for _ in range(2):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads((run / "summary.json").read_text())["steps"] == 3
    assert "resuming from" in r.stdout
    committed = git("show", "--name-only", "--format=", "HEAD").split()
    assert committed and all(p.startswith("models/training/rs/") for p in committed), committed
    assert "training checkpoint at step 3" in git("log", "-1", "--format=%s")
    assert git("diff", "--cached", "--name-only").split() == ["other.txt"]
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == [1, 2, 3]


def test_nudge_rows_target_their_own_profile_moved_by_a_description_without_reference():
    """Every row in nudge mode: input = the changed or the clean clip, target clip = the input itself, no
    reference (the content term holds the words), and a delta Profile from the descriptor vocabulary that moves
    the band shape; the same batch index draws the same descriptions."""
    import numpy as np

    from resculpt.models.resculpt import degrade

    src = degrade.Source.synthetic(16000, 0)
    data = rtrain.OnTheFly(src, 0.6, ["eq", "gain"], 0)
    out = [rtrain.make_batch(np.random.default_rng([0, 5]), data, 4, 8000, mode_p=(0, 0, 0, 1)) for _ in range(2)]
    inp, ref, has_ref, srcs, modes, nudges = out[0]
    assert modes.tolist() == [3, 3, 3, 3] and not bool(has_ref.any())
    assert torch.equal(srcs, inp)
    assert all(d is not None and d.kind == "delta" for d in nudges)
    assert all(np.abs(np.nan_to_num(d.env())).max() > 0.5 or d.dims["lufs_integrated"] != 0
               or d.dims["crest_db"] != 0 for d in nudges)
    assert [d.meta["description"] for d in nudges] == [d.meta["description"] for d in out[1][5]]


def test_nudge_tensors_move_the_torch_profile_as_apply_delta_moves_a_profile():
    """``nudge_tensors`` + ``profile_torch.apply_delta`` give the target ``dsp.profile.apply_delta`` gives on the
    covered dims (band envelope; centroid, roll-off and tilt moved by the shape and by a move beyond it, as a ratio
    and an offset; loudness/crest as offsets); rows without a delta stay."""
    import numpy as np

    from resculpt.dsp.descriptors import describe
    from resculpt.dsp.profile import Profile, apply_delta
    from resculpt.models.resculpt import profile_torch as pt

    vals = {"centroid_hz": 1200.0, "rolloff_hz": 3500.0, "tilt_db_oct": -5.0, "lufs_integrated": -24.0,
            "lra_lu": 6.0, "crest_db": 14.0}
    env = -40.0 - np.arange(32, dtype=float)
    prof = {k: torch.tensor([v, v]) for k, v in vals.items()} | {k + "_ok": torch.tensor([True, True]) for k in vals}
    prof |= {"band_env_db": torch.tensor(np.stack([env, env]), dtype=torch.float32),
             "band_env_ok": torch.ones(2, 32, dtype=torch.bool)}
    delta = describe("much brighter, a bit louder, compressed")
    delta.dims["centroid_hz"], delta.dims["tilt_db_oct"] = 1.1, 0.3  # beyond what the shape makes
    moved = pt.apply_delta(prof, *rtrain.nudge_tensors([delta, None]), 48000)
    want = apply_delta(Profile("fingerprint", dict(vals), list(env)), delta)
    for k in vals:
        assert abs(float(moved[k][0]) - want.dims[k]) < 1e-3 * max(1.0, abs(want.dims[k])), k
        assert float(moved[k][1]) == vals[k]
    assert np.allclose(moved["band_env_db"][0].numpy(), want.env(), atol=1e-4)
    assert np.allclose(moved["band_env_db"][1].numpy(), env)


def test_identity_term_is_zero_at_the_identity_and_counts_gain_copy_and_taps():
    """losses.identity: 0 for the identity outputs; 1 dB on every band gain, a copy-up gain of 0.1 and a tap
    delta of 1 each add 1."""
    from resculpt.models.resculpt import losses

    g, e, d = torch.zeros(2, 5, 32), torch.zeros(2, 5, 32), torch.zeros(2, 5, 32, 3, 2)
    assert losses.identity(g, e, d).tolist() == [0.0, 0.0]
    assert torch.allclose(losses.identity(g + 1.0, e + 0.1, d + 1.0), torch.tensor([3.0, 3.0]))


def test_a_run_continued_with_a_gate_stores_it_and_keeps_its_weights_loadable(tmp_path):
    """A run trained without the identity gate and continued with --gate: the checkpoint's net arguments carry
    the gate from then on (the export rebuilds the gated net from them), and the weights load into it."""
    from resculpt.models.resculpt.net import ResculptNet

    rtrain.train(_args(tmp_path, "--steps", "3", "--stop-at", "1"))
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["net_kwargs"]["gate"] is None
    rtrain.train(_args(tmp_path, "--steps", "3", "--gate", "2", "1", "25", "120"))
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ck["step"] == 3 and tuple(ck["net_kwargs"]["gate"]) == (2.0, 1.0, 25.0, 120.0)
    ResculptNet(**ck["net_kwargs"]).load_state_dict(ck["net"])


def test_delta_cond_torch_mirror_equals_the_stages_numpy_vector():
    """``profile_torch.delta_cond`` of ``nudge_tensors`` (training's relative rows) equals ``common.delta_cond``
    of the same delta Profile (what the stage passes for a description) in timbre mode, within 1e-6; a row
    without a delta is the zero delta (flag 1, no offsets, no scalar move)."""
    import numpy as np

    from resculpt.dsp.descriptors import describe
    from resculpt.models.resculpt import common as C
    from resculpt.models.resculpt import profile_torch as pt

    delta = describe("much brighter, a bit louder, compressed, warmer")
    v = pt.delta_cond(*rtrain.nudge_tensors([delta, None]), 16000, "timbre")
    np.testing.assert_allclose(v[0].numpy(), C.delta_cond(delta, 16000, "timbre"), atol=1e-6)
    assert v[0, C.DZ0 + C.DIM_NAMES.index("lufs_integrated")] > 0 and v[0, C.DZ0 + C.DIM_NAMES.index("crest_db")] < 0
    assert v[1, C.REL_I] == 1.0 and not v[1, C.S0 : C.M0].any() and not v[1, C.DZ0 :].any()


def test_zero_delta_keep_rows_are_relative_identity_rows_and_leave_the_other_rows_as_they_were():
    """``make_batch(zero_delta_p=1)``: every keep row carries the zero delta (relative form, no move), nudge rows
    their description, the others none; the inputs, modes and descriptions are those of the same batch drawn
    without zero-delta rows."""
    import numpy as np

    from resculpt.models.resculpt import degrade

    src = degrade.Source.synthetic(16000, 0)
    data = rtrain.OnTheFly(src, 0.6, ["eq", "gain"], 0)
    a = rtrain.make_batch(np.random.default_rng([0, 7]), data, 8, 8000, mode_p=(1, 1, 1, 1))
    b = rtrain.make_batch(np.random.default_rng([0, 7]), data, 8, 8000, mode_p=(1, 1, 1, 1), zero_delta_p=1.0)
    modes = b[4].tolist()
    assert 2 in modes and 3 in modes
    for x, y in zip(a[:5], b[:5]):
        assert torch.equal(x, y)
    for m, da, db in zip(modes, a[5], b[5]):
        if m == 2:
            assert da is None and db.kind == "delta" and not np.isfinite(db.env()).any()
        elif m == 3:
            assert db.meta["description"] == da.meta["description"]
        else:
            assert da is None and db is None


def test_a_checkpoint_of_the_124_float_layout_resumes_with_zero_weights_and_moments_on_the_new_slots(tmp_path):
    """A run whose checkpoint has the FiLM width of the 124-float conditioning (made here by cutting the relative
    slots out of a fresh run's generator and optimiser state) resumes: the new columns load as zeros, Adam's
    moments there too, and training continues (finite weights after the next step)."""
    from resculpt.models.resculpt import common as C

    rtrain.train(_args(tmp_path, "--steps", "2", "--stop-at", "1"))
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=False)

    def cut(t):
        return torch.cat([t[:, : C.COND_DIM_V1], t[:, C.COND_DIM :]], 1)

    names = [k for k in ck["net"] if k.startswith("films.") and k.endswith(".weight")]
    for k in names:
        ck["net"][k] = cut(ck["net"][k])
    order = list(ck["net"])  # AdamW's state is keyed by parameter index, in named_parameters order
    for i, k in enumerate(order):
        st = ck["opt_g"]["state"].get(i)
        if k in names and st:
            for m in ("exp_avg", "exp_avg_sq"):
                st[m] = cut(st[m])
    torch.save(ck, tmp_path / "ckpt.pt")
    tr = rtrain.Trainer(_args(tmp_path, "--steps", "2"))
    for f in tr.model.net.films:
        assert f.weight.shape[1] == C.COND_DIM + C.RUN_DIM and not f.weight[:, C.COND_DIM_V1 : C.COND_DIM].any()
        st = tr.opt_g.state[f.weight]
        assert st["exp_avg"].shape == f.weight.shape and not st["exp_avg_sq"][:, C.COND_DIM_V1 : C.COND_DIM].any()
    tr.train_step()
    assert all(torch.isfinite(p).all() for p in tr.model.net.parameters())


def test_a_run_continued_with_the_relative_prior_stores_it_and_keeps_its_weights_loadable(tmp_path):
    """A run trained without the relative prior and continued with --relative-prior: the checkpoint's net
    arguments carry it from then on (a later resume without the flag keeps it), and the weights load into it."""
    from resculpt.models.resculpt.net import ResculptNet

    rtrain.train(_args(tmp_path, "--steps", "3", "--stop-at", "1"))
    assert not torch.load(tmp_path / "ckpt.pt", weights_only=False)["net_kwargs"].get("relative_prior")
    rtrain.train(_args(tmp_path, "--steps", "3", "--stop-at", "2", "--relative-prior"))
    rtrain.train(_args(tmp_path, "--steps", "3"))
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ck["step"] == 3 and ck["net_kwargs"]["relative_prior"] is True
    ResculptNet(**ck["net_kwargs"]).load_state_dict(ck["net"])


def _args_nudge(out, *extra):
    """``_args`` with 4 rows: the smoke batch's modes cycle restore, move, keep, nudge, so one row is relative."""
    a = _args(out, *extra)
    a.batch = 4
    return a


def _assert_fresh_moments_only_for(tr, before, new: tuple) -> None:
    """The trainer resumed from the checkpoint ``before`` gives the parameters whose names start with ``new`` no
    optimiser moments and every other parameter its saved ones (re-indexed to the new parameter order)."""
    named = list(tr.model.net.named_parameters())
    assert all(p not in tr.opt_g.state for n, p in named if n.startswith(new))
    old = [p for n, p in named if not n.startswith(new)]
    for i, p in enumerate(old):
        if i in before["opt_g"]["state"]:
            assert torch.equal(tr.opt_g.state[p]["exp_avg"], before["opt_g"]["state"][i]["exp_avg"])


def test_a_run_continued_with_the_residual_scale_starts_it_at_zero_and_keeps_the_optimiser_state(tmp_path):
    """A run with the relative prior continued with --residual-scale: the net arguments carry it from then on,
    the scales load at zero with fresh optimiser moments, every other parameter keeps its saved moments (re-indexed
    to the new parameter order), and training moves the scales off zero."""
    from resculpt.models.resculpt.net import ResculptNet

    rtrain.train(_args_nudge(tmp_path, "--steps", "4", "--stop-at", "2", "--relative-prior"))
    before = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    tr = rtrain.Trainer(_args_nudge(tmp_path, "--steps", "4", "--residual-scale"))
    net = tr.model.net
    assert tr.kw["residual_scale"] is True and torch.count_nonzero(net.rel_scale) == 0
    _assert_fresh_moments_only_for(tr, before, ("rel_scale",))
    rtrain.train(_args_nudge(tmp_path, "--steps", "4", "--residual-scale"))
    rtrain.train(_args_nudge(tmp_path, "--steps", "4"))
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ck["step"] == 4 and ck["net_kwargs"]["residual_scale"] is True
    assert torch.count_nonzero(ck["net"]["rel_scale"]) > 0
    ResculptNet(**ck["net_kwargs"]).load_state_dict(ck["net"])


def test_a_run_continued_with_the_absolute_prior_starts_its_residual_heads_at_zero_and_keeps_the_optimiser_state(tmp_path):
    """A run continued with --absolute-prior: the net arguments carry it from then on, the residual heads load at
    the identity (zero weights) with fresh optimiser moments, every other parameter keeps its saved moments, and
    training moves the residual's gain channel off zero."""
    from resculpt.models.resculpt.net import ResculptNet

    rtrain.train(_args(tmp_path, "--steps", "4", "--stop-at", "2"))
    before = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    tr = rtrain.Trainer(_args(tmp_path, "--steps", "4", "--absolute-prior"))
    net = tr.model.net
    assert tr.kw["absolute_prior"] is True
    assert torch.count_nonzero(net.head_abs.weight) == 0 and torch.count_nonzero(net.df_abs.weight) == 0
    _assert_fresh_moments_only_for(tr, before, ("head_abs", "df_abs"))
    rtrain.train(_args(tmp_path, "--steps", "4", "--absolute-prior"))
    rtrain.train(_args(tmp_path, "--steps", "4"))
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ck["step"] == 4 and ck["net_kwargs"]["absolute_prior"] is True
    assert torch.count_nonzero(ck["net"]["head_abs.weight"][0]) > 0
    ResculptNet(**ck["net_kwargs"]).load_state_dict(ck["net"])


def test_a_run_continued_with_relative_heads_replaces_the_residual_scale_and_trains_the_heads(tmp_path):
    """A run with the residual scale continued with --relative-heads: the net arguments switch the scale off and
    the heads on (also when train.args still names --residual-scale), the heads load at the identity with fresh
    optimiser moments, and training moves their gain channel off zero."""
    from resculpt.models.resculpt.net import ResculptNet

    rtrain.train(_args_nudge(tmp_path, "--steps", "4", "--stop-at", "2", "--relative-prior", "--residual-scale"))
    tr = rtrain.Trainer(_args_nudge(tmp_path, "--steps", "4", "--residual-scale", "--relative-heads"))
    assert tr.kw["relative_heads"] is True and tr.kw["residual_scale"] is False
    assert torch.count_nonzero(tr.model.net.head_rel.weight) == 0
    rtrain.train(_args_nudge(tmp_path, "--steps", "4", "--residual-scale", "--relative-heads"))
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ck["step"] == 4 and ck["net_kwargs"]["relative_heads"] is True and "rel_scale" not in ck["net"]
    assert torch.count_nonzero(ck["net"]["head_rel.weight"][0]) > 0
    ResculptNet(**ck["net_kwargs"]).load_state_dict(ck["net"])


def test_level_match_makes_a_loss_blind_to_the_outputs_level_and_leaves_rows_without_reference_alone():
    """losses.level_match: a selected row comes out at its reference's RMS whatever the output's gain, so
    mrstft of the result is the same at 0 and +12 dB and its gradient is orthogonal to the output (no pull on
    the broadband level); an unselected row is returned as it is."""
    from resculpt.models.resculpt import losses

    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 8000, generator=g) * 0.1
    y = (ref * 0.5 + 0.02 * torch.randn(2, 8000, generator=g)).requires_grad_(True)
    rows = torch.tensor([True, False])
    out = losses.level_match(y, ref, rows)
    assert torch.allclose(out[0].pow(2).mean(), ref[0].pow(2).mean(), rtol=1e-5)
    assert torch.equal(out[1], y[1])
    l1 = losses.mrstft(losses.level_match(y[:1], ref[:1], rows[:1]), ref[:1])
    l4 = losses.mrstft(losses.level_match(4.0 * y[:1], ref[:1], rows[:1]), ref[:1])
    assert abs(float(l1.detach()) - float(l4)) < 1e-5 * float(l1.detach())
    l1.backward()
    gr = y.grad[0]
    assert float(gr.norm()) > 0
    assert abs(float((gr * y[0].detach()).sum())) < 1e-4 * float(gr.norm() * y[0].detach().norm())


def test_weight_sets_one_loss_terms_weight_and_names_the_terms_when_misspelt(tmp_path):
    """--weight profile=5: the checkpoint's loss weights hold 5 for the profile term and the defaults elsewhere;
    --off wins over --weight; an unknown term stops the run with the list of terms."""
    from resculpt.models.resculpt import losses

    rtrain.train(_args(tmp_path / "a", "--steps", "1", "--weight", "profile=5", "--weight", "perc=0.25", "--off", "perc"))
    w = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=False)["loss_w"]
    assert w["profile"] == 5.0 and w["perc"] == 0.0 and w["recon"] == losses.LOSS_W["recon"]
    with pytest.raises(SystemExit, match="recon"):
        rtrain.train(_args(tmp_path / "b", "--steps", "1", "--weight", "profil=5"))


def test_level_match_runs_in_the_training_step_and_changes_the_weights_it_reaches(tmp_path):
    """--level-match: the same seed and batches end at other weights than a run without it, and the
    validation stays finite."""
    a, b = tmp_path / "a", tmp_path / "b"
    rtrain.train(_args(a, "--steps", "2"))
    sb = rtrain.train(_args(b, "--steps", "2", "--level-match"))
    wa = torch.load(a / "ckpt.pt", weights_only=False)["net"]
    wb = torch.load(b / "ckpt.pt", weights_only=False)["net"]
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    assert math.isfinite(sb["val"]["profile_ratio"])


def test_held_rows_train_as_an_offline_render_runs_the_net_and_validation_reports_that_condition(tmp_path):
    """--held-p 1: every row's running fingerprint is primed with its crop's and held, so the same seed and batches
    end at other weights than a run without it; the validation reports the held restore ratio and keep-mode
    envelope change beside the live ones."""
    a, b = tmp_path / "a", tmp_path / "b"
    sa = rtrain.train(_args(a, "--steps", "2"))
    sb = rtrain.train(_args(b, "--steps", "2", "--held-p", "1"))
    wa = torch.load(a / "ckpt.pt", weights_only=False)["net"]
    wb = torch.load(b / "ckpt.pt", weights_only=False)["net"]
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    for s in (sa, sb):
        v = s["val"]
        assert math.isfinite(v["profile_ratio_held"]) and math.isfinite(v["keep_env_max_db_held"])


def test_the_held_move_ratio_is_one_for_the_identity_and_below_one_for_the_absolute_prior():
    """``move_ratio_held`` (each clean clip toward the next clip's profile, held as an offline render runs it): a
    net that returns its input scores exactly 1 (the input's own distance), and the absolute prior alone (its
    residual heads at the identity) moves the clips toward their targets (ratio < 0.9)."""
    import numpy as np
    from resculpt.models.resculpt import profile_torch as pt
    from resculpt.models.resculpt.net import ResculptNet, Resculptor

    sr, n = 16000, 3 * 16000
    t = np.arange(n) / sr
    rng = np.random.default_rng(0)
    val = []
    for k, (f0, tilt) in enumerate(((120.0, -1.0), (210.0, 1.5), (160.0, -3.0))):
        x = sum((h ** tilt) * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 30) if f0 * h < 7000)
        x = (0.05 * x / np.abs(x).max() * (0.6 + 0.4 * np.sin(2 * np.pi * (2 + k) * t))
             + 0.002 * rng.standard_normal(n)).astype(np.float32)
        val.append({"x": x, "y": x})
    tp = pt.TorchProfiler(sr)
    with torch.no_grad():
        same = rtrain.evaluate(Resculptor(ResculptNet(lookahead=1), sr), tp, val)["move_ratio_held"]
        moved = rtrain.evaluate(Resculptor(ResculptNet(lookahead=1, absolute_prior=True), sr), tp, val)["move_ratio_held"]
    assert abs(same - 1.0) < 1e-3, same
    assert moved < 0.9, moved


def test_profile_exclude_leaves_exactly_the_loudness_term_out_of_the_profile_loss_and_reports_excl_ratios(tmp_path):
    """--profile-exclude lufs_integrated: the run's profile-loss weights zero that dim and no other (default: none
    zeroed), so a 6 dB level change costs nothing while a band-shape change costs what it costs with the dim
    undefined in the target (the term removed from numerator and normaliser alike); the validation adds the
    ``*_excl`` ratios only for such a run."""
    import numpy as np
    from resculpt.models.resculpt import profile_torch as pt

    sr, n = 16000, 16000
    t = np.arange(n) / sr
    x = sum(h ** -1.0 * np.sin(2 * np.pi * 150.0 * h * t) for h in range(1, 40) if 150.0 * h < 7000)
    x = torch.tensor((0.05 * x / np.abs(x).max() * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)))[None], dtype=torch.float32)
    tp = pt.TorchProfiler(sr)
    P_a, P_loud = tp(x), tp(2.0 * x)
    P_shape = tp(2.0 * torch.tensor(np.convolve(x[0].numpy(), [1.0, 0.6], "same")[None], dtype=torch.float32))

    trs = {}
    for name, extra in (("plain", ()), ("excl", ("--profile-exclude", "lufs_integrated"))):
        a = _args(tmp_path / name, "--n-val", "2", *extra)
        trs[name] = rtrain.Trainer(a)
    assert trs["plain"].pw == {} and trs["excl"].pw == {"lufs_integrated": 0.0}
    w = trs["excl"].pw
    assert float(pt.squared_distance(P_loud, P_a)) > 0.01  # 6 dB of level counts by default
    assert float(pt.squared_distance(P_loud, P_a, w)) < 1e-6  # and not at all without the term
    undefined = dict(P_shape, lufs_integrated_ok=torch.zeros_like(P_shape["lufs_integrated_ok"]))
    assert torch.allclose(pt.squared_distance(P_shape, P_a, w), pt.squared_distance(undefined, P_a), atol=1e-7)
    assert float(pt.squared_distance(P_shape, P_a, w)) > 1e-4
    v_plain, v_excl = trs["plain"].evaluate(), trs["excl"].evaluate()
    assert not any(k.endswith("_excl") for k in v_plain)
    for k in ("profile_ratio_excl", "profile_ratio_held_excl", "move_ratio_held_excl"):
        assert math.isfinite(v_excl[k])
