"""Draft runtime stage of the resculpting generator (numpy + onnxruntime; never imports torch).

NOT registered in ``plugin_host/catalog.py`` and not reachable from ``render --matcher model``: no trained bundle
exists, and the stage has not been through the conformance suite (allocation-free ``process_frame``,
stereo, every rate). It is here so the bundle format, the output application and the streaming state are
pinned by a test against the torch generator (tests/test_resculpt_export.py) before training starts.

Per frame (the section's 5 ms hop; the model needs the 20 ms ``default`` window: 50 Hz bins):
1. features of the newest spectrum (linked stereo / mono: channel-mean power; ``common.py``): band dB and
   low-bin dB into preallocated rows;
2. the ONNX core, one frame per call, bound by IOBinding to two preallocated state sets used in turn;
   conditioned on the published :class:`ResculptTarget` (its vector, ``common.cond_from_profile``);
3. the outputs applied to the frame ``lookahead`` hops old, kept in a ring of the last ``DF_ORDER`` spectra:
   band gains to bins (``BandMap.synthesis``), the deep filter on the low bins over the ring, the copy-up
   excitation (``net.FrameIO.apply``'s numpy twin); without a published target the delayed frame passes
   unchanged (the latency stays ``lookahead`` hops either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from resculpt.dsp.bands import BandMap
from resculpt.dsp.stft import SpectralStage

from . import common as C
from .bundle import Bundle, load_bundle


@dataclass(frozen=True)
class ResculptTarget:
    """The published target: ``cond`` (COND_DIM,) float32, read-only (``common.cond_from_profile``), the match
    mode and a description of its source."""

    cond: np.ndarray
    match: str = "timbre"
    source: str = ""

    @classmethod
    def from_profile(cls, profile, sample_rate: int, match: str = "timbre", source: str = "") -> ResculptTarget:
        v = C.cond_from_profile(profile, sample_rate, match)
        v.setflags(write=False)
        return cls(v, match, source)


class ResculptStage(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place."""

    name = "resculpt"
    inbox_type = ResculptTarget

    def __init__(self, bundle: Bundle | str | Path, inbox=None):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.latency_frames = self.bundle.lookahead_frames
        self.inbox = inbox

    def prepare(self, ctx):
        n_fft, hop = C.frame_sizes(ctx.sample_rate)
        if (ctx.n_fft, ctx.hop) != (n_fft, hop):
            raise ValueError(f"resculpt: the model runs {C.WINDOW_MS:g} ms windows at a {C.HOP_MS:g} ms hop "
                             f"({n_fft}/{hop} samples at {ctx.sample_rate} Hz); this section has {ctx.n_fft}/{ctx.hop}: "
                             f"use the {C.STFT_CONFIG!r} STFT config")
        super().prepare(ctx)
        c, nb = ctx.channels, ctx.n_bins
        bm = BandMap(ctx.sample_rate, n_fft, C.N_BANDS)
        w = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft))
        self._norm = np.float32(1.0 / np.sum(w * w) / c)  # PSD convention, channel mean folded in
        self._ana_t = np.ascontiguousarray(bm.analysis.T)    # (nb, 32)
        self._syn_t = np.ascontiguousarray(bm.synthesis.T)   # (32, nb)
        self._shift = C.copy_shift_bins(ctx.sample_rate)
        self._pow = np.zeros((c, nb), np.float32)
        self._pmean = np.zeros(nb, np.float32)
        self._feat = np.zeros((1, 1, C.N_BANDS), np.float32)
        self._low = np.zeros((1, 1, C.N_LOW), np.float32)
        self._cond = np.zeros((1, C.COND_DIM), np.float32)
        self._g = np.zeros((1, 1, C.N_BANDS), np.float32)
        self._e = np.zeros((1, 1, C.N_BANDS), np.float32)
        self._df = np.zeros((1, 1, C.N_LOW, self.bundle.df_order, 2), np.float32)
        self._G = np.zeros(nb, np.float32)
        self._E = np.zeros(nb, np.float32)
        self._coef = np.zeros((C.N_LOW, self.bundle.df_order), np.complex64)
        self._onehot = np.zeros(self.bundle.df_order, np.complex64)
        self._onehot[self.bundle.df_order - 1 - self.latency_frames] = 1.0
        self._z = np.zeros((c, C.N_LOW), np.complex64)
        R = max(self.bundle.df_order, self.latency_frames + 1)
        self._ring = np.zeros((R, c, nb), np.complex64)
        self._head = 0  # index of the oldest frame in the ring
        sa = {k: np.zeros(self.bundle.state_shapes[k], np.float32) for k in self.bundle.state_names}
        sb = {k: np.zeros(self.bundle.state_shapes[k], np.float32) for k in self.bundle.state_names}
        self._states = (sa, sb)
        self._bind = []
        sess = self.bundle.session
        for src, dst in ((sa, sb), (sb, sa)):
            io = sess.io_binding()
            for k, v in (("feat", self._feat), ("low", self._low), ("cond", self._cond)):
                io.bind_cpu_input(k, v)
            for k in self.bundle.state_names:
                io.bind_cpu_input(k, src[k])
                io.bind_output(k + "_out", "cpu", 0, np.float32, list(dst[k].shape), dst[k].ctypes.data)
            for k, v in (("gain_db", self._g), ("copy", self._e), ("df", self._df)):
                io.bind_output(k, "cpu", 0, np.float32, list(v.shape), v.ctypes.data)
            self._bind.append(io)
        self.reset()

    def reset(self):
        for s in self._states:
            for v in s.values():
                v.fill(0.0)
        self._ring.fill(0.0)
        self._head = 0
        self._phase = 0
        self._target = None

    def _frame(self, k: int) -> np.ndarray:
        """The ring's frame k frames after the oldest (k = R - 1: the newest)."""
        return self._ring[(self._head + k) % self._ring.shape[0]]

    def process_frame(self, spec):
        R = self._ring.shape[0]
        np.copyto(self._ring[self._head], spec)  # overwrite the oldest: it becomes the newest
        self._head = (self._head + 1) % R
        L, N = self.latency_frames, self.bundle.df_order
        X = self._frame(R - 1 - L)
        tgt = self.inbox.value if self.inbox is not None else None
        if tgt is None:
            spec[...] = X
            return
        if tgt is not self._target:
            np.copyto(self._cond[0], tgt.cond)
            self._target = tgt
        np.multiply(spec.real, spec.real, out=self._pow)
        self._pow += spec.imag * spec.imag
        np.sum(self._pow, axis=0, out=self._pmean)
        self._pmean *= self._norm
        np.log10(self._pmean @ self._ana_t + C.EPS, out=self._feat[0, 0])
        self._feat *= 10.0
        np.log10(self._pmean[: C.N_LOW] + C.EPS, out=self._low[0, 0])
        self._low *= 10.0
        self.bundle.session.run_with_iobinding(self._bind[self._phase])
        self._phase ^= 1
        np.matmul(np.power(np.float32(10.0), self._g[0, 0] / np.float32(20.0)), self._syn_t, out=self._G)
        np.matmul(self._e[0, 0], self._syn_t, out=self._E)
        self._coef.real = self._df[0, 0, ..., 0]
        self._coef.imag = self._df[0, 0, ..., 1]
        self._coef += self._onehot
        self._z.fill(0.0)
        for j in range(N):
            self._z += self._coef[:, j] * self._frame(R - N + j)[:, : C.N_LOW]
        S = self._shift
        out = spec
        np.multiply(X, self._G, out=out)
        out[:, : C.N_LOW] = self._z * self._G[: C.N_LOW]
        out[:, S:] += self._E[S:] * X[:, : X.shape[1] - S]
