"""Facts shared by training (torch) and the runtime stage (numpy): band layout and the feature.

Feature (rate- and window-independent): per ERB band, the weighted mean of the bin power spectral
density, ``P_k = |X_k|^2 / (fs * sum(w_a^2))`` (per Hz, so white noise of a given level per Hz gives the
same value at 16 and 48 kHz and with a 10 or 20 ms window), in dB: ``10 log10(analysis @ P + EPS)``.

Fine feature (harmonic detail the 24 bands cannot show): the same PSD per Hz from a longer analysis
window, ``FINE_WIN_MS`` = 32 ms (Hann) of the *past* input ending at the current frame's last sample, read at
``N_FINE`` = 128 frequencies ``j * FINE_HZ`` (31.25 Hz apart, 0-3.97 kHz), in dB. 31.25 Hz bins resolve
the harmonics of a voice (F0 80-400 Hz) that 100 Hz (10 ms window) bins smear together. The window only
looks back, so it adds no latency: the mask applies to the current 10 or 20 ms frame.

Bands: the 32-band ERB map of :class:`resculpt.dsp.bands.BandMap` (0-24 kHz). Bands 0..23 (0-7.33 kHz)
are learned from 16 kHz speech; bands 24..31 (7.33-24 kHz, which 16 kHz speech does not reach) are
handled by a non-learned noise-floor rule in the stage (see ``stage.py``).
"""

from __future__ import annotations

import numpy as np

from resculpt.dsp.bands import N_BANDS  # noqa: F401  (the model's band count, re-exported with the other model constants)

N_LEARNED = 24
EPS = 1e-12
CONFIG_VERSION = 2  # the bundle config layout the loader reads (with the model input ``fine``)
HOP_MS = 5.0  # frame hop the model is trained and exported at (written to config.json frame.hop_ms)
MODES = ("denoise", "enhance", "creative")
FINE_WIN_MS = 32.0
FINE_HZ = 31.25
N_FINE = 128
# Deep filtering (an optional output of the net, ``df_bins`` > 0): complex taps over the last ``df_order`` STFT
# frames of each of the lowest ``df_bins`` bins of the 10 ms window (100 Hz apart at every rate: bin k is
# k * 100 Hz). The taps are tied to that window; with another window the stage applies the band gains alone.
DF_WINDOW_MS = 10.0
# Training draws the strength (the fraction of the interference removed, the model's second condition) as 1 or
# uniformly in [MIN_STRENGTH, 1]; the stage fades the deep-filter taps out below it (see MaskStage._update).
MIN_STRENGTH = 0.3
# Phase-advance input (an optional input of the net, ``phase_bins`` P > 0; training-only so far: the stage and the
# exporter do not compute it): for each of the lowest P bins of the 10 ms window, the unit complex number
# X[t, k] conj(X[t-1, k]) (-1)^k / |.|. A sinusoid at bin k's centre (k * 100 Hz) advances its phase by pi * k per
# 5 ms hop at every rate, so the (-1)^k takes that out and what is left is 2 pi * 5 ms times its distance from
# the centre: steady for a harmonic that holds the bin, random for noise. The band powers and the 32 ms fine
# spectrum carry no phase, and a deep filter's useful taps follow from exactly this advance.
PHASE_FLOOR = 1e-2  # a bin far below the frame's mean (|a| under 1 % of it) reads as ~0, not a random unit vector


def fine_len(sample_rate: int) -> int:
    """Samples in the fine-feature window (32 ms): 512 at 16 kHz, 1411 at 44.1 kHz, 1536 at 48 kHz."""
    return int(round(FINE_WIN_MS * 1e-3 * sample_rate))


def fine_window(sample_rate: int) -> np.ndarray:
    """Periodic Hann of ``fine_len`` samples (float64)."""
    n = fine_len(sample_rate)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def fine_matrix(sample_rate: int) -> np.ndarray:
    """(N_FINE, n_bins_long) linear interpolation from the long window's rfft bins (spacing fs / n) to the
    fixed grid j * FINE_HZ, with the PSD-per-Hz scale folded in. At 16/48/96 kHz the grid falls on bins
    (fs / n = 31.25 Hz exactly) and the matrix is a scaled selection; at 44.1 kHz (31.254 Hz) and
    22.05 kHz it interpolates."""
    n = fine_len(sample_rate)
    nb = n // 2 + 1
    pos = np.arange(N_FINE) * FINE_HZ / (sample_rate / n)
    m = np.zeros((N_FINE, nb))
    i0 = np.minimum(np.floor(pos).astype(int), nb - 2)
    fr = pos - i0
    m[np.arange(N_FINE), i0] = 1.0 - fr
    m[np.arange(N_FINE), i0 + 1] += fr
    return m * psd_scale(sample_rate, fine_window(sample_rate))


def psd_scale(sample_rate: int, win_a: np.ndarray) -> float:
    """Multiply |X|^2 by this to get a power spectral density per Hz."""
    return 1.0 / (float(sample_rate) * float(np.sum(np.asarray(win_a, np.float64) ** 2)))


def sqrt_hann(n_fft: int) -> np.ndarray:
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft))
