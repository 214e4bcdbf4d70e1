"""A built chain: the boards and the spectral section of one layout, prepared, with parameter bindings.

Built and prepared on a control thread (it loads plugins and models and allocates); the host publishes
it by one reference store and the audio thread runs :meth:`SignalGraph.process`. A preset or layout
change builds a new graph while the old one keeps playing (see :mod:`resculpt.plugin_host.host`).
"""

from __future__ import annotations

import numpy as np

from resculpt.dsp.params import ParamTable
from resculpt.dsp.stft import StreamingSTFT

from . import catalog
from .boards import Board, plugin_param_specs
from .layout import Layout, PluginEntry

# The dry ring holds this much audio: the largest chain latency a layout may have.
MAX_LATENCY_S = 1.0


class SignalGraph:
    """Pre-board, spectral section and post-board of one layout.

    Args:
        layout: which slots run where.
        table: the chain's parameter table (bound by index; the audio thread reads ``table.value``).
        sample_rate, max_block, channels: as for :meth:`Processor.prepare`.
        plugins: loaded VST3s by slot name (for the layout's plugin entries).
        inboxes: the chain's inbox per slot name, handed to the stages that declare an ``inbox_type``.

    Attributes:
        pre, post: :class:`Board`. section: :class:`StreamingSTFT` or None (no spectral stage).
        stages: the section's stages in order. latency_samples: the sum over pre, section and post.
    """

    def __init__(self, layout: Layout, table: ParamTable, sample_rate: int, max_block: int, channels: int,
                 plugins: dict | None = None, inboxes: dict | None = None):
        self.layout = layout
        self.table = table
        plugins = plugins or {}
        self.binds = []  # (param index, plugin, attribute, transform)

        def board(items, name):
            pl = []
            for it in items:
                if isinstance(it, PluginEntry):
                    p = plugins[it.slot]
                    pl.append(p)
                    for spec in plugin_param_specs(it, p):
                        attr = spec.id.split(".", 1)[1]
                        self.binds.append((table.index(spec.id), p, attr, float))
                    continue
                s = catalog.SLOTS[it]
                made = s.build()
                for pid, (k, attr, fn) in s.binds.items():
                    self.binds.append((table.index(pid), made[k], attr, fn))
                pl.extend(made)
            return Board(pl, name)

        self.pre = board(layout.pre, "pre")
        self.post = board(layout.post, "post")
        inboxes = inboxes or {}
        stages = [catalog.SLOTS[s].make(table, inboxes.get(s)) for s in layout.spectral]
        self.section = (StreamingSTFT(layout.stft, stages, layout.linked, table=table)
                        if stages or layout.force_stft else None)
        self.stages = stages
        self._applied = np.full(len(self.binds), np.nan)
        self.apply_params(table._target)
        for p in (self.pre, self.section, self.post):
            if p is not None:
                p.prepare(sample_rate, max_block, channels)
        self.latency_samples = (self.pre.latency_samples + self.post.latency_samples
                                + (self.section.latency_samples if self.section else 0))
        if self.latency_samples > MAX_LATENCY_S * sample_rate:
            raise ValueError(f"chain latency {self.latency_samples} samples exceeds {MAX_LATENCY_S} s")

    def apply_params(self, values: np.ndarray) -> None:
        """Push parameter values into board plugins where they changed (audio or build thread)."""
        applied = self._applied
        for k, (i, plugin, attr, fn) in enumerate(self.binds):
            v = values[i]
            if v != applied[k]:
                applied[k] = v
                setattr(plugin, attr, fn(float(v)))

    def process(self, buf: np.ndarray) -> None:
        self.pre.process(buf)
        if self.section is not None:
            self.section.process(buf)
        self.post.process(buf)

    def reset(self) -> None:
        self.pre.reset()
        if self.section is not None:
            self.section.reset()
        self.post.reset()
