"""Frame analysers: pass-through processors that compute one feature row per 5 ms hop.

Every feature extractor in ``resculpt.dsp.features`` is a :class:`FrameAnalyzer`. It follows the
:class:`~resculpt.dsp.processor.Processor` protocol (``prepare``/``process``/``reset``), passes
the audio through untouched (latency 0) and, each time a hop of ``hop`` samples (5 ms, the shared
STFT hop at every rate) has arrived, computes one row of ``columns`` from the last
``win_len`` samples. Rows go into a preallocated ring ``history`` (frames, n_columns); the
control side reads them with :meth:`FrameAnalyzer.read`.

Streaming equals offline by construction: :func:`analyze` runs the very same processor over a
whole signal, and every per-hop computation depends only on the samples seen so far, never on how
they were cut into blocks (a recursive filter, ``filter_sos``, runs over whole blocks with its state
carried across them, which gives the same samples as any other cut). Frame ``i`` ends at sample ``(i + 1) * hop``; samples before the start are zeros.

Non-finite input samples are replaced by 0 inside the analyser's own buffer (the caller's block
is never modified). The samples are then high-passed at :data:`DC_BLOCK_HZ` (Butterworth, 2nd order, each
channel, state carried across blocks): a DC offset is inaudible, yet it leaks from bin 0 of a 20 ms window into the
bands below ~150 Hz, lifts every pause to the level of the offset (so pauses count as active frames) and takes
LPC poles, which moved a profile's centroid, crest factor, F1 and voiced fraction far from what is heard. At 10 Hz
the filter takes 0.26 dB at 20 Hz and less than 0.01 dB above 50 Hz. An analyser with its own high-pass (pitch,
pace) or a level standard to keep (loudness) sets ``dc_block`` False.
"""

from __future__ import annotations

import numpy as np

from ..hop_window import HopWindow
from ..processor import Processor
from ..stft import get_config


DC_BLOCK_HZ = 10.0


def dc_block_sos(sample_rate: int) -> np.ndarray:
    """(1, 6) second-order sections of the analysers' DC blocker at ``sample_rate``."""
    from scipy.signal import butter

    return butter(2, DC_BLOCK_HZ, btype="highpass", fs=sample_rate, output="sos")


def hop_size(sample_rate: int) -> int:
    """The feature hop in samples: the shared STFT's 5 ms hop at this rate."""
    return get_config("default").sizes(sample_rate)[1]


class FrameAnalyzer(Processor):
    """Base class. Subclasses set ``columns``/``units``, ``window_ms`` and implement
    ``_setup()`` (allocate, called from prepare), ``_reset_state()`` and ``_compute(row)``
    (fill ``row`` from ``self._input.buf`` (channels, win_len), float64, newest sample last, or from
    :meth:`mono`).
    """

    name = "features"
    columns: tuple = ()
    units: tuple = ()
    window_ms = 20.0
    # An analyser that runs its input through a recursive filter (state carried from hop to hop) sets
    # ``filter_sos`` (sections, 6) in _setup, and ``filter_mono`` True to filter the mean of the channels (one
    # signal) rather than each channel. The base then filters each whole block in one call, on the samples the
    # window holds (float64, non-finite values zeroed): the state carries over exactly, so these are the samples a
    # filter run hop by hop gives, at a fraction of the calls. ``filtered()`` is the newest hop of them.
    filter_sos = None
    filter_mono = False
    dc_block = True

    def __init__(self, history_s: float = 10.0):
        super().__init__()
        self.history_s = float(history_s)

    def window_samples(self, sample_rate: int) -> int:
        return int(round(self.window_ms * 1e-3 * sample_rate))

    def prepare(self, sample_rate: int, max_block: int, channels: int, history_frames: int | None = None) -> None:
        super().prepare(sample_rate, max_block, channels)
        self.hop = hop_size(sample_rate)
        self.win_len = max(self.window_samples(sample_rate), self.hop)
        self.frame_rate_hz = sample_rate / self.hop
        cap = history_frames if history_frames else int(np.ceil(self.history_s * self.frame_rate_hz))
        self.capacity = max(1, int(cap))
        self._input = HopWindow(channels, self.win_len, self.hop, np.float64)
        self._mono = np.zeros(self.win_len, np.float64)
        self._xb = np.zeros((channels, max(1, max_block)), np.float64)  # a block as the window holds it
        self.filter_sos = None
        self._dc_sos = dc_block_sos(sample_rate) if self.dc_block else None
        self._dc_zi = np.zeros((1, channels, 2))
        self.history = np.full((self.capacity, len(self.columns)), np.nan)
        self._setup()
        if self.filter_sos is not None:
            c = 1 if self.filter_mono else channels
            self._fwin = HopWindow(c, self.hop, self.hop, np.float64)
            self._fzi = np.zeros((self.filter_sos.shape[0], 2) if self.filter_mono else (self.filter_sos.shape[0], c, 2))
            self._fblock = None
        self.reset()

    def _setup(self) -> None:
        pass

    def _reset_state(self) -> None:
        pass

    def reset(self) -> None:
        self._input.reset()
        self._dc_zi.fill(0.0)
        if self.filter_sos is not None:
            self._fwin.reset()
            self._fzi.fill(0.0)
        self.history.fill(np.nan)
        self.frames = 0
        self._read = 0
        self._reset_state()

    def mono(self) -> np.ndarray:
        """The analysis window mixed to mono (mean of channels), into a preallocated buffer."""
        buf = self._input.buf
        if self.channels == 1:
            np.copyto(self._mono, buf[0])
        else:
            np.mean(buf, axis=0, out=self._mono)
        return self._mono

    def process(self, block: np.ndarray) -> np.ndarray:
        n = block.shape[1]
        hop = self.hop
        win = self._input
        cap = self._xb.shape[1]
        if n > cap:  # more than prepare's max_block: in pieces of it
            for j in range(0, n, cap):
                self.process(block[:, j : j + cap])
            return block
        i = 0
        # The block as the window holds it: float64, non-finite samples 0, DC blocked (once per block, not per hop).
        xb = self._xb[:, :n]
        np.copyto(xb, block)
        np.nan_to_num(xb, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if self._dc_sos is not None and n:
            xb[:], self._dc_zi = dc_filter(self._dc_sos, xb, self._dc_zi)
        fw = self._filter_block(xb) if self.filter_sos is not None and n else None
        while i < n:
            m = min(n - i, hop - win.fill)
            if fw is not None:
                fw.write(self._fblock[:, i : i + m])
            if win.write(xb[:, i : i + m]):
                self._compute(self.history[self.frames % self.capacity])
                self.frames += 1
                win.shift()
                if fw is not None:
                    fw.shift()
            i += m
        return block

    def _filter_block(self, x: np.ndarray) -> HopWindow:
        """``filter_sos`` over the whole block ``x`` (channels, n) float64, as the window holds it, into
        ``self._fblock`` (1 or channels, n); returns the window its hops go into."""
        from scipy.signal import sosfilt

        if self.filter_mono:
            mono = x[0] if x.shape[0] == 1 else np.mean(x, axis=0)
            y, self._fzi = sosfilt(self.filter_sos, mono, zi=self._fzi)
            self._fblock = y[None]
        else:
            self._fblock, self._fzi = sosfilt(self.filter_sos, x, axis=-1, zi=self._fzi)
        return self._fwin

    def filtered(self) -> np.ndarray:
        """The newest hop through ``filter_sos`` (1 or channels, hop) float64; valid inside _compute."""
        return self._fwin.buf

    def _compute(self, row: np.ndarray) -> None:
        raise NotImplementedError

    # -- control side --------------------------------------------------------------------------
    def read(self) -> np.ndarray:
        """Rows computed since the last read (oldest first; at most ``capacity``). Control thread."""
        end = self.frames
        start = max(self._read, end - self.capacity)
        self._read = end
        idx = np.arange(start, end) % self.capacity
        return self.history[idx].copy()

    def latest(self) -> dict:
        """The newest row as {column: value} (NaN where undefined)."""
        if self.frames == 0:
            return {c: float("nan") for c in self.columns}
        row = self.history[(self.frames - 1) % self.capacity]
        return dict(zip(self.columns, (float(v) for v in row)))


def dc_filter(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The DC blocker over ``x`` (channels, n) float64 with state ``zi`` (1, channels, 2): (y, new zi). One home
    for the call, so :class:`~resculpt.dsp.profile.EnvelopeAccumulator` filters bit for bit as the analysers do."""
    from scipy.signal import sosfilt

    return sosfilt(sos, x, axis=-1, zi=zi)


def as_2d(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] not in (1, 2):
        raise ValueError(f"expected mono (n,) or (channels, n) audio with 1 or 2 channels, got {x.shape}")
    return np.ascontiguousarray(x)


def analyze(proc: FrameAnalyzer, x, sample_rate: int, block: int = 16384) -> np.ndarray:
    """Run ``proc`` offline over a whole signal (``(n,)`` or ``(channels, n)``); return its rows
    (n // hop, n_columns). Uses exactly the streaming code path."""
    x = as_2d(x)
    n = x.shape[1]
    hop = hop_size(sample_rate)
    proc.prepare(sample_rate, max(1, min(block, n)), x.shape[0], history_frames=n // hop + 1)
    buf = x.copy()
    bs = proc.max_block
    for i in range(0, n, bs):
        proc.process(buf[:, i : i + bs])
    return proc.history[: proc.frames].copy()
