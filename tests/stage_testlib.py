"""Helpers for the stage tests (tests/test_stage_conformance.py and the stage-specific test files).

A *rig* is one processor under test with the full catalog ParamTable that drives it: a
StreamingSTFT holding spectral stages, or a Board of a board slot's pedalboard plugins with the
slot's parameter bindings. A *scenario* runs a rig over a signal with parameter changes at given
samples (``[(sample, {id: value})]``), applied between process() calls at exactly the same sample in
every run and snapped, so no ramp depends on the block partition: that is what makes streaming ==
offline a meaningful check with moving parameters.
"""

from __future__ import annotations

import itertools
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
from conftest import stream
from resculpt.dsp.params import ParamTable
from resculpt.dsp.stft import StreamingSTFT
from resculpt.plugin_host import catalog

# Larger than any whole-signal call the tests make (0.3 s at 96 kHz plus a window of latency), so
# one call per event segment is the offline render.
MAX_BLOCK = 1 << 16


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


@dataclass
class Rig:
    """proc: the prepared Board or StreamingSTFT; table: the ParamTable it reads; binds: (param index,
    plugin, attribute, transform) for board plugins, pushed by :meth:`apply`."""

    proc: object
    table: ParamTable
    binds: list = field(default_factory=list)

    @property
    def latency_samples(self) -> int:
        return self.proc.latency_samples

    def apply(self) -> None:
        """Push the table's values into the board plugins (a spectral section reads the table itself)."""
        for i, plugin, attr, fn in self.binds:
            setattr(plugin, attr, fn(float(self.table.value[i])))

    def set(self, params: dict) -> None:
        """Set parameter targets and jump to them (between process() calls)."""
        self.table.set_many(params, notify=False)
        self.table.snap()
        self.apply()

    def restart(self, init: dict) -> None:
        """Put the table back to ``init`` (all targets, snapped) and reset the processor."""
        self.set(init)
        self.proc.reset()


def speech_clip(sr: int, channels: int, seconds: float) -> np.ndarray:
    """(channels, n) float32: the bundled speech example at ``sr``, its first ``seconds``; a second channel is the clip
    reversed at half level (different content in each channel)."""
    from conftest import EXAMPLE, resample
    from resculpt.models import data

    x, xsr = data.load(EXAMPLE)
    x = resample(x, xsr, sr)[: int(seconds * sr)]
    if channels == 2:
        return np.stack([x, 0.5 * x[::-1]]).astype(np.float32)
    return x[None].astype(np.float32)


def _table(params, sample_rate) -> ParamTable:
    table = ParamTable(catalog.all_param_specs())
    if params:
        table.set_many(params, notify=False)
    table.prepare(sample_rate)
    return table


def make_section(slots, sample_rate=48000, channels=2, params=None, stft="default", linked=True,
                 max_block=MAX_BLOCK) -> Rig:
    """A prepared StreamingSTFT running the spectral ``slots`` with a full catalog ParamTable (snapped)."""
    table = _table(params, sample_rate)
    stages = [catalog.SLOTS[s].build(table) for s in slots]
    sec = StreamingSTFT(stft, stages, linked, table=table)
    sec.prepare(sample_rate, max_block, channels)
    return Rig(sec, table)


def make_board(slots, sample_rate=48000, channels=2, params=None, max_block=MAX_BLOCK) -> Rig:
    """A prepared board of the board ``slots``' plugins as the host builds it for ``channels``
    (one mono board per channel above stereo), bound to a full catalog ParamTable (snapped)."""
    from resculpt.plugin_host.graph import build_board

    table = _table(params, sample_rate)
    board, binds = build_board(list(slots), table, channels, name="+".join(slots))
    rig = Rig(board, table, binds)
    rig.apply()
    rig.proc.prepare(sample_rate, max_block, channels)
    return rig


def run(rig: Rig, x: np.ndarray, block="whole", events=(), zero_blocks=False, seed=1, trim=True) -> np.ndarray:
    """Stream ``x`` (channels, n) plus latency zeros through the rig; return the latency-trimmed output
    (trim=False: ``x`` alone, and its output as it left the processor).

    block: an int, "random" (0..1000 samples, zero-length blocks included), or "whole" (one call per
    event segment: the offline render). events: [(sample index, {param id: value})], applied (and
    snapped) before that sample. zero_blocks: a zero-length call after every block.
    """
    lat = rig.latency_samples if trim else 0
    c, n = x.shape
    buf = np.zeros((c, n + lat), np.float32)
    buf[:, :n] = x
    ev = {}
    for i, p in events:
        ev.setdefault(min(max(int(i), 0), n + lat), {}).update(p)
    cuts = sorted({0, n + lat, *ev})
    for k, (a, b) in enumerate(itertools.pairwise(cuts)):
        if a in ev:
            rig.set(ev[a])
        sizes = [b - a] if block == "whole" else [block]
        if zero_blocks:
            sizes.append(0)
        buf[:, a:b] = stream(rig.proc, buf[:, a:b], sizes, seed=seed + k)
    return buf[:, lat:].copy()


def at_samples(events, sample_rate):
    """Scenario events in seconds -> run() events in samples."""
    return [(round(t * sample_rate), p) for t, p in events]


def measure_allocation(proc, x: np.ndarray, calls: int, block: int, rounds: int = 3, enough=None):
    """(net growth, transient peak) in bytes that tracemalloc sees over ``calls`` process() calls of
    ``block`` samples cut from ``x``, best of ``rounds``.

    Best of three: a per-frame allocation shows in every round, a one-off (a lazily built numpy
    loop, a gc pass, another thread) does not. ``enough(growth, peak)``, if given, ends the rounds as
    soon as the best figures so far satisfy it: a check of the best against a bound then gets the
    same verdict as after every round.

    The peak is the highest traced memory of the whole call, set by what is alive at that point: in a
    StreamingSTFT, process()'s view objects and numpy's irfft scratch (together ~1.4 KB over the
    call's base) hide a transient of up to ~1 KB allocated elsewhere in the call."""
    channels, n = x.shape
    buf = np.zeros((channels, block), np.float32)
    k = 0

    def step():
        nonlocal k
        i = (k * block) % (n - block)
        k += 1
        np.copyto(buf, x[:, i : i + block])
        proc.process(buf)

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
        if enough is not None and enough(min(growths), min(peaks)):
            break
    return min(growths), min(peaks)
