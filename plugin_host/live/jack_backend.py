"""The JACK backend (JACK-Client): client ``resculpt`` with ports ``in_1 in_2 out_1 out_2``.

Port latency ranges are published through JACK's latency callback (capture: ``out_*`` = upstream +
chain; playback: ``in_*`` = downstream + chain) so hosts such as Ardour/OBS/Carla compensate; xruns
are counted from the server's xrun notifications. Works on jackd/jackdbus and on PipeWire through
``pw-jack``. A server shutdown or rate change marks the client gone; the session then reopens it and
:meth:`JackBackend.connect` restores the connections remembered while it ran.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import time

import numpy as np

from .backend import MAX_BLOCK, MIN_BLOCK, LiveError
from .bridge import PortBridge
from .stats import LiveStats

_JACK_CAPTURE, _JACK_PLAYBACK = 0, 1


class _JackRange(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


_LATENCY_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
_libjack = None


def _jack_latency_lib():
    """libjack through ctypes for the port-latency API JACK-Client 0.5 does not wrap (None if absent)."""
    global _libjack
    if _libjack is None:
        name = ctypes.util.find_library("jack") or "libjack.so.0"
        try:
            lib = ctypes.CDLL(name)
            lib.jack_port_get_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_JackRange)]
            lib.jack_port_get_latency_range.restype = None
            lib.jack_port_set_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_JackRange)]
            lib.jack_port_set_latency_range.restype = None
            lib.jack_set_latency_callback.argtypes = [ctypes.c_void_p, _LATENCY_CB, ctypes.c_void_p]
            lib.jack_set_latency_callback.restype = ctypes.c_int
            lib.jack_recompute_total_latencies.argtypes = [ctypes.c_void_p]
            lib.jack_recompute_total_latencies.restype = ctypes.c_int
            _libjack = lib
        except (OSError, AttributeError):
            _libjack = False
    return _libjack or None


def _import_jack():
    try:
        import jack  # JACK-Client; raises OSError when libjack is not installed
    except (ImportError, OSError) as e:
        raise LiveError(f"the JACK backend needs JACK-Client and libjack (apt install jackd2 / pipewire-jack): {e}") \
            from None
    return jack


def _open_client(jack, name: str, server: str | None):
    """jack.Client without libjack's own stderr chatter when no server runs (we say it clearly instead)."""
    jack.set_error_function(lambda msg: None)
    try:
        return jack.Client(name, no_start_server=True, servername=server)
    finally:
        jack.set_error_function(None)


def default_server() -> str | None:
    return os.environ.get("JACK_DEFAULT_SERVER") or None


def _no_server_msg(server: str | None) -> str:
    name = server or "default"
    return (f"no JACK server running (server {name!r}). Start one, e.g. `jackd -d alsa -r 48000 -p 128` "
            f"(or `jackd -d dummy -r 48000 -p 256` without a sound card), run under PipeWire with "
            f"`pw-jack resculpt live ...`, or use `--backend portaudio`.")


class JackBackend:
    """JACK via JACK-Client: client ``client_name`` with ports in_1, in_2, out_1, out_2.

    Args:
        server: JACK server name (default: $JACK_DEFAULT_SERVER, else the default server).
        inputs / outputs: port names or regular expressions to connect to in_1/in_2 and from
            out_1/out_2 (one source feeds both inputs of a stereo chain; one sink gets out_1).
        auto_connect: connect the physical capture ports to in_* and out_* to physical playback.
        rate / block: if given, must match the server (JACK owns the period); else a clear error.
    """

    kind = "jack"
    watchdog = False  # JACK reports a dead server through the shutdown callback
    compensated = False
    abandoned = False  # a JACK client can always be reopened

    def __init__(self, client_name: str = "resculpt", server: str | None = None, inputs=None, outputs=None,
                 auto_connect: bool = False, rate: int | None = None, block: int | None = None):
        self.requested_name = client_name
        self.server = server or default_server()
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.auto_connect = auto_connect
        self.want_rate, self.want_block = rate, block
        self.client = None
        self._gone = False
        self._restore: list[tuple[str, str]] = []
        self._lat_cb = None

    # control side
    def open(self):
        jack = _import_jack()
        self._jack = jack
        self._gone = False
        try:
            client = _open_client(jack, self.requested_name, self.server)
        except jack.JackOpenError:
            raise LiveError(_no_server_msg(self.server)) from None
        except jack.JackError as e:
            raise LiveError(f"JACK: {e}") from None
        self.client = client
        sr, bs = client.samplerate, client.blocksize
        if self.want_rate and self.want_rate != sr:
            client.close()
            self.client = None
            raise LiveError(f"unsupported rate: the JACK server runs at {sr} Hz, --rate {self.want_rate} was asked; "
                            f"restart it with `-r {self.want_rate}` or leave --rate out (JACK sets the rate)")
        if self.want_block and self.want_block != bs:
            client.close()
            self.client = None
            raise LiveError(f"unsupported block size: the JACK server runs {bs}-sample periods, --block "
                            f"{self.want_block} was asked; restart it with `-p {self.want_block}` or leave --block "
                            f"out (JACK sets the period for every client)")
        if bs > MAX_BLOCK or bs < 1:
            client.close()
            self.client = None
            raise LiveError(f"unsupported block size {bs} (live mode takes {MIN_BLOCK}..{MAX_BLOCK})")
        self.sample_rate, self.block = sr, bs
        self.ins = [client.inports.register(f"in_{k}") for k in (1, 2)]
        self.outs = [client.outports.register(f"out_{k}") for k in (1, 2)]
        return sr, bs

    @property
    def client_name(self) -> str:
        """The client's name on the server (JACK may have made the requested one unique)."""
        return self.client.name if self.client is not None else self.requested_name

    def bind(self, bridge: PortBridge, stats: LiveStats) -> None:
        """Install callbacks (before activate)."""
        jack, client = self._jack, self.client
        ffi, lib = jack._ffi, jack._lib
        get_buffer = lib.jack_port_get_buffer
        in_ptrs = [p._ptr for p in self.ins]
        out_ptrs = [p._ptr for p in self.outs]
        nports = 2
        # Cached numpy views of the port buffers: rebuilt only when JACK hands another address.
        cache_ptr = [None] * (2 * nports)
        cache_arr = [None] * (2 * nports)
        cache_n = [0] * (2 * nports)
        ins = [None] * nports
        outs = [None] * nports
        frombuffer, f32 = np.frombuffer, np.float32
        last_frame_time = lib.jack_last_frame_time
        cptr = client._ptr
        perf = time.perf_counter

        def view(slot, ptr, n):
            if ptr != cache_ptr[slot] or n != cache_n[slot]:
                cache_ptr[slot] = ptr
                cache_n[slot] = n
                cache_arr[slot] = frombuffer(ffi.buffer(ptr, n * 4), dtype=f32)
            return cache_arr[slot]

        def process(frames):
            t0 = perf()
            for k in range(nports):
                ins[k] = view(k, get_buffer(in_ptrs[k], frames), frames)
                outs[k] = view(nports + k, get_buffer(out_ptrs[k], frames), frames)
            if stats.first_frame < 0:
                stats.first_frame = last_frame_time(cptr)
            try:
                bridge.run(ins, outs, frames)
            except Exception:  # keep the client alive: output silence, count it
                stats.errors += 1
                for o in outs:
                    o.fill(0.0)
            stats.record(perf() - t0, frames)

        def xrun(delay_usecs):
            stats.xruns += 1

        def shutdown(status, reason):
            self._gone = True  # the supervisor reconnects; no JACK calls from here

        def blocksize(n):
            # JACK calls this before the first cycle with the new size (non-RT thread).
            self.block = n
            stats.block = n
            stats.period_s = n / self.sample_rate
            if n <= bridge.maxb:
                bridge.set_block(n)

        def samplerate(sr):
            if sr != self.sample_rate:
                self._gone = True  # reopen and re-prepare at the new rate

        client.set_process_callback(process)
        client.set_xrun_callback(xrun)
        client.set_shutdown_callback(shutdown)
        client.set_blocksize_callback(blocksize)
        client.set_samplerate_callback(samplerate)
        self._install_latency_callback(bridge.chain)

    def _port_addr(self, port):
        return int(self._jack._ffi.cast("uintptr_t", port._ptr))

    def _client_addr(self):
        return int(self._jack._ffi.cast("uintptr_t", self.client._ptr))

    def _install_latency_callback(self, chain):
        lib = _jack_latency_lib()
        self.compensated = False
        if lib is None:
            return
        ins = [self._port_addr(p) for p in self.ins]
        outs = [self._port_addr(p) for p in self.outs]

        def cb(mode, arg):
            try:
                lat = int(chain.latency_samples)
                r = _JackRange()
                lo, hi = None, None
                src, dst = (ins, outs) if mode == _JACK_CAPTURE else (outs, ins)
                for p in src:
                    lib.jack_port_get_latency_range(p, mode, ctypes.byref(r))
                    lo = r.min if lo is None else min(lo, r.min)
                    hi = r.max if hi is None else max(hi, r.max)
                r.min, r.max = (lo or 0) + lat, (hi or 0) + lat
                for p in dst:
                    lib.jack_port_set_latency_range(p, mode, ctypes.byref(r))
            except Exception:  # never let an exception escape into C
                pass

        self._lat_cb = _LATENCY_CB(cb)  # keep a reference for as long as the client lives
        if lib.jack_set_latency_callback(ctypes.c_void_p(self._client_addr()), self._lat_cb, None) == 0:
            self.compensated = True

    def recompute_latency(self) -> None:
        lib = _jack_latency_lib()
        if lib is not None and self.client is not None and not self._gone:
            lib.jack_recompute_total_latencies(ctypes.c_void_p(self._client_addr()))

    def _find(self, spec: str, is_output: bool) -> list[str]:
        client = self.client
        try:
            return [client.get_port_by_name(spec).name]
        except Exception:
            pass
        try:
            ports = client.get_ports(name_pattern=spec, is_audio=True, is_output=is_output, is_input=not is_output)
        except re.error:
            ports = []
        ports = [p.name for p in ports if not p.name.startswith(client.name + ":")]
        if not ports:
            kind = "output (source)" if is_output else "input (sink)"
            avail = [p.name for p in client.get_ports(is_audio=True, is_output=is_output, is_input=not is_output)
                     if not p.name.startswith(client.name + ":")]
            raise LiveError(f"device not found: no JACK {kind} port matches {spec!r}; available: "
                            f"{', '.join(avail) or '(none)'}")
        return ports

    def connect(self) -> None:
        """Connect the requested ports (after activate); raises LiveError naming a missing port."""
        client = self.client
        srcs: list[str] = []
        for spec in self.inputs:
            srcs += self._find(spec, True)
        sinks: list[str] = []
        for spec in self.outputs:
            sinks += self._find(spec, False)
        if self.auto_connect:
            if not self.inputs:
                srcs = [p.name for p in client.get_ports(is_physical=True, is_output=True, is_audio=True)][:2]
            if not self.outputs:
                sinks = [p.name for p in client.get_ports(is_physical=True, is_input=True, is_audio=True)][:2]
        pairs = []
        if srcs:
            pairs += [(srcs[k if k < len(srcs) else 0], self.ins[k].name) for k in range(2)]
            pairs += [(s, self.ins[k % 2].name) for k, s in enumerate(srcs[2:], 2)]
        for k, s in enumerate(sinks):
            pairs.append((self.outs[k % 2].name, s))
        for a, b in pairs + self._restore:
            try:
                client.connect(a, b)
            except self._jack.JackError:
                pass  # already connected, or the peer is gone (restored connections)

    def remember_connections(self) -> None:
        """Control thread: note current connections so a reconnect restores them."""
        if self.client is None or self._gone:
            return
        out = []
        try:
            for p in self.ins:
                out += [(q.name, p.name) for q in self.client.get_all_connections(p)]
            for p in self.outs:
                out += [(p.name, q.name) for q in self.client.get_all_connections(p)]
        except Exception:
            return
        self._restore = out

    def activate(self) -> None:
        self.client.activate()

    def mark_gone(self) -> None:
        self._gone = True

    def alive(self) -> bool:
        return self.client is not None and not self._gone

    def latency(self) -> tuple[int, int]:
        """(input buffering, output buffering) in samples from the JACK port latency ranges."""
        lib = _jack_latency_lib()
        if lib is None or self.client is None or self._gone:
            return 0, 0
        r = _JackRange()
        cap = 0
        for p in self.ins:
            lib.jack_port_get_latency_range(self._port_addr(p), _JACK_CAPTURE, ctypes.byref(r))
            cap = max(cap, r.max)
        play = 0
        for p in self.outs:
            lib.jack_port_get_latency_range(self._port_addr(p), _JACK_PLAYBACK, ctypes.byref(r))
            play = max(play, r.max)
        return int(cap), int(play)

    def describe(self) -> str:
        name = self.client_name
        return (f"JACK client {name!r} on server {self.server or 'default'!r}: ports "
                f"{name}:in_1, {name}:in_2, {name}:out_1, {name}:out_2")

    def close(self) -> None:
        c, self.client = self.client, None
        if c is None:
            return
        try:
            if not self._gone:
                c.deactivate()
            c.close()
        except Exception:
            pass




def list_jack(server: str | None = None) -> list[dict]:
    """Ports of the running JACK server: [{name, direction, physical, latency}]; LiveError if none runs."""
    jack = _import_jack()
    try:
        c = _open_client(jack, "resculpt-devices", server or default_server())
    except jack.JackOpenError:
        raise LiveError(_no_server_msg(server or default_server())) from None
    try:
        lib = _jack_latency_lib()
        out = []
        for p in c.get_ports(is_audio=True):
            d = {"name": p.name, "direction": "source" if p.is_output else "sink", "physical": p.is_physical}
            if lib is not None:
                r = _JackRange()
                mode = _JACK_CAPTURE if p.is_output else _JACK_PLAYBACK
                lib.jack_port_get_latency_range(int(jack._ffi.cast("uintptr_t", p._ptr)), mode, ctypes.byref(r))
                d["latency"] = int(r.max)
            out.append(d)
        info = {"sample_rate": c.samplerate, "block": c.blocksize}
    finally:
        c.close()
    return [info] + out

