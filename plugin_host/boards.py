"""pedalboard boards run inside our block protocol, plus VST3 loading.

pedalboard cannot host a Python stage inside a Pedalboard, so the host calls a pre-board, our
spectral section and a post-board in one callback, each board with reset=False. Two pedalboard
behaviours (0.9.x) shape this wrapper, both checked by tests/test_boards.py:
  * a call with more samples than any earlier call re-prepares the plugins and drops their state,
    so prepare() runs one silent max_block call first;
  * the channel layout of a (2, 1) or (2, 2) array is guessed from the previous call, and reset()
    forgets it, so every reset is followed by a zero-length call, and a (c, c) block is split in two.
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
        # Reported latency of hosted plugins (VST3s may report some; built-ins report 0).
        self.latency_samples = sum(int(getattr(p, "reported_latency_samples", 0) or 0) for p in self.plugins)
        if self.plugins:
            self.board(self._silence, float(sample_rate), reset=False)
        self.reset()

    def reset(self):
        if self.plugins:
            self.board.reset()
            self.board(self._empty, float(self.sample_rate), reset=False)

    def process(self, block):
        n = block.shape[1]
        if n == 0 or not self.plugins:
            return block
        if n == self.channels and n > 1:
            for k in range(n):
                block[:, k : k + 1] = self.board(block[:, k : k + 1], float(self.sample_rate), reset=False)
            return block
        block[:] = self.board(block, float(self.sample_rate), reset=False)
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
