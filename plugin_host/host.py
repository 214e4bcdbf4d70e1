"""The real-time chain host: pre-board -> shared STFT with spectral stages -> post-board -> mix.

```
block ─► sanitise ─► dry ring (raw input, for mix/bypass, read at the chain latency)
      └► in.gain ─► pre Board ─► StreamingSTFT(stages…) ─► post Board ─► wet
out = bypass_xfade( out.gain · ((1-mix)·dry(L) + mix·wet), dry(L) ) ─► sanitise ─► block
```

Threads: control threads (OSC, panel, CLI) set parameter targets (:class:`ParamTable`), publish
non-scalar state to the chain's inboxes (:mod:`resculpt.dsp.inbox`) and build new signal graphs
(preset/layout changes) off the audio path; a new graph is published with one reference store.
The audio thread picks it up at the next block start and crossfades: the old graph keeps playing
while the new one warms up for its own latency, then a 20 ms equal-gain fade.

This module touches no disk: presets, files and paths are resolved one layer up
(:mod:`resculpt.plugin_host.chain`), which hands the host plain data (layouts, parameter values,
arrays).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from resculpt.dsp.mask_transfer import SidechainEnvelopes
from resculpt.dsp.match_eq import MatchTarget
from resculpt.dsp.inbox import Inbox
from resculpt.dsp.jit import PER_BLOCK_MAX
from resculpt.dsp.params import ParamSpec, ParamTable
from resculpt.dsp.profile import Profile, ProfileError
from resculpt.dsp.processor import Processor, ProcessorError
from resculpt.dsp.sanitize import Sanitizer
from resculpt.models.resculpt.stage import ResculptTarget

from . import catalog
from .boards import load_vst3, plugin_param_specs
from .graph import MAX_LATENCY_S, SignalGraph
from .layout import Layout

# While any parameter ramps, the block is cut into sub-blocks of this many samples so board
# coefficients follow the ramp (1.3 ms at 48 kHz: far below the 20-50 ms ramps, no zipper).
CONTROL_BLOCK = 64
CROSSFADE_MS = 20.0
MAX_CHANNELS = 8  # offline renders (stems up to 7.1); the live path is mono or stereo
# What moves the sound toward a target profile (``set_target``'s ``engine``, resolved; ``auto`` is resolved one
# layer up, where the model bundle's presence can be checked): engine -> the slot that does it.
TARGET_SLOTS = {"match-eq": "match", "model": "resculpt"}
_LN10_20 = math.log(10.0) / 20.0
_F32 = np.float32


@dataclass
class ChainStats:
    """Counters the host keeps (read from any thread; written by the audio thread)."""

    nonfinite_in: int = 0
    denormal_in: int = 0
    nonfinite_out: int = 0
    graph_resets: int = 0
    swaps: int = 0
    blocks: int = 0
    extra: dict = field(default_factory=dict)


class ChainHost(Processor):
    """A Resculpt effect chain as a block processor, with no file or preset lookup of its own.

    :class:`resculpt.plugin_host.chain.Chain` (``resculpt.Chain``) adds preset names, paths and
    sidechain files on top; this class takes layouts, parameter values and arrays.

    Args:
        layout: a :class:`Layout` (or dict in the preset format).
        sample_rate: Hz. channels: 1 or 2. max_block: largest block process() will see.
        params: initial parameter values by id.
        preset_name: the name reported for the current sound (OSC, panel).
    """

    name = "chain"

    def __init__(self, layout: Layout | dict | None = None, sample_rate: int = 48000, channels: int = 2,
                 max_block: int = 8192, params: dict | None = None, preset_name: str | None = None):
        super().__init__()
        if isinstance(layout, dict):
            layout = Layout.from_dict(layout)
        self.layout = layout or Layout()
        self.preset_name = preset_name
        if not 1 <= channels <= MAX_CHANNELS:
            raise ProcessorError(f"channels must be 1 to {MAX_CHANNELS}, got {channels}")
        self.stats = ChainStats()
        self._plugins = self._load_plugins(self.layout)
        self._table = ParamTable(self._specs_for(self.layout, self._plugins))
        if params:
            self._table.set_many(params, notify=False)
        # One inbox per slot with non-scalar state, owned by the chain: every graph built for the slot
        # reads the same one, so a published target or sidechain survives preset and layout changes.
        self._inboxes = {name: Inbox(s.inbox_type) for name, s in catalog.SLOTS.items()
                         if s.inbox_type is not None}
        # The input's long-term band envelope known beforehand (set_input_profile), or None: every graph built
        # primes its target-following stages with it.
        self._input_env: np.ndarray | None = None
        self._pending = None  # (seq, graph, table) published by the control thread
        self.meters = None  # optional plugin_host.meters.Meters, see attach_meters()
        self._seq = 0
        self._taken = 0
        self.prepare(sample_rate, max_block, channels)

    # -- construction helpers (control thread) -----------------------------------------------
    @staticmethod
    def _load_plugins(layout: Layout) -> dict:
        return {e.slot: load_vst3(e.path) for e in layout.plugin_entries()}

    @staticmethod
    def _specs_for(layout: Layout, plugins: dict) -> list[ParamSpec]:
        specs = catalog.all_param_specs()
        for e in layout.plugin_entries():
            specs.extend(plugin_param_specs(e, plugins[e.slot]))
        return specs

    def _build(self, layout: Layout, table: ParamTable, plugins: dict) -> SignalGraph:
        g = SignalGraph(layout, table, self.sample_rate, self.max_block, self.channels, plugins, self._inboxes)
        if self._input_env is not None:
            for st in g.stages:
                if st.name in TARGET_SLOTS.values():
                    st.prime(self._input_env, hold=True)
            g.reset()  # the stages take a prime at reset; this graph is not published yet
        return g

    @property
    def params(self) -> ParamTable:
        """The parameter table (control side: ``chain.params["mix"] = 0.5``)."""
        return self._table

    @property
    def graph(self) -> SignalGraph:
        """The signal graph the audio thread runs (the newest published one once a block has started)."""
        return self._graph

    def attach_meters(self, meters) -> None:
        """Meter this chain (control thread): ``meters`` (plugin_host.meters.Meters) is prepared
        here and then updated by :meth:`process` each block (levels, callback time) and by the
        STFT tap each hop (spectrum and mask). ``None`` detaches."""
        if meters is not None:
            meters.prepare(self.sample_rate, self.max_block, self.channels)
        self.meters = meters

    # -- lifecycle -----------------------------------------------------------------------------
    def prepare(self, sample_rate: int, max_block: int, channels: int) -> None:
        super().prepare(sample_rate, max_block, channels)
        c = channels
        self._table.prepare(sample_rate, compiled=max_block <= PER_BLOCK_MAX)
        self._graph = self._build(self.layout, self._table, self._plugins)
        self._old: SignalGraph | None = None
        cap = int(MAX_LATENCY_S * sample_rate) + max_block + 1
        self._ring = np.zeros((c, cap), np.float32)
        self._wpos = 0
        sub = max_block
        # Wet and dry scratch of the current graph and, during a crossfade, of the old one.
        self._wet = np.zeros((c, sub), np.float32)
        self._wet2 = np.zeros((c, sub), np.float32)
        self._dry = np.zeros((c, sub), np.float32)
        self._dry2 = np.zeros((c, sub), np.float32)
        # Per-sample ramps over one sub-block: a parameter ramp in float64 (the table's precision), and
        # two float32 rows for what is multiplied into audio (gain or fade; mix, 1 - mix or bypass).
        self._ramp64 = np.zeros(sub, np.float64)
        self._ramp_a = np.zeros(sub, np.float32)
        self._ramp_b = np.zeros(sub, np.float32)
        self._san_in = Sanitizer()
        self._san_in.prepare(max_block, c)
        self._san_out = Sanitizer()
        self._san_out.prepare(max_block, c)
        self._xf_len = max(1, int(CROSSFADE_MS * 1e-3 * sample_rate))
        self._xf_pos = 0
        self._i_in = self._table.index("in.gain_db")
        self._i_out = self._table.index("out.gain_db")
        self._i_mix = self._table.index("mix")
        self._i_byp = self._table.index("bypass")
        self.latency_samples = self._graph.latency_samples
        if self.meters is not None:
            self.meters.prepare(sample_rate, max_block, channels)
        self.reset()

    def reset(self) -> None:
        """Zero all audio state and jump parameters to their targets."""
        self._take_pending(crossfade=False)
        self._graph.reset()
        self._old = None
        self._ring.fill(0.0)
        self._wpos = 0
        self._table.snap()
        self._graph.apply_params(self._table.value)

    # -- control side: layout, preset and state changes -----------------------------------------
    def set_layout(self, layout: Layout | dict, params: dict | None = None) -> None:
        """Build the new graph here (control thread) and publish it; the audio thread crossfades.

        ``params``, if given, are validated before anything is built, then applied with the swap.
        """
        if isinstance(layout, dict):
            layout = Layout.from_dict(layout)
        if params:
            for pid, v in params.items():  # validate first: nothing half-applied
                if pid in self._table:
                    self._table.spec(pid).coerce(v)
        plugins = self._load_plugins(layout)
        table = self._table
        specs = self._specs_for(layout, plugins)
        if [s.id for s in specs] != [s.id for s in table.specs]:
            new = ParamTable(specs)
            old_t = table.targets()
            new.set_many({k: v for k, v in old_t.items() if k in new}, notify=False)
            new.listeners = table.listeners
            new.prepare(self.sample_rate, compiled=self.max_block <= PER_BLOCK_MAX)
            table = new
        if params:
            table.set_many(params)
        graph = self._build(layout, table, plugins)
        self.layout = layout
        self._plugins = plugins
        self._seq += 1
        self._pending = (self._seq, graph, table)

    def switch(self, layout: Layout, params: dict, name: str | None = None) -> None:
        """Change the whole sound (control thread): only the parameters if ``layout`` is the current one,
        else a new graph, crossfaded. ``params`` are every built-in parameter's value (a preset's
        ``full_params()``), validated fully before anything changes."""
        if layout == self.layout:
            self._table.set_many({k: v for k, v in params.items() if k in self._table})
        else:
            self.set_layout(layout, params)
        self.preset_name = name

    def publish(self, slot: str, value) -> None:
        """Hand non-scalar state to slot ``slot``'s stages (control thread; see :mod:`resculpt.dsp.inbox`).
        Takes effect at the stages' next frame, in the running graph and every later one."""
        try:
            box = self._inboxes[slot]
        except KeyError:
            raise ValueError(f"stage {slot!r} takes no published state; these do: {sorted(self._inboxes)}") from None
        box.publish(value)

    def set_target(self, target, amount: float | None = None, add_stage: bool = False,
                   engine: str = "match-eq") -> None:
        """Publish a target to both target-following stages (control thread): the ``match`` EQ and the
        ``resculpt`` model each get it in their own form, and whichever the layout runs follows it (the match-EQ
        crossfades over its attack/release times; the model moves from its next frame).

        ``target``: a Profile (fingerprint/target: absolute; delta: offsets from the input), None (clear), or for
        the match-EQ alone a (32,) dB array or a MatchTarget (the model's target is then left as it was).
        Both forms are built before either is published: a bad target (an infinite value, an absolute profile
        that knows nothing, as a fingerprint of silence) raises ProfileError and changes nothing.
        ``engine``: "match-eq" or "model" (:data:`TARGET_SLOTS`): with ``add_stage``, its stage is appended to
        the spectral section when the layout lacks it (a layout change, crossfaded); ``amount`` sets that
        stage's ``<slot>.amount``."""
        if engine not in TARGET_SLOTS:
            raise ValueError(f"engine must be one of {sorted(TARGET_SLOTS)}, got {engine!r}")
        slot = TARGET_SLOTS[engine]
        mt = MatchTarget.make(target)
        model_too = target is None or isinstance(target, Profile)
        rt = ResculptTarget.make(target) if model_too else None
        if amount is not None:
            self._table.spec(f"{slot}.amount").coerce(amount)
        self.publish("match", mt)
        if model_too:
            self.publish("resculpt", rt)
        if add_stage and slot not in self.layout.spectral:
            self.set_layout(self.layout.with_spectral(slot))
        if amount is not None:
            self._table.set(f"{slot}.amount", amount)

    @property
    def input_env(self) -> np.ndarray | None:
        """(32,) dB: the band envelope of the input profile set with :meth:`set_input_profile` (a copy), or None."""
        return None if self._input_env is None else self._input_env.copy()

    def set_input_profile(self, profile) -> None:
        """The input's own long-term profile, known before it plays (control thread): a fingerprint of the same
        voice or source through the same microphone and room (``resculpt profile fingerprint``), or None to learn
        it as the stream goes (the default). The target-following stages hold their estimate of the input there
        (the model's running fingerprint, the match-EQ's long-term estimate), so their move toward a target is a
        fixed one from the first frame, as in an offline render, instead of following a running estimate that is
        off while it forms and wanders with the content (3 s for the model, ``match.window_s`` for the match-EQ).
        Applied by building the current layout again (crossfaded) and to every graph built later (layout and
        preset changes). ``resculpt render`` measures its input itself and primes over it. Raises ProfileError
        for a delta or a profile with fewer than two known bands; nothing changes then."""
        if profile is None:
            env = None
        else:
            if not isinstance(profile, Profile) or profile.kind == "delta":
                raise ProfileError("the input profile must be a fingerprint or target (an absolute band envelope), "
                                   "not a delta")
            env = profile.env().copy()
            if int(np.isfinite(env).sum()) < 2:
                raise ProfileError("the input profile knows fewer than two bands of its envelope")
        self._input_env = env
        self.set_layout(self.layout)

    def set_sidechain(self, audio, sample_rate: int | None = None) -> None:
        """Load the reference clip for mask transfer (``xmask``, source ``sidechain``). Control thread.

        ``audio``: (n,) or (channels, n) at ``sample_rate`` Hz, analysed here, off the audio thread;
        ``None`` clears it (xmask with source ``sidechain`` then passes audio through).
        """
        if audio is None:
            self.publish("xmask", None)
            return
        if sample_rate is None:
            raise ValueError("set_sidechain: give the sample_rate of the audio")
        self.publish("xmask", SidechainEnvelopes.from_audio(audio, int(sample_rate)))

    def _take_pending(self, crossfade: bool) -> None:
        pend = self._pending
        if pend is None or pend[0] == self._taken:
            return
        seq, graph, table = pend
        self._taken = seq
        self.stats.swaps += 1
        if table is not self._table:
            if not crossfade:
                table.snap()
            self._table = table
            self._i_in, self._i_out = table.index("in.gain_db"), table.index("out.gain_db")
            self._i_mix, self._i_byp = table.index("mix"), table.index("bypass")
        if crossfade:
            self._old = self._graph
            # Warm-up: the new graph's first `latency` output samples are its start-up silence.
            self._xf_pos = -graph.latency_samples
        else:
            self._old = None
        self._graph = graph
        self.latency_samples = graph.latency_samples

    # -- audio thread ---------------------------------------------------------------------------
    def process(self, block: np.ndarray) -> np.ndarray:
        """Process ``block`` (float32 (channels, n), 0 <= n <= max_block) in place; return it."""
        n = block.shape[1]
        if n == 0:
            return block
        meters = self.meters
        if meters is not None:
            t0 = time.perf_counter()
        self._take_pending(crossfade=True)
        self.stats.blocks += 1
        self._san_in.process(block)
        self.stats.nonfinite_in = self._san_in.nonfinite
        self.stats.denormal_in = self._san_in.denormal
        if meters is not None:
            # Metering tap (allocation-free): input levels here, output levels and callback time
            # at the end; the graph's STFT (if any) copies its frames into the meters.
            meters.block_in(block)
            sec = self._graph.section
            meters.stft_active = sec is not None
            if sec is not None and sec.tap is not meters:
                sec.tap = meters
        self._ring_write(block, n)
        table = self._table
        pos = 0
        while pos < n:
            if table.ramping or table.pending:
                m = min(n - pos, CONTROL_BLOCK)
            else:
                m = n - pos
            if table.advance(m):
                self._graph.apply_params(table.value)
                if self._old is not None:
                    self._old.apply_params(table.value)
            self._segment(block[:, pos : pos + m], n - pos, m)
            pos += m
        if self._san_out.process(block):
            # Something inside the chain blew up (e.g. an unstable external plugin): start clean.
            self.stats.nonfinite_out = self._san_out.nonfinite
            self.stats.graph_resets += 1
            self._graph.reset()
            if self._old is not None:
                self._old.reset()
        if meters is not None:
            meters.block_out(block, time.perf_counter() - t0)
        return block

    def _ring_write(self, block, n):
        cap = self._ring.shape[1]
        w = self._wpos
        k = min(n, cap - w)
        self._ring[:, w : w + k] = block[:, :k]
        if k < n:
            self._ring[:, : n - k] = block[:, k:]
        self._wpos = (w + n) % cap

    def _ring_read(self, out, back: int, m: int):
        """out[:, :m] = dry samples that ended `back` samples before the write head, delayed."""
        cap = self._ring.shape[1]
        start = (self._wpos - back) % cap
        k = min(m, cap - start)
        out[:, :k] = self._ring[:, start : start + k]
        if k < m:
            out[:, k:m] = self._ring[:, : m - k]

    def _gain_ramp(self, i: int, m: int):
        """Linear gain for dB parameter i over this sub-block: None for a steady 0 dB, else a float32 scalar or an
        (m,) float32 ramp. float32 as the ramp is: a float64 scalar times a float32 block takes numpy's casting
        path, several times the cost of the product itself at live block sizes."""
        t = self._table
        v = t.value[i]
        if t.prev[i] == v:
            return None if v == 0.0 else _F32(10.0 ** (v / 20.0))
        r = t.fill_ramp(i, m, self._ramp64)
        r *= _LN10_20
        np.exp(r, out=r)
        np.copyto(self._ramp_a[:m], r)
        return self._ramp_a[:m]

    def _lin_ramp(self, i: int, m: int, out):
        t = self._table
        if t.prev[i] == t.value[i]:
            return float(t.value[i])
        np.copyto(out[:m], t.fill_ramp(i, m, self._ramp64))
        return out[:m]

    def _mix_graph(self, graph: SignalGraph, seg, wet, dry, back_end: int, m: int):
        """wet <- (1-mix)*dry(L) + mix*graph(in.gain*seg); back_end = samples from seg end to head."""
        np.copyto(wet[:, :m], seg)
        w = wet[:, :m]
        g = self._gain_ramp(self._i_in, m)
        if g is not None:
            w *= g
        graph.process(w)
        mix = self._lin_ramp(self._i_mix, m, self._ramp_b)
        if isinstance(mix, float) and mix >= 1.0:
            return w
        d = dry[:, :m]
        self._ring_read(d, back_end + m + graph.latency_samples, m)
        w *= mix
        if isinstance(mix, float):
            d *= 1.0 - mix
        else:
            np.subtract(1.0, mix, out=self._ramp_b[:m])  # reuse as (1 - mix)
            d *= self._ramp_b[:m]
        w += d
        return w

    def _segment(self, seg, left: int, m: int) -> None:
        t = self._table
        im, ib = self._i_mix, self._i_byp
        if (self._old is None and t.value[im] == 1.0 and t.prev[im] == 1.0 and t.value[ib] == 0.0
                and t.prev[ib] == 0.0):
            # Fast path (fully wet, not bypassed, no swap in progress): process in place.
            g = self._gain_ramp(self._i_in, m)
            if g is not None:
                seg *= g
            self._graph.process(seg)
            g = self._gain_ramp(self._i_out, m)
            if g is not None:
                seg *= g
            return
        # Samples from the end of this segment to the ring's write head (the block's end).
        back_end = left - m
        y = self._mix_graph(self._graph, seg, self._wet, self._dry, back_end, m)
        if self._old is not None:
            y_old = self._mix_graph(self._old, seg, self._wet2, self._dry2, back_end, m)
            p0 = self._xf_pos
            self._xf_pos = p0 + m
            if p0 + m <= 0:
                np.copyto(y, y_old)
            else:
                r = self._ramp_a[:m]
                self._fade_ramp(p0, m, r)
                y -= y_old
                y *= r
                y += y_old
            if self._xf_pos >= self._xf_len:
                self._old = None
        g = self._gain_ramp(self._i_out, m)
        if g is not None:
            y *= g
        byp = self._lin_ramp(self._i_byp, m, self._ramp_b)
        if isinstance(byp, float) and byp <= 0.0:
            np.copyto(seg, y)
            return
        d = self._dry[:, :m]
        self._ring_read(d, back_end + m + self._graph.latency_samples, m)
        # seg = y + byp * (dry - y)
        d -= y
        d *= byp
        y += d
        np.copyto(seg, y)

    def _fade_ramp(self, p0: int, m: int, out) -> None:
        """out[k] = clip((p0 + k + 1) / xf_len, 0, 1) without allocating."""
        np.copyto(self._ramp64[:m], _RAMP[1 : m + 1])
        self._ramp64[:m] += p0
        self._ramp64[:m] *= 1.0 / self._xf_len
        np.clip(self._ramp64[:m], 0.0, 1.0, out=self._ramp64[:m])
        np.copyto(out, self._ramp64[:m])

    # -- offline -------------------------------------------------------------------------------
    def __call__(self, x: np.ndarray, reset: bool = True) -> np.ndarray:
        """Process a whole signal. x: (channels, n) or (n,) for mono; returns the same shape,
        time-aligned with the input (the chain latency is trimmed)."""
        x = np.asarray(x)
        mono = x.ndim == 1
        x2 = x[None, :] if mono else x
        if x2.ndim != 2 or x2.shape[0] != self.channels:
            raise ProcessorError(f"expected ({self.channels}, n) audio, got shape {x.shape}")
        if reset:
            self.reset()
        out = process_whole(self, x2, self.max_block)
        return out[0] if mono else out


def process_whole(proc: Processor, x: np.ndarray, block: int, progress=None) -> np.ndarray:
    """Stream ``x`` (channels, n) through ``proc`` in blocks of ``block`` samples, followed by
    ``proc.latency_samples`` zeros to flush it; return (channels, n) float32 aligned with ``x``
    (the latency trimmed). ``progress``: optional object with ``update(samples_done)``."""
    c, n = x.shape
    lat = proc.latency_samples
    total = n + lat
    buf = np.zeros((c, total), np.float32)
    buf[:, :n] = x
    for i in range(0, total, block):
        proc.process(buf[:, i : i + block])
        if progress:
            progress.update(min(i + block, total))
    return buf[:, lat:]


_RAMP = np.arange(0, 1 << 17, dtype=np.float64)

__all__ = ["ChainHost", "ChainStats", "CONTROL_BLOCK", "MAX_CHANNELS", "process_whole"]
