"""The Resculpt panel: a Dear PyGui window that is an OSC client of `resculpt serve` / `live`.

Three layers, so the logic is testable without a display:

* :class:`ServerMirror` - an :class:`~resculpt.plugin_host.osc_client.OscClient`, a receive thread
  that keeps a copy of the server's state (parameter values, presets, the chain's stages, meters,
  spectrum, mask, latency, CPU, last error) and a keep-alive that renews ``/resculpt/subscribe`` and
  pings; ``reachable`` is False when nothing came back for :data:`STALE_S` seconds (the panel then
  shows a banner).
* :class:`PanelLogic` - what every widget does (``on_param``, ``on_reset``, ``on_preset_load`` ...),
  as plain methods that send OSC. A/B compare keeps two parameter snapshots on the panel side.
* :func:`build_ui` / :func:`run_panel` - the widgets, generated from the parameter table (sliders
  with units, combos for choices, checkboxes for switches; double-click resets to the default),
  the current chain's stages first and open in chain order, every other slot collapsed below, and
  the frame loop that copies the mirror's state into them.
"""

from __future__ import annotations

import os
import threading
import time

from resculpt.plugin_host import osc_protocol
from resculpt.plugin_host.catalog import GLOBAL_PARAMS, SLOTS, all_param_specs
from resculpt.plugin_host.osc_client import OscClient

STALE_S = 2.0
LOCAL_HOLD_S = 0.3  # after the panel sets a parameter, older echoes of it are ignored this long
KEEPALIVE_S = 1.0


class ServerMirror:
    """The panel's copy of one OSC server's state at (host, port), kept current by its feedback."""

    def __init__(self, host: str = "127.0.0.1", port: int = osc_protocol.DEFAULT_PORT):
        self.osc = OscClient(port, host)
        self.target = self.osc.target
        self.port = self.osc.port
        self.params: dict[str, float] = {}
        self.display: dict[str, str] = {}
        self.presets: list[str] = []
        self.user_presets: list[str] = []
        self.contexts: list[str] = []
        self.preset = ""
        self.stages: list[str] = []  # the chain's stages in processing order (/resculpt/chain)
        self.meters = [-120.0, -120.0, -120.0, -120.0]
        self.spectrum: list[float] = []
        self.mask: list[float] = []
        self.latency = (0, 0.0)
        self.total_latency_ms: float | None = None  # with device buffering (resculpt live)
        self.cpu = (0.0, 0.0)
        self.last_error = ""
        self.last_info = ""
        self.last_seen = 0.0
        self.received = 0
        self.sent: list[tuple[str, tuple]] = []  # the last messages sent (tests read it)
        self.changed: set[str] = set()
        self.listed: set[str] = set()  # list replies received (PRESET_LIST, CONTEXT_LIST)
        self._local_t: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- sending ---------------------------------------------------------------------------------
    def set_param(self, pid: str, value: float) -> None:
        """Send /resculpt/param/<pid> and hold the local value against stale echoes for a moment."""
        self.params[pid] = value
        self._local_t[pid] = time.monotonic()
        self.send(osc_protocol.param_address(pid), float(value))

    def send(self, address: str, *args) -> None:
        self.sent.append((address, args))
        del self.sent[:-200]
        try:
            self.osc.send(address, *args)
        except OSError as e:
            self.last_error = f"cannot send to {self.target[0]}:{self.target[1]}: {e}"

    # -- receiving -------------------------------------------------------------------------------
    def handle(self, address: str, args: list) -> None:
        self.last_seen = time.monotonic()
        self.received += 1
        pid = osc_protocol.param_id(address)
        if pid is not None and len(args) >= 1:
            t = self._local_t.get(pid)
            if (
                t is not None
                and time.monotonic() - t < LOCAL_HOLD_S
                and float(args[0]) != self.params.get(pid)
            ):
                return  # an echo older than what this panel just set: keep the local value
            self.params[pid] = float(args[0])
            if len(args) >= 3:
                self.display[pid] = str(args[2])
            self.changed.add(pid)
        elif address == osc_protocol.METERS and len(args) == 4:
            self.meters = [float(a) for a in args]
        elif address == osc_protocol.SPECTRUM:
            self.spectrum = [float(a) for a in args]
        elif address == osc_protocol.MASK:
            self.mask = [float(a) for a in args]
        elif address == osc_protocol.LATENCY and len(args) >= 2:
            self.latency = (int(args[0]), float(args[1]))
            self.total_latency_ms = float(args[3]) if len(args) >= 4 else None
        elif address == osc_protocol.CPU and len(args) == 2:
            self.cpu = (float(args[0]), float(args[1]))
        elif address == osc_protocol.PRESET_LIST:
            self.presets = [str(a) for a in args]
            self.listed.add(address)
        elif address == osc_protocol.PRESET_USER:
            self.user_presets = [str(a) for a in args]
        elif address == osc_protocol.PRESET_CURRENT and args:
            self.preset = str(args[0])
        elif address == osc_protocol.CHAIN:
            self.stages = [str(a) for a in args]
        elif address == osc_protocol.CONTEXT_LIST:
            self.contexts = [str(a) for a in args]
            self.listed.add(address)
        elif address == osc_protocol.ERROR and args:
            self.last_error = str(args[0])
        elif address in (osc_protocol.PRESET_SAVED, osc_protocol.PRESET_RENAMED, osc_protocol.PROFILE_APPLIED, osc_protocol.CONTEXT):
            self.last_info = f"{address.rsplit('/', 1)[1]}: {' '.join(str(a) for a in args)}"
            if address != osc_protocol.CONTEXT:
                self.send(osc_protocol.PRESET_LIST)

    def poll(self, timeout: float = 0.0) -> int:
        """Read and handle what has arrived (the receive thread does this; tests may call it)."""
        msgs = self.osc.receive(timeout)
        for address, args in msgs:
            self.handle(address, args)
        return len(msgs)

    def _loop(self) -> None:
        nxt = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= nxt:
                self.send(osc_protocol.SUBSCRIBE, self.port)
                self.send(osc_protocol.PING)
                for lst in (osc_protocol.PRESET_LIST, osc_protocol.CONTEXT_LIST):  # until answered (the server may start later)
                    if lst not in self.listed:
                        self.send(lst)
                nxt = now + KEEPALIVE_S
            self.poll(0.05)

    def connect(self) -> ServerMirror:
        """Start the keep-alive / receive thread and ask for the full state (subscribing makes the
        server send a dump; the lists are asked for until they arrive)."""
        self.send(osc_protocol.DUMP)
        t = threading.Thread(target=self._loop, name="resculpt-panel-osc", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    @property
    def reachable(self) -> bool:
        return self.last_seen > 0 and time.monotonic() - self.last_seen < STALE_S

    def wait_until(self, pred, timeout: float = 2.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            if not self._threads:
                self.poll(0.02)
            else:
                time.sleep(0.01)
        return pred()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1.0)
        try:
            self.send(osc_protocol.UNSUBSCRIBE, self.port)
        finally:
            self.osc.close()


class PanelLogic:
    """What the widgets do, as methods that send OSC (no Dear PyGui here)."""

    def __init__(self, client: ServerMirror, specs=None):
        self.client = client
        self.specs = {s.id: s for s in (specs or all_param_specs())}
        self.ab = {"A": None, "B": None}
        self.ab_current = "A"

    def on_param(self, pid: str, value) -> None:
        s = self.specs[pid]
        if s.scale == "choice" and isinstance(value, str):
            value = s.choices.index(value)
        self.client.set_param(pid, s.clamp(float(value)))

    def on_reset(self, pid: str) -> float:
        d = self.specs[pid].default
        self.on_param(pid, d)
        return d

    def on_bypass(self, on: bool) -> None:
        self.client.set_param("bypass", 1.0 if on else 0.0)

    def on_mix(self, v: float) -> None:
        self.client.set_param("mix", min(max(float(v), 0.0), 1.0))

    def on_preset_load(self, name: str) -> None:
        if name:
            self.client.send(osc_protocol.PRESET_LOAD, name)

    def on_preset_save(self, name: str) -> None:
        if name.strip():
            self.client.send(osc_protocol.PRESET_SAVE, name.strip())

    def on_preset_rename(self, old: str, new: str) -> None:
        if old and new.strip():
            self.client.send(osc_protocol.PRESET_RENAME, old, new.strip())

    def on_describe(self, text: str) -> None:
        if text.strip():
            self.client.send(osc_protocol.PROFILE_DESCRIBE, text.strip())

    def on_reference(self, path: str) -> None:
        if path.strip():
            self.client.send(osc_protocol.PROFILE_REFERENCE, path.strip())

    def on_target_file(self, name_or_path: str) -> None:
        if name_or_path.strip():
            self.client.send(osc_protocol.PROFILE_LOAD, name_or_path.strip())

    def on_input_profile(self, path: str) -> None:
        """A fingerprint of the input taken beforehand (held by the target stages); empty: learn the input again."""
        if path.strip():
            self.client.send(osc_protocol.PROFILE_INPUT, path.strip())
        else:
            self.client.send(osc_protocol.PROFILE_INPUT)

    def on_context(self, name: str) -> None:
        if name:
            self.client.send(osc_protocol.CONTEXT, name)

    def stage_sections(self) -> tuple[list[str], list[str]]:
        """(the chain's stages in processing order, every other catalog slot in catalog order)."""
        in_chain = [n for n in self.client.stages if n in SLOTS]
        return in_chain, [n for n in SLOTS if n not in in_chain]

    def ab_select(self, which: str) -> None:
        """A/B compare: remember the current sound as the slot being left, recall the other."""
        if which == self.ab_current:
            return
        self.ab[self.ab_current] = dict(self.client.params)
        self.ab_current = which
        snap = self.ab.get(which)
        if snap:
            for pid, v in snap.items():
                if pid in self.specs and self.client.params.get(pid) != v:
                    self.on_param(pid, v)

    def status(self) -> str:
        c = self.client
        if not c.reachable:
            return (f"SERVER NOT REACHABLE at udp://{c.target[0]}:{c.target[1]} - "
                    "start `resculpt serve` or `resculpt live`")
        return (
            f"preset {c.preset or '-'}   latency {c.latency[0]} samples ({c.latency[1]:.1f} ms"
            + (f", {c.total_latency_ms:.1f} ms with the device" if c.total_latency_ms is not None else "")
            + ")   "
            f"CPU {100 * c.cpu[0]:.1f} % (peak {100 * c.cpu[1]:.1f} %)"
        )


# -- Dear PyGui --------------------------------------------------------------------------------------
def _fmt(s) -> str:
    unit = s.unit.replace("%", "%%")
    return f"%.3g {unit}".strip() if s.scale != "log" else f"%.4g {unit}".strip()


def build_ui(logic: PanelLogic, width: int = 1100, height: int = 760) -> None:
    """Create every widget (needs dpg.create_context(); no viewport needed)."""
    import dearpygui.dearpygui as dpg

    c = logic.client

    def param_cb(sender, value, user_data):
        logic.on_param(user_data, value)

    def reset_cb(sender, app_data, user_data):
        v = logic.on_reset(user_data)
        s = logic.specs[user_data]
        dpg.set_value(
            f"param:{user_data}",
            s.choices[int(v)] if s.scale == "choice" else (bool(v) if s.scale == "bool" else v),
        )

    def add_param(s):
        tag = f"param:{s.id}"
        v = c.params.get(s.id, s.default)
        if s.scale == "bool":
            dpg.add_checkbox(label=s.id, tag=tag, default_value=v >= 0.5, callback=param_cb, user_data=s.id)
        elif s.scale == "choice":
            dpg.add_combo(
                list(s.choices),
                label=s.id,
                tag=tag,
                default_value=s.choices[int(v)],
                width=220,
                callback=param_cb,
                user_data=s.id,
            )
        else:
            dpg.add_slider_float(
                label=s.id,
                tag=tag,
                default_value=v,
                min_value=s.min,
                max_value=s.max,
                format=_fmt(s),
                width=260,
                callback=param_cb,
                user_data=s.id,
            )
        with dpg.tooltip(tag):
            dpg.add_text(
                f"{s.doc}\n{s.min:g} .. {s.max:g} {s.unit} ({s.scale}); double-click resets to {s.default:g}"
            )
        with dpg.item_handler_registry() as reg:
            dpg.add_item_double_clicked_handler(callback=reset_cb, user_data=s.id)
        dpg.bind_item_handler_registry(tag, reg)

    with dpg.window(tag="main", label="Resculpt", width=width, height=height, no_close=True):
        dpg.add_text("", tag="banner", color=(255, 80, 80))
        dpg.add_text("", tag="status")
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="bypass", tag="bypass", callback=lambda s, a, u=None: logic.on_bypass(a))
            dpg.add_slider_float(
                label="mix",
                tag="mix",
                default_value=1.0,
                min_value=0.0,
                max_value=1.0,
                width=160,
                callback=lambda s, a, u=None: logic.on_mix(a),
            )
            dpg.add_radio_button(
                ["A", "B"],
                tag="ab",
                horizontal=True,
                default_value="A",
                callback=lambda s, a, u=None: logic.ab_select(a),
            )
            dpg.add_text("", tag="info", color=(150, 200, 255))
        with dpg.group(horizontal=True):
            with dpg.child_window(width=300, height=-1):
                dpg.add_text("Presets")
                dpg.add_listbox([], tag="presets", num_items=8, width=-1)
                with dpg.group(horizontal=True):
                    dpg.add_button(
                        label="Load", callback=lambda *_: logic.on_preset_load(dpg.get_value("presets"))
                    )
                    dpg.add_button(label="Refresh", callback=lambda *_: c.send(osc_protocol.PRESET_LIST))
                dpg.add_input_text(tag="preset_name", hint="name", width=-1)
                with dpg.group(horizontal=True):
                    dpg.add_button(
                        label="Save as",
                        callback=lambda *_: logic.on_preset_save(dpg.get_value("preset_name")),
                    )
                    dpg.add_button(
                        label="Rename selected",
                        callback=lambda *_: logic.on_preset_rename(
                            dpg.get_value("presets"), dpg.get_value("preset_name")
                        ),
                    )
                dpg.add_separator()
                dpg.add_text("Describe the sound")
                dpg.add_input_text(
                    tag="describe",
                    hint="more bass, clearer highs",
                    width=-1,
                    on_enter=True,
                    callback=lambda s, a, u=None: logic.on_describe(a),
                )
                dpg.add_button(
                    label="Apply", callback=lambda *_: logic.on_describe(dpg.get_value("describe"))
                )
                dpg.add_text("Reference clip")
                dpg.add_input_text(tag="reference", hint="/path/to/clip.wav", width=-1)
                dpg.add_button(
                    label="Match reference",
                    callback=lambda *_: logic.on_reference(dpg.get_value("reference")),
                )
                dpg.add_text("Target profile")
                dpg.add_input_text(tag="target_file", hint="wideband-speech or /path/to/target.json", width=-1)
                dpg.add_button(
                    label="Move toward target",
                    callback=lambda *_: logic.on_target_file(dpg.get_value("target_file")),
                )
                dpg.add_text("Input profile (a take of you)")
                dpg.add_input_text(tag="input_profile", hint="/path/to/me.json (empty: learn live)", width=-1)
                dpg.add_button(
                    label="Hold input estimate",
                    callback=lambda *_: logic.on_input_profile(dpg.get_value("input_profile")),
                )
                dpg.add_text("Context")
                dpg.add_combo([], tag="context", width=-1, callback=lambda s, a, u=None: logic.on_context(a))
                dpg.add_separator()
                dpg.add_text("", tag="error", color=(255, 150, 80), wrap=280)
            with dpg.child_window(width=-1, height=-1):
                with dpg.group(horizontal=True):
                    with dpg.group():
                        dpg.add_text("in")
                        dpg.add_progress_bar(tag="in_meter", width=220, overlay="-inf dBFS")
                    with dpg.group():
                        dpg.add_text("out")
                        dpg.add_progress_bar(tag="out_meter", width=220, overlay="-inf dBFS")
                with dpg.plot(label="Output spectrum and mask", height=260, width=-1, tag="plot"):
                    dpg.add_plot_legend()
                    dpg.add_plot_axis(dpg.mvXAxis, label="Hz", tag="xaxis", scale=dpg.mvPlotScale_Log10)
                    with dpg.plot_axis(dpg.mvYAxis, label="dBFS", tag="yaxis"):
                        dpg.add_line_series([], [], label="spectrum (dBFS)", tag="spec_series")
                    with dpg.plot_axis(dpg.mvYAxis2, label="mask |out|/|in|", tag="yaxis2", opposite=True):
                        dpg.add_line_series([], [], label="mask", tag="mask_series")
                    dpg.set_axis_limits("yaxis", -100.0, 10.0)
                    dpg.set_axis_limits("yaxis2", 0.0, 1.5)
                    dpg.set_axis_limits("xaxis", 30.0, 20000.0)
                with dpg.child_window(height=-1, width=-1, tag="stages"):
                    with dpg.collapsing_header(label="global", default_open=True):
                        for s in GLOBAL_PARAMS:
                            if s.id not in ("mix", "bypass"):
                                add_param(s)
                    dpg.add_text("stages of this preset, in processing order", tag="stages_note", color=(140, 140, 140))
                    for name, slot in SLOTS.items():
                        with dpg.collapsing_header(label=f"{name}: {slot.doc}", tag=f"stage:{name}", default_open=False):
                            for s in slot.params:
                                add_param(s)
                    dpg.add_text("other stages (not in this preset)", tag="others_note", color=(140, 140, 140))
    logic.shown_stages = None


def band_centers(n: int, fmin: float = 30.0, fmax: float = 20000.0) -> list[float]:
    """Centre frequencies of the server's n log-spaced feedback bands (Meters' defaults at 48 kHz)."""
    import numpy as np

    e = np.geomspace(fmin, fmax, n + 1)
    return [float(v) for v in np.sqrt(e[:-1] * e[1:])]


def _db_bar(v: float) -> float:
    return min(max((v + 60.0) / 60.0, 0.0), 1.0)


def update_ui(logic: PanelLogic) -> None:
    """Copy the client's state into the widgets (every frame, on the UI thread)."""
    import dearpygui.dearpygui as dpg

    c = logic.client
    dpg.set_value("banner", "" if c.reachable else logic.status())
    dpg.set_value("status", logic.status() if c.reachable else "")
    dpg.set_value("error", c.last_error)
    dpg.set_value("info", c.last_info)
    if c.presets != dpg.get_item_configuration("presets")["items"]:
        dpg.configure_item("presets", items=c.presets)
    if c.contexts and c.contexts != dpg.get_item_configuration("context")["items"]:
        dpg.configure_item("context", items=c.contexts)
    for k, tag in ((0, "in_meter"), (2, "out_meter")):
        pk, rms = c.meters[k], c.meters[k + 1]
        dpg.set_value(tag, _db_bar(rms))
        dpg.configure_item(tag, overlay=f"peak {pk:.1f} / rms {rms:.1f} dBFS")
    if c.spectrum:
        xs = band_centers(len(c.spectrum))
        dpg.set_value("spec_series", [xs, c.spectrum])
        if len(c.mask) == len(xs):
            dpg.set_value("mask_series", [xs, c.mask])
    if (
        c.preset
        and c.preset in c.presets
        and dpg.get_value("presets") != c.preset
        and not dpg.is_item_active("presets")
    ):
        if getattr(logic, "_shown_preset", None) != c.preset:
            logic._shown_preset = c.preset
            dpg.set_value("presets", c.preset)
    if c.stages != logic.shown_stages:
        _show_stages(logic, dpg)
    changed, c.changed = c.changed, set()
    for pid in changed:
        v = c.params[pid]
        if pid == "bypass":
            dpg.set_value("bypass", v >= 0.5)
        if pid == "mix" and not dpg.is_item_active("mix"):
            dpg.set_value("mix", v)
        tag = f"param:{pid}"
        s = logic.specs.get(pid)
        if s is None or not dpg.does_item_exist(tag) or dpg.is_item_active(tag):
            continue
        dpg.set_value(
            tag, s.choices[int(v)] if s.scale == "choice" else (v >= 0.5 if s.scale == "bool" else v)
        )


def have_display() -> bool:
    """Dear PyGui's create_viewport aborts the process without a display: check first."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _show_stages(logic: PanelLogic, dpg) -> None:
    """Re-order the slot headers: the chain's stages first, open, in chain order; the rest collapsed."""
    in_chain, others = logic.stage_sections()
    logic.shown_stages = list(logic.client.stages)
    dpg.move_item("stages_note", parent="stages")
    for name in in_chain:
        dpg.move_item(f"stage:{name}", parent="stages")
        dpg.set_value(f"stage:{name}", True)
    dpg.move_item("others_note", parent="stages")
    for name in others:
        dpg.move_item(f"stage:{name}", parent="stages")
        dpg.set_value(f"stage:{name}", False)


def _start_local_server(preset: str, source):
    from pathlib import Path

    from resculpt.plugin_host.feeder import BlockFeeder
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.osc import OscServer

    if source is None:
        ex = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"
        source = ex if ex.exists() else None
    chain = Chain.from_preset(preset, sample_rate=48000, channels=2, max_block=1024)
    feeder = BlockFeeder(chain, source, block=256).start()
    srv = OscServer(chain, port=0).start()
    return chain, feeder, srv


def run_panel(a) -> int:
    """`resculpt ui`: open the panel (with --start-server, on a chain and OSC server started in this
    process); --screenshot PATH renders
    --frames frames, writes a PNG and exits."""
    import sys

    if not have_display():
        print(
            "resculpt: error: the panel needs a display (DISPLAY is not set); under a headless machine "
            "run it inside `xvfb-run` or start `Xvfb :99` and set DISPLAY=:99",
            file=sys.stderr,
        )
        return 1
    import dearpygui.dearpygui as dpg

    local = None  # (chain, feeder, server) started here
    host, port = a.host, a.port
    if a.start_server:
        local = _start_local_server(a.preset, a.input)
        host, port = "127.0.0.1", local[2].port
    client = ServerMirror(host, port).connect()
    logic = PanelLogic(client)
    dpg.create_context()
    try:
        build_ui(logic)
        dpg.create_viewport(title="Resculpt", width=1100, height=760)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        dpg.set_primary_window("main", True)
        frames = 0
        shot = getattr(a, "screenshot", None)
        written = threading.Event()
        while dpg.is_dearpygui_running():
            update_ui(logic)
            dpg.render_dearpygui_frame()
            frames += 1
            if shot:
                if frames == a.frames:
                    dpg.output_frame_buffer(file=shot, callback=lambda *_: written.set())
                if (
                    frames > a.frames
                    and (written.is_set() or os.path.exists(shot))
                    or frames > a.frames + 300
                ):
                    break
                time.sleep(1.0 / 60)
        if shot:
            for _ in range(50):  # let the PNG writer finish
                if os.path.exists(shot) and os.path.getsize(shot) > 0:
                    break
                dpg.render_dearpygui_frame()
                time.sleep(0.02)
            print(f"screenshot: {shot}")
    finally:
        dpg.destroy_context()
        client.close()
        if local is not None:
            local[1].stop()
            local[2].stop()
    return 0


__all__ = ["ServerMirror", "PanelLogic", "build_ui", "have_display", "run_panel", "update_ui"]
