"""Callback timing, error counters and the latency report of a live session (read by the status
line, the CLI's JSON events and OSC feedback)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STATUS_WINDOW = 4096  # callbacks the periodic status percentiles look at (~10-20 s)


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
        """Flat dict of numbers for OSC feedback / JSON status.

        Percentiles cover the last STATUS_WINDOW callbacks by default (cheap for periodic readers:
        status line, OSC /resculpt/latency at 30 Hz); ``last=None`` covers the whole ring (final report).

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



def status_line(stats: LiveStats) -> str:
    """One terminal line: state, period, latency, callback timing, xruns."""
    s = stats.snapshot()
    lat = stats.latency
    lat_s = f"latency {lat.total} smp = {lat.ms(lat.total):.1f} ms (chain {lat.chain})" if lat else "latency ?"
    return (f"[{s['state']}] {s['sample_rate']} Hz/{s['block']} | {lat_s} | cb p99 {s['cb_p99_us'] / 1000:.2f} ms "
            f"({100 * s['load_p99']:.0f}%) max {s['cb_max_us'] / 1000:.2f} ms | xruns {s['xruns']} "
            f"overruns {s['overruns']} | reconnects {s['reconnects']}")

