"""The catalog of stage slots: the one place that defines every parameter id Resculpt has.

A chain is a fixed set of *slots* (hpf, gate, comp, sgate, mask, low_shelf, limiter, ...).
A preset's chain layout chooses which slots run, in which section and order; the parameter table
always holds every slot's parameters, so OSC addresses, panel widgets, DAW automation lanes and
preset keys stay the same whatever preset is loaded (a DAW lane never breaks on a preset change).
Parameters of slots that are not in the current layout are kept and take effect when a layout
that uses the slot is loaded.

Board slots wrap pedalboard plugins; spectral slots are :class:`~resculpt.dsp.stft.SpectralStage`s
in the shared STFT. VST3 plugins loaded by path add ``<slot>.<param>`` ids at build time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pedalboard as pb

from resculpt.dsp import lfo_mask, mask_transfer, match_eq, spectral_blur, spectral_freeze, spectral_gate
from resculpt.dsp.params import ParamSpec
from resculpt.dsp.voice import shift as voice_shift
from resculpt.dsp.voice import mcadams
from resculpt.dsp.voice import anon as voice_anon
from resculpt.models.codec import stage as codec_stage
from resculpt.models.mask import stage as mask_stage
from resculpt.models.resculpt import stage as resculpt_stage

# Global parameters, applied by the host around the engine.
GLOBAL_PARAMS = (
    ParamSpec("in.gain_db", -24.0, 24.0, 0.0, "dB", smoothing_ms=20.0, doc="input trim before the wet chain"),
    ParamSpec("out.gain_db", -60.0, 24.0, 0.0, "dB", smoothing_ms=20.0, doc="output level after the mix"),
    ParamSpec("mix", 0.0, 1.0, 1.0, "", smoothing_ms=20.0, doc="wet/dry mix; the dry path is latency-aligned"),
    ParamSpec("bypass", 0.0, 1.0, 0.0, "", scale="bool", smoothing_ms=10.0,
              doc="crossfade to the latency-aligned dry signal"),
)


@dataclass(frozen=True)
class BoardSlot:
    """A slot made of pedalboard plugins.

    build() returns the plugin list; binds maps a parameter id to (plugin index, attribute,
    transform from the parameter's unit to the plugin's).
    """

    slot: str
    doc: str
    params: tuple[ParamSpec, ...]
    build: Callable[[], list]
    binds: dict = field(default_factory=dict)
    kind: str = "board"
    inbox_type = None  # board slots take no published state


@dataclass(frozen=True)
class SectionSlot:
    """Parameters of the shared spectral section itself (read by dsp/stft.py:StreamingSTFT).

    Not a stage: it cannot be placed in a layout (Layout rejects kind "section"); its parameters
    take effect whenever a layout has a spectral section, and do nothing without one.
    """

    slot: str
    doc: str
    params: tuple[ParamSpec, ...]
    kind: str = "section"
    inbox_type = None  # the section takes no published state


@dataclass(frozen=True)
class SpectralSlot:
    """A slot that runs in the shared STFT; ``build(table)`` returns a SpectralStage (a stage class whose
    ``inbox_type`` is set also takes ``inbox=``)."""

    slot: str
    doc: str
    params: tuple[ParamSpec, ...]
    build: Callable
    kind: str = "spectral"

    @property
    def inbox_type(self):
        """The type of non-scalar state the slot's stage reads (:mod:`resculpt.dsp.inbox`), or None."""
        return getattr(self.build, "inbox_type", None)

    def make(self, table, inbox=None):
        """The slot's stage on ``table``, reading ``inbox`` when it has state (its own inbox if None)."""
        if inbox is not None and self.inbox_type is not None:
            return self.build(table, inbox=inbox)
        return self.build(table)


def _db_to_lin(db):
    return 10.0 ** (db / 20.0)


def _ident(v):
    return v


P = ParamSpec
SLOTS: dict[str, BoardSlot | SpectralSlot | SectionSlot] = {}


def register(slot):
    if slot.slot in SLOTS:
        raise ValueError(f"slot {slot.slot!r} registered twice")
    for p in slot.params:
        if not p.id.startswith(slot.slot + "."):
            raise ValueError(f"param {p.id} must start with its slot name {slot.slot}.")
    SLOTS[slot.slot] = slot
    return slot


register(BoardSlot(
    "trim", "gain stage (level into the next stage)",
    (P("trim.gain_db", -48.0, 24.0, 0.0, "dB", smoothing_ms=20.0, doc="gain"),),
    lambda: [pb.Gain(0.0)], {"trim.gain_db": (0, "gain_db", _ident)}))
register(BoardSlot(
    "hpf", "high-pass filter (first order, 6 dB/oct): rumble, handling noise, plosive thumps",
    (P("hpf.cutoff_hz", 20.0, 2000.0, 80.0, "Hz", "log", 30.0, "cutoff frequency"),),
    lambda: [pb.HighpassFilter(80.0)], {"hpf.cutoff_hz": (0, "cutoff_frequency_hz", _ident)}))
register(BoardSlot(
    "lpf", "low-pass filter (first order, 6 dB/oct)",
    (P("lpf.cutoff_hz", 500.0, 22000.0, 18000.0, "Hz", "log", 30.0, "cutoff frequency"),),
    lambda: [pb.LowpassFilter(18000.0)], {"lpf.cutoff_hz": (0, "cutoff_frequency_hz", _ident)}))
register(BoardSlot(
    "gate", "noise gate (downward expander)",
    (P("gate.threshold_db", -90.0, 0.0, -55.0, "dB", smoothing_ms=30.0, doc="opens above this level"),
     P("gate.ratio", 1.0, 20.0, 4.0, ":1", smoothing_ms=30.0, doc="expansion ratio"),
     P("gate.attack_ms", 0.1, 100.0, 1.0, "ms", "log", 0.0, "opening time"),
     P("gate.release_ms", 5.0, 2000.0, 120.0, "ms", "log", 0.0, "closing time")),
    lambda: [pb.NoiseGate(-55.0, 4.0, 1.0, 120.0)],
    {"gate.threshold_db": (0, "threshold_db", _ident), "gate.ratio": (0, "ratio", _ident),
     "gate.attack_ms": (0, "attack_ms", _ident), "gate.release_ms": (0, "release_ms", _ident)}))
register(BoardSlot(
    "comp", "compressor with make-up gain",
    (P("comp.threshold_db", -60.0, 0.0, -18.0, "dB", smoothing_ms=30.0, doc="compression starts here"),
     P("comp.ratio", 1.0, 20.0, 3.0, ":1", smoothing_ms=30.0, doc="compression ratio"),
     P("comp.attack_ms", 0.1, 200.0, 5.0, "ms", "log", 0.0, "attack time"),
     P("comp.release_ms", 5.0, 2000.0, 120.0, "ms", "log", 0.0, "release time"),
     P("comp.makeup_db", 0.0, 24.0, 0.0, "dB", smoothing_ms=20.0, doc="gain after compression")),
    lambda: [pb.Compressor(-18.0, 3.0, 5.0, 120.0), pb.Gain(0.0)],
    {"comp.threshold_db": (0, "threshold_db", _ident), "comp.ratio": (0, "ratio", _ident),
     "comp.attack_ms": (0, "attack_ms", _ident), "comp.release_ms": (0, "release_ms", _ident),
     "comp.makeup_db": (1, "gain_db", _ident)}))
for _name, _cls, _fc, _lo, _hi, _doc in (
    ("low_shelf", pb.LowShelfFilter, 120.0, 20.0, 1000.0, "low shelf: body, warmth, boom"),
    ("high_shelf", pb.HighShelfFilter, 8000.0, 1000.0, 20000.0, "high shelf: air, hiss, brightness"),
    ("presence", pb.PeakFilter, 3500.0, 200.0, 12000.0, "peaking band: presence, nasal, honk"),
):
    register(BoardSlot(
        _name, _doc,
        (P(f"{_name}.cutoff_hz", _lo, _hi, _fc, "Hz", "log", 30.0, "centre/corner frequency"),
         P(f"{_name}.gain_db", -24.0, 24.0, 0.0, "dB", smoothing_ms=30.0, doc="boost or cut"),
         P(f"{_name}.q", 0.1, 10.0, 0.707, "", "log", 30.0, "bandwidth (higher = narrower)")),
        (lambda cls=_cls, fc=_fc: [cls(fc, 0.0, 0.707)]),
        {f"{_name}.cutoff_hz": (0, "cutoff_frequency_hz", _ident), f"{_name}.gain_db": (0, "gain_db", _ident),
         f"{_name}.q": (0, "q", _ident)}))
register(BoardSlot(
    "drive", "tanh saturation with output trim",
    (P("drive.drive_db", 0.0, 60.0, 12.0, "dB", smoothing_ms=30.0, doc="gain into the saturator"),
     P("drive.trim_db", -48.0, 12.0, -6.0, "dB", smoothing_ms=20.0, doc="level after the saturator")),
    lambda: [pb.Distortion(12.0), pb.Gain(-6.0)],
    {"drive.drive_db": (0, "drive_db", _ident), "drive.trim_db": (1, "gain_db", _ident)}))
# JUCE's Reverb scales its dry level by 2 (its wet level by 3): dry_level 1.0 passes the direct sound at +6.02 dB.
# The dry parameter is the direct sound's gain, so 0 dB is dry_level 0.5 and the range ends at +6 dB (JUCE's 1.0).
# The wet level stays JUCE's own scale (the tail's level also depends on room size and damping).
JUCE_REVERB_DRY_SCALE = 2.0


def _dry_db_to_juce(db):
    return _db_to_lin(db) / JUCE_REVERB_DRY_SCALE


register(BoardSlot(
    "reverb", "algorithmic room (Freeverb)",
    (P("reverb.room_size", 0.0, 1.0, 0.35, "", smoothing_ms=50.0, doc="room size"),
     P("reverb.damping", 0.0, 1.0, 0.5, "", smoothing_ms=50.0, doc="high-frequency damping"),
     P("reverb.wet_db", -60.0, 0.0, -14.0, "dB", smoothing_ms=30.0, doc="reverberant level"),
     P("reverb.dry_db", -60.0, 6.0, 0.0, "dB", smoothing_ms=30.0, doc="direct level (0 dB: unity)"),
     P("reverb.width", 0.0, 1.0, 1.0, "", smoothing_ms=50.0, doc="stereo width of the tail")),
    lambda: [pb.Reverb(0.35, 0.5, _db_to_lin(-14.0), _dry_db_to_juce(0.0), 1.0)],
    {"reverb.room_size": (0, "room_size", _ident), "reverb.damping": (0, "damping", _ident),
     "reverb.wet_db": (0, "wet_level", _db_to_lin), "reverb.dry_db": (0, "dry_level", _dry_db_to_juce),
     "reverb.width": (0, "width", _ident)}))
# JUCE's Limiter is two compressors (4:1 above -10 dBFS, then 1000:1 above the threshold) followed by a make-up
# of 3.75 dB (the first stage's, fixed) plus -threshold, and it hard-clips at 0 dBFS. So alone it raises a quiet
# signal by 3.75 dB more than -threshold and starts clamping 3.75 dB below the threshold. A -3.75 dB gain before it
# cancels that fixed make-up: a quiet signal comes out -threshold + ceiling dB louder (unity with threshold =
# ceiling), clamping starts at the threshold, and the Gain after it sets the true output ceiling. JUCE's first
# stage still compresses 4:1 what rises above -6.25 dBFS at the slot's input, so loud material is softened
# before it reaches the threshold.
JUCE_LIMITER_MAKEUP_DB = 3.75
register(BoardSlot(
    "limiter", "limiter (JUCE Limiter) with an output ceiling",
    (P("limiter.threshold_db", -24.0, 0.0, -1.0, "dB", smoothing_ms=20.0,
       doc="input peaks above this are limited (the limiter then adds -threshold of make-up)"),
     P("limiter.release_ms", 1.0, 1000.0, 80.0, "ms", "log", 0.0, "release time"),
     P("limiter.ceiling_db", -24.0, 0.0, -1.0, "dB", smoothing_ms=20.0,
       doc="highest output sample peak, dBFS (the waveform between samples can pass it; brickwall holds true peaks)")),
    lambda: [pb.Gain(-JUCE_LIMITER_MAKEUP_DB), pb.Limiter(-1.0, 80.0), pb.Gain(-1.0)],
    {"limiter.threshold_db": (1, "threshold_db", _ident), "limiter.release_ms": (1, "release_ms", _ident),
     "limiter.ceiling_db": (2, "gain_db", _ident)}))

register(SpectralSlot("sgate", "spectral gate with tilted threshold", spectral_gate.PARAMS,
                      spectral_gate.SpectralGate))
# Creative spectral effects (docs/creative.md).
register(SpectralSlot("freeze", "spectral freeze: hold a spectrum and sustain it (pitch-true phase advance)",
                      spectral_freeze.PARAMS, spectral_freeze.SpectralFreeze))
register(SpectralSlot("blur", "spectral blur: smear magnitudes in time and frequency",
                      spectral_blur.PARAMS, spectral_blur.SpectralBlur))
register(SpectralSlot("xmask", "mask transfer: a reference clip's band envelopes imposed on the input, looping",
                      mask_transfer.PARAMS, mask_transfer.MaskTransfer))
register(SpectralSlot("lfo", "rhythmic mask: band-selective LFO amplitude modulation sweeping the spectrum",
                      lfo_mask.PARAMS, lfo_mask.LfoMask))
# Registered after the stages so the catalog order stays the append-only DAW order
# (plugin_host/daw/order.py).
register(SectionSlot("spectral", "spectral section: delta listen (hear only what the spectral stages remove)", (
    P("spectral.delta", 0.0, 1.0, 0.0, "", "bool", 20.0,
      "delta listen: the spectral section outputs only what its stages removed (dry - processed)"),)))

register(SpectralSlot("match", "profile-matching EQ: moves the band envelope toward a target profile "
                      "(Chain.set_target)", match_eq.PARAMS, match_eq.MatchEQ))
# The learned mask (models/mask); registered last so the catalog order stays the append-only DAW order.
register(SpectralSlot("mask", "adaptive spectral mask (learned denoise/enhance, ONNX, causal, no look-ahead)",
                      mask_stage.PARAMS, mask_stage.MaskStage))
# Voice transformation (docs/voice.md).
register(SpectralSlot("voice", "pitch shift (formants kept) and formant shift (pitch kept): peak-locked phase "
                      "vocoder on the cepstrally whitened spectrum", voice_shift.PARAMS, voice_shift.VoiceShift))
# Voice transformation (dsp/voice, docs/anonymization.md).
register(SpectralSlot("mcadams", "McAdams anonymizer (VoicePrivacy baseline): LPC pole angles phi -> phi^alpha",
                      mcadams.PARAMS, mcadams.McAdams))
# Pseudo-speaker for the anon-* presets (docs/anonymization.md).
register(SpectralSlot("anon", "pseudo-speaker: the speaker's median pitch, formant scale and long-term timbre "
                      "normalised onto fixed targets, McAdams warp of the envelope", voice_anon.PARAMS,
                      voice_anon.AnonVoice))
# The resculpting model (models/resculpt, docs/resculpt-model.md): needs the shipped generator bundle.
register(SpectralSlot("resculpt", "resculpting model: a learned generator that moves the sound toward a target "
                      "profile (Chain.set_target) and repairs low-bitrate codec audio", resculpt_stage.PARAMS,
                      resculpt_stage.ResculptStage))
register(SpectralSlot("codec", "band replication: rebuilds the high band a codec cut off from the band below it, "
                      "frame by frame, at the level a learned envelope or a slope rule gives (codec-repair)",
                      codec_stage.PARAMS, codec_stage.LearnedCodecRepair))

# A true-peak brick-wall limiter (pedalboard's BrickwallLimiter: 5 ms look-ahead, peaks detected on a 4x
# oversampled side chain, no make-up gain). Its look-ahead is latency: 5 ms plus 60 samples of the oversampling
# filter (6.25 ms at 48 kHz), reported by the board and compensated like any other. Look-ahead and true-peak
# detection are fixed here because pedalboard applies a change of either only after a restart.
register(BoardSlot(
    "brickwall", "true-peak brick-wall limiter: 5 ms look-ahead, 4x oversampled peak detection, no make-up gain",
    (P("brickwall.ceiling_db", -24.0, 0.0, -1.0, "dB", smoothing_ms=20.0,
       doc="highest output peak, dBTP as the 4x oversampled side chain sees it (inter-sample peaks can "
           "still pass it by a fraction of a dB: measured in tests/test_boards.py)"),
     P("brickwall.release_ms", 1.0, 1000.0, 100.0, "ms", "log", 0.0, "release time")),
    lambda: [pb.BrickwallLimiter(ceiling_db=-1.0, release_ms=100.0, lookahead_ms=5.0, true_peak=True)],
    {"brickwall.ceiling_db": (0, "ceiling_db", _ident), "brickwall.release_ms": (0, "release_ms", _ident)}))


# The learned mask's high-quality tier (models/weights/mask-hq): the same stage and controls as `mask`, on a net
# with two frames of look-ahead (10 ms), for offline renders and the denoise-hq preset (20 ms with the 10 ms window).
register(SpectralSlot("mask_hq", "adaptive spectral mask, high-quality tier (learned denoise/enhance, ONNX, 10 ms "
                      "of look-ahead)", mask_stage.HQ_PARAMS, mask_stage.HighQualityMask))

def all_param_specs() -> list[ParamSpec]:
    """Every parameter: globals first, then each slot's in registration order."""
    specs = list(GLOBAL_PARAMS)
    for s in SLOTS.values():
        specs.extend(s.params)
    return specs


def slot(name: str):
    try:
        return SLOTS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(SLOTS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown stage {name!r}{hint}; known: {', '.join(SLOTS)}") from None
