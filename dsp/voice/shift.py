"""Pitch and formant shift inside the shared STFT: a peak-locked phase vocoder on a whitened spectrum.

Per frame and channel (5 ms hop; 20 ms window in the ``default`` section, 10 ms in ``low-latency``):

1. Spectral envelope E(k) (natural log): the log magnitude interpolated linearly from peak to peak (every
   local maximum of |X|), so it runs over the harmonics instead of dipping between them, then smoothed by
   its real cepstrum liftered to quefrencies below ``LIFTER_MS`` (2 ms: detail finer than ~500 Hz goes).
   The excitation is log|X| - E: the harmonics on a flat line, with no formant left in it to move.
2. Pitch (ratio r = 2^(pitch_st / 12)), Laroche & Dolson's peak shifting ("New phase-vocoder techniques
   for real-time pitch shifting", 1999): every local maximum of |X| is a peak and owns the bins nearer to
   it than to any other peak. A peak's true frequency f (bins) comes from its phase advance over the hop;
   its whole region moves rigidly by round((r - 1) f) bins, so the window's main lobe keeps its shape
   (no stretching, hence no amplitude modulation), and the peak's synthesis phase advances by r times
   its measured advance per hop, so the partial sounds at r f exactly. Every other bin of the region keeps
   its analysis phase offset to the peak (identity phase locking): the lobe stays one coherent sinusoid
   instead of bins drifting apart in phase (the plain vocoder's "phasiness"). A peak continues the
   synthesis phase of the previous frame's peak whose region held its bin. Phases are referenced to the
   window centre (bin k's phase + pi k), so moving a lobe by an odd number of bins does not flip its sign.
   DC and whatever lies below the first peak's main lobe are not moved: rumble there would otherwise be
   carried up into the voice's range.
3. Formants (ratio a = ``formant_ratio``): the output takes the envelope warped along frequency,
   E(k / a), so an envelope peak at f moves to a f; with r = 1 this is a real gain per bin
   exp(E(k / a) - E(k)) and the phases are untouched.
Output magnitude = exp(excitation at the moved bin + warped envelope at the output bin), scaled so a
shifted frame keeps the input frame's power (within +-6 dB).

At pitch_st = 0 and formant_ratio = 1 the stage leaves the spectrum untouched (bit-exact); it keeps the
last input spectrum, from whose phases a shift starts without a jump. Per-bin arithmetic is float32, and
phases enter as phasors: the advance is the angle of X conj(X_prev) (one arctan2 per shifted frame), and
an output bin is X[src] times a unit phasor of its peak, so no bin's phase is unwrapped or re-synthesised.
Stereo channels are shifted independently (a shift has no per-bin gain to link). The stage adds no
look-ahead: latency is the section's, n_fft - 1 samples (19.98 ms / 9.98 ms at 48 kHz).
"""

from __future__ import annotations

import math

import numpy as np

from ..params import ParamSpec
from ..stft import SpectralStage
from . import kernels

PARAMS = (
    ParamSpec("voice.pitch_st", -12.0, 12.0, 0.0, "st", smoothing_ms=50.0,
              doc="pitch shift in semitones; the formants stay where they are"),
    ParamSpec("voice.formant_ratio", 0.7, 1.4, 1.0, "x", scale="log", smoothing_ms=50.0,
              doc="formant (spectral envelope) shift: envelope features at f move to ratio x f; pitch stays"),
)

LIFTER_MS = 2.0       # cepstral lifter on the peak-to-peak envelope: detail finer than ~500 Hz is dropped
_FLOOR = 1e-9         # magnitude floor before the log (a full-scale sine is ~n_fft / 4 on its bin)
_TWO_PI = 2.0 * math.pi


class VoiceShift(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread)."""

    name = "voice"
    # Run the frame through dsp/voice/kernels.py's compiled loops when numba is installed (same result to
    # float32 rounding, in under half the stage's time). The voice slot keeps the numpy code: its shipped
    # preset's renders are compared bit for bit; the anon stage, the one over its CPU budget, takes them.
    use_kernels = False
    # The formants-only path (a warp with no pitch shift) reads its envelope from magnitudes floored this many dB
    # under the frame's largest; None: no floor. The resculpt stage's formant override sets it: it warps the
    # model's output, which after the voice match moved a voice up by most of an octave holds its harmonics'
    # regions with empty bins between them (the shift leaves them); faint residues there are peaks far under the
    # harmonics, the peak-interpolated envelope dips to them, and warping it by 5 % lifted the top bands by tens of
    # dB (tests/test_resculpt_voice_match.py).
    formant_floor_db: float | None = None

    def __init__(self, table, phase_lock: bool = True):
        """phase_lock=False makes every bin its own peak: the plain per-bin phase vocoder (a measured
        baseline in benchmarks/voice_shift.py; the catalog's stage always locks)."""
        self.table = table
        self.phase_lock = phase_lock
        self._i_st = table.index("voice.pitch_st")
        self._i_fr = table.index("voice.formant_ratio")

    # -- control thread -------------------------------------------------------------------------
    def prepare(self, ctx):
        """Allocate every buffer: per-channel state (channels, n_bins), shared scratch (n_bins,) / (n_fft,).
        Per-bin arithmetic is float32: phases to ~1e-6 rad, log magnitudes to ~1e-6 nepers."""
        super().prepare(ctx)
        c, nb, n = ctx.channels, ctx.n_bins, ctx.n_fft
        f32, f64, c64 = np.float32, np.float64, np.complex64
        self.kf = np.arange(nb, dtype=f32)
        self.ki = np.arange(nb, dtype=np.int64)
        self._kf64 = np.arange(nb, dtype=f64)
        # Multipliers of [peak; peak reversed] for the nearest-peak search: k, and k + 1 (see _analyse).
        self._kmul = np.stack([self.ki, self.ki + 1])
        expected = (_TWO_PI * ctx.hop / n) * self._kf64           # phase advance per hop of bin k's centre
        self._unrot = np.exp(-1j * expected).astype(c64)         # removes it from a bin's phasor advance
        self._adv_to_bins = n / (_TWO_PI * ctx.hop)              # rad per hop -> frequency in bins
        self._pik = (math.pi * self._kf64).astype(f32)           # analysis phase -> window-centre phase
        # Cepstral smoothing as two small matrix products: the real cepstrum's quefrencies 0..lq of the
        # envelope, c = B1 E (B1 (lq + 1, n_bins): rows of irfft), and back, E_s = B2 c (B2 (n_bins, lq + 1):
        # cosines, both signs of each quefrency folded into one column, as the cepstrum of a real spectrum
        # is even). Equal to rfft(lifter x irfft(E)).real; ~2 x 47k multiply-adds in float32 at 48 kHz
        # instead of two 960-point FFTs.
        lq = max(1, int(round(LIFTER_MS * 1e-3 * ctx.sample_rate)))
        q = np.arange(n)
        kept = q[(q <= lq) | (q >= n - lq)]
        fold = np.minimum(kept, n - kept)
        self._b1 = np.ascontiguousarray(np.fft.irfft(np.eye(nb), n)[:, : lq + 1].T, dtype=f32)
        b2 = np.zeros((nb, lq + 1))
        np.add.at(b2.T, fold, np.cos(2.0 * np.pi * np.outer(kept, self._kf64) / n))
        self._b2 = b2.astype(f32)
        self._cep = np.zeros(lq + 1, f32)
        # Per-channel state. phi and prev_owner are swapped with the frame's scratch (_phinew, _own) at the
        # end of a shifted frame instead of copied, so they are lists of arrays.
        self._zpc = np.zeros((c, nb), c64)        # conj of the last analysis spectrum (its phases give the advance)
        self._phi = [np.zeros(nb, f32) for _ in range(c)]          # synthesis window-centre phase of each peak bin
        self._prev_owner = [np.zeros(nb, np.int64) for _ in range(c)]  # last frame's peak owning each bin
        # True where the last frame was not shifted: phi and prev_owner follow the input and are derived
        # from _zpc when a shift starts (no phase is computed while the stage is neutral or formant-only).
        self._follow = [True] * c
        # Scratch, one channel at a time.
        z = lambda: np.zeros(nb, f32)  # noqa: E731
        (self._mag, self._lm, self._env, self._envw, self._dev, self._t, self._u, self._fbin, self._phinew,
         self._gain, self._g2, self._rmag) = (z() for _ in range(12))
        self._t64 = np.zeros(nb, f64)
        self._u64 = np.zeros(nb, f64)
        self._cbuf = np.zeros(nb, c64)
        self._cbuf_re = self._cbuf.real           # a shifted frame's real gain, written in place (imag stays 0)
        self._w = np.zeros(nb, c64)
        self._q = np.zeros(nb, c64)
        self._zs = np.zeros(nb, c64)
        self._qs = np.zeros(nb, c64)
        self._m1 = np.zeros(nb, bool)
        self._m2 = np.zeros(nb, bool)
        # Peaks and their reversal, for one running maximum that finds the nearest peak on both sides;
        # peak[0] and peak[-1] are never written (the edges are never peaks). Every 2-D operand below has
        # its partner's full shape and is contiguous: a broadcast or strided operand makes numpy allocate.
        self._pr = np.zeros((2, nb), bool)
        self._peak = self._pr[0]
        self._acc = np.zeros((2, nb), np.int64)
        self._acc0 = self._acc[0]
        self._acc1r = self._acc[1][::-1]
        self._lohi = np.zeros((2, nb), np.int64)  # nearest peak at or below / at or above each bin
        self._pklo, self._pkhi = self._lohi[0], self._lohi[1]
        self._ki2 = np.stack([self.ki, self.ki])
        self._lm2 = np.zeros((2, nb), f32)        # log|X| at the two peaks
        self._kl = np.zeros((2, nb), np.int64)    # k minus each
        self._hl = np.zeros(nb, np.int64)
        self._own = np.zeros(nb, np.int64)        # this frame's owning peak of each source bin
        self._pk = np.zeros(nb, np.int64)         # owning peak of each output bin
        self._src = np.zeros(nb, np.int64)        # source bin of each output bin
        self._d = np.zeros(nb, np.int64)          # shift in bins of each peak
        self._ti = np.zeros(nb, np.int64)
        self._ti_u = self._ti.view(np.uint64)
        self._m2f = np.zeros((2, nb), f32)       # a peak's synthesis advance (wrapped), its shift in bins
        # Scalar operands as 0-d arrays: numpy turns a Python scalar operand into a fresh 0-d array on every
        # call, which costs about as much as the operation on 481 bins. Constants here, per-frame values
        # written in place; the values are those the Python scalars would have been cast to.
        c0 = lambda v, dt=f32: np.full((), v, dt)  # noqa: E731
        self._c_floor, self._c_tiny = c0(_FLOOR), c0(1e-30)
        self._c_m1, self._c_p1, self._c_zero = c0(-1.0), c0(1.0), c0(0.0)
        self._c_adv, self._c_pi = c0(self._adv_to_bins), c0(math.pi)
        self._c_2pi, self._c_inv2pi = c0(_TWO_PI), c0(1.0 / _TWO_PI)
        self._v_ra, self._v_rm1, self._v_scale = c0(0.0), c0(0.0), c0(0.0)
        self._v_floor = c0(0.0)
        self._i_zero, self._i_nb = c0(0, np.int64), c0(nb, np.int64)
        self._i_first, self._i_last = c0(0, np.int64), c0(0, np.int64)
        self._i_lowest, self._u_lim = c0(0, np.int64), c0(0, np.uint64)
        self._m2f0, self._m2f1 = self._m2f[0], self._m2f[1]
        # Index maps derived from the ratios (recomputed when a ratio moves).
        self._sidx = np.zeros(nb, np.int64)       # round(k / r): source bin that decides output bin k's peak
        # floor(k / a) (row 0; row 1 is row 0 + 1, see _warp_map_set) and its fraction: formant warp read position.
        self._wi2 = np.zeros((2, nb), np.int64)
        self._wi0, self._wi1 = self._wi2[0], self._wi2[1]
        self._wfr = np.zeros(nb, f32)
        self._e2 = np.zeros((2, nb), f32)
        # The compiled loops (kernels.py) take their scalars as float32, as the numpy code's 0-d operands.
        self._kern = bool(self.use_kernels and self.phase_lock and kernels.AVAILABLE and kernels.warm_up())
        if self._kern:
            self._khalf = kernels.half_smoothing(self._b1, self._b2)
            h = self._khalf[0].shape[0]
            self._ksm = (np.zeros(h, f32), np.zeros(h, f32), np.zeros(self._khalf[0].shape[1], f32),
                         np.zeros(self._khalf[1].shape[1], f32), np.zeros(h, f32), np.zeros(h, f32))
        self._k_adv, self._k_tiny = np.float32(self._adv_to_bins), np.float32(1e-30)
        self.reset()

    def reset(self):
        self._zpc.fill(0.0)
        np.conjugate(self._zpc, out=self._zpc)  # conj of an all-zero spectrum: imaginary parts -0.0
        for phi, po in zip(self._phi, self._prev_owner):
            phi.fill(0.0)
            po[:] = self.ki
        self._follow = [True] * len(self._follow)
        self._r = math.nan
        self._a = math.nan

    # -- audio thread ---------------------------------------------------------------------------
    def _pitch_index(self, r: float, out) -> None:
        """out (n_bins,) int64 <- min(round(k / r), n_bins - 1): the source bin that decides output bin k's peak."""
        t = self._t64
        np.multiply(self._kf64, 1.0 / r, out=t)
        np.rint(t, out=t)
        np.minimum(t, self.kf.shape[0] - 1.0, out=t)  # ufuncs, not np.clip: its Python wrapper costs more than the work
        np.copyto(out, t, casting="unsafe")

    def _set_ratios(self, r: float, a: float) -> None:
        t = self._t64
        if r != self._r:
            self._pitch_index(r, self._sidx)
            self._r = r
        if a != self._a:
            np.multiply(self._kf64, 1.0 / a, out=t)
            self._warp_from(t)
            self._a = a

    def _warp_from(self, t) -> None:
        """The envelope warp map from t (n_bins,) float64, the (>= 0) source bin of each output bin: clamped to
        the spectrum, split into the lower bin (``_wi0``) and the fraction toward the next (``_wfr``). t is
        overwritten."""
        nb = self.kf.shape[0]
        wi = self._u64
        np.minimum(t, nb - 1.0, out=t)
        np.floor(t, out=wi)
        np.minimum(wi, nb - 2.0, out=wi)
        np.copyto(self._wi0, wi, casting="unsafe")
        np.subtract(t, wi, out=t)
        np.copyto(self._wfr, t, casting="same_kind")
        self._warp_map_set()

    def _warp_map_set(self) -> None:
        """After self._wi0 is written: the upper read position of each bin, self._wi1 = self._wi0 + 1."""
        np.add(self._wi0, 1, out=self._wi1)

    def _analyse(self) -> None:
        """From self._mag: self._lm = log|X|; self._peak; self._own[k] = the peak owning bin k (the nearer of
        the last peak at or below k and the first at or above; k itself where the frame has no peak);
        self._env = the spectral envelope (natural log): the log magnitude interpolated linearly between
        peaks, so it runs over the harmonics rather than through the valleys between them, then cepstrally
        smoothed. Index arithmetic is int64; the float32 values it feeds are exact small integers."""
        lm, t, u = self._lm, self._t, self._u
        np.add(self._mag, self._c_floor, out=lm)
        np.log(lm, out=lm)
        if self._kern:
            self._first = float(kernels.peaks_envelope(lm, self._env, self._own, self._pklo, self._pkhi))
            kernels.smooth(self._env, *self._khalf, *self._ksm)
            return
        # Peaks: strict rise from the left, no rise to the right.
        peak, b2 = self._peak, self._m2
        np.greater(lm[1:-1], lm[:-2], out=peak[1:-1])
        np.greater_equal(lm[1:-1], lm[2:], out=b2[1:-1])
        np.logical_and(peak[1:-1], b2[1:-1], out=peak[1:-1])
        # One running maximum over [peak; peak reversed] x [k; k + 1]: row 0 holds the last peak at or below
        # k (0 below the first: no bin 0 peak), row 1 at reversed position k holds nb - (first peak at or
        # above k) (0 above the last).
        acc = self._acc
        np.copyto(self._pr[1], peak[::-1])
        np.copyto(acc, self._pr)
        np.multiply(acc, self._kmul, out=acc)
        np.maximum.accumulate(acc, axis=1, out=acc)
        env, own = self._env, self._own
        nb = self.ki.shape[0]
        last = int(acc[0, -1])
        if last > 0:
            first = nb - int(acc[1, -1])
            lohi, lo, hi = self._lohi, self._pklo, self._pkhi
            self._i_first[()] = first
            self._i_last[()] = last
            np.maximum(self._acc0, self._i_first, out=lo)  # below the first peak: the first
            np.subtract(self._i_nb, self._acc1r, out=hi)
            np.minimum(hi, self._i_last, out=hi)       # above the last peak: the last
            lm2, kl, hl = self._lm2, self._kl, self._hl
            lm.take(lohi, out=lm2, mode="clip")
            np.subtract(self._ki2, lohi, out=kl)       # k - lo >= 0, k - hi <= 0
            np.subtract(kl[0], kl[1], out=hl)          # hi - lo
            # Envelope: lm[lo] + (lm[hi] - lm[lo]) / max(hi - lo, 1) * (k - lo).
            np.subtract(lm2[1], lm2[0], out=t)
            np.copyto(u, hl, casting="unsafe")
            np.maximum(u, self._c_p1, out=u)
            t /= u
            np.copyto(u, kl[0], casting="unsafe")
            t *= u
            np.add(lm2[0], t, out=env)
            # Owner: the nearer of the two, hi where hi - k < k - lo.
            np.add(kl[0], kl[1], out=hl)
            np.greater(hl, self._i_zero, out=b2)
            np.copyto(own, lo)
            np.copyto(own, hi, where=b2)
            self._first = float(first)
        else:
            np.copyto(env, lm)
            np.copyto(own, self.ki)
            self._first = 0.0
        np.dot(self._b1, env, out=self._cep)
        np.dot(self._b2, self._cep, out=env)

    def _warped_envelope(self) -> None:
        """self._envw[k] = env(k / a), linear interpolation."""
        e2, t = self._e2, self._t
        self._env.take(self._wi2, out=e2, mode="clip")
        np.subtract(e2[1], e2[0], out=t)
        t *= self._wfr
        np.add(e2[0], t, out=self._envw)

    def process_frame(self, spec):
        v = self.table.value
        st = float(v[self._i_st])
        a = float(v[self._i_fr])
        shift = abs(st) > 1e-4
        warp = abs(a - 1.0) > 1e-6
        r = 2.0 ** (st / 12.0) if shift else 1.0
        self._set_ratios(r, a if warp else 1.0)
        for ch in range(spec.shape[0]):
            if shift:
                self._shift(spec[ch], ch, r, warp)
            else:
                self._follow[ch] = True
                np.conjugate(spec[ch], out=self._zpc[ch])
                if warp:
                    self._formants(spec[ch])

    def _formants(self, row) -> None:
        """Formants only: row *= exp(E(k / a) - E(k)), a real gain per bin; the phases are untouched."""
        np.abs(row, out=self._mag)
        if self.formant_floor_db is not None:
            self._v_floor[()] = float(self._mag.max()) * 10.0 ** (-self.formant_floor_db / 20.0)
            np.maximum(self._mag, self._v_floor, out=self._mag)
        self._analyse()
        self._warped_envelope()
        self._envelope_gain(row)

    def _envelope_gain(self, row) -> None:
        """row *= exp(envw - env) after _analyse and _warped_envelope: the warp as a real gain per bin."""
        g = self._gain
        np.subtract(self._envw, self._env, out=g)
        np.exp(g, out=g)
        np.copyto(self._cbuf, g)
        np.multiply(row, self._cbuf, out=row)

    def _shift(self, row, ch, r, warp) -> None:
        mag, t, u, dev = self._mag, self._t, self._u, self._dev
        zpc, phi, prev_owner = self._zpc[ch], self._phi[ch], self._prev_owner[ch]
        np.abs(row, out=mag)
        e_in = float(np.dot(mag, mag))
        if self._follow[ch]:
            # The last frame was not shifted: each bin continues its own window-centre phase.
            zp = self._w
            np.conjugate(zpc, out=zp)
            np.arctan2(zp.imag, zp.real, out=phi)
            phi += self._pik
            prev_owner[:] = self.ki
        if e_in == 0.0:  # an all-zero frame stays zero; the next shift continues from its phases
            self._follow[ch] = True
            np.conjugate(row, out=zpc)
            return
        self._follow[ch] = False
        self._analyse()
        if self._kern:
            if warp:
                self._warped_envelope()
            kernels.shift_frame(row, zpc, self._unrot, self._env, self._envw if warp else self._env, mag,
                                self._own, prev_owner, phi, self._phinew, self._sidx, self.kf, self._d, self._q,
                                self._gain, self._src, self._pk, self._zs, self._k_adv,
                                np.float32(r / self._adv_to_bins), np.float32(r - 1.0), int(self._first), e_in,
                                self._k_tiny)
            self._phi[ch], self._phinew = self._phinew, phi
            self._prev_owner[ch], self._own = self._own, prev_owner
            return
        # Measured phase advance per hop minus bin k's expected one, wrapped to (-pi, pi]: the angle of
        # X conj(X_prev) exp(-i expected), so no phase is unwrapped.
        w = self._w
        np.multiply(zpc, row, out=w)
        w *= self._unrot
        np.arctan2(w.imag, w.real, out=dev)
        if warp:
            self._warped_envelope()
            envw = self._envw
        else:
            envw = self._env
        kf, b1, b2 = self.kf, self._m1, self._m2
        own = self._own
        if not self.phase_lock:
            np.copyto(own, self.ki)
        # True frequency of each bin in bins (peak bins matter), kept within a bin of the bin itself.
        fbin = self._fbin
        np.multiply(dev, self._c_adv, out=fbin)
        np.maximum(fbin, self._c_m1, out=fbin)
        np.minimum(fbin, self._c_p1, out=fbin)
        fbin += kf
        # Synthesis phase of each peak: the previous owner's phase + r x its measured advance, wrapped
        # to (-pi, pi] so float32 keeps its precision; and the shift of each peak's region in whole bins,
        # round((r - 1) f): both roundings in one call.
        m2f, m0 = self._m2f, self._m2f0
        self._v_ra[()] = r / self._adv_to_bins
        self._v_rm1[()] = r - 1.0
        np.multiply(fbin, self._v_ra, out=m0)
        np.multiply(fbin, self._v_rm1, out=self._m2f1)
        phinew = self._phinew
        phi.take(prev_owner, out=phinew, mode="clip")
        phinew += m0
        np.multiply(phinew, self._c_inv2pi, out=m0)
        np.rint(m2f, out=m2f)
        m0 *= self._c_2pi
        phinew -= m0
        np.copyto(self._d, self._m2f1, casting="unsafe")
        # Output bin k: the peak owning source bin round(k / r), and the bin it moved there from.
        pk, src, ti = self._pk, self._src, self._ti
        own.take(self._sidx, out=pk, mode="clip")
        self._d.take(pk, out=ti, mode="clip")
        np.subtract(self.ki, ti, out=src)
        # Sources: neither DC nor what lies below the first peak's main lobe (rumble, DC leakage), which the
        # first peak's region would otherwise carry up into the voice's range; nor past Nyquist, nor outside
        # the peak's region. b1: output bins without a valid source (src outside [lowest, nb - 1] is one
        # unsigned comparison). The gathers below clip src to the bins.
        lowest = max(1, int(self._first) - 2)
        self._i_lowest[()] = lowest
        self._u_lim[()] = kf.shape[0] - 1 - lowest
        np.subtract(src, self._i_lowest, out=ti)
        np.greater(self._ti_u, self._u_lim, out=b1)
        own.take(src, out=ti, mode="clip")    # the source bin must lie in the same peak's region
        np.not_equal(ti, pk, out=b2)
        np.logical_or(b1, b2, out=b1)
        # Magnitude: the source bin's excitation on the (warped) envelope at the output bin, i.e.
        # |X[src]| exp(Ew(k) - E(src)).
        g, g2 = self._gain, self._g2
        self._env.take(src, out=g, mode="clip")
        np.subtract(envw, g, out=g)
        np.exp(g, out=g)
        np.copyto(g, self._c_zero, where=b1)
        mag.take(src, out=g2, mode="clip")
        g2 *= g
        # Keep the frame's power: moved regions leave empty bins between them (r > 1) or overlap (r < 1),
        # which would change the level by up to -3 / +1 dB an octave up / down. Limited to +-6 dB, so a
        # frame whose peaks all moved past Nyquist is not blown up.
        e_out = float(np.dot(g2, g2))
        if e_out > 0.0:
            self._v_scale[()] = min(max(math.sqrt(e_in / e_out), 0.5), 2.0)
            g *= self._v_scale
        # Phase of output bin k (frame-start reference): the peak's synthesis phase + the source bin's
        # offset to the peak, phinew[p] + ph[src] - ph[p] + pi (src - p - k), where src - p - k = -(d[p] + p).
        # As phasors: X[src] / |X[src]| times q[p] = exp(i (phinew[p] + pi (d[p] + p))) conj(X[p]) / |X[p]|;
        # |X[src]| is already in the magnitude above. conj(X) is kept for the next frame's advance.
        q = self._q
        np.add(self._m2f1, kf, out=t)  # d + k: the shift rounded in float32 is exact, as in self._d
        t *= self._c_pi
        t += phinew
        np.cos(t, out=q.real)
        np.sin(t, out=q.imag)
        np.conjugate(row, out=zpc)
        q *= zpc
        rmag = self._rmag
        np.add(mag, self._c_tiny, out=rmag)
        np.reciprocal(rmag, out=rmag)
        rmag.take(pk, out=u, mode="clip")
        np.multiply(g, u, out=self._cbuf_re)
        zs, qs = self._zs, self._qs
        row.take(src, out=zs, mode="clip")
        q.take(pk, out=qs, mode="clip")
        zs *= qs
        np.multiply(zs, self._cbuf, out=row)
        # This frame's phases and owners become the channel's state; the old arrays are the next scratch.
        self._phi[ch], self._phinew = phinew, phi
        self._prev_owner[ch], self._own = own, prev_owner
