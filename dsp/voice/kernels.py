"""Compiled per-frame loops of the pitch shift (dsp/voice/shift.py) and the anon stage (dsp/voice/anon.py).

In numpy, a voiced frame of the anon stage is about 120 calls on 481-bin rows (48 kHz, 20 ms window) plus
about 25 for the F0 search every other frame; each costs ~1 us of call overhead, more than its arithmetic,
and no single call dominates (docs/anonymization.md, "Cost"). These loops do the same steps in one call
each, with numba (extra ``fast``):

* :func:`peaks_envelope`: the peaks of the log magnitude, each bin's owning peak and the peak-to-peak
  envelope (``VoiceShift._analyse`` up to its cepstral smoothing). Integer and float32 arithmetic in the
  numpy code's order: the same numbers.
* :func:`smooth`: the cepstral smoothing from the half spectrum (:func:`half_smoothing`): half the
  multiply-adds and matrix bytes of the numpy code's two products; the same envelope to ~4e-7.
* :func:`shift_frame`: everything ``VoiceShift._shift`` does after the envelopes: phase advance, true
  frequency, synthesis phase and shift of each peak, the output bins' sources, gains and phasors. The
  phase terms are computed on peak bins only (the bins that own themselves, the only ones read), so
  arctan2/cos/sin run on ~100 bins instead of 481.
* :func:`warp_timbre`, :func:`detail_timbre`: the anon stage's warped envelope, long-term means, timbre
  correction and detail flattening; :func:`warp_map`: its envelope read positions (the same numbers).
* :func:`f0_frame`, :func:`pick_lag`: the F0 search's decimation, energies and pick around numpy's FFTs
  (the same F0 track, bit for bit).
* :func:`harmonic_frame`: the anon stage's harmonic shift of a low voice's voiced frames (a least-squares fit of
  the harmonics, resynthesized at the output F0; ``AnonVoice._harmonic``). Compiled only: it has no numpy
  code, and without numba those frames take the peak-locked shift.
* :func:`band_voicing`, :func:`excite_frame`: the anon stage's synthesized excitation (``anon.excite_pct``):
  the input's periodicity per band and the harmonic-plus-noise frame (``AnonVoice._band_voicing`` /
  ``_excite`` in numpy: the same numbers to float32 rounding, the noise generator's states bit for bit).

libm's arctan2/cos/sin/exp and these loops' sums round differently from numpy's vectorised functions and
BLAS: the anon stage's output agrees with its numpy code to float32 rounding (tests/test_voice_kernels.py).

Optional: without numba ``AVAILABLE`` is False and the stages run their numpy code;
``RESCULPT_NO_KERNELS=1`` in the environment forces it. The loops allocate nothing (every array is the
caller's); :func:`warm_up` compiles them from a stage's prepare() (cached on disk next to this module where
writable).
"""

from __future__ import annotations

import math

import numpy as np
from resculpt.dsp import jit as _jit

# numba (extra "fast") is imported by warm_up(), from the first prepare() of a stage that uses the loops:
# importing it costs ~0.5 s, which a process that runs no such stage does not pay.
AVAILABLE = _jit.available("voice")

_PI = np.float32(math.pi)
_TWO_PI = np.float32(2.0 * math.pi)
_INV_TWO_PI = np.float32(1.0 / (2.0 * math.pi))
_ONE = np.float32(1.0)
_M_ONE = np.float32(-1.0)
_ZERO = np.float32(0.0)


def _peaks_envelope(lm, env, own, lo, hi):
    """lm (nb,) float32 log magnitude -> env (nb,) float32 the peak-to-peak envelope (before smoothing),
    own (nb,) int64 each bin's owning peak (k itself when the frame has no peak); lo/hi (nb,) int64
    scratch. Returns the first peak's bin (0 without peaks). A peak: strict rise from the left, no rise to
    the right, never bin 0 or nb - 1."""
    nb = lm.shape[0]
    cur = 0
    first = 0
    for k in range(nb):
        if 0 < k < nb - 1 and lm[k] > lm[k - 1] and lm[k] >= lm[k + 1]:
            cur = k
            if first == 0:
                first = k
        lo[k] = cur
    if cur == 0:
        for k in range(nb):
            env[k] = lm[k]
            own[k] = k
        return 0
    last = cur
    cur = nb
    for k in range(nb - 1, -1, -1):
        if 0 < k < nb - 1 and lm[k] > lm[k - 1] and lm[k] >= lm[k + 1]:
            cur = k
        hi[k] = cur
    for k in range(nb):
        a = max(lo[k], first)
        b = min(hi[k], last)
        u = np.float32(max(b - a, 1))
        t = (lm[b] - lm[a]) / u
        t = t * np.float32(k - a)
        env[k] = lm[a] + t
        own[k] = b if (k - a) + (k - b) > 0 else a
    return first


def _shift_frame(row, zpc, unrot, env, envw, mag, own, prev_owner, phi, phinew, sidx, kf, d, q, g, src, pk,
                 zs, adv, ra, rm1, first, e_in, tiny):
    """One channel's shifted frame, in place: row (nb,) complex64 in -> out; zpc (nb,) complex64 conj of the
    last input spectrum in -> conj of this one out; phi (nb,) float32 the peaks' synthesis phases read at
    prev_owner (nb,) int64; phinew (nb,) float32 this frame's, written at the peak bins (own[p] == p);
    env / envw (nb,) float32 the envelope and the one the output takes; mag (nb,) float32 |row|; own (nb,)
    int64 owning peaks; sidx (nb,) int64 round(k / r) clipped; kf (nb,) float32 bin numbers; d, src, pk
    (nb,) int64, q, zs (nb,) complex64 and g (nb,) float32 scratch. adv, ra, rm1: float32 rad-per-hop to
    bins, r / adv, r - 1; first: the first peak's bin; e_in: the input frame's power (float)."""
    nb = row.shape[0]
    for p in range(nb):
        if own[p] != p:
            continue
        # The phase advance from the product taken in float64: one rounding of the angle, whatever the level.
        w = np.complex128(zpc[p]) * np.complex128(row[p]) * np.complex128(unrot[p])
        fb = np.float32(math.atan2(w.imag, w.real)) * adv
        fb = min(max(fb, _M_ONE), _ONE)  # a NaN stays NaN (first argument), as through np.maximum/minimum
        fb = fb + kf[p]
        ph = phi[prev_owner[p]] + fb * ra
        m1 = np.rint(fb * rm1)
        ph = ph - np.rint(ph * _INV_TWO_PI) * _TWO_PI
        phinew[p] = ph
        d[p] = np.int64(m1)
        t = (m1 + kf[p]) * _PI + ph
        q[p] = np.complex64(complex(np.cos(t), np.sin(t))) * row[p].conjugate()
    lowest = max(1, first - 2)
    e_out = 0.0
    for k in range(nb):
        p = own[sidx[k]]
        s = k - d[p]
        sc = min(max(s, 0), nb - 1)
        pk[k] = p
        src[k] = sc
        if s < lowest or s > nb - 1 or own[sc] != p:
            g[k] = _ZERO
        else:
            gk = np.float32(np.exp(envw[k] - env[sc]))
            g[k] = gk
            m = mag[sc] * gk
            e_out += float(m) * float(m)
    scale = np.float32(1.0)
    if e_out > 0.0:
        scale = np.float32(min(max(math.sqrt(e_in / e_out), 0.5), 2.0))
    for k in range(nb):
        p = pk[k]
        c = (g[k] * scale) * (_ONE / (mag[p] + tiny))
        zs[k] = (row[src[k]] * q[p]) * np.complex64(complex(c, 0.0))
    for k in range(nb):
        zpc[k] = row[k].conjugate()
        row[k] = zs[k]


def _warp_timbre(env, emean, ke, wi0, wfr, envw, mean, corr, tgt, band, top, voiced, k, lo, hi):
    """The anon stage's envelope means, warped envelope and timbre correction (AnonVoice._warped_envelope):
    emean += ke (env - emean) when ke > 0; envw = env read at wi0 + wfr (linear interpolation); in a voiced
    frame mean += k (envw - mean) and corr = tgt - mean, its band-weighted mean (band (nb,) float32, summing
    to 1) removed, limited to [lo, hi], held above bin top. All (nb,) float32; ke, k, lo, hi float32."""
    nb = env.shape[0]
    if ke > _ZERO:
        for j in range(nb):
            emean[j] = emean[j] + (env[j] - emean[j]) * ke
    for j in range(nb):
        e0 = env[wi0[j]]
        envw[j] = e0 + (env[wi0[j] + 1] - e0) * wfr[j]
    if not voiced:
        return
    s = 0.0
    for j in range(nb):
        mean[j] = mean[j] + (envw[j] - mean[j]) * k
        c = tgt[j] - mean[j]
        corr[j] = c
        s += float(c) * float(band[j])
    s32 = np.float32(s)
    for j in range(top + 1):
        c = corr[j] - s32
        c = min(max(c, lo), hi)
        corr[j] = c
    for j in range(top + 1, nb):
        corr[j] = corr[top]


def _detail_timbre(w, mean, corr, hfw, detail, timbre):
    """w (nb,) float32 in place: w += (mean - w) hfw detail (when detail > 0), then w += corr timbre (when
    timbre is not None); all (nb,) float32, detail and timbre float32."""
    nb = w.shape[0]
    if detail > _ZERO:
        for j in range(nb):
            w[j] = w[j] + ((mean[j] - w[j]) * hfw[j]) * detail
    if timbre >= _ZERO:
        for j in range(nb):
            w[j] = w[j] + corr[j] * timbre


def half_smoothing(b1, b2):
    """Control thread: VoiceShift's cepstral smoothing matrices b1 (nq, nb), b2 (nb, nq) float32 split for
    :func:`smooth`: (b1e (H, nq_even), b1o (H, nq_odd), b2e (nq_even, H), b2o (nq_odd, H)), H = ceil(nb / 2),
    transposed so that every product runs as sums of scaled rows, which the compiler vectorises.

    Bin k and bin nb - 1 - k (frequencies f and fs/2 - f) see the same cosines, even quefrencies with the same
    sign and odd ones with the opposite: cos(2 pi q (n/2 - k) / n) = (-1)^q cos(2 pi q k / n). So the even
    quefrencies come from the sums env(k) + env(nb - 1 - k), the odd ones from the differences, over the
    lower half of the bins only, and the upper half of the smoothed envelope from the same two partial sums:
    half the multiply-adds and half the matrix bytes (187 KB instead of 374 KB at 48 kHz)."""
    nb = b1.shape[1]
    h = (nb + 1) // 2
    b1e = np.ascontiguousarray(b1[0::2, :h].T)
    b1o = np.ascontiguousarray(b1[1::2, :h].T)
    b2e = np.ascontiguousarray(b2[:h, 0::2].T)
    b2o = np.ascontiguousarray(b2[:h, 1::2].T)
    return b1e, b1o, b2e, b2o


def _smooth(env, b1e, b1o, b2e, b2o, sv, dv, ce, co, ee, eo):
    """env (nb,) float32 in place: its cepstral smoothing B2 (B1 env), from :func:`half_smoothing`'s
    matrices; sv, dv, ee, eo (H,) and ce (nq_even,), co (nq_odd,) float32 scratch."""
    nb = env.shape[0]
    h = b1e.shape[0]
    for k in range(h):
        p = nb - 1 - k
        if p != k:
            sv[k] = env[k] + env[p]
            dv[k] = env[k] - env[p]
        else:
            sv[k] = env[k]
            dv[k] = env[k]
    ce[:] = _ZERO
    co[:] = _ZERO
    for k in range(h):
        s = sv[k]
        d = dv[k]
        for j in range(ce.shape[0]):
            ce[j] += b1e[k, j] * s
        for j in range(co.shape[0]):
            co[j] += b1o[k, j] * d
    ee[:] = _ZERO
    eo[:] = _ZERO
    for j in range(ce.shape[0]):
        c = ce[j]
        for k in range(h):
            ee[k] += b2e[j, k] * c
    for j in range(co.shape[0]):
        c = co[j]
        for k in range(h):
            eo[k] += b2o[j, k] * c
    for k in range(h):
        env[k] = ee[k] + eo[k]
        p = nb - 1 - k
        if p != k:
            env[p] = ee[k] - eo[k]


def _warp_map(phi, inv_a, inv_alpha, to_bins, wi0, wi1, wfr):
    """The anon stage's envelope read position (AnonVoice._set_warp, VoiceShift._warp_from): bin k reads the
    envelope at t = (phi[k] inv_a)^inv_alpha to_bins (the power skipped when inv_alpha is 1), clamped to the
    spectrum: wi0 (nb,) int64 the bin below, wi1 = wi0 + 1, wfr (nb,) float32 the fraction. phi (nb,)
    float64 bin frequencies as angles at 16 kHz; float64 arithmetic in the numpy code's order."""
    nb = phi.shape[0]
    for k in range(nb):
        t = phi[k] * inv_a
        if inv_alpha != 1.0:
            t = t**inv_alpha
        t = min(t * to_bins, nb - 1.0)
        w = min(math.floor(t), nb - 2.0)
        wi0[k] = np.int64(w)
        wi1[k] = wi0[k] + 1
        wfr[k] = np.float32(t - w)


def _f0_frame(inbuf, D, m, x, cs, dc, dc_frames):
    """The F0 search's input: x[:m] (float64, of a (2m,) zero-padded buffer) = channels summed, decimated by
    sums of D samples (float32 sums in order, as the numpy code), less the running DC estimate dc[0] (updated
    here as the numpy code does, time constant dc_frames calls; dc[1] 1 once set); cs (m,) float64 = cumulative
    energy. Returns the frame's energy."""
    for i in range(m):
        acc = inbuf[0, i * D]
        for dd in range(1, D):
            acc = acc + inbuf[0, i * D + dd]
        for c in range(1, inbuf.shape[0]):
            for dd in range(D):
                acc = acc + inbuf[c, i * D + dd]
        x[i] = acc
    s = 0.0
    for i in range(m):
        s += x[i]
    mean = s / m
    if math.isfinite(mean):
        if dc[1] != 0.0:
            dc[0] = dc[0] + (mean - dc[0]) / dc_frames
        else:
            dc[0] = mean
        dc[1] = 1.0
    d = dc[0]
    e = 0.0
    for i in range(m):
        x[i] = x[i] - d
        e += x[i] * x[i]
        cs[i] = e
    return e


def _pick_lag(ac, cs, lo, hi, e, cost, sc, voiced):
    """The F0 search's pick (AnonVoice._pick): sc (hi - lo + 1,) float64 <- the normalised correlation of lags
    lo..hi (ac: linear autocorrelation, cs: cumulative energy, e: energy) with the lag-0 lobe set to -1, plus
    cost; returns the refined best lag (0.0 when unvoiced)."""
    m = cs.shape[0]
    n = hi - lo + 1
    j = -1
    for i in range(n):
        lag = lo + i
        eh = cs[m - lag - 1] * (e - cs[lag - 1])
        eh = max(eh, 1e-30)
        sc[i] = ac[lag] / math.sqrt(eh)
        if j < 0 and sc[i] < voiced:
            j = i
    if j < 0:
        return 0.0
    best = 0
    for i in range(n):
        if i < j:
            sc[i] = -1.0
        if sc[i] > sc[best]:
            best = i
    if not sc[best] > voiced:
        return 0.0
    best = 0
    for i in range(n):
        sc[i] = sc[i] + cost[i]
        if sc[i] > sc[best]:
            best = i
    lag = float(lo + best)
    if 0 < best < n - 1:
        a, b, c = sc[best - 1], sc[best], sc[best + 1]
        den = a - 2.0 * b + c
        if den < 0.0:
            lag += 0.5 * (a - c) / den
    return lag


def _band_voicing(row, band, lag_w, num, den, rho, vb, k, v0, v1):
    """Per-band periodicity of one channel's input frame at its period: vb (nbands,) float32 moved by k
    (float, the one-pole's share) toward clip((C_b / rho - v0) / (v1 - v0), 0, 1), C_b = sum over the band's bins of
    |row[j]|^2 cos(lag_w j) / sum of |row[j]|^2: the normalised circular autocorrelation, at the period
    (lag_w = 2 pi T0 / n_fft rad per bin), of the frame band-passed to band b (a rectangular band); rho the
    analysis window's own correlation at that lag, which bounds C_b for a periodic frame. The largest C_b
    of the periods T0 (1 + 0.004 i), i = -(L - 1)/2 .. (L - 1)/2 (num (L, nbands) float64 scratch), as
    the F0 estimate errs by a few tenths of a percent, which turns the comb off the upper harmonics. row
    (nb,) complex64; band (nb,) int64 each bin's band; den (nbands,) float64 scratch. A band without
    energy keeps its value."""
    nb = row.shape[0]
    nl = num.shape[0]
    for b in range(den.shape[0]):
        den[b] = 0.0
        for i in range(nl):
            num[i, b] = 0.0
    for j in range(nb):
        b = band[j]
        re = float(row[j].real)
        im = float(row[j].imag)
        p = re * re + im * im
        den[b] += p
        for i in range(nl):
            num[i, b] += p * math.cos(lag_w * (1.0 + 0.004 * (i - (nl - 1) // 2)) * j)
    for b in range(den.shape[0]):
        if den[b] > 0.0:
            c = num[0, b]
            for i in range(1, nl):
                c = max(c, num[i, b])
            c = (c / (den[b] * rho) - v0) / (v1 - v0)
            c = min(max(c, 0.0), 1.0)
            vb[b] = np.float32(vb[b] + (c - vb[b]) * k)


def _excite_frame(row, envw, envp, band, vb, phase, b0, adv, lobe, steps, half, t0, noise, rng, syn, share):
    """One channel's output frame, in place: its fine structure replaced, by the share ``share`` (float,
    power-complementary blend), by a synthesized excitation on its own envelope. Harmonics of b0 bins (the
    output F0) on the envelope envw (nb,) float32 (natural log) with its minimum phase envp (nb,) float32 (rad),
    each sqrt(v) of its level (v the periodic share vb[band[j]] of its bin; band -1 counts as v = 0), as
    windowed sinusoids: lobe (2 half steps + 1,) complex64 the analysis window's transform at offsets
    -half .. half bins in 1/steps bin, t0 = |lobe at 0|; harmonic h's running phase phase[h - 1] (float64, at
    the frame's first sample) advanced by adv b (adv = 2 pi hop / n_fft rad per bin of frequency) after each
    frame: phase-continuous across the overlap-add; it is laid on the envelope's phase at its frequency. Plus
    noise on the envelope, sqrt(1 - v) of the level that carries the same power per Hz (``noise`` =
    sqrt(n_fft sum w^2 / (sum w)^2 / b0) times the random-phase frames' overlap-add loss), its phases from a
    32-bit LCG (rng (1,) int64, the channel's state). The synthesized frame is scaled to the row's power before
    the blend, so the level is the stage's. syn (nb,) complex64 scratch. Returns the number of harmonics."""
    nb = row.shape[0]
    for j in range(nb):
        syn[j] = 0.0
    nh = 0
    h = 1
    while h <= phase.shape[0]:
        b = b0 * h
        if b >= nb - 1.0:
            break
        i0 = math.floor(b)
        fr = b - i0
        e = envw[i0] + (envw[min(i0 + 1, nb - 1)] - envw[i0]) * fr
        v = vb[band[int(b + 0.5)]] if band[int(b + 0.5)] >= 0 else np.float32(0.0)
        a = math.exp(e) * math.sqrt(v) / t0
        ph = phase[h - 1]
        if a > 0.0:
            q = ph + envp[i0] + (envp[min(i0 + 1, nb - 1)] - envp[i0]) * fr
            ca = a * math.cos(q)
            sa = a * math.sin(q)
            c = complex(ca, sa)
            cc = complex(ca, -sa)
            lo = max(math.ceil(b - half), 0)
            hi = min(math.floor(b + half), nb - 1)
            for j in range(lo, hi + 1):
                x = (j - b + half) * steps
                m = min(int(x), lobe.shape[0] - 2)
                f = x - m
                syn[j] += np.complex64(c * (lobe[m] + (lobe[m + 1] - lobe[m]) * f))
            # the negative-frequency image of a harmonic within the lobe's reach of DC
            for j in range(min(math.floor(half - b), nb - 1) + 1):
                x = (j + b + half) * steps
                m = min(int(x), lobe.shape[0] - 2)
                f = x - m
                syn[j] += np.complex64(cc * (lobe[m] + (lobe[m + 1] - lobe[m]) * f))
        ph = ph + adv * b
        phase[h - 1] = ph - 2.0 * math.pi * math.floor(ph / (2.0 * math.pi))
        nh = h
        h += 1
    s = int(rng[0])
    for j in range(1, nb):
        bj = band[j]
        v = vb[bj] if bj >= 0 else np.float32(0.0)
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        if v >= 1.0:
            continue
        a = math.exp(envw[j]) * noise * math.sqrt(1.0 - v)
        ph = s * (2.0 * math.pi / 4294967296.0)
        syn[j] += np.complex64(complex(a * math.cos(ph), a * math.sin(ph)))
    rng[0] = s
    pr = 0.0
    ps = 0.0
    for j in range(nb):
        pr += float(row[j].real) ** 2 + float(row[j].imag) ** 2
        ps += float(syn[j].real) ** 2 + float(syn[j].imag) ** 2
    if ps > 0.0 and pr > 0.0:
        gs = np.float32(math.sqrt(pr / ps * share))
        gr = np.float32(math.sqrt(1.0 - share))
        for j in range(nb):
            row[j] = row[j] * gr + syn[j] * gs
    return nh


def _lobe_at(lobe, d, steps, half):
    """The real centre-referenced lobe R(d) at d bins (|d| <= half), linear between table steps."""
    x = (d + half) * steps
    m = min(int(x), lobe.shape[0] - 2)
    f = x - m
    return lobe[m] + (lobe[m + 1] - lobe[m]) * f


def _peak_vertex(v, n, circular):
    """The index of the largest of v[:n] (the first of equals) plus the offset (within +-0.5) of the vertex of the
    parabola through it and its two neighbours; neighbours wrap around when ``circular``, else an end point has
    offset 0."""
    ib = 0
    for i in range(1, n):
        if v[i] > v[ib]:
            ib = i
    if circular:
        m = v[(ib - 1) % n]
        p = v[(ib + 1) % n]
    elif 0 < ib < n - 1:
        m = v[ib - 1]
        p = v[ib + 1]
    else:
        return float(ib)
    den = m - 2.0 * v[ib] + p
    if den < 0.0:
        return ib + min(max(0.5 * (m - p) / den, -0.5), 0.5)
    return float(ib)


def _harmonic_frame(row, env, envw, b0, r, lobe, steps, half, g0, kmax, adv, res, amp, state, sc, n_ref, ref_step,
                    n_phi, phi_pull, iters):
    """One channel's voiced frame pitch-shifted by a harmonic model, in place (AnonVoice._harmonic).

    row (nb,) complex64: the input frame's spectrum (frame-start phases), replaced by the output's. env, envw
    (nb,) float32: its envelope and the output's (natural log of magnitude). b0: the F0 estimate in bins; r: the
    pitch ratio. lobe (2 half steps + 1,) float64: R(d), the analysis window's transform at d bins with its
    phase referred to the frame's centre (real; a complex exponential of amplitude a at b bins puts
    a (-1)^k R(k - b) on bin k); g0 = R(0). kmax: the highest bin a harmonic's centre may sit on. adv =
    2 pi hop / n_fft (rad per hop per bin of frequency). res (nb,) complex128, amp (nb,) complex128: scratch
    (amp[h - 1]: harmonic h's amplitude); sc float64 scratch of at least max(2 n_ref + 1, n_phi). state (4,)
    float64, the channel's: [output fundamental phase, output F0 in bins, 1 when the last frame came through
    here, the input's pulse phase].
    n_ref, ref_step: the F0 is refined over b0 (1 + j ref_step), |j| <= n_ref (by the energy the harmonics'
    lobes take from the frame), then parabolically. n_phi: pulse-phase grid; phi_pull: its pull toward the
    phase the last frame predicts. iters: Gauss-Seidel sweeps of the least-squares fit.

    Steps: the harmonics h b (h b <= kmax) are fitted to the frame by least squares (their lobes overlap when
    F0 is under ~2 bins: a low voice's harmonics are not resolved by the window, and a peak-picking shift
    keeps their spacing, the input's F0, as beats); the residual keeps its bins, on the envelope's gain
    exp(envw - env) (noise and breath have no pitch to move). Output harmonic h' at h' r b takes the
    excitation (log amplitude over env) of input harmonic h' on envw, and the phase relative to the input's
    pulse phase that the input has at the same frequency (interpolated between the two input harmonics around
    it), on the output's running fundamental phase:
    the formants and each period's waveform stay, the period is the new one. Their power is the input
    harmonics' on the envelope's gain (within 0.5 .. 2 in amplitude). Returns the number of harmonics fitted
    (0: nothing was done, the frame is left as it came)."""
    nb = row.shape[0]
    two_pi = 2.0 * math.pi
    if b0 < 1.0 or r <= 0.0:
        return 0
    for k in range(nb):
        s = -1.0 if k & 1 else 1.0
        res[k] = complex(row[k].real * s, row[k].imag * s)
    # F0 refinement: every candidate counts the same harmonics (those of the highest candidate).
    nh = int(kmax / (b0 * (1.0 + n_ref * ref_step)))
    if nh < 1:
        return 0
    for j in range(2 * n_ref + 1):
        b = b0 * (1.0 + (j - n_ref) * ref_step)
        e = 0.0
        for h in range(1, nh + 1):
            c = h * b
            lo = max(math.ceil(c - half), 0)
            hi = min(math.floor(c + half), nb - 1)
            p = 0j
            for k in range(lo, hi + 1):
                p += _lobe_at(lobe, k - c, steps, half) * res[k]
            e += p.real * p.real + p.imag * p.imag
        sc[j] = e
    b = b0 * (1.0 + (_peak_vertex(sc, 2 * n_ref + 1, False) - n_ref) * ref_step)
    nh = int(kmax / b)
    if nh < 1:
        return 0
    # Least squares by Gauss-Seidel sweeps: each harmonic takes the projection of what the others left.
    for h in range(nh):
        amp[h] = 0j
    for it in range(iters):
        for h in range(1, nh + 1):
            c = h * b
            lo = max(math.ceil(c - half), 0)
            hi = min(math.floor(c + half), nb - 1)
            p = 0j
            g = 0.0
            for k in range(lo, hi + 1):
                v = _lobe_at(lobe, k - c, steps, half)
                p += v * res[k]
                g += v * v
            if g <= 0.0:
                continue
            d = p / g
            amp[h - 1] += d
            for k in range(lo, hi + 1):
                res[k] -= d * _lobe_at(lobe, k - c, steps, half)
    # The input's pulse phase: the fundamental phase at which the harmonics add up most (the period's main
    # excitation), pulled toward the last frame's plus one hop of F0, so a frame without a clear pulse keeps
    # the phases running instead of jumping.
    pred_ok = state[2] > 0.5
    pred = state[3] + adv * b
    for i in range(n_phi):
        ph = two_pi * i / n_phi
        rot = complex(math.cos(ph), -math.sin(ph))
        z = rot
        acc = 0j
        for h in range(1, nh + 1):  # sum of amp[h - 1] e^{-i h ph}, the rotation by a running product
            acc += amp[h - 1] * z
            z *= rot
        v = acc.real * acc.real + acc.imag * acc.imag
        if pred_ok:
            v *= 1.0 + phi_pull * math.cos(ph - pred)
        sc[i] = v
    phi_in = two_pi * _peak_vertex(sc, n_phi, True) / n_phi
    # The output's fundamental phase runs on at its own F0.
    bo = r * b
    if pred_ok:
        psi = state[0] + adv * 0.5 * (state[1] + bo)
    else:
        psi = phi_in
    psi -= two_pi * math.floor(psi / two_pi)
    state[0] = psi
    state[1] = bo
    state[2] = 1.0
    state[3] = phi_in - two_pi * math.floor(phi_in / two_pi)
    # Target power: the input harmonics' on the envelope's gain at their own frequencies.
    pt = 0.0
    for h in range(1, nh + 1):
        c = h * b
        i0 = min(int(c), nb - 2)
        f = c - i0
        gl = (envw[i0] - env[i0]) + ((envw[i0 + 1] - env[i0 + 1]) - (envw[i0] - env[i0])) * f
        a = amp[h - 1]
        pt += (a.real * a.real + a.imag * a.imag) * math.exp(2.0 * gl)
    # The residual on the envelope's gain.
    for k in range(nb):
        res[k] *= math.exp(float(envw[k]) - float(env[k]))
    # Output harmonics: level and phase first (amp is overwritten from its start while it is read further on:
    # output harmonic h' reads input harmonic h' before its slot is written and those near h' r >= h' for r >= 1;
    # for r < 1 the reads lag, so the values go after the input's nh instead).
    nho = int(kmax / bo)
    if r < 1.0:
        nho = min(nho, amp.shape[0] - nh)
    if nho < 1:
        for k in range(nb):
            s = -1.0 if k & 1 else 1.0
            row[k] = complex(res[k].real * s, res[k].imag * s)
        return nh
    base = 0 if r >= 1.0 else nh
    ps = 0.0
    for hp in range(1, nho + 1):
        u = hp * r                        # the input harmonic number at the output harmonic's frequency
        i0 = min(max(int(u), 1), nh)
        i1 = min(i0 + 1, nh)
        f = min(max(u - i0, 0.0), 1.0)
        a0 = amp[i0 - 1]
        a1 = amp[i1 - 1]
        # the excitation of the input harmonic of the same number (the source's harmonic pattern moves with its
        # pitch, as in the peak-locked shift; past the input's last harmonic, the last one's)
        he = min(hp, nh)
        ae = amp[he - 1]
        ex = math.log(max(abs(ae) * g0, 1e-30)) - env[min(int(he * b + 0.5), nb - 1)]
        # the phase relative to the pulse, interpolated between the two input harmonics around u (their difference
        # wrapped: the pulse's phase spectrum is smooth where the pulse phase is right)
        t0 = math.atan2(a0.imag, a0.real) - i0 * phi_in
        dt = math.atan2(a1.imag, a1.real) - i1 * phi_in - t0
        dt -= two_pi * math.floor((dt + math.pi) / two_pi)
        theta = t0 + dt * f
        c = hp * bo
        j0 = min(int(c), nb - 2)
        fe = c - j0
        ew = envw[j0] + (envw[j0 + 1] - envw[j0]) * fe
        lev = math.exp(ex + ew) / g0
        ph = hp * psi + theta
        amp[base + hp - 1] = complex(lev * math.cos(ph), lev * math.sin(ph))
        ps += lev * lev
    gs = 1.0
    if ps > 0.0:
        gs = min(max(math.sqrt(pt / ps), 0.5), 2.0)
    for hp in range(1, nho + 1):
        a = amp[base + hp - 1] * gs
        c = hp * bo
        lo = max(math.ceil(c - half), 0)
        hi = min(math.floor(c + half), nb - 1)
        for k in range(lo, hi + 1):
            res[k] += a * _lobe_at(lobe, k - c, steps, half)
        # the negative-frequency image of a harmonic within the lobe's reach of DC
        ac = a.conjugate()
        for k in range(0, min(math.floor(half - c), nb - 1) + 1):
            res[k] += ac * _lobe_at(lobe, k + c, steps, half)
    for k in range(nb):
        s = -1.0 if k & 1 else 1.0
        row[k] = complex(res[k].real * s, res[k].imag * s)
    return nh


def warm_up() -> bool:
    """Import numba, then compile (or load from numba's disk cache) every loop for the argument types the
    stages pass, on throw-away arrays: control thread, from the stages' prepare(), so no audio callback
    compiles. Once per process; seconds the first time on a machine, under a second from the cache. Returns
    whether the loops are ready: False without numba, or when this numba cannot be imported (e.g. built for
    another numpy), and the stages then run their numpy code."""
    return _jit.warm_module(globals(), _bind)


def _bind(jit):
    """Set the dispatchers and compile each loop for the stages' argument types on throw-away arrays."""
    global peaks_envelope, shift_frame, warp_timbre, detail_timbre, f0_frame, pick_lag, warp_map, smooth, \
        band_voicing, excite_frame, harmonic_frame, _lobe_at, _peak_vertex
    peaks_envelope, shift_frame = jit(_peaks_envelope), jit(_shift_frame)
    warp_timbre, detail_timbre = jit(_warp_timbre), jit(_detail_timbre)
    f0_frame, pick_lag, warp_map, smooth = jit(_f0_frame), jit(_pick_lag), jit(_warp_map), jit(_smooth)
    band_voicing, excite_frame = jit(_band_voicing), jit(_excite_frame)
    _lobe_at, _peak_vertex = jit(_lobe_at), jit(_peak_vertex)  # before the loop that calls them: numba compiles
    # those calls against these globals
    harmonic_frame = jit(_harmonic_frame)
    f32, i64, c64 = np.float32, np.int64, np.complex64
    nb, m = 9, 4
    lm = np.linspace(0.0, 1.0, nb).astype(f32)
    z = np.ones(nb, c64)
    fa = [np.zeros(nb, f32) for _ in range(9)]
    ia = [np.zeros(nb, i64) for _ in range(7)]
    ca = [np.zeros(nb, c64) for _ in range(3)]
    peaks_envelope(lm, fa[0], ia[0], ia[1], ia[2])
    shift_frame(z.copy(), z.copy(), z, fa[0], fa[1], fa[2], ia[0], ia[1], fa[3], fa[4], ia[2], fa[5], ia[3], ca[0],
                fa[6], ia[4], ia[5], ca[1], f32(1.0), f32(1.0), f32(0.0), 1, 1.0, f32(1e-30))
    warp_timbre(fa[0], fa[1], f32(1.0), ia[6], fa[2], fa[3], fa[4], fa[5], fa[6], fa[7], nb - 1, True, f32(1.0),
                f32(-1.0), f32(1.0))
    detail_timbre(fa[0], fa[1], fa[2], fa[3], f32(0.0), f32(-1.0))
    x = np.zeros(2 * m)
    cs = np.zeros(m)
    f0_frame(np.zeros((1, 2 * m), f32), 2, m, x, cs, np.zeros(2), 20.0)
    pick_lag(np.zeros(2 * m), cs, 1, 2, 0.0, np.zeros(2), np.zeros(2), 0.5)
    warp_map(np.zeros(nb), 1.0, 1.0, 1.0, ia[0], ia[1], fa[0])
    h = (nb + 1) // 2
    b1e, b1o, b2e, b2o = half_smoothing(np.ones((3, nb), f32), np.ones((nb, 3), f32))
    sm = [np.zeros(h, f32) for _ in range(4)]
    smooth(fa[0], b1e, b1o, b2e, b2o, sm[0], sm[1], np.zeros(2, f32), np.zeros(1, f32), sm[2], sm[3])
    vb = np.zeros(2, f32)
    band_voicing(z, ia[0], 0.5, np.zeros((3, 2)), np.zeros(2), 0.5, vb, 0.5, 0.1, 0.9)
    excite_frame(z.copy(), fa[0], fa[1], ia[0], vb, np.zeros(4), 1.5, 0.5, np.ones(9, c64), 1.0, 4.0, 1.0, 1.0,
                 np.ones(1, i64), ca[2], 0.5)
    harmonic_frame(z.copy(), fa[0], fa[1], 1.5, 1.2, np.ones(9), 1.0, 4.0, 1.0, 7, 0.5, np.zeros(nb, np.complex128),
                   np.zeros(nb, np.complex128), np.zeros(4), np.zeros(8), 2, 0.005, 8, 0.5, 2)


# The compiled loops, set by warm_up().
_warm = False
peaks_envelope = shift_frame = warp_timbre = detail_timbre = f0_frame = pick_lag = warp_map = smooth = None
band_voicing = excite_frame = harmonic_frame = None
