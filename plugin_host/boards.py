"""pedalboard boards run inside our block protocol, plus VST3 loading.

pedalboard cannot host a Python stage inside a Pedalboard, so the host calls a pre-board, our
spectral section and a post-board in one callback, each board with reset=False. Three pedalboard
behaviours (0.9.x) shape this wrapper, all checked by tests/test_boards.py:
  * a call with more samples than any earlier call re-prepares the plugins and drops their state,
    so prepare() runs silent max_block calls first;
  * the channel layout of a (2, 1) or (2, 2) array is guessed from the previous call, and reset()
    forgets it, so every reset is followed by a zero-length call, and a (c, c) block is split in two;
  * a plugin with look-ahead (BrickwallLimiter: 5 ms, plus 60 samples with true-peak detection)
    returns that many samples fewer than it was given, over the first calls after a reset, and then as
    many as it is given: offline, pedalboard trims its delay away. prepare() measures the shortfall
    with silence, reports it as the board's latency, and every reset feeds that much silence through
    and drops it, so each later call returns a full block, delayed by exactly the reported latency.
"""

from __future__ import annotations

import numpy as np
import pedalboard

from resculpt.dsp.params import ParamSpec
from resculpt.dsp.processor import Processor


class Board(Processor):
    """A list of pedalboard plugins processed in place.

    process(block): float32 (channels, n), any n in 0..max_block.
    """

    name = "board"

    def __init__(self, plugins, name: str = "board"):
        super().__init__()
        self.name = name
        self.plugins = list(plugins)
        self.board = pedalboard.Pedalboard(self.plugins)

    def prepare(self, sample_rate, max_block, channels):
        super().prepare(sample_rate, max_block, channels)
        self._silence = np.zeros((channels, max_block), np.float32)
        self._empty = np.zeros((channels, 0), np.float32)
        self._held = self._held_back() if self.plugins else 0
        # A VST3 may also report latency that pedalboard does not trim (then nothing is held back):
        # the board's delay is the larger of the two.
        reported = sum(int(getattr(p, "reported_latency_samples", 0) or 0) for p in self.plugins)
        self.latency_samples = max(self._held, reported)
        self.reset()

    def _held_back(self) -> int:
        """Samples the plugins keep back from a stream (their trimmed look-ahead): silent max_block calls
        from a reset until one returns everything it was given (at most 2 s of them)."""
        sr, n = float(self.sample_rate), self.max_block
        self.board.reset()
        self.board(self._empty, sr, reset=False)
        held = 0
        for _ in range(int(2 * self.sample_rate) // n + 2):
            got = self.board(self._silence, sr, reset=False).shape[1]
            held += n - got
            if got == n:
                return held
        raise ValueError(f"{self.name}: the plugins still hold samples back after 2 s of calls")

    def reset(self):
        if self.plugins:
            sr = float(self.sample_rate)
            self.board.reset()
            self.board(self._empty, sr, reset=False)
            left = self._held
            while left > 0:  # fill the look-ahead with silence, so that every later call returns a full block
                k = min(left, self.max_block)
                if k == self.channels and k > 1:  # a (c, c) block: one column at a time, as process() does
                    for j in range(k):
                        self.board(self._silence[:, j : j + 1], sr, reset=False)
                else:
                    self.board(self._silence[:, :k], sr, reset=False)
                left -= k

    def process(self, block):
        n = block.shape[1]
        if n == 0 or not self.plugins:
            return block
        # board.process: the documented alias of calling the board, without the ~1 us of the call's own dispatch.
        if n == self.channels and n > 1:
            for k in range(n):
                block[:, k : k + 1] = self.board.process(block[:, k : k + 1], float(self.sample_rate), reset=False)
            return block
        block[:] = self.board.process(block, float(self.sample_rate), reset=False)
        return block


class ChannelBoards(Processor):
    """One mono :class:`Board` per channel, for stems beyond stereo: pedalboard's plugins process mono
    or stereo (its Reverb passes anything wider through untouched), so each channel runs its own
    instances. ``plugins``: the first channel's list (the same kinds run on every channel).

    process(block): float32 (channels, n), any n in 0..max_block.
    """

    name = "board"

    def __init__(self, boards: list[Board], name: str = "board"):
        super().__init__()
        self.name = name
        self.boards = list(boards)
        self.plugins = self.boards[0].plugins if self.boards else []

    def prepare(self, sample_rate, max_block, channels):
        if channels != len(self.boards):
            raise ValueError(f"{self.name}: built for {len(self.boards)} channels, prepared for {channels}")
        super().prepare(sample_rate, max_block, channels)
        for b in self.boards:
            b.prepare(sample_rate, max_block, 1)
        self.latency_samples = self.boards[0].latency_samples

    def reset(self):
        for b in self.boards:
            b.reset()

    def process(self, block):
        for k, b in enumerate(self.boards):
            b.process(block[k : k + 1])
        return block


def load_vst3(path: str):
    """Load a VST3 (or AU on macOS) plugin by path; raise ValueError with a clear message."""
    import os

    if not os.path.exists(path):
        raise ValueError(f"plugin not found: {path}")
    try:
        return pedalboard.load_plugin(path)
    except Exception as e:  # pedalboard raises ImportError/RuntimeError with varied text
        raise ValueError(f"could not load plugin {path}: {e}") from None


def plugin_param_specs(entry, plugin) -> list[ParamSpec]:
    """ParamSpecs for a hosted VST3's numeric parameters (id <slot>.<param name>); ``entry`` is the
    layout's :class:`~resculpt.plugin_host.layout.PluginEntry`."""
    specs = []
    for pname, p in getattr(plugin, "parameters", {}).items():
        lo, hi = getattr(p, "min_value", None), getattr(p, "max_value", None)
        if lo is None or hi is None:
            lo, hi = 0.0, 1.0
        try:
            lo, hi = float(lo), float(hi)
            val = float(getattr(plugin, pname))
        except (TypeError, ValueError):
            continue  # string/choice parameters are left to the plugin's own UI
        if not hi > lo:
            continue
        specs.append(ParamSpec(f"{entry.slot}.{pname}", lo, hi, min(max(val, lo), hi),
                               str(getattr(p, "label", "") or ""), smoothing_ms=20.0, doc=f"VST3 {pname}"))
    return specs
