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

At pitch_st = 0 and formant_ratio = 1 the stage leaves the spectrum untouched (bit-exact), but keeps
its phase state in step with the input so a shift can start from the current phases without a jump.
Stereo channels are shifted independently (a shift has no per-bin gain to link). The stage adds no
look-ahead: latency is the section's, n_fft - 1 samples (19.98 ms / 9.98 ms at 48 kHz).
"""

from __future__ import annotations

import math

import numpy as np

from ..params import ParamSpec
from ..spectral_util import RealFFT
from ..stft import SpectralStage

PARAMS = (
    ParamSpec("voice.pitch_st", -12.0, 12.0, 0.0, "st", smoothing_ms=50.0,
              doc="pitch shift in semitones; the formants stay where they are"),
    ParamSpec("voice.formant_ratio", 0.7, 1.4, 1.0, "x", scale="log", smoothing_ms=50.0,
              doc="formant (spectral envelope) shift: envelope features at f move to ratio x f; pitch stays"),
)

LIFTER_MS = 2.0       # cepstral lifter on the peak-to-peak envelope: detail finer than ~500 Hz is dropped
_FLOOR = 1e-9         # magnitude floor before the log (a full-scale sine is ~n_fft / 4 on its bin)
_BIG = 1e9            # "no peak on this side" for the nearest-peak search
_TWO_PI = 2.0 * math.pi


class VoiceShift(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread)."""

    name = "voice"

    def __init__(self, table, phase_lock: bool = True):
        """phase_lock=False makes every bin its own peak: the plain per-bin phase vocoder (a measured
        baseline in benchmarks/voice_shift.py; the catalog's stage always locks)."""
        self.table = table
        self.phase_lock = phase_lock
        self._i_st = table.index("voice.pitch_st")
        self._i_fr = table.index("voice.formant_ratio")

    # -- control thread -------------------------------------------------------------------------
    def prepare(self, ctx):
        """Allocate every buffer: per-channel state (channels, n_bins), shared scratch (n_bins,) / (n_fft,)."""
        super().prepare(ctx)
        c, nb, n = ctx.channels, ctx.n_bins, ctx.n_fft
        f64 = np.float64
        self._fft = RealFFT(n)
        self.kf = np.arange(nb, dtype=f64)
        self.ki = np.arange(nb, dtype=np.int64)
        self._expected = (_TWO_PI * ctx.hop / n) * self.kf      # phase advance per hop of bin k's centre
        self._pik = math.pi * self.kf                          # analysis phase -> window-centre phase
        self._adv_to_bins = n / (_TWO_PI * ctx.hop)            # rad per hop -> frequency in bins
        q = np.arange(n)
        lq = max(1, int(round(LIFTER_MS * 1e-3 * ctx.sample_rate)))
        self._lifter = ((q <= lq) | (q >= n - lq)).astype(f64)
        # Per-channel state.
        self._prev_ph = np.zeros((c, nb), f64)     # last analysis phase (instantaneous frequency)
        self._phi = np.zeros((c, nb), f64)         # synthesis window-centre phase of each peak bin
        self._prev_owner = np.zeros((c, nb), np.int64)  # last frame's peak owning each bin
        # Scratch, one channel at a time.
        z = lambda: np.zeros(nb, f64)  # noqa: E731
        (self._mag, self._ph, self._lm, self._env, self._envw, self._adv, self._phc, self._t, self._u,
         self._fbin, self._pprev, self._pnext, self._rnext, self._own_f, self._phinew, self._outlog,
         self._outph, self._srcf, self._valid, self._gain) = (z() for _ in range(20))
        self._z = np.zeros(nb, np.complex128)
        self._cz = np.zeros(nb, np.complex128)
        self._cep = np.zeros(n, f64)
        self._cbuf = np.zeros(nb, np.complex64)
        self._b1 = np.zeros(nb, bool)
        self._b2 = np.zeros(nb, bool)
        self._peak = np.zeros(nb, bool)
        self._own = np.zeros(nb, np.int64)        # this frame's owning peak of each source bin
        self._pk = np.zeros(nb, np.int64)         # owning peak of each output bin
        self._src = np.zeros(nb, np.int64)        # source bin of each output bin
        self._d = np.zeros(nb, np.int64)          # shift in bins of each peak
        self._ti = np.zeros(nb, np.int64)
        self._lo_i = np.zeros(nb, np.int64)       # nearest peak at or below / at or above each bin
        self._hi_i = np.zeros(nb, np.int64)
        # Index maps derived from the ratios (recomputed when a ratio moves).
        self._sidx = np.zeros(nb, np.int64)       # round(k / r): source bin that decides output bin k's peak
        self._wi0 = np.zeros(nb, np.int64)        # floor(k / a) and its fraction: formant warp read position
        self._wfr = np.zeros(nb, f64)
        self.reset()

    def reset(self):
        self._prev_ph.fill(0.0)
        self._phi.fill(0.0)
        self._prev_owner[:] = self.ki
        self._r = math.nan
        self._a = math.nan

    # -- audio thread ---------------------------------------------------------------------------
    def _set_ratios(self, r: float, a: float) -> None:
        nb = self.kf.shape[0]
        t = self._t
        if r != self._r:
            np.multiply(self.kf, 1.0 / r, out=t)
            np.rint(t, out=t)
            np.clip(t, 0.0, nb - 1.0, out=t)
            np.copyto(self._sidx, t, casting="unsafe")
            self._r = r
        if a != self._a:
            np.multiply(self.kf, 1.0 / a, out=t)
            np.clip(t, 0.0, nb - 1.0, out=t)
            np.floor(t, out=self._wfr)
            np.clip(self._wfr, 0.0, nb - 2.0, out=self._wfr)
            np.copyto(self._wi0, self._wfr, casting="unsafe")
            np.subtract(t, self._wfr, out=self._wfr)
            self._a = a

    def _analyse(self) -> None:
        """From self._mag: self._lm = log|X|; self._own[k] = the peak owning bin k (the nearer of the last
        peak at or below k and the first at or above; k itself where the frame has no peak); self._env = the
        spectral envelope (natural log): the log magnitude interpolated linearly between peaks, so it runs
        over the harmonics rather than through the valleys between them, then cepstrally smoothed."""
        lm, kf, t, u = self._lm, self.kf, self._t, self._u
        np.add(self._mag, _FLOOR, out=lm)
        np.log(lm, out=lm)
        # Peaks: strict rise from the left, no rise to the right (the edges are never peaks).
        b1, b2, peak = self._b1, self._b2, self._peak
        np.greater(lm[1:-1], lm[:-2], out=b1[1:-1])
        np.greater_equal(lm[1:-1], lm[2:], out=b2[1:-1])
        np.logical_and(b1, b2, out=peak)
        peak[0] = peak[-1] = False   # b1, b2 are scratch elsewhere: their edges hold old values
        env, own = self._env, self._own
        if peak.any():
            pp, pn, lo, hi = self._pprev, self._pnext, self._own_f, self._rnext
            pp.fill(-_BIG)
            np.copyto(pp, kf, where=peak)
            np.maximum.accumulate(pp, out=lo)          # last peak at or below
            pn.fill(_BIG)
            np.copyto(pn, kf, where=peak)
            np.minimum.accumulate(pn[::-1], out=hi[::-1])  # first peak at or above
            np.less(lo, 0.0, out=b1)                   # below the first peak: use the first
            np.copyto(lo, hi, where=b1)
            np.greater(hi, kf[-1], out=b1)             # above the last peak: use the last
            np.copyto(hi, lo, where=b1)
            lo_i, hi_i = self._lo_i, self._hi_i
            np.copyto(lo_i, lo, casting="unsafe")
            np.copyto(hi_i, hi, casting="unsafe")
            # Envelope: lm[lo] + (lm[hi] - lm[lo]) * (k - lo) / (hi - lo), 0 where lo == hi.
            lm.take(lo_i, out=env, mode="clip")
            lm.take(hi_i, out=t, mode="clip")
            t -= env
            np.subtract(hi, lo, out=u)
            np.maximum(u, 1.0, out=u)
            t /= u
            np.subtract(kf, lo, out=u)
            t *= u
            env += t
            # Owner: the nearer of the two.
            np.subtract(kf, lo, out=t)
            np.subtract(hi, kf, out=u)
            np.less(u, t, out=b1)
            np.copyto(own, lo_i)
            np.copyto(own, hi_i, where=b1)
            self._first = float(hi_i[0])
        else:
            np.copyto(env, lm)
            np.copyto(own, self.ki)
            self._first = 0.0
        np.copyto(self._cz, env)
        self._fft.inverse(self._cz, self._cep)
        self._cep *= self._lifter
        self._fft.forward(self._cep, self._cz)
        np.copyto(env, self._cz.real)

    def _warped_envelope(self) -> None:
        """self._envw[k] = env(k / a), linear interpolation."""
        w, t = self._envw, self._t
        self._env.take(self._wi0, out=w, mode="clip")
        np.add(self._wi0, 1, out=self._ti)
        self._env.take(self._ti, out=t, mode="clip")
        t -= w
        t *= self._wfr
        w += t

    def process_frame(self, spec):
        v = self.table.value
        st = float(v[self._i_st])
        a = float(v[self._i_fr])
        shift = abs(st) > 1e-4
        warp = abs(a - 1.0) > 1e-6
        r = 2.0 ** (st / 12.0) if shift else 1.0
        self._set_ratios(r, a if warp else 1.0)
        for ch in range(spec.shape[0]):
            self._channel(spec[ch], ch, r, shift, warp)

    def _channel(self, row, ch, r, shift, warp):
        z, mag, ph, phc = self._z, self._mag, self._ph, self._phc
        np.copyto(z, row)
        np.abs(z, out=mag)
        np.arctan2(z.imag, z.real, out=ph)
        # Measured phase advance per hop (rad): expected + wrapped deviation.
        adv, t = self._adv, self._t
        prev_ph = self._prev_ph[ch]
        np.subtract(ph, prev_ph, out=adv)
        adv -= self._expected
        adv += math.pi
        np.remainder(adv, _TWO_PI, out=adv)
        adv -= math.pi
        adv += self._expected
        np.copyto(prev_ph, ph)
        np.add(ph, self._pik, out=phc)
        phi = self._phi[ch]
        prev_owner = self._prev_owner[ch]
        if not shift:
            # Keep the synthesis state on the input's phases: a shift starting on the next frame continues
            # each bin's own phase.
            np.copyto(phi, phc)
            prev_owner[:] = self.ki
            if warp:
                self._analyse()
                self._warped_envelope()
                g = self._gain
                np.subtract(self._envw, self._env, out=g)
                np.exp(g, out=g)
                np.copyto(self._cbuf, g)
                np.multiply(row, self._cbuf, out=row)
            return
        e_in = float(np.dot(mag, mag))
        if e_in == 0.0:  # an all-zero frame stays zero; the next shift continues from its phases
            np.copyto(phi, phc)
            prev_owner[:] = self.ki
            return
        self._analyse()
        if warp:
            self._warped_envelope()
        else:
            np.copyto(self._envw, self._env)
        lm, kf, u, b1, b2 = self._lm, self.kf, self._u, self._b1, self._b2
        own = self._own
        if not self.phase_lock:
            np.copyto(own, self.ki)
        # True frequency of each bin in bins (peak bins matter), kept within a bin of the bin itself.
        fbin = self._fbin
        np.multiply(adv, self._adv_to_bins, out=fbin)
        np.subtract(kf, 1.0, out=t)
        np.add(kf, 1.0, out=u)
        np.maximum(fbin, t, out=fbin)
        np.minimum(fbin, u, out=fbin)
        # Synthesis phase of each peak: the previous owner's phase + r x its measured advance.
        phinew = self._phinew
        phi.take(prev_owner, out=phinew, mode="clip")
        np.multiply(fbin, r / self._adv_to_bins, out=t)
        phinew += t
        np.remainder(phinew, _TWO_PI, out=phinew)
        # Shift of each peak's region in whole bins.
        np.multiply(fbin, r - 1.0, out=t)
        np.rint(t, out=t)
        np.copyto(self._d, t, casting="unsafe")
        # Output bin k: the peak owning source bin round(k / r), and the bin it moved there from.
        pk, src, ti = self._pk, self._src, self._ti
        own.take(self._sidx, out=pk, mode="clip")
        self._d.take(pk, out=ti, mode="clip")
        np.subtract(self.ki, ti, out=src)
        srcf, valid = self._srcf, self._valid
        np.copyto(srcf, src)
        # Sources: neither DC nor what lies below the first peak's main lobe (rumble, DC leakage), which the
        # first peak's region would otherwise carry up into the voice's range.
        np.greater_equal(srcf, max(1.0, self._first - 2.0), out=b1)
        np.less_equal(srcf, kf[-1], out=b2)
        np.logical_and(b1, b2, out=b1)
        np.maximum(src, 0, out=src)
        np.minimum(src, self.ki[-1], out=src)
        own.take(src, out=ti, mode="clip")    # the source bin must lie in the same peak's region
        np.equal(ti, pk, out=b2)
        np.logical_and(b1, b2, out=b1)
        np.copyto(valid, b1)
        # Magnitude: excitation at the source bin on the (warped) envelope at the output bin.
        outlog = self._outlog
        np.subtract(lm, self._env, out=u)         # excitation (log)
        u.take(src, out=outlog, mode="clip")
        outlog += self._envw
        np.exp(outlog, out=outlog)
        outlog *= valid
        # Keep the frame's power: moved regions leave empty bins between them (r > 1) or overlap (r < 1),
        # which would change the level by up to -3 / +1 dB an octave up / down. Limited to +-6 dB, so a
        # frame whose peaks all moved past Nyquist is not blown up.
        e_out = float(np.dot(outlog, outlog))
        if e_out > 0.0:
            outlog *= min(max(math.sqrt(e_in / e_out), 0.5), 2.0)
        # Phase (window-centre): peak's synthesis phase + the source bin's offset to the peak; then back
        # to the frame-start reference of output bin k.
        outph = self._outph
        phinew.take(pk, out=outph, mode="clip")
        phc.take(src, out=t, mode="clip")
        outph += t
        phc.take(pk, out=t, mode="clip")
        outph -= t
        outph -= self._pik
        np.cos(outph, out=t)
        t *= outlog
        np.copyto(row.real, t)
        np.sin(outph, out=t)
        t *= outlog
        np.copyto(row.imag, t)
        np.copyto(phi, phinew)
        np.copyto(prev_owner, own)
