"""Metering for the control surface: levels, CPU load, a band spectrum and the current mask.

Two sides, no lock:

* **Audio thread** (allocation-free: one compiled loop per block with numba, extra ``fast``, or a few numpy calls
  with ``out=`` into buffers made in :meth:`Meters.prepare`): :meth:`block_in` / :meth:`block_out` once per block (called by
  :class:`~resculpt.plugin_host.host.Chain` when meters are attached) accumulate peak and sum of
  squares per channel, keep a short ring of the mono input and output, and record the callback
  time; :meth:`frame_in` / :meth:`frame_out` (the STFT tap, once per hop) copy the spectrum
  before and after the spectral stages.
* **Reader** (the OSC feedback thread, ~30 Hz): :meth:`snapshot` turns the accumulated values into
  dBFS levels, a log-spaced band spectrum of the last STFT frame (or, when the chain has no STFT,
  of the last output samples via an FFT computed here, on the reader's thread) and the mask
  ``|processed| / |input|`` per band, then asks the audio thread to restart its accumulators.

Only the audio thread writes the accumulators; the reader sets a flag that the audio thread
honours at its next block (a single-writer handshake). Reads of the spectrum copies may see a
frame being overwritten; a frame counter read before and after lets the reader retry once, and
a torn frame is only a cosmetic glitch in a display.
"""

from __future__ import annotations

import math

import numpy as np
from resculpt.dsp import jit as _jit

_F32 = np.dtype(np.float32)
_MAX_BINS = 4097  # n_fft up to 8192 (20 ms windows up to 192 kHz)
_RING = 4096
_EPS = 1e-12


_max_reduce, _add_reduce = np.maximum.reduce, np.add.reduce  # (array, axis, dtype, out)


def db(x: float, floor: float = -120.0) -> float:
    return max(floor, 20.0 * math.log10(x)) if x > 0 else floor


class Meters:
    """Levels, CPU load, band spectrum and mask of a running chain.

    Args:
        n_bands: number of log-spaced bands in the spectrum and the mask.
        fmin, fmax: band range in Hz (fmax is capped at Nyquist).
        fft_size: FFT length of the fallback spectrum (chains without an STFT).
    """

    use_kernels = True  # a test sets this False on an instance to run the numpy code
    kernel_max_block = _jit.PER_BLOCK_MAX  # larger blocks run the numpy code (dsp/jit.py says why)

    def __init__(self, n_bands: int = 64, fmin: float = 30.0, fmax: float = 20000.0, fft_size: int = 2048):
        if not 4 <= n_bands <= 512:
            raise ValueError("n_bands must be in 4..512")
        self.n_bands = n_bands
        self.fmin, self.fmax = float(fmin), float(fmax)
        self.fft_size = int(min(fft_size, _RING))
        self.sample_rate = 0
        self.channels = 0
        self.max_block = 0
        self.stft_active = False  # set by the host each block: is there an STFT to tap?
        self._band_cache: dict = {}

    # -- control thread ------------------------------------------------------------------------
    def prepare(self, sample_rate: int, max_block: int, channels: int) -> None:
        """Allocate every buffer the audio side uses (control thread, before audio starts)."""
        c = channels
        self.sample_rate, self.max_block, self.channels = int(sample_rate), int(max_block), c
        self._scratch = np.zeros((c, max_block), np.float32)  # |block| and block^2, per sample
        self._tmp = np.zeros(c, np.float32)  # per-channel max / sum of one block (the block's dtype: no cast)
        self._tmp64 = np.zeros(c, np.float64)  # the block's sums of squares, widened for the accumulator
        # accumulators since the last snapshot, row 0 = input, row 1 = output. The peak stays float32 (the
        # samples' own type: exact, and its update is a same-type ufunc, no casting buffer).
        self._peak = np.zeros((2, c), np.float32)  # largest |sample| per channel
        self._ss = np.zeros((2, c), np.float64)  # sum of squares per channel (RMS = sqrt(ss / count))
        # Row views made once: indexing per block would make view objects.
        self._peak_rows = (self._peak[0], self._peak[1])
        self._ss_rows = (self._ss[0], self._ss[1])
        self._count = [0, 0]  # samples per channel (Python ints: no numpy temporaries per block)
        self._cpu_max = 0.0
        self._cpu_sum = 0.0
        self._cpu_n = 0
        self._reset_req = False
        self._ring_in = np.zeros(_RING, np.float32)  # last _RING samples, channel mean, for the spectrum
        self._ring_out = np.zeros(_RING, np.float32)
        self._rpos = 0  # next write position in both rings
        self._fin = np.zeros((c, _MAX_BINS), np.complex64)  # STFT frame tapped from the host: input
        self._fout = np.zeros((c, _MAX_BINS), np.complex64)  # and processed (for the mask |out|/|in|)
        self._nbins = 0
        self._nfft = 0
        self.frames = 0
        self.blocks = 0
        # One compiled pass per block (:func:`_levels_ring`) instead of ~10 numpy calls (4.2 us against 23.8 us of a
        # 128-sample mono callback: benchmarks/live_callback.py's pieces): the same peaks and ring; the sums of squares
        # are accumulated in float64 sample by sample where the numpy code sums the block in float32 first (a display:
        # the last digits of an RMS differ).
        self._kern = bool(self.use_kernels and AVAILABLE and max_block <= self.kernel_max_block and warm_up())

    # -- audio thread --------------------------------------------------------------------------
    def _levels(self, k: int, block: np.ndarray, n: int) -> None:
        # The ufuncs' own reduce, not np.max/np.sum (their Python wrappers cost ~3x the reduction at 128
        # samples), and the float64 accumulator updated through a same-type add.
        s = self._scratch[:, :n]
        tmp = self._tmp
        np.abs(block, out=s)
        _max_reduce(s, 1, None, tmp)
        pk = self._peak_rows[k]
        np.maximum(pk, tmp, out=pk)
        np.multiply(block, block, out=s)
        _add_reduce(s, 1, None, tmp)
        np.copyto(self._tmp64, tmp)
        ss = self._ss_rows[k]
        np.add(ss, self._tmp64, out=ss)

    def _ring(self, ring: np.ndarray, block: np.ndarray, n: int) -> None:
        """Mono (channel mean) of the block's last <= _RING samples into the ring at _rpos."""
        if n > _RING:
            block = block[:, n - _RING :]
            n = _RING
        w = self._rpos
        k = min(n, _RING - w)
        c = block.shape[0]
        if c > 1:
            dst = ring[w : w + k]
            np.add(block[0, :k], block[1, :k], out=dst)
            dst *= 0.5
            if k < n:
                dst = ring[: n - k]
                np.add(block[0, k:n], block[1, k:n], out=dst)
                dst *= 0.5
        else:
            np.copyto(ring[w : w + k], block[0, :k])
            if k < n:
                np.copyto(ring[: n - k], block[0, k:n])

    def block_in(self, block: np.ndarray) -> None:
        """Audio thread: the block as it enters the chain (after input sanitising)."""
        if self._reset_req:
            self._peak.fill(0.0)
            self._ss.fill(0.0)
            self._count[0] = self._count[1] = 0
            self._cpu_max = 0.0
            self._cpu_sum = 0.0
            self._cpu_n = 0
            self._reset_req = False
        n = block.shape[1]
        if self._kern and block.dtype == _F32:
            levels_ring(block, self._peak_rows[0], self._ss_rows[0], self._ring_in, self._rpos)
        else:
            self._levels(0, block, n)
            self._ring(self._ring_in, block, n)
        self._count[0] += n

    def block_out(self, block: np.ndarray, elapsed_s: float = 0.0) -> None:
        """Audio thread: the processed block, and the time the chain took for it (seconds)."""
        n = block.shape[1]
        if self._kern and block.dtype == _F32:
            levels_ring(block, self._peak_rows[1], self._ss_rows[1], self._ring_out, self._rpos)
        else:
            self._levels(1, block, n)
            self._ring(self._ring_out, block, n)
        self._count[1] += n
        self._rpos = (self._rpos + min(n, _RING)) % _RING
        if n and self.sample_rate:
            load = elapsed_s * self.sample_rate / n
            self._cpu_sum += load
            self._cpu_n += 1
            self._cpu_max = max(self._cpu_max, load)
        self.blocks += 1

    def frame_in(self, spec: np.ndarray) -> None:
        """STFT tap, audio thread: the analysed frame (channels, n_bins) before the spectral stages."""
        c, nb = spec.shape
        if nb <= _MAX_BINS and c <= self.channels:
            np.copyto(self._fin[:c, :nb], spec)

    def frame_out(self, spec: np.ndarray) -> None:
        """STFT tap, audio thread: the same frame after the spectral stages."""
        c, nb = spec.shape
        if nb <= _MAX_BINS and c <= self.channels:
            np.copyto(self._fout[:c, :nb], spec)
            self._nbins = nb
            self._nfft = 2 * (nb - 1)
            self.frames += 1

    # -- reader (feedback thread) --------------------------------------------------------------
    def _bands(self, freqs_n: int, bin_hz: float):
        """(starts, ends) bin index ranges of the log bands for a spectrum of freqs_n bins."""
        key = (freqs_n, round(bin_hz, 6))
        hit = self._band_cache.get(key)
        if hit is not None:
            return hit
        fmax = min(self.fmax, (freqs_n - 1) * bin_hz)
        edges = np.geomspace(self.fmin, max(fmax, self.fmin * 2), self.n_bands + 1)
        lo = np.floor(edges[:-1] / bin_hz).astype(int)
        hi = np.maximum(lo + 1, np.floor(edges[1:] / bin_hz).astype(int))
        lo = np.clip(lo, 0, freqs_n - 1)
        hi = np.clip(hi, lo + 1, freqs_n)
        self._band_cache[key] = (lo, hi)
        return lo, hi

    def _band_power(self, power: np.ndarray, bin_hz: float) -> np.ndarray:
        lo, hi = self._bands(power.size, bin_hz)
        cs = np.concatenate([[0.0], np.cumsum(power, dtype=np.float64)])
        return cs[hi] - cs[lo]  # energy in the band: a sine reads its level, pink noise is flat

    def centers_hz(self) -> np.ndarray:
        """Geometric centre frequency of each band (for axis labels)."""
        fmax = min(self.fmax, 0.5 * self.sample_rate) if self.sample_rate else self.fmax
        e = np.geomspace(self.fmin, fmax, self.n_bands + 1)
        return np.sqrt(e[:-1] * e[1:])

    def spectrum(self) -> tuple[np.ndarray, np.ndarray, str]:
        """(spectrum dBFS per band, mask per band, source) where source is "stft" or "fft"."""
        if self.sample_rate == 0:
            z = np.full(self.n_bands, -120.0)
            return z, np.ones(self.n_bands), "none"
        if self.stft_active and self.frames > 0:
            for _ in range(2):
                f0 = self.frames
                nb, nfft = self._nbins, self._nfft
                xin = self._fin[:, :nb].copy()
                xout = self._fout[:, :nb].copy()
                if self.frames == f0:
                    break
            scale = nfft * nfft / 8.0  # sqrt-Hann: a full-scale sine's lobe energy is n^2/8 (0 dBFS)
            p_in = (np.abs(xin) ** 2).mean(axis=0) / scale
            p_out = (np.abs(xout) ** 2).mean(axis=0) / scale
            bin_hz = self.sample_rate / nfft
            src = "stft"
        else:
            n = self.fft_size
            r = self._rpos
            idx = (np.arange(r - n, r)) % _RING
            win = np.hanning(n).astype(np.float32)
            scale = 3.0 * n * n / 32.0  # Hann: a full-scale sine's lobe energy
            p_in = np.abs(np.fft.rfft(self._ring_in[idx] * win)) ** 2 / scale
            p_out = np.abs(np.fft.rfft(self._ring_out[idx] * win)) ** 2 / scale
            bin_hz = self.sample_rate / n
            src = "fft"
        b_in = self._band_power(p_in, bin_hz)
        b_out = self._band_power(p_out, bin_hz)
        spec_db = 10.0 * np.log10(np.maximum(b_out, 1e-12))
        mask = np.sqrt((b_out + _EPS) / (b_in + _EPS))
        mask[b_in < 1e-10] = 1.0  # silence in: nothing to say about a gain
        return np.clip(spec_db, -120.0, 12.0), np.clip(mask, 0.0, 4.0), src

    def snapshot(self, reset: bool = True) -> dict:
        """Levels since the last snapshot (dBFS), CPU load, spectrum and mask; restarts the
        accumulators when ``reset`` (the audio thread zeroes them at its next block)."""
        if self.sample_rate == 0:
            raise RuntimeError("Meters.prepare() was not called (attach them to a chain)")
        peak = self._peak.copy()
        ss = self._ss.copy()
        cnt = self._count.copy()
        cpu_max, cpu_n, cpu_sum = self._cpu_max, self._cpu_n, self._cpu_sum
        if reset:
            self._reset_req = True
        out = {"blocks": self.blocks}
        for k, name in ((0, "in"), (1, "out")):
            n = max(int(cnt[k]), 1)
            out[f"{name}_peak_db"] = db(float(peak[k].max()))
            out[f"{name}_rms_db"] = db(math.sqrt(float(ss[k].sum()) / (n * self.channels)))
            out[f"{name}_peak_db_ch"] = [db(float(v)) for v in peak[k]]
        out["cpu_load"] = cpu_sum / cpu_n if cpu_n else 0.0
        out["cpu_peak"] = cpu_max
        spec, mask, src = self.spectrum()
        out["spectrum_db"] = spec
        out["mask"] = mask
        out["spectrum_source"] = src
        return out


def _levels_ring(block, peak, ss, ring, rpos):
    """Per channel of ``block`` (channels, n) float32: peak[ch] = max(peak[ch], max |x|), ss[ch] += sum x^2 (float64);
    and the mono (mean of the first two channels, or the one) of the block's last <= len(ring) samples into ``ring``
    from ``rpos`` on, wrapping."""
    c, n = block.shape
    for ch in range(c):
        pk = peak[ch]
        acc = 0.0
        for k in range(n):
            v = block[ch, k]
            pk = max(pk, abs(v))
            acc += v * v
        peak[ch] = pk
        ss[ch] += acc
    size = ring.shape[0]
    first = n - size if n > size else 0
    w = rpos
    for k in range(first, n):
        ring[w] = (block[0, k] + block[1, k]) * np.float32(0.5) if c > 1 else block[0, k]
        w += 1
        if w == size:
            w = 0


def warm_up() -> bool:
    """Compile :func:`_levels_ring` for a block of any memory layout (once per process; numba's disk cache after
    the first time). False without numba (the numpy code runs)."""
    return _jit.warm_module(globals(), _bind)


def _bind(jit):
    global levels_ring
    from numba import types as t

    f32c, f64c = t.Array(t.float32, 1, "C"), t.Array(t.float64, 1, "C")
    levels_ring = jit(_levels_ring, [t.void(t.Array(t.float32, 2, "A"), f32c, f64c, f32c, t.int64)])


AVAILABLE = _jit.available("meters")
_warm = False
levels_ring = None

__all__ = ["Meters", "db"]
