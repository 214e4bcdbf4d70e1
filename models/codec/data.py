"""Training pairs of the codec-repair envelope model: clean speech of our train split through real codecs.

One pair = one clip of train-split speech recorded at 16 kHz or more (speaker-disjoint from the validation
split, ``resculpt.models.data``), resampled to 48 kHz, cropped to at most CROP_S seconds, set to a random level
(-38..-18 dBFS RMS), encoded and decoded by ffmpeg (``degrade.codec_roundtrip``, delay removed) with a codec
drawn from CODECS (``train/``, ``val/``), or band-limited by a low-pass or a telephone line drawn from BANDLIMITS
(``train_bandlimit/``, ``val_bandlimit/``). Both signals run through the shipped STFT (``default`` or ``low-latency`` window, drawn):

- the decoded one through the ``codec`` stage (``resculpt.dsp.codec_repair``) as it runs in the product, which
  records, per frame, the model's features (``common.Features``) and the edge it found;
- the clean one through a stage that records, per frame and band, the level the model must predict: below the
  frame's edge the clean band level, above it the clean level over the rebuilt bins only (edge .. max_hz),
  exactly what the stage measures of its copy (the band weights straddling the edge see zeros below it).

Stored per pair (``runs/codec-pairs/<folder>/NNNNN.npz``): feat (T, N_FEAT), target (T, 32) in units of 20 dB against r,
rule (T, 32) the same for the codec-repair preset's slope/level rule (NaN on frames it does not rebuild),
weight (T, 32): 1 on rebuilt bands centred at or below MAX_HZ, KEPT_WEIGHT on kept bands, 0 on frames without
an edge; frames more than 50 dB under the clip's loudest are weighted QUIET_WEIGHT. Pair i of seed s is the
same on every run (ffmpeg's encoders are deterministic), so a cache can be completed across sessions.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from resculpt.dsp import codec_repair
from resculpt.dsp.bands import N_BANDS
from resculpt.dsp.params import ParamTable
from resculpt.dsp.stft import SpectralStage, StreamingSTFT

from . import common

RATE = 48000
CROP_S = 8.0
CODECS = (("opus", 6), ("opus", 6), ("opus", 8), ("opus", 8), ("opus", 10), ("opus", 12), ("opus", 16),
          ("mp3", 32), ("mp3", 32), ("mp3", 48), ("mp3", 64))
# Band limits that are not a codec: a low-pass of order 4-10 at 3.4-5 kHz (an old recording, a cheap mic's
# chain, a streaming platform's resampler) and the telephone: 8 kHz G.711 mu-law (300-3400 Hz in practice, here
# the resampler's 4 kHz edge). They go to their own folders (train_bandlimit/, val_bandlimit/), so the codec
# pairs stay as they are.
BANDLIMITS = ("lowpass", "lowpass", "phone")
CONFIGS = ("default", "default", "low-latency")
KEPT_WEIGHT = 0.3
QUIET_WEIGHT = 0.1
QUIET_DB = 50.0
TARGET_FLOOR_DB = -80.0
MAX_HZ_PARAM = 8000.0
RULE_SLOPE_DB_OCT, RULE_LEVEL_DB = -24.0, -12.0  # the codec-repair preset's rule, recorded beside the targets


class _Recorder(codec_repair.CodecRepair):
    """The codec stage, recording the model's features and the edge of every frame."""

    def prepare(self, ctx):
        super().prepare(ctx)
        self.fx = common.Features(ctx.sample_rate, ctx.n_fft)
        self.feats, self.edges, self.refs, self.rules = [], [], [], []

    def _observe(self, spec, fc):
        row = np.zeros(common.N_FEAT, np.float32)
        self.refs.append(self.fx.compute(self._pm, fc, row))
        self.feats.append(row)
        self.edges.append(fc)
        self.rules.append(None)

    def _rebuilt_want(self, fc):
        self.rules[-1] = 10 * np.log10(self._want + common.EPS)


class _CleanBands(SpectralStage):
    """Per frame: the clean band levels (dB) over all bins and over the rebuilt bins (edges[k] .. kmax)."""

    name = "clean-bands"

    def __init__(self, edges, max_hz):
        self.edges, self.max_hz = edges, max_hz

    def prepare(self, ctx):
        super().prepare(ctx)
        self.fx = common.Features(ctx.sample_rate, ctx.n_fft)
        self.kmax = min(ctx.n_bins, int(self.max_hz / (ctx.sample_rate / ctx.n_fft)) + 1)
        self.full, self.rebuilt, self.k = [], [], 0

    def process_frame(self, spec):
        pm = (np.abs(spec) ** 2).mean(axis=0).astype(np.float32)
        fc = self.edges[self.k] if self.k < len(self.edges) else 0
        self.k += 1
        self.full.append(10 * np.log10(pm @ self.fx.ana_t + common.EPS))
        m = np.zeros_like(pm)
        if 0 < fc < self.kmax:
            m[fc : self.kmax] = pm[fc : self.kmax]
        self.rebuilt.append(10 * np.log10(m @ self.fx.ana_t + common.EPS))


def _run(stage, x: np.ndarray, config: str, table=None) -> None:
    sec = StreamingSTFT(config, [stage], table=table)
    sec.prepare(RATE, 4800, 1)
    for i in range(0, x.size, 4800):
        sec.process(x[None, i : i + 4800].copy())  # the section works in place


def mulaw_phone(x: np.ndarray, sr: int) -> np.ndarray:
    """``x`` through an 8 kHz G.711 mu-law line and back to ``sr`` (zero-phase resampling: sample-aligned)."""
    from scipy.signal import resample_poly

    g = math.gcd(sr, 8000)
    y = resample_poly(x, 8000 // g, sr // g)
    mu = 255.0
    c = np.sign(y) * np.log1p(mu * np.minimum(np.abs(y), 1.0)) / np.log1p(mu)
    c = np.round(c * 127.0) / 127.0  # 8 bits
    y = np.sign(c) * np.expm1(np.abs(c) * np.log1p(mu)) / mu
    return resample_poly(y, sr // g, 8000 // g)[: x.size].astype(np.float32)


def make_pair(x: np.ndarray, rng: np.random.Generator, bandlimit: bool = False) -> dict:
    """Features, targets and weights (see the module docstring) for clean speech ``x`` (float32, 48 kHz), through
    a codec drawn from CODECS, or with ``bandlimit`` a band limit drawn from BANDLIMITS."""
    from resculpt.models.resculpt.degrade import codec_roundtrip

    kind = BANDLIMITS[rng.integers(len(BANDLIMITS))] if bandlimit else CODECS[rng.integers(len(CODECS))]
    config = CONFIGS[rng.integers(len(CONFIGS))]
    n = min(x.size, int(CROP_S * RATE))
    i0 = int(rng.integers(0, x.size - n + 1))
    x = x[i0 : i0 + n].astype(np.float64)
    x *= 10 ** (rng.uniform(-38, -18) / 20) / (np.sqrt(np.mean(x**2)) + 1e-9)
    x = x.astype(np.float32)
    if kind == "phone":
        dec, label = mulaw_phone(x, RATE), "phone"
    elif kind == "lowpass":
        from scipy.signal import butter, sosfiltfilt

        fc, order = float(rng.uniform(3400, 5000)), int(rng.integers(4, 9))
        dec = sosfiltfilt(butter(order, fc, fs=RATE, output="sos"), x).astype(np.float32)  # zero phase, order 2x
        label = "lowpass"
    else:
        dec, label = codec_roundtrip(x, RATE, *kind)[0], f"{kind[0]}:{kind[1]}"
    table = ParamTable(codec_repair.PARAMS)
    table.set("codec.max_hz", MAX_HZ_PARAM)
    table.set("codec.slope_db_oct", RULE_SLOPE_DB_OCT)
    table.set("codec.level_db", RULE_LEVEL_DB)
    table.prepare(RATE)  # values jump to their targets (an offline render)
    rec = _Recorder(table)
    _run(rec, dec, config, table)
    cb = _CleanBands(rec.edges, MAX_HZ_PARAM)
    _run(cb, x, config)
    T = min(len(rec.feats), len(cb.full))
    feat = np.stack(rec.feats[:T])
    r = np.asarray(rec.refs[:T], np.float32)[:, None]
    edges = np.asarray(rec.edges[:T])
    full, reb = np.stack(cb.full[:T]), np.stack(cb.rebuilt[:T])
    centers = rec.fx.centers_hz
    f_edge = edges[:, None] * rec.fx.bin_hz
    kept = centers[None, :] < f_edge                                   # (T, 32)
    rebuilt = ~kept & (centers[None, :] <= common.MAX_HZ) & (edges[:, None] > 0)
    tgt = np.where(kept, full, reb)
    tgt = np.maximum(tgt, r + TARGET_FLOOR_DB)
    w = np.where(kept, KEPT_WEIGHT, 0.0) + np.where(rebuilt, 1.0, 0.0)
    w[edges == 0] = 0.0
    quiet = r[:, 0] < r.max() - QUIET_DB
    w[quiet] *= QUIET_WEIGHT
    rule = np.stack([np.full(N_BANDS, np.nan) if q is None else q for q in rec.rules[:T]])
    return {"feat": feat.astype(np.float32), "target": ((tgt - r) / common.DB_UNIT).astype(np.float32),
            "rule": ((rule - r) / common.DB_UNIT).astype(np.float32),
            "weight": w.astype(np.float32), "codec": label, "config": config}


def items(split: str):
    from resculpt.models import data

    return [it for it in data.select("speech", split) if it.sample_rate >= 16000 and it.duration_s >= 2.0]


def build(out: Path, split: str, n_pairs: int, seed: int, log=print, bandlimit: bool = False) -> None:
    """Write pairs 0 .. n_pairs - 1 of ``split`` into ``out`` (existing files are kept: resumable); with
    ``bandlimit`` band-limited instead of codec pairs."""
    from resculpt.models import data

    its = items(split)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for i in range(n_pairs):
        p = out / f"{i:05d}.npz"
        if p.exists():
            continue
        rng = np.random.default_rng([seed, i])
        it = its[(i * 7919 + seed) % len(its)] if i >= len(its) else its[i]
        x, _ = data.load(it, RATE)
        pr = make_pair(x, rng, bandlimit)
        np.savez(p, **pr)
        if i % 20 == 0:
            log(f"{split} pair {i}/{n_pairs} {pr['codec']} {pr['config']} T={pr['feat'].shape[0]} "
                f"({time.time() - t0:.0f} s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/codec-pairs")
    ap.add_argument("--train-pairs", type=int, default=920)
    ap.add_argument("--val-pairs", type=int, default=30)
    ap.add_argument("--bandlimit-train-pairs", type=int, default=300)
    ap.add_argument("--bandlimit-val-pairs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    build(Path(a.out) / "val", "val", a.val_pairs, a.seed + 1)
    build(Path(a.out) / "val_bandlimit", "val", a.bandlimit_val_pairs, a.seed + 3, bandlimit=True)
    build(Path(a.out) / "train", "train", a.train_pairs, a.seed)
    build(Path(a.out) / "train_bandlimit", "train", a.bandlimit_train_pairs, a.seed + 2, bandlimit=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
