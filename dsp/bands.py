"""Perceptual band maps shared by every stage that thinks in bands (mask model, match-EQ, features).

Bands are defined in Hz, not in bins, so one band layout serves every sample rate and FFT size:
a model trained on 16 kHz speech sees the same band indices at 48 kHz, and bands above Nyquist
are simply empty (their weights are zero) at low rates.
"""

from __future__ import annotations

import numpy as np

# The one band layout every band-domain stage, feature, profile and model uses: 32 bands equally spaced on
# the ERB-rate scale from 0 Hz to 24 kHz (about 1.2 ERB each; 36 Hz wide at the bottom, 1.9 kHz at the top).
N_BANDS = 32
F_MAX_HZ = 24000.0


# Glasberg & Moore (1990): ERB-rate scale, E(f) = 21.4 log10(1 + 0.00437 f).
def hz_to_erb(f_hz):
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(f_hz, dtype=np.float64))


def erb_to_hz(erb):
    return (10.0 ** (np.asarray(erb, dtype=np.float64) / 21.4) - 1.0) / 0.00437


def erb_band_edges(n_bands: int = N_BANDS, f_min_hz: float = 0.0, f_max_hz: float = F_MAX_HZ) -> np.ndarray:
    """Band edges (n_bands + 1,) in Hz, equally spaced on the ERB-rate scale."""
    if n_bands < 1:
        raise ValueError("n_bands must be >= 1")
    e = np.linspace(hz_to_erb(f_min_hz), hz_to_erb(f_max_hz), n_bands + 1)
    return erb_to_hz(e)


def band_centers_hz(edges_hz: np.ndarray) -> np.ndarray:
    """Geometric-ish centres (n_bands,) of bands given by edges (n_bands + 1,), in Hz."""
    lo, hi = edges_hz[:-1], edges_hz[1:]
    return erb_to_hz(0.5 * (hz_to_erb(lo) + hz_to_erb(hi)))


def bin_frequencies(sample_rate: int, n_fft: int) -> np.ndarray:
    """Centre frequency (n_fft // 2 + 1,) of every rfft bin, in Hz."""
    return np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)


class BandMap:
    """Triangular band weights between rfft bins and perceptual bands at one (rate, FFT size).

    Attributes:
        analysis: (n_bands, n_bins) float32, rows sum to 1 where the band has bins (band energy =
            analysis @ |X|^2 is a weighted mean, so it does not depend on FFT size).
        synthesis: (n_bins, n_bands) float32, columns interpolate band gains back to bins; every
            bin's weights sum to 1 (a constant band gain gives the same constant bin gain).
        valid: (n_bands,) bool, False for bands entirely above Nyquist.
    """

    def __init__(self, sample_rate: int, n_fft: int, n_bands: int = N_BANDS, f_max_hz: float = F_MAX_HZ):
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.n_bands = int(n_bands)
        self.edges_hz = erb_band_edges(n_bands, 0.0, f_max_hz)
        self.centers_hz = band_centers_hz(self.edges_hz)
        freqs = bin_frequencies(sample_rate, n_fft)
        self.n_bins = freqs.size
        nyq = sample_rate / 2.0
        erb_bins = hz_to_erb(freqs)
        erb_c = hz_to_erb(self.centers_hz)
        # Triangular interpolation on the ERB axis between neighbouring band centres.
        syn = np.zeros((self.n_bins, n_bands), dtype=np.float64)
        for k, e in enumerate(erb_bins):
            if e <= erb_c[0]:
                syn[k, 0] = 1.0
            elif e >= erb_c[-1]:
                syn[k, -1] = 1.0
            else:
                j = int(np.searchsorted(erb_c, e)) - 1
                t = (e - erb_c[j]) / (erb_c[j + 1] - erb_c[j])
                syn[k, j] = 1.0 - t
                syn[k, j + 1] = t
        self.valid = self.edges_hz[:-1] < nyq
        # Bands above Nyquist have no bins: hand their synthesis weight to the highest valid band.
        last_valid = int(np.flatnonzero(self.valid)[-1])
        if last_valid < n_bands - 1:
            syn[:, last_valid] += syn[:, last_valid + 1 :].sum(axis=1)
            syn[:, last_valid + 1 :] = 0.0
        ana = syn.T.copy()
        sums = ana.sum(axis=1, keepdims=True)
        self.valid &= sums[:, 0] > 0
        ana = np.divide(ana, sums, out=np.zeros_like(ana), where=sums > 0)
        self.analysis = ana.astype(np.float32)
        self.synthesis = syn.astype(np.float32)

    def band_power(self, power: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Band powers (..., n_bands) from bin powers (..., n_bins)."""
        return np.matmul(power, self.analysis.T, out=out)

    def bin_gains(self, band_gains: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Bin gains (..., n_bins) interpolated from band gains (..., n_bands)."""
        return np.matmul(band_gains, self.synthesis.T, out=out)
