"""Formants F1–F3 by linear prediction (autocorrelation method), rate-independent.

Per 5 ms hop on a 25 ms Hamming window (mono mix): the power spectrum is pre-emphasised (1 − 0.97 z⁻¹ at the
native rate) and truncated at ``max_formant_hz`` (5.5 kHz, as Praat does for 5 formants); its inverse FFT is
the autocorrelation of the band-limited signal at an effective rate of 2·5.5 kHz, whatever the input rate
(16–96 kHz give the same analysis). Levinson–Durbin (order 10), polynomial roots, candidates with 200 Hz < F <
max − 50 Hz and bandwidth < 600 Hz, sorted: F1, F2, F3 and their bandwidths. Below 200 Hz no vowel has a
formant; poles there model the glottal source or a low voice's second harmonic, which were read as F1 on a low
voice's frames. F1 lies below ``F1_MAX_HZ`` (1.2 kHz: above a child's open vowels): when no such narrow
candidate exists, the narrowest pole below it with a bandwidth under ``F1_BROAD_BW_HZ`` is F1 (an open,
breathy F1 is often 600–1000 Hz wide), and without one F1 is NaN and the narrow candidates are F2 and F3.
Taken by rank alone, the second formant stood in for a missing first and raised a speaker's median F1 by up to
a third (docs/profiles.md).
Frames below ``floor_dbfs`` give NaN. Formants are meaningful on voiced frames; the profile code selects those
with :class:`~.pitch.Pitch`.
"""

from __future__ import annotations

import numpy as np

from .base import FrameAnalyzer

F_MIN_HZ = 200.0
F1_MAX_HZ = 1200.0
F1_BROAD_BW_HZ = 1000.0


def levinson(r: np.ndarray, order: int) -> np.ndarray:
    """LPC polynomial a (order + 1,), a[0] = 1, from autocorrelation r[0..order]."""
    a = np.zeros(order + 1)
    a[0] = 1.0
    err = r[0]
    for i in range(1, order + 1):
        if err <= 0:
            break
        acc = r[i] + np.dot(a[1:i], r[i - 1 : 0 : -1])
        k = -acc / err
        a[1 : i + 1] = a[1 : i + 1] + k * np.concatenate((a[i - 1 : 0 : -1], [1.0]))
        err *= 1.0 - k * k
    return a


def pick_formants(f: np.ndarray, bw: np.ndarray, max_formant_hz: float, row: np.ndarray) -> None:
    """F1..F3 and their bandwidths from LPC pole frequencies ``f`` and bandwidths ``bw`` (k,) Hz into ``row[:6]``
    (left NaN where there is none; see the module doc for the rule)."""
    inside = (f > F_MIN_HZ) & (f < max_formant_hz - 50.0)
    ok = inside & (bw < 600.0)
    fn, bn = f[ok], bw[ok]
    o = np.argsort(fn)
    fn, bn = fn[o], bn[o]
    if fn.size and fn[0] <= F1_MAX_HZ:  # a narrow F1: the three lowest narrow candidates
        k = min(3, fn.size)
        row[:k], row[3 : 3 + k] = fn[:k], bn[:k]
        return
    broad = inside & (f <= F1_MAX_HZ) & (bw < F1_BROAD_BW_HZ)
    if broad.any():
        j = int(np.argmin(np.where(broad, bw, np.inf)))
        row[0], row[3] = f[j], bw[j]
    k = min(2, fn.size)
    row[1 : 1 + k], row[4 : 4 + k] = fn[:k], bn[:k]


class Formants(FrameAnalyzer):
    name = "formants"
    columns = ("f1_hz", "f2_hz", "f3_hz", "b1_hz", "b2_hz", "b3_hz")
    units = ("Hz",) * 6
    window_ms = 25.0

    def __init__(self, max_formant_hz: float = 5500.0, order: int = 10, floor_dbfs: float = -60.0,
                 history_s: float = 10.0):
        super().__init__(history_s)
        self.max_formant_hz, self.order, self.floor_dbfs = float(max_formant_hz), int(order), float(floor_dbfs)

    def _setup(self):
        sr, w = self.sample_rate, self.win_len
        self.nfft = 1 << int(np.ceil(np.log2(2 * w)))
        df = sr / self.nfft
        self.k_cut = int(round(min(self.max_formant_hz, 0.5 * sr) / df))
        self.fs_eff = 2.0 * self.k_cut * df
        self._win = np.hamming(w)
        f = np.arange(self.k_cut + 1) * df
        self._pre = np.abs(1.0 - 0.97 * np.exp(-2j * np.pi * f / sr)) ** 2
        self._floor = float(np.sum(self._win ** 2)) * 10.0 ** (self.floor_dbfs / 10.0) * 0.5

    def _compute(self, row):
        row[:] = np.nan
        x = self.mono() * self._win
        if float(np.dot(x, x)) <= self._floor:
            return
        p = np.abs(np.fft.rfft(x, self.nfft)[: self.k_cut + 1]) ** 2 * self._pre
        r = np.fft.irfft(p, 2 * self.k_cut)[: self.order + 1]
        if r[0] <= 0:
            return
        r[0] *= 1.0 + 1e-6
        a = levinson(r, self.order)
        roots = np.roots(a)
        roots = roots[np.imag(roots) > 0]
        fs = self.fs_eff
        f = np.angle(roots) * fs / (2 * np.pi)
        bw = -np.log(np.maximum(np.abs(roots), 1e-12)) * fs / np.pi
        pick_formants(f, bw, self.max_formant_hz, row)
