"""pedalboard boards inside our block protocol."""

import numpy as np
import pedalboard as pb
import pytest
from conftest import BLOCK_SIZES, real_stereo, stream

from resculpt.plugin_host.boards import Board, load_vst3
from resculpt.plugin_host.boards import plugin_param_specs
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.layout import Layout, PluginEntry


def _plugins():
    return [pb.HighpassFilter(120), pb.Compressor(-24, 4, 2, 80), pb.Reverb(0.5), pb.Limiter(-3)]


@pytest.mark.parametrize("channels", [1, 2])
def test_board_streams_bit_exact_for_every_block_size_including_1_and_2(channels):
    """pedalboard drops plugin state when a call is larger than any before, and guesses the layout
    of (2, 1)/(2, 2) arrays; the wrapper makes every partition equal to one whole call."""
    x = real_stereo(48000, 0.4)[:channels]
    b = Board(_plugins())
    b.prepare(48000, 8193, channels)
    whole = stream(b, x, [8193])
    for sizes in [[s] for s in BLOCK_SIZES] + [[2, 1, 3, 2], ["random", 0, 2]]:
        b.reset()
        np.testing.assert_array_equal(stream(b, x, sizes, seed=2), whole, err_msg=str(sizes))


def test_load_vst3_reports_a_missing_file_clearly():
    with pytest.raises(ValueError, match="plugin not found: /nope/x.vst3"):
        load_vst3("/nope/x.vst3")


def test_vst3_parameters_join_the_table_and_are_automated(monkeypatch):
    """A plugin loaded by path into a board exposes <slot>.<param> ids that drive the plugin.
    (Debian ships no VST3, so a built-in plugin stands in for the loaded one.)"""

    class FakeParam:
        def __init__(self, lo, hi, label):
            self.min_value, self.max_value, self.label = lo, hi, label

    class FakeVst(pb.Gain):
        @property
        def parameters(self):
            return {"gain_db": FakeParam(-24.0, 24.0, "dB")}

    made = FakeVst(0.0)
    monkeypatch.setattr("resculpt.plugin_host.host.load_vst3", lambda path: made)
    lay = Layout(pre=(PluginEntry("myvst", "/plugins/My.vst3"),))
    assert [s.id for s in plugin_param_specs(lay.pre[0], made)] == ["myvst.gain_db"]
    chain = Chain(lay, 48000, 1, 256)
    chain.params["myvst.gain_db"] = -12.0
    chain.reset()
    y = chain(np.full(2000, 0.5, np.float32))
    assert abs(y[-1] - 0.5 * 10 ** (-12 / 20)) < 1e-4
    assert Layout.from_dict(lay.to_dict()) == lay


@pytest.mark.parametrize("threshold_db, ceiling_db", [(-1.0, -1.0), (-6.0, -1.0), (-12.0, -3.0)])
def test_limiter_slot_gives_a_quiet_signal_minus_threshold_plus_ceiling_and_keeps_peaks_under_the_ceiling(
        threshold_db, ceiling_db):
    """JUCE's Limiter adds a fixed 3.75 dB of make-up on top of -threshold; the slot cancels it, so with
    threshold = ceiling a signal that never reaches the threshold passes at unity gain."""
    sr = 48000
    t = np.arange(2 * sr) / sr
    ch = Chain(Layout(post=("limiter",)), sr, 1, 4800)
    ch.params["limiter.threshold_db"] = threshold_db
    ch.params["limiter.ceiling_db"] = ceiling_db
    quiet = (10 ** (-30 / 20) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    y = ch(quiet)
    gain_db = 20 * np.log10(np.sqrt(np.mean(y[:, sr:] ** 2)) / np.sqrt(np.mean(quiet[:, sr:] ** 2)))
    assert abs(gain_db - (ceiling_db - threshold_db)) < 0.01
    ch.reset()
    loud = (10 ** (6 / 20) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    assert 20 * np.log10(np.abs(ch(loud)[:, sr:]).max()) <= ceiling_db + 0.01


@pytest.mark.parametrize("dry_db", [0.0, -6.0, 6.0])
def test_reverb_slot_passes_the_direct_sound_at_its_dry_level(dry_db):
    """JUCE's Reverb doubles its dry level; the slot halves it, so reverb.dry_db is the direct sound's gain."""
    sr = 48000
    t = np.arange(2 * sr) / sr
    ch = Chain(Layout(pre=("reverb",)), sr, 1, 4800)
    ch.params["reverb.wet_db"] = -60.0
    ch.params["reverb.dry_db"] = dry_db
    x = (0.03 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    y = ch(x)
    gain_db = 20 * np.log10(np.sqrt(np.mean(y[:, sr:] ** 2)) / np.sqrt(np.mean(x[:, sr:] ** 2)))
    assert abs(gain_db - dry_db) < 0.1


@pytest.mark.parametrize("slot, cutoff_hz, probe_hz", [("hpf", 80.0, 40.0), ("lpf", 500.0, 1000.0)])
def test_hpf_and_lpf_slots_are_first_order_an_octave_past_the_cutoff_is_7_db_down(slot, cutoff_hz, probe_hz):
    """pedalboard's filters are first order (6 dB/oct): an octave past the cutoff |H|^2 = 1 / (1 + 4), -6.99 dB,
    where a second-order Butterworth would give -12.3 dB (the slots' docs say first order)."""
    sr = 48000
    t = np.arange(4 * sr) / sr
    ch = Chain(Layout(pre=(slot,)), sr, 1, 4800)
    ch.params[f"{slot}.cutoff_hz"] = cutoff_hz
    x = (0.1 * np.sin(2 * np.pi * probe_hz * t)).astype(np.float32)[None]
    y = ch(x)
    gain_db = 20 * np.log10(np.sqrt(np.mean(y[:, sr:] ** 2)) / np.sqrt(np.mean(x[:, sr:] ** 2)))
    assert abs(gain_db - 10 * np.log10(1 / 5)) < 0.1


def _true_peak_db(y: np.ndarray) -> float:
    """Peak of the 4x oversampled signal (BS.1770's true-peak meter, without its 12.04 dB headroom trim), dBFS."""
    from scipy.signal import resample_poly

    return float(20 * np.log10(np.abs(resample_poly(y, 4, 1, axis=-1)).max()))


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
def test_look_ahead_plugin_board_reports_its_look_ahead_and_streams_it_delayed_bit_exact(sr):
    """BrickwallLimiter returns fewer samples than it is given until its look-ahead is full; the board
    measures that shortfall as its latency (5 ms + 60 samples of the true-peak oversampling filter) and
    primes it away at every reset, so any block partition gives the offline call's output delayed by it."""
    x = 4 * real_stereo(sr, 0.4)
    b = Board([pb.BrickwallLimiter(ceiling_db=-1.0, lookahead_ms=5.0, true_peak=True)])
    b.prepare(sr, 512, 2)
    assert b.latency_samples == int(0.005 * sr) + 60
    offline = pb.BrickwallLimiter(ceiling_db=-1.0, lookahead_ms=5.0, true_peak=True)(x, sr, reset=True)
    want = np.concatenate([np.zeros((2, b.latency_samples), np.float32), offline], axis=1)[:, : x.shape[1]]
    for sizes in [[512], [1], [2, 1, 3, 2], ["random", 0, 2]]:
        b.reset()
        np.testing.assert_array_equal(stream(b, x, sizes, seed=3), want, err_msg=str(sizes))


def test_brickwall_slot_holds_true_peaks_near_its_ceiling_where_the_juce_limiter_overshoots():
    """Drums-like material driven 12 dB over full scale, with energy near 11 kHz where sample peaks miss the
    waveform's: the brick-wall slot's 4x oversampled peak stays within 0.5 dB of its ceiling; the limiter slot
    at the same ceiling, which limits sample peaks, goes further over (both figures printed)."""
    sr = 48000
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(7)
    burst = np.where((t % 0.25) < 0.02, 1.0, 0.15)
    x = (burst * (np.sin(2 * np.pi * 11025.3 * t + 0.7) + 0.5 * rng.standard_normal(t.size)))
    x = (4.0 * x / np.abs(x).max()).astype(np.float32)[None]
    out = {}
    for slot, params in (("brickwall", {"brickwall.ceiling_db": -1.0}),
                         ("limiter", {"limiter.threshold_db": -1.0, "limiter.ceiling_db": -1.0})):
        ch = Chain(Layout(post=(slot,)), sr, 1, 512)
        for k, v in params.items():
            ch.params[k] = v
        out[slot] = _true_peak_db(ch(x)[:, sr // 2 :])
    print(f"true peak at a -1 dB ceiling: brickwall {out['brickwall']:+.2f} dBTP, limiter {out['limiter']:+.2f} dBTP")
    assert out["brickwall"] <= -1.0 + 0.5
    assert out["brickwall"] < out["limiter"]
