"""The processor contract, checked for every slot of the catalog (plugin_host/catalog.py:SLOTS).

A slot registered in the catalog is covered here without writing a test: streaming == offline for
any block partition, reset then rerun, zero-length blocks, NaN/Inf input, every supported rate mono
and stereo, allocation-free process(), reported latency == measured delay. Board slots run as a
Board of their pedalboard plugins, spectral slots in a StreamingSTFT of their own, and the spectral
section's own slot (delta listen) as a section of the stages its ACTIVE entry names.

Each slot runs with the parameter values of its ACTIVE entry below, chosen so it audibly changes the
test signal; test_slot_is_audibly_active fails for a slot whose configuration (its entry, or the
defaults when it has none) leaves the signal as it was, so an inactive stage cannot pass the other
checks by doing nothing. A new slot whose defaults do nothing needs an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from conftest import BLOCK_SIZES, stream
from stage_testlib import (
    at_samples,
    make_board,
    make_section,
    measure_allocation,
    run,
    signal_for,
)

from resculpt.dsp.processor import SUPPORTED_RATES
from resculpt.plugin_host import catalog
from resculpt.plugin_host.chain import Chain


def _publish(where, slot: str, target) -> None:
    """Publish ``target`` for ``slot``: on a Chain to its inbox for the slot, on a section to the inboxes of its
    stages that read that type."""
    if isinstance(where, Chain):
        where.publish(slot, target)
        return
    for st in where.stages:
        if st.inbox_type is type(target):
            st.inbox.publish(target)


def _give_match_a_target(where) -> None:
    """The match stage moves the band envelope toward a published target and does nothing without one; the
    target's loudness (louder than the test signal) runs its loudness follower too."""
    from resculpt.dsp.match_eq import MatchTarget

    _publish(where, "match", MatchTarget.make(np.linspace(-20.0, -60.0, 32), loudness=(-16.0, float("nan"))))


def _give_resculpt_a_target(where) -> None:
    """The resculpt stage passes audio (delayed by its look-ahead) until a target is published: a darker,
    louder voice than the test signal, with a median F0 the voice match moves to in voice mode."""
    from resculpt.dsp.profile import Profile
    from resculpt.models.resculpt.stage import ResculptTarget

    _publish(where, "resculpt", ResculptTarget.make(Profile(
        "target", {"centroid_hz": 700.0, "tilt_db_oct": -9.0, "lufs_integrated": -16.0, "f0_median_hz": 300.0},
        band_env_db=list(-30.0 - 1.5 * np.arange(32)))))


def _low_voice(sample_rate: int, channels: int, seconds: float = 0.3, seed: int = 0) -> np.ndarray:
    """signal_for at half its level plus a 95 Hz voice (harmonics to 4 kHz on a 1 kHz resonance, peak 0.3): the
    anon stage tracks a low voice, whose voiced frames take its harmonic shift (signal_for's 440 Hz tone is a
    voice above its limit, which takes the peak-locked shift)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    v = sum(np.cos(2 * np.pi * 95.0 * h * t + 0.3 * h * h) / np.hypot(1 - (95.0 * h / 1000.0) ** 2, 95.0 * h / 5000.0)
            for h in range(1, int(4000 / 95)))
    v = 0.3 * v / np.abs(v).max()
    return (0.5 * signal_for(sample_rate, channels, seconds, seed) + v[None]).astype(np.float32)


def _syllables(sample_rate: int, channels: int, seconds: float = 0.3, seed: int = 0) -> np.ndarray:
    """_low_voice with its voice at a 4 Hz syllable rate (0.1..1 of its level) over signal_for at half its level:
    speech in noise, what the mask nets are trained on. On signal_for alone (a steady tone pair, neither clearly
    voice nor noise) a net's recurrent state settles on one reading or another, and a jolt such as a zeroed NaN
    frame can move it to the other for seconds (both shipped nets do), so whether the stage recovers is judged on
    speech."""
    noise = 0.5 * signal_for(sample_rate, channels, seconds, seed)
    t = np.arange(noise.shape[1]) / sample_rate
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return (noise + (_low_voice(sample_rate, channels, seconds, seed) - noise) * env).astype(np.float32)


@dataclass(frozen=True)
class Active:
    """A slot's test configuration.

    params: initial values; events: [(seconds, {id: value})] changed mid-stream (the scenarios are
    0.25-0.4 s long); setup(section or chain): non-scalar state a stage needs to act; stages: for the section's
    own slot, the spectral stages the section runs; alloc_peak_bytes: the slot's transient-peak bound in
    test_process_allocates_nothing where it differs from its kind's; image_error: the bound on the
    six-channel image error in test_linked_analysis_keeps_the_image_at_six_channels_as_in_stereo; signal:
    (sample_rate, channels, seconds, seed) -> the slot's test signal, where signal_for's does not reach a code
    path its input decides; delay_params: values set for test_reported_latency_equals_measured_delay only,
    where the active configuration makes the output move before the delayed input arrives (a look-ahead
    limiter starts its gain ramp up to its look-ahead early)."""

    params: dict
    events: tuple = ()
    setup: Callable | None = None
    stages: tuple = ()
    alloc_peak_bytes: int = 0
    image_error: float = 1e-5
    signal: Callable | None = None
    delay_params: dict | None = None


ACTIVE = {
    "trim": Active({"trim.gain_db": -6.0}, ((0.15, {"trim.gain_db": 3.0}),)),
    "hpf": Active({"hpf.cutoff_hz": 800.0}, ((0.15, {"hpf.cutoff_hz": 300.0}),)),
    "lpf": Active({"lpf.cutoff_hz": 1500.0}, ((0.15, {"lpf.cutoff_hz": 4000.0}),)),
    # The test signal peaks near -8 dBFS outside its burst: a -3 dB threshold keeps the gate closing.
    "gate": Active({"gate.threshold_db": -3.0, "gate.ratio": 8.0}, ((0.15, {"gate.threshold_db": -20.0}),)),
    "comp": Active({"comp.threshold_db": -30.0, "comp.ratio": 6.0, "comp.makeup_db": 6.0},
                   ((0.15, {"comp.ratio": 2.0}),)),
    "low_shelf": Active({"low_shelf.cutoff_hz": 600.0, "low_shelf.gain_db": 12.0},
                        ((0.15, {"low_shelf.gain_db": -12.0}),)),
    "high_shelf": Active({"high_shelf.cutoff_hz": 2000.0, "high_shelf.gain_db": -18.0},
                         ((0.15, {"high_shelf.q": 2.0}),)),
    "presence": Active({"presence.cutoff_hz": 440.0, "presence.gain_db": -18.0, "presence.q": 2.0},
                       ((0.15, {"presence.cutoff_hz": 2500.0}),)),
    "drive": Active({"drive.drive_db": 24.0}, ((0.15, {"drive.drive_db": 36.0}),)),
    "reverb": Active({"reverb.room_size": 0.7, "reverb.wet_db": -6.0}, ((0.15, {"reverb.damping": 0.9}),)),
    "limiter": Active({"limiter.threshold_db": -12.0, "limiter.ceiling_db": -3.0},
                      ((0.15, {"limiter.threshold_db": -6.0}),)),
    # Limiting at -12 dB ramps the gain down 5 ms before the poke of the delay test arrives: that test runs it
    # with the ceiling at 0 dB, which the poked noise stays under, so the slot is a pure delay there.
    "brickwall": Active({"brickwall.ceiling_db": -12.0}, ((0.15, {"brickwall.ceiling_db": -6.0}),),
                        delay_params={"brickwall.ceiling_db": 0.0}),
    "sgate": Active({"sgate.threshold_db": -30.0, "sgate.tilt_db_oct": 6.0, "sgate.range_db": 40.0,
                     "sgate.attack_ms": 3.0, "sgate.release_ms": 60.0},
                    ((0.1, {"sgate.tilt_db_oct": -3.0}), (0.2, {"sgate.threshold_db": -20.0}))),
    # Hold on during the tones, off during the burst, on again (re-capture) near the end.
    "freeze": Active({"freeze.crossfade_ms": 30.0, "freeze.mix": 0.8, "freeze.jitter": 0.2},
                     ((0.05, {"freeze.hold": 1}), (0.14, {"freeze.hold": 0}), (0.22, {"freeze.hold": 1}))),
    # Switch to random phase and a wider smear mid-stream.
    "blur": Active({"blur.time_ms": 120.0, "blur.freq_hz": 300.0, "blur.mix": 0.9},
                   ((0.12, {"blur.phase": 1, "blur.freq_hz": 800.0}), (0.2, {"blur.time_ms": 0.0}))),
    # The built-in "beat" source, then "vowels".
    "xmask": Active({"xmask.source": 0, "xmask.rate_x": 1.3, "xmask.floor_db": -50.0, "xmask.depth": 0.9},
                    ((0.1, {"xmask.source": 1}), (0.2, {"xmask.rate_x": 0.5, "xmask.depth": 0.5}))),
    "lfo": Active({"lfo.rate_hz": 7.0, "lfo.depth": 0.9, "lfo.shape": 0, "lfo.spread_cycles": 1.0,
                   "lfo.low_hz": 200.0, "lfo.high_hz": 8000.0},
                  ((0.07, {"lfo.shape": 1}), (0.14, {"lfo.shape": 3}),
                   (0.21, {"lfo.shape": 2, "lfo.bpm": 128.0, "lfo.division": 4}))),
    # Short attack/release so the gains get most of the way to the target within the scenario.
    "match": Active({"match.smooth_bands": 2, "match.attack_ms": 20.0, "match.release_ms": 20.0},
                    ((0.15, {"match.amount": 0.5}),), setup=_give_match_a_target),
    # contrast 1.5 so the in-place power runs too. Allocation: below one float32 row of bins (481 x 4 B),
    # the bound tests/test_mask_stage.py holds its batched path to; its Python small objects per model
    # call measure up to ~1.1 KB over an empty section (unlinked stereo), no model output or state array.
    "mask": Active({"mask.reduction_db": 30.0, "mask.contrast": 1.5}, ((0.15, {"mask.mode": "enhance"}),),
                   alloc_peak_bytes=4 * 481, signal=_syllables),
    # The same stage on the high-quality tier's bundle (two frames of look-ahead): the same scenario and bound.
    "mask_hq": Active({"mask_hq.reduction_db": 30.0, "mask_hq.contrast": 1.5}, ((0.15, {"mask_hq.mode": "enhance"}),),
                      alloc_peak_bytes=4 * 481, signal=_syllables),
    # Formants only (real gains per bin) first, then a pitch shift up, then down with the formants lowered.
    "voice": Active({"voice.formant_ratio": 1.25},
                    ((0.15, {"voice.pitch_st": 5.0}), (0.22, {"voice.pitch_st": -7.0, "voice.formant_ratio": 0.8}))),
    # Formants pushed further, then less far, mid-stream.
    "mcadams": Active({"mcadams.alpha": 0.7}, ((0.15, {"mcadams.alpha": 0.9}),)),
    # Defaults shift the pitch to the target, envelope shapes from the codebook, the synthesized excitation, the
    # level dynamics with the learned split's movement (standardised, half its share in the mid bands) and the
    # pauses cut;
    # then a drawn pseudo-speaker, then formants and warp moved. Image: each channel picks its own spectral peaks and carries its own
    # phases from frame to frame, so copies at levels that are not powers of two (0.1, 0.7) round apart by
    # 0.7 .. 1.2e-5 of the peak over signal_for's seeds 0-7, with the numpy code and the compiled loops
    # alike, on the machine where the bound was set; on an AVX-512 EPYC the numpy code reaches 2.1e-5 on one of
    # seeds 0-3 and the compiled loops stay at 0.08-0.33e-5 (tests/test_voice_kernels.py compares the two); a power-of-two
    # copy stays within 4e-7.
    "anon": Active({"anon.f0_hz": 200.0, "anon.timbre_pct": 100.0, "anon.codebook_pct": 100.0,
                    "anon.excite_pct": 100.0, "anon.dynamics_pct": 100.0, "anon.split_pct": 100.0,
                    "anon.dynamics_range_db": 24.0, "anon.split_center_pct": 100.0,
                    "anon.split_spread_pct": 100.0, "anon.pause_cut_db": 12.0, "anon.floor_sub_db": 3.0,
                    "anon.lift_snr_db": 6.0, "anon.split_mid_pct": 50.0},
                   ((0.12, {"anon.seed": 12345}), (0.2, {"anon.formant_ratio": 0.8, "anon.warp_alpha": 0.7})),
                   image_error=2e-5, signal=_low_voice),
    # Overrides moved and the match mode switched mid-stream (voice: the voice match shifts the pitch toward the
    # target's median F0 before the model); the same allocation bound as the mask (one model call per frame
    # through IOBinding). Image: the voice match is the anon stage's peak-locked shifter (each channel picks its
    # own peaks and carries its own phases), so its bound is the anon slot's: 1.5e-5 measured here at 6 channels
    # (numpy 2.4, onnxruntime 1.32), with or without the voice match's F0 range.
    "resculpt": Active({"resculpt.bass_db": 6.0, "resculpt.tilt_db_oct": -2.0},
                       ((0.1, {"resculpt.amount": 0.5, "resculpt.match": "voice"}), (0.2, {"resculpt.bass_db": -6.0})),
                       setup=_give_resculpt_a_target, alloc_peak_bytes=4 * 481, image_error=2e-5),
    # The test signal is full-band (no codec edge to find): a fixed edge, moved mid-stream, then the auto search.
    # The valley postfilter switched on mid-stream; the learned envelope on from the start, half-way and with
    # kept-band corrections later (one model call per frame through IOBinding, as the mask).
    "codec": Active({"codec.cutoff_hz": 3000.0, "codec.slope_db_oct": -6.0, "codec.model": 1.0},
                    ((0.1, {"codec.cutoff_hz": 5000.0, "codec.level_db": -6.0, "codec.valley_db": 6.0,
                            "codec.model": 0.5, "codec.model_kept_db": 6.0}),
                     (0.2, {"codec.cutoff_hz": 0.0}))),
    # Delta listen switched off and on again over a section that removes a lot.
    "spectral": Active({"sgate.threshold_db": -30.0, "sgate.tilt_db_oct": 6.0, "sgate.range_db": 40.0,
                        "lfo.rate_hz": 5.0, "lfo.depth": 0.8, "blur.time_ms": 80.0, "spectral.delta": 1},
                       ((0.08, {"spectral.delta": 0}), (0.2, {"spectral.delta": 1})),
                       stages=("sgate", "lfo", "blur")),
}
SLOTS = list(catalog.SLOTS)
# The resculpt slot loads the generator bundle (the shipped one, or a test generator exported for the session).
pytestmark = pytest.mark.usefixtures("resculpt_bundle")
# pedalboard's IIR filters (JUCE dsp::IIR) flush states below 1e-8 to zero at the end of every call,
# so a board differs between block partitions by less than 1e-6 for one filter (-120 dBFS; measured
# in tests/test_host.py:test_juce_filters_flush_tiny_states_per_call). The spectral section is exact.
BOARD_ATOL = 1e-6
# "Audibly active": the output differs from the latency-aligned input by at least -20 dB (RMS).
ACTIVE_MIN_DIFF = 0.1


def _active(slot: str) -> Active:
    return ACTIVE.get(slot, Active({}))


def _rig(slot, sample_rate=48000, channels=2, linked=True):
    """(rig, init params, events in samples) of ``slot`` in its ACTIVE configuration."""
    a, kind = _active(slot), catalog.SLOTS[slot].kind
    if kind == "board":
        rig = make_board([slot], sample_rate, channels, a.params)
    elif kind == "spectral":
        rig = make_section([slot], sample_rate, channels, a.params, linked=linked)
    elif kind == "section":
        rig = make_section(list(a.stages), sample_rate, channels, a.params, linked=linked)
    else:
        raise AssertionError(f"slot {slot!r} has kind {kind!r}: teach tests/stage_testlib.py to build it")
    if a.setup is not None:
        a.setup(rig.proc)
    return rig, rig.table.targets(), at_samples(a.events, sample_rate)


def _signal(slot, sample_rate: int = 48000, channels: int = 2, seconds: float = 0.3, seed: int = 0) -> np.ndarray:
    """The slot's test signal: its ACTIVE entry's, else signal_for's."""
    make = _active(slot).signal or signal_for
    return make(sample_rate, channels, seconds, seed)


def _chain(slot, sample_rate, channels, max_block=512):
    """``slot`` alone in a Chain (host sanitiser around it) in its ACTIVE configuration."""
    a, kind = _active(slot), catalog.SLOTS[slot].kind
    layout = {"pre": [slot]} if kind == "board" else {"spectral": list(a.stages) if kind == "section" else [slot]}
    ch = Chain(layout, sample_rate, channels, max_block, params=a.params)
    if a.setup is not None:
        a.setup(ch)
    return ch


def _rms(a) -> float:
    return float(np.sqrt(np.mean(np.asarray(a, np.float64) ** 2)))


def _assert_active(slot, y, x):
    d = _rms(y - x) / _rms(x)
    assert d >= ACTIVE_MIN_DIFF, (
        f"slot {slot!r} leaves the test signal nearly unchanged ({20 * np.log10(max(d, 1e-12)):.1f} dB): "
        f"add an entry for it to ACTIVE in tests/test_stage_conformance.py with parameter values that make "
        f"it act, so the conformance checks test what it does")


def _assert_same(slot, got, ref, what):
    if catalog.SLOTS[slot].kind == "board":
        np.testing.assert_allclose(got, ref, atol=BOARD_ATOL, rtol=0, err_msg=what)
    else:
        np.testing.assert_array_equal(got, ref, err_msg=what)


@pytest.mark.parametrize("slot", SLOTS)
def test_slot_is_audibly_active(slot):
    """The slot's configuration changes the test signal by more than -20 dB, so the checks below run a
    stage that acts (a slot with inactive defaults and no ACTIVE entry fails here, naming the fix)."""
    rig, _, events = _rig(slot)
    x = _signal(slot)
    _assert_active(slot, run(rig, x, 512, events), x)


@pytest.mark.parametrize("block", [*BLOCK_SIZES, "random"])
@pytest.mark.parametrize("slot", SLOTS)
def test_streaming_equals_offline_for_any_block_partition(slot, block):
    """Blocks of 1, 63, 64, 65, 512, 8193 or random sizes (zero-length included) give the one-call
    render, with parameters changed mid-stream: bit-exact for spectral slots, within BOARD_ATOL for
    board slots."""
    rig, init, events = _rig(slot)
    x = _signal(slot)
    ref = run(rig, x, "whole", events)
    rig.restart(init)
    _assert_same(slot, run(rig, x, block, events), ref, f"{slot} block {block}")


@pytest.mark.parametrize("slot", SLOTS)
def test_reset_then_rerun_is_identical(slot):
    """reset() returns every piece of state to its prepared value: a second run is bit-identical."""
    rig, init, events = _rig(slot)
    x = _signal(slot)
    a = run(rig, x, 512, events)
    rig.restart(init)
    np.testing.assert_array_equal(run(rig, x, 512, events), a)


@pytest.mark.parametrize("slot", SLOTS)
def test_zero_length_blocks_change_nothing(slot):
    """A zero-length block returns an empty block and, between any two blocks, changes no output."""
    rig, init, events = _rig(slot)
    x = _signal(slot)
    assert rig.proc.process(np.zeros((2, 0), np.float32)).shape == (2, 0)
    a = run(rig, x, 64, events)
    rig.restart(init)
    np.testing.assert_array_equal(run(rig, x, 64, events, zero_blocks=True), a)


@pytest.mark.parametrize("slot", SLOTS)
def test_nonfinite_input_gives_finite_output_and_the_stage_recovers(slot):
    """NaN/Inf samples: finite output, and once they have passed the stage sounds as without them
    (the last fifth's RMS within 6 dB of a clean run's). Spectral slots on their own (the section's
    guard zeroes a non-finite spectrum), every slot in a Chain (whose sanitiser zeroes the samples)."""
    x = _signal(slot, seconds=0.4)
    n = x.shape[1]
    bad = x.copy()
    bad[:, n // 4] = np.nan
    bad[-1, n // 4 + 10] = np.inf
    bad[0, n // 4 + 20] = -np.inf
    tail = slice(int(0.8 * n), None)
    outs = {}
    if catalog.SLOTS[slot].kind != "board":  # pedalboard does not guard: only the host's sanitiser does
        rig, init, events = _rig(slot)
        with np.errstate(invalid="ignore", over="ignore"):  # numpy's FFT/sum warn about the NaN itself
            y = run(rig, bad, 128, events)
        rig.restart(init)
        outs["alone"] = (y, run(rig, x, 128, events))
    ch = _chain(slot, 48000, 2)
    y = ch(bad)
    assert ch.stats.nonfinite_in == 4
    outs["chain"] = (y, ch(x))
    for where, (y, clean) in outs.items():
        assert np.isfinite(y).all(), where
        r = _rms(y[:, tail]) / _rms(clean[:, tail])
        assert 0.5 < r < 2.0, f"{where}: tail RMS {r:.3f} x a clean run's: the stage did not recover"


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("rate", SUPPORTED_RATES)
@pytest.mark.parametrize("slot", SLOTS)
def test_runs_at_every_supported_rate_mono_stereo_and_six_channels(slot, rate, channels):
    """At every rate the product accepts, mono, stereo and 6 channels (a 5.1 stem, rendered offline):
    finite, active, and streaming (blocks of 65) equals offline."""
    rig, init, events = _rig(slot, rate, channels)
    x = _signal(slot, rate, channels, seconds=0.25)
    ref = run(rig, x, "whole", events)
    assert ref.shape == x.shape and np.isfinite(ref).all()
    _assert_active(slot, ref, x)
    rig.restart(init)
    _assert_same(slot, run(rig, x, 65, events), ref, f"{slot} at {rate} Hz, {channels} ch")


def _image_error(slot, channels, linked) -> float:
    """Largest |y_k / a_k - y_0| / max|y_0| when channel k carries a_k times one signal (a_0 = 1)."""
    a = np.array([1.0, 0.5, 0.25, 2.0, 0.1, 0.7], np.float32)[:channels, None]
    rig, _, events = _rig(slot, 48000, channels, linked)
    y = run(rig, a * _signal(slot, 48000, 1, seconds=0.5), 512, events)
    return float(np.abs(y / a - y[:1]).max() / np.abs(y[0]).max())


@pytest.mark.parametrize("slot", [s for s in SLOTS if catalog.SLOTS[s].kind != "board"])
def test_linked_analysis_keeps_the_image_at_six_channels_as_in_stereo(slot):
    """Channels carrying scaled copies of one signal: where linked stereo applies one gain to both
    channels (the copies stay copies, to float rounding), linked 6-channel processing applies one gain
    curve to all six; and where unlinked stereo moves the copies apart, unlinked 6 channels does too."""
    if _image_error(slot, 2, True) < 1e-5:
        assert _image_error(slot, 6, True) < _active(slot).image_error
    if _image_error(slot, 2, False) > 1e-3:
        assert _image_error(slot, 6, False) > 1e-3


def _measured_delay(slot, rig, events, sample_rate) -> int:
    """The delay of the slot's output, in samples (see test_reported_latency_equals_measured_delay)."""
    rng = np.random.default_rng(3)
    n = int(0.3 * sample_rate)
    noise = (0.1 * rng.standard_normal((1, n))).astype(np.float32)
    if catalog.SLOTS[slot].kind == "board":
        t0 = n // 3
        poked = noise.copy()
        poked[0, t0] += 0.5
        a = stream(rig.proc, noise, [512])
        rig.restart(rig.table.targets())
        b = stream(rig.proc, poked, [512])
        moved = np.flatnonzero(a[0] != b[0])
        assert moved.size, "an impulse on the input changed no output sample"
        return int(moved[0]) - t0
    # Zeros after the noise leave room for any delay up to the signal's length.
    x = np.zeros((1, 2 * n), np.float32)
    x[:, :n] = noise
    y = run(rig, x, 512, events, trim=False)
    spec = np.fft.rfft(y[0]) * np.conj(np.fft.rfft(x[0]))
    xc = np.fft.irfft(spec, 2 * n)[:n]  # xc[lag] = sum_t y[t + lag] x[t], lags 0 .. n - 1
    return int(np.argmax(xc))


@pytest.mark.parametrize("rate", SUPPORTED_RATES)
@pytest.mark.parametrize("slot", SLOTS)
def test_reported_latency_equals_measured_delay(slot, rate):
    """latency_samples is the measured delay, at every rate (mono, white noise, the slot's scenario).

    Board slots are causal (a look-ahead one is measured where it does not limit: delay_params), and their IIR
    filters' impulse responses peak after
    their first sample (an 18 kHz low-pass peaks at sample 1), so their delay is where an impulse
    added to the noise first changes the output (the gate, compressor and limiter react to the whole
    signal, so the impulse rides on noise rather than on silence). Spectral slots apply real,
    non-negative gains per bin (or add content uncorrelated with the input: a frozen or random-phase
    spectrum), so the input/output cross-correlation peaks at the delay; an onset would not do there,
    as the overlap-add spreads a gain change over the window on both sides of the delayed sample."""
    rig, _, events = _rig(slot, rate, 1)
    if _active(slot).delay_params:
        rig.set(_active(slot).delay_params)
    assert _measured_delay(slot, rig, events, rate) == rig.latency_samples


# Allocation, measured by tracemalloc over 1500 calls of 64 samples at 48 kHz (400 frames of 5 ms):
# net growth below 4 KB (nothing kept), and the call's transient peak above an empty processor's of
# the same kind and channels below a bound per kind, in bytes.
GROWTH_BYTES = 4096
# Spectral: one (n_bins,) float32 row of the 20 ms window at 48 kHz is 481 x 4 = 1924 B; the stages
# measure under 1 KB above an empty section (Python's small objects: parameter reads, ufunc overhead).
# The empty section's own transients (~1.4 KB) can hide up to ~1 KB more (see
# stage_testlib.measure_allocation). An ACTIVE entry may set another bound, with its reason.
SPECTRAL_PEAK_BYTES = 1024
# Board: pedalboard returns a fresh output array from every call (made by numpy in its C++ binding;
# numpy reports its data buffers to tracemalloc, so it is seen: block bytes plus ~0.5 KB of object),
# freed when Board copies it into the block. Native allocations inside the plugins are not traced.


def _board_peak_bytes(channels: int, block: int) -> int:
    return channels * block * 4 + 1024


_EMPTY: dict = {}


def _empty_peak(kind, channels, linked, x):
    """Best-of-three transient peak of an empty Board or section (cached per layout)."""
    key = (kind, channels, linked)
    if key not in _EMPTY:
        empty = make_board([], 48000, channels) if kind == "board" else make_section([], 48000, channels,
                                                                                     linked=linked)
        _EMPTY[key] = measure_allocation(empty.proc, x, 1500, 64)[1]
    return _EMPTY[key]


def _alloc_cases():
    """(slot, layout): every slot in stereo (linked), and spectral slots in mono, unlinked stereo and
    6 channels (linked) too."""
    for slot in SLOTS:
        yield slot, "stereo"
        if catalog.SLOTS[slot].kind != "board":
            yield slot, "mono"
            yield slot, "stereo-unlinked"
            yield slot, "six"


def _numpy_arrays_per_call(proc, x, calls, block, board_output_bytes):
    """[(call, [sizes])] of the numpy arrays (above 0-d scalars) ``proc.process`` allocates, counted by
    numpy's allocator hook from the first call after a parameter change (where a stage re-derives its
    coefficients). ``board_output_bytes``: the one buffer pedalboard allocates per call (its output),
    left out for board slots."""
    from numpy_allocs import counting

    buf = np.zeros((x.shape[0], block), np.float32)
    found = []
    for k in range(calls):
        i = (k * block) % (x.shape[1] - block)
        np.copyto(buf, x[:, i : i + block])
        with counting() as log:
            proc.process(buf)
        sizes = [b for b in log.arrays() if b != board_output_bytes]
        if sizes:
            found.append((k, sizes))
    return found


@pytest.mark.parametrize("slot,layout", list(_alloc_cases()))
def test_process_allocates_nothing(slot, layout):
    """No numpy array allocated by any call (counted exactly, tests/numpy_allocs.py), no growth and no
    transient peak above the bounds above, in stereo in every state of the slot's scenario
    (each parameter change can switch code paths: a phase mode, an LFO shape, a freeze, delta listen),
    in mono, unlinked stereo and 6 channels in its first state. Board slots in stereo: their parameter changes only
    set plugin values."""
    channels, linked = {"mono": (1, True), "stereo": (2, True), "stereo-unlinked": (2, False), "six": (6, True)}[layout]
    board = catalog.SLOTS[slot].kind == "board"
    rig, _, events = _rig(slot, 48000, channels, linked)
    x = _signal(slot, 48000, channels, seconds=1.0)
    bound = _board_peak_bytes(channels, 64) if board else (_active(slot).alloc_peak_bytes or SPECTRAL_PEAK_BYTES)
    peak0 = _empty_peak("board" if board else "section", channels, linked, x)

    def within(growth, peak):
        return growth < GROWTH_BYTES and peak - peak0 < bound

    states = [{}] + ([p for _, p in events] if layout == "stereo" and not board else [])
    for k, p in enumerate(states):  # each state reached from the one before it, as in the scenario
        rig.set(p)
        arrays = _numpy_arrays_per_call(rig.proc, x, 200, 64, channels * 64 * 4 if board else None)
        assert not arrays, f"state {k} ({p}): numpy arrays allocated by process() (call, sizes in bytes): {arrays[:4]}"
        growth, peak = measure_allocation(rig.proc, x, 1500, 64, enough=within)
        assert growth < GROWTH_BYTES, f"state {k} ({p}): net growth {growth} B over 1500 calls"
        assert peak - peak0 < bound, f"state {k} ({p}): transient peak {peak} B vs {peak0} B for an empty one"


# -- the host's side of the contract --------------------------------------------------------------
class _MockBoard:
    """Stands in for plugin_host.boards.Board (pedalboard cannot host a Python plugin): a board
    processor that records its lifecycle and checks each call against the contract as it happens."""

    log: list  # lifecycle events in call order: (object, event, detail)

    def __init__(self, plugins, name="board"):
        self.plugins, self.name = list(plugins), name
        self.prepared, self.latency_samples = False, 0

    def prepare(self, sample_rate, max_block, channels):
        self.max_block, self.channels = max_block, channels
        self.state = np.zeros((channels, 4), np.float32)
        self.prepared = True
        self.log.append((self, "prepare", max_block))

    def process(self, block):
        assert self.prepared, f"{self.name}: process() before prepare()"
        assert block.dtype == np.float32 and block.shape[0] == self.channels
        assert 0 <= block.shape[1] <= self.max_block, f"block of {block.shape[1]} > max_block {self.max_block}"
        self.state += 1.0
        self.log.append((self, "process", block.shape[1]))
        return block

    def reset(self):
        assert self.prepared, f"{self.name}: reset() before prepare()"
        buf = self.state
        self.state.fill(0.0)
        assert self.state is buf
        self.log.append((self, "reset", None))


class _MockPlugin:
    level = 0.0


def _mock_stage_class(log):
    from resculpt.dsp.stft import MAX_BATCH, SpectralStage

    class MockStage(SpectralStage):
        """A spectral stage that records its lifecycle and checks each call as it happens."""

        name = "mockspec"

        def __init__(self, table):
            self.table, self.ctx = table, None

        def prepare(self, ctx):
            super().prepare(ctx)
            self.state = np.zeros((ctx.channels, ctx.n_bins), np.float32)
            log.append((self, "prepare", ctx.n_bins))

        def process_frames(self, specs, n):
            assert self.ctx is not None, "process_frames() before prepare()"
            assert 1 <= n <= MAX_BATCH, n
            for k in range(n):
                assert specs[k].shape == (self.ctx.channels, self.ctx.n_bins) and specs[k].dtype == np.complex64
            self.state += 1.0
            log.append((self, "process", n))

        def reset(self):
            assert self.ctx is not None, "reset() before prepare()"
            buf = self.state
            self.state.fill(0.0)
            assert self.state is buf
            log.append((self, "reset", None))

    return MockStage


def test_chain_prepares_before_processing_and_resets_without_preparing_again(monkeypatch):
    """A mock board slot and a mock spectral slot, registered in a copy of the catalog, see from the
    Chain: prepare() first, then process() with blocks of 0..max_block samples (stage batches of
    1..MAX_BATCH frames) and reset() (zero-fill only: no second prepare); across a layout swap
    (Chain.set_layout) the new engine's processors are prepared before the swap is published, the old
    ones play through the crossfade and then get no more calls."""
    from resculpt.dsp.params import ParamSpec
    from resculpt.plugin_host import graph

    log = []
    monkeypatch.setattr(catalog, "SLOTS", dict(catalog.SLOTS))
    monkeypatch.setattr(graph, "Board", type("MockBoard", (_MockBoard,), {"log": log}))
    catalog.register(catalog.BoardSlot(
        "mockboard", "records its lifecycle", (ParamSpec("mockboard.level", 0.0, 1.0, 0.0, ""),),
        lambda: [_MockPlugin()], {"mockboard.level": (0, "level", float)}))
    catalog.register(catalog.SpectralSlot(
        "mockspec", "records its lifecycle", (ParamSpec("mockspec.amount", 0.0, 1.0, 0.0, ""),),
        _mock_stage_class(log)))

    ch = Chain({"pre": ["mockboard"], "spectral": ["mockspec"]}, 48000, 2, 512)
    first = {o for o, _, _ in log}
    x = signal_for(48000, 2, seconds=0.3)
    stream(ch, x, ["random", 512, 0, 1])
    ch.params["mockboard.level"] = 1.0  # a ramp: the chain cuts blocks into control sub-blocks
    stream(ch, x, [512])
    n_before_reset = len(log)
    ch.reset()
    assert {e for o, e, _ in log[n_before_reset:]} == {"reset"} and {o for o, _, _ in log[n_before_reset:]} == first
    stream(ch, x, [300])
    ch.set_layout({"spectral": ["mockspec"], "post": ["mockboard"], "stft": "low-latency"})
    swap = len(log)
    second = {o for o, _, _ in log} - first
    assert second and all(e != "process" for o, e, _ in log if o in second), "the new engine ran before the swap"
    stream(ch, x, [256])  # the swap, the new engine's warm-up (its latency) and the 20 ms crossfade
    settled = len(log)
    stream(ch, x, [256])

    for obj in first | second:
        events = [(e, d) for o, e, d in log if o is obj]
        assert events[0][0] == "prepare" and [e for e, _ in events].count("prepare") == 1, (obj, events[:3])
        assert any(e == "process" for e, _ in events), f"{obj} was never processed"
    assert all(o not in first for o, e, _ in log[settled:]), "the old engine still runs after the crossfade"
    assert any(o in first and e == "process" for o, e, _ in log[swap:settled]), "no crossfade from the old engine"
    assert any(o in second and e == "process" for o, e, _ in log[settled:])
