"""The `resculpt` command line: render, presets, params, bench, demo."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import real_stereo

from resculpt.cli import main
from resculpt.plugin_host.audio_io import read_audio, write_audio


@pytest.fixture
def clip(tmp_path):
    x = real_stereo(44100, 1.3)
    p = tmp_path / "in.wav"
    write_audio(p, x, 44100)
    return p, x


def test_render_keeps_rate_channels_length_and_is_sample_exact_through_clean(clip, tmp_path):
    p, x = clip
    out = tmp_path / "out.wav"
    assert main(["render", str(p), "-o", str(out), "-q"]) == 0
    y, sr = read_audio(out)
    assert sr == 44100 and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


def test_render_trims_stft_latency_so_output_aligns_sample_exact(clip, tmp_path):
    """An identity STFT chain (latency 879 samples at 44.1 kHz) renders the input back aligned."""
    p, x = clip
    preset = tmp_path / "ident.json"
    preset.write_text(json.dumps({"schema_version": 1, "name": "ident", "chain": {"force_stft": True}}))
    out = tmp_path / "o.flac"
    assert main(["render", str(p), "-o", str(out), "--preset", str(preset), "--block", "333", "-q"]) == 0
    y, _ = read_audio(out)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=2.0 ** -22)  # 24-bit FLAC quantisation


def test_render_mono_file_with_set_override(tmp_path):
    x = real_stereo(16000, 1.0)[:1]
    p = tmp_path / "m.wav"
    write_audio(p, x, 16000)
    out = tmp_path / "m_out.wav"
    assert main(["render", str(p), "-o", str(out), "--set", "out.gain_db=-6", "-q"]) == 0
    y, sr = read_audio(out)
    assert sr == 16000 and y.shape == (1, x.shape[1])
    np.testing.assert_allclose(y, x * 10 ** (-6 / 20), atol=1e-6)


def test_render_refuses_to_overwrite_its_input(clip, capsys):
    p, x = clip
    assert main(["render", str(p), "-o", str(p), "-q"]) == 1
    assert "refusing to overwrite the input" in capsys.readouterr().err
    y, _ = read_audio(p)
    np.testing.assert_array_equal(y, x)


def test_bad_files_give_one_clear_error_each_and_the_others_still_render(clip, tmp_path, capsys):
    p, _ = clip
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 4)
    missing = tmp_path / "missing.wav"
    outdir = tmp_path / "out"
    rc = main(["render", str(empty), str(corrupt), str(missing), str(p), "--out-dir", str(outdir), "-q"])
    err = capsys.readouterr().err
    assert rc == 3  # the number of files that failed
    assert "empty.wav: file is empty" in err
    assert "corrupt.flac: cannot decode audio" in err
    assert "missing.wav: no such file" in err
    assert "3 of 4 file(s) failed" in err
    assert (outdir / "in.wav").exists()


def test_render_reports_unknown_preset_and_bad_set(clip, tmp_path, capsys):
    p, _ = clip
    assert main(["render", str(p), "-o", str(tmp_path / "a.wav"), "--preset", "nope"]) == 1
    assert "preset 'nope' not found" in capsys.readouterr().err
    assert main(["render", str(p), "-o", str(tmp_path / "a.wav"), "--set", "mix"]) == 2
    assert main(["render", str(p), "-o", str(tmp_path / "a.wav"), "--set", "mixx=1"]) == 1
    assert "did you mean mix" in capsys.readouterr().err


def test_presets_list_show_and_params(capsys):
    assert main(["presets", "list"]) == 0
    out = capsys.readouterr().out
    assert "broadcast-voice" in out and "spectral-dark" in out
    assert main(["presets", "show", "telephone"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["name"] == "telephone" and "hpf.cutoff_hz" in d["params"]
    assert main(["params", "--json"]) == 0
    ids = [p["id"] for p in json.loads(capsys.readouterr().out)]
    assert "out.gain_db" in ids and "mix" in ids and len(ids) == len(set(ids))


def test_bench_json_reports_latency_rtf_and_every_stage(capsys):
    assert main(["bench", "--preset", "podcast-clean", "--seconds", "0.5", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["latency_samples"] == 959 and abs(r["latency_ms"] - 959 / 48) < 1e-9
    assert 0 < r["rtf"] < 1
    names = [s["name"] for s in r["stages"]]
    assert names == ["pre", "stft:default", "sgate", "post", "host"]
    assert all({"name", "rtf", "latency_samples"} <= set(s) for s in r["stages"])


def test_demo_renders_every_preset_with_spectrograms(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out-dir", str(out)]) == 0
    from resculpt.plugin_host.presets import list_presets

    for name, _ in list_presets():
        assert (out / f"{name}.wav").stat().st_size > 1000
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "input.png").exists()


def test_console_script_help_and_usage_error_exit_codes():
    exe = Path(sys.executable).parent / "resculpt"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "render" in r.stdout
    r = subprocess.run([str(exe), "render"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


def test_render_decodes_mp3_and_ogg_and_never_collides_output_names(tmp_path):
    """Compressed inputs render; inputs with the same stem get distinct outputs in --out-dir."""
    from pedalboard.io import AudioFile

    x = real_stereo(44100, 1.0)
    for ext in ("mp3", "ogg"):
        with AudioFile(str(tmp_path / f"take.{ext}"), "w", 44100, 2) as f:
            f.write(x)
    out = tmp_path / "out"
    assert main(["render", str(tmp_path / "take.mp3"), str(tmp_path / "take.ogg"), "--out-dir", str(out), "-q",
                 "--preset", "podcast-clean"]) == 0
    for name in ("take_mp3.wav", "take_ogg.wav"):
        y, sr = read_audio(out / name)
        assert sr == 44100 and y.shape[0] == 2 and y.shape[1] >= 44100 and np.isfinite(y).all()


def test_render_json_prints_the_single_renders_record(clip, tmp_path, capsys):
    """``render IN -o OUT --json`` prints that render's record as JSON on stdout (as --out-dir prints the batch's)."""
    p, _ = clip
    prof = tmp_path / "own.json"
    assert main(["profile", "fingerprint", str(p), "-o", str(prof)]) == 0
    capsys.readouterr()
    out = tmp_path / "o.wav"
    assert main(["render", str(p), "-o", str(out), "--target", str(prof), "--engine", "match-eq", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["output"] == str(out) and rec["engine"] == "match-eq" and rec["sample_rate"] == 44100
    assert rec["distance_before_db"] < 0.01 and rec["distance_after_db"] < 0.5  # its own profile: kept within 0.5 dB
