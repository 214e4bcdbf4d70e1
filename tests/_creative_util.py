"""Shared harness for the creative spectral-stage tests (tests/test_creative_*.py).

A *scenario* is (slots, params, events): spectral slot names run in one StreamingSTFT, initial
parameter values, and parameter changes at times in seconds (``[(t_s, {id: value})]``). Events are applied between process()
calls at exactly the same sample in every run (and snapped, so no ramp depends on the block
partition), which is what makes streaming == offline a meaningful, exact check with moving params.
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
from numpy.testing import assert_allclose
from resculpt.dsp.params import ParamTable
from resculpt.dsp.processor import SUPPORTED_RATES  # noqa: F401  (re-exported for the tests)
from resculpt.dsp.stft import StreamingSTFT
from resculpt.plugin_host import catalog

BLOCK_SIZES = [1, 63, 64, 65, 512, 8193, "random"]


def signal_for(sample_rate: int, channels: int, seconds: float = 0.3, seed: int = 0) -> np.ndarray:
    """(channels, n) float32: a 440 Hz + 2.5 kHz tone pair under noise, with a louder burst."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(seed)
    rows = []
    for ch in range(channels):
        y = 0.3 * np.sin(2 * np.pi * 440.0 * t + ch) + 0.1 * np.sin(2 * np.pi * 2500.0 * t)
        y += 0.03 * rng.standard_normal(n)
        burst = (t > 0.4 * seconds) & (t < 0.55 * seconds)
        y[burst] += 0.3 * rng.standard_normal(int(burst.sum()))
        rows.append(y)
    return np.asarray(rows, np.float32)


def make_section(slots, sample_rate=48000, channels=2, params=None, stft="default", linked=True,
                 max_block=1 << 16):
    """A prepared StreamingSTFT running ``slots`` with a full catalog ParamTable (snapped)."""
    table = ParamTable(catalog.all_param_specs())
    if params:
        table.set_many(params, notify=False)
    table.prepare(sample_rate)
    stages = [catalog.SLOTS[s].build(table) for s in slots]
    sec = StreamingSTFT(stft, stages, linked, table=table)
    sec.prepare(sample_rate, max_block, channels)
    return sec, table


def restart(sec, table, init: dict) -> None:
    """Put the table back to ``init`` (all targets, snapped) and reset the section."""
    table.set_many(init, notify=False)
    table.snap()
    sec.reset()


def _sizes(spec, seed=1):
    if spec == "random":
        rng = np.random.default_rng(seed)
        while True:
            yield int(rng.integers(0, 700))  # includes zero-length blocks
    while True:
        yield int(spec)


def run(sec, table, x, block="whole", events=(), zero_blocks=False):
    """Stream ``x`` (plus latency zeros) through ``sec``; return the latency-trimmed output copy.

    block: an int, "random", or "whole" (one call per event segment = the offline render).
    events: [(sample_index, {param id: value})], applied (and snapped) before that sample.
    """
    lat = sec.latency_samples
    c, n = x.shape
    buf = np.zeros((c, n + lat), np.float32)
    buf[:, :n] = x
    cuts = sorted({0, n + lat, *[min(max(int(i), 0), n + lat) for i, _ in events]})
    ev = {}
    for i, p in events:
        ev.setdefault(min(max(int(i), 0), n + lat), {}).update(p)
    sizes = None if block == "whole" else _sizes(block)
    for a, b in itertools.pairwise(cuts):
        if a in ev:
            table.set_many(ev[a], notify=False)
            table.snap()
        if sizes is None:
            sec.process(buf[:, a:b])
            continue
        i = a
        while i < b:
            m = min(next(sizes), b - i)
            sec.process(buf[:, i : i + m])
            if zero_blocks:
                sec.process(buf[:, i + m : i + m])
            i += m
    return buf[:, lat:].copy()


def at_samples(events, sample_rate):
    """Scenario events in seconds -> run() events in samples."""
    return [(round(t * sample_rate), p) for t, p in events]


def check_streaming_equals_offline(slots, params, events, block, sample_rate=48000, channels=2, seconds=0.3,
                                   stft="default"):
    events = at_samples(events, sample_rate)
    x = signal_for(sample_rate, channels, seconds)
    sec, table = make_section(slots, sample_rate, channels, params, stft=stft)
    init = table.targets()
    ref = run(sec, table, x, "whole", events)
    restart(sec, table, init)
    got = run(sec, table, x, block, events)
    assert_allclose(got, ref, atol=1e-6, rtol=0)
    return ref


def check_reset_rerun_identical(slots, params, events, sample_rate=48000, channels=2):
    events = at_samples(events, sample_rate)
    x = signal_for(sample_rate, channels)
    sec, table = make_section(slots, sample_rate, channels, params)
    init = table.targets()
    a = run(sec, table, x, 512, events)
    restart(sec, table, init)
    b = run(sec, table, x, 512, events)
    assert np.array_equal(a, b)


def check_zero_length_blocks(slots, params, events, sample_rate=48000, channels=2):
    events = at_samples(events, sample_rate)
    x = signal_for(sample_rate, channels)
    sec, table = make_section(slots, sample_rate, channels, params)
    empty = np.zeros((channels, 0), np.float32)
    assert sec.process(empty).shape == (channels, 0)
    init = table.targets()
    a = run(sec, table, x, 64, events)
    restart(sec, table, init)
    b = run(sec, table, x, 64, events, zero_blocks=True)
    assert np.array_equal(a, b)


def check_nonfinite_input(slots, params, events, sample_rate=48000, channels=2):
    """NaN/Inf in the input: the output stays finite and the stage keeps producing sound after."""
    events = at_samples(events, sample_rate)
    x = signal_for(sample_rate, channels, seconds=0.4)
    n = x.shape[1]
    x[:, n // 4] = np.nan
    x[-1, n // 4 + 10] = np.inf
    x[0, n // 4 + 20] = -np.inf
    sec, table = make_section(slots, sample_rate, channels, params)
    with np.errstate(invalid="ignore", over="ignore"):  # numpy's FFT/sum warn about the NaN itself
        y = run(sec, table, x, 128, events)
    assert np.isfinite(y).all()
    tail = y[:, int(0.8 * n) :]
    assert np.sqrt(np.mean(tail ** 2)) > 1e-3, "the section did not recover after the bad samples"
    # Through the Chain too (host sanitiser + section guard).
    from resculpt.plugin_host.chain import Chain

    ch = Chain({"spectral": list(slots)}, sample_rate, channels, 512, params=params)
    y2 = ch(x)
    assert np.isfinite(y2).all()


def check_rate_and_channels(slots, params, events, sample_rate, channels):
    """Runs at the rate with the right latency, finite output, streaming == offline (block 65)."""
    sec, _table = make_section(slots, sample_rate, channels, params)
    n_fft, hop = sec.config.sizes(sample_rate)
    assert sec.latency_samples == n_fft - 1
    assert hop == round(0.005 * sample_rate)
    y = check_streaming_equals_offline(slots, params, events, 65, sample_rate, channels, seconds=0.25)
    assert y.shape == (channels, int(0.25 * sample_rate))
    assert np.isfinite(y).all()
    return y


def _measure_allocation(sec, x, calls, block, rounds=3):
    """(net growth, transient peak) in bytes over ``calls`` process() calls, best of ``rounds``.

    Best of three: a per-frame allocation shows in every round, a one-off (a lazily built numpy
    loop, a gc pass, another thread) does not."""
    channels, n = x.shape
    buf = np.zeros((channels, block), np.float32)
    k = 0

    def step():
        nonlocal k
        i = (k * block) % (n - block)
        k += 1
        np.copyto(buf, x[:, i : i + block])
        sec.process(buf)

    for _ in range(200):  # warm-up: first-call caches, lazily built ufunc loops
        step()
    growths, peaks = [], []
    for _round in range(rounds):
        tracemalloc.start()
        try:
            snap0 = tracemalloc.take_snapshot()
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            for _ in range(calls):
                step()
            _, peak = tracemalloc.get_traced_memory()
            snap1 = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        growths.append(sum(s.size_diff for s in snap1.compare_to(snap0, "filename")))
        peaks.append(peak - base)
        del snap0, snap1
    return min(growths), min(peaks)


def check_no_allocation(slots, params, events=(), sample_rate=48000, channels=2, calls=1500, block=64,
                        limit_bytes=4096, linked=True):
    """tracemalloc: net growth over many process() calls stays ~0 (nothing kept), and the transient
    peak is within 1 KB of an empty section's (numpy's irfft keeps a ~1.4 KB scratch of its own),
    i.e. the stages allocate no array per frame: one (n_bins,) float32 row is 1.9 KB at 48 kHz."""
    sec, table = make_section(slots, sample_rate, channels, params, linked=linked)
    if events:  # applied up front: the allocation test runs the end state (times are ignored)
        for _, p in events:
            table.set_many(p, notify=False)
        table.snap()
    x = signal_for(sample_rate, channels, seconds=1.0)
    growth, peak = _measure_allocation(sec, x, calls, block)
    empty, _ = make_section([], sample_rate, channels, {}, linked=linked)
    _, peak0 = _measure_allocation(empty, x, calls, block)
    assert growth < limit_bytes, f"net growth {growth} bytes over {calls} calls"
    assert peak - peak0 < 1024, f"transient peak {peak} B vs {peak0} B for an empty section"
