"""Spectrogram PNGs without a plotting library (zlib + a hand-made colour map).

Used by `resculpt demo` for before/after pictures and by the docs.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _colormap(t: np.ndarray) -> np.ndarray:
    """Dark-blue -> magenta -> orange -> pale-yellow ramp; t in [0, 1] -> uint8 RGB (..., 3)."""
    stops = np.array([[0.0, 4, 4, 20], [0.3, 80, 18, 123], [0.55, 183, 55, 121],
                      [0.8, 251, 136, 97], [1.0, 252, 253, 191]])
    out = np.empty(t.shape + (3,))
    for c in range(3):
        out[..., c] = np.interp(t, stops[:, 0], stops[:, c + 1])
    return out.astype(np.uint8)


def spectrogram_db(x: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Magnitude in dBFS (n_bins, n_frames) of a mono signal x (n,)."""
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    w = np.hanning(n_fft).astype(np.float32)
    n_frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * w, axis=-1)).T
    return 20 * np.log10(np.maximum(spec / (w.sum() / 2), 1e-10))


def write_png(path, rgb: np.ndarray) -> None:
    """Write an (h, w, 3) uint8 image as PNG."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def spectrogram_png(path, x: np.ndarray, sample_rate: int, floor_db: float = -100.0, height: int = 256) -> None:
    """Save a spectrogram of x ((channels, n) or (n,); channels are averaged) to ``path``."""
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    db = spectrogram_db(x, sample_rate)
    t = np.clip((db - floor_db) / -floor_db, 0.0, 1.0)[::-1]  # low frequencies at the bottom
    # Resample rows to a fixed height so pictures at different rates compare.
    rows = np.linspace(0, t.shape[0] - 1, height).astype(int)
    write_png(path, _colormap(t[rows]))
