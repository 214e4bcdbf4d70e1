"""Pitch (F0), voicing and harmonic-to-noise ratio: YIN (de Cheveigné & Kawahara 2002).

Per 5 ms hop, on the last ``tau_max + integration`` samples of the mono mix, high-passed (Butterworth,
2nd order at 0.6 fmin: a DC offset or an infrasonic drift, which many speech recordings start with, is
a "period" longer than any lag and otherwise reads as a voice at fmin), low-passed (Chebyshev I, 8th
order; both run a hop at a time) and decimated by the largest factor that keeps >= 16 kHz and
divides the hop (44.1 kHz -> 22.05, 48/96 kHz -> 16 kHz), so the cost and the analysis are about
the same at every rate; integration 50 ms, so the analysis spans ~65 ms at fmin 65 Hz, comparable
to pyin's 64 ms frames. fmin is 65 Hz (C2, pyin's default too), above mains hum: a 60 Hz hum (or 50 Hz,
whose search ends at the lag range's edge) under a recording's pauses is periodic enough to pass for a
voice, and at fmin 60 Hz it was one on a fifth of some val speakers' voiced frames, which doubled their
F0 spread (p10 at 60 Hz) to 22 semitones. A voice below 65 Hz (vocal fry, the lowest bass notes) reads
as unvoiced:
  * difference function d(τ) = E0 + E_τ − 2 r(τ) (cross-correlation by FFT, energies by cumsum),
  * cumulative-mean-normalised d'(τ); the first τ in [sr/fmax, sr/fmin] with d' < ``threshold``
    (then walked down to its local minimum), else the global minimum,
  * parabolic interpolation of d' around it; F0 = sr / τ.
Voiced when d'(τ) < ``voicing_threshold`` and the integration window is above ``floor_dbfs``.
HNR (Boersma 1993): r = normalised autocorrelation at the pitch lag, HNR = 10 log10(r / (1 − r)),
clipped to [−20, 40] dB; low HNR = breathy/noisy. Unvoiced frames: f0_hz = NaN.
"""

from __future__ import annotations

import numpy as np

from ..hop_window import HopWindow
from .base import FrameAnalyzer


HPF_FMIN = 0.6  # the high-pass corner, re fmin: -3 dB there, about -0.9 dB at fmin (2nd order)


def _next_pow2(n: int) -> int:
    return 1 << int(np.ceil(np.log2(max(2, n))))


class Pitch(FrameAnalyzer):
    name = "pitch"
    columns = ("f0_hz", "voiced", "periodicity", "hnr_db")
    units = ("Hz", "", "", "dB")
    dc_block = False  # its own high-pass at 0.6 fmin takes DC and infrasound

    def __init__(self, fmin_hz: float = 65.0, fmax_hz: float = 1100.0, threshold: float = 0.15,
                 voicing_threshold: float = 0.3, integration_ms: float = 50.0, floor_dbfs: float = -60.0,
                 history_s: float = 10.0):
        super().__init__(history_s)
        self.fmin_hz, self.fmax_hz = float(fmin_hz), float(fmax_hz)
        self.threshold, self.voicing_threshold = float(threshold), float(voicing_threshold)
        self.integration_ms, self.floor_dbfs = float(integration_ms), float(floor_dbfs)

    def _decimation(self, sr: int, hop: int) -> int:
        """Largest factor D with sr / D >= 16 kHz that divides the hop (YIN runs at sr / D)."""
        for d in range(max(1, sr // 16000), 0, -1):
            if hop % d == 0:
                return d
        return 1

    def window_samples(self, sr: int) -> int:
        return 0  # the base buffer holds the newest hop; the decimated analysis window is our own

    def _setup(self):
        from scipy.signal import butter, cheby1

        sr, hop = self.sample_rate, self.hop
        self.dec = self._decimation(sr, hop)
        self.rate = sr / self.dec              # analysis rate
        hp = butter(2, HPF_FMIN * self.fmin_hz, "highpass", fs=sr, output="sos")
        # filtered(): the mono hop high- and low-passed
        self.filter_sos = (np.concatenate([hp, cheby1(8, 0.05, 0.8 * 0.5 * self.rate, fs=sr, output="sos")])
                           if self.dec > 1 else hp)
        self.filter_mono = True
        r = self.rate
        self.tau_max = int(np.ceil(r / self.fmin_hz))
        self.tau_min = max(2, int(np.floor(r / self.fmax_hz)))
        self.wi = max(self.tau_max, int(round(self.integration_ms * 1e-3 * r)))
        self.ana_len = self.wi + self.tau_max + 2
        self.hop_dec = hop // self.dec
        self._x = HopWindow(1, self.ana_len, self.hop_dec, np.float64)  # decimated analysis window
        self.nfft = _next_pow2(self.ana_len + self.wi)
        self._tau = np.arange(self.tau_max + 2, dtype=np.float64)
        self._floor = self.wi * (10.0 ** (self.floor_dbfs / 10.0)) * 0.5

    def _reset_state(self):
        self._x.reset()

    def _push(self) -> np.ndarray:
        """Decimate the newest hop, high- and low-passed (``filtered()``), into the analysis window."""
        h = self.filtered()[0, self.dec - 1 :: self.dec]
        x = self._x
        x.shift()
        x.write(h[None, :])
        return x.buf[0]

    def _compute(self, row):
        x = self._push()
        wi, tmax, nfft = self.wi, self.tau_max + 2, self.nfft
        row[:] = (np.nan, 0.0, 0.0, np.nan)
        a = x[:wi]
        e0 = float(np.dot(a, a))
        if e0 <= self._floor:
            return
        fa = np.fft.rfft(a, nfft)
        fx = np.fft.rfft(x, nfft)
        r = np.fft.irfft(np.conj(fa) * fx, nfft)[:tmax]
        cs = np.concatenate(([0.0], np.cumsum(x * x)))
        et = cs[wi : wi + tmax] - cs[:tmax]          # energy of x[τ : τ + wi]
        d = np.maximum(e0 + et - 2.0 * r, 0.0)
        d[0] = 0.0
        c = np.cumsum(d[1:])
        dn = np.ones(tmax)
        dn[1:] = d[1:] * self._tau[1:tmax] / np.maximum(c, 1e-30)
        lo, hi = self.tau_min, self.tau_max
        seg = dn[lo : hi + 1]
        below = np.flatnonzero(seg < self.threshold)
        if below.size:
            k = lo + int(below[0])
            while k + 1 <= hi and dn[k + 1] < dn[k]:
                k += 1
        else:
            k = lo + int(np.argmin(seg))
        # Parabolic interpolation of d' around k.
        if lo < k < hi:
            y0, y1, y2 = dn[k - 1], dn[k], dn[k + 1]
            den = y0 - 2.0 * y1 + y2
            delta = 0.5 * (y0 - y2) / den if den > 0 else 0.0
            delta = min(max(delta, -0.5), 0.5)
        else:
            delta = 0.0
        tau = k + delta
        ap = float(dn[k])
        rn = float(r[k] / np.sqrt(max(e0 * et[k], 1e-30)))
        rn = min(max(rn, 1e-6), 1.0 - 1e-6)
        row[2] = max(0.0, 1.0 - ap)
        row[3] = float(np.clip(10.0 * np.log10(rn / (1.0 - rn)), -20.0, 40.0))
        if ap < self.voicing_threshold and lo < k < hi:
            row[0] = self.rate / tau
            row[1] = 1.0
