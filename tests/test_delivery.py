"""Delivery (render --loudness / --true-peak): one static gain to an integrated loudness, a true-peak ceiling."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import real_stereo
from resculpt.plugin_host.audio_io import read_audio, write_audio
from resculpt.plugin_host.batch import render_batch
from resculpt.plugin_host.render import RenderError, TruePeakMeter, _measure, render_file
from scipy.signal import resample_poly


def _loud_stereo(path, sr=48000, seconds=4.0):
    """Real speech / music driven so that its sample peaks reach 0 dBFS (a hot master)."""
    x = real_stereo(sr, seconds)
    write_audio(path, (x / np.abs(x).max()).astype(np.float32), sr)
    return path


def _independent_true_peak_db(y):
    """4x oversampled peak by scipy's polyphase resampler (another interpolator than TruePeakMeter's)."""
    return float(20 * np.log10(np.abs(resample_poly(y.astype(np.float64), 4, 1, axis=-1)).max()))


def test_delivery_brings_a_hot_render_to_its_loudness_and_under_its_true_peak_ceiling(tmp_path):
    src = _loud_stereo(tmp_path / "in.wav")
    r = render_file(src, tmp_path / "out.wav", "clean", loudness_lufs=-14.0, true_peak_db=-1.0)
    d = r["delivery"]
    lufs, tp = _measure(tmp_path / "out.wav", 8192)
    y, _ = read_audio(tmp_path / "out.wav")
    print(d, "independent true peak", _independent_true_peak_db(y))
    assert abs(lufs - -14.0) <= 0.15 and abs(d["loudness_lufs"] - lufs) < 1e-9
    assert tp <= -1.0
    # another interpolator can read the waveform between samples a little differently
    assert _independent_true_peak_db(y) <= -1.0 + 0.1


def test_delivery_keeps_length_and_timing_sample_for_sample_where_the_limiter_does_not_act(tmp_path):
    src = _loud_stereo(tmp_path / "in.wav")
    plain = render_file(src, tmp_path / "plain.wav", "clean")
    r = render_file(src, tmp_path / "quiet.wav", "clean", loudness_lufs=-40.0, true_peak_db=-1.0)
    a, _ = read_audio(tmp_path / "plain.wav")
    b, _ = read_audio(tmp_path / "quiet.wav")
    assert b.shape == a.shape and r["frames"] == plain["frames"]
    g = 10 ** (r["delivery"]["gain_db"] / 20)
    np.testing.assert_allclose(b, a * np.float32(g), rtol=0, atol=2e-7)


def test_true_peak_meter_finds_the_peak_between_samples_of_a_sine_at_a_quarter_of_the_rate():
    """A sine at fs/4 sampled 45 degrees off its crests: every sample is 0.707 of the true amplitude (-3.01 dB)."""
    n = np.arange(48000)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4)[None] * 0.5
    m = TruePeakMeter(1)
    for i in range(0, x.shape[1], 1000):
        m.process(x[:, i : i + 1000])
    m.flush()
    assert 20 * np.log10(np.abs(x).max() / 0.5) == pytest.approx(-3.01, abs=0.01)
    assert m.dbtp == pytest.approx(20 * np.log10(0.5), abs=0.05)


@pytest.mark.parametrize("kw", [{"loudness_lufs": 5.0}, {"loudness_lufs": float("nan")}, {"true_peak_db": -30.0}])
def test_delivery_settings_out_of_range_are_refused_before_anything_is_written(tmp_path, kw):
    src = _loud_stereo(tmp_path / "in.wav", seconds=1.0)
    with pytest.raises(RenderError):
        render_file(src, tmp_path / "out.wav", "clean", **kw)
    assert list(tmp_path.iterdir()) == [src]


def test_a_silent_render_cannot_be_brought_to_a_loudness_and_leaves_no_file(tmp_path):
    src = tmp_path / "silence.wav"
    write_audio(src, np.zeros((1, 48000), np.float32), 48000)
    with pytest.raises(RenderError, match="silent"):
        render_file(src, tmp_path / "out.wav", "clean", loudness_lufs=-16.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silence.wav"]


def test_batch_renders_again_when_the_delivery_loudness_changes_and_skips_when_it_does_not(tmp_path):
    src = _loud_stereo(tmp_path / "in.wav", seconds=1.5)
    out = tmp_path / "out"
    s1 = render_batch([src], out, "clean", jobs=1, loudness_lufs=-16.0, progress=False)
    assert s1["rendered"] == 1 and s1["files_detail"][0]["delivery"]["passes"] >= 1
    assert render_batch([src], out, "clean", jobs=1, loudness_lufs=-16.0, progress=False)["skipped"] == 1
    s3 = render_batch([src], out, "clean", jobs=1, loudness_lufs=-20.0, progress=False)
    assert s3["rendered"] == 1
    lufs, _ = _measure(out / "in.wav", 8192)
    assert abs(lufs - -20.0) <= 0.15


def test_an_anonymized_render_delivered_louder_keeps_its_tag_and_its_watermark(tmp_path, speech_clip):
    from resculpt.plugin_host.provenance import verify

    x, sr = speech_clip
    write_audio(tmp_path / "in.wav", x[None].astype(np.float32), sr)
    render_file(tmp_path / "in.wav", tmp_path / "out.wav", "anon-neutral", loudness_lufs=-14.0)
    v = verify(tmp_path / "out.wav")
    assert v["tag"] is not None and v["watermark"]["detected"]


def test_a_goal_too_loud_for_the_ceiling_ends_short_with_the_gain_bounded_not_crushed(tmp_path):
    """-6 LUFS under a -1 dBTP ceiling would need the limiter to take off many dB: the gain stops 6 dB over the
    first estimate and the result (and the CLI's warning) says where it landed."""
    from resculpt.plugin_host.render import DELIVERY_MAX_PUSH_DB

    src = _loud_stereo(tmp_path / "in.wav", seconds=2.0)
    d = render_file(src, tmp_path / "out.wav", "clean", loudness_lufs=-6.0, true_peak_db=-1.0)["delivery"]
    assert d["gain_db"] <= (-6.0 - d["loudness_in_lufs"]) + DELIVERY_MAX_PUSH_DB + 1e-9
    assert d["loudness_lufs"] < -6.0 - 0.1 and d["true_peak_dbtp"] <= -1.0
