"""Real-time factor of a chain and of each of its stages, on one thread.

RTF = processing time / audio duration (0.02 = 2 % of one core). Stage times are measured by
wrapping each board's process() and each spectral stage's process_frames() with perf_counter (wall
clock), or with thread_time (CPU time of the calling thread) when cpu_time=True: on a shared machine
wall time also counts the time other processes hold the core, thread CPU time does not;
"stft" is the section's own analysis/synthesis (section time minus its stages), "host" is the
chain's overhead around the engine (sanitising, dry ring, mix, gains).
"""

from __future__ import annotations

import os
import time

import numpy as np


def _timed(obj, attr, acc, key, clock):
    fn = getattr(obj, attr)

    def wrapper(*a, **k):
        t = clock()
        r = fn(*a, **k)
        acc[key] = acc.get(key, 0.0) + clock() - t
        return r

    setattr(obj, attr, wrapper)


def bench_chain(chain, seconds: float = 10.0, block: int = 128, signal: np.ndarray | None = None,
                warmup_blocks: int = 50, cpu_time: bool = False) -> dict:
    """Stream ``seconds`` of audio through ``chain`` in ``block``-sample blocks; return timings.

    cpu_time: time with the thread's CPU clock (time.thread_time) instead of the wall clock.
    Returns a dict: latency_samples, latency_ms, rtf, per_block_us (median, p99), stages
    [{name, rtf, latency_samples}], clock ("wall" or "thread_cpu").
    """
    clock = time.thread_time if cpu_time else time.perf_counter
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sr, c = chain.sample_rate, chain.channels
    n = int(seconds * sr)
    if signal is None:
        rng = np.random.default_rng(0)
        signal = (0.1 * rng.standard_normal((c, n))).astype(np.float32)
    else:
        reps = int(np.ceil(n / signal.shape[1]))
        signal = np.tile(signal, (1, reps))[:, :n].astype(np.float32)
    chain.reset()
    buf = signal.copy()
    warm = np.zeros((c, block), np.float32)
    for _ in range(warmup_blocks):
        chain.process(warm)
    chain.reset()
    eng = chain.graph
    acc: dict[str, float] = {}
    _timed(eng.pre, "process", acc, "pre", clock)
    _timed(eng.post, "process", acc, "post", clock)
    if eng.section is not None:
        _timed(eng.section, "process", acc, "section", clock)
        for st in eng.stages:
            _timed(st, "process_frames", acc, st.name, clock)
    times = np.empty(int(np.ceil(n / block)))
    k = 0
    for i in range(0, n, block):
        t = clock()
        chain.process(buf[:, i : i + block])
        times[k] = clock() - t
        k += 1
    total = float(times.sum())
    dur = n / sr
    stages = [{"name": "pre", "rtf": acc.get("pre", 0.0) / dur, "latency_samples": eng.pre.latency_samples,
               "plugins": [type(p).__name__ for p in eng.pre.plugins]}]
    if eng.section is not None:
        st_time = sum(acc.get(st.name, 0.0) for st in eng.stages)
        stages.append({"name": f"stft:{eng.layout.stft}", "rtf": (acc.get("section", 0.0) - st_time) / dur,
                       "latency_samples": eng.section.n_fft - 1})
        for st in eng.stages:
            stages.append({"name": st.name, "rtf": acc.get(st.name, 0.0) / dur,
                           "latency_samples": int(st.latency_frames) * eng.section.hop})
    stages.append({"name": "post", "rtf": acc.get("post", 0.0) / dur, "latency_samples": eng.post.latency_samples,
                   "plugins": [type(p).__name__ for p in eng.post.plugins]})
    engine_t = acc.get("pre", 0.0) + acc.get("section", 0.0) + acc.get("post", 0.0)
    stages.append({"name": "host", "rtf": (total - engine_t) / dur, "latency_samples": 0})
    # Undo the instrumentation.
    for obj in [eng.pre, eng.post, eng.section, *eng.stages]:
        if obj is not None:
            obj.__dict__.pop("process", None)
            obj.__dict__.pop("process_frames", None)
    return {
        "preset": chain.preset_name, "sample_rate": sr, "channels": c, "block": block, "seconds": dur,
        "latency_samples": chain.latency_samples, "latency_ms": 1000.0 * chain.latency_samples / sr,
        "rtf": total / dur, "per_block_us": {"median": float(np.median(times) * 1e6),
                                             "p99": float(np.percentile(times, 99) * 1e6)},
        "period_us": 1e6 * block / sr, "stages": stages,
        "clock": "thread_cpu" if cpu_time else "wall",
    }
