"""Live mode: a :class:`~resculpt.plugin_host.host.Chain` on a real-time audio callback.

```
JACK cycle / PortAudio callback (audio thread, realtime priority where the backend gives it)
  port buffers ─np.copyto─► preallocated float32 (channels, n) ─Chain.process (in place)─► np.copyto ─► ports
  perf_counter() around it ─► LiveStats ring (preallocated) + counters
control side (other threads): supervisor (status, reconnect, latency updates, young-gen gc),
  OSC server / panel / CLI: Chain.params.set, Chain.load_preset (builds engines off the audio path)
```

Backends
    :class:`JackBackend` (JACK-Client): client ``resculpt`` with ports ``in_1 in_2 out_1 out_2``,
    port latency ranges published through JACK's latency callback (hosts such as Ardour/OBS/Carla
    compensate), xruns counted from the server's xrun notifications. Works on jackd/jackdbus and on
    PipeWire through ``pw-jack``.
    :class:`PortAudioBackend` (sounddevice): any PortAudio device (ALSA, PulseAudio via its ALSA
    plugin, CoreAudio, WASAPI, or JACK's host API); xruns counted from the callback status flags.

Real-time discipline of the callback (what this module adds around ``Chain.process``)
    * no array allocation: the port/device buffers are copied into a buffer allocated at start
      (``np.copyto``), processed in place and copied out; numpy views of JACK port buffers are cached
      by address and rebuilt only when JACK hands a new buffer (a connection change);
    * no logging, no locks, no waiting: counters are plain attribute stores, timings go into a
      preallocated ring; everything the user sees (status line, OSC feedback, reconnects) is read
      and done by the control-side supervisor thread;
    * model inference stays inside the callback: the heaviest shipped preset (voice-enhance, ONNX
      mask) measured p99.9 38.5 % of a 256-sample period (benchmarks/results/live.md), so there is
      no double-buffered worker and no extra latency; the callback time is measured and reported so
      a stage that stops fitting shows up as overruns/xruns rather than silently;
    * garbage collection: after warm-up, ``gc.collect(); gc.freeze()`` moves every object that
      exists into the permanent generation and automatic collection is disabled for the run
      (``gc.disable()``), so no collector pass can start inside the callback. The supervisor runs
      ``gc.collect(0)`` (young generation only, microseconds) on the control thread every
      ``gc_interval`` seconds so cycles made by control traffic are still reclaimed. The previous
      gc state is restored by ``stop()``;
    * the interpreter's GIL switch interval is lowered (``sys.setswitchinterval``, default 1 ms
      during the run, restored after) so a control thread holding the GIL delays the callback by at
      most about that much.
    What stays outside our control and is documented rather than hidden: CPython creates small
    objects (ints, floats, views) in any Python code, and pedalboard's board call returns a fresh
    block-sized array (its API has no in-place call); these come from the small-object/malloc
    allocators, are freed by reference counting and are never GC-tracked containers.

Latency (see :class:`LatencyReport`)
    algorithmic = the chain's ``latency_samples`` (STFT window - 1, plugin-reported latency);
    buffering = JACK: capture latency of what feeds ``in_*`` + playback latency of what ``out_*``
    feeds (typically 1 period + 2 periods with a sound card; 0 between two JACK clients);
    PortAudio: the stream's reported input + output latency. Under JACK the chain latency is
    published on the ports (capture: ``out_*`` = upstream + chain; playback: ``in_*`` = downstream +
    chain) so JACK-aware hosts compensate it; PortAudio has no such mechanism (report only).

Stats for OSC feedback and the status line: :class:`LiveStats`; the live engine also registers it
as ``chain.stats.extra["live"]`` so anything holding only the chain (the OSC server) can read it.
Names are listed in :meth:`LiveStats.snapshot`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from resculpt.dsp.processor import SUPPORTED_RATES as RATES

MIN_BLOCK, MAX_BLOCK = 16, 8192
STATUS_WINDOW = 4096  # callbacks the periodic status percentiles look at (~10-20 s)
_perf = time.perf_counter


class LiveError(Exception):
    """A live-mode problem with a message meant for the user (no server, device not found, ...)."""


# -- stats ---------------------------------------------------------------------------------------
class LiveStats:
    """Callback timing and error counters. Written by the audio thread, read by anyone.

    Attributes (all plain numbers; OSC feedback reads them or :meth:`snapshot`):
        callbacks: number of audio callbacks run.
        frames: samples processed per channel.
        xruns: xruns reported by the backend (JACK server notifications, PortAudio status flags).
        overruns: callbacks whose own processing time exceeded the period.
        last_cb_s, max_cb_s: last and largest callback time (seconds).
        period_s, block, sample_rate: the current period.
        reconnects: times the backend was reopened after the server/device vanished.
        errors: callbacks in which the chain raised (the block is output as silence; should stay 0).
        first_frame: backend frame time of the first processed block (JACK frame counter; -1 unknown).
        state: "stopped", "running", "reconnecting".
        latency: the current :class:`LatencyReport` (or None before start).
    The ring ``cb_time`` (float64 seconds, preallocated) holds the last ``len(cb_time)`` callback times.
    """

    def __init__(self, ring_size: int = 1 << 16):
        size = 1 << max(4, int(math.ceil(math.log2(max(16, ring_size)))))
        self.cb_time = np.zeros(size, np.float64)
        self._mask = size - 1
        self.callbacks = 0
        self.frames = 0
        self.xruns = 0
        self.overruns = 0
        self.last_cb_s = 0.0
        self.max_cb_s = 0.0
        self.period_s = 0.0
        self.block = 0
        self.sample_rate = 0
        self.reconnects = 0
        self.errors = 0
        self.first_frame = -1
        self.state = "stopped"
        self.latency: LatencyReport | None = None

    def reset_timing(self) -> None:
        """Forget timings and counters (control thread; e.g. after a warm-up period)."""
        self.cb_time.fill(0.0)
        self.callbacks = 0
        self.overruns = 0
        self.xruns = 0
        self.max_cb_s = 0.0

    def record(self, dt: float, frames: int) -> None:
        """Audio thread: one callback took ``dt`` seconds for ``frames`` samples."""
        k = self.callbacks
        self.cb_time[k & self._mask] = dt
        self.callbacks = k + 1
        self.frames += frames
        self.last_cb_s = dt
        if dt > self.max_cb_s:
            self.max_cb_s = dt
        if dt > self.period_s:
            self.overruns += 1

    def feedback(self) -> tuple:
        """(xruns, overruns, cb_p99_ms, load_p99, cb_max_ms, reconnects) over the last STATUS_WINDOW
        callbacks: the `/resculpt/live` OSC feedback message (cheap enough for 30 Hz)."""
        p = self.percentiles(last=STATUS_WINDOW)
        return (int(self.xruns), int(self.overruns), float(p["us"]["p99"] / 1000.0), float(p["load"]["p99"]),
                float(self.max_cb_s * 1000.0), int(self.reconnects))

    def times(self, last: int | None = None) -> np.ndarray:
        """A copy of the recorded callback times (seconds): all the ring holds, or the ``last`` n."""
        k = self.callbacks
        n = min(k, self.cb_time.size, last or self.cb_time.size)
        if n == 0:
            return np.zeros(0)
        idx = (np.arange(k - n, k)) & self._mask
        return self.cb_time[idx]

    def percentiles(self, last: int | None = None) -> dict:
        """median / p99 / p99.9 / max of the callback time in microseconds and as a fraction of the period,
        over the whole ring or the ``last`` n callbacks (the status line uses a short window so the
        control thread holds the GIL only briefly)."""
        t = self.times(last)
        per = self.period_s or float("nan")
        if t.size == 0:
            z = {"median": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
            return {"us": z, "load": dict(z), "n": 0}
        q = np.percentile(t, [50.0, 99.0, 99.9])
        us = {"median": q[0] * 1e6, "p99": q[1] * 1e6, "p999": q[2] * 1e6, "max": max(self.max_cb_s, t.max()) * 1e6}
        return {"us": {k: float(v) for k, v in us.items()},
                "load": {k: float(v * 1e-6 / per) for k, v in us.items()}, "n": int(t.size)}

    def snapshot(self, last: int | None = STATUS_WINDOW) -> dict:
        # Percentiles over the last STATUS_WINDOW callbacks by default (cheap for periodic readers:
        # status line, OSC /resculpt/latency at 30 Hz); last=None covers the whole ring (final report).
        """Flat dict of numbers for OSC feedback / JSON status.

        Keys: callbacks, frames, xruns, overruns, reconnects, errors, cb_last_us, cb_median_us, cb_p99_us,
        cb_p999_us, cb_max_us, load_p99 (p99 / period), load_max, period_us, block, sample_rate,
        latency_samples, latency_ms (total), chain_latency_samples, state.
        """
        p = self.percentiles(last)
        lat = self.latency
        return {
            "state": self.state, "callbacks": self.callbacks, "frames": self.frames, "xruns": self.xruns,
            "overruns": self.overruns, "reconnects": self.reconnects, "errors": self.errors, "cb_last_us": self.last_cb_s * 1e6,
            "cb_median_us": p["us"]["median"], "cb_p99_us": p["us"]["p99"], "cb_p999_us": p["us"]["p999"],
            "cb_max_us": p["us"]["max"], "load_p99": p["load"]["p99"], "load_max": p["load"]["max"],
            "period_us": self.period_s * 1e6, "block": self.block, "sample_rate": self.sample_rate,
            "latency_samples": lat.total if lat else 0, "latency_ms": lat.ms(lat.total) if lat else 0.0,
            "chain_latency_samples": lat.chain if lat else 0,
        }


@dataclass
class LatencyReport:
    """Latency in samples at ``sample_rate``.

    chain: algorithmic latency of the chain (what ``resculpt render`` trims).
    input: buffering before the chain (JACK: capture latency of the ports feeding in_*; PortAudio:
        the stream's input latency). output: buffering after it (JACK playback latency of what out_*
        feeds; PortAudio output latency). total = chain + input + output (mic to speaker).
    compensated: whether the backend publishes the chain latency to hosts (JACK port latency).
    """

    sample_rate: int
    block: int
    chain: int
    input: int = 0
    output: int = 0
    backend: str = ""
    compensated: bool = False

    @property
    def total(self) -> int:
        return self.chain + self.input + self.output

    def ms(self, samples: int) -> float:
        return 1000.0 * samples / self.sample_rate if self.sample_rate else 0.0

    def as_dict(self) -> dict:
        return {"sample_rate": self.sample_rate, "block": self.block, "chain_samples": self.chain,
                "input_samples": self.input, "output_samples": self.output, "total_samples": self.total,
                "chain_ms": self.ms(self.chain), "input_ms": self.ms(self.input), "output_ms": self.ms(self.output),
                "total_ms": self.ms(self.total), "backend": self.backend, "compensated": self.compensated}

    def describe(self) -> str:
        comp = "published on the JACK ports (hosts compensate)" if self.compensated else "not compensable on this backend"
        return (f"latency: chain {self.chain} samples ({self.ms(self.chain):.2f} ms, {comp}) + {self.backend} "
                f"buffering in {self.input} + out {self.output} samples = {self.total} samples "
                f"({self.ms(self.total):.2f} ms) at {self.sample_rate} Hz, {self.block}-sample periods")


# -- the shared block processor --------------------------------------------------------------------
class _Core:
    """Ports <-> preallocated buffer <-> chain. Everything allocated in ``prepare``."""

    def __init__(self, chain):
        self.chain = chain

    def prepare(self, block: int) -> None:
        c = self.chain.channels
        self.maxb = int(self.chain.max_block)
        self.buf = np.zeros((c, self.maxb), np.float32)
        self.set_block(block)

    def set_block(self, block: int) -> None:
        b = min(int(block), self.maxb)
        view = self.buf[:, :b]
        # One reference store, so a callback running concurrently sees the old or the new triple.
        self.cur = (b, view, [view[k] for k in range(view.shape[0])])
        self.block = b

    def run(self, ins, outs, n: int) -> None:
        """ins: sequence of 1-D float32 input arrays (1 or 2, len >= n); outs: 1-D outputs (1 or 2).

        Mono chain: in_1 -> chain -> every output. Stereo chain: in_k -> channel k (a single input
        feeds both channels), channel k -> out_k (a single output gets channel 0).
        """
        chain = self.chain
        c = self.buf.shape[0]
        b, view, rows = self.cur
        if n == b:
            self._one(chain, view, rows, ins, outs, c, 0, n)
            return
        pos = 0
        while pos < n:  # other sizes (JACK buffer-size change, PortAudio variable blocks): chunks
            m = min(n - pos, self.maxb)
            view = self.buf[:, :m]
            rows = [view[k] for k in range(c)]
            self._one(chain, view, rows, ins, outs, c, pos, m)
            pos += m

    @staticmethod
    def _one(chain, view, rows, ins, outs, c, pos, m):
        full = pos == 0 and m == len(rows[0]) and len(ins[0]) == m
        ni = len(ins)
        for k in range(c):
            src = ins[k if k < ni else 0]
            np.copyto(rows[k], src if full else src[pos : pos + m])
        chain.process(view)
        for k in range(len(outs)):
            dst = outs[k]
            np.copyto(dst if full else dst[pos : pos + m], rows[k if k < c else 0])


# -- JACK -----------------------------------------------------------------------------------------
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

    def __init__(self, client_name: str = "resculpt", server: str | None = None, inputs=None, outputs=None,
                 auto_connect: bool = False, rate: int | None = None, block: int | None = None):
        self.client_name = client_name
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
            client = _open_client(jack, self.client_name, self.server)
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

    def bind(self, engine) -> None:
        """Install callbacks (before activate)."""
        jack, client = self._jack, self.client
        ffi, lib = jack._ffi, jack._lib
        get_buffer = lib.jack_port_get_buffer
        stats = engine.stats
        core = engine.core
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
        perf = _perf

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
                core.run(ins, outs, frames)
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
            if n <= core.maxb:
                core.set_block(n)

        def samplerate(sr):
            if sr != self.sample_rate:
                self._gone = True  # reopen and re-prepare at the new rate

        client.set_process_callback(process)
        client.set_xrun_callback(xrun)
        client.set_shutdown_callback(shutdown)
        client.set_blocksize_callback(blocksize)
        client.set_samplerate_callback(samplerate)
        self._install_latency_callback(engine)

    def _port_addr(self, port):
        return int(self._jack._ffi.cast("uintptr_t", port._ptr))

    def _client_addr(self):
        return int(self._jack._ffi.cast("uintptr_t", self.client._ptr))

    def _install_latency_callback(self, engine):
        lib = _jack_latency_lib()
        self.compensated = False
        if lib is None:
            return
        ins = [self._port_addr(p) for p in self.ins]
        outs = [self._port_addr(p) for p in self.outs]
        chain = engine.chain

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
        name = self.client.name if self.client is not None else self.client_name
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


# -- PortAudio ------------------------------------------------------------------------------------
def _import_sd():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise LiveError(f"the PortAudio backend needs sounddevice and libportaudio2 (apt install libportaudio2): {e}") \
            from None
    return sd


def _pa_find(sd, spec, kind: str) -> int:
    """Resolve a device by index, exact name or case-insensitive substring; LiveError lists the devices."""
    devs = sd.query_devices()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    if spec is None or spec == "":
        idx = sd.default.device[0 if kind == "input" else 1]
        if idx is None or idx < 0:
            raise LiveError(f"device not found: no default {kind} device (no sound card?); "
                            f"`resculpt devices` lists what PortAudio sees")
        return int(idx)
    if isinstance(spec, int) or str(spec).isdigit():
        i = int(spec)
        if 0 <= i < len(devs) and devs[i][key] > 0:
            return i
    else:
        s = str(spec).lower()
        exact = [i for i, d in enumerate(devs) if d[key] > 0 and d["name"].lower() == s]
        part = [i for i, d in enumerate(devs) if d[key] > 0 and s in d["name"].lower()]
        if exact or part:
            return (exact or part)[0]
    names = [f"{i}: {d['name']}" for i, d in enumerate(devs) if d[key] > 0]
    raise LiveError(f"device not found: no PortAudio {kind} device {spec!r}; {kind} devices: "
                    f"{'; '.join(names) or '(none)'}")


class PortAudioBackend:
    """PortAudio via sounddevice: one duplex stream on ``input``/``output`` (index or name)."""

    kind = "portaudio"
    watchdog = True

    def __init__(self, input=None, output=None, rate: int = 48000, block: int = 128, latency="low"):
        self.input, self.output = input, output
        self.want_rate, self.want_block = int(rate or 48000), int(block or 128)
        self.latency_hint = latency
        self.stream = None
        self._gone = False

    abandoned = False

    def open(self):
        if self.abandoned:
            raise LiveError("PortAudio did not release the vanished device (it hangs inside the old stream; "
                            "seen with its JACK host API when the JACK server dies): restart `resculpt live`, or "
                            "use --backend jack, which reconnects on its own")
        sd = _import_sd()
        self._sd = sd
        self._gone = False
        if not (MIN_BLOCK <= self.want_block <= MAX_BLOCK):
            raise LiveError(f"unsupported block size {self.want_block} (live mode takes {MIN_BLOCK}..{MAX_BLOCK})")
        di = _pa_find(sd, self.input, "input")
        do = _pa_find(sd, self.output, "output")
        devs = sd.query_devices()
        self.cin = min(2, int(devs[di]["max_input_channels"]))
        self.cout = min(2, int(devs[do]["max_output_channels"]))
        self.devices = (di, do)
        self.names = (devs[di]["name"], devs[do]["name"])
        try:
            sd.check_input_settings(device=di, channels=self.cin, dtype="float32", samplerate=self.want_rate)
            sd.check_output_settings(device=do, channels=self.cout, dtype="float32", samplerate=self.want_rate)
        except Exception as e:
            rates = sorted({int(devs[di]["default_samplerate"]), int(devs[do]["default_samplerate"])})
            raise LiveError(f"unsupported rate: {self.names[0]!r}/{self.names[1]!r} cannot run at "
                            f"{self.want_rate} Hz ({e}); the devices' default rate: "
                            f"{' / '.join(f'{r} Hz' for r in rates)}") from None
        self.sample_rate, self.block = self.want_rate, self.want_block
        return self.sample_rate, self.block

    def bind(self, engine) -> None:
        sd = self._sd
        stats, core = engine.stats, engine.core
        cin, cout = self.cin, self.cout
        ins = [None] * cin
        outs = [None] * cout
        perf = _perf
        bad = int(sd.CallbackFlags(0x1 | 0x2 | 0x4 | 0x8)._flags) if hasattr(sd.CallbackFlags(), "_flags") else 0xF

        def callback(indata, outdata, frames, t, status):
            t0 = perf()
            if status._flags & bad:
                stats.xruns += 1
            for k in range(cin):
                ins[k] = indata[:, k]
            for k in range(cout):
                outs[k] = outdata[:, k]
            try:
                core.run(ins, outs, frames)
            except Exception:
                stats.errors += 1
                outdata.fill(0.0)
            stats.record(perf() - t0, frames)

        def finished():
            if not engine._stopping:
                self._gone = True

        try:
            self.stream = sd.Stream(device=self.devices, samplerate=self.sample_rate, blocksize=self.block,
                                    dtype="float32", channels=(self.cin, self.cout), latency=self.latency_hint,
                                    callback=callback, finished_callback=finished)
        except Exception as e:
            raise LiveError(f"cannot open {self.names[0]!r} -> {self.names[1]!r} at {self.sample_rate} Hz, "
                            f"{self.block}-sample blocks: {e}") from None
        self.compensated = False

    def connect(self) -> None:
        pass

    def mark_gone(self) -> None:
        self._gone = True

    def remember_connections(self) -> None:
        pass

    def recompute_latency(self) -> None:
        pass

    def activate(self) -> None:
        self.stream.start()

    def alive(self) -> bool:
        return self.stream is not None and not self._gone and self.stream.active

    def latency(self) -> tuple[int, int]:
        if self.stream is None:
            return 0, 0
        li, lo = self.stream.latency
        return int(round(li * self.sample_rate)), int(round(lo * self.sample_rate))

    def describe(self) -> str:
        return f"PortAudio {self.names[0]!r} -> {self.names[1]!r} ({self.cin} in, {self.cout} out)"

    def close(self) -> None:
        s, self.stream = self.stream, None
        if s is None:
            return

        def _close():
            try:
                s.abort()
                s.close()
            except Exception:
                pass

        if not self._gone:
            _close()
            return
        # The device vanished. PortAudio can hang in abort/close here (seen with its JACK host API when
        # the JACK server dies), so close on a helper thread and give up on the stream after 2 s.
        t = threading.Thread(target=_close, name="resculpt-pa-close", daemon=True)
        t.start()
        t.join(2.0)
        if t.is_alive():
            self.abandoned = True  # PortAudio is stuck inside that stream: no rescan, no reopen in-process
            return
        # Rescan devices before reopening (a USB mic may come back under a new index).
        try:
            self._sd._terminate()
            self._sd._initialize()
        except Exception:
            pass


# -- the engine -----------------------------------------------------------------------------------
class LiveEngine:
    """Run ``chain`` on ``backend`` in real time.

    Args:
        chain: a :class:`~resculpt.plugin_host.host.Chain` (re-prepared at the backend's rate and
            block size if they differ).
        backend: :class:`JackBackend` or :class:`PortAudioBackend`.
        ring_size: callback times kept for the percentiles.
        warmup_blocks: silent blocks run through the chain before start (then ``chain.reset()``).
        switch_interval: GIL switch interval during the run (seconds; None leaves it).
        gc_interval: seconds between young-generation collections on the supervisor thread.
        reconnect: reopen the backend when the server/device vanishes (every ``reconnect_interval`` s).
        stall_timeout: PortAudio only: no callback for this many seconds counts as a vanished device
            (some drivers stop calling back instead of reporting an error).
        on_event: callable(event: str, info: dict) run on the supervisor thread ("ready", "status",
            "reconnecting", "reconnected", "latency"); status every ``status_interval`` s.
    """

    def __init__(self, chain, backend, *, ring_size: int = 1 << 16, warmup_blocks: int = 64,
                 switch_interval: float | None = 0.001, gc_interval: float = 5.0, reconnect: bool = True,
                 reconnect_interval: float = 1.0, status_interval: float = 1.0, stall_timeout: float = 2.0,
                 on_event=None):
        self.chain = chain
        self.backend = backend
        self.stats = LiveStats(ring_size)
        self.core = _Core(chain)
        self.warmup_blocks = warmup_blocks
        self.switch_interval = switch_interval
        self.gc_interval = gc_interval
        self.reconnect = reconnect
        self.reconnect_interval = reconnect_interval
        self.status_interval = status_interval
        self.stall_timeout = stall_timeout
        self.on_event = on_event
        self._stopping = False
        self._thread = None
        self._saved = None
        self.last_error: str | None = None
        chain.stats.extra["live"] = self.stats

    # lifecycle
    def _open(self) -> None:
        sr, bs = self.backend.open()
        ch = self.chain
        try:
            if ch.sample_rate != sr or ch.max_block < bs:
                ch.prepare(sr, max(bs, ch.max_block if ch.sample_rate == sr else bs), ch.channels)
            self.core.prepare(bs)
            st = self.stats
            st.sample_rate, st.block, st.period_s = sr, bs, bs / sr
            self._warm_up(bs)
            st.first_frame = -1
            self.backend.bind(self)
            self.backend.activate()
            self.backend.connect()
        except BaseException:
            self.backend.close()
            raise
        self.backend.recompute_latency()
        time.sleep(0.05)  # JACK propagates port latencies asynchronously after (re)connections
        self._update_latency()

    def _warm_up(self, bs: int) -> None:
        """Run silent blocks so first-call costs (numpy/pedalboard paths, caches) happen now; then reset."""
        z = [np.zeros(bs, np.float32)] * 2
        o = [np.zeros(bs, np.float32), np.zeros(bs, np.float32)]
        for _ in range(self.warmup_blocks):
            self.core.run(z, o, bs)
        self.chain.reset()

    def start(self) -> LiveEngine:
        """Open the backend, warm up, freeze gc, activate, connect. Raises LiveError with a clear message."""
        self._stopping = False
        self._open()
        gc.collect()
        self._saved = (gc.isenabled(), sys.getswitchinterval())
        gc.freeze()
        gc.disable()
        if self.switch_interval:
            sys.setswitchinterval(self.switch_interval)
        self.stats.state = "running"
        t_end = time.monotonic() + 2.0
        while self.stats.callbacks == 0 and time.monotonic() < t_end:  # first_frame known when ready
            time.sleep(0.005)
        self._emit("ready", self.info())
        self._thread = threading.Thread(target=self._supervise, name="resculpt-live-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop audio, close the backend, restore gc and the switch interval. Idempotent."""
        self._stopping = True
        t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout=5.0)
        self.backend.close()
        self.stats.state = "stopped"
        if self._saved is not None:
            enabled, sw = self._saved
            self._saved = None
            sys.setswitchinterval(sw)
            gc.unfreeze()
            if enabled:
                gc.enable()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # control side
    def info(self) -> dict:
        lat = self.stats.latency
        return {"backend": self.backend.kind, "where": self.backend.describe(), "sample_rate": self.stats.sample_rate,
                "block": self.stats.block, "channels": self.chain.channels, "preset": self.chain.preset_name,
                "first_frame": self.stats.first_frame, "latency": lat.as_dict() if lat else None,
                "client": getattr(getattr(self.backend, "client", None), "name", None)}

    def _update_latency(self) -> None:
        b = self.backend
        li, lo = b.latency()
        self.stats.latency = LatencyReport(self.stats.sample_rate, self.stats.block, int(self.chain.latency_samples),
                                           li, lo, b.kind, bool(getattr(b, "compensated", False)))

    def _emit(self, event: str, info: dict) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event, info)
            except Exception:
                pass

    def _supervise(self) -> None:
        last_status = last_gc = last_lat = cb_time = time.monotonic()
        cb_seen = -1
        chain_lat = self.chain.latency_samples
        while not self._stopping:
            time.sleep(0.05)
            now = time.monotonic()
            if self.stall_timeout and self.stats.callbacks != cb_seen:
                cb_seen, cb_time = self.stats.callbacks, now
            stalled = bool(self.stall_timeout) and getattr(self.backend, "watchdog", False) and \
                now - cb_time > self.stall_timeout
            if stalled or not self.backend.alive():
                self.backend.mark_gone()  # close() then treats it as vanished (guarded, no rescan hang)
                if not self.reconnect:
                    self.stats.state = "stopped"
                    self._emit("stopped", {"reason": "backend gone"})
                    return
                self._reconnect()
                cb_time = time.monotonic()
                continue
            if self.chain.latency_samples != chain_lat:  # a preset with another latency was loaded
                chain_lat = self.chain.latency_samples
                self.backend.recompute_latency()
                self._update_latency()
                self._emit("latency", self.stats.latency.as_dict())
            if now - last_lat >= 1.0:
                last_lat = now
                self.backend.remember_connections()
                self._update_latency()
            if self.gc_interval and now - last_gc >= self.gc_interval:
                last_gc = now
                gc.collect(0)
            if self.status_interval and now - last_status >= self.status_interval:
                last_status = now
                self._emit("status", self.stats.snapshot(last=STATUS_WINDOW))

    def _reconnect(self) -> None:
        st = self.stats
        st.state = "reconnecting"
        self._emit("reconnecting", {"where": self.backend.describe()})
        self.backend.close()
        while not self._stopping:
            try:
                self._open()
            except LiveError as e:
                if str(e) != self.last_error:
                    self._emit("reconnect_failed", {"error": str(e)})
                self.last_error = str(e)
                t_end = time.monotonic() + self.reconnect_interval
                while time.monotonic() < t_end and not self._stopping:
                    time.sleep(0.05)
                continue
            st.reconnects += 1
            st.state = "running"
            self._emit("reconnected", self.info())
            return


def status_line(stats: LiveStats) -> str:
    """One terminal line: state, period, latency, callback timing, xruns."""
    s = stats.snapshot()
    lat = stats.latency
    lat_s = f"latency {lat.total} smp = {lat.ms(lat.total):.1f} ms (chain {lat.chain})" if lat else "latency ?"
    return (f"[{s['state']}] {s['sample_rate']} Hz/{s['block']} | {lat_s} | cb p99 {s['cb_p99_us'] / 1000:.2f} ms "
            f"({100 * s['load_p99']:.0f}%) max {s['cb_max_us'] / 1000:.2f} ms | xruns {s['xruns']} "
            f"overruns {s['overruns']} | reconnects {s['reconnects']}")


# -- device listing ---------------------------------------------------------------------------------
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


def list_portaudio() -> list[dict]:
    sd = _import_sd()
    apis = sd.query_hostapis()
    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append({"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
                    "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
                    "default_rate": d["default_samplerate"]})
    return out


__all__ = ["LiveEngine", "LiveStats", "LatencyReport", "LiveError", "JackBackend", "PortAudioBackend",
           "status_line", "list_jack", "list_portaudio"]
