"""Cached training rows for mask training (torch-free): the distillation teacher's cache
(``resculpt train mask --teacher DIR``) and the codec-cleanup pairs (``--pairs DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class RowCache:
    """Rows of equal length at 16 kHz, aligned sample for sample, from every whole ``shard_*.npz`` in the folder
    (a cache is built shard by shard and may be partial): one array (n, N) per name in ``KEYS``."""

    KEYS: tuple[str, ...] = ("x", "target")
    BUILDER = "scripts/codec_mask_pairs.py"

    def __init__(self, folder: Path, option: str = "--pairs"):
        shards = sorted(Path(folder).glob("shard_*.npz"))
        if not shards:
            raise SystemExit(f"{option} {folder}: no shard_*.npz (build it with {self.BUILDER})")
        parts = [np.load(p) for p in shards]
        self.rows = {k: np.concatenate([q[k] for q in parts]) for k in self.KEYS}
        self.x, self.t = self.rows["x"], self.rows["target"]
        meta_p = Path(folder) / "meta.json"
        self.meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}

    def crops(self, rng: np.random.Generator, bsz: int, n: int) -> list[np.ndarray]:
        """``bsz`` random crops of ``n`` samples of every array in ``KEYS``, (bsz, n) each, in that order."""
        i = rng.integers(len(self.x), size=bsz)
        s = rng.integers(self.x.shape[1] - n + 1, size=bsz)
        return [np.stack([a[k, o : o + n] for k, o in zip(i, s)]) for a in (self.rows[k] for k in self.KEYS)]

    @staticmethod
    def cond(bsz: int) -> np.ndarray:
        """(bsz, 2) = [denoise, strength 1]: the mode and strength every cached row is made for."""
        return np.tile(np.array([0.0, 1.0], np.float32), (bsz, 1))

    def batch(self, rng: np.random.Generator, bsz: int, n: int):
        """``bsz`` random crops of ``n`` samples: input, clean target (bsz, n); cond (bsz, 2)."""
        x, t = self.crops(rng, bsz, n)
        return x, t, self.cond(bsz)


class TeacherCache(RowCache):
    """The DeepFilterNet3-LL cache (``scripts/mask_teacher_cache.py``): mixtures, clean targets and the
    teacher's output."""

    KEYS = ("x", "target", "teacher")
    BUILDER = "scripts/mask_teacher_cache.py"

    def __init__(self, folder: Path):
        super().__init__(folder, "--teacher")
        self.y = self.rows["teacher"]

    def batch(self, rng: np.random.Generator, bsz: int, n: int):
        """``bsz`` random crops of ``n`` samples: mixture, clean target, teacher output (bsz, n); cond (bsz, 2)."""
        x, t, y = self.crops(rng, bsz, n)
        return x, t, y, self.cond(bsz)
