"""The LV2 plugin's port layout: fixed ports, then one control input per parameter in DAW order.

Port indices never change between versions, so automation and state saved by a host keep their meaning:

====  ===========  ================================================================
0, 1  in_l, in_r   audio inputs
2, 3  out_l, out_r audio outputs
4     latency      control output: the chain latency in samples (lv2:reportsLatency)
5     enabled      lv2:enabled (0 = bypassed, crossfaded by the chain's bypass ramp)
6     preset       enumeration over :data:`PRESETS` (chooses the chain layout); :data:`USER_PRESET` (-1)
                   names the user preset carried in the plugin's state
7...  parameters   :func:`resculpt.plugin_host.daw.param_order` (append-only), symbol = id with "." -> "_"
====  ===========  ================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from resculpt.dsp.params import ParamSpec
from resculpt.plugin_host.daw import RETIRED, order_specs

URI = "urn:resculpt:chain"
AUDIO_PORTS = (("in_l", "Input L"), ("in_r", "Input R"), ("out_l", "Output L"), ("out_r", "Output R"))
LATENCY_PORT = 4
ENABLED_PORT = 5
PRESET_PORT = 6
FIRST_PARAM_PORT = 7

# The preset enumeration's values (index = port value): APPEND-only, so a value saved in a session or an
# automation lane names the same preset in every later version. tests/test_lv2.py checks that every
# shipped preset is listed.
PRESETS = (
    "clean",
    "broadcast-voice",
    "denoise-gentle",
    "denoise-live",
    "denoise-strong",
    "gate-residue",
    "mask-transfer",
    "podcast-clean",
    "rhythmic-mask",
    "spectral-blur",
    "spectral-dark",
    "spectral-freeze",
    "spectral-gate-tilt",
    "telephone",
    "voice-enhance",
    "chipmunk",
    "deep-voice",
    "anon-low",
    "anon-high",
    "anon-neutral",
    "bright-podcast",
    "call-voice",
    "casual-voice",
    "codec-repair",
    "formal-voice",
    "stream-voice",
    "warm-radio",
    "denoise-hq",
    "anon-strong",
    "anon-far",
)
DEFAULT_PRESET = "clean"
# The preset control's value while the sound is a user preset carried in the plugin's state (an LV2 preset
# written by `resculpt plugin preset`): below the shipped presets' values, so appending presets never moves it.
USER_PRESET = -1
USER_PRESET_LABEL = "(user preset)"


@dataclass(frozen=True)
class ParamPort:
    """One parameter's control input: LV2 port ``index``, ``symbol``, and the table's ``spec``
    (``retired``: the index no longer drives anything; kept so later indices never shift)."""

    index: int
    symbol: str
    spec: ParamSpec
    retired: bool


def symbol(param_id: str) -> str:
    """The LV2 symbol of a parameter id (``out.gain_db`` -> ``out_gain_db``)."""
    return param_id.replace(".", "_")


def param_ports() -> list[ParamPort]:
    """Every parameter's control input, in port order."""
    return [ParamPort(FIRST_PARAM_PORT + k, symbol(s.id), s, s.doc == RETIRED) for k, s in enumerate(order_specs())]


def n_controls() -> int:
    """Control inputs from ``ENABLED_PORT`` on (enabled, preset, every parameter): the shell's
    ``RESCULPT_N_CONTROLS`` and the length of the control array it shares with the bridge."""
    return FIRST_PARAM_PORT - ENABLED_PORT + len(order_specs())


__all__ = [
    "AUDIO_PORTS",
    "DEFAULT_PRESET",
    "ENABLED_PORT",
    "FIRST_PARAM_PORT",
    "LATENCY_PORT",
    "PRESETS",
    "PRESET_PORT",
    "URI",
    "USER_PRESET",
    "USER_PRESET_LABEL",
    "ParamPort",
    "n_controls",
    "param_ports",
    "symbol",
]
