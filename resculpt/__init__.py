"""Resculpt: a real-time audio effect with pedalboard chains around learned spectral stages.

Public API::

    import resculpt
    chain = resculpt.Chain.from_preset("broadcast-voice", sample_rate=48000, channels=2)
    y = chain(x)                  # (channels, n) or (n,) float32, latency trimmed
    chain.process(block)          # streaming, in place
    chain.params["comp.ratio"] = 4
    summary = resculpt.render_batch(["library/"], "done/", preset="podcast-clean", jobs=4)  # resumable

The packages behind it are installed as resculpt.dsp, resculpt.plugin_host, resculpt.models,
resculpt.ui and resculpt.presets (the repository's top-level folders).
"""

__version__ = "0.1.0"

from resculpt.plugin_host.batch import render_batch  # noqa: E402
from resculpt.plugin_host.chain import Chain  # noqa: E402
from resculpt.plugin_host.layout import Layout  # noqa: E402
from resculpt.plugin_host.presets import Preset, PresetError, list_presets, load_preset  # noqa: E402
from resculpt.dsp.params import ParamError, ParamSpec  # noqa: E402

__all__ = ["Chain", "Layout", "Preset", "PresetError", "ParamError", "ParamSpec", "list_presets", "load_preset",
           "render_batch", "__version__"]
