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


def read_audio(path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read a file: returns (float32 (channels, n), sample_rate); with ``max_seconds``, at most its
    first ``max_seconds`` (so a picture or a preview of an hour-long file holds only that much)."""
    from pedalboard.io import AudioFile

    path = str(path)
    if not os.path.exists(path):
        raise AudioFileError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise AudioFileError(f"{path}: file is empty")
    try:
        with AudioFile(path) as f:
            sr = int(round(f.samplerate))
            n = f.frames if max_seconds is None else min(f.frames, int(max_seconds * sr))
            x = f.read(n)
    except Exception as e:
        raise AudioFileError(f"{path}: cannot decode audio ({e})") from None
    return np.ascontiguousarray(x, dtype=np.float32), sr


def audio_info(path) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of an audio file, reading only its header."""
    from pedalboard.io import AudioFile

    try:
        with AudioFile(str(path)) as f:
            return int(round(f.samplerate)), f.num_channels, f.frames
    except Exception as e:
        raise AudioFileError(f"{path}: cannot decode audio ({e})") from None


def write_audio(path, x: np.ndarray, sample_rate: int) -> None:
    """Write (channels, n) audio as WAV (32-bit float) or FLAC (24-bit), by the path's extension."""
    from pedalboard.io import AudioFile

    ext = Path(path).suffix.lower()
    if ext not in WRITE_EXT:
        raise AudioFileError(f"{path}: output must be .wav or .flac")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", sample_rate, x.shape[0], bit_depth=WRITE_EXT[ext]) as f:
        f.write(np.ascontiguousarray(x, dtype=np.float32))


def _wav_fmt_offset(head: bytes) -> int | None:
    """Offset of the ``fmt `` chunk's data in a RIFF/WAVE header, or None (not a WAV, or no fmt chunk
    within ``head``)."""
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    i = 12
    while i + 8 <= len(head):
        size = int.from_bytes(head[i + 4 : i + 8], "little")
        if head[i : i + 4] == b"fmt ":
            return i + 8
        i += 8 + size + (size & 1)
    return None


_EXTENSIBLE = 0xFFFE
_HEAD_BYTES = 4096  # a WAV's fmt chunk follows RIFF and at most a few small chunks (JUNK, bext is later)


def wav_channel_mask(path) -> int | None:
    """The speaker mask (``dwChannelMask``: which speaker each channel feeds, e.g. 0x3F = 5.1) of a
    WAVE_FORMAT_EXTENSIBLE file, or None for other files (plain WAV, FLAC, unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return None
    i = _wav_fmt_offset(head)
    if i is None or i + 24 > len(head) or int.from_bytes(head[i : i + 2], "little") != _EXTENSIBLE:
        return None
    return int.from_bytes(head[i + 20 : i + 24], "little")


def set_wav_channel_mask(f, mask: int) -> bool:
    """Write ``mask`` into the WAVE_FORMAT_EXTENSIBLE header of the WAV in ``f`` (a binary file open
    for reading and writing). Returns False, changing nothing, if the file is not extensible (mono
    and stereo are written as plain WAV, whose channels mean the default speakers)."""
    f.seek(0)
    i = _wav_fmt_offset(f.read(_HEAD_BYTES))
    if i is None:
        return False
    f.seek(i)
    fmt = f.read(24)
    if len(fmt) < 24 or int.from_bytes(fmt[:2], "little") != _EXTENSIBLE:
        return False
    f.seek(i + 20)
    f.write(int(mask).to_bytes(4, "little"))
    f.seek(0, os.SEEK_END)
    return True
