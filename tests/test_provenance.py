"""Provenance of anonymized renders: the voice-transformed tag (plugin_host/provenance.py), the watermark
(dsp/watermark.py) and `resculpt verify`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from resculpt.dsp import watermark as wm
from resculpt.plugin_host import provenance
from resculpt.plugin_host.audio_io import read_audio, write_audio
from resculpt.plugin_host.render import render_file

from resculpt.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"
INFO = {"provenance": "voice-transformed", "preset": "anon-test", "stages": ["mcadams"],
        "watermark": provenance.WATERMARK_ID}


@pytest.fixture(scope="module")
def speech():
    x, sr = read_audio(EXAMPLE)
    return x[:, : 10 * sr], sr  # 10 s of real speech (LibriSpeech speaker 1081)


@pytest.fixture(scope="module")
def marked(speech):
    x, sr = speech
    return wm.embed(x, sr), sr


def _anon_preset(tmp_path) -> Path:
    p = tmp_path / "anon-test.json"
    p.write_text(json.dumps({"schema_version": 1, "name": "anon-test", "chain": {"spectral": ["mcadams"]},
                             "params": {"mcadams.alpha": 0.8}}))
    return p


def _ffmpeg_has(encoder: str) -> bool:
    if shutil.which("ffmpeg") is None:
        return False
    r = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], check=False, capture_output=True, text=True)
    return encoder in r.stdout


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_tag_is_written_and_read_back_by_resculpt_verify(tmp_path, speech, capsys, ext):
    """tag_output writes the tag (WAV LIST/INFO ICMT, FLAC Vorbis COMMENT) without touching the samples
    (watermark off here); libsndfile reads the same text as the comment, and `resculpt verify` reports it."""
    x, sr = speech
    f = tmp_path / f"a{ext}"
    write_audio(f, x, sr)
    before = read_audio(f)[0]
    provenance.tag_output(f, INFO, watermark=False)
    np.testing.assert_array_equal(read_audio(f)[0], before)
    assert provenance.read_tag(f) == {"provenance": "voice-transformed", "preset": "anon-test", "stages": ["mcadams"]}
    with sf.SoundFile(str(f)) as s:
        assert s.comment.startswith(provenance.TAG_PREFIX + " voice-transformed")
    assert main(["verify", str(f)]) == 0
    out = capsys.readouterr().out
    assert "tag: voice-transformed (preset anon-test, stages mcadams)" in out and "not detected" in out


def test_render_marks_a_voice_stage_chain_and_leaves_a_plain_one_alone(tmp_path, capsys):
    """render_file with a chain holding a voice stage (mcadams) writes the tag and the watermark; the
    `clean` preset's output carries neither; `resculpt verify --json` says so for both."""
    anon, plain = tmp_path / "anon.flac", tmp_path / "plain.wav"
    r = render_file(EXAMPLE, anon, preset=str(_anon_preset(tmp_path)))
    assert r["provenance"]["watermark"] and "stages=mcadams" in r["provenance"]["tag"]
    assert "provenance" not in render_file(EXAMPLE, plain, preset="clean")
    assert main(["verify", "--json", str(anon), str(plain)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res[0]["tag"]["provenance"] == "voice-transformed" and res[0]["watermark"]["detected"]
    assert res[1]["tag"] is None and not res[1]["watermark"]["detected"]


def test_watermark_is_detected_in_marked_speech_and_not_in_unmarked(speech, marked):
    """10 s of real speech: the marked copy scores far above THRESHOLD (> 8), the original below it; the
    mark changes the signal by under -18 dB (tile gains of ±1 dB)."""
    (x, sr), (m, _) = speech, marked
    assert wm.detect(m, sr)["score"] > 8.0
    assert wm.detect(x, sr)["score"] < wm.THRESHOLD
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((m - x).astype(np.float64) ** 2))
    assert snr > 18.0


def test_detector_scores_on_unmarked_noise_stay_under_the_threshold():
    """Under "no mark" each alignment's score is ~N(0, 1) and the reported one the largest of 400: on 20
    unmarked noises (white and pink-ish, 6 s) every score is under THRESHOLD and their mean is near the
    expected maximum of 400 normal draws (~2.9)."""
    scores = []
    for seed in range(20):
        n = np.random.default_rng(seed).standard_normal(16000 * 6)
        if seed % 2:
            n = np.cumsum(n) * 0.02 + n  # tilted spectrum
        scores.append(wm.detect(n.astype(np.float32), 16000)["score"])
    assert max(scores) < wm.THRESHOLD
    assert 2.0 < np.mean(scores) < 3.8, scores


def test_watermark_is_found_after_a_crop_and_at_another_rate(marked):
    """The detector searches every alignment: 1.234 s cut off the start, and the marked audio resampled
    from 16 to 48 kHz, are still detected."""
    from scipy.signal import resample_poly

    m, sr = marked
    assert wm.detect(m[:, int(1.234 * sr):], sr)["detected"]
    assert wm.detect(resample_poly(m[0], 3, 1), 3 * sr)["detected"]


@pytest.mark.skipif(not _ffmpeg_has("libmp3lame") or not _ffmpeg_has("libopus"),
                    reason="needs ffmpeg with libmp3lame and libopus")
@pytest.mark.parametrize("codec,ext", [(["-c:a", "libmp3lame", "-b:a", "64k"], ".mp3"),
                                       (["-c:a", "libopus", "-b:a", "24k"], ".opus")])
def test_watermark_survives_mp3_64k_and_opus_24k(tmp_path, marked, codec, ext):
    """A marked WAV encoded by ffmpeg (MP3 64 kbps / Opus 24 kbps, metadata dropped) and decoded again is
    still detected by `resculpt verify`, with the tag gone."""
    m, sr = marked
    f = tmp_path / "m.wav"
    write_audio(f, m, sr)
    provenance.tag_output(f, INFO, watermark=False)  # already marked: tag only
    enc = tmp_path / f"m{ext}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(f), "-map_metadata", "-1", *codec, str(enc)], check=True)
    r = provenance.verify(enc)
    assert r["tag"] is None
    assert r["watermark"]["detected"], r["watermark"]


def _noise_wav(path, sec, sr=48000, channels=2, seed=0):
    x = (0.1 * np.random.default_rng(seed).standard_normal((channels, int(sec * sr)))).astype(np.float32)
    write_audio(path, x, sr)
    return path


def _unmarked(monkeypatch, *args, **kw):
    """render_file with the marking switched off: the chain's plain output."""
    from resculpt.plugin_host import render

    with monkeypatch.context() as m:
        m.setattr(render, "render_mark", lambda *a, **k: None)
        r = render_file(*args, **kw)
    assert "provenance" not in r
    return read_audio(args[1])[0]


@pytest.mark.parametrize("block,target", [(4096, False), (777, False), (1000, True)])
def test_voice_render_is_watermarked_in_stream_and_equals_the_whole_signal_embed(tmp_path, monkeypatch, block, target):
    """A voice render (mcadams; plain and --target renders, any block size) writes exactly wm.embed of
    the unmarked render (float32 WAV: bit-identical, same length and alignment), the embedder sees one
    render block at a time, and the output file is never opened for reading (no second pass)."""
    from pedalboard import io as pio
    from resculpt.dsp.profile import Profile

    src = _noise_wav(tmp_path / "in.wav", 1.5)
    preset = str(_anon_preset(tmp_path))
    kw = dict(preset=preset, block=block, progress=False)
    if target:
        kw["target"] = Profile("fingerprint", band_env_db=list(np.linspace(-20.0, -50.0, 32)))
    plain = _unmarked(monkeypatch, src, tmp_path / "plain.wav", **kw)

    out = tmp_path / "marked.wav"
    seen, opened = [], []
    emb_process, audio_file = wm.Embedder.process, pio.AudioFile

    def recording_process(self, x):
        seen.append(x.shape[1])
        return emb_process(self, x)

    def recording_open(*a, **k):
        opened.append(str(a[0]))
        return audio_file(*a, **k)

    monkeypatch.setattr(wm.Embedder, "process", recording_process)
    monkeypatch.setattr(pio, "AudioFile", recording_open)
    r = render_file(src, out, **kw)
    monkeypatch.undo()
    assert r["provenance"]["watermark"] and r["frames"] == plain.shape[1]
    assert seen and max(seen) <= block
    assert str(out) not in opened
    got = read_audio(out)[0]
    np.testing.assert_array_equal(got, wm.embed(plain, 48000))
    assert provenance.read_tag(out)["watermark"] == provenance.WATERMARK_ID


def test_voice_render_peak_memory_does_not_grow_with_the_file_length(tmp_path):
    """tracemalloc's peak over a marked 48 kHz stereo render of 1 s and of 5 s: the 4 s more (1.5 MB of
    float32 audio) raise it by under 0.2 MB (whole-file marking holds the file and its marked copy)."""
    import tracemalloc

    preset = str(_anon_preset(tmp_path))
    render_file(_noise_wav(tmp_path / "w.wav", 0.5), tmp_path / "w-out.wav", preset=preset, progress=False)
    peaks = []
    for sec in (1.0, 5.0):
        src = _noise_wav(tmp_path / f"n{sec}.wav", sec)
        tracemalloc.start()
        try:
            r = render_file(src, tmp_path / f"o{sec}.wav", preset=preset, progress=False)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert r["provenance"]["watermark"]
    assert peaks[1] - peaks[0] < 0.2e6, peaks


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_tag_output_marks_an_already_rendered_file_in_blocks_like_embed(tmp_path, speech, ext):
    """tag_output on a finished file (read and rewritten in blocks of 1000 samples) gives the samples of
    wm.embed on the whole file (WAV bit-identical; FLAC within two 24-bit steps, clipped at full scale)
    and the full tag."""
    x, sr = speech
    f = tmp_path / f"a{ext}"
    write_audio(f, x, sr)
    before = read_audio(f)[0]
    w = provenance.tag_output(f, INFO, block=1000)
    assert w["watermark"] and "watermark=" + provenance.WATERMARK_ID in w["tag"]
    got, want = read_audio(f)[0], wm.embed(before, sr)
    assert got.shape == want.shape
    if ext == ".wav":
        np.testing.assert_array_equal(got, want)
    else:
        # 24-bit integer samples: two steps of rounding (scale and float32), full scale clips (one sample
        # of this clip goes 0.3 dB over it once marked).
        assert np.max(np.abs(got - np.clip(want, -1.0, 1.0))) <= 2.0**-22
    assert provenance.read_tag(f)["watermark"] == provenance.WATERMARK_ID
    assert wm.detect(got, sr)["detected"]


def test_streaming_embedder_is_bit_identical_to_embed_for_any_block_partition():
    """Embedder.process over uneven blocks (1 to 9000 samples, some longer than max_block) plus flush()
    concatenates to wm.embed of the whole array: same length, same samples."""
    x = (0.1 * np.random.default_rng(3).standard_normal((2, 48000 + 17))).astype(np.float32)
    e = wm.Embedder(48000, 2, 4096)
    parts, i, k = [], 0, 1
    while i < x.shape[1]:
        m = min(k, x.shape[1] - i)
        parts.append(e.process(x[:, i : i + m]).copy())
        i, k = i + m, (k * 7 + 3) % 9000 + 1
    parts += [y.copy() for y in e.flush()]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), wm.embed(x, 48000))
