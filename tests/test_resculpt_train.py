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
        for k in ("recon", "profile", "content", "adv", "fm", "disc"):
            assert math.isfinite(r[k]), (k, r)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["steps"] == 3 and all(math.isfinite(v) for v in s["val"].values())


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
