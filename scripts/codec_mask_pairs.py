"""Build the codec-cleanup pairs for fine-tuning the mask (``resculpt train mask --pairs DIR``).

A pair: clean speech of the train split recorded at 16 kHz or more (``resculpt.models.codec.data.items``, the
codec envelope net's clips: speaker-disjoint from the validation split), resampled to 48 kHz, a random
CROP_S-second crop at a random level (-38..-18 dBFS RMS), encoded and decoded by ffmpeg with a codec drawn from
``resculpt.models.codec.data.CODECS`` (Opus 6-16 kbps, MP3 32-64 kbps; ``degrade.codec_roundtrip``, delay
removed). Both then pass the ``codec-repair`` preset's boards before its spectral section (its low cut), and
are stored at 16 kHz (the mask's training rate): ``x`` = the decode, ``target`` = the clean crop, aligned sample
for sample: what a mask run first in that section (before the ``codec`` stage's band replication) sees.

What a mask learns from them: the per-frame band cuts that put the decode's band energy on the original's (the
codec's envelope errors and the noise in its valleys and pauses), the output form whose perfect gains
``scripts/codec_repair_diag.py`` scores as ``codec-repair>oracle-cut<4k``. A fine-tune of the shipped mask on them
is measured there (``--mask-bundle``; ``models/training/codec-clean``, docs/resculpt-stage.md "A learned cleanup
mask").

    RESCULPT_DATA=/work/shared/data nice -n 19 .venv/bin/python scripts/codec_mask_pairs.py \
        --out runs/codec-mask-pairs --n 600
    RESCULPT_DATA=/work/shared/data nice -n 19 .venv/bin/python scripts/codec_mask_pairs.py \
        --out runs/codec-mask-pairs-val --n 50 --split val --seed 1
    # -> runs/codec-mask-pairs/shard_KKKKK.npz (x, target: (SHARD, CROP_S * 16000) float32) + meta.json

Pair i is drawn from ``default_rng([seed, i])`` (ffmpeg's encoders are deterministic), so the set is the same
on every run; shards are written to a temporary file and renamed, and a rerun makes only the missing ones.
``runs/`` is never committed (the data's licences are mixed).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

RATE = 48000
SR = 16000
CROP_S = 4.0
SHARD = 50


def make_pair(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """(repaired decode, clean) at 16 kHz, (CROP_S * SR,) float32 each, and the codec's label, from clean
    speech ``x`` (float32, 48 kHz)."""
    from resculpt.models.codec.data import CODECS
    from resculpt.models.resculpt.degrade import codec_roundtrip
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.presets import load_preset

    n = int(CROP_S * RATE)
    if x.size < n:
        x = np.pad(x, (0, n - x.size))
    i0 = int(rng.integers(0, x.size - n + 1))
    x = x[i0 : i0 + n].astype(np.float64)
    x *= 10 ** (rng.uniform(-38, -18) / 20) / (np.sqrt(np.mean(x**2)) + 1e-9)
    x = x.astype(np.float32)
    codec, kbps = CODECS[rng.integers(len(CODECS))]
    dec = codec_roundtrip(x, RATE, codec, kbps)[0]
    pre = load_preset("codec-repair")  # the boards before its spectral section (the low cut), on both
    layout = dataclasses.replace(pre.layout, spectral=(), post=())
    y, x = (Chain(layout, RATE, 1, 4800, params=pre.full_params())(np.asarray(s, np.float32)[None])[0]
            for s in (dec, x))
    m = int(CROP_S * SR)
    down = lambda s: resample_poly(s, 1, RATE // SR)[:m].astype(np.float32)
    return down(y), down(x), f"{codec}:{kbps}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/codec-mask-pairs")
    ap.add_argument("--n", type=int, default=600, help="pairs (rounded up to whole shards of 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("train", "val"), default="train",
                    help="whose speech: train (training rows) or val (the trainer's --pairs-val)")
    a = ap.parse_args(argv)
    from resculpt.models import data
    from resculpt.models.codec.data import items

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"seed": a.seed, "crop_s": CROP_S, "shard": SHARD, "rate": SR, "input": "decoded, codec-repair low cut",
            "split": a.split}
    mp = out / "meta.json"
    if mp.is_file() and json.loads(mp.read_text()) != meta:
        print(f"{mp}: another recipe ({mp.read_text().strip()}); use another --out", file=sys.stderr)
        return 2
    mp.write_text(json.dumps(meta) + "\n")
    its = items(a.split)
    t0 = time.time()
    for k in range((a.n + SHARD - 1) // SHARD):
        p = out / f"shard_{k:05d}.npz"
        if p.exists():
            continue
        xs, ts, labels = [], [], []
        for i in range(k * SHARD, (k + 1) * SHARD):
            rng = np.random.default_rng([a.seed, i])
            it = its[int(rng.integers(len(its)))]
            clean, _ = data.load(it, RATE)
            x, t, lab = make_pair(clean, rng)
            xs.append(x)
            ts.append(t)
            labels.append(lab)
        np.savez(str(p) + ".tmp.npz", x=np.stack(xs), target=np.stack(ts), codec=np.array(labels))
        os.replace(str(p) + ".tmp.npz", p)
        print(f"shard {k}: pairs {k * SHARD}..{(k + 1) * SHARD - 1} ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
