"""The chain host: streaming equivalence, latency alignment, mix, bypass, swaps, sanitising."""

import threading

import numpy as np
import pytest
from conftest import BLOCK_SIZES, real_stereo, stream
from resculpt.dsp.processor import SUPPORTED_RATES

import resculpt
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.layout import Layout
from resculpt.plugin_host.presets import list_presets

PRESETS = [name for name, _ in list_presets()]
# pedalboard's IIR filters (JUCE dsp::IIR) flush states below 1e-8 to zero at the end of every
# call (snapToZero), so a chain with filters after quiet passages differs between block
# partitions by a few 1e-6 (measured worst case 7.8e-6 on podcast-clean, block size 1; see
# test_juce_filters_flush_tiny_states_per_call). The STFT itself is exact to 1e-6 (test_stft.py).
CHAIN_ATOL = 2e-5  # -94 dBFS
# One-sample calls flush those states on every sample. A limiter after the filters holds such a difference
# as a gain difference over its release: deep-voice (hpf, pitch shift, shelf, limiter with 80 ms release)
# measured 2.4e-5 at block size 1 (numpy 2.4, pedalboard 0.9.26), and 0 at every other block size; the
# voice stage alone, and the same chain without the hpf, are exact at block size 1.
CHAIN_ATOL_1 = 4e-5  # -88 dBFS, block size 1 only
IDENTITY_STFT = Layout(pre=(), spectral=(), post=(), stft="default", force_stft=True)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_streams_equal_to_whole_signal_for_any_block_partition(preset):
    """For each shipped preset on a real stereo clip at 48 kHz, block sizes 1, 63, 64, 65, 512,
    8193 and random (with zero-length blocks) give the whole-signal output to CHAIN_ATOL (CHAIN_ATOL_1 for
    one-sample blocks)."""
    x = real_stereo(48000, 0.35)
    c = Chain.from_preset(preset, 48000, 2, 8193)
    whole = stream(c, x, [8193])
    for sizes in [[s] for s in BLOCK_SIZES] + [["random", 0]]:
        c.reset()
        tol = CHAIN_ATOL_1 if sizes == [1] else CHAIN_ATOL
        np.testing.assert_allclose(stream(c, x, sizes, seed=1), whole, atol=tol, err_msg=f"{preset} {sizes}")


@pytest.mark.parametrize("rate", SUPPORTED_RATES)
@pytest.mark.parametrize("preset", ["podcast-clean", "broadcast-voice"])
def test_presets_run_at_every_sample_rate_mono_and_stereo(rate, preset):
    """Chains prepare and stream at 16-96 kHz, mono and stereo, with finite, non-silent output."""
    x = real_stereo(rate, 0.4)
    for ch in (1, 2):
        c = Chain.from_preset(preset, rate, ch, 512)
        whole = c(x[:ch])
        assert whole.shape == x[:ch].shape
        assert np.isfinite(whole).all() and np.abs(whole).max() > 1e-3
        c.reset()
        L = c.latency_samples  # streamed output = offline output delayed by L (first L: start-up)
        np.testing.assert_allclose(stream(c, x[:ch], [63, "random"])[:, L:], whole[:, : whole.shape[1] - L],
                                   atol=CHAIN_ATOL)


def test_juce_filters_flush_tiny_states_per_call():
    """Documents why chains use CHAIN_ATOL: one pedalboard PeakFilter on a fade-in differs
    between 1-sample and whole-signal calls, by less than 1e-6. The input is the bundled speech on both
    channels (real_stereo's left), so the figure does not depend on whether the shared data is present
    (its right channel does: a music clip, or the speech delayed, which measured 1.3e-6)."""
    import pedalboard as pb

    from resculpt.plugin_host.boards import Board

    x = real_stereo(48000, 0.35)[[0, 0]] * np.linspace(0, 1, int(0.35 * 48000), dtype=np.float32) ** 4
    b = Board([pb.PeakFilter(300, -2.5, 1.0)])
    b.prepare(48000, 8193, 2)
    whole = stream(b, x, [8193])
    b.reset()
    d = np.abs(stream(b, x, [1]) - whole).max()
    assert 0 < d < 1e-6


@pytest.mark.parametrize("rate", SUPPORTED_RATES)
def test_offline_call_trims_latency_so_output_aligns_with_input(rate):
    """chain(x) of an identity STFT chain returns x itself (latency trimmed, sample-exact)."""
    c = Chain(IDENTITY_STFT, rate, 2, 1024)
    assert c.latency_samples > 0
    x = real_stereo(rate, 0.5)
    np.testing.assert_allclose(c(x), x, atol=1e-5)


def test_impulse_alignment_through_a_spectral_preset():
    """An impulse keeps its position through chain(x): the peak of the output envelope of a
    spectral-gate chain sits on the input impulse (no latency offset left)."""
    c = Chain(Layout(spectral=("sgate",), stft="low-latency"), 48000, 1, 256, params={"sgate.threshold_db": -100})
    x = np.zeros(8000, np.float32)
    x[3000] = 1.0
    y = c(x)
    assert int(np.argmax(np.abs(y))) == 3000


def test_dry_path_is_delayed_so_half_mix_of_identity_chain_is_transparent():
    """mix = 0.5 on an identity STFT chain equals the input: the dry path is latency-aligned
    (an unaligned dry path would comb-filter)."""
    c = Chain(IDENTITY_STFT, 48000, 2, 512, params={"mix": 0.5})
    x = real_stereo(48000, 0.5)
    np.testing.assert_allclose(c(x), x, atol=1e-5)


def test_mix_zero_returns_the_dry_input_through_any_preset():
    """mix = 0 gives the (aligned) dry signal whatever the chain does."""
    c = Chain.from_preset("spectral-dark", 48000, 2, 512)
    c.params["mix"] = 0.0
    x = real_stereo(48000, 0.5)
    np.testing.assert_allclose(c(x), x, atol=1e-6)


def _max_step(y):
    return float(np.abs(np.diff(y, axis=-1)).max())


def test_output_gain_jump_is_smoothed_without_zipper_steps():
    """A -40 dB output-gain jump on a 0.5 DC signal moves at most (0.5 * (1 - 0.01)) / ramp
    samples per sample (a linear-in-dB ramp over 20 ms), never in one step."""
    c = Chain(Layout(), 48000, 1, 128)
    x = np.full((1, 128), 0.5, np.float32)
    c.process(x.copy())
    c.params["out.gain_db"] = -40.0
    outs = [c.process(x.copy()).copy() for _ in range(20)]
    y = np.concatenate(outs, axis=1)
    ramp = 0.020 * 48000
    # steepest step of a dB-linear ramp is at its start: 0.5 * (1 - 10**(-40/20/ramp))
    bound = 0.5 * (1 - 10 ** (-40 / 20 / ramp)) * 1.01
    assert _max_step(y) <= bound
    assert abs(y[0, -1] - 0.005) < 1e-6


def test_board_parameter_changes_are_ramped_in_sub_blocks():
    """A high-pass cutoff jump 80 Hz -> 2 kHz on a real clip produces no sample step larger
    than the signal itself makes (no click from the coefficient change)."""
    x = real_stereo(48000, 1.0)[:1]
    c = Chain(Layout(pre=("hpf",)), 48000, 1, 512)
    ref_step = _max_step(c(x))
    c.reset()
    y = x.copy()
    for i in range(0, y.shape[1], 512):
        if i == 512 * 40:
            c.params["hpf.cutoff_hz"] = 2000.0
        c.process(y[:, i : i + 512])
    assert _max_step(y) <= ref_step * 1.05


def test_bypass_crossfades_to_the_aligned_dry_signal_without_clicks():
    """Bypass on a heavy spectral preset ends at the dry input, and the switch adds no step
    larger than the program material's own largest step."""
    x = real_stereo(48000, 1.2)
    c = Chain.from_preset("spectral-dark", 48000, 2, 256)
    wet_step = _max_step(c(x))
    c.reset()
    y = x.copy()
    for k, i in enumerate(range(0, y.shape[1], 256)):
        if k == 60:
            c.params["bypass"] = 1
        c.process(y[:, i : i + 256])
    L = c.latency_samples
    tail = slice(256 * 60 + L + 2000, None)
    np.testing.assert_allclose(y[:, tail], np.pad(x, ((0, 0), (L, 0)))[:, : x.shape[1]][:, tail], atol=1e-6)
    assert _max_step(y) <= max(_max_step(x), wet_step) * 1.05


def test_preset_swap_crossfades_between_engines_without_clicks():
    """Loading another preset with another layout mid-stream builds the engine off the audio
    path and crossfades: no sample step beyond what either preset's own output contains."""
    x = real_stereo(48000, 1.5)
    a = Chain.from_preset("telephone", 48000, 2, 256)
    b = Chain.from_preset("spectral-dark", 48000, 2, 256)
    bound = max(_max_step(a(x)), _max_step(b(x)), _max_step(x)) * 1.05
    y = x.copy()
    for k, i in enumerate(range(0, y.shape[1], 256)):
        if k == 80:
            a.load_preset("spectral-dark")
        a.process(y[:, i : i + 256])
    assert a.stats.swaps == 1
    assert a.latency_samples == b.latency_samples
    assert _max_step(y) <= bound


def test_preset_swap_from_a_control_thread_while_audio_runs():
    """Presets loaded from another thread while the audio thread processes never raise and the
    output stays finite."""
    c = Chain.from_preset("clean", 48000, 2, 128)
    x = real_stereo(48000, 2.0)
    errors = []

    def control():
        try:
            for name in PRESETS * 2:
                c.load_preset(name)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    th = threading.Thread(target=control)
    th.start()
    y = stream(c, x, [128])
    th.join()
    assert not errors
    assert np.isfinite(y).all()


@pytest.mark.parametrize("preset", PRESETS)
def test_nan_inf_and_denormal_input_never_reach_the_output_and_are_counted(preset):
    """NaN/Inf samples are zeroed and counted; denormals are flushed and counted; the output is
    finite and the chain keeps working afterwards."""
    c = Chain.from_preset(preset, 48000, 2, 512)
    x = real_stereo(48000, 0.3)
    x[0, 100] = np.nan
    x[1, 200] = np.inf
    x[0, 300] = -np.inf
    x[1, 400:410] = 1e-40
    y = stream(c, x, [512])
    assert np.isfinite(y).all()
    assert c.stats.nonfinite_in == 3
    assert c.stats.denormal_in == 10
    z = stream(c, real_stereo(48000, 0.3), [512])
    assert np.isfinite(z).all() and np.abs(z).max() > 1e-3


def test_reset_then_rerun_is_identical():
    c = Chain.from_preset("podcast-clean", 44100, 2, 333)
    x = real_stereo(44100, 0.5)
    a = stream(c, x, [333])
    c.reset()
    assert np.array_equal(stream(c, x, [333]), a)


def test_zero_length_block_returns_empty_and_changes_nothing():
    c = Chain.from_preset("broadcast-voice", 48000, 2, 256)
    e = np.zeros((2, 0), np.float32)
    assert c.process(e).shape == (2, 0)
    x = real_stereo(48000, 0.2)
    ref = stream(c, x, [256])
    c.reset()
    out = x.copy()
    for i in range(0, x.shape[1], 256):
        c.process(e)
        c.process(out[:, i : i + 256])
    np.testing.assert_array_equal(out, ref)


def _control_events(chain, other_preset: str) -> dict:
    """Block index -> a control-thread action, covering every way a value reaches the audio thread:
    parameter ramps (every built-in parameter moved at once), changes sent over OSC, mix and bypass
    fades, a preset swap (crossfade with warm-up), and a swap back."""
    from resculpt.plugin_host.osc import OscServer

    osc = OscServer(chain)  # not started: its message handler runs here, on the control thread
    rng = np.random.default_rng(7)
    every = {s.id: s.from_normalized(rng.uniform(0.2, 0.8)) for s in chain.params.specs
             if s.id not in ("bypass", "mix", "freeze.hold")}

    def osc_send():
        for pid in ("out.gain_db", "in.gain_db", "comp.ratio", "limiter.threshold_db"):
            osc.handle_message(f"/resculpt/param/{pid}/norm", [float(rng.uniform(0.3, 0.7))], ("127.0.0.1", 9))

    first = chain.preset_name
    return {
        20: lambda: chain.params.set_many(every),
        80: osc_send,
        120: lambda: chain.params.set("mix", 0.4),
        160: lambda: chain.params.set("bypass", 1.0),
        200: lambda: chain.params.set_many({"bypass": 0.0, "mix": 1.0}),
        240: lambda: chain.load_preset(other_preset),
        300: lambda: chain.params.set_many({"out.gain_db": -3.0, "mix": 0.7}),
        340: lambda: chain.load_preset(first),
    }


@pytest.mark.parametrize("preset", PRESETS)
def test_process_allocates_no_array_during_ramps_osc_changes_preset_swaps_and_fades(preset, monkeypatch):
    """Every shipped preset, 48 kHz stereo, 128-sample blocks: while parameters ramp, OSC messages
    arrive, mix and bypass fade and presets swap (each applied between blocks, as a control thread
    would), no process() call allocates a numpy array. Counted per block by numpy's own allocator
    hook (tests/numpy_allocs.py); pedalboard's output buffer, which its C++ code allocates per board
    call, is left out, and so are 0-d scalar temporaries (<= 16 bytes)."""
    from numpy_allocs import counting, paused
    from resculpt.plugin_host.boards import Board

    board_process = Board.process

    def board_uncounted(self, block):
        with paused():
            return board_process(self, block)

    monkeypatch.setattr(Board, "process", board_uncounted)
    chain = Chain.from_preset(preset, 48000, 2, 128)
    # The swap partner: from 7 presets on, the first whose graph differs (a preset of the same stages would
    # load as a parameter change, with no graph swap to exercise).
    i = PRESETS.index(preset)
    other = next(p for p in PRESETS[i + 7 :] + PRESETS[: i + 7]
                 if Chain.from_preset(p, 48000, 2, 128).layout != chain.layout)
    x = real_stereo(48000, 0.5)
    events = _control_events(chain, other)
    # Warm-up: first calls build numpy's lazily made ufunc loops; the swap target's graph is built once
    # so its stages' first-frame caches exist (what a second swap to it would find).
    for k in range(60):
        chain.process(x[:, (k * 128) % 23000 :][:, :128].copy())
    found = []
    for k in range(420):
        if k in events:
            events[k]()
        block = x[:, (k * 128) % 23000 :][:, :128].copy()
        with counting() as log:
            chain.process(block)
        if log.arrays():
            found.append((k, log.arrays()))
    assert chain.stats.swaps == 2
    assert not found, f"{preset}: numpy arrays allocated in process() (block, sizes in bytes): {found[:5]}"


def test_public_api_matches_the_readme_example():
    """The README's API tour works as written."""
    chain = resculpt.Chain.from_preset("broadcast-voice", sample_rate=48000, channels=2)
    x = real_stereo(48000, 0.3)
    y = chain(x)
    assert y.shape == x.shape
    chain.params["comp.ratio"] = 4
    assert chain.params["comp.ratio"] == 4.0
    assert chain.latency_samples == 0
    block = x[:, :256].copy()
    assert chain.process(block) is block


def test_process_rejects_nothing_but_offline_call_checks_shape():
    c = Chain(Layout(), 48000, 2, 64)
    with pytest.raises(ValueError, match=r"expected \(2, n\)"):
        c(np.zeros((3, 10), np.float32))
