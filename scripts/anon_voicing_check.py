"""The anon stage's periodicity per band (kernels.band_voicing, anon.excite_pct) before its mapping onto 0..1.

    .venv/bin/python scripts/anon_voicing_check.py     # ~1 min; prints two tables

1. Synthetic 20 ms frames at 16 and 48 kHz (the default STFT's window), 20 random draws each: a harmonic
   complex of F0 80 / 120 / 200 / 300 Hz (every harmonic to Nyquist, random phases) and white noise, read
   at the true period: mean and standard deviation per band.
2. The bundled speech clip (examples/speech_1081_librispeech.flac, 16 kHz, 8 s) through the stage set as
   ``anon-neutral``: every voiced frame's reading at the stage's own F0 estimate, 10th / 50th / 90th
   percentile per band.

These are the figures behind anon.EXCITE_V0 / EXCITE_V1 (docs/anonymization.md, "A synthesized excitation").
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from resculpt.dsp.stft import sqrt_hann_pair
from resculpt.dsp.voice import anon, kernels


def raw(row, band, lag, n, rho_t) -> np.ndarray:
    """(nbands,) the unmapped, unsmoothed reading of one frame at period ``lag`` (samples)."""
    i = int(lag)
    rho = float(rho_t[i] + (rho_t[i + 1] - rho_t[i]) * (lag - i))
    nband = len(anon.EXCITE_BANDS_HZ) + 1
    vb = np.zeros(nband, np.float32)
    num, den = np.zeros((anon.EXCITE_LAGS, nband)), np.zeros(nband)
    # the stage's mapping replaced by one wide enough never to clip (v0 = -1000, v1 = 1000), then undone
    kernels._band_voicing(row, band, 2.0 * math.pi * lag / n, num, den, rho, vb, 1.0, -1e3, 1e3)
    out = (vb.astype(np.float64) - 0.5) * 2e3
    out[den == 0.0] = np.nan  # a band without energy
    return out


def tables(sr: int):
    n = int(0.02 * sr)
    w = sqrt_hann_pair(n, n // 4)[0].astype(np.float64)
    ac = np.fft.irfft(np.abs(np.fft.rfft(w, 2 * n)) ** 2, 2 * n)[: n + 1]
    f = np.fft.rfftfreq(n, 1 / sr)
    band = np.searchsorted(np.asarray(anon.EXCITE_BANDS_HZ), f, side="left").astype(np.int64)
    return n, w, ac / ac[0], band


def synthetic() -> None:
    print("1. synthetic frames: mean (std) per band, bands' upper edges", anon.EXCITE_BANDS_HZ, "Hz, then Nyquist")
    rng = np.random.default_rng(0)
    for sr in (16000, 48000):
        n, w, rho_t, band = tables(sr)
        for f0 in (80.0, 120.0, 200.0, 300.0):
            for kind in ("harmonic", "noise"):
                vs = []
                for _ in range(20):
                    t = (np.arange(n) + rng.integers(0, 10000)) / sr
                    if kind == "harmonic":
                        x = sum(np.cos(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) for h in range(1, int(sr / 2 / f0)))
                    else:
                        x = rng.standard_normal(n)
                    vs.append(raw(np.fft.rfft(x * w).astype(np.complex64), band, sr / f0, n, rho_t))
                vs = np.array(vs)
                m, s = np.nanmean(vs, 0), np.nanstd(vs, 0)
                cells = " ".join(f"{a:5.2f} ({b:.2f})" for a, b in zip(m, s) if np.isfinite(a))
                print(f"  {sr} Hz, F0 {f0:3.0f} Hz, {kind:8s}: {cells}")


def speech() -> None:
    from resculpt.models import data
    from stage_testlib import make_section, run

    sr = 16000
    x, _ = data.load(REPO / "examples" / "speech_1081_librispeech.flac", sample_rate=sr)
    x = x[None, : 8 * sr].astype(np.float32)
    with open(REPO / "presets" / "anon-neutral.json") as fh:
        params = {k: v for k, v in json.load(fh)["params"].items() if k.startswith("anon.")}
    rig = make_section(["anon"], sr, 1, params)
    st = rig.proc.stages[0]
    n, _, rho_t, band = tables(sr)
    seen = []
    frame = st.process_frame

    def tap(spec):
        if st._f0_cur > 0.0:
            seen.append(raw(spec[0].copy(), band, sr / st._f0_cur, n, rho_t))
        frame(spec)

    st.process_frame = tap
    run(rig, x, 512)
    v = np.array(seen)
    p = np.nanpercentile(v, [10, 50, 90], axis=0)
    print(f"2. bundled clip, anon-neutral, {len(v)} voiced frames: 10th / 50th / 90th percentile per band")
    for q, row in zip((10, 50, 90), p):
        print(f"  {q:2d} %: " + " ".join(f"{a:5.2f}" for a in row if np.isfinite(a)))


if __name__ == "__main__":
    synthetic()
    speech()
