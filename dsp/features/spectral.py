"""Spectral envelope (ERB bands), MFCCs and brightness (centroid, rolloff, tilt).

Analysis is the shared STFT's own (``default`` config: 20 ms periodic sqrt-Hann window, 5 ms
hop, no zero padding), so the envelope a profile stores is measured exactly as the match-EQ
stage (:mod:`resculpt.dsp.match_eq`) measures its input.

Level convention (``band_env_db``): power spectral density per band,
``P_b = Σ_k A[b,k] |X_k|² / Σ w²`` with A the :class:`~resculpt.dsp.bands.BandMap` analysis
weights (a weighted mean over the band's bins), in dB. White noise of variance σ² reads
10·log10(σ²) in every band (full-scale white noise, σ² = 1, reads 0 dB), at every rate and FFT
size. Bands centred above 0.45 x the sample rate (on or past the anti-alias slope) are NaN.

Brightness: ``centroid_hz`` (power-weighted mean frequency), ``rolloff_hz`` (85 % of the power
below it), both over 80 Hz .. min(Nyquist, 20 kHz) (DC and rumble excluded); ``tilt_db_oct``: least-squares slope of
``band_env_db`` against log2(band centre) over the bands centred 100 Hz .. min(8 kHz, 0.9·Nyquist).
MFCCs: 13 coefficients, DCT-II (orthonormal) of 10·log10 of 40 triangular mel (HTK) band powers over
20 Hz .. 8 kHz, so they mean the same at every supported rate.
"""

from __future__ import annotations

import numpy as np

from ..bands import N_BANDS, BandMap, band_centers_hz, erb_band_edges
from ..stft import get_config, sqrt_hann_pair
from .base import FrameAnalyzer

N_MFCC = 13
N_MELS = 40
EPS = 1e-12


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = N_MELS, fmin: float = 20.0,
                   fmax: float = 8000.0) -> np.ndarray:
    """(n_mels, n_bins) triangular HTK-mel weights, each row normalised to sum 1."""
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    fmax = min(fmax, sample_rate / 2)
    pts = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    f = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    fb = np.zeros((n_mels, f.size))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        up = (f - lo) / max(c - lo, 1e-9)
        down = (hi - f) / max(hi - c, 1e-9)
        fb[i] = np.maximum(0.0, np.minimum(up, down))
        if fb[i].sum() == 0:  # narrower than a bin: take the nearest bin
            fb[i, int(np.argmin(np.abs(f - c)))] = 1.0
    return fb / fb.sum(axis=1, keepdims=True)


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II (n_out, n_in)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m


_CENTERS = band_centers_hz(erb_band_edges(N_BANDS))


def tilt_bands(sample_rate: float) -> np.ndarray:
    """(32,) bool: the bands ``tilt_db_oct`` is fitted over at ``sample_rate``: centred 100 Hz .. min(8 kHz, 0.45 x
    rate) (above 0.45 x rate a band is on the anti-alias slope and not measured)."""
    c = _CENTERS
    return (c >= 100.0) & (c <= min(8000.0, 0.45 * float(sample_rate)))


def tilt_weights(sample_rate: float) -> np.ndarray:
    """(32,) float64 w with ``w @ values`` = the least-squares slope (dB/octave) of band values (dB) against
    log2(band centre) over :func:`tilt_bands` (0 outside them; the weights sum to 0, so a level does not count)."""
    sel = tilt_bands(sample_rate)
    lx = np.log2(_CENTERS[sel])
    lx = lx - lx.mean()
    w = np.zeros(N_BANDS)
    w[sel] = lx / np.dot(lx, lx)
    return w


def tilt_slope_db_oct(values_db, sample_rate: float) -> float:
    """The slope a frame's ``tilt_db_oct`` measures, of band values (32,) dB (NaN = 0) at ``sample_rate``: the tilt
    of a band envelope, or the tilt move that band-gain offsets make (:func:`tilt_weights`)."""
    v = np.nan_to_num(np.asarray(values_db, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return float(np.dot(tilt_weights(sample_rate), v))


ENV_COLUMNS = tuple(f"band_env_db[{i}]" for i in range(N_BANDS))
MFCC_COLUMNS = tuple(f"mfcc[{i}]" for i in range(N_MFCC))
BRIGHT_COLUMNS = ("centroid_hz", "rolloff_hz", "tilt_db_oct", "level_db")


class SpectralFeatures(FrameAnalyzer):
    """All spectral features from one FFT per hop: band envelope, MFCCs, brightness, level.

    ``level_db``: frame power (mean square of the mono mix under the window's PSD convention) in dB.
    """

    name = "spectral"
    columns = ENV_COLUMNS + MFCC_COLUMNS + BRIGHT_COLUMNS
    units = ("dB",) * N_BANDS + ("dB",) * N_MFCC + ("Hz", "Hz", "dB/oct", "dB")
    parts = ("env", "mfcc", "bright")

    def window_samples(self, sr):
        return get_config("default").sizes(sr)[0]

    def _setup(self):
        sr, n = self.sample_rate, self.win_len
        self.n_fft = n
        self._win = sqrt_hann_pair(n, self.hop)[0].astype(np.float64)
        self._norm = 1.0 / float(np.sum(self._win ** 2))
        self.bands = BandMap(sr, n, N_BANDS)
        self._ana = self.bands.analysis.astype(np.float64)
        # bands centred above 0.45 x rate sit on the anti-alias slope: not measured (NaN)
        self._valid = self.bands.valid & (self.bands.centers_hz <= 0.45 * sr)
        f = np.arange(n // 2 + 1) * sr / n
        self._f = f
        self._fsel = (f >= 80.0) & (f <= min(0.5 * sr, 20000.0))  # no DC/rumble
        self._mel = mel_filterbank(sr, n)
        self._dct = dct_matrix(N_MFCC, N_MELS)
        c = self.bands.centers_hz
        self._tsel = self._valid & tilt_bands(sr)
        lx = np.log2(c[self._tsel])
        lx = lx - lx.mean()
        self._tx = lx / np.dot(lx, lx)
        self._pw = np.zeros(n // 2 + 1)

    def _spectrum(self):
        x = self.mono() * self._win
        self._xw = x
        X = np.fft.rfft(x)
        p = self._pw
        np.multiply(X.real, X.real, out=p)
        p += X.imag * X.imag
        p *= self._norm
        return p

    def _compute(self, row):
        p = self._spectrum()
        j = 0
        env = None
        if "env" in self.parts or "bright" in self.parts:
            env = 10.0 * np.log10(self._ana @ p + EPS)
            env[~self._valid] = np.nan
        if "env" in self.parts:
            row[:N_BANDS] = env
            j = N_BANDS
        if "mfcc" in self.parts:
            mel = 10.0 * np.log10(self._mel @ p + EPS)
            row[j : j + N_MFCC] = self._dct @ mel
            j += N_MFCC
        if "bright" in self.parts:
            ps = p[self._fsel]
            tot = float(ps.sum())
            if tot > EPS * ps.size * 10:
                fs = self._f[self._fsel]
                row[j] = float(np.dot(fs, ps) / tot)
                cum = np.cumsum(ps)
                row[j + 1] = float(fs[min(int(np.searchsorted(cum, 0.85 * tot)), fs.size - 1)])
                y = env[self._tsel]
                row[j + 2] = float(np.dot(self._tx, y - y.mean()))
            else:
                row[j : j + 3] = np.nan
            row[j + 3] = 10.0 * np.log10(float(np.dot(self._xw, self._xw)) * self._norm + EPS)


    def env_level_rows(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``band_env_db`` and ``level_db`` columns for many frames at once, bit for bit what
        :meth:`_compute` writes for each: ``frames`` float64 ``(F, win_len)``, each the mono mix of one
        analysis window (newest sample last; not modified). Returns (env (F, 32) dB, NaN for the
        bands :meth:`_compute` leaves NaN; level (F,) dB).

        The FFT runs per row, and the band sums and frame powers are batched through ``np.matmul``,
        which calls the same BLAS matrix-vector and dot routines once per frame that ``@`` and
        ``np.dot`` call on one frame, so the figures do not depend on how many frames are batched."""
        xw = frames * self._win
        X = np.fft.rfft(xw, axis=-1)
        p = X.real * X.real
        p += X.imag * X.imag
        p *= self._norm
        env = np.matmul(self._ana, p[:, :, None])[:, :, 0]
        env += EPS
        env = 10.0 * np.log10(env)
        env[:, ~self._valid] = np.nan
        e = np.matmul(xw[:, None, :], xw[:, :, None])[:, 0, 0]
        e *= self._norm
        e += EPS
        return env, 10.0 * np.log10(e)


class BandEnvelope(SpectralFeatures):
    """ERB band envelope only (32 bands, dB PSD; see module doc)."""

    name = "band_envelope"
    columns = ENV_COLUMNS
    units = ("dB",) * N_BANDS
    parts = ("env",)


class MFCC(SpectralFeatures):
    name = "mfcc"
    columns = MFCC_COLUMNS
    units = ("dB",) * N_MFCC
    parts = ("mfcc",)


class Brightness(SpectralFeatures):
    name = "brightness"
    columns = BRIGHT_COLUMNS
    units = ("Hz", "Hz", "dB/oct", "dB")
    parts = ("bright",)
