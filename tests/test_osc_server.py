"""OSC server on loopback: the address space, replies, errors, presets, feedback, security."""

from __future__ import annotations

import math
import time

import pytest
from osc_testlib import Client, running_server
from resculpt.plugin_host import osc
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.osc import OscError, OscServer


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    with running_server() as (chain, feeder, srv):
        c = Client(srv.port)
        yield chain, feeder, srv, c
        c.close()


def test_ping_answers_pong_to_the_sender(served):
    """/resculpt/ping is answered on /resculpt/pong at the sender's address and port."""
    chain, feeder, srv, c = served
    c.send("/resculpt/ping")
    assert c.wait_for("/resculpt/pong") is not None


def test_param_set_in_native_units_normalised_and_get_reply(served):
    """/param/<id> sets native units, /norm maps 0..1 through the spec, /get replies value, unit, display."""
    chain, feeder, srv, c = served
    c.send("/resculpt/param/comp.ratio", 6.0)
    c.send("/resculpt/param/hpf.cutoff_hz/norm", 0.5)
    c.send("/resculpt/param/comp.ratio/get")
    r = c.wait_for("/resculpt/param/comp.ratio")
    assert r is not None and r[0] == pytest.approx(6.0) and r[1] == ":1" and r[2] == "6 :1"
    spec = chain.params.spec("hpf.cutoff_hz")
    assert chain.params.get("hpf.cutoff_hz") == pytest.approx(spec.from_normalized(0.5), rel=1e-5)
    c.send("/resculpt/param/bypass", "on")  # choice/bool names are accepted as strings
    c.send("/resculpt/param/bypass/get")
    assert c.wait_for("/resculpt/param/bypass")[2] == "on"


@pytest.mark.parametrize(
    "address,args,needle",
    [
        ("/resculpt/nope", (), "unknown address"),
        ("/resculpt/param/comp.ratoi", (2.0,), "did you mean comp.ratio"),
        ("/resculpt/param/comp.ratio", (), "expected 1 argument"),
        ("/resculpt/param/comp.ratio", (1.0, 2.0), "expected 1 argument"),
        ("/resculpt/param/comp.ratio", ("lots",), "expected a number"),
        ("/resculpt/param/comp.ratio", (float("nan"),), "finite"),
        ("/resculpt/param/comp.ratio", (float("inf"),), "finite"),
        ("/resculpt/param/comp.ratio", (500.0,), "out of range [1, 20]"),
        ("/resculpt/param/comp.ratio/norm", (1.5,), "outside 0..1"),
        ("/resculpt/mix", (2.0,), "out of range"),
        ("/resculpt/bypass", (0.5,), "expected 0 or 1"),
        ("/resculpt/preset/load", ("no-such-preset",), "not found"),
        ("/resculpt/preset/load", (3,), "expected a string"),
        ("/resculpt/preset/load", ("../../etc/passwd",), "not a path"),
        ("/resculpt/preset/save", ("clean",), "shipped preset"),
        ("/resculpt/preset/save", ("bad/name",), "invalid preset name"),
        ("/resculpt/profile/reference", ("/no/such/clip.wav",), "no such file"),
        ("/resculpt/subscribe", (70000,), "1..65535"),
    ],
)
def test_bad_messages_get_an_error_reply_and_change_nothing(served, address, args, needle):
    """Each rejected message answers /resculpt/error <message> <address> naming the problem; the
    parameter table is unchanged and the server keeps answering."""
    chain, feeder, srv, c = served
    before = chain.params.targets()
    c.send(address, *args)
    r = c.wait_for("/resculpt/error")
    assert r is not None, f"no error reply for {address} {args}"
    assert needle in r[0], r
    assert chain.params.targets() == before
    c.send("/resculpt/ping")
    assert c.wait_for("/resculpt/pong") is not None


def test_preset_load_save_rename_and_list(served):
    """load replaces the sound and replies the current name; save writes a user preset that list
    reports as a user preset; rename moves it; a shipped preset cannot be renamed."""
    chain, feeder, srv, c = served
    c.send("/resculpt/preset/load", "telephone")
    assert c.wait_for("/resculpt/preset/current", 5.0) == ["telephone"]
    assert chain.preset_name == "telephone"
    c.send("/resculpt/param/out.gain_db", -3.0)
    c.send("/resculpt/preset/save", "my phone")
    saved = c.wait_for("/resculpt/preset/saved")
    assert saved and saved[0] == "my phone"
    c.send("/resculpt/preset/rename", "my phone", "my phone 2")
    assert c.wait_for("/resculpt/preset/renamed") == ["my phone", "my phone 2"]
    c.send("/resculpt/preset/list")
    names = c.wait_for("/resculpt/preset/list")
    user = c.wait_for("/resculpt/preset/user")
    assert "telephone" in names and "my phone 2" in names and user == ["my phone 2"]
    c.send("/resculpt/preset/rename", "telephone", "x")
    assert "shipped preset" in c.wait_for("/resculpt/error")[0]
    c.send("/resculpt/preset/load", "my phone 2")
    assert c.wait_for("/resculpt/preset/current", 5.0) == ["my phone 2"]
    assert chain.params.get("out.gain_db") == -3.0


def test_bypass_and_mix_shortcuts_reach_the_table(served):
    """/resculpt/bypass and /resculpt/mix set the same parameters as /param/bypass and /param/mix."""
    chain, feeder, srv, c = served
    c.send("/resculpt/bypass", 1)
    c.send("/resculpt/mix", 0.25)
    c.send("/resculpt/ping")
    c.wait_for("/resculpt/pong")
    assert chain.params.get("bypass") == 1.0 and chain.params.get("mix") == 0.25


def test_subscribe_streams_meters_spectrum_mask_latency_cpu_and_param_echoes(tmp_path, monkeypatch):
    """A subscriber receives ~30 Hz feedback (levels, latency, CPU, 64-band spectrum and mask) and
    an echo of parameter changes made by any client."""
    from pathlib import Path

    ex = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"
    with running_server("spectral-dark", source=ex) as (chain, feeder, srv):
        c, other = Client(srv.port), Client(srv.port)
        c.send("/resculpt/subscribe", c.port)
        assert c.wait_for("/resculpt/subscribed") is not None
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 1.0:
            if c.wait_for("/resculpt/meters", 0.5) is not None:
                n += 1
        assert 15 <= n <= 45, f"{n} feedback frames in 1 s"
        m = c.wait_for("/resculpt/meters", 1.0)
        assert len(m) == 4 and all(math.isfinite(v) for v in m) and m[0] > -60.0  # speech is playing
        spec = c.wait_for("/resculpt/spectrum", 1.0)
        mask = c.wait_for("/resculpt/mask", 1.0)
        assert len(spec) == 64 and len(mask) == 64 and max(spec) > -80.0
        assert min(mask) >= 0.0 and min(mask) < 0.99  # the spectral gate is attenuating somewhere
        lat = c.wait_for("/resculpt/latency", 1.0)
        assert lat[0] == chain.latency_samples
        assert c.wait_for("/resculpt/cpu", 1.0) is not None
        other.send("/resculpt/param/reverb.wet_db", -20.0)
        echo = c.wait_for("/resculpt/param/reverb.wet_db", 1.0, pred=lambda a: a[0] != -8.0)
        assert echo is not None and echo[0] == pytest.approx(-20.0) and echo[1] == "dB"
        c.close()
        other.close()


def test_describe_adds_the_target_stage_and_the_chain_message_reports_it(served):
    """/resculpt/profile/describe applies the descriptor as a target (adding the auto engine's stage: the model's
    ``resculpt`` when its bundle passes the identity check, else the match-EQ's ``match``), is acknowledged on
    /resculpt/profile/applied, and a subscriber then sees that stage in /resculpt/chain, after the other
    spectral stages; /resculpt/dump reports the chain's stages in processing order."""
    from resculpt.dsp.descriptors import describe
    from resculpt.plugin_host.chain import TARGET_SLOTS, resolve_engine

    chain, feeder, srv, c = served
    slot = TARGET_SLOTS[resolve_engine(None, chain.layout, describe("more bass"))]
    c.send("/resculpt/dump")
    assert c.wait_for("/resculpt/chain") == chain.layout.slots()
    assert slot not in chain.layout.spectral
    c.send("/resculpt/subscribe", c.port)
    c.send("/resculpt/profile/describe", "more bass")
    assert c.wait_for("/resculpt/profile/applied") == ["more bass"]
    assert slot in chain.layout.spectral
    stages = c.wait_for("/resculpt/chain", 2.0, pred=lambda a: slot in a)
    assert stages == chain.layout.slots() and stages[-1 - len(chain.layout.post)] == slot


def test_every_documented_control_address_has_a_handler_and_every_handler_is_documented():
    """The server's route table and osc_protocol.FIXED_ADDRESSES (what docs/osc.md lists) name the
    same addresses (the Ardour shape is documented under DAW shapes)."""
    from resculpt.plugin_host import osc_protocol

    srv = OscServer(Chain.from_preset("clean", 48000, 2, 512), port=0)
    assert set(srv._routes) - {osc_protocol.ARDOUR_PARAMETER} == {a.address for a in osc_protocol.FIXED_ADDRESSES}


def test_non_loopback_bind_is_refused_without_secret_or_allow_list():
    """Binding 0.0.0.0 with neither a secret nor an allow-list raises a clear OscError."""
    chain = Chain.from_preset("clean", 48000, 2, 512)
    with pytest.raises(OscError, match="refusing to bind"):
        OscServer(chain, host="0.0.0.0", port=0).start()


def test_secret_and_allow_list_gate_non_loopback_senders():
    """A non-loopback sender is refused until /resculpt/auth with the right secret; an allow-listed
    network is accepted; loopback is always accepted."""
    chain = Chain.from_preset("clean", 48000, 2, 512)
    srv = OscServer(chain, host="127.0.0.1", port=0, secret="s3cret", allow=["10.1.2.0/24"])
    far, near, listed = ("192.0.2.7", 9), ("127.0.0.1", 9), ("10.1.2.9", 9)
    srv.handle_message("/resculpt/mix", [0.5], far)
    assert chain.params.get("mix") == 1.0 and "not authorised" in srv.last_error
    srv.handle_message("/resculpt/auth", ["wrong"], far)
    srv.handle_message("/resculpt/mix", [0.5], far)
    assert chain.params.get("mix") == 1.0
    srv.handle_message("/resculpt/auth", ["s3cret"], far)
    srv.handle_message("/resculpt/mix", [0.5], far)
    assert chain.params.get("mix") == 0.5
    srv.handle_message("/resculpt/mix", [0.25], listed)
    assert chain.params.get("mix") == 0.25
    srv.handle_message("/resculpt/mix", [0.75], near)
    assert chain.params.get("mix") == 0.75


def test_osc_docs_are_current():
    """docs/osc.md equals `resculpt osc-docs` (regenerate with `resculpt osc-docs > docs/osc.md`)."""
    from pathlib import Path

    doc = Path(__file__).resolve().parent.parent / "docs" / "osc.md"
    assert doc.read_text() == osc.osc_docs_markdown(), "docs/osc.md is stale: resculpt osc-docs > docs/osc.md"
    for pid in Chain.from_preset("clean", 48000, 2, 512).params:
        assert f"`/resculpt/param/{pid}`" in doc.read_text()


def test_latency_reply_includes_device_buffering_under_live():
    """When `resculpt live` registers its stats as chain.stats.extra["live"], /resculpt/latency
    carries the total (chain + device buffering) after the chain's own figures."""

    class FakeLive:
        def snapshot(self):
            return {"latency_samples": 1471, "latency_ms": 30.65}

    with running_server("spectral-dark", feed=False) as (chain, feeder, srv):
        c = Client(srv.port)
        c.send("/resculpt/dump")
        assert c.wait_for("/resculpt/latency")[0] == chain.latency_samples
        chain.stats.extra["live"] = FakeLive()
        c.send("/resculpt/dump")
        lat = c.wait_for("/resculpt/latency")
        assert lat[0] == chain.latency_samples and lat[2] == 1471 and lat[3] == pytest.approx(30.65, rel=1e-5)
        c.close()


def test_serve_command_runs_and_answers_ping(tmp_path):
    """`resculpt serve --port 0 --seconds N` prints its port, answers /ping while it runs and exits 0."""
    import re
    import subprocess
    import sys

    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resculpt.cli",
            "serve",
            "--port",
            "0",
            "--seconds",
            "6",
            "--preset",
            "clean",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stdout.readline()
        m = re.search(r"udp://127\.0\.0\.1:(\d+)", line)
        assert m, line
        c = Client(int(m.group(1)))
        c.send("/resculpt/ping")
        assert c.wait_for("/resculpt/pong", 3.0) is not None
        c.close()
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
