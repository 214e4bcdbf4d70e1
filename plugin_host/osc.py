"""OSC control surface: a UDP server next to a running chain, its address space and feedback.

Threads: one receive thread parses and handles every datagram in arrival order (parameter sets
go straight into the chain's :class:`~resculpt.dsp.params.ParamTable`: one float store, picked
up by the audio thread at its next block, then smoothed); one feedback thread sends meters,
spectrum, mask and parameter echoes to subscribers at ~30 Hz. Neither ever touches audio buffers.

Robustness: every datagram is handled inside ``try``; a malformed packet, an unknown address, a
wrong type or count, a NaN, an out-of-range value, an unknown preset or an unreadable file gets a
reply on ``/resculpt/error <message> <address>`` to the sender, one (rate-limited) log line, and
changes nothing. Packets above :data:`MAX_PACKET` bytes are refused before parsing; a bundle is
handled up to :data:`MAX_MESSAGES` messages (time tags are ignored: everything runs on arrival).

Security: the server binds loopback by default. Any other bind needs a shared ``secret``
(senders authenticate once with ``/resculpt/auth <secret>``), an ``allow`` list of addresses or
networks, or an explicit ``allow_insecure=True``; otherwise :class:`OscError` is raised.
Loopback senders are always accepted.

The address space is generated from the parameter table (:func:`address_space`); ``resculpt
osc-docs`` prints it as Markdown (``docs/osc.md``).
"""

from __future__ import annotations

import hmac
import importlib
import ipaddress
import logging
import math
import os
import re
import socket
import threading
import time
from pathlib import Path

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from resculpt.dsp.params import ParamError

from .meters import Meters

log = logging.getLogger("resculpt.osc")

PREFIX = "/resculpt"
DEFAULT_PORT = 9010
MAX_PACKET = 8192  # bytes; anything larger is refused unparsed
MAX_MESSAGES = 64  # per bundle
MAX_SUBSCRIBERS = 8
SUBSCRIPTION_S = 30.0  # a subscription lapses unless renewed (the panel renews every few seconds)
FEEDBACK_HZ = 30.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}$")


class OscError(OSError):
    """The server could not be started as asked (bind refused, port in use, ...). An OSError, so
    callers that treat "cannot open the socket" as optional (``resculpt live``) catch it too."""


class BadMessage(ValueError):
    """A message was rejected; the text is sent back on /resculpt/error."""


# -- optional handlers (profiles, contexts) ------------------------------------------------------
# name -> (module, attribute). Resolved lazily at call time; register_hook() overrides. Until the
# profile modules exist, the addresses answer "/resculpt/error profiles not available in this build".
# name -> (module that must be importable, adapter). Resolved lazily at call time, so the profile
# modules (another branch) are picked up as soon as they are installed; register_hook() overrides
# any of them. Until they exist the addresses answer
# "/resculpt/error profiles not available in this build".
#
#   describe(chain, text) -> dict | None        resculpt.dsp.descriptors.describe(text) -> delta Profile,
#                                               published with chain.set_target (adds the "match" stage)
#   reference(chain, path) -> dict | None       resculpt.dsp.profile.from_reference(x, sr, name), same way
#   context(chain, name) -> Any                 resculpt.plugin_host.contexts.apply_context(chain, name)
#   contexts() -> list[str]                     sorted(resculpt.plugin_host.contexts.load_contexts())
#   adjustment_log(chain) -> Any                user_profile.AdjustmentLog().attach(chain) (detached on stop)
def _set_match_target(chain, target) -> dict:
    import dataclasses

    if not hasattr(chain, "set_target"):
        raise BadMessage(PROFILES_UNAVAILABLE)
    if "match" not in chain.layout.spectral:  # as contexts.apply_context does: add the match stage
        chain.set_layout(
            dataclasses.replace(chain.layout, spectral=tuple(chain.layout.spectral) + ("match",))
        )
    chain.set_target(target)
    return {}


def _describe(chain, text):
    from resculpt.dsp.descriptors import describe

    return _set_match_target(chain, describe(text))


def _reference(chain, path):
    from resculpt.dsp.profile import from_reference

    from .render import read_audio

    try:
        x, sr = read_audio(Path(path))
    except Exception as e:  # RenderError, soundfile errors: an unreadable clip
        raise BadMessage(f"cannot read reference clip {path}: {e}") from None
    return _set_match_target(chain, from_reference(x, sr, Path(path).stem))


def _context(chain, name):
    from resculpt.plugin_host.contexts import apply_context

    return apply_context(chain, name)


def _contexts():
    from resculpt.plugin_host.contexts import load_contexts

    return sorted(load_contexts())


def _adjustment_log(chain):
    from resculpt.plugin_host.user_profile import AdjustmentLog

    return AdjustmentLog().attach(chain)


HOOK_SOURCES = {
    "describe": ("resculpt.dsp.descriptors", _describe),
    "reference": ("resculpt.dsp.profile", _reference),
    "context": ("resculpt.plugin_host.contexts", _context),
    "contexts": ("resculpt.plugin_host.contexts", _contexts),
    "adjustment_log": ("resculpt.plugin_host.user_profile", _adjustment_log),
}
_HOOKS: dict = {}
PROFILES_UNAVAILABLE = "profiles not available in this build"


def register_hook(name: str, fn) -> None:
    """Install (or with ``fn=None`` remove) an optional handler by name (see HOOK_SOURCES)."""
    if name not in HOOK_SOURCES:
        raise KeyError(f"unknown hook {name!r}; known: {sorted(HOOK_SOURCES)}")
    if fn is None:
        _HOOKS.pop(name, None)
    else:
        _HOOKS[name] = fn


def resolve_hook(name: str):
    """The callable for hook ``name``: the registered one, else the default adapter when its module
    imports, else None (the address then answers PROFILES_UNAVAILABLE)."""
    fn = _HOOKS.get(name)
    if fn is not None:
        return fn
    mod, adapter = HOOK_SOURCES[name]
    try:
        importlib.import_module(mod)
    except ImportError:
        return None
    return adapter


# -- address space -------------------------------------------------------------------------------
FIXED_ADDRESSES = (
    ("/resculpt/ping", "", "answers /resculpt/pong"),
    (
        "/resculpt/bypass",
        "f or i 0..1",
        "crossfade to the latency-aligned dry signal (same as /resculpt/param/bypass)",
    ),
    ("/resculpt/mix", "f 0..1", "wet/dry mix (same as /resculpt/param/mix)"),
    (
        "/resculpt/dump",
        "",
        "replies every /resculpt/param/<id>, /resculpt/preset/current and /resculpt/latency",
    ),
    (
        "/resculpt/preset/load",
        "s name",
        "load a shipped or user preset; replies /resculpt/preset/current <name>",
    ),
    (
        "/resculpt/preset/save",
        "s name",
        "save the current sound as a user preset; replies /resculpt/preset/saved <name> <path>",
    ),
    (
        "/resculpt/preset/rename",
        "s old, s new",
        "rename a user preset; replies /resculpt/preset/renamed <old> <new>",
    ),
    (
        "/resculpt/preset/list",
        "",
        "replies /resculpt/preset/list <names...> and /resculpt/preset/user <user names...>",
    ),
    (
        "/resculpt/profile/describe",
        "s text",
        'apply a descriptor ("more bass, clearer highs"); needs the profile module',
    ),
    ("/resculpt/profile/reference", "s path", "match a reference clip; needs the profile module"),
    ("/resculpt/context", "s name", "switch listening context; needs the profile module"),
    ("/resculpt/context/list", "", "replies /resculpt/context/list <names...>; needs the profile module"),
    (
        "/resculpt/subscribe",
        "i port",
        "send feedback (~30 Hz) to the sender's address at <port> for 30 s; renew to keep it",
    ),
    (
        "/resculpt/unsubscribe",
        "[i port]",
        "stop feedback to the sender (at <port>, or every port of the sender)",
    ),
    ("/resculpt/auth", "s secret", "authorise the sender's address (non-loopback binds with a secret)"),
)

FEEDBACK_ADDRESSES = (
    (
        "/resculpt/meters",
        "f in_peak_db, f in_rms_db, f out_peak_db, f out_rms_db",
        "levels since the last report, dBFS",
    ),
    (
        "/resculpt/latency",
        "i samples, f ms [, i total_samples, f total_ms]",
        "chain latency (plus device buffering under `resculpt live`)",
    ),
    ("/resculpt/cpu", "f load, f peak", "chain time / block period, mean and peak since the last report"),
    (
        "/resculpt/live",
        "i xruns, i overruns, f cb_p99_ms, f load_p99, f cb_max_ms, i reconnects",
        "under `resculpt live` only: audio callback health (p99 over the last 4096 callbacks, max and counts "
        "since start; load = callback time / period)",
    ),
    ("/resculpt/spectrum", "64 x f", "output spectrum, dBFS per log-spaced band (30 Hz .. 20 kHz)"),
    ("/resculpt/mask", "64 x f", "|processed| / |input| per band (1 = unchanged)"),
    ("/resculpt/param/<id>", "f value, s unit, s display", "sent when a parameter changes (from any client)"),
    ("/resculpt/preset/current", "s name", "sent when a preset is loaded"),
)


def address_space(table) -> list[tuple[str, str, str]]:
    """(address, arguments, description) for every address the server handles, from ``table``."""
    rows = list(FIXED_ADDRESSES)
    for s in table.specs:
        rng = f"{s.min:g}..{s.max:g} {s.unit}".strip()
        if s.choices:
            rng += " (" + ", ".join(f"{i}={c}" for i, c in enumerate(s.choices)) + ")"
        base = f"{PREFIX}/param/{s.id}"
        rows.append((base, f"f {rng}", f"{s.doc} [{s.scale}, smoothed {s.smoothing_ms:g} ms]"))
        rows.append((base + "/norm", "f 0..1", f"normalised ({'log' if s.scale == 'log' else 'linear'} map)"))
        rows.append((base + "/get", "", f"replies {base} <value> <unit> <display>"))
    return rows


def osc_docs_markdown(table=None) -> str:
    """docs/osc.md: the whole address space (generated; `resculpt osc-docs > docs/osc.md`)."""
    from . import catalog
    from .daw import param_order

    if table is None:
        from resculpt.dsp.params import ParamTable

        table = ParamTable(catalog.all_param_specs())
    lines = [
        "# OSC address space",
        "",
        "<!-- Generated by `resculpt osc-docs > docs/osc.md` from the parameter table; do not edit. -->",
        "",
        f"`resculpt serve` (and `resculpt live`) listen on UDP `127.0.0.1:{DEFAULT_PORT}` by default. "
        "Replies go to the sender's address and port. Any rejected message gets "
        "`/resculpt/error <message> <address>` back and changes nothing.",
        "",
        "Numbers may be sent as int or float. Values are in the parameter's native unit; out-of-range "
        "values and NaN are refused (use `/norm` for 0..1). Parameter changes reach the audio path at the "
        "next block and are smoothed over the parameter's ramp.",
        "",
        "## Control",
        "",
        "| address | arguments | what it does |",
        "|---|---|---|",
    ]
    for a, args, doc in FIXED_ADDRESSES:
        lines.append(f"| `{a}` | {args or '-'} | {doc} |")
    lines += ["", "## Parameters", "", "| address | arguments | what it does |", "|---|---|---|"]
    for a, args, doc in address_space(table)[len(FIXED_ADDRESSES) :]:
        lines.append(f"| `{a}` | {args or '-'} | {doc} |")
    lines += [
        "",
        "## Feedback (to subscribers, ~30 Hz)",
        "",
        "| address | arguments | meaning |",
        "|---|---|---|",
    ]
    for a, args, doc in FEEDBACK_ADDRESSES:
        lines.append(f"| `{a}` | {args} | {doc} |")
    lines += [
        "",
        "## DAW shapes",
        "",
        "Also accepted (see `docs/daw/`): REAPER `/track/<t>/fx/<f>/fxparam/<k>/value <0..1>` and "
        "`/fx/<f>/fxparam/<k>/value <0..1>` (linear over the parameter range, as the generated JSFX "
        "sliders), Ardour `/strip/plugin/parameter <ssid> <piid> <k> <value>` (native units); `k` is "
        "1-based in this order (append-only: `plugin_host/daw/order.py`):",
        "",
    ]
    for k, pid in enumerate(param_order(), 1):
        lines.append(f"{k}. `{pid}`")
    lines.append("")
    return "\n".join(lines)


# -- helpers -------------------------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(args, addr: str, what: str = "a number") -> float:
    if len(args) != 1:
        raise BadMessage(f"{addr}: expected 1 argument ({what}), got {len(args)}")
    v = args[0]
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if not _is_number(v):
        raise BadMessage(f"{addr}: expected {what}, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise BadMessage(f"{addr}: value must be finite, got {v}")
    return v


def _string(args, addr: str, what: str, n: int = 1) -> list[str]:
    if len(args) != n:
        raise BadMessage(f"{addr}: expected {n} string argument(s) ({what}), got {len(args)}")
    for a in args:
        if not isinstance(a, str):
            raise BadMessage(f"{addr}: expected a string ({what}), got {type(a).__name__}")
        if not a.strip():
            raise BadMessage(f"{addr}: {what} is empty")
    return [a.strip() for a in args]


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%")[0]).is_loopback
    except ValueError:
        return False


def build_message(address: str, args=()) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(int(a), "i")
        elif isinstance(a, int):
            b.add_arg(a, "i")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        else:
            b.add_arg(str(a), "s")
    return b.build().dgram


class _RateLimitedLog:
    """At most ``n`` log lines per ``window`` seconds; then one line counting the suppressed ones."""

    def __init__(self, n: int = 20, window: float = 5.0):
        self.n, self.window = n, window
        self.t0 = 0.0
        self.count = 0
        self.suppressed = 0

    def __call__(self, level: int, msg: str) -> None:
        now = time.monotonic()
        if now - self.t0 > self.window:
            if self.suppressed:
                log.warning("osc: %d more log lines suppressed", self.suppressed)
            self.t0, self.count, self.suppressed = now, 0, 0
        if self.count < self.n:
            self.count += 1
            log.log(level, msg)
        else:
            self.suppressed += 1


# -- the server ----------------------------------------------------------------------------------
class OscServer:
    """OSC over UDP for one chain.

    Args:
        chain: the :class:`~resculpt.plugin_host.host.Chain` (its parameter table is the target).
        host, port: where to bind; ``port=0`` picks a free port (see :attr:`port`).
        secret: shared secret for non-loopback senders (``/resculpt/auth <secret>``).
        allow: addresses or networks ("192.168.1.20", "10.0.0.0/24") accepted without a secret.
        meters: a :class:`Meters` already attached to the chain; by default the chain's, or a new
            one that is attached here.
        allow_insecure: bind beyond loopback with neither secret nor allow-list (explicit opt-in).
        feedback_hz: feedback rate to subscribers.

    ``start()`` binds and runs the receive and feedback threads; ``stop()`` ends them.
    """

    def __init__(
        self,
        chain,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        secret: str | None = None,
        allow=None,
        meters: Meters | None = None,
        allow_insecure: bool = False,
        feedback_hz: float = FEEDBACK_HZ,
    ):
        self.chain = chain
        self.host = host
        self._req_port = int(port)
        if not 0 <= self._req_port <= 65535:
            raise OscError(f"port {port} is out of range 0..65535")
        self.secret = secret or None
        try:
            self.allow = [ipaddress.ip_network(a, strict=False) for a in (allow or [])]
        except ValueError as e:
            raise OscError(f"allow-list: {e}") from None
        self.allow_insecure = allow_insecure
        if meters is None:
            meters = chain.meters if getattr(chain, "meters", None) is not None else Meters()
        if getattr(chain, "meters", None) is not meters:
            chain.attach_meters(meters)
        self.meters = meters
        self.feedback_hz = float(feedback_hz)
        self.port: int | None = None
        self.address: tuple | None = None
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._authorised: set[str] = set()
        self._subs: dict[tuple, float] = {}
        self._dirty: set[str] = set()
        self._preset_dirty = False
        self._reaper_names: dict[tuple, str] = {}
        self._log = _RateLimitedLog()
        self.stats = {"packets": 0, "messages": 0, "errors": 0, "feedback_frames": 0}
        self.last_error: str | None = None
        self.adjustment_log = None  # what the adjustment_log hook returned (detached on stop)
        self._routes = {
            "/resculpt/ping": self._h_ping,
            "/resculpt/bypass": self._h_bypass,
            "/resculpt/mix": self._h_mix,
            "/resculpt/dump": self._h_dump,
            "/resculpt/preset/load": self._h_preset_load,
            "/resculpt/preset/save": self._h_preset_save,
            "/resculpt/preset/rename": self._h_preset_rename,
            "/resculpt/preset/list": self._h_preset_list,
            "/resculpt/profile/describe": self._h_describe,
            "/resculpt/profile/reference": self._h_reference,
            "/resculpt/context": self._h_context,
            "/resculpt/context/list": self._h_context_list,
            "/resculpt/subscribe": self._h_subscribe,
            "/resculpt/unsubscribe": self._h_unsubscribe,
            "/resculpt/auth": self._h_auth,
            "/strip/plugin/parameter": self._h_ardour,
        }
        self._listener = self._on_param

    # -- lifecycle ---------------------------------------------------------------------------
    def _resolve(self):
        try:
            infos = socket.getaddrinfo(self.host, self._req_port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise OscError(f"cannot resolve host {self.host!r}: {e}") from None
        fam, _, _, _, sa = infos[0]
        return fam, sa

    def start(self) -> OscServer:
        if self._sock is not None:
            return self
        fam, sa = self._resolve()
        ip = sa[0]
        if not _loopback(ip) and not (self.secret or self.allow or self.allow_insecure):
            raise OscError(
                f"refusing to bind {self.host} ({ip}): not a loopback address. Pass a shared secret "
                "(--secret) or an allow-list (--allow), or --insecure to accept any sender"
            )
        sock = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            pass
        try:
            sock.bind(sa)
        except OSError as e:
            sock.close()
            raise OscError(f"cannot bind udp {ip}:{self._req_port}: {e.strerror or e}") from None
        sock.settimeout(0.2)
        self._sock = sock
        self.address = sock.getsockname()
        self.port = self.address[1]
        self._stop.clear()
        self._attach_listener()
        al = resolve_hook("adjustment_log")
        if al is not None:
            try:
                self.adjustment_log = al(self.chain)
            except Exception as e:  # an optional module must never stop the server
                log.warning("osc: the adjustment log could not attach: %s", e)
        for fn, name in ((self._recv_loop, "resculpt-osc"), (self._feedback_loop, "resculpt-osc-feedback")):
            t = threading.Thread(target=fn, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("osc: listening on udp://%s:%d", ip, self.port)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads = []
        try:
            self.chain.params.listeners.remove(self._listener)
        except ValueError:
            pass
        if self.adjustment_log is not None and hasattr(self.adjustment_log, "detach"):
            try:
                self.adjustment_log.detach()
            except Exception as e:
                log.warning("osc: the adjustment log could not detach: %s", e)
            self.adjustment_log = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self) -> bool:
        return self._sock is not None and any(t.is_alive() for t in self._threads)

    def _attach_listener(self) -> None:
        ls = self.chain.params.listeners  # a layout change copies the listener list to the new table
        if self._listener not in ls:
            ls.append(self._listener)

    def _on_param(self, pid: str, value: float) -> None:
        if self._subs:
            self._dirty.add(pid)

    # -- sending -------------------------------------------------------------------------------
    def send(self, addr, address: str, *args) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(build_message(address, args), addr)
        except OSError as e:  # unreachable subscriber, closed socket: never fatal
            self._log(logging.DEBUG, f"osc: send to {addr} failed: {e}")

    def error(self, addr, message: str, address: str = "") -> None:
        self.stats["errors"] += 1
        self.last_error = message
        self._log(logging.WARNING, f"osc: {addr[0]}:{addr[1]}: {message}")
        self.send(addr, "/resculpt/error", message, address)

    # -- receiving -----------------------------------------------------------------------------
    def _recv_loop(self) -> None:
        sock = self._sock
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            try:
                self.handle_datagram(data, addr)
            except Exception as e:  # last line of defence: the loop never dies
                self._log(logging.ERROR, f"osc: internal error on a packet from {addr}: {e!r}")

    def handle_datagram(self, data: bytes, addr) -> None:
        """Parse and handle one datagram from ``addr`` (also usable without a socket, in tests)."""
        self.stats["packets"] += 1
        if len(data) > MAX_PACKET:
            self.error(addr, f"packet too large ({len(data)} bytes; limit {MAX_PACKET})")
            return
        try:
            msgs = OscPacket(data).messages
        except Exception as e:
            self.error(addr, f"malformed OSC packet ({len(data)} bytes): {e}")
            return
        if len(msgs) > MAX_MESSAGES:
            self.error(addr, f"bundle of {len(msgs)} messages; only the first {MAX_MESSAGES} are handled")
            msgs = msgs[:MAX_MESSAGES]
        for tm in msgs:
            m = tm.message
            self.handle_message(m.address, list(m.params), addr)

    def _sender_ok(self, addr, address: str, args) -> bool:
        ip = addr[0]
        if _loopback(ip) or ip in self._authorised:
            return True
        if self.allow:
            try:
                a = ipaddress.ip_address(ip.split("%")[0])
                if any(a in net for net in self.allow):
                    return True
            except ValueError:
                pass
        if self.secret is None and not self.allow:
            return True  # allow_insecure
        if address == "/resculpt/auth" and self.secret is not None:
            return True
        self.error(
            addr,
            "not authorised: send /resculpt/auth <secret> first"
            if self.secret
            else "sender not in the allow-list",
            address,
        )
        return False

    def handle_message(self, address: str, args: list, addr) -> None:
        self.stats["messages"] += 1
        if not isinstance(address, str) or not address.startswith("/"):
            self.error(addr, f"invalid address {address!r}")
            return
        if not self._sender_ok(addr, address, args):
            return
        try:
            h = self._routes.get(address)
            if h is not None:
                h(address, args, addr)
            elif address.startswith(PREFIX + "/param/"):
                self._h_param(address, args, addr)
            elif address.startswith(("/track/", "/fx/")):
                self._h_reaper(address, args, addr)
            else:
                raise BadMessage(f"unknown address {address}; /resculpt/ping answers, docs/osc.md lists them")
        except (BadMessage, ParamError) as e:
            self.error(addr, str(e), address)
        except (ValueError, OSError) as e:  # PresetError is a ValueError
            self.error(addr, str(e) or type(e).__name__, address)
        except Exception as e:
            self._log(logging.ERROR, f"osc: handler for {address} failed: {e!r}")
            self.error(addr, f"internal error handling {address}: {type(e).__name__}: {e}", address)

    # -- handlers: parameters ------------------------------------------------------------------
    def _param_reply(self, addr, pid: str) -> None:
        t = self.chain.params
        spec = t.spec(pid)
        v = t.get(pid)
        self.send(addr, f"{PREFIX}/param/{pid}", float(v), spec.unit, spec.display(v))

    def _set_native(self, pid: str, args, address: str) -> float:
        t = self.chain.params
        spec = t.spec(pid)  # ParamError for an unknown id, with suggestions
        if len(args) != 1:
            raise BadMessage(
                f"{address}: expected 1 argument (value in {spec.unit or 'native units'}), got {len(args)}"
            )
        v = args[0]
        if isinstance(v, str):
            v = spec.parse(v)  # choice names, on/off
        elif isinstance(v, bool):
            v = 1.0 if v else 0.0
        elif not _is_number(v):
            raise BadMessage(f"{address}: expected a number, got {type(v).__name__}")
        v = spec.parse(v)
        tol = 1e-6 * (spec.max - spec.min)
        if v < spec.min - tol or v > spec.max + tol:
            raise BadMessage(
                f"{pid}: {v:g} is out of range [{spec.min:g}, {spec.max:g}] {spec.unit}".rstrip()
            )
        return t.set(pid, v)

    def _h_param(self, address: str, args, addr) -> None:
        rest = address[len(PREFIX) + len("/param/") :]
        if rest.endswith("/get"):
            pid = rest[:-4]
            self.chain.params.spec(pid)
            if args:
                raise BadMessage(f"{address}: takes no arguments")
            self._param_reply(addr, pid)
        elif rest.endswith("/norm"):
            pid = rest[:-5]
            self.chain.params.spec(pid)
            x = _number(args, address, "a normalised value 0..1")
            if x < -1e-6 or x > 1.0 + 1e-6:
                raise BadMessage(f"{address}: {x:g} is outside 0..1")
            self.chain.params.set_normalized(pid, min(max(x, 0.0), 1.0))
        elif rest.endswith("/z"):
            return  # TouchOSC-style touch state: nothing to do
        else:
            self._set_native(rest, args, address)

    def _h_bypass(self, address, args, addr) -> None:
        v = _number(args, address, "0 or 1")
        if v not in (0.0, 1.0):
            raise BadMessage(f"{address}: expected 0 or 1, got {v:g}")
        self.chain.params.set("bypass", v)

    def _h_mix(self, address, args, addr) -> None:
        self._set_native("mix", args, address)

    def _h_dump(self, address, args, addr) -> None:
        for pid in self.chain.params:
            self._param_reply(addr, pid)
        self.send(addr, "/resculpt/preset/current", self.chain.preset_name or "")
        self._send_latency(addr)

    def _latency_args(self) -> tuple:
        """(chain samples, chain ms[, total samples, total ms]); the totals (with the audio device's
        buffering) come from ``chain.stats.extra["live"]`` when `resculpt live` runs the chain."""
        lat = int(self.chain.latency_samples)
        out = (lat, 1000.0 * lat / self.chain.sample_rate)
        live = self.chain.stats.extra.get("live") if hasattr(self.chain, "stats") else None
        if live is not None:
            try:
                snap = live.snapshot()
                out += (int(snap["latency_samples"]), float(snap["latency_ms"]))
            except Exception:
                pass
        return out

    def _live_feedback(self) -> list:
        """The `/resculpt/live` message when `resculpt live` runs the chain (LiveStats.feedback())."""
        live = self.chain.stats.extra.get("live") if hasattr(self.chain, "stats") else None
        if live is None:
            return []
        try:
            return [build_message("/resculpt/live", live.feedback())]
        except Exception:
            return []

    def _send_latency(self, addr) -> None:
        self.send(addr, "/resculpt/latency", *self._latency_args())

    # -- handlers: presets ---------------------------------------------------------------------
    @staticmethod
    def _check_name(name: str, address: str) -> str:
        if not _NAME_RE.match(name):
            raise BadMessage(
                f"{address}: invalid preset name {name!r} (letters, digits, space, _ . + -; "
                "at most 64 characters)"
            )
        return name

    def _h_preset_load(self, address, args, addr) -> None:
        (name,) = _string(args, address, "preset name")
        if "/" in name or "\\" in name or name.endswith(".json"):
            raise BadMessage(f"{address}: give a preset name, not a path")
        self.chain.load_preset(name)  # validates fully before applying; PresetError otherwise
        self._attach_listener()
        self._preset_dirty = True
        self.send(addr, "/resculpt/preset/current", self.chain.preset_name or name)

    def _h_preset_save(self, address, args, addr) -> None:
        from .presets import preset_from_chain, save_preset

        (name,) = _string(args, address, "preset name")
        self._check_name(name, address)
        path = save_preset(preset_from_chain(self.chain, name), overwrite=True)
        self.chain.preset_name = name
        self.send(addr, "/resculpt/preset/saved", name, str(path))

    def _h_preset_rename(self, address, args, addr) -> None:
        from .presets import PresetError, read_file, save_preset, shipped_dir, user_dir

        old, new = _string(args, address, "old and new preset names", 2)
        self._check_name(new, address)
        src = user_dir() / f"{old}.json"
        if not src.is_file():
            if (shipped_dir() / f"{old}.json").is_file():
                raise PresetError(f"{old!r} is a shipped preset; save it under a new name instead")
            raise PresetError(f"user preset {old!r} not found")
        p = read_file(src)
        p.name = new
        save_preset(p)  # refuses shipped names and existing files
        os.remove(src)
        if self.chain.preset_name == old:
            self.chain.preset_name = new
        self.send(addr, "/resculpt/preset/renamed", old, new)

    def _h_preset_list(self, address, args, addr) -> None:
        from .presets import list_presets, user_dir

        items = list_presets()
        udir = user_dir().resolve()
        self.send(addr, "/resculpt/preset/list", *[n for n, _ in items])
        self.send(addr, "/resculpt/preset/user", *[n for n, p in items if p.resolve().parent == udir])
        self.send(addr, "/resculpt/preset/current", self.chain.preset_name or "")

    # -- handlers: optional profile hooks --------------------------------------------------------
    def _hook(self, name: str):
        fn = resolve_hook(name)
        if fn is None:
            raise BadMessage(PROFILES_UNAVAILABLE)
        return fn

    def _h_describe(self, address, args, addr) -> None:
        (text,) = _string(args, address, "descriptor text")
        if len(text) > 500:
            raise BadMessage(f"{address}: descriptor longer than 500 characters")
        res = self._hook("describe")(self.chain, text)
        self.send(addr, "/resculpt/profile/applied", text, len(res) if isinstance(res, dict) else 0)

    def _h_reference(self, address, args, addr) -> None:
        (path,) = _string(args, address, "path to a reference clip")
        p = Path(path).expanduser()
        if not p.is_file():
            raise BadMessage(f"{address}: {path}: no such file")
        if not os.access(p, os.R_OK):
            raise BadMessage(f"{address}: {path}: not readable")
        fn = self._hook("reference")
        res = fn(self.chain, str(p))
        self.send(addr, "/resculpt/profile/applied", str(p), len(res) if isinstance(res, dict) else 0)

    def _h_context(self, address, args, addr) -> None:
        (name,) = _string(args, address, "context name")
        self._hook("context")(self.chain, name)
        self.send(addr, "/resculpt/context", name)

    def _h_context_list(self, address, args, addr) -> None:
        self.send(addr, "/resculpt/context/list", *[str(c) for c in self._hook("contexts")()])

    # -- handlers: session -----------------------------------------------------------------------
    def _h_ping(self, address, args, addr) -> None:
        self.send(addr, "/resculpt/pong", *[a for a in args[:4] if isinstance(a, (int, float, str))])

    def _h_subscribe(self, address, args, addr) -> None:
        port = _number(args, address, "a UDP port")
        if port != int(port) or not 1 <= port <= 65535:
            raise BadMessage(f"{address}: port must be an integer 1..65535, got {port:g}")
        key = (addr[0], int(port))
        if key not in self._subs and len(self._subs) >= MAX_SUBSCRIBERS:
            raise BadMessage(f"{address}: too many subscribers ({MAX_SUBSCRIBERS})")
        new = key not in self._subs
        self._subs[key] = time.monotonic() + SUBSCRIPTION_S
        self.send(key, "/resculpt/subscribed", int(port), SUBSCRIPTION_S)
        if new:
            self._h_dump(address, [], key)

    def _h_unsubscribe(self, address, args, addr) -> None:
        if args:
            port = int(_number(args, address, "a UDP port"))
            self._subs.pop((addr[0], port), None)
        else:
            for k in [k for k in self._subs if k[0] == addr[0]]:
                self._subs.pop(k, None)

    def _h_auth(self, address, args, addr) -> None:
        (given,) = _string(args, address, "secret")
        if self.secret is None:
            self.send(addr, "/resculpt/auth", 1)
            return
        if hmac.compare_digest(given.encode(), self.secret.encode()):
            self._authorised.add(addr[0])
            self.send(addr, "/resculpt/auth", 1)
        else:
            self._log(logging.WARNING, f"osc: wrong secret from {addr[0]}")
            raise BadMessage("wrong secret")

    # -- handlers: DAW shapes --------------------------------------------------------------------
    _REAPER_RE = re.compile(r"^(?:/track/(\d+))?/fx/(\d+)/(?:fxparam/(\d+)/value|name)$")

    def _h_reaper(self, address, args, addr) -> None:
        """REAPER's OSC surface: FX_NAME s/track/@/fx/@/name, FX_PARAM_VALUE n/track/@/fx/@/fxparam/@/value.

        The parameter index is 1-based in :func:`daw.param_order` (the JSFX slider order); the
        value is normalised linearly over the slider's range. When REAPER has told us the FX names,
        only the FX named "...Resculpt..." is followed.
        """
        from .daw import param_order

        m = self._REAPER_RE.match(address)
        if not m:
            raise BadMessage(f"unknown address {address}")
        track, fx, k = m.group(1), m.group(2), m.group(3)
        key = (track or "", fx)
        if k is None:  # a name report
            (name,) = _string(args, address, "FX name") if args else ("",)
            self._reaper_names[key] = name
            return
        if self._reaper_names and "resculpt" not in self._reaper_names.get(key, "").lower():
            return  # another plugin's parameter
        order = param_order()
        k = int(k)
        if not 1 <= k <= len(order):
            if k <= len(order) + 3:
                return  # REAPER's own trailing JSFX params (bypass, wet, delta)
            raise BadMessage(f"{address}: parameter index {k} out of range 1..{len(order)}")
        x = _number(args, address, "a normalised value 0..1")
        if x < -1e-6 or x > 1 + 1e-6:
            raise BadMessage(f"{address}: {x:g} is outside 0..1")
        if order[k - 1] not in self.chain.params:
            return  # a retired index (see daw/order.py)
        spec = self.chain.params.spec(order[k - 1])
        self.chain.params.set(spec.id, spec.clamp(spec.min + min(max(x, 0.0), 1.0) * (spec.max - spec.min)))

    def _h_ardour(self, address, args, addr) -> None:
        """Ardour's OSC plugin control: /strip/plugin/parameter <ssid> <piid> <param> <value>
        (param 1-based in daw.param_order(), value in native units)."""
        from .daw import param_order

        if len(args) != 4 or not all(_is_number(a) for a in args):
            raise BadMessage(f"{address}: expected ssid, piid, param (int) and value (float), got {args!r}")
        order = param_order()
        k = int(args[2])
        if not 1 <= k <= len(order):
            raise BadMessage(f"{address}: parameter {k} out of range 1..{len(order)}")
        if order[k - 1] not in self.chain.params:
            return  # a retired index (see daw/order.py)
        self._set_native(order[k - 1], [args[3]], address)

    # -- feedback --------------------------------------------------------------------------------
    def _feedback_loop(self) -> None:
        period = 1.0 / self.feedback_hz
        nxt = time.monotonic()
        while not self._stop.is_set():
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                nxt = time.monotonic()
            try:
                self.publish()
            except Exception as e:
                self._log(logging.ERROR, f"osc: feedback failed: {e!r}")

    def publish(self) -> None:
        """Send one feedback frame to every live subscriber (feedback thread; callable in tests)."""
        if not self._subs:
            return
        now = time.monotonic()
        for k in [k for k, exp in self._subs.items() if exp < now]:
            self._subs.pop(k, None)
        subs = list(self._subs)
        if not subs:
            return
        self._attach_listener()
        snap = self.meters.snapshot()
        dirty, self._dirty = self._dirty, set()
        t = self.chain.params
        msgs = [
            build_message(
                "/resculpt/meters",
                (snap["in_peak_db"], snap["in_rms_db"], snap["out_peak_db"], snap["out_rms_db"]),
            ),
            build_message("/resculpt/latency", self._latency_args()),
            build_message("/resculpt/cpu", (float(snap["cpu_load"]), float(snap["cpu_peak"]))),
            *self._live_feedback(),
            build_message("/resculpt/spectrum", [float(v) for v in snap["spectrum_db"]]),
            build_message("/resculpt/mask", [float(v) for v in snap["mask"]]),
        ]
        for pid in sorted(dirty):
            if pid in t:
                spec, v = t.spec(pid), t.get(pid)
                msgs.append(build_message(f"{PREFIX}/param/{pid}", (float(v), spec.unit, spec.display(v))))
        if self._preset_dirty:
            self._preset_dirty = False
            msgs.append(build_message("/resculpt/preset/current", (self.chain.preset_name or "",)))
        sock = self._sock
        for s in subs:
            for m in msgs:
                try:
                    sock.sendto(m, s)
                except (OSError, AttributeError):
                    break
        self.stats["feedback_frames"] += 1


__all__ = [
    "HOOK_SOURCES",
    "MAX_PACKET",
    "PROFILES_UNAVAILABLE",
    "BadMessage",
    "OscError",
    "OscServer",
    "address_space",
    "build_message",
    "osc_docs_markdown",
    "register_hook",
    "resolve_hook",
]
