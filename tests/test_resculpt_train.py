"""The resculpt trainer (models/resculpt/train.py): a smoke run through the CLI, and resuming from a checkpoint
gives bit-identical weights to an uninterrupted run (same batches, RNG and optimiser state)."""

from __future__ import annotations

import argparse
import json
import math

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
    covered dims (band envelope, centroid as a ratio, tilt/loudness/crest as offsets); rows without a delta stay."""
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
    moved = pt.apply_delta(prof, *rtrain.nudge_tensors([delta, None]))
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
