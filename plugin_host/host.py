"""The block-callback host: pre-board -> shared STFT with spectral stages -> post-board -> mix.

```
block ─► sanitise ─► dry ring (raw input, for mix/bypass, read at the chain latency)
      └► in.gain ─► pre Board ─► StreamingSTFT(stages…) ─► post Board ─► wet
out = bypass_xfade( out.gain · ((1-mix)·dry(L) + mix·wet), dry(L) ) ─► sanitise ─► block
```

Threads: the control thread (OSC, panel, CLI) sets parameter targets and builds new engines
(preset/layout changes) off the audio path; it publishes an engine with one reference store.
The audio thread picks it up at the next block start and crossfades: the old engine keeps
playing while the new one warms up for its own latency, then a 20 ms equal-gain fade.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from resculpt.dsp.params import ParamError, ParamSpec, ParamTable
from resculpt.dsp.processor import Processor, ProcessorError
from resculpt.dsp.sanitize import Sanitizer
from resculpt.dsp.stft import CONFIGS, StreamingSTFT

from . import catalog
from .boards import Board, load_vst3

# While any parameter ramps, the block is cut into sub-blocks of this many samples so board
# coefficients follow the ramp (1.3 ms at 48 kHz: far below the 20-50 ms ramps, no zipper).
CONTROL_BLOCK = 64
CROSSFADE_MS = 20.0
# The dry ring holds this much audio: the largest chain latency a layout may have.
MAX_LATENCY_S = 1.0
_LN10_20 = math.log(10.0) / 20.0


@dataclass(frozen=True)
class PluginEntry:
    """An external plugin (VST3) in a board, loaded by path; its parameters become <slot>.<name>."""

    slot: str
    path: str


@dataclass(frozen=True)
class Layout:
    """Which slots run, where, in which order.

    Attributes:
        pre, post: board slot names (or PluginEntry) in processing order.
        spectral: spectral slot names in processing order (all share one STFT).
        stft: STFT config name ("default" 20 ms, "low-latency" 10 ms).
        linked: stereo-linked spectral analysis.
        force_stft: run the STFT even with no spectral stage (benchmarks, latency matching).
    """

    pre: tuple = ()
    spectral: tuple = ()
    post: tuple = ()
    stft: str = "default"
    linked: bool = True
    force_stft: bool = False

    @classmethod
    def from_dict(cls, d: dict, where: str = "chain") -> "Layout":
        """Build and validate; errors name the field (``chain.pre[1]``)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
        allowed = {"pre", "spectral", "post", "stft", "linked", "force_stft"}
        extra = set(d) - allowed
        if extra:
            raise ValueError(f"{where}: unknown field(s) {sorted(extra)}; allowed: {sorted(allowed)}")
        secs = {}
        seen: dict[str, str] = {}
        for sec in ("pre", "spectral", "post"):
            items = d.get(sec, [])
            if not isinstance(items, list):
                raise ValueError(f"{where}.{sec}: expected a list of stage names")
            out = []
            for k, it in enumerate(items):
                f = f"{where}.{sec}[{k}]"
                if isinstance(it, dict):
                    if sec == "spectral" or set(it) != {"slot", "vst3"}:
                        raise ValueError(f"{f}: a plugin entry is {{\"slot\": NAME, \"vst3\": PATH}} in pre/post")
                    name = str(it["slot"])
                    if name in catalog.SLOTS:
                        raise ValueError(f"{f}: plugin slot name {name!r} clashes with a built-in stage")
                    entry = PluginEntry(name, str(it["vst3"]))
                elif isinstance(it, str):
                    try:
                        s = catalog.slot(it)
                    except ValueError as e:
                        raise ValueError(f"{f}: {e}") from None
                    want = "spectral" if sec == "spectral" else "board"
                    if s.kind != want:
                        raise ValueError(f"{f}: {it!r} is a {s.kind} stage and cannot go in {sec!r}")
                    name, entry = it, it
                else:
                    raise ValueError(f"{f}: expected a stage name, got {type(it).__name__}")
                if name in seen:
                    raise ValueError(f"{f}: stage {name!r} appears twice (also in {seen[name]})")
                seen[name] = f
                out.append(entry)
            secs[sec] = tuple(out)
        stft = d.get("stft", "default")
        if stft not in CONFIGS:
            raise ValueError(f"{where}.stft: {stft!r} is not one of {sorted(CONFIGS)}")
        for b in ("linked", "force_stft"):
            if b in d and not isinstance(d[b], bool):
                raise ValueError(f"{where}.{b}: expected true or false")
        return cls(secs["pre"], secs["spectral"], secs["post"], stft,
                   bool(d.get("linked", True)), bool(d.get("force_stft", False)))

    def to_dict(self) -> dict:
        def enc(items):
            return [{"slot": i.slot, "vst3": i.path} if isinstance(i, PluginEntry) else i for i in items]

        d = {"pre": enc(self.pre), "spectral": list(self.spectral), "post": enc(self.post), "stft": self.stft,
             "linked": self.linked}
        if self.force_stft:
            d["force_stft"] = True
        return d

    def plugin_entries(self):
        return [e for e in self.pre + self.post if isinstance(e, PluginEntry)]


def plugin_param_specs(entry: PluginEntry, plugin) -> list[ParamSpec]:
    """ParamSpecs for a hosted VST3's numeric parameters (id <slot>.<param name>)."""
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


class Engine:
    """One built chain: boards and spectral section, prepared, with parameter bindings.

    Built and prepared on a control thread; ``process`` runs on the audio thread.
    """

    def __init__(self, layout: Layout, table: ParamTable, sample_rate: int, max_block: int, channels: int,
                 plugins: dict | None = None):
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
        stages = [catalog.SLOTS[s].build(table) for s in layout.spectral]
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

    def stage_names(self) -> list[str]:
        names = [str(getattr(e, "slot", e)) for e in self.layout.pre]
        names += list(self.layout.spectral) + [str(getattr(e, "slot", e)) for e in self.layout.post]
        return names

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


@dataclass
class ChainStats:
    """Counters the host keeps (read from any thread; written by the audio thread)."""

    nonfinite_in: int = 0
    denormal_in: int = 0
    nonfinite_out: int = 0
    engine_resets: int = 0
    swaps: int = 0
    blocks: int = 0
    extra: dict = field(default_factory=dict)


class Chain(Processor):
    """A Resculpt effect chain: the user-facing processor.

    Example:
        >>> chain = Chain.from_preset("broadcast-voice", sample_rate=48000, channels=2)
        >>> y = chain(x)                  # whole signal, (channels, n) or (n,), latency trimmed
        >>> chain.process(block)          # streaming, in place, block (channels, n) float32
        >>> chain.params["comp.ratio"] = 4

    Args:
        layout: a :class:`Layout` (or dict in the preset format).
        sample_rate: Hz. channels: 1 or 2. max_block: largest block process() will see.
        params: initial parameter values by id.
    """

    name = "chain"

    def __init__(self, layout: Layout | dict | None = None, sample_rate: int = 48000, channels: int = 2,
                 max_block: int = 8192, params: dict | None = None, preset_name: str | None = None):
        super().__init__()
        if isinstance(layout, dict):
            layout = Layout.from_dict(layout)
        self.layout = layout or Layout()
        self.preset_name = preset_name
        if channels not in (1, 2):
            raise ProcessorError(f"channels must be 1 or 2, got {channels}")
        self.stats = ChainStats()
        self._plugins = self._load_plugins(self.layout)
        self._table = ParamTable(self._specs_for(self.layout, self._plugins))
        if params:
            self._table.set_many(params, notify=False)
        self._pending = None  # (seq, engine, table) published by the control thread
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

    @classmethod
    def from_preset(cls, preset, sample_rate: int = 48000, channels: int = 2, max_block: int = 8192) -> "Chain":
        """Build a chain from a shipped/user preset name, a path, or a loaded Preset."""
        from .presets import Preset, load_preset

        p = preset if isinstance(preset, Preset) else load_preset(preset)
        return cls(p.layout, sample_rate, channels, max_block, params=p.full_params(), preset_name=p.name)

    @property
    def params(self) -> ParamTable:
        """The parameter table (control side: ``chain.params["mix"] = 0.5``)."""
        return self._table

    @property
    def engine(self) -> Engine:
        return self._engine

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
        self._table.prepare(sample_rate)
        self._engine = Engine(self.layout, self._table, sample_rate, max_block, c, self._plugins)
        self._apply_sidechain(self._engine)
        self._old: Engine | None = None
        cap = int(MAX_LATENCY_S * sample_rate) + max_block + 1
        self._ring = np.zeros((c, cap), np.float32)
        self._wpos = 0
        sub = max_block
        self._wet = np.zeros((c, sub), np.float32)
        self._wet2 = np.zeros((c, sub), np.float32)
        self._dry = np.zeros((c, sub), np.float32)
        self._dry2 = np.zeros((c, sub), np.float32)
        self._r64 = np.zeros(sub, np.float64)
        self._ra = np.zeros(sub, np.float32)
        self._rb = np.zeros(sub, np.float32)
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
        self.latency_samples = self._engine.latency_samples
        if getattr(self, "meters", None) is not None:
            self.meters.prepare(sample_rate, max_block, channels)
        self.reset()

    def reset(self) -> None:
        """Zero all audio state and jump parameters to their targets."""
        self._take_pending(crossfade=False)
        self._engine.reset()
        self._old = None
        self._ring.fill(0.0)
        self._wpos = 0
        self._table.snap()
        self._engine.apply_params(self._table.value)

    # -- control side: layout and preset changes -------------------------------------------------
    def set_layout(self, layout: Layout | dict, params: dict | None = None) -> None:
        """Build the new engine here (control thread) and publish it; the audio thread crossfades.

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
            if hasattr(table, "_match_target"):  # the match stage's target follows the table
                new._match_target = table._match_target
            new.prepare(self.sample_rate)
            table = new
        if params:
            table.set_many(params)
        engine = Engine(layout, table, self.sample_rate, self.max_block, self.channels, plugins)
        self._apply_sidechain(engine)
        self.layout = layout
        self._plugins = plugins
        self._seq += 1
        self._pending = (self._seq, engine, table)

    def set_sidechain(self, source, sample_rate: int | None = None) -> None:
        """Load the reference clip for mask transfer (``xmask``, source ``sidechain``). Control thread.

        ``source``: a file path, or audio (n,) / (channels, n) with ``sample_rate``. It is analysed
        here, off the audio thread, and published to every xmask stage (the running engine, a
        pending one, and engines built by later layout changes) by one reference store each.
        ``None`` clears it (xmask with source ``sidechain`` then passes audio through).
        """
        from resculpt.dsp.mask_transfer import analyse_reference

        if source is None:
            mask = None
        else:
            if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
                from .render import read_audio

                source, sample_rate = read_audio(source)
            if sample_rate is None:
                raise ValueError("set_sidechain: give sample_rate with an array")
            mask = analyse_reference(source, int(sample_rate))
        self._sidechain_mask = mask
        engines = [self._engine]
        pend = self._pending
        if pend is not None:
            engines.append(pend[1])
        for eng in engines:
            self._apply_sidechain(eng)

    def _apply_sidechain(self, engine) -> None:
        mask = getattr(self, "_sidechain_mask", None)
        for st in engine.stages:
            if hasattr(st, "set_mask"):
                st.set_mask(mask)

    def set_target(self, target, amount: float | None = None) -> None:
        """Publish a target for the ``match`` stage (control thread): a Profile (target/fingerprint:
        absolute band envelope; delta: dB offsets), a (32,) dB array, or None (flat). One reference
        store; the stage crossfades to it over its attack/release times. Survives layout changes."""
        from resculpt.dsp.match_eq import publish_target

        publish_target(self._table, target)
        pend = self._pending
        if pend is not None and pend[2] is not self._table:  # a layout swap with a new table is pending
            publish_target(pend[2], target)
        if amount is not None:
            self._table.set("match.amount", amount)

    def load_preset(self, preset) -> None:
        """Load a preset by name, path or Preset object (control thread). Validates fully first."""
        from .presets import Preset, load_preset

        p = preset if isinstance(preset, Preset) else load_preset(preset)
        full = p.full_params()
        if p.layout == self.layout:
            self._table.set_many({k: v for k, v in full.items() if k in self._table})
        else:
            self.set_layout(p.layout, full)
        self.preset_name = p.name

    def _take_pending(self, crossfade: bool) -> None:
        pend = self._pending
        if pend is None or pend[0] == self._taken:
            return
        seq, engine, table = pend
        self._taken = seq
        self.stats.swaps += 1
        if table is not self._table:
            if not crossfade:
                table.snap()
            self._table = table
            self._i_in, self._i_out = table.index("in.gain_db"), table.index("out.gain_db")
            self._i_mix, self._i_byp = table.index("mix"), table.index("bypass")
        if crossfade:
            self._old = self._engine
            # Warm-up: the new engine's first `latency` output samples are its start-up silence.
            self._xf_pos = -engine.latency_samples
        else:
            self._old = None
        self._engine = engine
        self.latency_samples = engine.latency_samples

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
            # at the end; the engine's STFT (if any) copies its frames into the meters.
            meters.block_in(block)
            sec = self._engine.section
            meters.stft_active = sec is not None
            if sec is not None and sec.tap is not meters:
                sec.tap = meters
        self._ring_write(block, n)
        table = self._table
        pos = 0
        while pos < n:
            if table.ramping or table._seen != table._version:
                m = min(n - pos, CONTROL_BLOCK)
            else:
                m = n - pos
            if table.advance(m):
                self._engine.apply_params(table.value)
                if self._old is not None:
                    self._old.apply_params(table.value)
            self._segment(block[:, pos : pos + m], n - pos, m)
            pos += m
        if self._san_out.process(block):
            # Something inside the chain blew up (e.g. an unstable external plugin): start clean.
            self.stats.nonfinite_out = self._san_out.nonfinite
            self.stats.engine_resets += 1
            self._engine.reset()
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
        """Linear gain for dB parameter i over this sub-block: a float or an (m,) ramp."""
        t = self._table
        if t.prev[i] == t.value[i]:
            return 10.0 ** (t.value[i] / 20.0)
        r = t.fill_ramp(i, m, self._r64)
        r *= _LN10_20
        np.exp(r, out=r)
        np.copyto(self._ra[:m], r)
        return self._ra[:m]

    def _lin_ramp(self, i: int, m: int, out):
        t = self._table
        if t.prev[i] == t.value[i]:
            return float(t.value[i])
        np.copyto(out[:m], t.fill_ramp(i, m, self._r64))
        return out[:m]

    def _mix_engine(self, engine: Engine, seg, wet, dry, back_end: int, m: int):
        """wet <- (1-mix)*dry(L) + mix*engine(in.gain*seg); back_end = samples from seg end to head."""
        np.copyto(wet[:, :m], seg)
        w = wet[:, :m]
        g = self._gain_ramp(self._i_in, m)
        if not (isinstance(g, float) and g == 1.0):
            w *= g
        engine.process(w)
        mix = self._lin_ramp(self._i_mix, m, self._rb)
        if isinstance(mix, float) and mix >= 1.0:
            return w
        d = dry[:, :m]
        self._ring_read(d, back_end + m + engine.latency_samples, m)
        w *= mix
        if isinstance(mix, float):
            d *= 1.0 - mix
        else:
            np.subtract(1.0, mix, out=self._rb[:m])  # reuse as (1 - mix)
            d *= self._rb[:m]
        w += d
        return w

    def _segment(self, seg, left: int, m: int) -> None:
        t = self._table
        im, ib = self._i_mix, self._i_byp
        if (self._old is None and t.value[im] == 1.0 and t.prev[im] == 1.0 and t.value[ib] == 0.0
                and t.prev[ib] == 0.0):
            # Fast path (fully wet, not bypassed, no swap in progress): process in place.
            g = self._gain_ramp(self._i_in, m)
            if not (isinstance(g, float) and g == 1.0):
                seg *= g
            self._engine.process(seg)
            g = self._gain_ramp(self._i_out, m)
            if not (isinstance(g, float) and g == 1.0):
                seg *= g
            return
        # Samples from the end of this segment to the ring's write head (the block's end).
        back_end = left - m
        y = self._mix_engine(self._engine, seg, self._wet, self._dry, back_end, m)
        if self._old is not None:
            y_old = self._mix_engine(self._old, seg, self._wet2, self._dry2, back_end, m)
            p0 = self._xf_pos
            self._xf_pos = p0 + m
            if p0 + m <= 0:
                np.copyto(y, y_old)
            else:
                r = self._ra[:m]
                self._fade_ramp(p0, m, r)
                y -= y_old
                y *= r
                y += y_old
            if self._xf_pos >= self._xf_len:
                self._old = None
        g = self._gain_ramp(self._i_out, m)
        if not (isinstance(g, float) and g == 1.0):
            y *= g
        byp = self._lin_ramp(self._i_byp, m, self._rb)
        if isinstance(byp, float) and byp <= 0.0:
            np.copyto(seg, y)
            return
        d = self._dry[:, :m]
        self._ring_read(d, back_end + m + self._engine.latency_samples, m)
        # seg = y + byp * (dry - y)
        d -= y
        d *= byp
        y += d
        np.copyto(seg, y)

    def _fade_ramp(self, p0: int, m: int, out) -> None:
        """out[k] = clip((p0 + k + 1) / xf_len, 0, 1) without allocating."""
        np.copyto(self._r64[:m], _RAMP[1 : m + 1])
        self._r64[:m] += p0
        self._r64[:m] *= 1.0 / self._xf_len
        np.clip(self._r64[:m], 0.0, 1.0, out=self._r64[:m])
        np.copyto(out, self._r64[:m])

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
        lat = self.latency_samples
        n = x2.shape[1]
        y = np.zeros((self.channels, n + lat), np.float32)
        y[:, :n] = x2
        bs = self.max_block
        for i in range(0, n + lat, bs):
            self.process(y[:, i : i + bs])
        out = y[:, lat:]
        return out[0] if mono else out


_RAMP = np.arange(0, 1 << 17, dtype=np.float64)

__all__ = ["Chain", "Engine", "Layout", "PluginEntry", "ParamError", "CONTROL_BLOCK"]
