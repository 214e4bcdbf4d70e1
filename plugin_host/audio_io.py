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


# -- FLAC: the speaker mask as a Vorbis comment ------------------------------------------------------
# FLAC's own channel assignment is fixed per channel count (6 = 5.1 with back surrounds, 8 = 7.1, ...);
# another layout is recorded in this comment, as ffmpeg and libsndfile write and read it.
FLAC_MASK_TAG = "WAVEFORMATEXTENSIBLE_CHANNEL_MASK"
_FLAC_VORBIS_COMMENT = 4
_COPY_BYTES = 1 << 20  # audio moved 1 MiB at a time when the metadata changes size


def _flac_blocks(f) -> tuple[list[tuple[int, bytes]], int] | None:
    """The metadata blocks [(type, body)] of the FLAC in ``f`` and the offset of its first audio
    frame, or None when ``f`` does not hold a FLAC stream (no ``fLaC`` marker, truncated metadata)."""
    f.seek(0)
    if f.read(4) != b"fLaC":
        return None
    blocks, last = [], False
    while not last:
        head = f.read(4)
        if len(head) < 4:
            return None
        last, kind, size = bool(head[0] & 0x80), head[0] & 0x7F, int.from_bytes(head[1:4], "big")
        body = f.read(size)
        if len(body) < size:
            return None
        blocks.append((kind, body))
    return blocks, f.tell()


def _vorbis_comments(body: bytes) -> tuple[bytes, list[bytes]]:
    """(vendor, comments) of a VORBIS_COMMENT block body (little-endian lengths, UTF-8 ``KEY=value``)."""
    n = int.from_bytes(body[:4], "little")
    vendor, i = body[4 : 4 + n], 4 + n
    count, i = int.from_bytes(body[i : i + 4], "little"), i + 4
    out = []
    for _ in range(count):
        m = int.from_bytes(body[i : i + 4], "little")
        out.append(body[i + 4 : i + 4 + m])
        i += 4 + m
    return vendor, out


def _is_mask_comment(c: bytes) -> bool:
    return c.split(b"=", 1)[0].upper() == FLAC_MASK_TAG.encode()


def flac_channel_mask(path) -> int | None:
    """The speaker mask recorded in a FLAC file's ``WAVEFORMATEXTENSIBLE_CHANNEL_MASK`` Vorbis comment
    (e.g. ``0x060F`` = 5.1 with side surrounds), or None (no such comment, not a FLAC, unreadable)."""
    try:
        with open(path, "rb") as f:
            parsed = _flac_blocks(f)
    except OSError:
        return None
    for kind, body in parsed[0] if parsed else ():
        if kind == _FLAC_VORBIS_COMMENT:
            for c in _vorbis_comments(body)[1]:
                if _is_mask_comment(c):
                    try:
                        return int(c.split(b"=", 1)[1].decode("ascii").strip(), 0)
                    except (UnicodeDecodeError, ValueError):
                        return None
    return None


def set_flac_channel_mask(f, mask: int) -> bool:
    """Record ``mask`` in the FLAC in ``f`` (a binary file open for reading and writing) as its
    ``WAVEFORMATEXTENSIBLE_CHANNEL_MASK`` Vorbis comment (replacing one already there; a comment block
    is added after STREAMINFO if the file has none). The audio frames move by the metadata's change in
    size, 1 MiB at a time (seek tables count from the first frame, so they stay valid). Returns False,
    changing nothing, if ``f`` does not hold a FLAC stream."""
    parsed = _flac_blocks(f)
    if parsed is None:
        return False
    blocks, audio_at = parsed
    tag = f"{FLAC_MASK_TAG}=0x{int(mask):04X}".encode()
    vi = next((k for k, (kind, _) in enumerate(blocks) if kind == _FLAC_VORBIS_COMMENT), None)
    vendor, comments = _vorbis_comments(blocks[vi][1]) if vi is not None else (b"resculpt", [])
    comments = [c for c in comments if not _is_mask_comment(c)] + [tag]
    body = len(vendor).to_bytes(4, "little") + vendor + len(comments).to_bytes(4, "little")
    body += b"".join(len(c).to_bytes(4, "little") + c for c in comments)
    if vi is None:
        blocks.insert(1, (_FLAC_VORBIS_COMMENT, body))
    else:
        blocks[vi] = (_FLAC_VORBIS_COMMENT, body)
    meta = bytearray(b"fLaC")
    for k, (kind, b) in enumerate(blocks):
        meta += bytes([kind | (0x80 if k == len(blocks) - 1 else 0)]) + len(b).to_bytes(3, "big") + b
    f.seek(0, os.SEEK_END)
    end = f.tell()
    shift = len(meta) - audio_at
    if shift > 0:  # grow: move the audio from the end backwards so nothing is overwritten unread
        pos = end
        while pos > audio_at:
            k = min(_COPY_BYTES, pos - audio_at)
            pos -= k
            f.seek(pos)
            chunk = f.read(k)
            f.seek(pos + shift)
            f.write(chunk)
    elif shift < 0:  # shrink: move it forwards, then cut the tail
        pos = audio_at
        while pos < end:
            f.seek(pos)
            chunk = f.read(_COPY_BYTES)
            f.seek(pos + shift)
            f.write(chunk)
            pos += len(chunk)
        f.truncate(end + shift)
    f.seek(0)
    f.write(meta)
    f.seek(0, os.SEEK_END)
    return True


def channel_mask(path) -> int | None:
    """The speaker mask of a WAV (WAVE_FORMAT_EXTENSIBLE) or FLAC (Vorbis comment) file, or None: the
    formats' default layout (and OGG, MP3, AIFF, whose layouts Resculpt does not read)."""
    m = wav_channel_mask(path)
    return m if m is not None else flac_channel_mask(path)


def set_channel_mask(f, mask: int, ext: str) -> bool:
    """Record ``mask`` in the ``ext`` (".wav" or ".flac") file open in ``f``; False if it cannot hold it
    (a plain mono or stereo WAV) or is not of that format."""
    if ext == ".flac":
        return set_flac_channel_mask(f, mask)
    return set_wav_channel_mask(f, mask)

