"""The panel: widget logic against a real server on loopback (no display), and an Xvfb screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osc_testlib import running_server
from resculpt.ui.panel import ServerMirror, PanelLogic

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def panel(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    with running_server("broadcast-voice") as (chain, feeder, srv):
        client = ServerMirror("127.0.0.1", srv.port).connect()
        assert client.wait_until(lambda: client.reachable and "comp.ratio" in client.params), "no dump"
        yield chain, client, PanelLogic(client)
        client.close()


def _settle(client, chain, pred, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred():
        time.sleep(0.01)
    return pred()


def test_panel_logic_sends_params_reset_bypass_mix_and_presets(panel):
    """Slider, double-click reset, bypass, mix and preset load/save callbacks send OSC that moves
    the engine; the client mirrors the engine's state (dump, preset list, feedback)."""
    chain, client, logic = panel
    logic.on_param("comp.ratio", 7.5)
    assert _settle(client, chain, lambda: chain.params.get("comp.ratio") == 7.5)
    logic.on_reset("comp.ratio")
    assert _settle(
        client, chain, lambda: chain.params.get("comp.ratio") == chain.params.spec("comp.ratio").default
    )
    logic.on_bypass(True)
    logic.on_mix(0.4)
    assert _settle(
        client, chain, lambda: chain.params.get("bypass") == 1.0 and abs(chain.params.get("mix") - 0.4) < 1e-6
    )
    logic.on_preset_load("telephone")
    assert _settle(
        client, chain, lambda: chain.preset_name == "telephone" and client.preset == "telephone", 5.0
    )
    logic.on_preset_save("panel test")
    assert client.wait_until(lambda: "panel test" in client.user_presets, 3.0)
    logic.on_preset_rename("panel test", "panel test 2")
    assert client.wait_until(lambda: client.user_presets == ["panel test 2"], 3.0)
    assert client.wait_until(
        lambda: len(client.spectrum) == 64 and len(client.mask) == 64 and client.latency[0] >= 0
    )
    assert ("/resculpt/param/comp.ratio", (7.5,)) in client.sent


def test_panel_ab_compare_recalls_the_other_sound(panel):
    """A/B: switching to B keeps A's values; changes made on B are undone by switching back to A."""
    chain, client, logic = panel
    logic.on_param("low_shelf.gain_db", 6.0)
    assert _settle(client, chain, lambda: chain.params.get("low_shelf.gain_db") == 6.0)
    logic.ab_select("B")
    logic.on_param("low_shelf.gain_db", -6.0)
    assert _settle(client, chain, lambda: chain.params.get("low_shelf.gain_db") == -6.0)
    logic.ab_select("A")
    assert _settle(client, chain, lambda: chain.params.get("low_shelf.gain_db") == 6.0)
    logic.ab_select("B")
    assert _settle(client, chain, lambda: chain.params.get("low_shelf.gain_db") == -6.0)


def test_panel_shows_engine_errors_and_the_unreachable_banner(panel):
    """A rejected request surfaces the engine's message; a client aimed at a dead port reports the
    engine as not reachable in its status line."""
    chain, client, logic = panel
    logic.on_reference("/no/such/file.wav")
    assert client.wait_until(lambda: "no such file" in client.last_error)
    dead = ServerMirror("127.0.0.1", 9)  # discard port: nothing answers
    dead.send("/resculpt/ping")
    time.sleep(0.2)
    dead.poll(0.05)
    assert not dead.reachable and "NOT REACHABLE" in PanelLogic(dead).status()
    dead.close()


def test_dpg_widgets_callbacks_send_osc_without_a_display(panel):
    """The Dear PyGui widgets are built without a viewport; calling their callbacks (what a click
    does) sends the OSC that moves the engine, and update_ui copies engine feedback into them."""
    dpg = pytest.importorskip("dearpygui.dearpygui")
    from resculpt.ui.panel import build_ui, update_ui

    chain, client, logic = panel
    dpg.create_context()
    try:
        build_ui(logic)
        cb = dpg.get_item_callback("param:comp.threshold_db")
        cb("param:comp.threshold_db", -30.0, dpg.get_item_user_data("param:comp.threshold_db"))
        assert _settle(client, chain, lambda: chain.params.get("comp.threshold_db") == -30.0)
        dpg.get_item_callback("bypass")("bypass", True, None)
        assert _settle(client, chain, lambda: chain.params.get("bypass") == 1.0)
        chain.params.set("comp.ratio", 9.0)  # changed elsewhere (another client, the DAW)
        assert client.wait_until(lambda: client.params.get("comp.ratio") == 9.0)
        update_ui(logic)
        assert dpg.get_value("param:comp.ratio") == pytest.approx(9.0)
        assert "latency" in dpg.get_value("status")
    finally:
        dpg.destroy_context()


def _shown_stages(dpg):
    """(open slot headers in display order, closed slot headers in display order)."""
    tags = [dpg.get_item_alias(i) for i in dpg.get_item_children("stages", 1)]
    slots = [t for t in tags if t.startswith("stage:")]
    return [t[6:] for t in slots if dpg.get_value(t)], [t[6:] for t in slots if not dpg.get_value(t)], tags


def test_panel_lists_the_chain_stages_first_in_order_and_the_other_slots_collapsed(panel):
    """The slot headers show the current chain's stages first, open, in processing order (from
    /resculpt/chain), then every other slot collapsed; loading another preset re-orders them."""
    dpg = pytest.importorskip("dearpygui.dearpygui")
    from resculpt.plugin_host.catalog import SLOTS
    from resculpt.ui.panel import build_ui, update_ui

    chain, client, logic = panel
    dpg.create_context()
    try:
        build_ui(logic)
        assert client.wait_until(lambda: client.stages == chain.layout.slots())
        update_ui(logic)
        opened, closed, tags = _shown_stages(dpg)
        assert opened == chain.layout.slots() and set(opened) | set(closed) == set(SLOTS)
        assert tags.index("others_note") == tags.index(f"stage:{opened[-1]}") + 1
        logic.on_preset_load("telephone")
        assert client.wait_until(lambda: client.preset == "telephone" and client.stages == chain.layout.slots(), 5.0)
        update_ui(logic)
        opened2, closed2, _ = _shown_stages(dpg)
        assert opened2 == chain.layout.slots() and opened2 != opened
        assert set(opened2) | set(closed2) == set(SLOTS)
    finally:
        dpg.destroy_context()


@pytest.mark.display
def test_screenshot_under_xvfb_renders_a_non_blank_panel_with_live_feedback(tmp_path):
    """`resculpt ui --start-server --screenshot PNG` under a fresh Xvfb writes a PNG that is not
    blank (many distinct colours, non-trivial variance)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    disp = f":{70 + os.getpid() % 200}"
    xvfb = subprocess.Popen(
        ["Xvfb", disp, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        if xvfb.poll() is not None:
            pytest.skip(f"Xvfb could not start on {disp}")
        png = tmp_path / "panel.png"
        env = {**os.environ, "DISPLAY": disp}
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "resculpt.cli",
                "ui",
                "--start-server",
                "--preset",
                "spectral-dark",
                "--screenshot",
                str(png),
                "--frames",
                "60",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert png.is_file() and png.stat().st_size > 10_000
        if shutil.which("convert"):
            out = subprocess.run(
                ["convert", str(png), "-format", "%k %[fx:standard_deviation]", "info:"],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout.split()
            colours, sd = int(out[0]), float(out[1])
            assert colours > 50 and sd > 0.02, f"blank-looking screenshot: {colours} colours, sd {sd}"
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)


def test_panel_input_profile_field_holds_the_input_estimate_and_clears_it(panel, tmp_path):
    """The panel's input-profile field sends /resculpt/profile/input: a fingerprint file becomes the chain's input
    profile; an empty field sends the address alone, which goes back to learning the input."""
    from resculpt.dsp.profile import fingerprint

    chain, client, logic = panel
    rng = np.random.default_rng(0)
    fingerprint(0.1 * rng.standard_normal(48000 * 2).astype(np.float32), 48000).save(tmp_path / "me.json")
    logic.on_input_profile(str(tmp_path / "me.json"))
    assert _settle(client, chain, lambda: chain.input_env is not None)
    logic.on_input_profile("  ")
    assert _settle(client, chain, lambda: chain.input_env is None)


def test_panel_sets_the_target_from_a_shipped_name_or_a_profile_file(panel):
    """The panel's target field sends /resculpt/profile/load: a shipped target's name reaches the chain's
    target inbox (the one every target-following stage reads)."""
    chain, client, logic = panel
    logic.on_target_file("wideband-speech")
    assert _settle(client, chain, lambda: chain._inboxes["match"].value is not None)
