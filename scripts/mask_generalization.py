"""Where the learned mask stops generalising: the training-validation metrics on four crossings of speakers and
noise recordings (train/val speakers x train/val noises), the same mixture recipe as the fixed validation set
(``mixing.validation_set``: 12 utterances x SNR 0/5/10/15 dB, 4 s, no music, no reverb, no augmentation).

If mixtures of *training* noise score much better than the same speakers with *validation* noise, what limits the
net on unseen audio is the ~17 minutes of training noise, not its size or the objective.

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/mask_generalization.py NAME=CKPT ... \
        --out benchmarks/results/mask_generalization.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from resculpt.models.mask import mixing
from resculpt.models.mask.export import load_net
from resculpt.models.mask.train import evaluate

REPO = Path(__file__).resolve().parent.parent
CROSSINGS = (("val", "val"), ("val", "train"), ("train", "train"), ("train", "val"))


def crossing_sets(n_utts: int, seconds: float, seed: int):
    """{(speaker split, noise split): mixtures} for every crossing; the (val, val) set is the training validation."""
    pools = {s: mixing.load_pools(s) for s in ("train", "val")}
    out = {}
    for sp, no in CROSSINGS:
        p = mixing.Pools(pools[sp].speech, pools[sp].speech_ids, pools[no].noise, pools[no].noise_ids,
                         [], [], [], [])
        out[(sp, no)] = mixing.validation_set(n_utts, seconds, seed=seed, pools=p)
    return out, {s: (len(pools[s].speech), len(pools[s].noise), sum(x.size for x in pools[s].noise) / mixing.SR / 60)
                 for s in pools}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpts", nargs="+", help="NAME=CKPT (a training checkpoint or a run's ckpt.pt)")
    ap.add_argument("--utts", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default="benchmarks/results/mask_generalization.md")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    sets, sizes = crossing_sets(a.utts, a.seconds, a.seed)
    res = {}
    for spec in a.ckpts:
        name, ck = spec.split("=", 1)
        net, _ = load_net(REPO / ck if not Path(ck).is_absolute() else Path(ck))
        for key, val in sets.items():
            res[f"{name}|{key[0]}|{key[1]}"] = r = evaluate(net, val)
            print(name, key, {k: round(v, 3) for k, v in r.items()}, flush=True)
    lines = [f"`scripts/mask_generalization.py {' '.join(a.ckpts)} --utts {a.utts} --seconds {a.seconds} "
             f"--seed {a.seed}`", "",
             "Pools: " + "; ".join(f"{s}: {n} speakers, {k} noise recordings ({m:.1f} min)"
                                   for s, (n, k, m) in sizes.items()), "",
             f"{a.utts} utterances x SNR 0/5/10/15 dB per row, denoise, full strength, 10 ms window "
             "(the training validation's recipe; the val/val row is that set).", "",
             "| checkpoint | speakers | noises | SI-SDR in dB | SI-SDR improvement dB | STOI (torch) in -> out |",
             "|---|---|---|---|---|---|"]
    for k, r in res.items():
        name, sp, no = k.split("|")
        lines.append(f"| {name} | {sp} | {no} | {r['si_sdr_in']:.2f} | {r['si_sdr_improvement']:+.2f} | "
                     f"{r['stoi_torch_in']:.3f} -> {r['stoi_torch_out']:.3f} |")
    sys.path.insert(0, str(REPO / "scripts"))
    from resculpt_bench_io import write_result

    print("\n".join(lines))
    write_result(REPO / a.out, lines, res)


if __name__ == "__main__":
    main()
