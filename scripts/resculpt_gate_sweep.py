"""Measurements behind the resculpting generator's identity gate (docs/resculpt-model.md, "Identity").

1. How far the running fingerprint's band shape (what the generator compares a target with) lies from the
   whole-clip profile of the same clip as the clip is heard: RMS (dB) of the level-free difference between
   target and running shape at several times, for the clip's own profile (keep), the clean profile under a
   changed input (restore) and descriptor moves, percentiles over the validation pairs.
2. The validation figures of ``train.evaluate`` for a checkpoint's weights under several identity gates
   (the gate has no weights, so any checkpoint can be evaluated with any gate); with ``--prior-only`` one more
   row: the relative prior alone (``ResculptNet.relative_prior_db``, the output heads zeroed so the learned
   residual, copy-up and deep filter are the identity; under the checkpoint's gate): what the known gain of a
   delta does before any training (absolute rows are then the identity, so only the relative figures mean
   anything there).

    .venv/bin/python scripts/resculpt_gate_sweep.py --ckpt models/training/resculpt-gen1/ckpt.pt \\
        [--gate 2 1 25 120 --gate 2 1 6 300 ...] [--n-val 16] [--prior-only]

Needs the shared data (RESCULPT_DATA). Prints two markdown tables.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from resculpt.dsp.descriptors import describe
from resculpt.models.resculpt import common as C
from resculpt.models.resculpt import degrade
from resculpt.models.resculpt import profile_torch as pt
from resculpt.models.resculpt.net import ResculptNet, Resculptor
from resculpt.models.resculpt.train import evaluate, nudge_tensors

SR = 16000
TIMES_MS = (50, 200, 500, 1000, 2000, 2950)


def shape_difference(net: ResculptNet, fio, inp: torch.Tensor, prof: dict) -> torch.Tensor:
    """(B, T) RMS dB of the level-free target-minus-running band shape the generator's gate reads."""
    cond = pt.cond_vector(prof, SR)
    feat, _ = fio.features(fio.stft(inp))
    B, _, F = feat.shape
    run, _, _, _ = net.running(feat, cond[:, C.V0 : C.REL_I], torch.zeros(B, F), torch.zeros(B, 1))
    return net._inputs(feat, cond, run)[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/resculpt_gate_sweep.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", default="models/training/resculpt-gen1/ckpt.pt")
    ap.add_argument("--gate", type=float, nargs=4, action="append",
                    metavar=("THRESHOLD_DB", "WIDTH_DB", "WARM_DB", "WARM_FRAMES"))
    ap.add_argument("--n-val", type=int, default=16)
    ap.add_argument("--prior-only", action="store_true", help="add the row of the relative prior alone")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    vsrc = degrade.Source.load("val", SR)
    val = [degrade.make_pair(vsrc, 1234, i, 3.0, list(degrade.DEFAULT_OPS)) for i in range(a.n_val)]
    x = torch.tensor(np.stack([v["x"] for v in val]))
    y = torch.tensor(np.stack([v["y"] for v in val]))
    tp = pt.TorchProfiler(SR)
    px, py = tp(x), tp(y)
    probe = Resculptor(ResculptNet(), SR)

    def moved(text):
        return pt.apply_delta(px, *nudge_tensors([describe(text)] * x.shape[0]))

    cases = [("keep (clean clip, own profile)", x, px), ("keep (changed clip, own profile)", y, py),
             ("restore (changed clip, clean profile)", y, px)]
    cases += [(f'"{t}" (clean clip)', x, moved(t)) for t in (*C.EVAL_DESCRIPTORS, "much warmer")]
    print(f"## Band-shape difference target - running fingerprint, dB RMS (p10 / median / p90 over {len(val)} "
          "val pairs of 3 s)\n")
    print("| target | " + " | ".join(f"{t} ms" for t in TIMES_MS) + " |")
    print("|---|" + "---|" * len(TIMES_MS))
    with torch.no_grad():
        for name, inp, prof in cases:
            d = shape_difference(probe.net, probe.fio, inp, prof).numpy()
            cells = []
            for t in TIMES_MS:
                q = np.percentile(d[:, min(d.shape[1] - 1, int(t / C.HOP_MS))], [10, 50, 90])
                cells.append(" / ".join(f"{v:.2f}" for v in q))
            print(f"| {name} | " + " | ".join(cells) + " |")
    ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
    kw = {k: v for k, v in ck["net_kwargs"].items() if k != "gate"}
    print(f"\n## train.evaluate of {a.ckpt} (step {ck['step']}) under identity gates\n")
    keys = ("profile_ratio", "mrstft_out", "keep_band_change_db", "keep_env_max_db", "keep_env_worst_db",
            "descriptor_ratio", "descriptor_ratio_rel", "level_ratio_rel")
    print("| gate (threshold dB, width dB, warm dB, warm frames) | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for gate in [None, *(tuple(g) for g in (a.gate or []))]:
        net = ResculptNet(**kw, gate=gate)
        net.load_state_dict(ck["net"])
        r = evaluate(Resculptor(net, SR), tp, val)
        print(f"| {gate if gate else 'none'} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |", flush=True)
    if a.prior_only:
        net = ResculptNet(**(kw | {"gate": ck["net_kwargs"].get("gate"), "relative_prior": True}))
        net.load_state_dict(ck["net"])
        with torch.no_grad():
            for m in (net.head, net.df):
                m.weight.zero_()
                m.bias.zero_()
        r = evaluate(Resculptor(net.eval(), SR), tp, val)
        print(f"| relative prior alone, gate {net.gate} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
