"""Compiled per-block loops of the STFT section (``stft.py``), with numba (extra ``fast``; ``resculpt.dsp.jit``).

At 128-sample live blocks and a 5 ms hop the section completes a frame every second block, and its own work per
frame is a few dozen numpy calls on rows of a few hundred samples (copies into the input window, the window
products, the one-hop shifts, the overlap-add, the output writes), where a call's overhead outweighs its arithmetic.
These loops do the same steps in three calls per frame around the two FFTs and the stages:

* :func:`intake`: the block's samples into the input window, the finished hop's output samples into the block, and,
  when a hop completes, the frame (window times analysis window, in float64) into the batch and the window moved on.
* :func:`to_spectra`: the batch's spectra complex128 -> complex64, non-finite bins zeroed.
* :func:`synthesise`: synthesis window, overlap-add, the one-hop shift, and each frame's output hop written into
  the block from the sample that completed it.

The numbers are those of the numpy code (``StreamingSTFT`` with ``use_kernels = False``): the same float32 and
float64 products and sums in the same order, so the two paths are bit-identical (tests/test_stft_kernels.py). The
input window and the accumulator are shifted in place here (the numpy code copies into a twin buffer, since numpy
allocates a temporary for an overlapping copy). Every array is the caller's: the loops allocate nothing.

State shared with the caller, ``st`` (int64): ``st[FILL]`` samples of the newest hop received, ``st[OPOS]`` next
sample of the finished hop to emit, ``st[NPEND]`` frames in the batch, ``st[DONE]`` 1 while a completed hop waits
to join the batch (the caller first shows the window to the stages that watch the input), ``st[FLUSH]`` 1 when the
batch is full and must be run before more samples are taken.
"""

from __future__ import annotations

import math

from resculpt.dsp import jit as _jit

AVAILABLE = _jit.available("stft")

FILL, OPOS, NPEND, DONE, FLUSH = 0, 1, 2, 3, 4
N_STATE = 5


def _intake(block, i, win, ogroup, st, pos, wa, frames, hop, max_batch):
    """Take block (channels, n) float32 into the window ``win`` (channels, n_fft), from index ``i``; returns
    the index it stopped at. Stops after the sample that completes a hop (``st[DONE]`` = 1, that sample's index in
    ``pos[npend]``): the caller may read ``win`` before the next call moves it on. A call first takes a waiting
    frame into ``frames`` (max_batch, channels, n_fft) float64; when the batch is then full it returns at once with
    ``st[FLUSH]`` = 1. While no frame is pending, the block's samples are replaced by the finished hop ``ogroup``
    (channels, hop) from ``st[OPOS]`` on (pending frames' output is written by :func:`synthesise`)."""
    n = block.shape[1]
    c = win.shape[0]
    n_fft = win.shape[1]
    base = n_fft - hop
    if st[DONE]:
        # The completed hop's frame joins the batch: frames[npend] = win * wa (float32 -> float64, then the float64
        # product), and the window moves on one hop.
        j = st[NPEND]
        for ch in range(c):
            for k in range(n_fft):
                frames[j, ch, k] = win[ch, k] * wa[k]
            for k in range(base):
                win[ch, k] = win[ch, k + hop]
        st[NPEND] = j + 1
        st[FILL] = 0
        st[DONE] = 0
        if j + 1 == max_batch:
            st[FLUSH] = 1
            return i
    while i < n:
        fill = st[FILL]
        m = min(n - i, hop - fill)
        for ch in range(c):
            for k in range(m):
                win[ch, base + fill + k] = block[ch, i + k]
        st[FILL] = fill + m
        if fill + m == hop:
            # The hop is complete: without a pending frame, the last m - 1 samples of the old hop go out first.
            if st[NPEND] == 0:
                op = st[OPOS]
                for ch in range(c):
                    for k in range(m - 1):
                        block[ch, i + k] = ogroup[ch, op + k]
            pos[st[NPEND]] = i + m - 1
            st[DONE] = 1
            return i + m
        if st[NPEND] == 0:
            op = st[OPOS]
            for ch in range(c):
                for k in range(m):
                    block[ch, i + k] = ogroup[ch, op + k]
            st[OPOS] = op + m
        i += m
    return n


def _to_spectra(s64, sp, T):
    """sp[:T] = s64[:T] as complex64 (T, channels, n_bins), non-finite bins (NaN, Inf, or too large for float32)
    -> 0."""
    for j in range(T):
        for ch in range(sp.shape[1]):
            for k in range(sp.shape[2]):
                sp[j, ch, k] = s64[j, ch, k]
                w = sp[j, ch, k]
                if not (math.isfinite(w.real) and math.isfinite(w.imag)):
                    sp[j, ch, k] = 0


def _synthesise(frames, ws, acc, block, pos, T, end, ogroup, st, hop):
    """Overlap-add the batch's inverse transforms ``frames`` (max_batch, channels, n_fft) float32 (T of them) times
    the synthesis window ``ws`` into ``acc`` (channels, n_fft); each finished hop goes into ``block`` from
    ``pos[j]`` (the last one only up to ``end``, and into ``ogroup`` for the samples after it)."""
    c, n_fft = acc.shape
    for j in range(T):
        p = pos[j]
        stop = p + hop if j < T - 1 else end
        for ch in range(c):
            for k in range(n_fft):
                acc[ch, k] += frames[j, ch, k] * ws[k]  # the float32 product, then the float32 sum
            if j == T - 1:
                for k in range(hop):
                    ogroup[ch, k] = acc[ch, k]
            for k in range(stop - p):
                block[ch, p + k] = acc[ch, k]
            for k in range(n_fft - hop):
                acc[ch, k] = acc[ch, k + hop]
            for k in range(n_fft - hop, n_fft):
                acc[ch, k] = 0.0
    st[OPOS] = end - pos[T - 1]


def warm_up() -> bool:
    """Import numba and compile the loops (once per process; from numba's disk cache after the first time) for the
    operand types the section passes, the block in any memory layout, so that no audio callback compiles. Returns
    whether the loops are ready (False without numba: the section runs its numpy code)."""
    return _jit.warm_module(globals(), _bind)


def _bind(jit):
    global intake, to_spectra, synthesise
    from numba import types as t

    # Explicit signatures: compiled here, and a block of another layout converts instead of compiling.
    f32_2a, f32_2c, f32_3c = t.Array(t.float32, 2, "A"), t.Array(t.float32, 2, "C"), t.Array(t.float32, 3, "C")
    f64_1c, f64_3c, i64_1c = t.Array(t.float64, 1, "C"), t.Array(t.float64, 3, "C"), t.Array(t.int64, 1, "C")
    c128_3c, c64_3c, f32_1c = t.Array(t.complex128, 3, "C"), t.Array(t.complex64, 3, "C"), t.Array(t.float32, 1, "C")
    i64 = t.int64
    intake = jit(_intake, [i64(f32_2a, i64, f32_2c, f32_2c, i64_1c, i64_1c, f64_1c, f64_3c, i64, i64)])
    to_spectra = jit(_to_spectra, [t.void(c128_3c, c64_3c, i64)])
    synthesise = jit(_synthesise, [t.void(f32_3c, f32_1c, f32_2c, f32_2a, i64_1c, i64, i64, f32_2c, i64_1c, i64)])


# The compiled loops, set by warm_up().
_warm = False
intake = to_spectra = synthesise = None
