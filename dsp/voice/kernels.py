"""Compiled per-frame loops of the peak-locked pitch shift (dsp/voice/shift.py), when numba is installed.

:class:`~resculpt.dsp.voice.shift.VoiceShift` runs a frame as about 120 numpy calls on 481-bin rows (48 kHz,
20 ms window); each costs ~1 us of call overhead, more than its arithmetic, so the stage's time is
mostly overhead (profile in docs/voice.md, "Cost"). Two loops replace the runs of calls that need no
BLAS and no vectorised transcendental over every bin:

* :func:`peaks_envelope`: the peaks of the log magnitude, each bin's owning peak and the peak-to-peak
  envelope (``VoiceShift._analyse`` before its cepstral smoothing, which stays two numpy products).
  Integer and float32 arithmetic in the same order as the numpy code: the same numbers.
* :func:`shift_frame`: everything ``VoiceShift._shift`` does after the envelopes: phase advance, true
  frequency, synthesis phase and shift of each peak, the output bins' sources, gains and phasors. The
  phase terms are computed only on peak bins (the bins that own themselves), the only ones read, so
  arctan2/cos/sin run on ~100 bins instead of 481. libm's arctan2/cos/sin/exp and the power sum
  (float64 here, float32 BLAS in numpy) round differently from numpy's loops: the output agrees with
  the numpy path to float32 rounding (tests/test_voice_kernels.py).

Optional: without numba (``pip install resculpt[fast]``) ``AVAILABLE`` is False and the stage runs its numpy
code. ``RESCULPT_NO_KERNELS=1`` in the environment forces the numpy code. The loops allocate nothing: every
array is the caller's (compiled once per process, cached on disk next to this module where writable).
"""

from __future__ import annotations

import math
import os

import numpy as np

try:  # optional dependency (extra "fast")
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

AVAILABLE = numba is not None and os.environ.get("RESCULPT_NO_KERNELS", "") in ("", "0")

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
        w = zpc[p] * row[p]
        w = w * unrot[p]
        fb = np.float32(np.arctan2(w.imag, w.real)) * adv
        if fb < _M_ONE:
            fb = _M_ONE
        if fb > _ONE:
            fb = _ONE
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


if AVAILABLE:
    _jit = numba.njit(cache=True, nogil=True, error_model="numpy")
    peaks_envelope = _jit(_peaks_envelope)
    shift_frame = _jit(_shift_frame)
else:  # pragma: no cover - numpy path in the stage instead
    peaks_envelope = shift_frame = None
