"""Spectral freeze: hold one magnitude spectrum and resynthesise it as a sustained sound.

When ``freeze.hold`` switches on, the stage is *armed*: it captures once a whole window's worth of
consecutive frames (n_fft / hop: 15-20 ms) had their loudest bin above ``freeze.arm_db`` (dBFS,
0 dB = a full-scale sine on a bin), so pressing hold in a pause waits for the next sound instead
of freezing silence, and an onset is captured once the window is full of it. Capture stores each bin's magnitude and its
instantaneous frequency, measured phase-vocoder style from the phase advance between that frame and
the one before it (expected advance 2*pi*k*hop/n_fft plus the wrapped deviation). Every later frame
advances each bin's phase by that amount, so a held partial keeps its exact pitch and the frozen
sound sustains smoothly instead of buzzing at the frame rate (bin-centre phases would repeat every
n_fft/hop frames). A small deterministic phase jitter (``freeze.jitter``) blurs the frozen image
into a shimmering wash.

The frozen spectrum fades in over ``freeze.crossfade_ms`` and, when hold is released, fades out
over the same time; ``freeze.mix`` sets how much of it replaces the live spectrum
(out = (1 - x*mix) * live + x*mix * frozen, x the fade position 0..1). Re-pressing hold while the
old freeze is still fading out fades the old capture back in (no jump); a new capture needs the
fade-out to finish.

Everything is deterministic from reset(): capture instant, phases and jitter (a fixed-seed
sequence), so streaming == offline for any block partition.
"""

from __future__ import annotations

import numpy as np

from .params import ParamSpec
from .stft import SpectralStage

PARAMS = (
    ParamSpec("freeze.hold", 0.0, 1.0, 0.0, "", scale="bool", smoothing_ms=0.0,
              doc="on: capture the next sound above arm_db and sustain it; off: fade the freeze out"),
    ParamSpec("freeze.crossfade_ms", 5.0, 5000.0, 150.0, "ms", scale="log", smoothing_ms=0.0,
              doc="fade time into and out of the frozen spectrum"),
    ParamSpec("freeze.mix", 0.0, 1.0, 1.0, "", smoothing_ms=30.0,
              doc="how much of the frozen spectrum replaces the live one (1 = frozen only)"),
    ParamSpec("freeze.arm_db", -120.0, 0.0, -60.0, "dB", smoothing_ms=0.0,
              doc="capture waits for a frame whose loudest bin exceeds this level (dBFS)"),
    ParamSpec("freeze.jitter", 0.0, 1.0, 0.0, "", smoothing_ms=30.0,
              doc="random phase added per frame (0 = pure pitch-true sustain, 1 = diffuse wash)"),
)

_TWO_PI = 2.0 * np.pi


class SpectralFreeze(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread)."""

    name = "freeze"

    def __init__(self, table):
        self.table = table
        self._i_hold, self._i_xf, self._i_mix, self._i_arm, self._i_jit = (table.index(p.id) for p in PARAMS)

    def prepare(self, ctx):
        """Control thread: allocate every buffer (channels, n_bins)."""
        super().prepare(ctx)
        c, nb = ctx.channels, ctx.n_bins
        self._prev = np.zeros((c, nb), np.complex64)     # last input spectrum (for the phase advance)
        self._mag = np.zeros((c, nb), np.float64)        # captured magnitudes
        self._phase = np.zeros((c, nb), np.float64)      # running resynthesis phase
        self._omega = np.zeros((c, nb), np.float64)      # phase advance per hop (rad)
        self._expected = (_TWO_PI * ctx.hop / ctx.n_fft) * np.arange(nb, dtype=np.float64)
        # Float64 scratch: the measured phase advance and |X| at capture; the jitter phases; then
        # the real and imaginary parts of the frozen spectrum.
        self._t64 = np.zeros((c, nb), np.float64)
        self._u64 = np.zeros((c, nb), np.float64)
        self._frozen = np.zeros((c, nb), np.complex64)   # mag * exp(i * phase), mixed into the output
        self._pow = np.zeros((c, nb), np.float32)        # |X|^2 while armed (capture level)
        self._im = np.zeros((c, nb), np.float32)         # imag(X)^2, summed into _pow
        self._c64 = np.zeros((c, nb), np.complex64)      # conj(previous) * current, for the advance
        # Jitter: a fixed table of uniform phases, read at a per-frame rotating offset.
        self._jit_tab = np.random.default_rng(0x5EED).random((c, 32 * nb + 1)) * _TWO_PI - np.pi
        wsum = float(np.sqrt(0.5 - 0.5 * np.cos(_TWO_PI * np.arange(ctx.n_fft) / ctx.n_fft)).sum())
        self._ref_pow = (wsum / 2.0) ** 2  # |X|^2 of a full-scale sine centred on a bin
        self._settle = max(1, ctx.n_fft // ctx.hop)  # frames per window
        self.reset()

    def reset(self):
        self._prev.fill(0.0)
        self._mag.fill(0.0)
        self._phase.fill(0.0)
        self._omega.fill(0.0)
        self.x = 0.0             # fade position 0 (live) .. 1 (frozen)
        self.captured = False
        self.armed = False
        self._hold_prev = False
        self._jpos = 0
        self._above = 0

    # -- audio thread -------------------------------------------------------------------------
    def _capture(self, spec) -> None:
        # Instantaneous frequency: expected bin advance + wrapped deviation of the measured one.
        c = self._c64
        np.conjugate(self._prev, out=c)
        c *= spec
        t, u = self._t64, self._u64
        np.arctan2(c.imag, c.real, out=t)          # measured advance, wrapped to (-pi, pi]
        t -= self._expected
        t += np.pi
        np.remainder(t, _TWO_PI, out=t)
        t -= np.pi
        np.add(t, self._expected, out=self._omega)
        np.arctan2(spec.imag, spec.real, out=self._phase)
        np.abs(spec, out=u)
        np.copyto(self._mag, u)
        self.captured = True

    def process_frame(self, spec):
        v = self.table.value
        hold = v[self._i_hold] >= 0.5
        if hold and not self._hold_prev and self.x == 0.0:
            self.armed = True
            self._above = 0
        if not hold:
            self.armed = False
        self._hold_prev = hold
        if self.armed:
            np.multiply(spec.real, spec.real, out=self._pow)
            np.multiply(spec.imag, spec.imag, out=self._im)
            self._pow += self._im
            level_db = 10.0 * np.log10(max(float(self._pow.max()), 1e-30) / self._ref_pow)
            # Capture once a whole window of frames has been above arm_db: the window is then full
            # of the sound (not an onset half in silence) and the previous frame gives a valid
            # phase advance for the frequency estimate.
            self._above = self._above + 1 if level_db > v[self._i_arm] else 0
            if self._above >= self._settle:
                self._capture(spec)
                self.armed = False
        np.copyto(self._prev, spec)
        # Fade toward 1 while holding a capture, toward 0 otherwise.
        step = (self.ctx.hop / self.ctx.sample_rate) / (max(float(v[self._i_xf]), 1e-3) * 1e-3)
        target = 1.0 if (hold and self.captured) else 0.0
        if self.x < target:
            self.x = min(self.x + step, 1.0)
        elif self.x > target:
            self.x = max(self.x - step, 0.0)
            if self.x == 0.0:
                self.captured = False
        if not self.captured:
            return
        # Advance the resynthesis phase (kept wrapped so float64 keeps its precision for hours).
        ph = self._phase
        ph += self._omega
        jit = float(v[self._i_jit])
        if jit > 0.0:
            nb = ph.shape[1]
            j = self._jpos
            t = self._t64
            for ch in range(t.shape[0]):  # row by row: a strided 2-D operand makes numpy buffer
                np.multiply(self._jit_tab[ch, j : j + nb], jit, out=t[ch])
            ph += t
            self._jpos = (j + 7) % (self._jit_tab.shape[1] - nb)
        np.remainder(ph, _TWO_PI, out=ph)
        if self.x <= 0.0:
            return
        # frozen = mag * exp(i * phase)
        fr = self._frozen
        t, u = self._t64, self._u64
        np.cos(ph, out=t)
        t *= self._mag
        np.sin(ph, out=u)
        u *= self._mag
        np.copyto(fr.real, t)
        np.copyto(fr.imag, u)
        w = self.x * float(v[self._i_mix])
        if w <= 0.0:
            return
        spec *= 1.0 - w
        fr *= w
        spec += fr
