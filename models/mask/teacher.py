"""The distillation teacher's cache for mask training (``resculpt train mask --teacher DIR``; torch-free)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class TeacherCache:
    """The DeepFilterNet3-LL cache (``scripts/mask_teacher_cache.py``): mixtures, clean targets and the
    teacher's output (n, N) at 16 kHz, aligned sample for sample, from every whole shard in the folder (the
    cache is built shard by shard and may be partial)."""

    def __init__(self, folder: Path):
        shards = sorted(Path(folder).glob("shard_*.npz"))
        if not shards:
            raise SystemExit(f"--teacher {folder}: no shard_*.npz (build it with scripts/mask_teacher_cache.py)")
        parts = [np.load(p) for p in shards]
        self.x, self.t, self.y = (np.concatenate([q[k] for q in parts]) for k in ("x", "target", "teacher"))
        meta_p = Path(folder) / "meta.json"
        self.meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}

    def batch(self, rng: np.random.Generator, bsz: int, n: int):
        """``bsz`` random crops of ``n`` samples: mixture, clean target, teacher output (bsz, n); cond (bsz, 2)
        = [denoise, strength 1] (what the cache was made with)."""
        i = rng.integers(len(self.x), size=bsz)
        s = rng.integers(self.x.shape[1] - n + 1, size=bsz)
        def crop(a):
            return np.stack([a[k, o : o + n] for k, o in zip(i, s)])

        return crop(self.x), crop(self.t), crop(self.y), np.tile(np.array([0.0, 1.0], np.float32), (bsz, 1))

