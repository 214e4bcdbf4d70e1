"""Spectral blur: smear magnitudes in time and in frequency.

Each frame's magnitude spectrum is first averaged across frequency with a box of
``blur.freq_hz`` total width (constant in Hz: 0 = off; a few hundred Hz melts harmonics into bands of
noise), then averaged over time per bin with a one-pole of time constant ``blur.time_ms``
(m <- a*m + (1-a)*|X|, a = exp(-hop / tau); 0 ms = off). Transients smear into swells, notes
bleed into each other, and the spectral flux (frame-to-frame magnitude change) drops.

Phase (``blur.phase``):
- ``input``: the blurred magnitude rides on the input's phase. Keeps pitch and stereo image; a
  tail only sounds while the input has some energy in that bin.
- ``random``: a fresh deterministic random phase every frame (fixed-seed table). Turns the blur
  into a diffuse, reverb-like wash whose tails ring on through silence.

``blur.mix`` crossfades the complex spectrum between the input (0) and the blurred one (1).
Deterministic from reset(), so streaming == offline for any block partition.
"""

from __future__ import annotations

import numpy as np

from .params import ParamSpec
from .spectral_util import apply_gain
from .stft import SpectralStage

PARAMS = (
    ParamSpec("blur.time_ms", 0.0, 5000.0, 300.0, "ms", smoothing_ms=50.0,
              doc="time smear: per-bin magnitude averaging time constant (0 = off)"),
    ParamSpec("blur.freq_hz", 0.0, 4000.0, 0.0, "Hz", smoothing_ms=50.0,
              doc="frequency smear: width of the magnitude box average across bins (0 = off)"),
    ParamSpec("blur.phase", 0.0, 1.0, 0.0, "", scale="choice", smoothing_ms=0.0,
              doc="input = keep the input's phase; random = diffuse wash that rings through silence",
              choices=("input", "random")),
    ParamSpec("blur.mix", 0.0, 1.0, 1.0, "", smoothing_ms=30.0, doc="dry/blurred spectrum mix"),
)

_TWO_PI = 2.0 * np.pi


class SpectralBlur(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread)."""

    name = "blur"

    def __init__(self, table):
        self.table = table
        self._i_time, self._i_freq, self._i_phase, self._i_mix = (table.index(p.id) for p in PARAMS)

    def prepare(self, ctx):
        """Control thread: allocate every buffer."""
        super().prepare(ctx)
        c, nb = ctx.channels, ctx.n_bins
        self._mag = np.zeros((c, nb), np.float32)     # |X| of this frame, then frequency-smeared
        self._sm = np.zeros((c, nb), np.float32)      # time-smeared magnitude (state)
        self._cs = np.zeros((c, nb + 1), np.float64)  # prefix sums for the frequency box
        # Float64 box-average scratch: |X|, then the prefix sum at each box's upper edge (_a) and
        # lower edge (_b); _a - _b over the box's bin count is the average.
        self._a = np.zeros((c, nb), np.float64)
        self._b = np.zeros((c, nb), np.float64)
        self._g = np.zeros((c, nb), np.float32)       # input-phase mode: gain sm / |X| per bin
        self._cbuf = np.zeros((ctx.channels, ctx.n_bins), np.complex64)  # apply_gain's scratch
        self._ar = np.arange(nb, dtype=np.int64)      # bin indices
        self._lo = np.zeros(nb, np.int64)             # first bin of each bin's box
        self._hi = np.zeros(nb, np.int64)             # one past its last bin
        self._cnt = np.zeros((c, nb), np.float64)  # per row: a broadcast in-place divide copies
        self._w = -1
        # Random phase: a fixed table of unit phasors, read at a per-frame rotating offset.
        ph = np.random.default_rng(0xB1D).random((c, 32 * nb + 1)) * _TWO_PI
        self._jit_tab = np.exp(1j * ph).astype(np.complex64)
        self._jpos = 0
        self._rnd = np.zeros((c, nb), np.complex64)   # random-phase mode: sm * a unit phasor
        self.reset()

    def reset(self):
        self._sm.fill(0.0)
        self._jpos = 0
        self._first = True

    def _set_width(self, half: int) -> None:
        """Box of 2*half + 1 bins, clipped at DC and Nyquist (count adapts at the edges)."""
        nb = self._ar.size
        np.subtract(self._ar, half, out=self._lo)
        np.clip(self._lo, 0, nb, out=self._lo)
        np.add(self._ar, half + 1, out=self._hi)
        np.clip(self._hi, 0, nb, out=self._hi)
        for row in self._cnt:
            np.subtract(self._hi, self._lo, out=row, casting="unsafe")
        self._w = half

    def process_frame(self, spec):
        v = self.table.value
        ctx = self.ctx
        mag = self._mag
        np.abs(spec, out=mag)
        # Frequency smear: box average via prefix sums (float64 keeps the differences exact enough).
        bin_hz = ctx.sample_rate / ctx.n_fft
        half = int(0.5 * float(v[self._i_freq]) / bin_hz + 0.5)
        if half > 0:
            if half != self._w:
                self._set_width(half)
            cs = self._cs
            np.copyto(self._a, mag)  # cumsum/take in float64 only: mixed dtypes make numpy buffer
            np.cumsum(self._a, axis=1, out=cs[:, 1:])
            np.take(cs, self._hi, axis=1, out=self._a, mode="clip")  # "raise" mode buffers `out`
            np.take(cs, self._lo, axis=1, out=self._b, mode="clip")
            self._a -= self._b
            self._a /= self._cnt
            np.copyto(mag, self._a, casting="same_kind")
        # Time smear: one-pole per bin.
        tau_ms = float(v[self._i_time])
        a = float(np.exp(-(ctx.hop / ctx.sample_rate) / (tau_ms * 1e-3))) if tau_ms > 0.0 else 0.0
        sm = self._sm
        if self._first:
            np.copyto(sm, mag)  # start from the first frame, not from silence
            self._first = False
        else:
            sm *= a
            mag *= 1.0 - a
            sm += mag
        mix = float(v[self._i_mix])
        if mix <= 0.0:
            return
        if v[self._i_phase] < 0.5:
            # Input phase: spec <- spec * ((1 - mix) + mix * sm / |X|).
            np.abs(spec, out=self._g)
            np.maximum(self._g, 1e-20, out=self._g)
            np.divide(sm, self._g, out=self._g)
            self._g *= mix
            self._g += 1.0 - mix
            apply_gain(spec, self._g, self._cbuf)
        else:
            # spec <- (1 - mix) * spec + mix * sm * exp(i * random phase), all complex64 same-shape
            # (mixed dtypes or a strided 2-D operand would make numpy buffer).
            nb = sm.shape[1]
            j = self._jpos
            self._jpos = (j + 11) % (self._jit_tab.shape[1] - nb)
            r = self._rnd
            np.copyto(r, sm)
            for ch in range(r.shape[0]):
                r[ch] *= self._jit_tab[ch, j : j + nb]
            r *= mix
            spec *= 1.0 - mix
            spec += r
