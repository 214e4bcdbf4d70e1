"""``resculpt.Chain``: the real-time host plus preset names, preset files and sidechain files.

:class:`~resculpt.plugin_host.host.ChainHost` runs audio and takes only plain data; this subclass
resolves what users type (a preset name or path, an audio file) on the control thread and hands the
host the result. Every method here runs on a control thread.
"""

from __future__ import annotations

import os

from .audio_io import read_audio
from .host import ChainHost
from .presets import Preset, load_preset


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
        return cls(p.layout, sample_rate, channels, max_block, params=p.full_params(), preset_name=p.name)

    def load_preset(self, preset) -> None:
        """Load a preset by name, path or Preset object. Validates fully first; crossfades."""
        p = preset if isinstance(preset, Preset) else load_preset(preset)
        self.switch(p.layout, p.full_params(), p.name)

    def set_sidechain(self, source, sample_rate: int | None = None) -> None:
        """The mask-transfer reference: an audio file's path, or (n,) / (channels, n) audio with its
        ``sample_rate``, or None to clear it (see :meth:`ChainHost.set_sidechain`)."""
        if isinstance(source, (str, bytes, os.PathLike)):
            source, sample_rate = read_audio(source)
        super().set_sidechain(source, sample_rate)


__all__ = ["Chain"]
