"""Prebuilt (changed, clean) pairs for resculpt training: shard files under ``runs/`` (numpy only).

Layout of a cache folder (``scripts/resculpt_cache.py`` writes it, :class:`PairCache` reads it):
  ``meta.json``         {version, seed, seconds, sample_rate, ops, shard_size, split}: what every shard was made with;
  ``shard_KKKKK.npz``   x (m, n) clean, y (m, n) changed, float32 at ``sample_rate``; ``params`` and ``clip``
                        (m,) JSON strings (the recipe of :func:`degrade.make_pair` and where the clip came from);
                        shard K holds pair indices K * shard_size ... (K + 1) * shard_size - 1.
A shard is written to a temporary name and renamed, so an interrupted build leaves only whole shards and a
rerun with the same settings continues where it stopped (:func:`build`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def shard_path(folder: Path, k: int) -> Path:
    return Path(folder) / f"shard_{k:05d}.npz"


def build(folder, n_pairs: int, seed: int = 0, seconds: float = 3.0, sr: int = 16000, ops=None,
          shard_size: int = 64, source=None, log=print) -> dict:
    """Make ``n_pairs`` pairs (indices 0..n_pairs-1) into ``folder``, skipping shards already there.
    Refuses a folder whose meta.json was made with other settings. ``source``: a :class:`degrade.Source`
    (default: the train split at ``sr``). Returns the meta dict."""
    from . import degrade

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ops = list(ops or degrade.DEFAULT_OPS)
    meta = {"version": CACHE_VERSION, "seed": int(seed), "seconds": float(seconds), "sample_rate": int(sr),
            "ops": ops, "shard_size": int(shard_size), "split": "train" if source is None else "custom"}
    mp = folder / "meta.json"
    if mp.is_file():
        old = json.loads(mp.read_text())
        if old != meta:
            raise SystemExit(f"{folder}: its meta.json was made with other settings ({old}); use another folder")
    else:
        mp.write_text(json.dumps(meta, indent=1) + "\n")
    if "codec" in ops:
        why = degrade.have_codecs()
        if why:
            raise SystemExit(f"codec pairs need ffmpeg with libopus and libmp3lame: {why}")
    src = source or degrade.Source.load("train", sr)
    n_shards = -(-n_pairs // shard_size)
    t0, made = time.time(), 0
    for k in range(n_shards):
        out = shard_path(folder, k)
        if out.is_file():
            continue
        rows = [degrade.make_pair(src, seed, i, seconds, ops)
                for i in range(k * shard_size, min(n_pairs, (k + 1) * shard_size))]
        tmp = out.with_suffix(".tmp.npz")
        np.savez(tmp, x=np.stack([r["x"] for r in rows]), y=np.stack([r["y"] for r in rows]),
                 params=np.array([json.dumps(r["params"]) for r in rows]),
                 clip=np.array([json.dumps(r["clip"]) for r in rows]))
        tmp.replace(out)
        made += len(rows)
        log(f"shard {k + 1}/{n_shards}: {len(rows)} pairs ({(time.time() - t0) / made:.2f} s per pair)")
    return meta


class PairCache:
    """All shards of a cache folder in memory (the first ``max_pairs`` pairs when > 0, whole shards): x, y (N, n)
    float32, params/clip lists, meta."""

    def __init__(self, folder, max_pairs: int = 0):
        folder = Path(folder)
        shards = sorted(folder.glob("shard_*.npz"))
        shards = [s for s in shards if not s.name.endswith(".tmp.npz")]
        if not shards:
            raise SystemExit(f"{folder}: no shard_*.npz (build it with scripts/resculpt_cache.py)")
        self.meta = json.loads((folder / "meta.json").read_text())
        if max_pairs > 0:
            shards = shards[: -(-max_pairs // int(self.meta["shard_size"]))]
        parts = [np.load(s) for s in shards]
        self.x = np.concatenate([p["x"] for p in parts])
        self.y = np.concatenate([p["y"] for p in parts])
        self.params = [json.loads(s) for p in parts for s in p["params"]]
        self.clip = [json.loads(s) for p in parts for s in p["clip"]]
        self.sr = int(self.meta["sample_rate"])

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, rng: np.random.Generator, bsz: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``bsz`` random aligned crops of ``n`` samples: changed y, clean x (bsz, n), and the pair indices."""
        i = rng.integers(len(self.x), size=bsz)
        s = rng.integers(self.x.shape[1] - n + 1, size=bsz)
        y = np.stack([self.y[k, o : o + n] for k, o in zip(i, s)])
        x = np.stack([self.x[k, o : o + n] for k, o in zip(i, s)])
        return y, x, i
