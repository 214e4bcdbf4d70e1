"""The demo's spectrogram pictures: the PNG decodes, and the axes say where things are."""

import struct
import zlib

import numpy as np
import pytest
from resculpt.plugin_host.spectrogram import spectrogram_image, spectrogram_png

PAPER = np.array([255, 255, 255])
INK = np.array([40, 40, 40])


def _read_png(path) -> np.ndarray:
    """Decode an 8-bit RGB PNG whose rows all use filter 0 (what write_png writes) to (h, w, 3)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF
        chunks[tag] = chunks.get(tag, b"") + body
        pos += 12 + n
    w, h, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour_type) == (8, 2) and b"IEND" in chunks
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + 3 * w)
    assert not raw[:, 0].any()
    return raw[:, 1:].reshape(h, w, 3)


def _ink(region: np.ndarray) -> bool:
    return bool((region != PAPER).any())


def _brightness(pic) -> np.ndarray:
    """The plot's pixels summed over RGB (the colour map gets brighter with level), (height, width)."""
    top, left, height, width = pic.plot
    return pic.rgb[top:top + height, left:left + width].astype(int).sum(axis=-1)


def test_the_png_decodes_to_the_picture_with_a_title_and_labelled_axes(tmp_path):
    sr = 16000
    x = np.random.default_rng(0).normal(0, 0.1, 3 * sr).astype(np.float32)
    path = tmp_path / "broadcast-voice.png"
    spectrogram_png(path, x, sr)
    pic = spectrogram_image(x, sr, "broadcast-voice")
    assert np.array_equal(_read_png(path), pic.rgb)  # the title defaults to the file's stem

    top, left, height, width = pic.plot
    rgb = pic.rgb
    assert height == 256 and width == 1 + x.size // 256
    assert _ink(rgb[:top, left:left + width])  # title and units row
    assert _ink(rgb[top:top + height, :left])  # frequency labels and ticks
    assert _ink(rgb[top + height:, left:left + width])  # time labels and caption
    assert _ink(rgb[top:top + height, left + width:])  # colour bar and its labels
    # Frequency ticks every 1 kHz from 0 to the 8 kHz Nyquist, 0 Hz on the bottom row;
    # time ticks every second from 0 s on the first column.
    assert [f for f, _ in pic.freq_ticks] == [1000.0 * k for k in range(9)]
    assert pic.freq_ticks[0][1] == height - 1 and pic.freq_ticks[-1][1] == 0
    assert pic.time_ticks == [(0.0, 0), (1.0, 62), (2.0, 125)]  # the last column is 2.992 s
    for _, row in pic.freq_ticks:  # a tick mark in ink beside the plot
        assert (rgb[top + row, left - 4:left] == INK).all()
    for _, col in pic.time_ticks:
        assert (rgb[top + height:top + height + 4, left + col] == INK).all()


@pytest.mark.parametrize("sr, tone_hz", [(16000, 2000.0), (48000, 15000.0), (44100, 5000.0)])
def test_a_tone_is_brightest_on_the_row_of_its_frequency_tick(sr, tone_hz):
    t = np.arange(2 * sr) / sr
    pic = spectrogram_image(0.5 * np.sin(2 * np.pi * tone_hz * t), sr)
    level = _brightness(pic)[:, 8:-8].mean(axis=1)  # away from the onset clicks at both ends
    assert dict(pic.freq_ticks)[tone_hz] == int(np.argmax(level))


@pytest.mark.parametrize("sr", [16000, 48000])
def test_a_click_is_brightest_on_the_column_of_its_time_tick(sr):
    x = np.zeros(3 * sr, np.float32)
    x[2 * sr] = 1.0  # at 2.0 s
    pic = spectrogram_image(x, sr)
    assert dict(pic.time_ticks)[2.0] == int(np.argmax(_brightness(pic).mean(axis=0)))


def test_stereo_is_drawn_as_the_mean_of_its_channels():
    x = np.random.default_rng(1).normal(0, 0.1, (2, 8000)).astype(np.float32)
    assert np.array_equal(spectrogram_image(x, 16000, "s").rgb, spectrogram_image(x.mean(axis=0), 16000, "s").rgb)
