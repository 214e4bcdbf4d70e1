"""The learned user profile: logging, update rule, privacy (0600/0700), forget; contexts."""

import json
import os
import stat

import numpy as np
import pytest
from resculpt.plugin_host import user_profile
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.layout import Layout

pytestmark = pytest.mark.usefixtures("private_dirs")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _gesture(chain, clock, pid, values):
    """A fader drag: several sets 0.1 s apart, then a pause."""
    for v in values:
        chain.params.set(pid, v)
        clock.t += 0.1
    clock.t += 30.0


def test_attached_log_records_every_control_side_set_in_a_private_file():
    """attach(chain) logs sets as JSON lines; folder 0700, files 0600."""
    chain = Chain(Layout(), 48000, 2, 256)
    clock = Clock()
    log = user_profile.AdjustmentLog(clock=clock).attach(chain)
    _gesture(chain, clock, "low_shelf.gain_db", [1.0, 2.0, 3.0])
    entries = user_profile.read_log()
    assert [e["value"] for e in entries] == [1.0, 2.0, 3.0] and entries[0]["id"] == "low_shelf.gain_db"
    d = user_profile.user_data_dir()
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d / user_profile.LOG_NAME).st_mode) == 0o600
    user_profile.learn()
    assert stat.S_IMODE(os.stat(d / user_profile.PROFILE_NAME).st_mode) == 0o600
    log.detach()
    chain.params.set("low_shelf.gain_db", 9.0)
    assert len(user_profile.read_log()) == 3


def test_repeated_consistent_tweaks_move_the_profile_and_a_single_stray_tweak_does_not():
    """A simulated user who keeps choosing +4 dB bass moves the learned value toward +4; one stray -10
    among them leaves it there; one lone tweak of another parameter is not learned at all."""
    chain = Chain(Layout(), 48000, 2, 256)
    clock = Clock()
    user_profile.AdjustmentLog(clock=clock).attach(chain)
    for _ in range(5):
        _gesture(chain, clock, "low_shelf.gain_db", [1.0, 2.5, 4.0])
    p1 = user_profile.learn()["params"]
    assert p1["low_shelf.gain_db"] == pytest.approx(4.0)
    _gesture(chain, clock, "low_shelf.gain_db", [-5.0, -10.0])   # one stray
    _gesture(chain, clock, "presence.gain_db", [6.0])            # a single tweak elsewhere
    p2 = user_profile.learn()["params"]
    assert p2["low_shelf.gain_db"] == pytest.approx(4.0)
    assert "presence.gain_db" not in p2
    # the delta profile reflects the learned bass boost
    delta = user_profile.load_user_profile()["delta"]
    assert delta["band_env_db"][3] > 1.0 and abs(delta["band_env_db"][28]) < 0.5
    # a consistent new habit moves it, gradually (RATE = 0.5 per learn)
    for _ in range(12):
        _gesture(chain, clock, "low_shelf.gain_db", [0.0])
    p3 = user_profile.learn()["params"]
    assert 0.0 < p3["low_shelf.gain_db"] < 4.0
    p4 = user_profile.learn()["params"]
    assert p4["low_shelf.gain_db"] < p3["low_shelf.gain_db"]


def test_auto_learn_updates_after_enough_gestures_and_apply_sets_learned_params():
    """auto_learn runs the rule every AUTO_EVERY gestures; apply_user_profile sets the learned values."""
    chain = Chain(Layout(), 48000, 2, 256)
    clock = Clock()
    user_profile.AdjustmentLog(auto_learn=True, clock=clock).attach(chain)
    for _ in range(user_profile.AUTO_EVERY):
        _gesture(chain, clock, "high_shelf.gain_db", [3.0])
    assert user_profile.load_user_profile()["params"]["high_shelf.gain_db"] == pytest.approx(3.0)
    other = Chain(Layout(), 48000, 2, 256)
    user_profile.apply_user_profile(other)
    assert other.params.get("high_shelf.gain_db") == pytest.approx(3.0)


def test_forget_erases_everything_stored():
    """forget() removes the log, the learned profile and the folder."""
    chain = Chain(Layout(), 48000, 2, 256)
    user_profile.AdjustmentLog().attach(chain)
    chain.params.set("mix", 0.5)
    user_profile.learn()
    gone = user_profile.forget()
    assert len(gone) == 2 and not user_profile.user_data_dir().exists()
    assert user_profile.read_log() == [] and user_profile.load_user_profile()["params"] == {}


def _target_slot(chain) -> str:
    """The slot of the engine ``auto`` resolves to for this chain and a description (the targets these tests
    apply are deltas): ``resculpt`` (the model, when its bundle passes the identity check and its benchmark
    verdict covers descriptor targets) or ``match`` (the match-EQ)."""
    from resculpt.dsp.descriptors import describe
    from resculpt.plugin_host.chain import TARGET_SLOTS, resolve_engine

    return TARGET_SLOTS[resolve_engine(None, chain.layout, describe("more bass"))]


def test_contexts_ship_formal_casual_stream_call_and_apply_with_crossfade(tmp_path):
    """apply_context sets params through the smoothed table and adds the target stage of the auto engine (the
    model or the match-EQ) with a target, at the context's amount; a user contexts file overrides the shipped
    one."""
    from resculpt.plugin_host.contexts import (
        ContextError,
        apply_context,
        get_context,
        load_contexts,
    )
    from resculpt.plugin_host.paths import user_contexts_file

    assert {"formal", "casual", "stream", "call"} <= set(load_contexts())
    chain = Chain(Layout(), 16000, 1, 512)
    slot = _target_slot(chain)
    ctx = apply_context(chain, "call")
    assert ctx.delta is not None and slot in chain.layout.spectral
    x = (0.1 * np.random.default_rng(0).standard_normal((1, 16000))).astype(np.float32)
    for i in range(0, x.shape[1], 512):
        chain.process(x[:, i : i + 512])
    assert chain.stats.swaps == 1 and np.all(np.isfinite(x))
    assert chain.params.get(f"{slot}.amount") == pytest.approx(0.8)
    with pytest.raises(ContextError, match="did you mean formal"):
        get_context("formel")
    f = user_contexts_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"schema_version": 1, "contexts": {"call": {"describe": "more bass", "params": {}}}}))
    assert np.asarray(get_context("call").delta.band_env_db)[2] > 2.5


def test_contexts_file_is_not_listed_or_loadable_as_a_preset():
    """presets/contexts.json holds context rules, not a preset: `presets list` skips it."""
    from resculpt.plugin_host.presets import PresetError, list_presets, load_preset

    assert "contexts" not in [n for n, _ in list_presets()]
    with pytest.raises(PresetError):
        load_preset("contexts")


def test_a_log_that_cannot_be_written_never_breaks_a_parameter_set(tmp_path, monkeypatch):
    """If the data folder is unwritable, sets still succeed and the log reports why it stopped."""
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    chain = Chain(Layout(), 48000, 2, 256)
    log = user_profile.AdjustmentLog().attach(chain)
    assert chain.params.set("mix", 0.5) == 0.5
    assert log.error and "adjustment log disabled" in log.error


def test_logging_resumes_into_a_fresh_private_file_after_forget():
    """forget() while a log is attached: the next set recreates the folder (0700) and file (0600)."""
    chain = Chain(Layout(), 48000, 2, 256)
    user_profile.AdjustmentLog().attach(chain)
    chain.params.set("mix", 0.4)
    user_profile.forget()
    chain.params.set("mix", 0.6)
    assert [e["value"] for e in user_profile.read_log()] == [0.6]
    assert stat.S_IMODE(os.stat(user_profile.user_data_dir() / user_profile.LOG_NAME).st_mode) == 0o600


def test_osc_server_uses_the_real_profile_hooks_describe_context_and_logs_adjustments():
    """With this branch installed the OSC hooks resolve to the real modules: describe adds the auto engine's
    target stage with a delta target, /resculpt/context switches, and the server's adjustment log records sets."""
    from resculpt.plugin_host import osc

    chain = Chain.from_preset("clean", 48000, 2, 512)
    srv = osc.OscServer(chain, port=0).start()
    try:
        peer = ("127.0.0.1", 9)
        slot = _target_slot(chain)
        srv.handle_message("/resculpt/profile/describe", ["more bass, a bit brighter"], peer)
        assert slot in chain.layout.spectral
        srv.handle_message("/resculpt/context", ["call"], peer)
        assert chain.params.get(f"{slot}.amount") == pytest.approx(0.8)
        srv.handle_message("/resculpt/profile/describe", ["more brite"], peer)
        assert "brite" in (srv.last_error or "")
        srv.handle_message("/resculpt/mix", [0.5], peer)
        assert any(e["id"] == "mix" and e["value"] == 0.5 for e in user_profile.read_log())
    finally:
        srv.stop()
