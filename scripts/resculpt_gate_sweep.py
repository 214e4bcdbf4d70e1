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
   anything there). With ``--absolute-prior`` two more rows, under the checkpoint's gate: the absolute prior
   (``ResculptNet.absolute_prior``: an absolute row's gain = the level-free target-minus-running shape) with its
   residual head as it loads from a checkpoint without one (gain 0: the prior alone), and with the shared head's
   gain as the residual (what the prior adds to the trained net without retraining).

    .venv/bin/python scripts/resculpt_gate_sweep.py --ckpt models/training/resculpt-gen1/ckpt.pt \\
        [--gate 2 1 25 120 --gate 2 1 6 300 ...] [--n-val 16] [--prior-only] [--absolute-prior]

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
    ap.add_argument("--absolute-prior", action="store_true", help="add the rows of the absolute prior")
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
        return pt.apply_delta(px, *nudge_tensors([describe(text)] * x.shape[0]), SR)

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
    if a.absolute_prior:
        for label, share in (("absolute prior alone", False), ("absolute prior + the shared head's gain", True)):
            net = ResculptNet(**(kw | {"gate": ck["net_kwargs"].get("gate"), "absolute_prior": True}))
            net.load_state_dict(ck["net"])
            if share:
                net.head_abs.load_state_dict(net.head.state_dict())
            r = evaluate(Resculptor(net, SR), tp, val)
            print(f"| {label}, gate {net.gate} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |", flush=True)
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
        prior_dims(Resculptor(net.eval(), SR), tp, x, px)
    return 0


PRIOR_DIMS = ("centroid_hz", "rolloff_hz", "tilt_db_oct", "lufs_integrated", "lra_lu", "crest_db")


@torch.no_grad()
def prior_dims(model, tp, x, px) -> None:
    """Per description of the validation (``train.evaluate``'s), mean |value - target| over the clean clips, input
    -> output: the level-free band shape (dB RMS over the compared bands both define) and each timbre dim."""
    from resculpt.models.resculpt.train import EVAL_LEVEL_DESCRIPTORS

    def shape_rms(a, b):
        ok = a["band_env_ok"] & b["band_env_ok"] & torch.tensor(C.compare_mask())
        d = (a["band_env_db"] - b["band_env_db"]) * ok
        d = (d - d.sum(-1, keepdim=True) / ok.sum(-1, keepdim=True).clamp_min(1)) * ok
        return (d.pow(2).sum(-1) / ok.sum(-1).clamp_min(1)).sqrt()

    print("\n## The relative prior alone: mean |value - target|, input -> output\n")
    print("| description | band shape dB | " + " | ".join(PRIOR_DIMS) + " |")
    print("|---|" + "---|" * (len(PRIOR_DIMS) + 1))
    for text in (*C.EVAL_DESCRIPTORS, *EVAL_LEVEL_DESCRIPTORS):
        band, dims = nudge_tensors([describe(text)] * x.shape[0])
        tgt = pt.apply_delta(px, band, dims, SR)
        po = tp(model(x, pt.delta_cond(band, dims, SR, "timbre")))
        cells = [f"{float(shape_rms(px, tgt).mean()):.2f} -> {float(shape_rms(po, tgt).mean()):.2f}"]
        for k in PRIOR_DIMS:
            cells.append(f"{float((px[k] - tgt[k]).abs().mean()):.2f} -> {float((po[k] - tgt[k]).abs().mean()):.2f}")
        print(f"| {text} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
