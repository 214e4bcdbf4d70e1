"""Spectral gate: per-bin downward expander with a frequency-tilted threshold.

Each bin's level (dBFS: 0 dB = a full-scale sine centred on the bin) is compared with a
threshold that rises ``tilt_db_oct`` dB per octave above 1 kHz (and falls below it). Bins under
the threshold are attenuated by up to ``range_db``, over a soft knee, with per-bin attack
(opening) and release (closing) smoothing. With tilt > 0 it strips quiet highs first: a darker,
sparser sound (the `spectral-dark` preset); with tilt 0 and a low threshold, a hiss/room gate.
"""

from __future__ import annotations

import numpy as np

from .params import ParamSpec
from .spectral_util import apply_gain
from .stft import SpectralStage

PARAMS = (
    ParamSpec("sgate.threshold_db", -100.0, 0.0, -60.0, "dB", smoothing_ms=30.0,
              doc="bin level (dBFS at 1 kHz) under which a bin is attenuated"),
    ParamSpec("sgate.tilt_db_oct", -12.0, 12.0, 0.0, "dB/oct", smoothing_ms=30.0,
              doc="threshold slope per octave around 1 kHz; > 0 gates highs harder"),
    ParamSpec("sgate.range_db", 0.0, 90.0, 30.0, "dB", smoothing_ms=30.0, doc="largest attenuation"),
    ParamSpec("sgate.knee_db", 0.0, 24.0, 6.0, "dB", smoothing_ms=30.0, doc="soft-knee width"),
    ParamSpec("sgate.attack_ms", 0.5, 200.0, 5.0, "ms", scale="log", smoothing_ms=0.0,
              doc="time for a bin to open"),
    ParamSpec("sgate.release_ms", 5.0, 2000.0, 80.0, "ms", scale="log", smoothing_ms=0.0,
              doc="time for a bin to close"),
)


class SpectralGate(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place."""

    name = "sgate"

    def __init__(self, table):
        self.table = table
        self._idx = [table.index(p.id) for p in PARAMS]

    def prepare(self, ctx):
        super().prepare(ctx)
        nb = ctx.n_bins
        rows = 1 if ctx.linked else ctx.channels
        self._pow = np.zeros((ctx.channels, nb), np.float32)  # |X|^2 per channel and bin
        self._im = np.zeros((ctx.channels, nb), np.float32)   # imag(X)^2, summed into _pow
        # One row when linked (gain from the mean power over channels), else one per channel.
        self._lvl = np.zeros((rows, nb), np.float32)   # bin level, then dB above the threshold
        self._gain = np.ones((rows, nb), np.float32)   # smoothed linear gain (state)
        self._tgt = np.zeros((rows, nb), np.float32)   # target linear gain of this frame
        self._up = np.zeros((rows, nb), bool)          # bins whose gain rises (attack, else release)
        self._coef = np.zeros((rows, nb), np.float32)  # per-bin one-pole coefficient, then 1 - it
        self._thr = np.zeros((rows, nb), np.float32)  # per row: `lvl -= thr` must not broadcast
        self._cbuf = np.zeros((ctx.channels, ctx.n_bins), np.complex64)  # apply_gain's scratch
        f = np.maximum(ctx.freqs_hz, ctx.freqs_hz[1] if nb > 1 else 1.0)
        self._oct = np.log2(f / 1000.0).astype(np.float32)  # octaves above 1 kHz (DC reads as bin 1)
        # sqrt-Hann analysis window: a full-scale sine on a bin gives |X| = sum(w) / 2.
        wsum = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(ctx.n_fft) / ctx.n_fft)).sum()
        self._ref_db = float(20.0 * np.log10(wsum / 2.0))
        self._cache = None
        self.reset()

    def reset(self):
        self._gain.fill(1.0)
        self._cache = None

    def _update(self):
        v = self.table.value
        thr, tilt, rng, knee, att, rel = (float(v[i]) for i in self._idx)
        key = (thr, tilt, rng, knee, att, rel)
        if key == self._cache:
            return
        self._cache = key
        np.multiply(self._oct, tilt, out=self._thr)
        self._thr += thr + self._ref_db  # threshold in raw 10log10|X|^2 units
        hop_s = self.ctx.hop / self.ctx.sample_rate
        self._a_att = float(np.exp(-hop_s / (att * 1e-3)))
        self._a_rel = float(np.exp(-hop_s / (rel * 1e-3)))
        self._range, self._knee = rng, max(knee, 1e-3)

    def process_frame(self, spec):
        self._update()
        np.multiply(spec.real, spec.real, out=self._pow)
        np.multiply(spec.imag, spec.imag, out=self._im)
        self._pow += self._im
        if self.ctx.linked and self.ctx.channels > 1:
            # Mean power over channels (an explicit sum: np.mean(out=) allocates a reduction buffer).
            np.copyto(self._lvl[0], self._pow[0])
            for ch in range(1, self.ctx.channels):
                self._lvl[0] += self._pow[ch]
            self._lvl *= 1.0 / self.ctx.channels
        else:
            np.copyto(self._lvl, self._pow)
        lvl = self._lvl
        np.fmax(lvl, 1e-20, out=lvl)  # fmax, not maximum: a NaN bin reads as silence, not poison
        np.log10(lvl, out=lvl)
        lvl *= 10.0
        lvl -= self._thr  # dB above threshold (negative = below)
        # Soft knee: 0 dB attenuation above +knee/2, full range below -knee/2, linear in between.
        tgt = self._tgt
        np.multiply(lvl, -1.0 / self._knee, out=tgt)
        tgt += 0.5
        np.clip(tgt, 0.0, 1.0, out=tgt)
        tgt *= -self._range / 20.0
        np.power(10.0, tgt, out=tgt)  # target linear gain
        # Attack where the gain rises (bin opening), release where it falls.
        np.greater(tgt, self._gain, out=self._up)
        self._coef.fill(self._a_rel)
        np.copyto(self._coef, self._a_att, where=self._up)
        # g += (1 - a) * (target - g)
        tgt -= self._gain
        np.subtract(1.0, self._coef, out=self._coef)
        tgt *= self._coef
        self._gain += tgt
        apply_gain(spec, self._gain, self._cbuf)
