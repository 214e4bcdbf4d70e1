"""Loudness (ITU-R BS.1770-4 / EBU R128) and dynamics, per 5 ms hop.

K-weighting: the two BS.1770 biquads designed for the running rate from their analogue
parameters (as libebur128 does; at 48 kHz they equal the standard's published coefficients),
run per channel one whole hop at a time (so streaming equals offline). Channel weights are 1
(mono, L, R). Loudness L = −0.691 + 10·log10(Σ_c mean_square_c) LUFS; calibration: a 0 dBFS
997 Hz sine in one channel reads −3.01 LUFS.

Columns per hop:
  lufs_momentary: last 400 ms;  lufs_shortterm: last 3 s (windows measured in hops, 5 ms each);
  lufs_integrated: gated (absolute −70 LUFS, relative −10 LU) over the 400 ms blocks with 75 %
      overlap seen so far; blocks are kept in a 0.05 LU histogram of summed energies, so memory
      is bounded for endless streams (gate resolution 0.05 LU);
  lra_lu: EBU Tech 3342 loudness range (short-term values every 100 ms, gates −70 LUFS and −20 LU,
      10th to 95th percentile), histogram-based as above;
  crest_db: peak over RMS of the (unweighted) last 400 ms, both about the window's mean (a DC offset is not
      dynamics: it would read as a compressed signal);  peak_dbfs: sample peak, 400 ms (the offset included:
      it is headroom spent).
The input is not DC-blocked (``dc_block`` False): the K-weighting's own high-pass removes DC from every
loudness figure, which stays the standard's.
Undefined values (nothing above the gate yet) are NaN.
"""

from __future__ import annotations

import math

import numpy as np

from .base import FrameAnalyzer

H_LO, H_HI, H_STEP = -70.0, 30.0, 0.05
N_HIST = int(round((H_HI - H_LO) / H_STEP))


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """(2, 6) second-order sections of the BS.1770 K-weighting filter at ``sample_rate``."""
    f0, g, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (g / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    s1 = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
          1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    f0, q = 38.13547087613982, 0.5003270373253953
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    s2 = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([s1, s2])


def k_weighting_power(f_hz, sample_rate: int) -> np.ndarray:
    """|H(f)|^2 of :func:`k_weighting_sos` at ``f_hz`` (array, Hz): the K-weighting as a power response, for
    meters that work on spectra (the resculpting model's loudness prior, ``dsp.loudness_follow``)."""
    z = np.exp(-1j * 2.0 * np.pi * np.asarray(f_hz, float) / sample_rate)
    h = np.ones_like(z)
    for b0, b1, b2, a0, a1, a2 in k_weighting_sos(sample_rate):
        h = h * (b0 + b1 * z + b2 * z * z) / (a0 + a1 * z + a2 * z * z)
    return np.abs(h) ** 2


def _lufs(mean_square: float) -> float:
    return -0.691 + 10.0 * math.log10(mean_square) if mean_square > 0 else float("-inf")


class _GatedHistogram:
    """Energies of loudness blocks in 0.05 LU bins from −70 to +30 LUFS (bounded memory)."""

    def __init__(self):
        self.energy = np.zeros(N_HIST)
        self.count = np.zeros(N_HIST)

    def clear(self):
        self.energy.fill(0.0)
        self.count.fill(0.0)

    def add(self, ms: float) -> None:
        loud = _lufs(ms)
        if loud <= H_LO:
            return
        i = min(int((loud - H_LO) / H_STEP), N_HIST - 1)
        self.energy[i] += ms
        self.count[i] += 1.0

    def _rel_start(self, rel_lu: float) -> int:
        n = self.count.sum()
        if n == 0:
            return -1
        gate = _lufs(self.energy.sum() / n) + rel_lu
        # include bins whose centre is at or above the relative gate
        return max(0, int(math.ceil((gate - H_LO) / H_STEP - 0.5)))

    def integrated(self) -> float:
        i = self._rel_start(-10.0)
        if i < 0:
            return float("nan")
        n = self.count[i:].sum()
        return _lufs(self.energy[i:].sum() / n) if n else float("nan")

    def loudness_range(self) -> float:
        i = self._rel_start(-20.0)
        if i < 0:
            return float("nan")
        c = np.cumsum(self.count[i:])
        if c[-1] < 2:
            return 0.0 if c[-1] else float("nan")
        centres = H_LO + (np.arange(i, N_HIST) + 0.5) * H_STEP
        lo = centres[int(np.searchsorted(c, 0.10 * c[-1]))]
        hi = centres[min(int(np.searchsorted(c, 0.95 * c[-1])), c.size - 1)]
        return float(hi - lo)


class Loudness(FrameAnalyzer):
    name = "loudness"
    columns = ("lufs_momentary", "lufs_shortterm", "lufs_integrated", "lra_lu", "crest_db", "peak_dbfs")
    units = ("LUFS", "LUFS", "LUFS", "LU", "dB", "dBFS")

    M_HOPS, S_HOPS, STEP_HOPS = 80, 600, 20
    dc_block = False

    def window_samples(self, sr):
        return 0  # only the newest hop is needed

    def _setup(self):
        c = self.channels
        self.filter_sos = k_weighting_sos(self.sample_rate)  # K-weighting, each channel (filtered())
        self._e = np.zeros(self.S_HOPS)       # K-weighted energy per hop (sum over channels)
        self._raw = np.zeros(self.M_HOPS)     # unweighted mean-over-channels energy per hop
        self._sum = np.zeros((self.M_HOPS, c))  # per hop and channel: sum, max, min of the samples
        self._max = np.zeros((self.M_HOPS, c))
        self._min = np.zeros((self.M_HOPS, c))
        self._peak = np.zeros(self.M_HOPS)
        self._int = _GatedHistogram()
        self._lra = _GatedHistogram()

    def _reset_state(self):
        self._e.fill(0.0)
        self._raw.fill(0.0)
        for a in (self._sum, self._max, self._min, self._peak):
            a.fill(0.0)
        self._int.clear()
        self._lra.clear()
        self._integrated = float("nan")
        self._range = float("nan")

    def _window_sum(self, ring, n_hops, h):
        """Sum of the newest n_hops entries of ``ring`` whose newest index is h."""
        size = ring.size
        end = h % size + 1
        if end >= n_hops:
            return float(ring[end - n_hops : end].sum())
        return float(ring[:end].sum() + ring[size - (n_hops - end) :].sum())

    def _compute(self, row):
        hop = self.hop
        x = self._input.buf[:, -hop:]
        y = self.filtered()
        h = self.frames
        self._e[h % self.S_HOPS] = float(np.sum(y * y))
        self._raw[h % self.M_HOPS] = float(np.sum(x * x)) / self.channels
        self._peak[h % self.M_HOPS] = float(np.max(np.abs(x))) if hop else 0.0
        j = h % self.M_HOPS
        if hop:
            np.sum(x, axis=1, out=self._sum[j])
            np.max(x, axis=1, out=self._max[j])
            np.min(x, axis=1, out=self._min[j])
        ms_m = self._window_sum(self._e, self.M_HOPS, h) / (self.M_HOPS * hop)
        ms_s = self._window_sum(self._e, self.S_HOPS, h) / (self.S_HOPS * hop)
        done = h + 1
        if done % self.STEP_HOPS == 0:
            if done >= self.M_HOPS:
                self._int.add(ms_m)
                self._integrated = self._int.integrated()
            if done >= self.S_HOPS:
                self._lra.add(ms_s)
                self._range = self._lra.loudness_range()
        row[0] = _lufs(ms_m) if ms_m > 0 else np.nan
        row[1] = _lufs(ms_s) if ms_s > 0 else np.nan
        row[2] = self._integrated
        row[3] = self._range
        raw = float(self._raw.sum()) / (self.M_HOPS * hop)
        pk = float(self._peak.max())
        # about each channel's 400 ms mean m: power E[x^2] - m^2, peak the larger of max - m and m - min
        m = self._sum.sum(axis=0) / (self.M_HOPS * hop)
        ac = raw - float(np.dot(m, m)) / self.channels
        pk_ac = float(np.max(np.maximum(self._max.max(axis=0) - m, m - self._min.min(axis=0))))
        row[4] = 20.0 * math.log10(pk_ac / math.sqrt(ac)) if ac > 0 and pk_ac > 0 else np.nan
        row[5] = 20.0 * math.log10(pk) if pk > 0 else np.nan


def integrated_lufs(x, sample_rate: int) -> float:
    """Integrated loudness (LUFS) of a whole signal, via the streaming meter."""
    from .base import analyze

    rows = analyze(Loudness(), x, sample_rate)
    return float(rows[-1, 2]) if rows.size else float("nan")
