"""Per-callback time of the live path without a JACK server: the distribution a live host sees, not the mean.

Streams the bundled speech clip through a preset's chain in ``--block``-sample blocks the way the JACK
callback does (port buffers -> :class:`~resculpt.plugin_host.live.bridge.PortBridge` -> ``Chain.process``
in place -> port buffers, then ``LiveStats.record``), with the chain's meters attached as the OSC server
attaches them, and optionally the benchmark's parameter traffic (``--param-hz``: the
``benchmarks/live.py`` cycle set on the chain's table between callbacks, as the OSC thread would). Each
callback is timed with perf_counter; the table splits callbacks that complete an STFT hop (analysis,
model call, synthesis) from those that only move samples. Rounds are interleaved across the
configurations (mono/stereo, with and without traffic) and every configuration reports the median over
rounds of each percentile, so a slow spell of the shared machine hits them all alike. ``--cpu-time`` times
each callback with the thread's CPU clock instead (time.thread_time): on a loaded machine the wall clock also
counts the time other processes hold the core, which is the machine's, not the code's.

    .venv/bin/python benchmarks/live_callback.py --preset denoise-live --block 128
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from live import PARAM_CYCLE, RATE, _speech  # noqa: E402


class _Case:
    """One configuration: a chain, its bridge, meters and stats, and a preallocated timing buffer."""

    def __init__(self, preset: str, channels: int, block: int, param_hz: float, n_cb: int):
        from resculpt.plugin_host.chain import Chain
        from resculpt.plugin_host.live.bridge import PortBridge
        from resculpt.plugin_host.live.stats import LiveStats
        from resculpt.plugin_host.meters import Meters

        self.chain = Chain.from_preset(preset, sample_rate=RATE, channels=channels, max_block=block)
        self.chain.attach_meters(Meters())
        self.bridge = PortBridge(self.chain)
        self.bridge.prepare(block)
        self.stats = LiveStats(n_cb)
        self.stats.sample_rate, self.stats.block, self.stats.period_s = RATE, block, block / RATE
        self.channels, self.block, self.param_hz = channels, block, param_hz
        self.times = np.zeros(n_cb)
        self.frames = np.zeros(n_cb, np.int64)
        self.name = f"{'mono' if channels == 1 else 'stereo'}, " + (
            f"{param_hz:g} param msgs/s" if param_hz else "no param traffic")

    def run(self, sig: np.ndarray, n_cb: int, clock=time.perf_counter) -> None:
        """n_cb callbacks over ``sig`` (2, n) looped; fills ``times`` (s) and ``frames`` (hops completed)."""
        block, chain, bridge, stats = self.block, self.chain, self.bridge, self.stats
        ins = [np.zeros(block, np.float32), np.zeros(block, np.float32)]
        outs = [np.zeros(block, np.float32), np.zeros(block, np.float32)]
        sec = chain.graph.section
        chain.reset()
        every = int(round(RATE / block / self.param_hz)) if self.param_hz else 0
        perf = clock
        n, pos, k_msg = sig.shape[1], 0, 0
        for k in range(n_cb):
            if every and k % every == 0:
                pid, (a, b) = PARAM_CYCLE[k_msg % len(PARAM_CYCLE)]
                chain.params.set(pid, a if (k_msg // len(PARAM_CYCLE)) % 2 else b)
                k_msg += 1
            if pos + block > n:
                pos = 0
            np.copyto(ins[0], sig[0, pos : pos + block])
            np.copyto(ins[1], sig[1, pos : pos + block])
            pos += block
            f0 = sec.frames_processed if sec is not None else 0
            t0 = perf()
            bridge.run(ins, outs, block)
            stats.record(perf() - t0, block)
            self.times[k] = stats.last_cb_s
            self.frames[k] = (sec.frames_processed if sec is not None else 0) - f0


def _parts(block: int, calls: int = 2000, rounds: int = 5) -> dict:
    """Thread CPU time (us) of the per-callback pieces around the chain's own processing, best of ``rounds`` runs
    of ``calls``: the meters' audio side of one callback (block_in, the STFT taps of one hop, block_out) and
    the two sanitizer passes, mono and stereo."""
    from resculpt.dsp.sanitize import Sanitizer
    from resculpt.plugin_host.meters import Meters

    out = {}
    rng = np.random.default_rng(0)
    for c in (1, 2):
        b = (0.1 * rng.standard_normal((c, block))).astype(np.float32)
        spec = np.zeros((c, 241), np.complex64)
        m = Meters()
        m.prepare(RATE, block, c)
        san = Sanitizer()
        san.prepare(block, c)

        def meters():
            m.block_in(b)
            m.frame_in(spec)
            m.frame_out(spec)
            m.block_out(b, 1e-4)

        def sanitize():
            san.process(b)
            san.process(b)

        for name, fn in (("meters", meters), ("sanitizers", sanitize)):
            best = float("inf")
            for _ in range(rounds):
                t0 = time.thread_time()
                for _ in range(calls):
                    fn()
                best = min(best, (time.thread_time() - t0) / calls)
            out[f"{name}, {'mono' if c == 1 else 'stereo'}"] = best * 1e6
    return out


def _pct(t: np.ndarray) -> dict:
    if t.size == 0:
        return {"n": 0, "mean": 0.0, "median": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    q = np.percentile(t, [50.0, 99.0, 99.9]) * 1e6
    return {"n": int(t.size), "mean": float(t.mean() * 1e6), "median": float(q[0]), "p99": float(q[1]),
            "p999": float(q[2]), "max": float(t.max() * 1e6)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="denoise-live")
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=20.0, help="audio per round and configuration")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--param-hz", type=float, default=50.0, help="parameter messages per second in the traffic rows")
    ap.add_argument("--cpu-time", action="store_true", help="time with the thread's CPU clock (see above)")
    ap.add_argument("--out", default=None, help="markdown table (default: print only)")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sig = _speech()
    n_cb = int(a.seconds * RATE / a.block)
    cases = [_Case(a.preset, c, a.block, hz, n_cb) for c in (1, 2) for hz in (0.0, a.param_hz)]
    for c in cases:  # warm-up: first-call costs (numpy paths, onnxruntime arenas)
        c.run(sig, 200)
    per = {c.name: [] for c in cases}
    for _ in range(a.rounds):
        for c in cases:
            c.run(sig, n_cb, time.thread_time if a.cpu_time else time.perf_counter)
            fr = c.frames
            per[c.name].append({"all": _pct(c.times), "hop": _pct(c.times[fr > 0]), "no hop": _pct(c.times[fr == 0])})
    period_us = 1e6 * a.block / RATE
    load = os.getloadavg()
    lines = [
        f"# Live callback path without JACK (`benchmarks/live_callback.py`): `{a.preset}`, {a.block}-sample blocks",
        "",
        f"Command: `.venv/bin/python benchmarks/live_callback.py --preset {a.preset} --block {a.block} "
        f"--seconds {a.seconds:g} --rounds {a.rounds} --param-hz {a.param_hz:g}{' --cpu-time' if a.cpu_time else ''}`",
        "",
        f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {platform.node()} ({os.cpu_count()} shared "
        f"cores, load average {load[0]:.2f}), {RATE} Hz, one thread. Per callback: port buffers -> PortBridge -> "
        f"Chain.process (meters attached) -> port buffers -> LiveStats.record, timed with "
        f"{'the thread CPU clock (thread_time)' if a.cpu_time else 'the wall clock (perf_counter)'}; "
        f"{a.seconds:g} s of the bundled speech clip per round, {a.rounds} rounds interleaved across the rows, each "
        f"figure the median over rounds. Period {period_us:.0f} us. \"hop\" = callbacks that complete an STFT hop "
        f"(analysis, model call, synthesis); \"no hop\" = the others.",
        "",
        "| configuration | callbacks | mean us | median us | p99 us | p99.9 us | max us | hop median / p99 us | "
        "no-hop median / p99 us | RTF |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    result = {}
    for c in cases:
        rs = per[c.name]
        med = {part: {k: float(np.median([r[part][k] for r in rs])) for k in rs[0][part]} for part in rs[0]}
        result[c.name] = med
        al, hp, nh = med["all"], med["hop"], med["no hop"]
        lines.append(f"| {c.name} | {al['n']:.0f} | {al['mean']:.0f} | {al['median']:.0f} | {al['p99']:.0f} | "
                     f"{al['p999']:.0f} | {al['max']:.0f} | {hp['median']:.0f} / {hp['p99']:.0f} | "
                     f"{nh['median']:.0f} / {nh['p99']:.0f} | {al['mean'] / period_us:.4f} |")
    lines += ["", "RTF = mean callback time / period (the whole live callback path, meters included).", "",
              "Pieces of every callback (thread CPU us per callback, best of 5 x 2000 calls): "
              + ", ".join(f"{k} {v:.1f}" for k, v in _parts(a.block).items()) + ".", ""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
