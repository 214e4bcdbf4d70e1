"""Spectrogram PNGs without a plotting library (zlib, a hand-made colour map, a pixel font).

Used by `resculpt demo` for before/after pictures. A picture is the spectrogram (linear frequency,
0 Hz at the bottom; one column per 256-sample hop) with a title above it, a frequency axis in kHz
on the left, a time axis in seconds below and a dBFS colour bar on the right.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pixel_font import CAP_H, LINE_H, draw_text, text_width

N_FFT = 1024
HOP = 256

_PAPER = (255, 255, 255)
_INK = (40, 40, 40)
_TITLE_SCALE = 2  # the title in 10x14-pixel glyphs, tick labels in 5x7
_PAD = 8  # pixels between the picture's parts
_TICK = 4  # tick mark length, pixels
_BAR_W = 12  # colour bar width, pixels
_MIN_FREQ_TICK_PX = 28  # closest spacing of frequency ticks, pixels
_MIN_TIME_TICK_PX = 60  # closest spacing of time ticks, pixels
_DB_TICK_STEP = 20.0  # colour bar labels every 20 dB


def _colormap(t: np.ndarray) -> np.ndarray:
    """Dark-blue -> magenta -> orange -> pale-yellow ramp; t in [0, 1] -> uint8 RGB (..., 3)."""
    stops = np.array([[0.0, 4, 4, 20], [0.3, 80, 18, 123], [0.55, 183, 55, 121],
                      [0.8, 251, 136, 97], [1.0, 252, 253, 191]])
    out = np.empty(t.shape + (3,))
    for c in range(3):
        out[..., c] = np.interp(t, stops[:, 0], stops[:, c + 1])
    return out.astype(np.uint8)


def spectrogram_db(x: np.ndarray, sample_rate: int, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Magnitude in dBFS (n_fft // 2 + 1, n_frames) of a mono signal x (n,), Hann window.

    Frame j is centred on sample j * hop (x is zero-padded by n_fft / 2 at both ends), so column j
    of a picture is time j * hop / sample_rate; n_frames = 1 + n // hop.
    """
    x = np.pad(np.asarray(x, np.float32), (n_fft // 2, n_fft // 2))
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


@dataclass(frozen=True)
class SpectrogramPicture:
    """A labelled spectrogram.

    rgb: (h, w, 3) uint8, the whole picture. plot: (top, left, height, width) of the spectrogram
    inside rgb, pixels. freq_ticks: (Hz, row inside the plot, 0 = top). time_ticks: (seconds,
    column inside the plot). A tick's row or column is the one that shows that frequency or time.
    """

    rgb: np.ndarray
    plot: tuple[int, int, int, int]
    freq_ticks: list[tuple[float, int]]
    time_ticks: list[tuple[float, int]]


def _tick_step(span: float, n_px: int, min_px: int, steps) -> float:
    """The smallest of ``steps`` whose ticks over ``span`` (drawn across n_px pixels) are min_px apart."""
    for s in steps:
        if s * n_px >= min_px * span:
            return s
    return steps[-1]


def _label(v: float) -> str:
    return f"{v:.10g}"


def spectrogram_image(x: np.ndarray, sample_rate: int, title: str = "", floor_db: float = -100.0,
                      height: int = 256) -> SpectrogramPicture:
    """Draw the spectrogram of x ((channels, n) or (n,); channels are averaged), ``height`` pixels
    tall whatever the rate (a row shows the loudest FFT bin it covers, so a pure tone is never
    skipped), levels from floor_db (darkest) to 0 dBFS."""
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    db = spectrogram_db(x, sample_rate)
    n_bins, n_frames = db.shape
    # Row i from the bottom covers bins edges[i] .. edges[i + 1] - 1.
    edges = np.round(np.linspace(0, n_bins, height + 1)).astype(int)
    level = np.maximum.reduceat(db, np.minimum(edges[:-1], n_bins - 1), axis=0)[::-1]
    shade = np.clip((level - floor_db) / -floor_db, 0.0, 1.0)

    bin_hz = sample_rate / N_FFT
    nyquist = sample_rate / 2
    f_step = _tick_step(nyquist, height, _MIN_FREQ_TICK_PX, [100, 200, 500, 1000, 2000, 5000, 10000, 20000])
    freq_ticks = []
    for f in np.arange(0.0, nyquist + 1e-6, f_step):
        i = int(np.searchsorted(edges, round(f / bin_hz), side="right")) - 1
        freq_ticks.append((float(f), height - 1 - min(i, height - 1)))
    s_per_col = HOP / sample_rate
    duration = (n_frames - 1) * s_per_col
    t_step = _tick_step(max(duration, s_per_col), max(n_frames - 1, 1), _MIN_TIME_TICK_PX,
                        [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600])
    time_ticks = [(float(t), round(t / s_per_col)) for t in np.arange(0.0, duration + 1e-9, t_step)]
    db_ticks = np.arange(0.0, floor_db - 1e-9, -_DB_TICK_STEP)

    # Layout: title, a units row ("kHz" over the frequency labels, "dBFS" over the colour bar
    # labels), then [frequency labels | ticks | plot | colour bar | dB labels], then time labels
    # and the time caption.
    f_labels = [_label(f / 1000) for f, _ in freq_ticks]
    db_labels = [_label(v) for v in db_ticks]
    f_label_w = max(text_width(s) for s in f_labels + ["kHz"])
    db_label_w = max(text_width(s) for s in db_labels + ["dBFS"])
    title_h = LINE_H * _TITLE_SCALE
    top = _PAD + title_h + _PAD + CAP_H + _PAD
    left = _PAD + f_label_w + 2 + _TICK
    bar_left = left + n_frames + _PAD
    width = bar_left + _BAR_W + _TICK + 2 + db_label_w + _PAD
    time_caption = "time (s)"
    bottom = top + height + _TICK + 3 + CAP_H + _PAD
    total_h = bottom + CAP_H + _PAD
    width = max(width, left + text_width(title, _TITLE_SCALE) + _PAD)

    rgb = np.empty((total_h, width, 3), np.uint8)
    rgb[:] = _PAPER
    rgb[top:top + height, left:left + n_frames] = _colormap(shade)
    draw_text(rgb, left, _PAD, title, _INK, _TITLE_SCALE)

    ink = np.asarray(_INK, np.uint8)
    units_y = _PAD + title_h + _PAD
    draw_text(rgb, left - _TICK - 2 - text_width("kHz"), units_y, "kHz", _INK)
    for (_, row), s in zip(freq_ticks, f_labels):
        y = top + row
        rgb[y, left - _TICK:left] = ink
        draw_text(rgb, left - _TICK - 2 - text_width(s), y - CAP_H // 2, s, _INK)
    for _, col in time_ticks:
        rgb[top + height:top + height + _TICK, left + col] = ink
    for (t, col), s in zip(time_ticks, (_label(t) for t, _ in time_ticks)):
        draw_text(rgb, left + col - text_width(s) // 2, top + height + _TICK + 3, s, _INK)
    draw_text(rgb, left + (n_frames - text_width(time_caption)) // 2, bottom, time_caption, _INK)

    bar = np.linspace(1.0, 0.0, height)[:, None].repeat(_BAR_W, axis=1)
    rgb[top:top + height, bar_left:bar_left + _BAR_W] = _colormap(bar)
    draw_text(rgb, bar_left, units_y, "dBFS", _INK)
    for v, s in zip(db_ticks, db_labels):
        y = top + round(v / floor_db * (height - 1))
        rgb[y, bar_left + _BAR_W:bar_left + _BAR_W + _TICK] = ink
        draw_text(rgb, bar_left + _BAR_W + _TICK + 2, y - CAP_H // 2, s, _INK)
    return SpectrogramPicture(rgb, (top, left, height, n_frames), freq_ticks, time_ticks)


def spectrogram_png(path, x: np.ndarray, sample_rate: int, floor_db: float = -100.0, height: int = 256,
                    title: str | None = None) -> None:
    """Save a labelled spectrogram of x ((channels, n) or (n,)) to ``path``; the title defaults to
    the file name without its suffix (the preset's name in `resculpt demo`)."""
    if title is None:
        title = Path(path).stem
    write_png(path, spectrogram_image(x, sample_rate, title, floor_db, height).rgb)
