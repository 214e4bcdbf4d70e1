"""Provenance of rendered files: a tag saying the voice was transformed, and the watermark check.

Control side (render, the ``resculpt verify`` command); never the audio host.

A render whose chain runs a voice-transformation stage (a catalog slot built from ``resculpt.dsp.voice``)
or whose preset is tagged ``voice-transformed`` gets (:func:`render_mark`):

- the keyed band-energy watermark of :mod:`resculpt.dsp.watermark`, embedded as the render writes its
  output (:class:`RenderMark`: the rendered blocks pass through a streaming embedder, latency-aligned,
  before they reach the file, so memory stays flat and the audio is encoded once);
- file metadata, written by this module (no tagging library): in a WAV a ``LIST``/``INFO`` chunk
  appended after the audio (``ICMT`` comment, ``ISFT`` software; libsndfile, ffmpeg and most players
  show it as the comment); in a FLAC Vorbis comments ``COMMENT``, ``ENCODER`` and ``RESCULPT_*``
  (the metadata blocks are rebuilt, the encoded audio frames copied unchanged in blocks: the encoder
  writes no padding to hold them in place), written by :func:`write_tag` once the audio is complete.

:func:`tag_output` marks a file that is already rendered (re-read and rewritten in blocks, then tagged).

The tag text is machine-readable: ``resculpt-provenance: voice-transformed; preset=NAME; stages=A,B;
watermark=resculpt-patchwork-1``. :func:`verify` reads it back and runs the watermark detector on the
decoded audio (any format pedalboard reads; others through ffmpeg when it is installed).

Limits (docs/anonymization.md): metadata disappears with any re-encode or editor that drops it; the
watermark survives MP3 64 kbps and Opus 24 kbps (measured by benchmarks/watermark.py), needs a few
seconds of audio, and is not secure against someone who wants it gone.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

from .audio_io import WRITE_EXT, AudioFileError, read_audio

TAG_PREFIX = "resculpt-provenance:"
TRANSFORMED = "voice-transformed"
PRESET_TAG = "voice-transformed"       # a preset tag that asks for the tag without a voice stage
WATERMARK_ID = "resculpt-patchwork-1"  # names dsp/watermark.py's key and layout
VOICE_PACKAGE = "resculpt.dsp.voice"


class ProvenanceError(ValueError):
    """A file could not be tagged or read; the message names it."""


def software() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return f"Resculpt {version('resculpt')}"
    except PackageNotFoundError:  # a source checkout on sys.path, not installed
        return "Resculpt"


# -- what gets tagged ----------------------------------------------------------------------------
def voice_stages(layout) -> list[str]:
    """The slots of ``layout`` whose stage transforms the voice (built from resculpt.dsp.voice)."""
    from . import catalog

    out = []
    for name in layout.slots():
        build = getattr(catalog.SLOTS.get(name), "build", None)
        if build is not None and getattr(build, "__module__", "").startswith(VOICE_PACKAGE):
            out.append(name)
    return out


def transformation_info(chain, preset=None) -> dict | None:
    """The provenance info of a render with ``chain`` (from ``preset``: name, path or Preset), or None
    when it transforms no voice: {"provenance", "preset", "stages", "watermark"}."""
    stages = voice_stages(chain.layout)
    tags = ()
    if preset is not None:
        from .presets import Preset, PresetError, load_preset

        try:
            tags = (preset if isinstance(preset, Preset) else load_preset(preset)).tags
        except PresetError:
            tags = ()
    if not stages and PRESET_TAG not in tags:
        return None
    return {"provenance": TRANSFORMED, "preset": chain.preset_name or "", "stages": stages,
            "watermark": WATERMARK_ID}


class RenderMark:
    """The marking of one render whose chain transforms a voice (``info``: :func:`transformation_info`).

    ``writer(write)`` wraps the render's ``write(y)`` ((channels, k) float32 blocks in order): each block
    goes through a streaming watermark embedder (:class:`~resculpt.dsp.watermark.Embedder`, its own
    default-config STFT whose start-up is dropped, so the output keeps the render's alignment) before it
    reaches ``write``; ``finish(write)`` writes the embedder's last ``latency_samples`` (its tail) before
    the file is committed. The file gets exactly the samples :func:`~resculpt.dsp.watermark.embed` gives
    for the whole rendered signal, with one block held. ``tag(path)`` then adds the metadata to the
    committed file."""

    def __init__(self, info: dict, sample_rate: int, channels: int, max_block: int = 4096):
        from resculpt.dsp import watermark as wm

        self.info = dict(info)
        self._emb = wm.Embedder(sample_rate, channels, max_block)

    def writer(self, write):
        emb = self._emb

        def marked(y):
            z = emb.process(y)
            if z.shape[1]:
                write(z)

        return marked

    def finish(self, write) -> None:
        for z in self._emb.flush():
            write(z)

    def tag(self, path) -> dict:
        """{"provenance": what :func:`write_tag` wrote} for the render's report."""
        return {"provenance": write_tag(path, self.info)}


def render_mark(chain, preset=None, max_block: int = 4096) -> RenderMark | None:
    """The :class:`RenderMark` of a render with ``chain`` (from ``preset``), or None when the chain
    transforms no voice (the render is then untouched)."""
    info = transformation_info(chain, preset)
    return None if info is None else RenderMark(info, chain.sample_rate, chain.channels, max_block)


def format_tag(info: dict) -> str:
    """The one-line tag text of ``info`` (see the module docstring)."""
    parts = [f"{TAG_PREFIX} {info.get('provenance', TRANSFORMED)}"]
    for k, v in info.items():
        if k == "provenance":
            continue
        if isinstance(v, (list, tuple)):
            v = ",".join(map(str, v))
        parts.append(f"{k}={str(v).replace(';', ',')}")
    return "; ".join(parts)


def parse_tag(text: str) -> dict | None:
    """Inverse of :func:`format_tag`; None if ``text`` is not a Resculpt provenance tag."""
    text = text.strip().rstrip("\x00")
    if not text.startswith(TAG_PREFIX):
        return None
    head, *rest = text[len(TAG_PREFIX):].split(";")
    info = {"provenance": head.strip()}
    for item in rest:
        k, _, v = item.strip().partition("=")
        if k:
            info[k] = v.split(",") if k == "stages" and v else ([] if k == "stages" else v)
    return info


# -- tagging ---------------------------------------------------------------------------------------
def tag_output(path, info: dict, watermark: bool = True, block: int = 1 << 16) -> dict:
    """Mark an already rendered file ``path`` (WAV or FLAC) as voice-transformed: the watermark (unless
    ``watermark`` is False; the file is read and rewritten in blocks of ``block`` samples through a
    streaming embedder, lossless for Resculpt's 32-bit float WAV and 24-bit FLAC) then the metadata.
    Returns what was written: {"tag": text, "watermark": bool}."""
    from resculpt.dsp import watermark as wm

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITE_EXT:
        raise ProvenanceError(f"{path}: provenance tags are written into .wav and .flac only")
    info = dict(info)
    if watermark:
        from pedalboard.io import AudioFile

        tmp = path.with_name(f".{path.name}.mark{path.suffix}")
        try:
            try:
                src = AudioFile(str(path))
            except Exception as e:
                raise ProvenanceError(f"{path}: cannot decode audio ({e})") from None
            with src, AudioFile(str(tmp), "w", src.samplerate, src.num_channels,
                                bit_depth=WRITE_EXT[ext]) as dst:
                emb = wm.Embedder(int(round(src.samplerate)), src.num_channels, block)
                while True:
                    x = src.read(block)
                    if x.shape[1] == 0:
                        break
                    y = emb.process(np.ascontiguousarray(x, np.float32))
                    if y.shape[1]:
                        dst.write(y)
                for y in emb.flush():
                    dst.write(y)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    else:
        info.pop("watermark", None)
    return write_tag(path, info)


def write_tag(path, info: dict) -> dict:
    """Add the metadata tag of ``info`` (see :func:`format_tag`) to the WAV or FLAC ``path``, audio
    untouched: a WAV gets a LIST/INFO chunk appended in place, a FLAC its metadata blocks rebuilt (the
    frames copied in blocks). Returns {"tag": text, "watermark": whether ``info`` names one}."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITE_EXT:
        raise ProvenanceError(f"{path}: provenance tags are written into .wav and .flac only")
    text = format_tag(info)
    if ext == ".wav":
        _wav_add_info(path, {"ICMT": text, "ISFT": software()})
    else:
        _flac_add_comments(path, [f"COMMENT={text}", f"ENCODER={software()}",
                                  f"RESCULPT_PROVENANCE={info.get('provenance', TRANSFORMED)}"])
    return {"tag": text, "watermark": bool(info.get("watermark"))}


def _wav_chunks(f):
    """[(id, offset of the chunk's data, size)] of a RIFF/WAVE file open for reading."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ProvenanceError(f"{f.name}: not a RIFF/WAVE file (RF64 and others are not tagged)")
    end = struct.unpack("<I", head[4:8])[0] + 8
    out, pos = [], 12
    while pos + 8 <= end:
        f.seek(pos)
        h = f.read(8)
        if len(h) < 8:
            break
        cid, size = h[:4], struct.unpack("<I", h[4:])[0]
        out.append((cid, pos + 8, size))
        pos += 8 + size + (size & 1)
    return out


def _wav_add_info(path: Path, fields: dict) -> None:
    """Append a LIST/INFO chunk with ``fields`` (4-char id -> text) and fix the RIFF size."""
    body = io.BytesIO()
    body.write(b"INFO")
    for cid, text in fields.items():
        data = text.encode("utf-8") + b"\x00"
        body.write(cid.encode("ascii") + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b""))
    body = body.getvalue()
    with open(path, "r+b") as f:
        _wav_chunks(f)  # validates the header
        f.seek(0, os.SEEK_END)
        if f.tell() & 1:  # RIFF chunks start on even offsets
            f.write(b"\x00")
        f.write(b"LIST" + struct.pack("<I", len(body)) + body)
        riff = f.tell() - 8
        if riff >= 2**32:
            raise ProvenanceError(f"{path}: over 4 GB, a RIFF size cannot hold it")
        f.seek(4)
        f.write(struct.pack("<I", riff))


def _wav_info(path: Path) -> dict:
    """{id: text} of every LIST/INFO field in a WAV (later chunks win)."""
    out = {}
    with open(path, "rb") as f:
        for cid, off, size in _wav_chunks(f):
            if cid != b"LIST":
                continue
            f.seek(off)
            data = f.read(size)
            if data[:4] != b"INFO":
                continue
            p = 4
            while p + 8 <= len(data):
                sid, n = data[p : p + 4].decode("latin-1"), struct.unpack("<I", data[p + 4 : p + 8])[0]
                out[sid] = data[p + 8 : p + 8 + n].rstrip(b"\x00").decode("utf-8", "replace")
                p += 8 + n + (n & 1)
    return out


def _flac_blocks(f):
    """([(type, bytes)], offset of the first audio frame) of a FLAC file open for reading."""
    f.seek(0)
    if f.read(4) != b"fLaC":
        raise ProvenanceError(f"{f.name}: not a FLAC file")
    blocks, last = [], False
    while not last:
        h = f.read(4)
        if len(h) < 4:
            raise ProvenanceError(f"{f.name}: truncated FLAC metadata")
        last, btype = bool(h[0] & 0x80), h[0] & 0x7F
        blocks.append((btype, f.read(int.from_bytes(h[1:4], "big"))))
    return blocks, f.tell()


def _vorbis_comments(data: bytes) -> tuple[bytes, list[str]]:
    n = struct.unpack("<I", data[:4])[0]
    vendor, p = data[4 : 4 + n], 4 + n
    count, p = struct.unpack("<I", data[p : p + 4])[0], p + 4
    out = []
    for _ in range(count):
        m = struct.unpack("<I", data[p : p + 4])[0]
        out.append(data[p + 4 : p + 4 + m].decode("utf-8", "replace"))
        p += 4 + m
    return vendor, out


def _flac_add_comments(path: Path, comments: list[str]) -> None:
    """Add Vorbis comments (``KEY=value``) to a FLAC: the metadata blocks are rewritten, the frames copied."""
    with open(path, "rb") as f:
        blocks, audio_at = _flac_blocks(f)
        vendor, old = software().encode(), []
        for t, data in blocks:
            if t == 4:
                vendor, old = _vorbis_comments(data)
        keys = {c.split("=", 1)[0].upper() for c in comments}
        kept = [c for c in old if c.split("=", 1)[0].upper() not in keys]
        vc = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(kept) + len(comments))
        for c in kept + comments:
            b = c.encode("utf-8")
            vc += struct.pack("<I", len(b)) + b
        new = [(t, d) for t, d in blocks if t != 4]
        new.insert(1, (4, vc))  # STREAMINFO stays first
        tmp = path.with_name(f".{path.name}.tag{path.suffix}")
        try:
            with open(tmp, "wb") as g:
                g.write(b"fLaC")
                for i, (t, d) in enumerate(new):
                    if len(d) >= 2**24:
                        raise ProvenanceError(f"{path}: a FLAC metadata block over 16 MB")
                    g.write(bytes([t | (0x80 if i == len(new) - 1 else 0)]) + len(d).to_bytes(3, "big") + d)
                f.seek(audio_at)
                shutil.copyfileobj(f, g)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


# -- reading back ---------------------------------------------------------------------------------
def read_tag(path) -> dict | None:
    """The provenance tag of a WAV or FLAC file as a dict (see :func:`parse_tag`), or None."""
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if ext == ".wav":
            return parse_tag(_wav_info(path).get("ICMT", ""))
        if ext == ".flac":
            with open(path, "rb") as f:
                blocks, _ = _flac_blocks(f)
            for t, data in blocks:
                if t == 4:
                    for c in _vorbis_comments(data)[1]:
                        k, _, v = c.partition("=")
                        if k.upper() == "COMMENT" and parse_tag(v):
                            return parse_tag(v)
            return None
    except (ProvenanceError, struct.error, OSError):
        return None
    return _ffprobe_tag(path)


def _ffprobe_tag(path: Path) -> dict | None:
    """Other containers (MP3 ID3, Ogg/Opus comments): the comment tag as ffprobe reports it, if installed.
    ffmpeg copies a WAV's INFO comment or a FLAC's COMMENT into the file it encodes unless told not to."""
    if shutil.which("ffprobe") is None:
        return None
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags:stream_tags", "-of",
                        "default=noprint_wrappers=1", str(path)], check=False, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        k, _, v = line.partition("=")
        if k.split(":")[-1].lower() == "comment" and parse_tag(v):
            return parse_tag(v)
    return None


def decode(path) -> tuple[np.ndarray, int]:
    """(channels, n) float32 and rate of any file pedalboard reads, else decoded by ffmpeg (mono, 48 kHz)."""
    try:
        return read_audio(path)
    except AudioFileError as e:
        if shutil.which("ffmpeg") is None:
            raise ProvenanceError(str(e)) from None
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", "48000", "-"],
                       check=False, capture_output=True)
    if r.returncode != 0 or not r.stdout:
        raise ProvenanceError(f"{path}: cannot decode audio ({r.stderr.decode(errors='replace').strip()})")
    return np.frombuffer(r.stdout, np.float32)[None].copy(), 48000


def verify(path) -> dict:
    """{"path", "tag": dict or None, "watermark": dsp.watermark.detect's result} for one file."""
    from resculpt.dsp import watermark as wm

    path = Path(path)
    if not path.exists():
        raise ProvenanceError(f"{path}: no such file")
    x, sr = decode(path)
    return {"path": str(path), "tag": read_tag(path), "watermark": wm.detect(x, sr)}
