"""The live session: a chain on an :class:`~.backend.AudioBackend`, and the control-side supervisor
thread that reports status, follows latency changes, collects young garbage and reconnects the
backend when its server or device vanishes (both backends take the same path: ``mark_gone``,
``close``, then ``open`` with the same device spec every ``reconnect_interval`` seconds).

Real-time set-up around the audio callback: after warm-up, ``gc.collect(); gc.freeze()`` moves
every existing object into the permanent generation and automatic collection is disabled for the
run, so no collector pass can start inside the callback (the supervisor runs ``gc.collect(0)``, the
young generation only, every ``gc_interval`` seconds so cycles made by control traffic are still
reclaimed); the GIL switch interval is lowered (default 1 ms) so a control thread holding the GIL
delays the callback by at most about that much. ``stop()`` restores both.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

import numpy as np

from .backend import AudioBackend, LiveError
from .bridge import PortBridge
from .stats import STATUS_WINDOW, LatencyReport, LiveStats

class LiveSession:
    """Run ``chain`` on ``backend`` in real time.

    Args:
        chain: a :class:`~resculpt.plugin_host.host.Chain` (re-prepared at the backend's rate and
            block size if they differ).
        backend: an :class:`~.backend.AudioBackend` (:class:`~.jack_backend.JackBackend`,
            :class:`~.portaudio_backend.PortAudioBackend`).
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

    def __init__(self, chain, backend: AudioBackend, *, ring_size: int = 1 << 16, warmup_blocks: int = 64,
                 switch_interval: float | None = 0.001, gc_interval: float = 5.0, reconnect: bool = True,
                 reconnect_interval: float = 1.0, status_interval: float = 1.0, stall_timeout: float = 2.0,
                 on_event=None):
        self.chain = chain
        self.backend = backend
        self.stats = LiveStats(ring_size)
        self.bridge = PortBridge(chain)
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
            self.bridge.prepare(bs)
            st = self.stats
            st.sample_rate, st.block, st.period_s = sr, bs, bs / sr
            self._warm_up(bs)
            st.first_frame = -1
            self.backend.bind(self.bridge, self.stats)
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
            self.bridge.run(z, o, bs)
        self.chain.reset()

    def start(self) -> LiveSession:
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
                "client": self.backend.client_name}

    def _update_latency(self) -> None:
        b = self.backend
        li, lo = b.latency()
        self.stats.latency = LatencyReport(self.stats.sample_rate, self.stats.block, int(self.chain.latency_samples),
                                           li, lo, b.kind, bool(b.compensated))

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
            stalled = bool(self.stall_timeout) and self.backend.watchdog and \
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

