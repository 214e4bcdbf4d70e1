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
    log.jsonl (finite losses) and summary.json (validation figures)."""
    from resculpt.cli import main

    assert main(["train", "resculpt", "--smoke", "--out", str(tmp_path), "--quiet"]) == 0
    ck = torch.load(tmp_path / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 3 and ck["data_position"] == 3 and "torch_rng" in ck and "opt_g" in ck
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 3
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
