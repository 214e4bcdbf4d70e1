"""Validation of codec-envelope checkpoints on the val pairs (``models/codec/train.py``'s validate, every val*
folder), plus the signed error of the rebuilt band by frame level on Opus 6/8 kbps: where the net is too loud.

    .venv/bin/python scripts/codec_envelope_eval.py models/training/codec-gen1/ckpt.pt [more ckpts] \
        [--pairs runs/codec-pairs]

An old checkpoint: ``git show COMMIT:models/training/codec-gen1/ckpt.pt > /tmp/ck.pt``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from resculpt.models.codec.net import CodecEnvNet
from resculpt.models.codec.train import load_pairs, validate

LEVELS = ((-10, 1), (-20, -10), (-30, -20), (-45, -30), (-200, -45))  # frame level against the clip's loudest, dB


def bias_by_level(net, pairs) -> list[tuple[str, int, float]]:
    """(level range, frames, mean signed error dB of the rebuilt bands) on Opus 6/8 kbps pairs."""
    rows = []
    with torch.no_grad():
        for p in pairs:
            if p["codec"] not in ("opus:6", "opus:8"):
                continue
            y = net(torch.from_numpy(p["feat"])[None])[0][0].numpy()
            reb = (p["weight"] > 0) & (p["feat"][:, 32:64] == 0)
            lvl = p["feat"][:, 65] * 30.0  # the absolute-level feature, dB
            rel = lvl - lvl.max()
            err = (y - p["target"]) * 20.0
            rows += [(rel[k], err[k][reb[k]].mean()) for k in range(len(y)) if reb[k].any()]
    a = np.array(rows)
    out = []
    for lo, hi in LEVELS:
        m = (a[:, 0] >= lo) & (a[:, 0] < hi)
        out.append((f"{lo}..{hi} dB", int(m.sum()), float(a[m, 1].mean()) if m.any() else float("nan")))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--pairs", default="runs/codec-pairs")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    val = [q for d in sorted(Path(a.pairs).glob("val*")) for q in load_pairs(d)]
    for ck in a.ckpts:
        s = torch.load(ck, weights_only=False)
        net = CodecEnvNet(int(s["hidden"]))
        net.load_state_dict(s["net"])
        net.eval()
        print(f"{ck}: step {s['step']}")
        for k, v in validate(net, val).items():
            print(f"  {k:28s} {v}")
        print("  signed rebuilt-band error by frame level (Opus 6/8 kbps):")
        for rng, n, b in bias_by_level(net, val):
            print(f"    {rng:12s} {n:6d} frames  {b:+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
