"""Facts shared by training (torch) and the runtime stage (numpy): band layout and the feature.

Feature (rate- and window-independent): per ERB band, the weighted mean of the bin power spectral
density, ``P_k = |X_k|^2 / (fs * sum(w_a^2))`` (per Hz, so white noise of a given level per Hz gives the
same value at 16 and 48 kHz and with a 10 or 20 ms window), in dB: ``10 log10(analysis @ P + EPS)``.

Bands: the 32-band ERB map of :class:`resculpt.dsp.bands.BandMap` (0-24 kHz). Bands 0..23 (0-7.33 kHz)
are learned from 16 kHz speech; bands 24..31 (7.33-24 kHz, which 16 kHz speech does not reach) are
handled by a non-learned noise-floor rule in the stage (see ``stage.py``).
"""

from __future__ import annotations

import numpy as np

N_BANDS = 32
N_LEARNED = 24
EPS = 1e-12
CONFIG_VERSION = 1
HOP_MS = 5.0
MODES = ("denoise", "enhance", "creative")


def psd_scale(sample_rate: int, win_a: np.ndarray) -> float:
    """Multiply |X|^2 by this to get a power spectral density per Hz."""
    return 1.0 / (float(sample_rate) * float(np.sum(np.asarray(win_a, np.float64) ** 2)))


def sqrt_hann(n_fft: int) -> np.ndarray:
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft))
