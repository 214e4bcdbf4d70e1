"""Reading and writing audio files (WAV/FLAC/OGG/MP3/AIFF in; WAV and FLAC out) with clear errors.

Control side only: the audio host never touches the disk; callers hand it arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

READ_EXT = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
WRITE_EXT = {".wav": 32, ".flac": 24}  # WAV is written as 32-bit float (no clipping), FLAC as 24-bit


class AudioFileError(Exception):
    """A file could not be read or written; the message names it and the cause."""


def read_audio(path) -> tuple[np.ndarray, int]:
    """Read a whole file: returns (float32 (channels, n), sample_rate)."""
    from pedalboard.io import AudioFile

    path = str(path)
    if not os.path.exists(path):
        raise AudioFileError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise AudioFileError(f"{path}: file is empty")
    try:
        with AudioFile(path) as f:
            x = f.read(f.frames)
            sr = int(round(f.samplerate))
    except Exception as e:
        raise AudioFileError(f"{path}: cannot decode audio ({e})") from None
    return np.ascontiguousarray(x, dtype=np.float32), sr


def write_audio(path, x: np.ndarray, sample_rate: int) -> None:
    """Write (channels, n) audio as WAV (32-bit float) or FLAC (24-bit), by the path's extension."""
    from pedalboard.io import AudioFile

    ext = Path(path).suffix.lower()
    if ext not in WRITE_EXT:
        raise AudioFileError(f"{path}: output must be .wav or .flac")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", sample_rate, x.shape[0], bit_depth=WRITE_EXT[ext]) as f:
        f.write(np.ascontiguousarray(x, dtype=np.float32))
