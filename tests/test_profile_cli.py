"""`resculpt profile ...` and `resculpt render --target/--amount/--context` end to end (in process)."""

import json
from pathlib import Path

import numpy as np
import pytest

from resculpt.cli import main
from resculpt.plugin_host.audio_io import read_audio, write_audio

pytestmark = pytest.mark.usefixtures("private_dirs")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"


def test_describe_writes_a_delta_and_with_base_a_target(tmp_path, capsys):
    """describe TEXT -o T.json writes a delta profile; --base IN.wav makes it an absolute target."""
    out = tmp_path / "t.json"
    assert main(["profile", "describe", "more bass, clearer highs, softer tone", "-o", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["kind"] == "delta" and d["schema_version"] == 1
    assert main(["profile", "describe", "a bit warmer", "--base", str(EXAMPLE), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["kind"] == "target"
    assert "warm" in capsys.readouterr().out


def test_describe_unknown_word_fails_with_suggestions(tmp_path, capsys):
    """Exit 1 and a message naming the word and close known descriptors."""
    assert main(["profile", "describe", "more brite", "-o", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "brite" in err and "bright" in err
    assert not (tmp_path / "x.json").exists()


def test_from_reference_accepts_the_bundled_clip_and_refuses_a_short_one(tmp_path, capsys):
    """from-reference REF -o T.json; a 1 s clip is refused with the reason."""
    out = tmp_path / "ref.json"
    assert main(["profile", "from-reference", str(EXAMPLE), "-o", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["kind"] == "target" and 60 < d["dims"]["f0_median_hz"] < 200
    x, sr = read_audio(EXAMPLE)
    short = tmp_path / "short.wav"
    write_audio(short, x[:, :sr], sr)
    assert main(["profile", "from-reference", str(short), "-o", str(tmp_path / "s.json")]) == 1
    assert "too short" in capsys.readouterr().err


def test_render_with_target_and_amount_moves_the_envelope_and_keeps_length(tmp_path, capsys):
    """render IN -o OUT --target T --amount A inserts the match stage, keeps rate/length, reports distances."""
    from resculpt.dsp.profile import band_distance_db, load_profile, long_term_envelope

    t = tmp_path / "t.json"
    assert main(["profile", "describe", "much more bass", "--base", str(EXAMPLE), "-o", str(t)]) == 0
    out = tmp_path / "o.wav"
    assert main(["render", str(EXAMPLE), "-o", str(out), "--target", str(t), "--amount", "1", "--engine", "match-eq"]) == 0
    assert "match-EQ: band-envelope distance" in capsys.readouterr().out
    x, sr = read_audio(EXAMPLE)
    y, sr2 = read_audio(out)
    assert sr2 == sr and y.shape == x.shape
    goal = load_profile(t).band_env_db
    assert band_distance_db(long_term_envelope(y, sr), goal) < 0.3 * band_distance_db(long_term_envelope(x, sr), goal)
    out0 = tmp_path / "o0.wav"
    assert main(["render", str(EXAMPLE), "-o", str(out0), "--target", str(t), "--amount", "0", "--engine", "match-eq"]) == 0
    np.testing.assert_allclose(read_audio(out0)[0], x, atol=1e-4)


def test_render_names_the_engine_that_moved_the_audio(resculpt_bundle, tmp_path, capsys):
    """The distance line of a target render says which engine ran: the model for --engine model, the match-EQ
    for --engine match-eq."""
    for engine, label in (("model", "model: band-envelope distance"), ("match-eq", "match-EQ: band-envelope distance")):
        out = tmp_path / f"{engine}.wav"
        assert main(["render", str(EXAMPLE), "-o", str(out), "--preset", "warm-radio", "--engine", engine]) == 0
        assert label in capsys.readouterr().out


def test_render_context_and_usage_errors(tmp_path, capsys, monkeypatch):
    """--context NAME renders; --amount without --target is a usage error; --engine model (or its other name
    --matcher) without the model's bundle is refused clearly."""
    from resculpt.models.resculpt import bundle as rb

    monkeypatch.setenv(rb.BUNDLE_ENV, str(tmp_path / "no-bundle"))
    out = tmp_path / "c.wav"
    assert main(["render", str(EXAMPLE), "-o", str(out), "--context", "call"]) == 0
    assert out.exists()
    assert main(["render", str(EXAMPLE), "-o", str(out), "--amount", "0.5"]) == 2
    t = tmp_path / "t.json"
    main(["profile", "describe", "brighter", "-o", str(t)])
    capsys.readouterr()
    for flag in ("--engine", "--matcher"):
        assert main(["render", str(EXAMPLE), "-o", str(out), "--target", str(t), flag, "model"]) == 1
        assert "the resculpting model is not installed" in capsys.readouterr().err
    assert main(["render", str(EXAMPLE), "-o", str(out), "--context", "nope"]) == 1


def test_learn_show_forget_cycle(capsys):
    """learn writes the private profile; show prints it; forget erases it."""
    from resculpt.plugin_host import user_profile

    for i in range(4):
        user_profile.AdjustmentLog().record("presence.gain_db", 3.0, t=1000.0 + 10 * i)
    assert main(["profile", "learn"]) == 0
    assert "presence.gain_db = 3" in capsys.readouterr().out
    assert main(["profile", "show"]) == 0
    assert '"presence.gain_db": 3.0' in capsys.readouterr().out
    assert main(["profile", "forget"]) == 0
    assert "erased 2 file(s)" in capsys.readouterr().out  # log + profile (no settings written)
    assert not user_profile.user_data_dir().exists()


def test_learn_auto_on_makes_new_adjustment_logs_learn_automatically(capsys):
    """`profile learn --auto on` is stored privately; AdjustmentLog() then learns every AUTO_EVERY gestures."""
    from resculpt.plugin_host import user_profile

    assert user_profile.AdjustmentLog().auto_learn is False
    assert main(["profile", "learn", "--auto", "on"]) == 0
    log = user_profile.AdjustmentLog()
    assert log.auto_learn is True
    for i in range(user_profile.AUTO_EVERY):
        log.record("presence.gain_db", 2.0, t=100.0 + 10 * i)
    assert user_profile.load_user_profile()["params"]["presence.gain_db"] == 2.0
    assert main(["profile", "learn", "--auto", "off"]) == 0
    assert user_profile.AdjustmentLog().auto_learn is False
