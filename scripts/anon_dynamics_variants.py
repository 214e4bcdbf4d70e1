"""Variants of the anon stage's level dynamics (``anon.dynamics_pct``), measured with the anonymity benchmark.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_dynamics_variants.py \
        --split train --skip-speakers 48 --speakers 64 --no-baselines --no-asr \
        --preset "anon-neutral@anon.dynamics_pct=100+whole" --preset "anon-neutral@anon.dynamics_pct=100+low=500" \
        --out benchmarks/results/anon_dynamics_variants.md

Every argument is ``benchmarks/anonymity.py``'s; a preset may end in options that change the step
(dsp/voice/dynamics.py) for that system only, joined by "+":

- ``whole``: whole-utterance statistics instead of running ones (what an offline render could do, knowing the
  whole input): each utterance is run twice, the first time collecting each band's mean and variance of level
  over the frames the stage calls speech (nothing edited), the second time with those held from the first frame;
- ``low=HZ``: on speech frames, the bands centred below HZ take their mean deviation from the running mean (after
  the swing's scaling): the low band's shape within a frame flattened onto the long-term one (the probe's
  "bands 0-500 Hz" edit, scripts/anon_mel_probe.py, in the audio domain);
- ``tau=S``: the running statistics' time constant once settled (the step's: ``dynamics.TAU_S``).

The step is replaced by a NumPy port of ``BandDynamics.process`` with these options (allocating, for measurement
only); with no option it reproduces the stage's benchmark row (checked on 8 train-split speakers: the same EERs,
STOI and DNSMOS as ``benchmarks/anonymity.py --preset anon-neutral@anon.dynamics_pct=100``). The port has the
statistical step only: a system that runs the learned split (``anon.split_pct`` > 0, as the shipped presets do)
is refused, so give the preset ``anon.split_pct=0`` (and its standardisation at 0) to measure a variant; it
takes the stage's ``anon.dynamics_range_db`` (``anon-neutral@anon.split_pct=0,anon.split_center_pct=0`` with no
option gives the stage's EERs, STOI and DNSMOS on 8 train-split speakers).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench
from resculpt.dsp.voice import dynamics as D

_CFG: dict = {}       # the options of the chain being built
_PASS = {"mode": None}  # "collect" / "held" while a ``whole`` system runs its two passes
_INSTANCES: list = []


def _init(self, freqs_hz, channels, frame_rate_hz, split_weights=None, _orig=D.BandDynamics.__init__):
    _orig(self, freqs_hz, channels, frame_rate_hz, split_weights)
    self.opt = dict(_CFG)
    if "tau" in self.opt:
        self._a = 1.0 - math.exp(-1.0 / (self.opt["tau"] * frame_rate_hz))
    self._nlow = int(np.sum(D.band_edges_hz()[1:-1] < self.opt.get("low", 0.0)))
    self._acc = np.zeros((channels, 3, D.BANDS), np.float64)
    _INSTANCES.append(self)


def _process(self, row, ch, share, tilt, speech, split=0.0, max_db=D.MAX_DB, center=0.0, spread=0.0,
             pause_cut_db=0.0, lift_snr_db=0.0, sub_db=0.0):
    if split > 0.0 or center > 0.0 or spread > 0.0 or lift_snr_db > 0.0 or sub_db > 0.0:
        raise SystemExit("scripts/anon_dynamics_variants.py ports the statistical step only: run the system with "
                         "anon.split_pct=0,anon.split_center_pct=0,anon.split_spread_pct=0,anon.floor_sub_db=0,"
                         "anon.lift_snr_db=0")
    if max_db != self._max_db:
        self._max_db = max_db
        self._hi[...] = max_db
        self._lo[...] = -max_db
    if tilt != self._tilt:
        t = self._oct.astype(np.float64) * tilt + self._pop
        self._tgt[:] = t - t.mean()
        self._tilt = tilt
    p = np.abs(row).astype(np.float32) ** 2
    L = (self._w @ p).astype(np.float32)
    L = L + np.float32(float(L.max()) * D.FLOOR + 1e-37)
    L = (10.0 * np.log10(L)).astype(np.float32)
    if not math.isfinite(float(L.mean())):
        return
    if _PASS["mode"] == "collect":
        if speech:
            self._acc[ch, 0] += 1.0
            self._acc[ch, 1] += L
            self._acc[ch, 2] += L.astype(np.float64) ** 2
        return
    m, v = self._mean[ch], self._var[ch]
    n = self._n[ch]
    held = _PASS["mode"] == "held" and self._acc[ch, 0, 0] > 0
    if held:
        k = self._acc[ch, 0, 0]
        m[:] = self._acc[ch, 1] / k
        v[:] = np.maximum(self._acc[ch, 2] / k - (self._acc[ch, 1] / k) ** 2, 0.0)
        n = self._n[ch] = 1.0
    elif speech:
        if n == 0.0:
            m[:] = self._tgt + np.float32(float(L.mean()))
            v[:] = self._std * self._std
        k = np.float32(max(1.0 / (D.PRIOR_FRAMES + n + 1.0), self._a))
        d = L - m
        m += d * k
        v += d * d * k
        v *= np.float32(1.0 - k)
        self._n[ch] = n + 1.0
    elif n == 0.0:
        return
    t = self._tgt + np.float32(m.mean())
    d = L - m
    if speech:
        r = np.clip(self._std / np.maximum(np.sqrt(v), self._tiny), self._rlo, self._rhi)
        d = d * r
        if self._nlow:
            d[: self._nlow] = d[: self._nlow].mean()
    t = np.clip(t + d - L, self._lo, self._hi)
    self._pauses(t, ch, bool(speech), pause_cut_db)   # the stage's pause handling
    t = t * np.float32(share * math.log(10.0) / 20.0)
    row *= np.exp(self._s @ t).astype(np.complex64)


def _chain_system(spec, params=None, random_seed=False, _orig=bench.chain_system):
    global _CFG
    opts = {}
    if isinstance(spec, str) and "+" in spec:
        spec, *rest = spec.split("+")
        for o in rest:
            k, _, v = o.partition("=")
            if k not in ("whole", "low", "tau"):
                raise SystemExit(f"{o}: not an option (whole, low=HZ, tau=S)")
            opts[k] = float(v) if v else True
    _CFG = opts
    try:
        run1 = _orig(spec, params, random_seed)
    finally:
        _CFG = {}
    if not opts.get("whole"):
        return run1

    def run(x, rng=None):
        state = None if rng is None else rng.bit_generator.state
        for st in _INSTANCES:
            st._acc[:] = 0.0
        _PASS["mode"] = "collect"
        try:
            run1(x, rng)
            if rng is not None:
                rng.bit_generator.state = state  # the same seed for both passes
            _PASS["mode"] = "held"
            return run1(x, rng)
        finally:
            _PASS["mode"] = None
    return run


def main(argv=None) -> int:
    D.BandDynamics.__init__ = _init
    D.BandDynamics.process = _process
    bench.chain_system = _chain_system
    argv = sys.argv[1:] if argv is None else argv
    rc = bench.main(argv)
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else bench.OUT
    if rc == 0 and out.exists():  # the table names the command that made it
        out.write_text(out.read_text().replace("`benchmarks/anonymity.py ", "`scripts/anon_dynamics_variants.py ", 1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
