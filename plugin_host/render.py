"""Offline rendering of files through a chain: streamed in blocks, latency trimmed, sample-exact.

The output has the input's sample rate, channel count and exact length: the chain's first
``latency_samples`` output samples (its start-up) are dropped and the same number of zeros is
pushed after the last input block to flush the tail.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

READ_EXT = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
WRITE_EXT = {".wav": 32, ".flac": 24}  # WAV is written as 32-bit float (no clipping), FLAC as 24-bit


class RenderError(Exception):
    """One file could not be rendered; the message names it."""


def read_audio(path) -> tuple[np.ndarray, int]:
    """Read a whole file: returns (float32 (channels, n), sample_rate)."""
    from pedalboard.io import AudioFile

    path = str(path)
    if not os.path.exists(path):
        raise RenderError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise RenderError(f"{path}: file is empty")
    try:
        with AudioFile(path) as f:
            x = f.read(f.frames)
            sr = int(round(f.samplerate))
    except Exception as e:
        raise RenderError(f"{path}: cannot decode audio ({e})") from None
    return np.ascontiguousarray(x, dtype=np.float32), sr


def write_audio(path, x: np.ndarray, sample_rate: int) -> None:
    from pedalboard.io import AudioFile

    ext = Path(path).suffix.lower()
    if ext not in WRITE_EXT:
        raise RenderError(f"{path}: output must be .wav or .flac")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", sample_rate, x.shape[0], bit_depth=WRITE_EXT[ext]) as f:
        f.write(np.ascontiguousarray(x, dtype=np.float32))


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal, or forced)."""

    def __init__(self, label: str, total: int, enabled: bool | None = None):
        self.label, self.total = label, max(1, total)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()
        self._last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        pct = int(100 * done / self.total)
        if pct == self._last:
            return
        self._last = pct
        bar = "#" * (pct // 4)
        el = time.perf_counter() - self.t0
        sys.stderr.write(f"\r{self.label[:40]:40s} [{bar:25s}] {pct:3d}% {el:5.1f}s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def render_array(chain, x: np.ndarray, block: int, progress: Progress | None = None) -> np.ndarray:
    """Stream ``x`` (channels, n) through ``chain`` in blocks of ``block``; return (channels, n), aligned."""
    c, n = x.shape
    lat = chain.latency_samples
    total = n + lat
    buf = np.zeros((c, total), np.float32)
    buf[:, :n] = x
    for i in range(0, total, block):
        chain.process(buf[:, i : i + block])
        if progress:
            progress.update(min(i + block, total))
    return buf[:, lat:]


def render_file(inp, out, preset="clean", sets=None, block: int = 4096, progress: bool | None = None) -> dict:
    """Render one file, streaming it in blocks (memory stays flat for hour-long files).

    The output is written to a temporary file beside ``out`` and renamed on success, so a file
    that fails half-way never leaves a truncated output. Raises RenderError with a clear message.
    """
    from pedalboard.io import AudioFile

    from .host import Chain
    from .presets import PresetError

    inp, out = Path(inp), Path(out)
    if not inp.exists():
        raise RenderError(f"{inp}: no such file")
    if inp.stat().st_size == 0:
        raise RenderError(f"{inp}: file is empty")
    if out.exists() and os.path.samefile(inp, out):
        raise RenderError(f"{out}: refusing to overwrite the input file")
    if out.suffix.lower() not in WRITE_EXT:
        raise RenderError(f"{out}: output must be .wav or .flac")
    try:
        src = AudioFile(str(inp))
    except Exception as e:
        raise RenderError(f"{inp}: cannot decode audio ({e})") from None
    tmp = out.with_name(f".{out.name}.partial{out.suffix}")
    try:
        with src:
            sr, c, frames = int(round(src.samplerate)), src.num_channels, src.frames
            if frames == 0:
                raise RenderError(f"{inp}: no audio frames")
            if c > 2:
                raise RenderError(f"{inp}: {c} channels; Resculpt renders mono or stereo")
            try:
                chain = Chain.from_preset(preset, sample_rate=sr, channels=c, max_block=block)
                for k, v in (sets or {}).items():
                    chain.params.set(k, v)
            except (PresetError, ValueError) as e:
                raise RenderError(str(e)) from None
            chain.reset()
            lat = chain.latency_samples
            bar = Progress(inp.name, frames + lat, progress)
            buf = np.zeros((c, block), np.float32)
            out.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            written, skip, done = 0, lat, 0
            with AudioFile(str(tmp), "w", sr, c, bit_depth=WRITE_EXT[out.suffix.lower()]) as dst:
                def emit(y, cap=None):
                    nonlocal skip, written
                    if skip:
                        k = min(skip, y.shape[1])
                        y, skip = y[:, k:], skip - k
                    if cap is not None:
                        y = y[:, : cap - written]
                    if y.shape[1]:
                        dst.write(y)
                        written += y.shape[1]

                while True:
                    try:
                        chunk = src.read(block)
                    except Exception as e:
                        raise RenderError(f"{inp}: decoding failed after {done} frames ({e})") from None
                    k = chunk.shape[1]
                    if k == 0:
                        break
                    buf[:, :k] = chunk
                    emit(chain.process(buf[:, :k]))
                    done += k
                    bar.update(done)
                # Compressed formats may announce an estimate: the output has what actually decoded.
                left = lat
                while left > 0:  # flush the chain's tail (its latency) with silence
                    k = min(left, block)
                    buf[:, :k] = 0.0
                    emit(chain.process(buf[:, :k]), cap=done)
                    left -= k
            el = time.perf_counter() - t0
            bar.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"input": str(inp), "output": str(out), "sample_rate": sr, "channels": c,
            "frames": written, "latency_samples": lat, "seconds": el,
            "rtf": el / max(written / sr, 1e-9), "nonfinite_in": chain.stats.nonfinite_in}
