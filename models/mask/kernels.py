"""Compiled per-frame loops of the mask stage (``stage.py``), with numba (extra ``fast``; ``resculpt.dsp.jit``).

In numpy, one 5 ms hop of the live tier (48 kHz, 10 ms window: 241 bins) is several dozen ufunc calls around the
model: band analysis, fine features, the HF rule, the controls, the smoother, the band-to-bin interpolation, the gain
and the deep-filter taps, each on rows of 8-482 floats, where a call's overhead outweighs its arithmetic. These
loops do the same steps in four calls per hop (benchmarks/results/mask_df_live/rtf_runs/ has the chain's time with
and without them):

* :func:`band_db`: bin power -> band PSD per Hz -> dB. Each rfft bin lies in at most two of the 32 triangular bands
  (``BandMap``), so the (bins x 32) analysis product is two multiply-adds per bin.
* :func:`push_history`: the fine features' 32 ms look-back window moved on by one hop (non-finite samples -> 0)
  and windowed for the FFT.
* :func:`fine_db`: the fine features' power -> dB on the 31.25 Hz grid, at rates whose grid falls on the FFT bins
  (16, 48, 96 kHz: a scale per bin).
* :func:`apply_frame`: HF rule, contrast, creative inversion, limit, attack/release, mix, the band gains
  interpolated to bins (again two per bin), the gain, and the deep filter's history and taps.

The numbers: the same steps in the same order in float32, except that |X|^2 is re^2 + im^2 (numpy's abs() takes a
hypot first) and the band sums add bins in order where numpy's BLAS product groups them its own way, so the output
agrees with the numpy code to float32 rounding (tests/test_mask_kernels.py holds it within -120 dB on speech). Every array is the caller's: the loops allocate nothing.
"""

from __future__ import annotations

import math

import numpy as np
from resculpt.dsp import jit as _jit

AVAILABLE = _jit.available("mask")

_LN10_10 = np.float32(math.log(10.0) / 10.0)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_INF = np.float32(np.inf)
_TEN = np.float32(10.0)


def sparse_pairs(mat: np.ndarray):
    """The (at most) two nonzero bands of each bin of ``mat`` (n_bins, n_bands): (j0, j1) int64 and their weights
    (w0, w1) float32, each (n_bins,); a bin with one band has w1 = 0 (j1 = j0), a bin with none
    w0 = w1 = 0. None when some bin has more than two (the stage then runs its numpy code)."""
    nb = mat.shape[0]
    j0, j1 = np.zeros(nb, np.int64), np.zeros(nb, np.int64)
    w0, w1 = np.zeros(nb, np.float32), np.zeros(nb, np.float32)
    for k in range(nb):
        nz = np.flatnonzero(mat[k])
        if nz.size > 2:
            return None
        if nz.size:
            j0[k] = j1[k] = nz[0]
            w0[k] = mat[k, nz[0]]
        if nz.size == 2:
            j1[k] = nz[1]
            w1[k] = mat[k, nz[1]]
    return j0, j1, w0, w1


def _band_db(spec_f, j0, j1, w0, w1, psd, db, eps):
    """spec_f (channels, 2 n_bins) float32 (the spectrum's interleaved re, im) -> psd (rows, n_bands) the band PSD
    per Hz (rows 1 < channels: the channels' powers summed, the 1/channels folded into w0, w1) and db (rows, n_bands)
    = 10 log10(psd + eps). Returns False, with db untouched, when a band is not finite (a NaN/Inf or huge bin: the
    caller cleans the spectrum and runs its numpy code)."""
    rows, nbands = psd.shape
    nch = spec_f.shape[0]
    nb = j0.shape[0]
    psd[:, :] = _ZERO
    for ch in range(nch):
        r = 0 if rows == 1 else ch
        for k in range(nb):
            re = spec_f[ch, 2 * k]
            im = spec_f[ch, 2 * k + 1]
            p = re * re + im * im
            psd[r, j0[k]] += w0[k] * p
            psd[r, j1[k]] += w1[k] * p
    for r in range(rows):
        for b in range(nbands):
            if not math.isfinite(psd[r, b]):
                return False
    for r in range(rows):
        for b in range(nbands):
            db[r, b] = _TEN * np.float32(math.log10(psd[r, b] + eps))
    return True


def _push_history(buf, src, start, win, frame):
    """buf (channels, L) float64: the look-back window moved on by one hop, the newest hop of src (channels, n)
    float32, src[:, start:], appended (non-finite -> 0); frame (channels, L) float64 <- buf x win (channels, L)."""
    nch, L = buf.shape
    hop = src.shape[1] - start
    for ch in range(nch):
        for i in range(L - hop):
            buf[ch, i] = buf[ch, i + hop]
        for i in range(hop):
            v = src[ch, start + i]
            buf[ch, L - hop + i] = v if math.isfinite(v) else 0.0
        for i in range(L):
            frame[ch, i] = buf[ch, i] * win[ch, i]


def _fine_db(spec, scale, out, eps):
    """spec (channels, >= used) complex128 -> out (rows, used) float32 = 10 log10(sum over the row's channels of
    |X|^2 x scale + eps); scale (rows, used) float32 (the PSD scale, and 1/channels when rows < channels)."""
    rows, used = out.shape
    nch = spec.shape[0]
    out[:, :] = _ZERO
    for ch in range(nch):
        r = 0 if rows == 1 else ch
        for k in range(used):
            x = spec[ch, k]
            out[r, k] += np.float32(x.real * x.real + x.imag * x.imag)
    for r in range(rows):
        for k in range(used):
            out[r, k] = _TEN * np.float32(math.log10(out[r, k] * scale[r, k] + eps))


def _apply_frame(spec_f, push_f, g, db, nf, nf_ring, nf_hold, ring_pos, gs, gain, j0, j1, w0, w1, outside, silent, rise,
                 neg_oversub, n_learned,
                 n_valid, pres_lo, contrast, mode, floor, k_att, k_rel, pick_max, mix, hist_f, taps_f, df_gain,
                 df_push, df_apply):
    """One frame's gains applied in place to spec_f (channels, 2 n_bins) float32 (the spectrum's interleaved re,
    im). g (rows, n_bands): bands < n_learned hold the model's gains; the rest get the HF rule against the floor nf
    (rows, n_bands) dB from db (rows, n_bands) dB, tracked as the stage's _hf_floor does (nf_ring (D, rows,
    n_bands) the floors before the last D frames, slot ring_pos the oldest; nf_hold (rows,) frames left to hold;
    silent: the dB at or below which every band of a row means digital silence; +inf: no floor yet, rule 1);
    bands >= n_valid are 1.
    Then per band: ^contrast, inverted in creative mode (mode 2), limited at floor, smoothed into gs (attack k_att
    when rising, release k_rel when falling; pick_max: k_att >= k_rel), mixed toward 1 into gain (rows, n_bands).
    Bins get the two-band interpolation (j0, j1, w0, w1), 1 where outside (n_bins,) is nonzero. Deep filter (hist_f
    (channels, N, 2 K) the newest N input spectra's lowest K bins, taps_f (rows, N, 2 K), df_gain (K,)): df_push
    moves the history on by push_f (channels, >= 2 K), the newest input spectrum (spec_f itself without look-ahead;
    with it, spec_f is the spectrum L frames back), df_apply adds sum_j C[j, k] X[j, k] df_gain[k] to bin k
    (after it)."""
    rows, nbands = g.shape
    nch = spec_f.shape[0]
    nb = j0.shape[0]
    for r in range(rows):
        p = g[r, pres_lo]
        for b in range(pres_lo + 1, n_learned):
            p = max(p, g[r, b])
        heard = False
        for b in range(nbands):
            if db[r, b] > silent:
                heard = True
                break
        if not heard:
            for b in range(n_learned, nbands):
                v = nf_ring[ring_pos, r, b]
                nf[r, b] = v
                for j in range(nf_ring.shape[0]):
                    nf_ring[j, r, b] = v
            nf_hold[r] = nf_ring.shape[0]
        else:
            hold = nf_hold[r] > 0
            if hold:
                nf_hold[r] -= 1
            for b in range(n_learned, nbands):
                nf_ring[ring_pos, r, b] = nf[r, b]
                if not hold:
                    nf[r, b] = min(db[r, b], nf[r, b] + rise)
        for b in range(n_learned, nbands):
            d = db[r, b]
            if b >= n_valid:
                g[r, b] = _ONE
                continue
            if nf[r, b] == _INF:
                t = _ONE
            else:
                t = np.float32(math.exp((nf[r, b] - d) * _LN10_10)) * neg_oversub + _ONE
            if mode == 1:
                g[r, b] = max(p, t)
            else:
                t = max(t, _ZERO)
                g[r, b] = min(p, t)
        for b in range(nbands):
            x = g[r, b]
            if contrast != _ONE:
                x = np.float32(x ** contrast)
            if mode == 2:
                x = _ONE - x
            x = max(x, floor)
            g[r, b] = x
            d = x - gs[r, b]
            a = d * k_att
            c = d * k_rel
            if pick_max:
                gs[r, b] += max(c, a)
            else:
                gs[r, b] += min(c, a)
            gain[r, b] = gs[r, b] * mix + (_ONE - mix) if mix != _ONE else gs[r, b]
    n_df = hist_f.shape[1]
    k2 = hist_f.shape[2]
    for ch in range(nch):
        r = 0 if rows == 1 else ch
        if df_push:
            for j in range(n_df - 1):
                for i in range(k2):
                    hist_f[ch, j, i] = hist_f[ch, j + 1, i]
            for i in range(k2):
                hist_f[ch, n_df - 1, i] = push_f[ch, i]
        for k in range(nb):
            if outside[k]:
                continue
            gk = w0[k] * gain[r, j0[k]] + w1[k] * gain[r, j1[k]]
            spec_f[ch, 2 * k] *= gk
            spec_f[ch, 2 * k + 1] *= gk
        if df_apply:
            for k in range(k2 // 2):
                sr = _ZERO
                si = _ZERO
                for j in range(n_df):
                    xr = hist_f[ch, j, 2 * k]
                    xi = hist_f[ch, j, 2 * k + 1]
                    cr = taps_f[r, j, 2 * k]
                    ci = taps_f[r, j, 2 * k + 1]
                    sr += xr * cr - xi * ci
                    si += xr * ci + xi * cr
                spec_f[ch, 2 * k] += sr * df_gain[k]
                spec_f[ch, 2 * k + 1] += si * df_gain[k]


def warm_up() -> bool:
    """Import numba and make the loops' dispatchers (once per process). They compile on their first call for each
    set of operand types and layouts, which the stage makes in prepare() on its own arrays (control thread; under a
    second from numba's disk cache), so no audio callback compiles. Returns whether the loops are ready (False
    without numba: the stage runs its numpy code)."""
    return _jit.warm_module(globals(), _bind)


def _bind(jit):
    global band_db, push_history, fine_db, apply_frame
    band_db, push_history, fine_db, apply_frame = jit(_band_db), jit(_push_history), jit(_fine_db), jit(_apply_frame)


# The compiled loops, set by warm_up().
_warm = False
band_db = push_history = fine_db = apply_frame = None
