"""Chain layouts: which catalog slots run, in which section and order, and external plugins by path.

A :class:`Layout` is plain data (what a preset's ``chain`` object holds); building it into running
processors is the host's job (:mod:`resculpt.plugin_host.graph`). Validation errors name the field
(``chain.pre[1]``) so a preset file's error points at the line to fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from resculpt.dsp.stft import CONFIGS

from . import catalog


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

    def slots(self) -> list[str]:
        """Every stage's slot name in processing order: pre-board, spectral section, post-board."""
        return [e.slot if isinstance(e, PluginEntry) else e for e in (*self.pre, *self.spectral, *self.post)]

    def with_spectral(self, slot: str) -> "Layout":
        """This layout with spectral ``slot`` appended to the section (itself if the slot already runs)."""
        if slot in self.spectral:
            return self
        return dataclasses.replace(self, spectral=tuple(self.spectral) + (slot,))

    def plugin_entries(self):
        return [e for e in self.pre + self.post if isinstance(e, PluginEntry)]
