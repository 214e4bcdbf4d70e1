"""Frame-selection envelope replacement for the ``anon`` stage: a DSP analogue of kNN-VC (Baas, van Niekerk
& Kamper, *Voice conversion with just nearest neighbors*, Interspeech 2023).

kNN-VC replaces every frame of the source's self-supervised features by the mean of its k nearest frames of
the target speaker's and vocodes the result. Here the "features" are the voiced frame's spectral envelope
shape, and the target is a fixed pseudo-speaker **codebook**: K envelope shapes (k-means centroids of
voiced frames pooled over many LibriSpeech train speakers, so no real person's), each relative to its
speaker's long-term mean envelope, on the speaker-normalised frequency axis (after the ``anon`` stage's own
formant-scale normalisation) and with its mean over the grid removed (shape only, no level).

Per voiced frame and channel (:meth:`KnnEnvelope.apply`), with w(k) the stage's warped envelope (natural
log, per bin) and M(k) its long-term mean over voiced frames:

1. Feature f (B,): D = w - M read at the B grid frequencies ``GRID_HZ`` (mel-spaced 150 Hz .. 7.5 kHz), its
   mean over the grid (the frame's level re the long-term one) removed.
2. Distances to the codebook warped onto the pseudo-speaker's formant scale and McAdams warp
   (:meth:`KnnEnvelope.set_warp`; the same map the stage applies to the speaker's envelope):
   |c_i|^2 - 2 c_i . f, one (K, B) x (B,) product; the ``KNN_K`` smallest are averaged.
3. The average is smoothed over frames by a one-pole of ``KNN_TAU_S`` (a new nearest set is a glide), read
   onto the bins by linear interpolation along the grid (held beyond its ends), and the frame's envelope
   becomes w + p (C + level - D) below ``TOP_HZ`` (fading to w above): the share p of the envelope's shape
   comes from the codebook, the frame's level and the long-term mean stay.

The codebook (``anon_codebook.npz`` beside this module; built by ``scripts/build_anon_codebook.py``,
docs/anonymization.md) is read once per process by :func:`load` on the control thread (the stage's
prepare); nothing here touches the disk afterwards, and :meth:`KnnEnvelope.apply` allocates nothing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = Path(__file__).resolve().parent / "anon_codebook.npz"
KNN_K = 4            # codebook entries averaged per frame (kNN-VC's k)
KNN_TAU_S = 0.010    # one-pole smoothing of the selected shape
TOP_HZ = 8000.0      # the codebook's data stops at 8 kHz (16 kHz recordings): full share below,
TOP_FADE_HZ = 9000.0  # none above this, linear between
REF_RATE = 16000.0   # the McAdams warp's angles are radians at this rate (as in anon.py)
WARP_STEPS = 48      # the codebook's warp is rebuilt when the pseudo-speaker's scale moves by 1/48 octave


def mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def grid_hz(n: int = 40, lo: float = 150.0, hi: float = 7500.0) -> np.ndarray:
    """(n,) float64: n frequencies equally spaced in mel from lo to hi (the codebook's grid)."""
    m = np.linspace(mel(lo), mel(hi), n)
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@dataclass(frozen=True)
class Codebook:
    """entries: (K, B) float32, envelope shapes in nepers at ``grid`` (B,) Hz; read-only."""

    grid: np.ndarray
    entries: np.ndarray
    sha256: str


@functools.lru_cache(maxsize=1)
def load() -> Codebook:
    """The shipped codebook (control thread; cached: every stage shares the same read-only arrays)."""
    import hashlib

    raw = FILE.read_bytes()
    with np.load(FILE) as z:
        grid = np.asarray(z["grid_hz"], np.float64)
        ent = (np.asarray(z["entries_db"], np.float32) * np.float32(math.log(10.0) / 20.0))
    grid.setflags(write=False)
    ent.setflags(write=False)
    return Codebook(grid, np.ascontiguousarray(ent), hashlib.sha256(raw).hexdigest())


class KnnEnvelope:
    """Per-stage state of the envelope replacement: the warped codebook, per-channel smoothers, scratch."""

    def __init__(self, codebook: Codebook, n_bins: int, spacing_hz: float, channels: int, frame_rate_hz: float):
        cb = codebook
        K, B = cb.entries.shape
        self.cb = cb
        self._m0 = float(mel(cb.grid[0]))
        self._dm = float(mel(cb.grid[-1]) - self._m0) / (B - 1)
        f = np.arange(n_bins) * spacing_hz
        # Grid frequencies on the bins (features): linear interpolation between neighbouring bins.
        pos = np.minimum(cb.grid / spacing_hz, n_bins - 1.001)
        self._gi0 = np.floor(pos).astype(np.int64)
        self._gi1 = self._gi0 + 1
        self._gfr = (pos - self._gi0).astype(np.float32)
        # Grid values onto the bins: (n_bins, B) linear interpolation in mel, held beyond the grid's ends,
        # faded out above TOP_HZ.
        gidx = np.clip((mel(f) - self._m0) / self._dm, 0.0, B - 1.0)
        j0 = np.minimum(np.floor(gidx).astype(np.int64), B - 2)
        fr = gidx - j0
        interp = np.zeros((n_bins, B), np.float64)
        interp[np.arange(n_bins), j0] += 1.0 - fr
        interp[np.arange(n_bins), j0 + 1] += fr
        self._interp = np.ascontiguousarray(interp, np.float32)
        self._wbin = np.clip((TOP_FADE_HZ - f) / (TOP_FADE_HZ - TOP_HZ), 0.0, 1.0).astype(np.float32)
        self._cbt = np.ascontiguousarray(cb.entries.T)  # (B, K): entry i is column i
        self._cbw = np.zeros((B, K), np.float32)         # the codebook on the pseudo-speaker's grid
        self._norm = np.zeros(K, np.float32)             # |entry|^2
        self._kb = np.zeros((B, K), np.float32)
        self._score = np.zeros(K, np.float32)
        self._feat = np.zeros(B, np.float32)
        self._g1 = np.zeros(B, np.float32)
        self._sel = np.zeros(B, np.float32)
        self._sm = np.zeros((channels, B), np.float32)
        self._d = np.zeros(n_bins, np.float32)
        self._c = np.zeros(n_bins, np.float32)
        self._fs = 1.0 - math.exp(-1.0 / (KNN_TAU_S * frame_rate_hz))
        self._key = None
        self.reset()

    def reset(self) -> None:
        self._sm.fill(0.0)
        self._fresh = [True] * self._sm.shape[0]  # no smoothing into a channel's first selection

    def gap(self, ch: int) -> None:
        """An unvoiced frame on channel ch: the next voiced frame starts from its own selection."""
        self._fresh[ch] = True

    def set_warp(self, a: float, alpha: float) -> None:
        """Control or audio thread (about 120 numpy calls, when the key moves): the codebook read at the pseudo-speaker's map: output grid frequency b lands on the codebook's
        grid at W^-1(b / a), W(phi) = phi^alpha (phi in radians at 16 kHz), as the stage maps the speaker's
        normalised envelope. Rebuilt when a moves by 1/WARP_STEPS octave or alpha by 0.005."""
        key = (round(WARP_STEPS * math.log2(a)), round(200.0 * alpha))
        if key == self._key:
            return
        self._key = key
        a = 2.0 ** (key[0] / WARP_STEPS)
        alpha = key[1] / 200.0
        grid, cbt, cbw, t = self.cb.grid, self._cbt, self._cbw, self._norm
        B = grid.shape[0]
        # Row j of the warped codebook (entries as columns) interpolates two rows of the codebook; no
        # matrix-matrix product on the audio thread (a multi-threaded BLAS spins for milliseconds on it).
        for j in range(B):
            phi = 2.0 * math.pi * float(grid[j]) / REF_RATE / a
            if alpha < 1.0:
                phi = phi ** (1.0 / alpha)
            s = phi * REF_RATE / (2.0 * math.pi)
            g = (2595.0 * math.log10(1.0 + s / 700.0) - self._m0) / self._dm
            g = min(max(g, 0.0), B - 1.0)
            i0 = min(int(g), B - 2)
            fr = g - i0
            row = cbw[j]
            np.subtract(cbt[i0 + 1], cbt[i0], out=row)
            row *= fr
            row += cbt[i0]
        np.multiply(cbw, cbw, out=self._kb)
        np.add.reduce(self._kb, axis=0, out=t)

    def apply(self, w: np.ndarray, mean: np.ndarray, share: float, ch: int) -> None:
        """w (n_bins,) float32, a voiced frame's envelope (nepers), edited in place: the share (0..1) of its
        shape re ``mean`` (n_bins,) replaced by the codebook's nearest entries (set_warp first)."""
        d, f, g1 = self._d, self._feat, self._g1
        np.subtract(w, mean, out=d)
        d.take(self._gi0, out=f, mode="clip")
        d.take(self._gi1, out=g1, mode="clip")
        g1 -= f
        g1 *= self._gfr
        f += g1
        level = float(np.add.reduce(f)) / f.shape[0]
        f -= level
        sc = self._score
        np.matmul(f, self._cbw, out=sc)
        sc *= -2.0
        sc += self._norm
        sel = self._sel
        sel.fill(0.0)
        for _ in range(KNN_K):
            i = int(np.argmin(sc))
            sel += self._cbw[:, i]
            sc[i] = np.inf
        sel *= 1.0 / KNN_K
        sm = self._sm[ch]
        if self._fresh[ch]:
            np.copyto(sm, sel)
            self._fresh[ch] = False
        else:
            sel -= sm
            sel *= self._fs
            sm += sel
        # w += share * wbin * (C + level - D)
        c = self._c
        np.matmul(self._interp, sm, out=c)
        c += level
        c -= d
        c *= self._wbin
        c *= share
        w += c
