"""Mask training that survives interruption: compact checkpoints, resumption, stop on a signal, the committed
run and scripts/mask-continue.sh (need the [train] extra: torch; skipped without it)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "models" / "training" / "mask-gen2"


def _smoke_args(out, *extra):
    from resculpt.models.mask import train

    args = train.add_args(argparse.ArgumentParser()).parse_args(["--out", str(out), "--quiet", "--val-every", "0",
                                                                 "--threads", "1", *extra])
    args.smoke, args.batch, args.segment_s, args.adv_start = True, 2, 0.5, 1
    return args


def test_a_resumed_run_ends_where_the_uninterrupted_one_does(tmp_path):
    """Stopped at step 2 and resumed to step 5, a run reaches the weights of the same run made in one go bit
    for bit: the batches depend only on seed and step, the schedule only on the step, and the checkpoint
    holds both optimisers' float32 moments and torch's RNG state."""
    from resculpt.models.mask import train

    train.train(_smoke_args(tmp_path / "a", "--steps", "5", "--warmup", "2"))
    train.train(_smoke_args(tmp_path / "b", "--steps", "5", "--warmup", "2", "--stop-at", "2"))
    ck = torch.load(tmp_path / "b" / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 2 and ck["torch_rng"].dtype == torch.uint8
    s = train.train(_smoke_args(tmp_path / "b", "--steps", "5", "--warmup", "2"))
    assert s["steps"] == 5
    a = torch.load(tmp_path / "a" / "ckpt.pt", map_location="cpu", weights_only=False)["net"]
    b = torch.load(tmp_path / "b" / "ckpt.pt", map_location="cpu", weights_only=False)["net"]
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_stops_training_after_the_current_step_and_saves_it(tmp_path, monkeypatch):
    """SIGTERM during a step lets that step finish, then the run saves ckpt.pt at that step and returns (the
    session's end or a `kill` costs at most one step), and the previous SIGTERM handler is back afterwards."""
    from resculpt.models.mask import mixing, train

    real, calls = mixing.batch, []

    def batch(rng, pools, bsz, n, *a, **k):
        if n == 8000:  # the training batches (0.5 s segments), not feature_stats' 2 s ones
            calls.append(n)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        return real(rng, pools, bsz, n, *a, **k)

    monkeypatch.setattr(mixing, "batch", batch)
    before = signal.getsignal(signal.SIGTERM)
    s = train.train(_smoke_args(tmp_path / "r", "--steps", "50"))
    assert s["steps"] == 2
    assert torch.load(tmp_path / "r" / "ckpt.pt", map_location="cpu", weights_only=False)["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is before


def test_mask_continue_resumes_the_run_folder_and_stops_at_the_end_of_its_schedule(tmp_path):
    """scripts/mask-continue.sh reads RUN/train.args, trains into RUN (here a 3-step smoke run) and stops
    when the schedule is done; a second call resumes the checkpoint (no fresh start, no extra steps)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.args").write_text("# smoke\n--smoke\n--quiet\n")
    # 10 minutes leave the nice-19 smoke run 7.5 minutes after the stop margin, so CPU load from other work on the
    # machine cannot end its chunk before the 3 steps; an unloaded call finishes them in seconds.
    cmd = ["bash", str(REPO / "scripts" / "mask-continue.sh"), "--run", str(run), "--minutes", "10", "--no-teacher"]
    for _ in range(2):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=660)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads((run / "summary.json").read_text())["steps"] == 3
    assert "resuming from" in r.stdout
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == [1, 2, 3]


@pytest.mark.skipif(not (RUN / "ckpt.pt").is_file(), reason="no committed mask-gen2 checkpoint")
def test_the_committed_training_run_is_small_and_resumable():
    """models/training/mask-gen2/ckpt.pt (committed, so a later session adds hours to it) stays under 4 MB and
    loads into the net and both optimisers; its log holds the validation curve from step 0."""
    from resculpt.models.mask.net import MaskNet, MultiResSpecDisc

    assert (RUN / "ckpt.pt").stat().st_size < 4_000_000
    ck = torch.load(RUN / "ckpt.pt", map_location="cpu", weights_only=False)
    net = MaskNet(**ck["net_kwargs"])
    net.load_state_dict(ck["net"])
    torch.optim.AdamW(net.parameters()).load_state_dict(ck["opt_g"])
    disc = MultiResSpecDisc()
    disc.load_state_dict(ck["disc"])
    torch.optim.AdamW(disc.parameters()).load_state_dict(ck["opt_d"])
    vals = [json.loads(x) for x in (RUN / "log.jsonl").read_text().splitlines() if '"val"' in x]
    assert vals[0]["step"] == 0 and ck["step"] > 0
    assert all(np.isfinite(v["val"]["si_sdr_improvement"]) for v in vals)


def test_the_training_log_table_lists_every_validation_with_cumulative_wall_hours(tmp_path):
    """scripts/mask_training_log.py turns log.jsonl into the validation curve: one row per validation record
    (first and last always kept with --every), wall time in hours, and the mean training loss logged since the
    previous row."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mtl", REPO / "scripts" / "mask_training_log.py")
    mtl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mtl)
    val = {"si_sdr_out": 11.0, "si_sdr_improvement": 4.0, "mrstft": 1.2}
    recs = [{"step": 0, "val": val, "wall_s": 0.0}, {"step": 10, "loss": 1.0, "wall_s": 10.0},
            {"step": 20, "loss": 3.0, "wall_s": 20.0}, {"step": 20, "val": val, "wall_s": 3600.0},
            {"step": 30, "loss": 5.0, "wall_s": 3700.0}, {"step": 35, "val": val, "wall_s": 7200.0}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    rows = mtl.curve(tmp_path / "log.jsonl")
    assert [r["step"] for r in rows] == [0, 20, 35]
    assert [r["wall_h"] for r in rows] == [0.0, 1.0, 2.0] and [r["train_loss"] for r in rows][1:] == [2.0, 5.0]
    assert [r["step"] for r in mtl.curve(tmp_path / "log.jsonl", every=1000)] == [0, 35]
    assert "| 20 | 1.00 | 11.00 | +4.00 | 1.200 | 2.000 |" in mtl.table(rows)


def test_the_training_log_shows_the_pause_score_and_presence_accuracy_only_where_the_run_logs_them(tmp_path):
    """A run that logs ``pause_out`` (and ``presence_acc``) gets their columns and their means over the later half
    of its validations under the table; a run that logs neither gets neither."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mtl", REPO / "scripts" / "mask_training_log.py")
    mtl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mtl)
    base = {"si_sdr_out": 11.0, "si_sdr_improvement": 4.0, "mrstft": 1.2}
    recs = [{"step": 100 * i, "val": {**base, "pause_out": p, "presence_acc": a}, "wall_s": 0.0}
            for i, (p, a) in enumerate([(0.4, 0.5), (0.3, 0.7), (0.2, 0.8), (0.1, 0.9)])]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    rows = mtl.curve(tmp_path / "log.jsonl")
    text = mtl.table(rows)
    assert "val pause score | presence accuracy |" in text and "| 0.300 | 0.700 |" in text
    line = mtl.later_half(rows)
    assert "the 2 from step 200" in line and "val pause score 0.150" in line and "presence accuracy 0.850" in line
    (tmp_path / "log.jsonl").write_text("".join(json.dumps({"step": r["step"], "val": base}) + "\n" for r in recs))
    plain = mtl.curve(tmp_path / "log.jsonl")
    assert "pause" not in mtl.table(plain) and mtl.later_half(plain) == ""


def test_the_paired_log_compares_a_branch_with_its_control_at_the_steps_both_validated(tmp_path):
    """mask_training_log.py --against: the two runs' validations side by side at shared steps, the differences, and
    their means over every validation after step 0 and over the later half."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mtl", REPO / "scripts" / "mask_training_log.py")
    mtl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mtl)
    for name, impr in (("run", [4.0, 4.2, 4.4, 4.6, 9.9]), ("ctrl", [4.0, 4.1, 4.3, 4.3])):
        (tmp_path / name).mkdir()
        recs = [{"step": 500 * i, "val": {"si_sdr_improvement": v, "stoi_torch_out": 0.8 + 0.01 * i}}
                for i, v in enumerate(impr)] + [{"step": 10, "loss": 1.0}]
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text, mean = mtl.paired(tmp_path / "run", tmp_path / "ctrl")
    assert mean["steps"] == 4  # step 2000 is the branch's alone
    assert abs(mean["sdr_all"] - (0.1 + 0.1 + 0.3) / 3) < 1e-9 and abs(mean["sdr_later"] - (0.1 + 0.3) / 2) < 1e-9
    assert abs(mean["stoi_all"]) < 1e-9
    assert "| 1500 | +4.600 | +4.300 | +0.300 |" in text
