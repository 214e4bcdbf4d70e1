"""The STFT section's and the sanitizer's compiled loops (dsp/stft_kernels.py, dsp/sanitize.py; numba, extra
"fast") against their numpy code.

Both take the loops when numba is installed; the numpy code is the fallback and stays the reference. Unlike the
mask stage's loops these do only copies, float32/float64 products and sums in the numpy code's order, so the two
paths must agree bit for bit: for every block partition, channel count, rate and memory layout of the block, with
non-finite input, delta listen, a look-ahead stage, a stage that watches the input and a metering tap. Streaming ==
offline, reset, allocation and latency of whichever path the environment runs are the conformance suite's.
"""

from __future__ import annotations

import numpy as np
import pytest
from resculpt.dsp import stft_kernels
from resculpt.dsp.params import ParamTable
from resculpt.dsp.sanitize import Sanitizer
from resculpt.dsp.stft import DELTA_PARAM, SpectralStage, StreamingSTFT
from resculpt.plugin_host import catalog
from stage_testlib import speech_clip

needs_numba = pytest.mark.skipif(not stft_kernels.AVAILABLE,
                                 reason="numba not installed (extra 'fast') or RESCULPT_NO_KERNELS set")


class _Tilt(SpectralStage):
    """Edits every bin (a fixed complex gain per bin), so a misplaced frame or hop changes the output."""

    def prepare(self, ctx):
        super().prepare(ctx)
        k = np.arange(ctx.n_bins)
        self.g = (0.5 + 0.4 * np.cos(k / 7.0) + 0.2j * np.sin(k / 5.0)).astype(np.complex64)

    def process_frame(self, spec):
        spec *= self.g


class _LookAhead(_Tilt):
    """Two hops of look-ahead: outputs the frame two hops old (kept in a ring), tilted."""

    latency_frames = 2

    def prepare(self, ctx):
        super().prepare(ctx)
        self.ring = np.zeros((3, ctx.channels, ctx.n_bins), np.complex64)
        self.i = 0

    def reset(self):
        self.ring.fill(0)
        self.i = 0

    def process_frame(self, spec):
        np.copyto(self.ring[self.i], spec)
        self.i = (self.i + 1) % 3
        np.copyto(spec, self.ring[self.i])
        spec *= self.g


class _Watcher(_Tilt):
    """Watches the input window: records a checksum of every window it is shown, and scales each frame by a gain
    derived from the window, so what it saw reaches the output."""

    wants_input = True

    def prepare(self, ctx):
        super().prepare(ctx)
        self.seen = []
        self.pending = []

    def reset(self):
        self.seen, self.pending = [], []

    def observe_input(self, inbuf):
        s = float(np.abs(inbuf).sum(dtype=np.float64)) + float(inbuf[:, -1].sum(dtype=np.float64))
        self.seen.append(s)
        self.pending.append(np.float32(1.0 / (1.0 + 1e-3 * s)))

    def process_frames(self, specs, n):
        for k in range(n):
            specs[k] *= self.pending[k]
            specs[k] *= self.g
        self.pending = []


class _Tap:
    """A metering tap that records a checksum of every frame before and after the stages."""

    def __init__(self):
        self.log = []

    def frame_in(self, spec):
        self.log.append(("in", complex(spec.sum())))

    def frame_out(self, spec):
        self.log.append(("out", complex(spec.sum())))


def _table(delta: float) -> ParamTable:
    t = ParamTable(catalog.all_param_specs())
    t.set_many({DELTA_PARAM: delta}, notify=False)
    t.prepare(48000)
    t.snap()
    return t


def _section(compiled: bool, stages, stft="low-latency", sr=48000, channels=1, delta=None, tap=None, max_block=8192):
    s = StreamingSTFT(stft, stages, table=None if delta is None else _table(delta))
    s.use_kernels = compiled
    s.kernel_max_block = max_block  # the loops at every block size here (a section takes them up to 2048 samples)
    s.prepare(sr, max_block, channels)
    s.tap = tap
    return s


def _stream(sec, x, sizes, layout="C", seed=0):
    """x (channels, n) through ``sec`` in blocks cut from ``sizes`` (cycled; "random": 0..1000), each block a view
    of the given memory ``layout``: "C" rows of one C array, "F" a Fortran-ordered copy, "strided" every other
    sample of a wider array."""
    rng = np.random.default_rng(seed)
    c, n = x.shape
    y = x.copy()
    if layout == "F":
        y = np.asfortranarray(y)
    elif layout == "strided":
        wide = np.zeros((c, 2 * n), np.float32)
        wide[:, ::2] = x
        y = wide[:, ::2]
    i = k = 0
    while i < n:
        b = int(rng.integers(0, 1001)) if sizes == "random" else sizes[k % len(sizes)]
        k += 1
        b = min(b, n - i)
        out = sec.process(y[:, i : i + b])
        assert out.shape == (c, b)
        i += b
    return np.array(y)


def _both(make_stages, x, sizes, **kw):
    outs = []
    for compiled in (True, False):
        sec = _section(compiled, make_stages(), channels=x.shape[0], **{k: v for k, v in kw.items() if k != "layout"})
        assert sec._kern is compiled
        outs.append((_stream(sec, x, sizes, kw.get("layout", "C")), sec))
    return outs


@needs_numba
@pytest.mark.parametrize("sizes", [[128], [1], [63, 64, 65], [8192], "random"])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_compiled_section_output_is_bit_identical_to_the_numpy_code_for_any_block_partition(sizes, channels):
    """Speech through a stage that edits every bin: the compiled path's output equals the numpy code's bit for bit,
    for blocks of 1, 63-65, 128, 8192 samples or random sizes with zero-length blocks, mono to six channels (32
    frames in one call fill the batch and flush mid-block)."""
    x = speech_clip(48000, channels, 1.5)
    (a, _), (b, _) = _both(lambda: [_Tilt()], x, sizes)
    assert np.abs(b).max() > 1e-3
    np.testing.assert_array_equal(a, b)


@needs_numba
@pytest.mark.parametrize("layout", ["F", "strided"])
def test_compiled_section_takes_blocks_of_any_memory_layout(layout):
    """A Fortran-ordered or strided block gives the same output as the numpy code (the loops convert the layout
    instead of compiling in the audio callback)."""
    x = speech_clip(48000, 2, 0.5)
    (a, _), (b, _) = _both(lambda: [_Tilt()], x, [100, 37], layout=layout)
    np.testing.assert_array_equal(a, b)


@needs_numba
@pytest.mark.parametrize("stft,sr", [("default", 44100), ("low-latency", 16000), ("default", 96000)])
def test_compiled_section_matches_at_every_rate_and_window(stft, sr):
    """Other rates and windows (hop and n_fft change): still bit-identical."""
    x = speech_clip(sr, 2, 1.0)
    (a, _), (b, _) = _both(lambda: [_Tilt()], x, [256, 77], stft=stft, sr=sr)
    np.testing.assert_array_equal(a, b)


@needs_numba
def test_compiled_section_zeroes_non_finite_input_as_the_numpy_code():
    """NaN and Inf bursts, and samples whose spectrum overflows float32: the frames that hold them are zeroed the same
    way, and the output recovers the same (finite around the NaN/Inf bursts; near full-scale 3e38 samples the
    inverse transform itself overflows, on both paths)."""
    x = speech_clip(48000, 2, 1.0)
    x[0, 12000:12005] = np.nan
    x[1, 30000] = np.inf
    x[:, 40000:40100] = 3e38  # finite, but its spectrum overflows float32
    (a, _), (b, _) = _both(lambda: [_Tilt()], x, [128])
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a[:, :39000]).all()


@needs_numba
def test_compiled_section_runs_delta_listen_and_look_ahead_as_the_numpy_code():
    """Delta listen on (the dry copies, delayed by a stage's two hops of look-ahead) and switched mid-stream: the
    same output."""
    x = speech_clip(48000, 1, 1.0)
    outs = []
    for compiled in (True, False):
        sec = _section(compiled, [_LookAhead()], delta=1.0)
        y = _stream(sec, x[:, :20000], [128])
        sec.table.set_many({DELTA_PARAM: 0.0})
        sec.table.snap()
        outs.append(np.concatenate([y, _stream(sec, x[:, 20000:], [200])], axis=1))
    np.testing.assert_array_equal(*outs)
    assert np.abs(outs[0]).max() > 1e-3


@needs_numba
def test_compiled_section_shows_watching_stages_the_same_windows_and_the_tap_the_same_frames():
    """A stage that reads the input window sees the same windows in the same order, and a metering tap the same
    frames before and after the stages."""
    x = speech_clip(48000, 2, 0.5)
    taps = [_Tap(), _Tap()]
    runs = []
    for compiled, tap in zip((True, False), taps):
        w = _Watcher()
        sec = _section(compiled, [w], channels=2, tap=tap)
        runs.append((_stream(sec, x, [128, 7, 300]), w.seen))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and len(runs[0][1]) > 50
    assert taps[0].log == taps[1].log


@needs_numba
def test_compiled_section_reset_returns_to_the_prepared_state():
    """After reset() a second run is bit-identical to the first."""
    x = speech_clip(48000, 1, 0.5)
    sec = _section(True, [_Tilt()])
    a = _stream(sec, x, [128])
    sec.reset()
    np.testing.assert_array_equal(_stream(sec, x, [128]), a)


def test_compiled_section_refuses_a_block_with_the_wrong_channel_count():
    """A block whose channel count is not the prepared one is a clear error, not a read past the window."""
    from resculpt.dsp.processor import ProcessorError

    sec = _section(stft_kernels.AVAILABLE, [_Tilt()], channels=2)
    with pytest.raises((ProcessorError, ValueError)):
        sec.process(np.zeros((3, 128), np.float32))


@needs_numba
@pytest.mark.parametrize("channels,n", [(1, 128), (2, 257), (6, 1)])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_compiled_sanitizer_zeroes_and_counts_what_the_numpy_code_does(channels, n, layout):
    """NaN, +-Inf and denormals (either sign) are zeroed and counted alike, -0.0 and normal samples are left bit for
    bit, for C- and Fortran-ordered blocks."""
    rng = np.random.default_rng(channels * 1000 + n)
    x = rng.standard_normal((channels, n)).astype(np.float32)
    flat = x.reshape(-1)
    flat[::7] = np.nan
    flat[1::11] = np.inf
    flat[2::13] = -np.inf
    flat[3::5] = 1e-40
    flat[4::17] = -1e-39
    flat[5::19] = -0.0
    got = []
    for compiled in (True, False):
        s = Sanitizer()
        s.use_kernels = compiled
        s.prepare(512, channels)
        assert s._kern is compiled
        y = np.asfortranarray(x.copy()) if layout == "F" else x.copy()
        replaced = s.process(y)
        replaced += s.process(y)  # a second pass finds nothing left
        got.append((np.ascontiguousarray(y).view(np.int32).copy(), replaced, s.nonfinite, s.denormal))
    a, b = got
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]
    assert a[2] > 0 and a[3] > 0


@needs_numba
def test_float64_blocks_still_stream_through_the_compiled_section_and_the_chain():
    """A Python caller's float64 blocks (the section rounds samples to float32 as it takes them): the compiled
    section gives the numpy code's output, and a whole chain (guard, meters, section) still processes them."""
    from resculpt import Chain

    x = speech_clip(48000, 2, 0.5).astype(np.float64)
    (a, _), (b, _) = _both(lambda: [_Tilt()], x, [128, 300])
    np.testing.assert_array_equal(a, b)
    ch = Chain.from_preset("denoise-live", sample_rate=48000, channels=2, max_block=512)
    y = x[:, :512].copy()
    assert ch.process(y) is y and y.dtype == np.float64 and np.isfinite(y).all()


@needs_numba
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("stages", ["tilt", "mask"])
def test_compiled_section_allocates_no_array_and_keeps_nothing(channels, stages):
    """The compiled path at live block sizes (the conformance suite prepares sections for 65536-sample blocks, which
    run the numpy code): no numpy array allocated by any call (numpy's allocator hook), and no net growth over 1500
    calls, with the mask stage (its model call, fine features and taps) or a tilt stage, delta listen ramping."""
    from numpy_allocs import counting
    from resculpt.models.mask.stage import MaskStage
    from stage_testlib import measure_allocation

    t = _table(0.0)
    make = (lambda: [_Tilt()]) if stages == "tilt" else (lambda: [MaskStage(t)])
    sec = StreamingSTFT("low-latency", make(), table=t)
    sec.prepare(48000, 128, channels)
    assert sec._kern
    x = speech_clip(48000, channels, 1.0)
    buf = np.zeros((channels, 128), np.float32)
    found = []
    for k in range(300):
        if k == 100:
            t.set_many({DELTA_PARAM: 1.0})
            t.advance(128)
        np.copyto(buf, x[:, k * 128 : (k + 1) * 128])
        with counting() as log:
            sec.process(buf)
        found += log.arrays()
    assert not found, f"arrays allocated: {found[:4]}"
    growth, _ = measure_allocation(sec, x, 1500, 128)
    assert growth < 4096


@needs_numba
def test_no_kernels_list_turns_off_exactly_the_named_loops():
    """RESCULPT_NO_KERNELS=stft,params (the A/B switch the benchmarks' result files name) turns off those two sets of
    loops and leaves the others; =1 turns off all of them."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json; from resculpt.dsp import stft_kernels, sanitize, params; "
            "from resculpt.plugin_host import meters; from resculpt.models.mask import kernels as mk; "
            "from resculpt.dsp.voice import kernels as vk; "
            "print(json.dumps([m.AVAILABLE for m in (stft_kernels, sanitize, params, meters, mk, vk)]))")
    got = {}
    for value in ("stft,params", "1"):
        env = {**os.environ, "RESCULPT_NO_KERNELS": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        got[value] = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["stft,params"] == [False, True, False, True, True, True]
    assert got["1"] == [False] * 6


@needs_numba
def test_only_processors_prepared_for_live_block_sizes_take_the_per_block_loops():
    """Up to 2048-sample blocks (live, DAW, serve) the section, the host's guards, its parameter table and the meters
    run their compiled loops; a render's 4096-sample chain runs the numpy code (no numba import for it)."""
    from resculpt.plugin_host.meters import Meters

    from resculpt import Chain

    for max_block, want in ((128, True), (2048, True), (4096, False)):
        ch = Chain.from_preset("podcast-clean", sample_rate=48000, channels=2, max_block=max_block)
        m = Meters()
        m.prepare(48000, max_block, 2)
        sec = ch._graph.section
        assert sec is not None and sec._kern is want
        assert ch._san_in._kern is want and ch._san_out._kern is want and ch._table._kern is want
        assert m._kern is want
