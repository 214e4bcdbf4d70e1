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
from .boards import Board, ChannelBoards, plugin_param_specs
from .layout import Layout, PluginEntry

# The dry ring holds this much audio: the largest chain latency a layout may have.
MAX_LATENCY_S = 1.0
STEREO = 2  # boards above this many channels run one mono board per channel


def build_board(items, table: ParamTable, channels: int, plugins: dict | None = None, name: str = "board"):
    """The board running ``items`` (board slot names or PluginEntry, in order) on ``channels``, and its
    parameter bindings [(param index, plugin, attribute, transform)]. Up to stereo one :class:`Board`;
    wider stems one mono board per channel (:class:`ChannelBoards`), each with its own plugin
    instances and bindings."""
    if channels <= STEREO:
        return _one_board(items, table, plugins or {}, name)
    hosted = [it.slot for it in items if isinstance(it, PluginEntry)]
    if hosted:
        raise ValueError(f"{name} board: hosted plugins ({', '.join(hosted)}) run on mono or stereo only, "
                         f"not {channels} channels")
    boards, binds = [], []
    for _ in range(channels):
        b, bi = _one_board(items, table, {}, name)
        boards.append(b)
        binds += bi
    return ChannelBoards(boards, name), binds


def _one_board(items, table, plugins, name):
    pl, binds = [], []
    for it in items:
        if isinstance(it, PluginEntry):
            p = plugins[it.slot]
            pl.append(p)
            for spec in plugin_param_specs(it, p):
                binds.append((table.index(spec.id), p, spec.id.split(".", 1)[1], float))
            continue
        s = catalog.SLOTS[it]
        made = s.build()
        for pid, (k, attr, fn) in s.binds.items():
            binds.append((table.index(pid), made[k], attr, fn))
        pl.extend(made)
    return Board(pl, name), binds


class SignalGraph:
    """Pre-board, spectral section and post-board of one layout.

    Args:
        layout: which slots run where.
        table: the chain's parameter table (bound by index; the audio thread reads ``table.value``).
        sample_rate, max_block, channels: as for :meth:`Processor.prepare`.
        plugins: loaded VST3s by slot name (for the layout's plugin entries).
        inboxes: the chain's inbox per slot name, handed to the stages that declare an ``inbox_type``.

    Attributes:
        pre, post: :class:`Board` (:class:`ChannelBoards` above stereo).
        section: :class:`StreamingSTFT` or None (no spectral stage).
        stages: the section's stages in order. latency_samples: the sum over pre, section and post.
    """

    def __init__(self, layout: Layout, table: ParamTable, sample_rate: int, max_block: int, channels: int,
                 plugins: dict | None = None, inboxes: dict | None = None):
        self.layout = layout
        self.table = table
        plugins = plugins or {}
        self.binds = []  # (param index, plugin, attribute, transform)

        self.pre, binds = build_board(layout.pre, table, channels, plugins, "pre")
        self.binds += binds
        self.post, binds = build_board(layout.post, table, channels, plugins, "post")
        self.binds += binds
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
