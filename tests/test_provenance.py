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
