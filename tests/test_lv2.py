"""The LV2 plugin (urn:resculpt:chain) in real hosts, headless: lv2file renders, lv2info/lv2_validate read
the TTL, jalv runs it on a private JACK server.

The bundle is built once per module with `resculpt plugin install --lv2-path` into a temporary folder
that is the only entry of LV2_PATH. lv2file does not compensate latency: its output carries the chain's
start-up, so it is compared with the offline render shifted by the chain's latency.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from live_rig import JACKD, JackServer, speech_48k
from resculpt.plugin_host.audio_io import read_audio, write_audio
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.daw import param_order
from resculpt.plugin_host.lv2 import ports
from resculpt.plugin_host.lv2.build import LV2_INCLUDE, build
from resculpt.plugin_host.presets import list_presets
from resculpt.plugin_host.render import render_file

TOOLS = ("lv2file", "lv2info", "lv2_validate", "sordi", "cc")
_missing = [t for t in TOOLS if shutil.which(t) is None] + ([] if LV2_INCLUDE.exists() else ["lv2-dev"])
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"LV2 tools missing ({', '.join(_missing)}): apt install "
                                "lv2-dev lilv-utils lv2file jalv sordi gcc (scripts/setup.sh does it)")

RATE = 48000


@pytest.fixture(scope="module")
def lv2_path(tmp_path_factory) -> Path:
    from resculpt.cli import main

    d = tmp_path_factory.mktemp("lv2")
    assert main(["plugin", "install", "--lv2-path", str(d)]) == 0
    return d


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """1.5 s of real speech, stereo, 48 kHz, float32 WAV (lv2file keeps the input's format)."""
    x = speech_48k(1.5)
    p = tmp_path_factory.mktemp("clip") / "in.wav"
    write_audio(p, x, RATE)
    return p, read_audio(p)[0]


def run_lv2file(lv2_path, inp, out, *args, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "LV2_PATH": str(lv2_path)}
    r = subprocess.run(["lv2file", "-i", str(inp), "-o", str(out), *args, ports.URI], env=env,
                       capture_output=True, text=True, timeout=300)
    # lv2file exits 0 even when the plugin fails to instantiate: the output file is the proof.
    assert r.returncode == 0 and Path(out).exists(), r.stdout + r.stderr
    return r


def stop_process(p: subprocess.Popen) -> None:
    """Terminate a host or server the test started; kill it if it has not exited 10 s later."""
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def preset_index(name: str) -> int:
    return ports.PRESETS.index(name)


@pytest.mark.parametrize("preset, sets, block", [
    ("denoise-live", {}, 512),          # the learned mask (ONNX)
    ("broadcast-voice", {"comp.ratio": 6.0, "out.gain_db": -3.0}, 333),
    ("spectral-freeze", {}, 1024),
    ("denoise-strong", {"mask.reduction_db": 12.0}, 10000),  # above the shell's 4096: cut into pieces
])
def test_lv2file_render_equals_resculpt_render_after_the_latency(lv2_path, clip, tmp_path, preset, sets, block):
    """The plugin's output, read from the chain's latency on, is bit-identical to `resculpt render` of the
    same preset and --set values, whatever the host's block size (the chain streams exactly); values set
    before the first run() apply at once (the render starts from them, unramped)."""
    inp, x = clip
    args = ["-b", str(block), "-p", f"preset:{preset_index(preset)}"]
    for pid, v in sets.items():
        args += ["-p", f"{ports.symbol(pid)}:{v}"]
    run_lv2file(lv2_path, inp, tmp_path / "out.wav", *args)
    render_file(inp, tmp_path / "ref.wav", preset, sets, 4096, progress=False)
    y, _ = read_audio(tmp_path / "out.wav")
    ref, _ = read_audio(tmp_path / "ref.wav")
    lat = Chain.from_preset(preset).latency_samples
    n = x.shape[1]
    assert y.shape == ref.shape == x.shape
    np.testing.assert_array_equal(y[:, lat:], ref[:, : n - lat])
    assert np.sqrt(np.mean((ref - x) ** 2)) > 1e-3  # the preset changes the sound: the comparison means something


def test_lv2_preset_gives_the_shipped_preset_within_float32_port_rounding(lv2_path, clip, tmp_path):
    """An LV2 preset (presets.ttl) sets the preset control and every parameter control to the shipped
    preset's values: the render equals `resculpt render --preset` up to the float32 rounding of the control
    values (0.55 is not a float32), far below audibility."""
    inp, x = clip
    run_lv2file(lv2_path, inp, tmp_path / "out.wav", "-P", "spectral-freeze")
    render_file(inp, tmp_path / "ref.wav", "spectral-freeze", {}, 4096, progress=False)
    y, ref = read_audio(tmp_path / "out.wav")[0], read_audio(tmp_path / "ref.wav")[0]
    lat = Chain.from_preset("spectral-freeze").latency_samples
    np.testing.assert_allclose(y[:, lat:], ref[:, : x.shape[1] - lat], atol=1e-5, rtol=0)


def test_host_bypass_gives_the_chain_bypass_the_input_delayed_by_the_reported_latency(lv2_path, clip, tmp_path):
    """lv2:enabled = 0 from the first sample: the output is `resculpt render --set bypass=1` exactly, i.e. the
    input delayed by the chain latency (so a host's compensation still lines it up) up to the float32
    rounding of the chain's crossfade y + 1.0 * (dry - y)."""
    inp, x = clip
    run_lv2file(lv2_path, inp, tmp_path / "out.wav", "-p", f"preset:{preset_index('denoise-live')}", "-p", "enabled:0")
    render_file(inp, tmp_path / "ref.wav", "denoise-live", {"bypass": 1}, 4096, progress=False)
    y, ref = read_audio(tmp_path / "out.wav")[0], read_audio(tmp_path / "ref.wav")[0]
    lat = Chain.from_preset("denoise-live").latency_samples
    assert lat > 0
    np.testing.assert_array_equal(y[:, lat:], ref[:, :-lat])
    np.testing.assert_allclose(y[:, lat:], x[:, :-lat], atol=4 * np.finfo(np.float32).eps, rtol=0)


# -- a user preset and a target profile in the plugin's state --------------------------------------
USER = {"schema_version": 1, "name": "my-voice", "description": "a user preset with a learned mask",
        "chain": {"pre": ["hpf", "comp"], "spectral": ["mask"], "post": ["limiter"]},
        "params": {"hpf.cutoff_hz": 120.0, "comp.ratio": 3.0, "mask.reduction_db": 9.0, "out.gain_db": -2.0,
                   "match.amount": 0.7}}


def write_user_preset_and_target(d: Path) -> tuple[Path, Path]:
    """USER as a preset file, and a target profile far from plain speech (speech through spectral-dark)."""
    from resculpt.dsp.profile import from_reference

    user = d / "my-voice.json"
    user.write_text(json.dumps(USER))
    target = from_reference(Chain.from_preset("spectral-dark")(speech_48k(6.0, offset_s=4.0)), RATE, "dark")
    return user, target.save(d / "dark.json")


@pytest.fixture(scope="module")
def user_preset_render(lv2_path, tmp_path_factory):
    """lv2file renders 4 s of speech with the LV2 preset `resculpt plugin preset` wrote for USER + target:
    (input, output, user preset path, target path)."""
    from resculpt.cli import main

    d = tmp_path_factory.mktemp("user")
    user, target = write_user_preset_and_target(d)
    assert main(["plugin", "preset", str(user), "--target", str(target), "--lv2-path", str(lv2_path)]) == 0
    x = speech_48k(4.0)
    write_audio(d / "in.wav", x, RATE)
    run_lv2file(lv2_path, d / "in.wav", d / "out.wav", "-P", USER["name"])
    return read_audio(d / "in.wav")[0], read_audio(d / "out.wav")[0], user, target


def test_an_lv2_user_preset_with_a_target_plays_the_streaming_render_of_both_exactly(user_preset_render):
    """The LV2 preset's state carries the user preset (layout and values) and the target profile: from the
    chain's latency on, the plugin's output is bit-identical to the chain built from that preset file with
    the match stage appended and the target published (what `resculpt live`/`serve` run), rendered as a
    stream. The controls the preset sets do not count as moved (no float32 override of the state's values)."""
    from resculpt.dsp.profile import load_profile
    from resculpt.plugin_host.render import render_with_target, with_match_stage

    x, y, user, target = user_preset_render
    chain = with_match_stage(Chain.from_preset(user, sample_rate=RATE, channels=2, max_block=4096))
    ref, _ = render_with_target(chain, x, RATE, load_profile(target), 4096, passes=1, prime=False)
    lat = chain.latency_samples
    np.testing.assert_array_equal(y[:, lat:], ref[:, : x.shape[1] - lat])
    without = Chain.from_preset(user, sample_rate=RATE, channels=2, max_block=4096)(x)
    assert np.sqrt(np.mean((ref - without) ** 2)) > 1e-3  # the target changes the sound


def test_an_lv2_user_preset_with_a_target_moves_toward_it_as_resculpt_render_does(user_preset_render):
    """Against `resculpt render --preset USER.json --target T.json` itself. Not sample-equal: the offline
    render knows the whole file (it primes the match-EQ's input estimate with the file's envelope and
    refines in a second pass) and a plugin streams. Tolerance, on the figure of merit of the match-EQ
    (the RMS over bands of the level-free long-term band-envelope difference, `band_distance_db`): the
    plugin's distance to the target is within 0.5 dB of the render's and 2 dB below the input's (measured
    5.14 and 4.80 dB, from 9.77 dB dry), and its envelope is within 1.5 dB of the render's (measured 0.61 dB)."""
    from resculpt.dsp.profile import band_distance_db, load_profile, long_term_envelope
    from resculpt.plugin_host.render import with_match_stage

    x, y, user, target = user_preset_render
    lat = with_match_stage(Chain.from_preset(user)).latency_samples
    d = Path(target).parent
    render_file(d / "in.wav", d / "render.wav", str(user), {}, 4096, progress=False, target=str(target),
                engine="match-eq")
    ref, _ = read_audio(d / "render.wav")
    y = y[:, lat:]
    ref = ref[:, : ref.shape[1] - lat]
    goal = load_profile(target).env()
    env = {k: long_term_envelope(v, RATE) for k, v in (("plugin", y), ("render", ref), ("dry", x[:, : y.shape[1]]))}
    dist = {k: band_distance_db(e, goal) for k, e in env.items()}
    print({k: round(v, 2) for k, v in dist.items()}, "plugin vs render", round(band_distance_db(env["plugin"], env["render"]), 2))
    assert dist["plugin"] < dist["render"] + 0.5
    assert dist["plugin"] < dist["dry"] - 2.0
    assert band_distance_db(env["plugin"], env["render"]) < 1.5


def test_a_restore_while_the_host_ports_still_hold_the_old_values_keeps_the_restored_sound(tmp_path):
    """The bridge in-process, driven as Ardour drives it when a user loads the LV2 user preset while playing
    telephone: restore(), then a run() whose ports still hold telephone's values (Ardour copies the preset's
    values into the port buffers at its next cycle), then the preset's values. The stale values do not
    count as moved (no telephone rebuilt, no overrides); once the ports show the state's values, a control
    the user moves acts again. The state saved afterwards carries the user preset and the target."""
    from resculpt.plugin_host.lv2.bridge import C_PARAM0, C_PRESET, Bridge
    from resculpt.plugin_host.lv2.build import user_preset_state

    cap = 1024
    buf, ctrl, io = np.zeros(2 * cap, np.float32), np.zeros(ports.n_controls(), np.float32), np.zeros(4, np.int32)
    b = Bridge(buf.ctypes.data, cap, ctrl.ctypes.data, ctrl.size, io.ctypes.data, RATE, "test")
    io[0] = cap
    try:
        ctrl[C_PRESET] = ports.PRESETS.index("telephone")
        b.activate()
        b.run()
        assert b.preset == "telephone" and io[2] == 0
        old = ctrl.copy()
        _, values, state = user_preset_state(*write_user_preset_and_target(tmp_path))
        b.state_restore(state)
        ctrl[:] = old  # the host's port buffers, copied into ctrl by the shell before each run()
        b.run()
        ctrl[C_PRESET] = ports.USER_PRESET
        sym = {p.symbol: p.index - ports.ENABLED_PORT for p in ports.param_ports()}
        for s, v in values[1:]:
            ctrl[sym[s]] = v
        b.run()
        assert b.preset == USER["name"] and b.user_preset is not None and b.overrides == {}
        assert b.chain.layout.spectral == ("mask", "match") and b.chain.params.get("mask.reduction_db") == 9.0
        gain = C_PARAM0 + param_order().index("out.gain_db")
        ctrl[gain] = old[gain]  # telephone's value, now a real move
        b.run()
        assert b.overrides == {"out.gain_db": float(old[gain])}
        saved = json.loads(b.state_save())
        assert saved["user_preset"]["name"] == USER["name"] and saved["target"]["kind"] == "target"
        assert io[2] == 0
    finally:
        b.close()


def test_plugin_preset_rejects_a_broken_user_preset_with_a_clear_error(tmp_path, capsys):
    """A preset file that does not validate writes no bundle and says which field is wrong."""
    from resculpt.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**USER, "params": {"mask.reduction": 9.0}}))
    assert main(["plugin", "preset", str(bad), "--lv2-path", str(tmp_path / "lv2")]) == 1
    assert "params.mask.reduction: unknown parameter" in capsys.readouterr().err
    assert not (tmp_path / "lv2").exists() or not any((tmp_path / "lv2").iterdir())


# -- never take the host down ----------------------------------------------------------------------
def _assert_pass_through(y, x, lat=0):
    np.testing.assert_array_equal(y[:, lat:], x[:, : x.shape[1] - lat])


def test_without_libpython_the_plugin_passes_audio_through_and_says_why(clip, tmp_path):
    """A libpython that cannot be opened: the plugin still instantiates, logs the reason, passes through."""
    inp, x = clip
    d = build(tmp_path / "lv2", libpython="/nonexistent/libpython3.11.so.1.0").parent
    r = run_lv2file(d, inp, tmp_path / "out.wav", "-p", "preset:3")
    assert "cannot open /nonexistent/libpython3.11.so.1.0" in r.stdout + r.stderr
    assert "passing audio through" in r.stdout + r.stderr
    _assert_pass_through(read_audio(tmp_path / "out.wav")[0], x)


@pytest.mark.skipif(not Path("/usr/bin/python3.11").exists(), reason="no Debian python3.11 (a Python without resculpt)")
def test_without_the_resculpt_package_the_plugin_passes_audio_through_and_says_why(clip, tmp_path):
    """The plugin built for a Python that has no resculpt installed: import error logged, audio passes."""
    inp, x = clip
    try:
        d = build(tmp_path / "lv2", python="/usr/bin/python3.11").parent
    except Exception as e:  # noqa: BLE001  (the Debian Python lacks its shared lib or headers)
        pytest.skip(f"cannot build for /usr/bin/python3.11: {e}")
    r = run_lv2file(d, inp, tmp_path / "out.wav", "-p", "preset:3")
    assert "cannot import resculpt.plugin_host.lv2.bridge" in r.stdout + r.stderr
    _assert_pass_through(read_audio(tmp_path / "out.wav")[0], x)


def _fault_hook(tmp_path, code: str) -> dict:
    """An environment whose embedded Python runs ``code`` at start-up (sitecustomize on PYTHONPATH, which the
    plugin's interpreter reads like any Python)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": str(hook)}


def test_a_chain_that_cannot_be_built_passes_audio_through(lv2_path, clip, tmp_path):
    """Chain.from_preset raises in instantiate (injected): the reason is logged, audio passes through."""
    inp, x = clip
    env = _fault_hook(tmp_path, "from resculpt.plugin_host.chain import Chain\n"
                                "def refuse(*a, **k):\n"
                                "    raise RuntimeError('injected build failure')\n"
                                "Chain.from_preset = classmethod(refuse)\n")
    r = run_lv2file(lv2_path, inp, tmp_path / "out.wav", "-p", "preset:3", env=env)
    log = r.stdout + r.stderr
    assert "injected build failure" in log and "the chain could not be built; passing audio through" in log
    _assert_pass_through(read_audio(tmp_path / "out.wav")[0], x)


def test_a_chain_that_raises_mid_stream_passes_the_rest_through_latency_aligned(lv2_path, clip, tmp_path):
    """ChainHost.process raises from the 20th call on (injected through sitecustomize on PYTHONPATH, which
    the embedded interpreter reads): the host keeps running, the reason is logged, and from that block on
    the output is the input delayed by the latency the plugin reported, so it stays time-aligned."""
    inp, x = clip
    env = _fault_hook(tmp_path, "from resculpt.plugin_host.host import ChainHost\n"
                                "_orig, _calls = ChainHost.process, [0]\n"
                                "def process(self, block):\n"
                                "    _calls[0] += 1\n"
                                "    if _calls[0] >= 20:\n"
                                "        raise RuntimeError('injected fault')\n"
                                "    return _orig(self, block)\n"
                                "ChainHost.process = process\n")
    block = 512
    r = run_lv2file(lv2_path, inp, tmp_path / "out.wav", "-b", str(block), "-p", f"preset:{preset_index('denoise-live')}",
                    env=env)
    log = r.stdout + r.stderr
    assert "injected fault" in log and "the chain raised; passing audio through" in log
    y, _ = read_audio(tmp_path / "out.wav")
    lat = Chain.from_preset("denoise-live").latency_samples
    k = 19 * block  # the first sample of the failing block
    np.testing.assert_array_equal(y[:, k:], x[:, k - lat : x.shape[1] - lat])
    render_file(inp, tmp_path / "ref.wav", "denoise-live", {}, 4096, progress=False)
    ref, _ = read_audio(tmp_path / "ref.wav")
    np.testing.assert_array_equal(y[:, lat:k], ref[:, : k - lat])


# -- the TTL -------------------------------------------------------------------------------------------
def _lv2info_ports(lv2_path) -> dict[int, dict]:
    out = subprocess.run(["lv2info", ports.URI], env={**os.environ, "LV2_PATH": str(lv2_path)},
                         capture_output=True, text=True, check=True).stdout
    found = {}
    parts = re.split(r"\n\tPort (\d+):\n", out)
    for idx, body in zip(parts[1::2], parts[2::2]):
        d = dict(re.findall(r"^\t\t(Symbol|Name|Minimum|Maximum|Default):\s+(.*)$", body, re.MULTILINE))
        d["body"] = body
        found[int(idx)] = d
    return found


def test_lv2info_shows_every_parameter_port_with_its_range_and_default(lv2_path):
    """Port k of the plugin is parameter k of the DAW order (append-only), with the table's range, default,
    and its scale as port properties (log, toggle, enumeration with the choice names)."""
    found = _lv2info_ports(lv2_path)
    order = param_order()
    assert len(found) == ports.FIRST_PARAM_PORT + len(order)
    assert found[ports.LATENCY_PORT]["Symbol"] == "latency" and "reportsLatency" in found[ports.LATENCY_PORT]["body"]
    assert "lv2core#enabled" in found[ports.ENABLED_PORT]["body"]
    for name in ports.PRESETS:
        assert f'= "{name}"' in found[ports.PRESET_PORT]["body"]
    for p in ports.param_ports():
        d, s = found[p.index], p.spec
        assert p.index == ports.FIRST_PARAM_PORT + order.index(s.id)
        assert d["Symbol"] == s.id.replace(".", "_")
        assert float(d["Minimum"]) == pytest.approx(s.min, rel=1e-6)
        assert float(d["Maximum"]) == pytest.approx(s.max, rel=1e-6)
        assert float(d["Default"]) == pytest.approx(s.default, rel=1e-6, abs=1e-9)
        props = d["body"]
        assert ("port-props#logarithmic" in props) == (s.scale == "log")
        assert ("lv2core#toggled" in props) == (s.scale == "bool")
        assert ("lv2core#enumeration" in props) == (s.scale == "choice")
        for c in s.choices:
            assert f'= "{c}"' in props


def test_every_parameter_port_with_a_unit_declares_it(lv2_path):
    """The TTL's units (read back by sordi as triples): dB, Hz, ms, s, bpm as LV2 units, the others as
    inline units with their symbol."""
    ttl = lv2_path / "resculpt.lv2" / "resculpt.ttl"
    nt = subprocess.run(["sordi", f"file://{ttl}"], capture_output=True, text=True, check=True).stdout
    def triples(pred: str, obj: str) -> dict:
        return dict(re.findall(rf"^(_:\S+) <{pred}> {obj} \.$", nt, re.MULTILINE))

    units = "http://lv2plug.in/ns/extensions/units#"
    unit_of_node = triples(units + "unit", r"(\S+)")
    symbol_of_node = triples("http://lv2plug.in/ns/lv2core#symbol", r'"([^"]+)"')
    inline_symbol = triples(units + "symbol", r'"([^"]+)"')
    unit_by_symbol = {symbol_of_node[n]: u for n, u in unit_of_node.items() if n in symbol_of_node}
    lv2_units = {"dB": "db", "Hz": "hz", "ms": "ms", "s": "s", "bpm": "bpm"}
    checked = 0
    for p in ports.param_ports():
        s = p.spec
        if not s.unit or s.scale in ("bool", "choice"):
            assert p.symbol not in unit_by_symbol
            continue
        u = unit_by_symbol[p.symbol]
        if s.unit in lv2_units:
            assert u == f"<http://lv2plug.in/ns/extensions/units#{lv2_units[s.unit]}>"
        else:
            assert inline_symbol[u] == s.unit
        checked += 1
    assert checked > 50


def test_lv2_validate_passes(lv2_path):
    """lv2_validate (sord_validate against the installed LV2 specs) finds no error in the plugin's TTL."""
    ttls = sorted(str(p) for p in (lv2_path / "resculpt.lv2").glob("*.ttl"))
    r = subprocess.run(["lv2_validate", *ttls], capture_output=True, text=True)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log
    assert re.search(r"Found 0 errors among \d+ files", log), log


def test_every_shipped_preset_is_in_the_preset_enumeration():
    """The preset control's values are append-only: every shipped preset has one."""
    assert {n for n, _ in list_presets()} <= set(ports.PRESETS)
    assert len(set(ports.PRESETS)) == len(ports.PRESETS)


# -- jalv on JACK ----------------------------------------------------------------------------------
@pytest.mark.live
@pytest.mark.skipif(JACKD is None or shutil.which("jalv") is None or shutil.which("jack_lsp") is None,
                    reason="jackd/jalv missing (apt install jackd2 jalv)")
def test_jalv_on_a_dummy_jack_server_reports_the_chain_latency_and_follows_a_preset_change(lv2_path):
    """jalv runs the plugin in JACK's process thread and publishes the latency control output as the
    ports' JACK latency: denoise-live's on every audio port; choosing spectral-freeze while running (built
    on the bridge's worker thread, crossfaded in) moves it to spectral-freeze's."""
    import time

    def wait_latency(env, lat, timeout=60.0) -> str:
        text, t_end = "", time.monotonic() + timeout
        while time.monotonic() < t_end:
            text = subprocess.run(["jack_lsp", "-l", "resculpt-test"], env=env, capture_output=True, text=True).stdout
            if text.count(f"latency = [ {lat} {lat} ]") == 4:
                break
            time.sleep(0.5)
        return text

    srv = JackServer(RATE, 256).start()
    env = {**srv.env(), "LV2_PATH": str(lv2_path)}
    jalv = subprocess.Popen(["jalv", "-n", "resculpt-test", "-x", "-c", f"preset={preset_index('denoise-live')}",
                             ports.URI], env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for preset in ("denoise-live", "spectral-freeze"):
            lat = Chain.from_preset(preset).latency_samples
            if preset != "denoise-live":
                jalv.stdin.write(f"preset = {preset_index(preset)}\n")
                jalv.stdin.flush()
            text = wait_latency(env, lat)
            assert jalv.poll() is None, "jalv exited"
            for p in ("out_l", "out_r"):
                assert re.search(rf"resculpt-test:{p}\n\tport playback latency = \[ {lat} {lat} \]", text), text
            for p in ("in_l", "in_r"):
                assert re.search(rf"resculpt-test:{p}\n\tport playback latency = .*\n\tport capture latency = "
                                 rf"\[ {lat} {lat} \]", text), text
        assert Chain.from_preset("spectral-freeze").latency_samples != Chain.from_preset("denoise-live").latency_samples
    finally:
        stop_process(jalv)
        srv.stop()
