"""Prebuild (changed, clean) training pairs for the resculpting model (resumable shards under runs/).

    .venv/bin/python scripts/resculpt_cache.py --out runs/resculpt-pairs --n 4096 [--seconds 3] [--rate 16000]
        [--seed 0] [--shard-size 64] [--ops eq tilt formant ...]

Pair i is ``models/resculpt/degrade.make_pair(train split, seed, i)``: a clean crop of train-split speech or
music and the same crop after random known changes (EQ, tilt, formant warp, compression/expansion, reverb,
band-limiting, level, Opus 6-24 kbps / MP3 32-64 kbps through ffmpeg; pitch shift only when ``--ops``
names it), aligned to the sample. Why a cache: two ffmpeg processes per codec pair cost ~0.5 s on this
machine, far too slow to run inside every training batch. Rerunning with the same settings continues at the
first missing shard; other settings in the same folder are refused. The pairs are derived from
``../shared/data`` and stay under ``runs/`` (never committed: mixed licences).
"""

from __future__ import annotations

import argparse
import sys

from resculpt.models.resculpt import cache, degrade


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/resculpt_cache.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/resculpt-pairs")
    ap.add_argument("--n", type=int, default=4096, help="number of pairs")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--ops", nargs="*", choices=degrade.OPS, default=list(degrade.DEFAULT_OPS))
    a = ap.parse_args(argv)
    meta = cache.build(a.out, a.n, a.seed, a.seconds, a.rate, a.ops, a.shard_size)
    print(f"done: {a.out} ({meta})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
