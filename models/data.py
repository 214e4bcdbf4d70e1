"""Where the shared recordings are, what the manifest says, and the one train/validation split.

The data is never copied into the repository (mixed licences); it is read by path from
``$RESCULPT_DATA`` (default: ``../shared/data`` beside the repository checkout).

Split (used by every model, benchmark and tuning step, so no figure is measured on training data):
  * speech: by speaker, a stable hash of the speaker id puts ~15 % of speakers in validation;
    speaker 1081 (the bundled example clip) is always in ``heldout`` and never trained on;
  * noise, music and room responses: by recording, the same hash on the file path (~20 %);
  * the VoiceBank-DEMAND pairs are ``test`` only (never trained or tuned on).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HELDOUT_SPEAKERS = {"1081"}
VAL_FRACTION = {"speech": 0.15, "noise": 0.2, "music": 0.2, "rir": 0.25}


def data_root() -> Path:
    """The shared data folder ($RESCULPT_DATA, default ../shared/data next to the checkout)."""
    env = os.environ.get("RESCULPT_DATA")
    if env:
        return Path(env)
    for cand in (REPO.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if (cand / "manifest.csv").is_file():
            return cand
    return REPO.parent / "shared" / "data"


def have_data() -> bool:
    return (data_root() / "manifest.csv").is_file()


@dataclass(frozen=True)
class Item:
    """One manifest row. ``split`` is ours (train/val/heldout/test), not the manifest's."""

    path: Path
    category: str
    source: str
    speaker: str
    role: str
    sample_rate: int
    duration_s: float
    licence: str
    split: str


def _unit_hash(key: str) -> float:
    h = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign_split(category: str, speaker: str, relpath: str) -> str:
    if category == "paired":
        return "test"
    if category == "speech":
        spk = speaker or relpath
        if spk in HELDOUT_SPEAKERS:
            return "heldout"
        return "val" if _unit_hash("spk:" + spk) < VAL_FRACTION["speech"] else "train"
    frac = VAL_FRACTION.get(category, 0.2)
    return "val" if _unit_hash("rec:" + relpath) < frac else "train"


def manifest(root: Path | None = None) -> list[Item]:
    """All rows of manifest.csv with our split assigned."""
    root = Path(root) if root else data_root()
    out = []
    with open(root / "manifest.csv", newline="") as f:
        for r in csv.DictReader(f):
            out.append(Item(root / r["path"], r["category"], r["source"], r.get("speaker", ""), r.get("role", ""),
                            int(float(r["sample_rate"])), float(r["duration_s"]), r.get("license", ""),
                            assign_split(r["category"], r.get("speaker", ""), r["path"])))
    return out


def select(category: str | None = None, split: str | None = None, source: str | None = None,
           min_rate: int = 0, min_duration_s: float = 0.0, root: Path | None = None) -> list[Item]:
    return [it for it in manifest(root)
            if (category is None or it.category == category) and (split is None or it.split == split)
            and (source is None or it.source == source) and it.sample_rate >= min_rate
            and it.duration_s >= min_duration_s]


def load(item_or_path, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read a file as float32; (n,) if mono else (channels, n). Resamples when sample_rate is given."""
    import soundfile as sf

    p = item_or_path.path if isinstance(item_or_path, Item) else item_or_path
    x, sr = sf.read(str(p), dtype="float32", always_2d=True)
    x = x.T
    if mono:
        x = x.mean(axis=0)
    if sample_rate and sample_rate != sr:
        from scipy.signal import resample_poly

        g = int(np.gcd(int(sr), int(sample_rate)))
        x = resample_poly(x, sample_rate // g, sr // g, axis=-1).astype(np.float32)
        sr = sample_rate
    return np.ascontiguousarray(x, dtype=np.float32), int(sr)


def effective_bandwidth_hz(x: np.ndarray, sample_rate: int, floor_db: float = -60.0) -> float:
    """Highest frequency whose long-term level is within ``floor_db`` of the peak band (detects
    upsampled material, e.g. a 48 kHz file made from a 16 kHz source)."""
    n = 2048
    if x.size < n:
        return sample_rate / 2
    frames = x[: (x.size // n) * n].reshape(-1, n) * np.hanning(n)
    p = (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).mean(axis=0)
    db = 10 * np.log10(p + 1e-20)
    ok = np.flatnonzero(db > db.max() + floor_db)
    return float(ok[-1] * sample_rate / n) if ok.size else 0.0
