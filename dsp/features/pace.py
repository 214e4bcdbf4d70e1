"""Pace: syllable-nucleus (onset) rate, causal, per 5 ms hop.

The mono mix is band-passed to 300–3000 Hz (2nd-order Butterworth, run a hop at a time), its
per-hop power smoothed (one pole, 25 ms) and taken in dB. A nucleus is counted at a local maximum
that rose at least ``prominence_db`` above the preceding trough, is "active" (within 35 dB of a
slowly decaying running peak and above −65 dBFS) and is followed by a fall of ``prominence_db``
(hysteresis, no look-ahead), at least 80 ms after the previous one.

Columns: ``onset_rate_hz`` = nuclei in the last 3 s / active seconds in the last 3 s (NaN until
0.5 s of activity), ``event`` (1 on the hop where a nucleus is confirmed), ``active`` (0/1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import butter

from .base import FrameAnalyzer


class Pace(FrameAnalyzer):
    name = "pace"
    columns = ("onset_rate_hz", "event", "active")
    units = ("1/s", "", "")
    WINDOW_HOPS = 600
    dc_block = False  # it reads only its 300 Hz - 3 kHz band-pass

    def __init__(self, prominence_db: float = 3.0, history_s: float = 10.0):
        super().__init__(history_s)
        self.prominence_db = float(prominence_db)

    def window_samples(self, sr):
        return 0

    def _setup(self):
        sr = self.sample_rate
        # filtered(): the mono hop band-passed
        self.filter_sos, self.filter_mono = butter(2, [300.0, 3000.0], btype="band", fs=sr, output="sos"), True
        hop_s = self.hop / sr
        self._a = math.exp(-hop_s / 0.025)
        self._decay = 1.0 * hop_s          # running peak falls 1 dB/s
        self._min_gap = int(round(0.08 / hop_s))
        self._ev = np.zeros(self.WINDOW_HOPS)
        self._act = np.zeros(self.WINDOW_HOPS)

    def _reset_state(self):
        self._ev.fill(0.0)
        self._act.fill(0.0)
        self._p = 0.0
        self._peak_track = -120.0
        self._rising = True
        self._max = -200.0
        self._max_active = False
        self._trough = -120.0
        self._last_event = -10 ** 9

    def _compute(self, row):
        y = self.filtered()[0]
        self._p = self._a * self._p + (1.0 - self._a) * float(np.mean(y * y))
        e = 10.0 * math.log10(self._p + 1e-12)
        self._peak_track = max(e, self._peak_track - self._decay)
        active = e > max(self._peak_track - 35.0, -65.0)
        h = self.frames
        event = 0.0
        pr = self.prominence_db
        if self._rising:
            if e > self._max:
                self._max, self._max_active = e, active
            elif e < self._max - pr:
                if (self._max_active and self._max - self._trough >= pr
                        and h - self._last_event >= self._min_gap):
                    event = 1.0
                    self._last_event = h
                self._rising = False
                self._trough = e
        else:
            if e < self._trough:
                self._trough = e
            elif e > self._trough + pr:
                self._rising = True
                self._max, self._max_active = e, active
        i = h % self.WINDOW_HOPS
        self._ev[i] = event
        self._act[i] = 1.0 if active else 0.0
        act_s = float(self._act.sum()) * self.hop / self.sample_rate
        row[0] = float(self._ev.sum()) / act_s if act_s >= 0.5 else np.nan
        row[1] = event
        row[2] = self._act[i]
