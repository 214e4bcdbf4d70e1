"""One streaming STFT (analysis + weighted overlap-add synthesis) that hosts every spectral stage.

Why one: spectral stages then add no latency to each other; the section's latency is the
window length minus one sample (plus any look-ahead a stage declares), whatever the number of stages.

Latency: a sample pushed at time t leaves at t + (n_fft - 1). That figure is the same for every
block size, including 1, because the output of a hop is emitted one sample per input sample
starting on the sample that completes its frame (see ``process``). The frames one call completes are
analysed, run through the stages and synthesised as one batch (``_flush``), and each frame's output is
written where it would have gone frame by frame. Streaming with any block partition is therefore
bit-identical to one whole-signal call, as long as the stages' results do not depend on the batching.

Delta listen: with a parameter table holding ``spectral.delta`` (a bool, 0..1 while it ramps), the
section keeps a copy of every analysis spectrum (delayed by the stages' declared look-ahead) and,
after the stages, outputs ``proc + d * ((dry - proc) - proc)``: at d = 1 the section plays only what
its stages removed (``dry - proc``), so delta output + normal output == the delayed input. ``d``
follows the table value through a per-frame linear ramp of ``DELTA_XFADE_MS`` so a switch
crossfades (in the overlap-add) instead of clicking.

Non-finite spectra (a NaN/Inf that reached the section) are zeroed before any stage sees them, so
no stage's recursive state can be poisoned; the section recovers once the bad samples leave the
window.

Windows: periodic sqrt-Hann for analysis and synthesis, normalised so that the overlap-add of
analysis*synthesis is exactly 1 for the configured hop (COLA), so an identity spectrum
reconstructs the input.

Two implementations of the same steps: with numba (extra ``fast``) the per-sample work around the FFTs and the stages
(taking the block into the input window, windowing, overlap-add, writing the output hops) runs as three compiled loops
per batch (``stft_kernels.py``): with the host's compiled NaN guard that took 11-32 % off the whole
``denoise-live`` chain at 128-sample live blocks (benchmarks/results/mask_df_live/rtf_runs/host_*); without numba,
numpy calls. Both give the same output bit for bit (tests/test_stft_kernels.py); a section
takes one of them in prepare() and keeps it.
"""

from __future__ import annotations

import cmath
from dataclasses import dataclass

import numpy as np

from . import jit as _jit
from . import stft_kernels as _k
from .hop_window import HopWindow
from .processor import Processor, ProcessorError
from .spectral_util import RealFFT


@dataclass(frozen=True)
class STFTConfig:
    """Window and hop in milliseconds; sample counts are derived per rate.

    The hop is 5 ms in both shipped configs so learned stages see the same frame rate (200 frames/s)
    at every rate and in both latency modes; only the window (frequency resolution) changes.
    """

    name: str
    window_ms: float
    hop_ms: float

    def sizes(self, sample_rate: int) -> tuple[int, int]:
        """(n_fft, hop) in samples at ``sample_rate``; n_fft is a multiple of the hop ratio."""
        ratio = round(self.window_ms / self.hop_ms)
        hop = max(1, int(round(self.hop_ms * 1e-3 * sample_rate)))
        return hop * ratio, hop


# low-latency: 10 ms window, 50 % overlap -> 479 samples = 9.98 ms at 48 kHz.
# default: 20 ms window, 75 % overlap -> 959 samples = 19.98 ms at 48 kHz, 50 Hz bins.
CONFIGS = {
    "low-latency": STFTConfig("low-latency", 10.0, 5.0),
    "default": STFTConfig("default", 20.0, 5.0),
}


def get_config(name: str) -> STFTConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown STFT config {name!r}; choose one of {sorted(CONFIGS)}") from None


@dataclass
class SpectralContext:
    """What a spectral stage learns in prepare().

    Attributes:
        sample_rate: Hz.
        n_fft, hop: samples.
        n_bins: n_fft // 2 + 1.
        channels: number of audio channels (rows of every spectrum).
        linked: if True, stereo stages derive one gain from all channels and apply it to every
            channel (keeps the stereo image); if False each channel is analysed on its own.
        freqs_hz: (n_bins,) bin centre frequencies.
    """

    sample_rate: int
    n_fft: int
    hop: int
    n_bins: int
    channels: int
    linked: bool
    freqs_hz: np.ndarray

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop


class SpectralStage:
    """A stage that edits complex spectra inside the shared STFT.

    Lifecycle mirrors Processor: ``prepare(ctx)`` (control thread, allocates),
    ``process_frame(spec)`` (audio thread, edits ``spec`` (channels, n_bins) complex64 in place,
    allocates nothing), ``reset()`` (zero-fill). ``latency_frames`` is the look-ahead the stage
    needs, in hops: the stage's output lags its input by that many frames (the stage keeps the
    spectra it needs), and the section adds ``hop * latency_frames`` to its reported latency and
    delays its delta-listen dry copy by as much.
    """

    name = "spectral-stage"
    latency_frames = 0
    # Non-scalar control state (:mod:`resculpt.dsp.inbox`): the type of value the stage reads from
    # ``self.inbox``, or None. A stage with a type takes ``inbox=`` in its constructor.
    inbox_type = None
    inbox = None
    # A stage that also needs the time-domain input (e.g. a longer look-back analysis window than the
    # STFT's) sets this and implements ``observe_input(inbuf)``: called once per frame as the frame is
    # analysed, with the section's input buffer (channels, n_fft) float32 whose last ``hop`` samples are
    # new. Read-only, and only during the call (the buffer is reused). Frames reach process_frames in
    # batches after their observe_input calls, so what a stage derives from the input must be kept per
    # frame (the k-th call since the last batch belongs to the batch's k-th frame).
    wants_input = False

    def prepare(self, ctx: SpectralContext) -> None:
        self.ctx = ctx

    def observe_input(self, inbuf: np.ndarray) -> None:
        pass

    def process_frame(self, spec: np.ndarray) -> None:
        raise NotImplementedError

    def process_frames(self, specs, n: int) -> None:
        """The section's batch: frames ``specs[0] .. specs[n - 1]`` (each (channels, n_bins) complex64, in
        time order, edited in place). A stage that gains from batching (one model call for n frames)
        overrides this; the default runs them one by one."""
        for k in range(n):
            self.process_frame(specs[k])

    def reset(self) -> None:
        pass


def sqrt_hann_pair(n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Analysis and synthesis windows (n_fft,) with sum over hops of a*s == 1 exactly."""
    w = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft))
    ola = np.zeros(hop)
    for k in range(0, n_fft, hop):
        ola += (w * w)[k : k + hop]
    if not np.allclose(ola, ola[0], rtol=1e-9):
        raise ValueError(f"n_fft={n_fft}, hop={hop} is not COLA for sqrt-Hann")
    return w.astype(np.float32), (w / ola[0]).astype(np.float32)


_F32 = np.dtype(np.float32)
_add_all = np.add.reduce  # ndarray.sum() without its Python wrapper (the non-finite check, once per batch)

DELTA_PARAM = "spectral.delta"
DELTA_XFADE_MS = 30.0
MAX_BATCH = 32  # frames run through the stages together at most (160 ms at the 5 ms hop)


class StreamingSTFT(Processor):
    """Streaming STFT section: analysis, spectral stages in order, weighted overlap-add.

    Args:
        config: an :class:`STFTConfig` or its name ("default", "low-latency").
        stages: spectral stages run in order on every frame.
        linked: stereo-linked analysis (see :class:`SpectralContext`).
        table: optional :class:`~resculpt.dsp.params.ParamTable`; if it holds ``spectral.delta``
            the section-level delta listen switch is live (see the module docstring).

    process(block): block float32 (channels, n); output is the input delayed by
    ``latency_samples`` = n_fft - 1 + hop * sum(stage.latency_frames) when every stage is identity.
    """

    name = "stft"
    # Run the section's own per-block work through stft_kernels.py's compiled loops when numba is installed (bit-identical
    # to the numpy code; tests/test_stft_kernels.py); a test sets this False on an instance to run the numpy code.
    use_kernels = True
    kernel_max_block = _jit.PER_BLOCK_MAX  # larger blocks run the numpy code (dsp/jit.py says why)
    # Optional metering tap (set by the host): an object with frame_in(spec) / frame_out(spec),
    # called on the audio thread with each frame before and after the stages; must not allocate.
    tap = None

    def __init__(self, config: STFTConfig | str = "default", stages=(), linked: bool = True, table=None):
        super().__init__()
        self.config = get_config(config) if isinstance(config, str) else config
        self.stages = list(stages)
        self.linked = linked
        self.frames_processed = 0
        self.table = table
        self._i_delta = table.index(DELTA_PARAM) if table is not None and DELTA_PARAM in table else -1
        self.delta_amount = 0.0

    def prepare(self, sample_rate: int, max_block: int, channels: int) -> None:
        super().prepare(sample_rate, max_block, channels)
        n_fft, hop = self.config.sizes(sample_rate)
        self.n_fft, self.hop = n_fft, hop
        self.n_bins = n_fft // 2 + 1
        self.win_a, self.win_s = sqrt_hann_pair(n_fft, hop)
        self._fft = RealFFT(n_fft)
        c = channels
        self._in = HopWindow(c, n_fft, hop)               # last n_fft input samples
        # Frames completed in one process() call are analysed as they complete and then run through the
        # stages together (``process_frames``), up to MAX_BATCH at a time: a learned stage then makes one
        # model call per block instead of one per frame. Their outputs are written back into the block
        # afterwards, at the positions they would have had frame by frame, so the result is the same.
        self._specs = np.zeros((MAX_BATCH, c, self.n_bins), np.complex64)
        self._spec_list = [self._specs[j] for j in range(MAX_BATCH)]  # views made once
        self._ogroups = np.zeros((MAX_BATCH, c, hop), np.float32)
        # Analysis and synthesis run batch-wide too: one rfft and one irfft per batch instead of one per
        # frame (numpy's FFT transforms each row alone, so the numbers are the same). Windows are tiled
        # to the batch shape: an in-place multiply by a broadcast operand allocates a buffer.
        # Analysed in float64: numpy's pocketfft computes float32 input in float64 and would allocate the
        # converted copy (16 KB per channel per frame at 48 kHz).
        self._frames64 = np.zeros((MAX_BATCH, c, n_fft), np.float64)   # frames as analysed, then windowed
        self._specs64 = np.zeros((MAX_BATCH, c, self.n_bins), np.complex128)
        self._frames32 = np.zeros((MAX_BATCH, c, n_fft), np.float32)   # irfft output
        self._win_a_batch = np.tile(self.win_a.astype(np.float64), (MAX_BATCH, c, 1))
        self._win_s_batch = np.tile(self.win_s, (MAX_BATCH, c, 1))
        # Per batch size T, the views of the first T frames (made once: no view objects per call).
        self._bviews = [None] + [tuple(a[:T] for a in (self._frames64, self._specs64, self._specs, self._frames32,
                                                       self._win_a_batch, self._win_s_batch))
                                 for T in range(1, MAX_BATCH + 1)]
        self._f64_list = [self._frames64[j] for j in range(MAX_BATCH)]
        self._f32_list = [self._frames32[j] for j in range(MAX_BATCH)]
        self._pos = [0] * MAX_BATCH      # block index of the sample that completed each pending frame
        self._dval = [0.0] * MAX_BATCH   # delta-listen amount of each pending frame
        self._npend = 0
        # Overlap-add accumulator and its ping-pong twin for the one-hop shift (``_acc_i`` says which one is
        # live): an overlapping in-place slice copy makes numpy allocate a temporary, a copy into the
        # other buffer does not.
        self._acc = np.zeros((c, n_fft), np.float32)
        self._acc2 = np.zeros((c, n_fft), np.float32)
        # Per accumulator, the views the shift uses (made once: slicing per frame makes view objects):
        # (whole, first hop, all but the first hop, all but the last hop, last hop).
        self._acc_views = [(a, a[:, :hop], a[:, hop:], a[:, : n_fft - hop], a[:, n_fft - hop :])
                           for a in (self._acc, self._acc2)]
        self._acc_i = 0
        self._og_list = [self._ogroups[j] for j in range(MAX_BATCH)]
        self._ogroup = np.zeros((c, hop), np.float32)     # finished hop being emitted
        self.ctx = SpectralContext(
            sample_rate, n_fft, hop, self.n_bins, c, self.linked,
            np.arange(self.n_bins) * (sample_rate / n_fft),
        )
        for st in self.stages:
            st.prepare(self.ctx)
        self._watchers = tuple(st for st in self.stages if st.wants_input)
        look = sum(int(st.latency_frames) for st in self.stages)
        self._look = look
        self.latency_samples = n_fft - 1 + hop * look
        # Delta listen: ring of analysis spectra long enough for a whole batch plus the stages' look-ahead
        # (frame g's dry copy is the spectrum of frame g - look), a scratch spectrum, and a bool buffer for
        # the non-finite guard.
        self._dry = np.zeros((look + MAX_BATCH, c, self.n_bins), np.complex64)
        self._dry_list = [self._dry[j] for j in range(look + MAX_BATCH)]
        self._dtmp = np.zeros((c, self.n_bins), np.complex64)
        self._bad = np.zeros((c, self.n_bins), bool)
        self._delta_step = hop / (DELTA_XFADE_MS * 1e-3 * sample_rate)
        # The compiled path (stft_kernels.py): the input window and the accumulator shifted in place, the scalar state
        # in one int64 array, the completing sample of each pending frame in another. A section runs one path or the
        # other from prepare() on.
        self._kern = bool(self.use_kernels and _k.AVAILABLE and max_block <= self.kernel_max_block and _k.warm_up())
        self._win = np.zeros((c, n_fft), np.float32)
        self._kst = np.zeros(_k.N_STATE, np.int64)
        self._kpos = np.zeros(MAX_BATCH, np.int64)
        self._wa64 = self.win_a.astype(np.float64)
        self._conv = np.zeros((c, max(1, max_block)), np.float32)  # a non-float32 block's samples (see process)
        self._dmax = 0.0  # largest delta-listen amount among the pending frames
        self.reset()

    def reset(self) -> None:
        self._in.reset()
        self._win.fill(0.0)
        self._kst.fill(0)
        self._kst[_k.OPOS] = 1  # as _opos below
        self._dmax = 0.0
        self._acc.fill(0.0)
        self._acc2.fill(0.0)
        self._acc_i = 0
        self._ogroup.fill(0.0)
        # Invariant between calls: _opos == _in.fill + 1 (the first hop - 1 outputs are silence).
        self._opos = 1
        self._npend = 0
        self.frames_processed = 0
        self._analysed = 0
        self._dry.fill(0.0)
        # The first frame after reset() jumps to the table's value (a render with delta on starts
        # on; the host may snap the table after resetting the engine).
        self.delta_amount = self._delta_target()
        self._delta_jump = True
        for st in self.stages:
            st.reset()

    def _delta_target(self) -> float:
        if self._i_delta < 0:
            return 0.0
        return min(max(float(self.table.value[self._i_delta]), 0.0), 1.0)

    def process(self, block: np.ndarray) -> np.ndarray:
        if self._kern:
            if block.dtype != _F32:
                return self._process_converted(block)
            return self._process_compiled(block)
        n = block.shape[1]
        hop = self.hop
        inp = self._in
        i = 0
        while i < n:
            m = min(n - i, hop - inp.fill)
            seg = block[:, i : i + m]
            if inp.write(seg):
                # The hop is complete: its frame is analysed now and joins the batch. Until the batch is
                # flushed, the outputs from here on belong to pending frames and are written by _flush;
                # without a pending frame, emit the last m-1 samples of the old hop first.
                if self._npend == 0:
                    op = self._opos
                    seg[:, : m - 1] = self._ogroup[:, op : op + m - 1]
                self._analyse(i + m - 1)
                if self._npend == MAX_BATCH:
                    self._flush(block, i + m)
            elif self._npend == 0:
                op = self._opos
                seg[:, :] = self._ogroup[:, op : op + m]
                self._opos = op + m
            i += m
        if self._npend:
            self._flush(block, n)
        return block

    def _process_compiled(self, block: np.ndarray) -> np.ndarray:
        """process() through stft_kernels.py: the same steps as the numpy code, the loops compiled. Python runs once
        per completed hop (the stages that watch the input, the delta-listen ramp) and once per batch (the FFTs and
        the stages)."""
        if block.shape[0] != self._win.shape[0]:
            raise ProcessorError(f"expected ({self._win.shape[0]}, n) audio, got shape {block.shape}")
        n = block.shape[1]
        st = self._kst
        intake, win, og, pos, wa, f64, hop = _k.intake, self._win, self._ogroup, self._kpos, self._wa64, self._frames64, self.hop
        i = 0
        while True:
            i = intake(block, i, win, og, st, pos, wa, f64, hop, MAX_BATCH)
            if st[_k.FLUSH]:
                st[_k.FLUSH] = 0
                self._flush_compiled(block, i)
            elif st[_k.DONE]:  # a hop completed: the window holds its frame until the next call takes it
                for w in self._watchers:
                    w.observe_input(win)
                d = self._dval[st[_k.NPEND]] = self._delta_next()
                self._dmax = max(self._dmax, d)
                self._analysed += 1
            else:
                break
        if st[_k.NPEND]:
            self._flush_compiled(block, n)
        return block

    def _process_converted(self, block: np.ndarray) -> np.ndarray:
        """A block of another dtype (e.g. float64 from a Python caller) through the compiled path via a float32
        scratch, max_block samples at a time: the numpy code rounds the samples to float32 as it takes them
        into its window too, so the output is the same."""
        n, step = block.shape[1], self._conv.shape[1]
        for i in range(0, n, step):
            m = min(step, n - i)
            w = self._conv[:, :m]
            np.copyto(w, block[:, i : i + m], casting="unsafe")
            self._process_compiled(w)
            np.copyto(block[:, i : i + m], w, casting="unsafe")
        return block

    def _delta_next(self) -> float:
        """The delta-listen amount of the frame being analysed: one ramp step per frame toward the table's value (see
        the module docstring)."""
        tgt = self._delta_target()
        d = self.delta_amount
        if self._delta_jump:
            self._delta_jump = False
            d = self.delta_amount = tgt
        elif d != tgt:
            step = self._delta_step
            d = min(d + step, tgt) if tgt > d else max(d - step, tgt)
            self.delta_amount = d
        return d

    def _analyse(self, pos: int) -> None:
        """Take the frame whose hop just completed (at block index ``pos``) into the batch: its samples
        (the FFT runs batch-wide in _flush) and its delta-listen amount; then move the input window on."""
        j = self._npend
        inbuf = self._in.buf
        for st in self._watchers:
            st.observe_input(inbuf)
        np.copyto(self._f64_list[j], inbuf)  # float32 -> float64 (see prepare)
        d = self._dval[j] = self._delta_next()
        self._dmax = max(self._dmax, d)
        self._analysed += 1
        self._pos[j] = pos
        self._npend = j + 1
        self._in.shift()

    def _run_stages(self, T: int, bad_batch: bool) -> None:
        """The batch's T spectra (``_spec_list``) through the metering tap, the delta-listen dry copies and the stages,
        in place. ``bad_batch``: some bin is not finite (zeroed here, frame by frame)."""
        specs = self._spec_list
        tap = self.tap
        look = self._look
        dmax = self._dmax
        if bad_batch or tap is not None or look or dmax > 0.0:
            nr = len(self._dry_list)
            g0 = self._analysed - T  # global index of the batch's first frame
            for j in range(T):
                spec = specs[j]
                if bad_batch:
                    np.isfinite(spec, out=self._bad)
                    np.logical_not(self._bad, out=self._bad)
                    np.copyto(spec, 0.0, where=self._bad)
                if tap is not None:
                    tap.frame_in(spec)
                # Without look-ahead the dry copy of a frame is only read while delta is on: skip it otherwise.
                if look or self._dval[j] > 0.0:
                    np.copyto(self._dry_list[(g0 + j) % nr], spec)
        for st in self.stages:
            st.process_frames(specs, T)
        if tap is not None or dmax > 0.0:
            for j in range(T):
                spec = specs[j]
                if tap is not None:  # the stages' own result (their mask), also while delta listen is on
                    tap.frame_out(spec)
                d = self._dval[j]
                if d > 0.0:
                    # spec <- proc + d * ((dry - proc) - proc); dry = the spectrum analysed `look` frames ago
                    dry = self._dry_list[(g0 + j - look) % nr]
                    t = self._dtmp
                    np.subtract(dry, spec, out=t)
                    t -= spec
                    t *= d
                    spec += t
        self._dmax = 0.0

    def _flush(self, block: np.ndarray, end: int) -> None:
        """Run the pending frames through the stages, synthesise them in order, and write each one's output
        hop into the block from the sample that completed it; the last one's only up to ``end`` (the
        samples after it are still input), the rest of it is emitted by process() as the current hop."""
        hop = self.hop
        T = self._npend
        f64, s64, sp, f32, wa, ws = self._bviews[T]
        np.multiply(f64, wa, out=f64)
        self._fft.forward(f64, s64)
        np.copyto(sp, s64, casting="same_kind")
        bad_batch = not cmath.isfinite(_add_all(sp, None))  # rare path: a NaN/Inf reached the section
        self._run_stages(T, bad_batch)
        self._fft.inverse(sp, f32)
        np.multiply(f32, ws, out=f32)
        views, ai = self._acc_views, self._acc_i
        for j in range(T):
            acc, acc_head, acc_rest, _, _ = views[ai]
            acc += self._f32_list[j]
            og = self._og_list[j]
            np.copyto(og, acc_head)
            # Shift the accumulator by one hop (copy n_fft - hop samples into the twin, which becomes it).
            ai ^= 1
            _, _, _, twin_body, twin_tail = views[ai]
            np.copyto(twin_body, acc_rest)
            twin_tail.fill(0.0)
            p = self._pos[j]
            if j < T - 1:
                block[:, p : p + hop] = og
            else:
                block[:, p:end] = og[:, : end - p]
                np.copyto(self._ogroup, og)
                self._opos = end - p
        self._acc_i = ai
        self.frames_processed += T
        self._npend = 0

    def _flush_compiled(self, block: np.ndarray, end: int) -> None:
        """_flush through stft_kernels.py (the frames were windowed as they were taken)."""
        st = self._kst
        T = int(st[_k.NPEND])
        f64, s64, sp, f32, _, _ = self._bviews[T]
        self._fft.forward(f64, s64)
        _k.to_spectra(self._specs64, self._specs, T)  # non-finite bins are zeroed there
        self._run_stages(T, False)
        self._fft.inverse(sp, f32)
        _k.synthesise(self._frames32, self.win_s, self._acc, block, self._kpos, T, end, self._ogroup, st, self.hop)
        self.frames_processed += T
        st[_k.NPEND] = 0

    @staticmethod
    def require(cond: bool, msg: str) -> None:
        if not cond:
            raise ProcessorError(msg)
