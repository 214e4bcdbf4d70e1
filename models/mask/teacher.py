"""Cached training rows for mask training (torch-free): the distillation teacher's cache
(``resculpt train mask --teacher DIR``) and the codec-cleanup pairs (``--pairs DIR``)."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
from resculpt.models.mask import mixing


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
        self.n_rows, self.seconds = len(self.x), self.x.shape[1] / mixing.SR
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

    def gain_target(self, io, x, y):
        """The teach term's target for the cached rows: the band gains of the teacher's output against the
        mixture on the batch's own window: (every frame, ``io.ideal_gains(x, y)`` (B, T, 24))."""
        return slice(None), io.ideal_gains(x, y)


# The gains cache stores sqrt(g) in 5 bits: the teach loss is a squared error of square roots (losses.gain_err), so
# a uniform step there costs the same everywhere on it. A step of 1/31 adds 8.7e-5 (its square / 12) to the mean
# of a loss that sits near 0.03 in training (models/training/*/log.jsonl, "teach"): 0.3 %; the largest code
# below 1 is 0.57 dB under unity gain.
Q_LEVELS = 31
CODING = f"sqrt in {Q_LEVELS} steps, odd frames, band-major xz"  # meta.json "coding": what this loader reads
# Samples of each mixture kept beside its gains, to tell that regenerating mixture i still gives the mixture the
# teacher heard (a change to the mixing code or the pools would silently pair gains with other audio).
N_CHECK = 16


def quantise(g: np.ndarray) -> np.ndarray:
    """Band gains in 0..1 (any shape) -> uint8 codes 0..Q_LEVELS of sqrt(g)."""
    return np.round(np.sqrt(np.clip(g, 0.0, 1.0)) * Q_LEVELS).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    """uint8 codes -> band gains float32 (the square of the coded root)."""
    return (q.astype(np.float32) / Q_LEVELS) ** 2


def pack_codes(q: np.ndarray) -> np.ndarray:
    """Codes (n, T, 24) uint8 -> xz bytes as a uint8 array; band-major, where a band's codes change least
    from frame to frame (xz packs it tighter than time-major)."""
    return np.frombuffer(lzma.compress(np.ascontiguousarray(q.transpose(0, 2, 1)).tobytes(),
                                       preset=9 | lzma.PRESET_EXTREME), np.uint8)


def unpack_codes(b: np.ndarray, shape) -> np.ndarray:
    """The inverse of pack_codes: (n, T, 24) uint8."""
    n, t, k = (int(v) for v in shape)
    return np.frombuffer(lzma.decompress(b.tobytes()), np.uint8).reshape(n, k, t).transpose(0, 2, 1).copy()


def check_positions(n: int) -> np.ndarray:
    """The N_CHECK sample positions of an n-sample mixture stored as its fingerprint."""
    return np.linspace(n // 7, n - 1, N_CHECK).astype(np.int64)


class TeacherGains:
    """The compact teacher cache (``scripts/mask_teacher_cache.py``, format "gains"): per training-split mixture
    i (drawn from ``default_rng([seed, i])`` by ``mixing.make_example``, denoise mode, strength 1) the teacher's
    band gains clip(sqrt(P_teacher / P_mixture), 0, 1) on the 10 ms window (hop 5 ms) of every odd frame (100
    frames/s: neighbouring frames share half their samples), 5-bit codes, and a fingerprint of the mixture. The
    audio is regenerated from the recipe when a batch is drawn (a small part of a training step), so a mixture
    costs about 8 kB instead of three float32 waveforms (1.5 MB), and the cache can be committed and grow across
    sessions.

    Crops start on even frames, so the crop's odd frame 2v + 1 is the cached frame of the same samples: its
    10 ms window lies inside the crop, and the target is exact up to the coding. The teach term compares the
    crop's odd frames only.
    """

    def __init__(self, folder: Path, pools, option: str = "--teacher"):
        folder = Path(folder)
        self.meta = json.loads((folder / "meta.json").read_text())
        if self.meta.get("format") != "gains":
            raise SystemExit(f"{option} {folder}: not a gains cache (meta.json format {self.meta.get('format')!r})")
        if self.meta.get("coding") != CODING:
            raise SystemExit(f"{option} {folder}: coded as {self.meta.get('coding')!r}, this loader reads {CODING!r}")
        shards = sorted(folder.glob("shard_*.npz"))
        if not shards:
            raise SystemExit(f"{option} {folder}: no shard_*.npz (build it with scripts/mask_teacher_cache.py)")
        parts = [np.load(p) for p in shards]
        self.g = np.concatenate([unpack_codes(q["g_xz"], q["g_shape"]) for q in parts])  # (n, T/2, 24) odd frames
        self.idx = np.concatenate([q["idx"] for q in parts])      # (n,) mixture indices
        self.check = np.concatenate([q["check"] for q in parts])  # (n, N_CHECK) float32
        self.seed = int(self.meta["seed"])
        self.n = round(self.meta["seconds"] * self.meta["sample_rate"])
        self.n_fft, self.hop = int(self.meta["n_fft"]), int(self.meta["hop"])
        self.pools = pools
        self.n_rows, self.seconds = len(self.idx), float(self.meta["seconds"])
        for r in range(0, len(self.idx), max(1, int(self.meta["shard_size"]))):  # one mixture per shard
            self.mixture(r)

    def mixture(self, r: int):
        """Row r's mixture and clean target (n,) float32, regenerated and checked against its fingerprint."""
        x, t, _ = mixing.make_example(np.random.default_rng([self.seed, int(self.idx[r])]), self.pools, self.n,
                                      enhance=False, strength=1.0)
        if not np.allclose(x[check_positions(self.n)], self.check[r], rtol=1e-4, atol=1e-6):
            raise SystemExit(f"teacher cache: mixture {int(self.idx[r])} regenerates differently from the one its "
                             "teacher heard (the mixing code or the pools changed); rebuild the cache")
        return x, t

    def batch(self, rng: np.random.Generator, bsz: int, n: int):
        """``bsz`` random crops of ``n`` samples (a whole number of frame pairs, 2 hops) starting on even frames:
        mixture, clean target (bsz, n), the teacher's gains of the crop's odd frames (bsz, n // (2 hop), 24)
        float32; cond (bsz, 2)."""
        pair = 2 * self.hop
        if n % pair:
            raise ValueError(f"teacher crops are whole frame pairs: {n} samples is not a multiple of {pair}")
        k = n // pair
        rows = rng.integers(len(self.idx), size=bsz)
        starts = rng.integers(self.g.shape[1] - k + 1, size=bsz)
        xs, ts, gs = [], [], []
        for r, u in zip(rows, starts):
            x, t = self.mixture(int(r))
            o = int(u) * pair
            xs.append(x[o : o + n])
            ts.append(t[o : o + n])
            gs.append(dequantise(self.g[r, u : u + k]))
        return np.stack(xs), np.stack(ts), np.stack(gs), RowCache.cond(bsz)

    def gain_target(self, io, x, y):
        """The teach term's frames and target for the cached rows: (odd frames, the cached gains (B, T/2, 24)) on
        the window they were computed for; None on another window (the term sits that batch out)."""
        return (slice(1, None, 2), y) if (io.n_fft, io.hop) == (self.n_fft, self.hop) else None


def open_teacher(folder: Path, pools):
    """The teacher cache in ``folder``, either format: TeacherGains (meta.json format "gains") or TeacherCache."""
    meta_p = Path(folder) / "meta.json"
    if meta_p.is_file() and json.loads(meta_p.read_text()).get("format") == "gains":
        return TeacherGains(folder, pools)
    return TeacherCache(folder)
