"""The VoicePrivacy McAdams anonymizer (LPC pole-angle warping) as a spectral stage.

Reference formulation (VoicePrivacy Challenge 2020 baseline B2, Patino et al., "Speaker
anonymisation using the McAdams coefficient", Interspeech 2021; ``anonymise_dir_mcadams.py``), on
16 kHz speech: frames of 20 ms every 10 ms under a sqrt-Hann window; per frame an order-20 LPC
polynomial A(z) (librosa.lpc, Burg's method); its poles; every complex pole pair r·e^{±jφ} moved to
r·e^{±jφ^α} (φ in radians at 16 kHz, α = 0.8; real poles stay); the frame's LPC residual (the frame
filtered by A) filtered by 1/A' (A' from the moved poles), windowed again and overlap-added; the
whole output normalised to its peak. φ^α is a warp of the frequency axis about φ = 1 rad
(2546 Hz at 16 kHz): with α < 1, formants below it move up (700 Hz -> 906 Hz), those above move down.

Here, in the shared STFT (20 ms sqrt-Hann window in the default config, 10 ms in low-latency, 5 ms
hop), for each frame:

- the autocorrelation of the frame band-limited to 0..8 kHz: the inverse FFT of the power spectrum's
  bins up to 8 kHz, which is the autocorrelation of the frame at an effective rate ``fs_lpc`` ~= 16 kHz
  (exactly 16 kHz when the bin spacing divides 8 kHz), so the analysis is that of the reference at
  every sample rate; lag 0 gets a -70 dB white-noise floor (x 1 + 1e-7) so a pure tone stays a
  well-conditioned polynomial;
- LPC of order 20 by Levinson-Durbin (autocorrelation method: its polynomial is minimum-phase
  whatever the frame, where Burg's may not be; both place the poles of a 20 ms speech frame alike);
- the 20 roots of A by Aberth-Ehrlich iteration started from the previous frame's roots (typically
  2-5 iterations), so no LAPACK call allocates on the audio thread;
- each complex root r·e^{jθ} (|Im| > 1e-8) moved to r·e^{j·sign(θ)·θ'}, θ' the angle whose frequency
  at 16 kHz is |φ|^α (φ = θ·fs_lpc/16000, then θ' = φ^α·16000/fs_lpc, at most π);
- the frame's spectrum multiplied by |A(e^{jω})| / |A'(e^{jω})| below 8 kHz: this is the magnitude
  response of the reference's residual-then-resynthesis (frame · A / A'); above 8 kHz (rates above
  16 kHz), where the reference has no signal, by the gain at 8 kHz, so the spectrum stays continuous.
  The gain is real and non-negative (zero-phase): the reference's filtering adds the minimum-phase
  phase of A/A' per frame, which a 20 ms window hears as nothing but a small group delay near formants.

Level: A and A' are both monic and minimum-phase, so the mean of log|A/A'| over frequency is 0 dB
(Jensen's formula): the transform keeps the geometric-mean level of each frame; no peak
normalisation (the reference's is offline, over the whole file).

Linked stereo: one polynomial from the channels' summed power, one gain for every channel;
unlinked: one per channel. Silent frames (no power below 8 kHz) pass unchanged.

Latency: no look-ahead; the stage adds nothing to the STFT section's n_fft - 1 (19.98 ms at 48 kHz in
the default config, 9.98 ms in low-latency).
"""

from __future__ import annotations

import numpy as np

from ..params import ParamSpec
from ..spectral_util import RealFFT, apply_gain
from ..stft import SpectralStage

PARAMS = (
    ParamSpec("mcadams.alpha", 0.5, 1.0, 0.8, "", smoothing_ms=50.0,
              doc="McAdams coefficient: pole angles phi -> phi^alpha (radians at 16 kHz); 1 leaves the voice as it is"),
)

ORDER = 20             # LPC order of the reference (at 16 kHz)
REF_RATE = 16000.0     # the reference's sample rate: angles phi are radians at this rate
BAND_HZ = 8000.0       # analysis band: 0 .. REF_RATE / 2
MAX_ITER = 60          # Aberth iterations per frame before a cold restart
TOL = 1e-10            # largest root correction of a converged iteration (radians-scale: far below audible)
LAG0_FLOOR = 1e-7      # lag-0 autocorrelation factor: a -70 dB white-noise floor
REAL_IMAG = 1e-8       # a root with |Im| below this is real and stays
UNSTICK = 1e-3         # radians the warm-start roots are turned by (see McAdams._aberth)


def warp_angle(phi: np.ndarray, alpha: float) -> np.ndarray:
    """The reference's pole-angle map: φ -> sign(φ)·|φ|^α, φ in radians at 16 kHz, at most π in modulus."""
    phi = np.asarray(phi, np.float64)
    return np.sign(phi) * np.minimum(np.abs(phi) ** alpha, np.pi)


def warp_hz(f_hz, alpha: float):
    """Where the McAdams transform moves a pole at ``f_hz`` (Hz): 16000/(2π)·(2π·f/16000)^α."""
    return warp_angle(2.0 * np.pi * np.asarray(f_hz, np.float64) / REF_RATE, alpha) * REF_RATE / (2.0 * np.pi)


def _initial_roots(p: int) -> np.ndarray:
    """Aberth's usual start: p points on a circle of radius 0.9, turned off the real axis."""
    return (0.9 * np.exp(1j * (2.0 * np.pi * np.arange(p) / p + 0.4))).astype(np.complex128)


class McAdams(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, scaled in place by |A| / |A'|.

    State per analysis row (1 when linked, else one per channel): the previous frame's 20 LPC roots
    (complex128 (rows, 20)), the warm start of the next root search.
    """

    name = "mcadams"

    def __init__(self, table):
        self.table = table
        self._i_alpha = table.index("mcadams.alpha")

    def prepare(self, ctx):
        super().prepare(ctx)
        p = ORDER
        spacing = ctx.sample_rate / ctx.n_fft
        # Bins 0 .. K-1 cover 0 .. ~8 kHz; their inverse FFT of length m = 2(K-1) is the band's
        # autocorrelation at fs_lpc = spacing * m.
        K = min(ctx.n_bins, int(np.floor(BAND_HZ / spacing + 1e-9)) + 1)
        m = 2 * (K - 1)
        self._K, self._m = K, m
        self.fs_lpc = spacing * m
        rows = 1 if ctx.linked else ctx.channels
        self._rows = rows
        self._ifft = RealFFT(m)
        self._pow = np.zeros((ctx.channels, K), np.float32)     # |X|^2 per channel
        self._im = np.zeros((ctx.channels, K), np.float32)      # imag(X)^2
        self._psum = np.zeros(K, np.float32)                   # linked: power summed over channels
        self._cpow = np.zeros((rows, K), np.complex128)         # power as the inverse FFT's input
        self._ac = np.zeros((rows, m), np.float64)              # autocorrelation, lags 0 .. m-1
        self._roots = np.zeros((rows, p), np.complex128)        # warm start / this frame's roots
        self._z0 = _initial_roots(p)
        self._turn = complex(np.exp(1j * UNSTICK))
        # Levinson: the polynomial a (p + 1,) and, per step i, the views its recursion reads (made once).
        self._a = np.zeros(p + 1, np.float64)
        self._a_buf = np.zeros(p + 1, np.float64)
        self._a_head = [self._a[1:i] for i in range(p + 1)]              # a[1 .. i-1]
        self._a_rev = [self._a[i - 1 : 0 : -1] if i > 1 else self._a[1:1] for i in range(p + 1)]
        self._a_tmp = [self._a_buf[: max(i - 1, 0)] for i in range(p + 1)]
        # Lags p .. 0 in a contiguous copy (np.dot copies a reversed view into a new array), so that
        # r[i-1], ..., r[1] is the forward slice rev[p-i+1 : p].
        self._rev = np.zeros(p + 1, np.float64)
        self._rrev = [self._rev[p - i + 1 : p] for i in range(p + 1)]
        self._karange = np.arange(1, p + 1, dtype=np.float64)
        self._dtmp = np.zeros(p, np.float64)
        # Aberth: column 0 holds z^p + a1 z^(p-1) + ... + ap in ascending powers, column 1 its derivative.
        self._cd = np.zeros((p + 1, 2), np.complex128)
        self._zm = np.ones((p, p + 1), np.complex128)           # [1, z, z, ..., z] per root
        self._pw = np.zeros((p, p + 1), np.complex128)          # z^0 .. z^p per root
        self._pd = np.zeros((p, 2), np.complex128)              # p(z), p'(z) per root
        self._nw = np.zeros(p, np.complex128)                   # Newton step p/p'
        self._dd = np.zeros((p, p), np.complex128)              # z_i - z_j, then its reciprocal
        self._zc = np.zeros((p, p), np.complex128)
        self._zr = np.zeros((p, p), np.complex128)
        self._dd_diag = self._dd.reshape(-1)[:: p + 1]
        self._s = np.zeros(p, np.complex128)
        self._w = np.zeros(p, np.complex128)
        self._wa = np.zeros(p, np.float64)
        # Warp: angle and radius of each root, their moved angle and the moved roots.
        self._ang = np.zeros(p, np.float64)
        self._rad = np.zeros(p, np.float64)
        self._phi = np.zeros(p, np.float64)
        self._real = np.zeros(p, bool)
        self._cz = np.zeros(p, np.complex128)
        self._zw = np.zeros(p, np.complex128)
        # Gain: e^{-jω_k} on the K analysis bins (ω_k = 2πk/m at fs_lpc), factors 1 - z e^{-jω}.
        # Full (K, p) operands: a broadcast operand makes numpy's ufunc loop allocate a ~100 KB buffer.
        self._emj = np.tile(np.exp(-2j * np.pi * np.arange(K) / m).reshape(K, 1), (1, p)).astype(np.complex128)
        self._ztile = np.zeros((K, p), np.complex128)
        self._fac = np.zeros((K, p), np.complex128)
        self._fabs = np.zeros((K, p), np.float64)
        self._fabs2 = np.zeros((K, p), np.float64)
        self._lg = np.zeros(K, np.float64)                      # |A| / |A'| on the analysis bins
        self._gain = np.ones((rows, ctx.n_bins), np.float32)
        self._cbuf = np.zeros((ctx.channels, ctx.n_bins), np.complex64)
        # A frame is silent below this lag-0 power (float64 sum of |X|^2 over the band).
        self._silent = 1e-20 * ctx.n_fft
        self.iterations = 0  # Aberth iterations of the last frame's last row (diagnostics)
        self.reset()

    def reset(self):
        self._roots[:] = self._z0
        self._gain.fill(1.0)

    def process_frame(self, spec):
        K = self._K
        alpha = float(self.table.value[self._i_alpha])
        # Row by row: a ufunc over the 2-D strided real/imag views of the band buffers its operands
        # (~1.5 kB per channel, a transient allocation on the audio thread); 1-D strided rows are not.
        for c in range(spec.shape[0]):
            row = spec[c, :K]
            np.multiply(row.real, row.real, out=self._pow[c])
            np.multiply(row.imag, row.imag, out=self._im[c])
        self._pow += self._im
        if self._rows == 1:
            np.add.reduce(self._pow, axis=0, out=self._psum)
            np.copyto(self._cpow[0], self._psum)
        else:
            np.copyto(self._cpow, self._pow)
        self._ifft.inverse(self._cpow, self._ac)
        for r in range(self._rows):
            self._row(r, alpha)
        apply_gain(spec, self._gain, self._cbuf)

    # -- per analysis row ----------------------------------------------------------------------
    def _row(self, r: int, alpha: float) -> None:
        ac = self._ac[r]
        gain = self._gain[r]
        if not ac[0] > self._silent or alpha >= 1.0:  # silence (or NaN): pass unchanged
            gain.fill(1.0)
            return
        if not self._levinson(r):
            gain.fill(1.0)
            return
        z = self._roots[r]
        if not self._aberth(z):
            z[:] = self._z0  # cold restart from the circle
            if not self._aberth(z):
                z[:] = self._z0
                gain.fill(1.0)
                return
        self._warp(z, alpha)
        # |A(e^{jω})| / |A'(e^{jω})| = product over roots of |1 - z e^{-jω}| / |1 - z' e^{-jω}|
        self._abs_factors(z, self._fabs)
        self._abs_factors(self._zw, self._fabs2)
        np.divide(self._fabs, self._fabs2, out=self._fabs)
        np.multiply.reduce(self._fabs, axis=1, out=self._lg)
        K = self._K
        np.copyto(gain[:K], self._lg, casting="same_kind")
        gain[K:] = gain[K - 1]

    def _levinson(self, r: int) -> bool:
        """Levinson-Durbin on lags 0..ORDER of row ``r``'s autocorrelation into the Aberth coefficients
        (self._cd). False if the recursion breaks down (a non-positive prediction error)."""
        p = ORDER
        ac = self._ac[r]
        ac[0] *= 1.0 + LAG0_FLOOR
        a = self._a
        a.fill(0.0)
        a[0] = 1.0
        err = float(ac[0])
        np.copyto(self._rev, ac[p::-1])
        rrev = self._rrev
        for i in range(1, p + 1):
            k = -(float(ac[i]) + float(np.dot(self._a_head[i], rrev[i]))) / err
            # a[j] += k * a[i - j] for j = 1 .. i-1 (through a scratch: the two slices overlap)
            np.multiply(self._a_rev[i], k, out=self._a_tmp[i])
            self._a_head[i] += self._a_tmp[i]
            a[i] = k
            err *= 1.0 - k * k
            if not err > 0.0:
                return False
        cd = self._cd
        np.copyto(cd[:, 0], a[::-1])            # coefficient of z^k in z^p A(z)
        np.multiply(a[p - 1 :: -1], self._karange, out=self._dtmp)
        np.copyto(cd[:p, 1], self._dtmp)        # ... in its derivative
        return True

    def _aberth(self, z) -> bool:
        """Refine the roots ``z`` (complex128 (ORDER,), in place) of z^p A(z) by Aberth-Ehrlich
        iteration; True once the largest correction is below TOL."""
        zm, pw, dd, diag = self._zm, self._pw, self._dd, self._dd_diag
        zc = z.reshape(-1, 1)
        # Real coefficients keep a conjugate-symmetric set of estimates symmetric (and a real one real) in
        # exact arithmetic: last frame's real pair that became a complex one, or the reverse, would only
        # split by rounding (~30 iterations). The warm start is turned by UNSTICK radians to break it.
        z *= self._turn
        for it in range(MAX_ITER):
            np.copyto(zm[:, 1:], zc)
            np.multiply.accumulate(zm, axis=1, out=pw)
            np.matmul(pw, self._cd, out=self._pd)   # p(z) and p'(z) per root
            np.divide(self._pd[:, 0], self._pd[:, 1], out=self._nw)
            np.copyto(self._zc, zc)  # z_i along rows, z_j along columns: contiguous operands (see _ztile)
            np.copyto(self._zr, z)
            np.subtract(self._zc, self._zr, out=dd)
            diag.fill(1.0)
            np.reciprocal(dd, out=dd)
            np.add.reduce(dd, axis=1, out=self._s)
            self._s -= 1.0  # the diagonal's 1/1
            # w = N / (1 - N * S)
            np.multiply(self._nw, self._s, out=self._w)
            np.subtract(1.0, self._w, out=self._w)
            np.divide(self._nw, self._w, out=self._w)
            z -= self._w
            np.abs(self._w, out=self._wa)
            self.iterations = it + 1
            worst = np.maximum.reduce(self._wa)
            if worst < TOL:
                return True
            if not worst < 1e6:  # diverged or NaN
                return False
        return bool(np.isfinite(z).all())

    def _warp(self, z, alpha: float) -> None:
        """self._zw <- the roots with complex ones' angles moved by :func:`warp_angle` (about 16 kHz)."""
        c = self.fs_lpc / REF_RATE  # radians at fs_lpc -> radians at 16 kHz
        np.arctan2(z.imag, z.real, out=self._ang)
        np.abs(z, out=self._rad)
        np.abs(self._ang, out=self._phi)
        self._phi *= c
        np.power(self._phi, alpha, out=self._phi)
        self._phi *= 1.0 / c
        np.minimum(self._phi, np.pi, out=self._phi)
        np.copysign(self._phi, self._ang, out=self._phi)
        np.abs(z.imag, out=self._wa)
        np.less(self._wa, REAL_IMAG, out=self._real)
        np.copyto(self._phi, self._ang, where=self._real)
        np.copyto(self._cz, self._phi)
        self._cz *= 1j
        np.exp(self._cz, out=self._cz)
        np.copyto(self._zw, self._rad)
        np.multiply(self._zw, self._cz, out=self._zw)

    def _abs_factors(self, z, out) -> None:
        """out (K, ORDER) <- |1 - z_i e^{-jω_k}| (at least 1e-30: a root on the unit circle at a bin)."""
        np.copyto(self._ztile, z)
        np.multiply(self._emj, self._ztile, out=self._fac)
        np.subtract(1.0, self._fac, out=self._fac)
        np.abs(self._fac, out=out)
        np.maximum(out, 1e-30, out=out)
