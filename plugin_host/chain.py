"""``resculpt.Chain``: the real-time host plus preset names, preset files and sidechain files.

:class:`~resculpt.plugin_host.host.ChainHost` runs audio and takes only plain data; this subclass
resolves what users type (a preset name or path, an audio file) on the control thread and hands the
host the result. Every method here runs on a control thread.
"""

from __future__ import annotations

import os

from .audio_io import read_audio
from .host import TARGET_SLOTS, ChainHost
from .presets import Preset, load_preset

# What moves the sound toward a target: "auto" takes the resculpting model whenever its bundle is installed, the
# layout's STFT is the model's 20 ms window and the bundle passed its identity check and beats the match-EQ on every
# target kind of its benchmark that the target may be (bundle.auto_refusal: a description is a descriptor target,
# an absolute profile a reference or random one), else the profile-matching EQ.
ENGINES = ("auto", *TARGET_SLOTS)


class EngineError(ValueError):
    """The engine asked for cannot run here; the message says why and what to use instead."""


def resolve_engine(engine: str | None, layout=None, target=None) -> str:
    """"match-eq" or "model" for ``engine`` (None = "auto"), for a chain with ``layout`` (None: any) following
    ``target`` (a Profile: auto weighs the benchmark cells of its form, ``bundle.target_form``; None or a band-gain
    array: every cell).

    Raises EngineError for an unknown name, or for "model" when the bundle is missing or the layout's STFT
    section runs another window than the model's."""
    from resculpt.models.resculpt import bundle as rb
    from resculpt.models.resculpt.common import STFT_CONFIG

    engine = engine or "auto"
    if engine not in ENGINES:
        raise EngineError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    stft_ok = layout is None or layout.stft == STFT_CONFIG
    if engine == "auto":
        return ("model" if rb.bundle_present() and stft_ok and rb.auto_refusal(form=rb.target_form(target)) is None
                else "match-eq")
    if engine == "model":
        if not rb.bundle_present():
            raise EngineError(f"engine model: the resculpting model is not installed (no bundle in {rb.bundle_dir()}); "
                              "use the match-EQ engine (match-eq, or auto)")
        if not stft_ok:
            raise EngineError(f"engine model: the model runs the {STFT_CONFIG!r} STFT (20 ms window); this preset's "
                              f"spectral section uses {layout.stft!r}: use the match-EQ engine or another preset")
    return engine


def _with_target_stage(layout, target, engine):
    """(layout with the stage of ``engine`` (resolved) appended when there is a ``target`` and it lacks it,
    the resolved engine or None without a target)."""
    if target is None:
        return layout, None
    eng = resolve_engine(engine, layout, target)
    return layout.with_spectral(TARGET_SLOTS[eng]), eng


class Chain(ChainHost):
    """A Resculpt effect chain.

    Example:
        >>> chain = Chain.from_preset("broadcast-voice", sample_rate=48000, channels=2)
        >>> y = chain(x)                  # whole signal, (channels, n) or (n,), latency trimmed
        >>> chain.process(block)          # streaming, in place, block (channels, n) float32
        >>> chain.params["comp.ratio"] = 4
    """

    @classmethod
    def from_preset(cls, preset, sample_rate: int = 48000, channels: int = 2, max_block: int = 8192) -> "Chain":
        """Build a chain from a shipped/user preset name, a path to a preset file, or a Preset."""
        p = preset if isinstance(preset, Preset) else load_preset(preset)
        target = p.target_profile()
        layout, eng = _with_target_stage(p.layout, target, cls.engine)
        chain = cls(layout, sample_rate, channels, max_block, params=p.full_params(), preset_name=p.name)
        if target is not None:
            ChainHost.set_target(chain, target, engine=eng)
        return chain

    def load_preset(self, preset) -> None:
        """Load a preset by name, path or Preset object. Validates fully first; crossfades. A preset with a
        target publishes it (and its layout gets the engine's stage); one without keeps the current target."""
        p = preset if isinstance(preset, Preset) else load_preset(preset)
        target = p.target_profile()
        layout, eng = _with_target_stage(p.layout, target, self.engine)
        if target is not None:
            from resculpt.models.resculpt.stage import ResculptTarget

            ResculptTarget.make(target)  # a bad target: the error before anything changes
        self.switch(layout, p.full_params(), p.name)
        if target is not None:
            ChainHost.set_target(self, target, engine=eng)

    engine = "auto"  # the engine set_target uses when it is given none (ENGINES)

    def set_target(self, target, amount: float | None = None, add_stage: bool = False,
                   engine: str | None = None) -> str:
        """:meth:`ChainHost.set_target` with ``engine`` resolved (None: this chain's ``engine``; "auto": the
        model whenever its bundle is installed and its benchmark verdict covers the target's form, see
        :func:`resolve_engine`; a chain that already runs a target stage keeps it under "auto", so a new target
        of another form never stacks the other engine's stage on it); returns the engine used. Raises
        EngineError or ProfileError before anything changes."""
        eng = resolve_engine(engine or self.engine, self.layout, target)
        running = [e for e, slot in TARGET_SLOTS.items() if slot in self.layout.spectral]
        if (engine or self.engine) == "auto" and running and eng not in running:
            eng = running[0]
        super().set_target(target, amount, add_stage, eng)
        return eng

    def set_sidechain(self, source, sample_rate: int | None = None) -> None:
        """The mask-transfer reference: an audio file's path, or (n,) / (channels, n) audio with its
        ``sample_rate``, or None to clear it (see :meth:`ChainHost.set_sidechain`)."""
        if isinstance(source, (str, bytes, os.PathLike)):
            source, sample_rate = read_audio(source)
        super().set_sidechain(source, sample_rate)


__all__ = ["ENGINES", "Chain", "EngineError", "resolve_engine"]
