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

Address names, their tables, message encoding and argument checks live in
:mod:`.osc_protocol` (``resculpt osc-docs`` prints the address space as Markdown, ``docs/osc.md``);
the REAPER and Ardour shapes are translated by :mod:`.daw.dialects`.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import socket
import threading
import time
from pathlib import Path

from resculpt.dsp.descriptors import describe
from resculpt.dsp.params import ParamError
from resculpt.dsp.profile import from_reference, load_profile

from . import osc_protocol
from .contexts import apply_context, load_contexts
from .daw.dialects import ReaperSurface, ardour_parameter
from .meters import Meters
from .osc_protocol import BadMessage, build_message, decode, number_arg, osc_docs_markdown, string_args
from .audio_io import read_audio
from .paths import user_presets_dir
from .presets import list_presets, preset_from_chain, rename_preset, save_preset
from .targets import resolve_target
from .user_profile import AdjustmentLog

log = logging.getLogger("resculpt.osc")

DEFAULT_PORT = osc_protocol.DEFAULT_PORT
MAX_PACKET = 8192  # bytes; anything larger is refused unparsed
MAX_MESSAGES = 64  # per bundle
MAX_SUBSCRIBERS = 8
SUBSCRIPTION_S = 30.0  # a subscription lapses unless renewed (the panel renews every few seconds)
FEEDBACK_HZ = 30.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}$")


class OscError(OSError):
    """The server could not be started as asked (bind refused, port in use, ...). An OSError, so
    callers that treat "cannot open the socket" as optional (``resculpt live``) catch it too."""


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%")[0]).is_loopback
    except ValueError:
        return False


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
        self._stages_sent: list[str] | None = None  # the chain's stages as last sent on /resculpt/chain
        self._reaper = ReaperSurface()
        self._log = _RateLimitedLog()
        self.stats = {"packets": 0, "messages": 0, "errors": 0, "feedback_frames": 0}
        self.last_error: str | None = None
        self.adjustment_log: AdjustmentLog | None = None  # records the user's adjustments while running
        # One handler per address of osc_protocol.FIXED_ADDRESSES (a test keeps the two in step).
        self._routes = {
            osc_protocol.PING: self._h_ping,
            osc_protocol.BYPASS: self._h_bypass,
            osc_protocol.MIX: self._h_mix,
            osc_protocol.DUMP: self._h_dump,
            osc_protocol.PRESET_LOAD: self._h_preset_load,
            osc_protocol.PRESET_SAVE: self._h_preset_save,
            osc_protocol.PRESET_RENAME: self._h_preset_rename,
            osc_protocol.PRESET_LIST: self._h_preset_list,
            osc_protocol.PROFILE_DESCRIBE: self._h_describe,
            osc_protocol.PROFILE_REFERENCE: self._h_reference,
            osc_protocol.PROFILE_LOAD: self._h_profile_load,
            osc_protocol.PROFILE_INPUT: self._h_profile_input,
            osc_protocol.CONTEXT: self._h_context,
            osc_protocol.CONTEXT_LIST: self._h_context_list,
            osc_protocol.SUBSCRIBE: self._h_subscribe,
            osc_protocol.UNSUBSCRIBE: self._h_unsubscribe,
            osc_protocol.AUTH: self._h_auth,
            osc_protocol.ARDOUR_PARAMETER: self._h_ardour,
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
        try:
            self.adjustment_log = AdjustmentLog().attach(self.chain)
        except Exception as e:  # an unwritable log folder must never stop the server
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
        if self.adjustment_log is not None:
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
        self.send(addr, osc_protocol.ERROR, message, address)

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
            msgs = decode(data)
        except Exception as e:
            self.error(addr, f"malformed OSC packet ({len(data)} bytes): {e}")
            return
        if len(msgs) > MAX_MESSAGES:
            self.error(addr, f"bundle of {len(msgs)} messages; only the first {MAX_MESSAGES} are handled")
            msgs = msgs[:MAX_MESSAGES]
        for address, args in msgs:
            self.handle_message(address, args, addr)

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
        if address == osc_protocol.AUTH and self.secret is not None:
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
            elif address.startswith(osc_protocol.PARAM):
                self._h_param(address, args, addr)
            elif address.startswith(osc_protocol.REAPER_PREFIXES):
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
        self.send(addr, osc_protocol.param_address(pid), float(v), spec.unit, spec.display(v))

    def _set_native(self, pid: str, args, address: str) -> float:
        t = self.chain.params
        spec = t.spec(pid)  # ParamError for an unknown id, with suggestions
        if len(args) != 1:
            raise BadMessage(
                f"{address}: expected 1 argument (value in {spec.unit or 'native units'}), got {len(args)}"
            )
        try:
            v = spec.coerce(args[0], strict=True)  # numbers, bools, choice names, on/off; refuses out of range
        except ParamError as e:
            raise BadMessage(str(e)) from None
        return t.set(pid, v)

    def _h_param(self, address: str, args, addr) -> None:
        rest = osc_protocol.param_id(address)
        if rest.endswith("/get"):
            pid = rest[:-4]
            self.chain.params.spec(pid)
            if args:
                raise BadMessage(f"{address}: takes no arguments")
            self._param_reply(addr, pid)
        elif rest.endswith("/norm"):
            pid = rest[:-5]
            self.chain.params.spec(pid)
            x = number_arg(args, address, "a normalised value 0..1")
            if x < -1e-6 or x > 1.0 + 1e-6:
                raise BadMessage(f"{address}: {x:g} is outside 0..1")
            self.chain.params.set_normalized(pid, min(max(x, 0.0), 1.0))
        elif rest.endswith("/z"):
            return  # TouchOSC-style touch state: nothing to do
        else:
            self._set_native(rest, args, address)

    def _h_bypass(self, address, args, addr) -> None:
        v = number_arg(args, address, "0 or 1")
        if v not in (0.0, 1.0):
            raise BadMessage(f"{address}: expected 0 or 1, got {v:g}")
        self.chain.params.set("bypass", v)

    def _h_mix(self, address, args, addr) -> None:
        self._set_native("mix", args, address)

    def _h_dump(self, address, args, addr) -> None:
        for pid in self.chain.params:
            self._param_reply(addr, pid)
        self.send(addr, osc_protocol.PRESET_CURRENT, self.chain.preset_name or "")
        self.send(addr, osc_protocol.CHAIN, *self.chain.layout.slots())
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
            return [build_message(osc_protocol.LIVE, live.feedback())]
        except Exception:
            return []

    def _send_latency(self, addr) -> None:
        self.send(addr, osc_protocol.LATENCY, *self._latency_args())

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
        (name,) = string_args(args, address, "preset name")
        if "/" in name or "\\" in name or name.endswith(".json"):
            raise BadMessage(f"{address}: give a preset name, not a path")
        self.chain.load_preset(name)  # validates fully before applying; PresetError otherwise
        self._attach_listener()
        self._preset_dirty = True
        self.send(addr, osc_protocol.PRESET_CURRENT, self.chain.preset_name or name)

    def _h_preset_save(self, address, args, addr) -> None:
        (name,) = string_args(args, address, "preset name")
        self._check_name(name, address)
        path = save_preset(preset_from_chain(self.chain, name), overwrite=True)
        self.chain.preset_name = name
        self.send(addr, osc_protocol.PRESET_SAVED, name, str(path))

    def _h_preset_rename(self, address, args, addr) -> None:
        old, new = string_args(args, address, "old and new preset names", 2)
        self._check_name(new, address)
        rename_preset(old, new)
        if self.chain.preset_name == old:
            self.chain.preset_name = new
        self.send(addr, osc_protocol.PRESET_RENAMED, old, new)

    def _h_preset_list(self, address, args, addr) -> None:
        items = list_presets()
        udir = user_presets_dir().resolve()
        self.send(addr, osc_protocol.PRESET_LIST, *[n for n, _ in items])
        self.send(addr, osc_protocol.PRESET_USER, *[n for n, p in items if p.resolve().parent == udir])
        self.send(addr, osc_protocol.PRESET_CURRENT, self.chain.preset_name or "")

    # -- handlers: profiles and contexts ---------------------------------------------------------
    def _h_describe(self, address, args, addr) -> None:
        (text,) = string_args(args, address, "descriptor text")
        if len(text) > 500:
            raise BadMessage(f"{address}: descriptor longer than 500 characters")
        self.chain.set_target(describe(text), add_stage=True)
        self.send(addr, osc_protocol.PROFILE_APPLIED, text)

    def _h_reference(self, address, args, addr) -> None:
        (path,) = string_args(args, address, "path to a reference clip")
        p = Path(path).expanduser()
        if not p.is_file():
            raise BadMessage(f"{address}: {path}: no such file")
        if not os.access(p, os.R_OK):
            raise BadMessage(f"{address}: {path}: not readable")
        try:
            x, sr = read_audio(p)
        except Exception as e:  # RenderError, soundfile errors: an unreadable clip
            raise BadMessage(f"cannot read reference clip {p}: {e}") from None
        self.chain.set_target(from_reference(x, sr, p.stem), add_stage=True)
        self.send(addr, osc_protocol.PROFILE_APPLIED, str(p))

    def _h_profile_load(self, address, args, addr) -> None:
        (path,) = string_args(args, address, "a shipped target's name or a profile JSON's path")
        self.chain.set_target(resolve_target(path), add_stage=True)  # ProfileError: an error reply, nothing changed
        self.send(addr, osc_protocol.PROFILE_APPLIED, path)

    def _h_profile_input(self, address, args, addr) -> None:
        # no argument: learn the input again; ProfileError (a missing file, a delta, no band envelope): an error
        # reply, nothing changed
        (path,) = string_args(args, address, "a fingerprint JSON's path") if args else ("",)
        self.chain.set_input_profile(load_profile(path) if path else None)
        self.send(addr, osc_protocol.PROFILE_APPLIED, path)

    def _h_context(self, address, args, addr) -> None:
        (name,) = string_args(args, address, "context name")
        apply_context(self.chain, name)
        self.send(addr, osc_protocol.CONTEXT, name)

    def _h_context_list(self, address, args, addr) -> None:
        self.send(addr, osc_protocol.CONTEXT_LIST, *sorted(load_contexts()))

    # -- handlers: session -----------------------------------------------------------------------
    def _h_ping(self, address, args, addr) -> None:
        self.send(addr, osc_protocol.PONG, *[a for a in args[:4] if isinstance(a, (int, float, str))])

    def _h_subscribe(self, address, args, addr) -> None:
        port = number_arg(args, address, "a UDP port")
        if port != int(port) or not 1 <= port <= 65535:
            raise BadMessage(f"{address}: port must be an integer 1..65535, got {port:g}")
        key = (addr[0], int(port))
        if key not in self._subs and len(self._subs) >= MAX_SUBSCRIBERS:
            raise BadMessage(f"{address}: too many subscribers ({MAX_SUBSCRIBERS})")
        new = key not in self._subs
        self._subs[key] = time.monotonic() + SUBSCRIPTION_S
        self.send(key, osc_protocol.SUBSCRIBED, int(port), SUBSCRIPTION_S)
        if new:
            self._h_dump(address, [], key)

    def _h_unsubscribe(self, address, args, addr) -> None:
        if args:
            port = int(number_arg(args, address, "a UDP port"))
            self._subs.pop((addr[0], port), None)
        else:
            for k in [k for k in self._subs if k[0] == addr[0]]:
                self._subs.pop(k, None)

    def _h_auth(self, address, args, addr) -> None:
        (given,) = string_args(args, address, "secret")
        if self.secret is None:
            self.send(addr, osc_protocol.AUTH, 1)
            return
        if hmac.compare_digest(given.encode(), self.secret.encode()):
            self._authorised.add(addr[0])
            self.send(addr, osc_protocol.AUTH, 1)
        else:
            self._log(logging.WARNING, f"osc: wrong secret from {addr[0]}")
            raise BadMessage("wrong secret")

    # -- handlers: DAW shapes --------------------------------------------------------------------
    def _h_reaper(self, address, args, addr) -> None:
        target = self._reaper.translate(address, args, self.chain.params)
        if target is not None:
            self.chain.params.set(*target)

    def _h_ardour(self, address, args, addr) -> None:
        target = ardour_parameter(address, args, self.chain.params)
        if target is not None:
            self._set_native(target[0], [target[1]], address)

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
            build_message(osc_protocol.METERS, (snap["in_peak_db"], snap["in_rms_db"], snap["out_peak_db"], snap["out_rms_db"])),
            build_message(osc_protocol.LATENCY, self._latency_args()),
            build_message(osc_protocol.CPU, (float(snap["cpu_load"]), float(snap["cpu_peak"]))),
            *self._live_feedback(),
            build_message(osc_protocol.SPECTRUM, [float(v) for v in snap["spectrum_db"]]),
            build_message(osc_protocol.MASK, [float(v) for v in snap["mask"]]),
        ]
        for pid in sorted(dirty):
            if pid in t:
                spec, v = t.spec(pid), t.get(pid)
                msgs.append(build_message(osc_protocol.param_address(pid), (float(v), spec.unit, spec.display(v))))
        if self._preset_dirty:
            self._preset_dirty = False
            msgs.append(build_message(osc_protocol.PRESET_CURRENT, (self.chain.preset_name or "",)))
        stages = self.chain.layout.slots()  # a preset load or a context can change them
        if stages != self._stages_sent:
            self._stages_sent = stages
            msgs.append(build_message(osc_protocol.CHAIN, stages))
        sock = self._sock
        for s in subs:
            for m in msgs:
                try:
                    sock.sendto(m, s)
                except (OSError, AttributeError):
                    break
        self.stats["feedback_frames"] += 1


__all__ = [
    "MAX_PACKET",
    "BadMessage",
    "OscError",
    "OscServer",
    "build_message",
    "osc_docs_markdown",
]
