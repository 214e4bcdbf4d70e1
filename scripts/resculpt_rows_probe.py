"""Where a trained residual wins and loses against the prior alone: held move rows (each clip toward the next
clip of its own kind, the running fingerprint primed with the clip's and held, as an offline render runs the net)
on val files, in torch, split by category (speech / music) and by where the clip is cut from the file: its first
4 s (as the benchmark cuts it), 4 s from a random offset past the first second, and 3 s from one (as the
training's crops). Scored by the fingerprint's profile error ratio over the timbre dims without loudness (the
loudness follower moves loudness outside the net). Also the composition of a pair cache (recordings and pairs per
kind), since a residual can only learn a kind from what the cache holds of it.

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/resculpt_rows_probe.py \\
        LABEL=REV[:SWITCH][@RUN] ... [--files 6] [--rate 16000] [--pairs runs/resculpt-pairs --max-pairs 2048] \\
        [--out benchmarks/results/resculpt_rows_probe]

REV[:SWITCH][@RUN]: as ``scripts/resculpt_val_compare.py`` (the commit whose ``models/training/RUN/ckpt.pt`` is
read; ``:absolute_prior`` switches the absolute prior on at load, with its residual heads at the identity: the
prior alone).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np
import torch
from resculpt_bench_io import REPO, bench, generated_by, held_ratio, write_result

CUTS = (("first 4 s", 4.0, False), ("4 s from a random offset", 4.0, True), ("3 s from a random offset", 3.0, True))
MIN_S = 12.0  # files at least this long, so a random offset past the first second leaves room for 4 s


def cache_composition(folder: str, max_pairs: int) -> dict:
    """{kind: {"pairs": n, "recordings": n}} of a pair cache (``cache.PairCache``)."""
    from resculpt.models.resculpt.cache import PairCache

    pc = PairCache(folder, max_pairs)
    out = collections.defaultdict(lambda: {"pairs": 0, "recordings": set()})
    for c in pc.clip:
        out[c["kind"]]["pairs"] += 1
        out[c["kind"]]["recordings"].add(c["id"])
    return {k: {"pairs": v["pairs"], "recordings": len(v["recordings"])} for k, v in sorted(out.items())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/resculpt_rows_probe.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=REV[:SWITCH][@RUN]")
    ap.add_argument("--files", type=int, default=6, help=f"val files per category (at least {MIN_S:g} s long)")
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--seed", type=int, default=0, help="of the random offsets")
    ap.add_argument("--pairs", default="runs/resculpt-pairs", help="pair cache whose composition is reported ('' none)")
    ap.add_argument("--max-pairs", type=int, default=2048)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "resculpt_rows_probe"))
    a = ap.parse_args(argv)
    bm = bench()
    from resculpt.dsp.profile import distance, fingerprint
    from resculpt.models import data
    from resculpt.models.resculpt.net import Resculptor
    from resculpt_val_compare import load

    torch.set_num_threads(1)
    t0, sr = time.time(), a.rate
    w = bm.matched_weights("timbre") | {"lufs_integrated": 0.0}
    nets = []
    for r in a.runs:
        label, spec = r.split("=", 1)
        spec, _, run = spec.partition("@")
        rev, _, switch = spec.partition(":")
        net, step, _ = load(rev, switch or None, run or "resculpt-gen1")
        nets.append((label, spec + (f"@{run}" if run else ""), step, Resculptor(net.eval(), sr)))
    rng = np.random.default_rng(a.seed)
    files = {cat: [it for it in data.select(cat, "val") if it.duration_s >= MIN_S][: a.files] for cat in ("speech", "music")}
    audio = {cat: [data.load(it, sample_rate=sr)[0] for it in its] for cat, its in files.items()}
    table = {}
    for cut, seconds, offset in CUTS:
        for cat in ("speech", "music"):
            n = int(seconds * sr)
            xs = []
            for x in audio[cat]:
                o = int(rng.integers(sr, len(x) - n)) if offset else 0
                xs.append(np.ascontiguousarray(x[o : o + n], np.float32))
            fps = [fingerprint(x, sr) for x in xs]
            ratios = {lab: [] for lab, *_ in nets}
            for i, x in enumerate(xs):
                tgt = fps[(i + 1) % len(xs)]
                d_in = distance(fps[i], tgt, w)
                for lab, _, _, model in nets:
                    ratios[lab].append(held_ratio(model, x, sr, tgt, w, d_in))
            table[(cut, cat)] = ratios
            print(cut, cat, {lab: round(float(np.mean(v)), 3) for lab, v in ratios.items()}, flush=True)
    comp = cache_composition(a.pairs, a.max_pairs) if a.pairs else {}
    cmd, head = generated_by("scripts/resculpt_rows_probe.py", argv, t0)
    L = ["# Held move rows by category and cut: trained residual against the prior alone", "",
         head + f"{a.files} val files per category (at least {MIN_S:g} s long), {sr} Hz, each moved toward the next of its "
         "kind, held (torch); profile error ratio over the timbre dims without loudness, mean over files (lower is "
         "closer to the target).", "",
         "| cut | category | " + " | ".join(lab for lab, *_ in nets) + " |", "|---|---|" + "---|" * len(nets)]
    for (cut, cat), ratios in table.items():
        L.append(f"| {cut} | {cat} | " + " | ".join(f"{np.mean(ratios[lab]):.3f}" for lab, *_ in nets) + " |")
    L.append("")
    for lab, spec, step, _ in nets:
        L.append(f"- {lab}: `{spec}` (step {step})")
    if comp:
        L += ["", f"Pair cache `{a.pairs}` (first {a.max_pairs} pairs): "
              + ", ".join(f"{k} {v['pairs']} pairs from {v['recordings']} recordings" for k, v in comp.items()) + "."]
    write_result(a.out, L, {"command": cmd, "files": {c: [it.path.name for it in its] for c, its in files.items()},
                            "rows": [{"cut": c, "category": k, **{lab: r[lab] for lab, *_ in nets}}
                                     for (c, k), r in table.items()],
                            "nets": [{"label": lab, "spec": s, "step": st} for lab, s, st, _ in nets],
                            "cache": comp})
    return 0


if __name__ == "__main__":
    sys.exit(main())
