"""The benchmark's reference rows run two ways: through the product's stage (ONNX graphs, primed with the render's
long-term envelope, one pass: ``benchmarks/resculpt_model.py --passes 1``) and through torch (``Resculptor`` with
the running fingerprint primed by ``ResculptNet.prime_state`` and held, as training's held rows run). Both scored
with the fingerprint's profile error ratio over the timbre dims without loudness (torch has no loudness
follower). If the two agree, what a checkpoint does on the benchmark is what the net does on those rows, not an
artefact of the stage's priming or graphs.

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/resculpt_torch_vs_stage.py \\
        LABEL=REV[:SWITCH]=BUNDLE ... [--category music] [--files 4] [--seconds 4] \\
        [--out benchmarks/results/resculpt_torch_vs_stage]

REV[:SWITCH]: the commit whose ``models/training/resculpt-gen1/ckpt.pt`` torch loads (``:absolute_prior``: switched
on, as the shipped bundle was exported); BUNDLE: the bundle exported from it, which the stage runs.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from resculpt_bench_io import REPO, bench, generated_by, held_ratio, write_result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/resculpt_torch_vs_stage.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=REV[:SWITCH]=BUNDLE")
    ap.add_argument("--category", default="music", choices=["speech", "music"])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "resculpt_torch_vs_stage"))
    a = ap.parse_args(argv)
    bm = bench()
    from resculpt.dsp.profile import distance, fingerprint
    from resculpt.models.resculpt.net import Resculptor
    from resculpt_val_compare import load

    torch.set_num_threads(1)
    t0, sr = time.time(), 48000
    a.categories = [a.category]
    clips = bm.load_clips(a, sr)
    fps = {n: fingerprint(x, sr, n) for n, _, x in clips}
    names = [c[0] for c in clips]
    w = bm.matched_weights("timbre") | {"lufs_integrated": 0.0}
    runs = []
    for r in a.runs:
        label, rev, bundle = r.split("=")
        rv, _, switch = rev.partition(":")
        runs.append((label, rev, bundle, load(rv, switch or None)[0].eval()))
    rows = []
    for i, (name, _, x) in enumerate(clips):
        tgt = fps[names[(i + 1) % len(names)]]
        d_in = distance(fps[name], tgt, w)
        row = {"file": name, "target": names[(i + 1) % len(names)]}
        for label, _, bundle, net in runs:
            ys = bm.model_render(x, sr, tgt, "timbre", bundle, passes=1)
            row[label] = {"stage": distance(fingerprint(ys, sr), tgt, w) / d_in,
                          "torch": held_ratio(Resculptor(net, sr), x, sr, tgt, w, d_in)}
        rows.append(row)
        print(name, {lab: {k: round(v, 3) for k, v in row[lab].items()} for lab, *_ in runs}, flush=True)
    cmd, head = generated_by("scripts/resculpt_torch_vs_stage.py", argv, t0)
    L = ["# The benchmark's reference rows through the stage and through torch", "",
         head + f"{len(clips)} val {a.category} files, first {a.seconds:g} s at {sr} Hz, each moved toward the next; profile "
         "error ratio over the timbre dims without loudness (lower is closer). Stage: the bundle, one pass, primed "
         "with the render's long-term envelope; torch: the checkpoint, primed by `prime_state` and held.", "",
         "| file | " + " | ".join(f"{lab} stage | {lab} torch" for lab, *_ in runs) + " |",
         "|---|" + "---|---|" * len(runs)]
    for r in rows:
        L.append(f"| {r['file']} | " + " | ".join(f"{r[lab]['stage']:.3f} | {r[lab]['torch']:.3f}" for lab, *_ in runs)
                 + " |")
    L.append("| mean | " + " | ".join(f"{np.mean([r[lab]['stage'] for r in rows]):.3f} | "
                                     f"{np.mean([r[lab]['torch'] for r in rows]):.3f}" for lab, *_ in runs) + " |")
    for label, rev, bundle, _ in runs:
        L.append(f"\n{label}: torch `{rev}`, stage `{bundle}`.")
    write_result(a.out, L, {"command": cmd, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
