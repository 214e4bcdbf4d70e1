"""Rhythmic / LFO mask: band-selective amplitude modulation that can sweep through the spectrum.

Bins between ``lfo.low_hz`` and ``lfo.high_hz`` are multiplied by
``g = 1 - depth * (1 - s(phase))`` where ``s`` is the LFO shape in 0..1 (1 = open):

- ``sine``: 0.5 + 0.5 cos(2 pi phase);
- ``square``: a trapezoid (sine driven 4x into clipping), open half the cycle, closed the other
  half, with ~1/12-cycle edges so it chops without clicking;
- ``saw``: 1 - frac(phase), an accented ramp-down per cycle (a "pumping" shape);
- ``random-step``: one deterministic pseudo-random level per cycle (sample and hold).

The rate is ``lfo.rate_hz``, or, when ``lfo.bpm`` > 0, the tempo-synced ``lfo.division`` (one cycle
per 1/1 .. 1/32 note, triplets and dotted). ``lfo.spread_cycles`` offsets the phase across the band by up
to that many cycles, from 0 at ``low_hz`` to ``spread`` at ``high_hz``, spaced on the ERB scale, so
the pattern sweeps upward through the spectrum (negative: downward). Bins outside the band are
untouched; the band edges fade over 1 ERB so the band is not a brick wall.

The phase is phase0 + rate * (frame index) * hop / sample_rate, accumulated from reset() in
float64, so it is deterministic and streaming == offline for any block partition. Stereo channels
share one gain (the image is kept).
"""

from __future__ import annotations

import numpy as np

from .bands import hz_to_erb
from .params import ParamSpec
from .spectral_util import apply_gain
from .stft import SpectralStage

SHAPES = ("sine", "square", "saw", "random-step")
DIVISIONS = ("1/1", "1/2", "1/4", "1/8", "1/16", "1/32", "1/4T", "1/8T", "1/16T", "1/4D", "1/8D")
# Length of each division in whole notes (1/4 = a beat in 4/4).
_DIV_WHOLE = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 1 / 6, 1 / 12, 1 / 24, 0.375, 0.1875)

PARAMS = (
    ParamSpec("lfo.rate_hz", 0.05, 40.0, 2.0, "Hz", scale="log", smoothing_ms=50.0,
              doc="modulation rate (ignored while lfo.bpm > 0)"),
    ParamSpec("lfo.bpm", 0.0, 300.0, 0.0, "bpm", smoothing_ms=0.0,
              doc="tempo for a synced rate (0 = free-running at rate_hz)"),
    ParamSpec("lfo.division", 0.0, float(len(DIVISIONS) - 1), 2.0, "", scale="choice", smoothing_ms=0.0,
              doc="one LFO cycle per this note value when synced", choices=DIVISIONS),
    ParamSpec("lfo.depth", 0.0, 1.0, 0.8, "", smoothing_ms=30.0, doc="0 = no modulation, 1 = full chop"),
    ParamSpec("lfo.shape", 0.0, 3.0, 0.0, "", scale="choice", smoothing_ms=0.0,
              doc="LFO waveform", choices=SHAPES),
    ParamSpec("lfo.spread_cycles", -4.0, 4.0, 0.0, "cycles", smoothing_ms=50.0,
              doc="phase offset from low_hz to high_hz, in cycles: the pattern sweeps through the band"),
    ParamSpec("lfo.low_hz", 20.0, 20000.0, 20.0, "Hz", scale="log", smoothing_ms=50.0,
              doc="lowest modulated frequency"),
    ParamSpec("lfo.high_hz", 20.0, 24000.0, 24000.0, "Hz", scale="log", smoothing_ms=50.0,
              doc="highest modulated frequency"),
)

_TWO_PI = 2.0 * np.pi
_RANDOM_STEPS = 256


def lfo_rate_hz(rate_hz: float, bpm: float, division: int) -> float:
    """The LFO frequency: free ``rate_hz``, or one cycle per ``division`` note at ``bpm``."""
    if bpm <= 0.0:
        return rate_hz
    whole_s = 4.0 * 60.0 / bpm
    return 1.0 / (whole_s * _DIV_WHOLE[int(division)])


class LfoMask(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread)."""

    name = "lfo"

    def __init__(self, table):
        self.table = table
        (self._i_rate, self._i_bpm, self._i_div, self._i_depth, self._i_shape, self._i_spread,
         self._i_lo, self._i_hi) = (table.index(p.id) for p in PARAMS)

    def prepare(self, ctx):
        super().prepare(ctx)
        nb = ctx.n_bins
        self._erb = hz_to_erb(ctx.freqs_hz).astype(np.float64)
        self._pos = np.zeros(nb, np.float64)    # 0..1 position across the band (ERB)
        self._w = np.zeros(nb, np.float64)      # band weight 0..1 (edges fade over 1 ERB)
        self._ph = np.zeros(nb, np.float64)     # LFO phase of each bin this frame, cycles
        self._s = np.zeros(nb, np.float64)      # LFO shape value 0..1 per bin, then the gain
        self._idx = np.zeros(nb, np.int64)      # random-step shape: cycle index into _steps
        self._g = np.zeros(nb, np.float32)      # gain per bin, float32 for apply_gain
        self._cbuf = np.zeros((ctx.channels, ctx.n_bins), np.complex64)  # apply_gain's scratch
        self._steps = np.random.default_rng(0x1F0).random(_RANDOM_STEPS)
        self._band_key = None
        self.reset()

    def reset(self):
        self.phase = 0.0  # cycles, wrapped to [0, 1)

    def _update_band(self, lo_hz: float, hi_hz: float) -> None:
        key = (lo_hz, hi_hz)
        if key == self._band_key:
            return
        self._band_key = key
        e_lo, e_hi = float(hz_to_erb(min(lo_hz, hi_hz))), float(hz_to_erb(max(lo_hz, hi_hz)))
        e = self._erb
        # Position 0..1 across the band, for the spread.
        np.subtract(e, e_lo, out=self._pos)
        self._pos *= 1.0 / max(e_hi - e_lo, 1e-6)
        np.clip(self._pos, 0.0, 1.0, out=self._pos)
        # Weight: 1 inside, linear fade to 0 over 1 ERB outside each edge.
        w, t = self._w, self._s
        np.subtract(e, e_lo - 1.0, out=w)
        np.subtract(e_hi + 1.0, e, out=t)
        np.minimum(w, t, out=w)
        np.clip(w, 0.0, 1.0, out=w)

    def process_frame(self, spec):
        v = self.table.value
        ctx = self.ctx
        self._update_band(float(v[self._i_lo]), float(v[self._i_hi]))
        depth = float(v[self._i_depth])
        shape = int(v[self._i_shape])
        ph0 = self.phase
        # Advance for the next frame (the phase is that of this frame's analysis).
        rate = lfo_rate_hz(float(v[self._i_rate]), float(v[self._i_bpm]), int(v[self._i_div]))
        self.phase = (ph0 + rate * ctx.hop / ctx.sample_rate) % 1.0
        if depth <= 0.0:
            return
        ph, s = self._ph, self._s
        np.multiply(self._pos, float(v[self._i_spread]), out=ph)
        ph += ph0
        if shape == 0 or shape == 1:  # sine / trapezoid square
            np.multiply(ph, _TWO_PI, out=s)
            np.cos(s, out=s)
            if shape == 1:
                s *= 4.0
                np.clip(s, -1.0, 1.0, out=s)
            s *= 0.5
            s += 0.5
        elif shape == 2:  # saw down: 1 - frac(phase)
            np.floor(ph, out=s)
            np.subtract(ph, s, out=s)
            np.subtract(1.0, s, out=s)
        else:  # random step: a fixed random level per cycle index
            np.floor(ph, out=s)
            np.remainder(s, _RANDOM_STEPS, out=s)
            np.copyto(self._idx, s, casting="unsafe")
            np.take(self._steps, self._idx, out=s, mode="clip")  # "raise" mode buffers `out`
        # g = 1 - depth * w * (1 - s)
        np.subtract(1.0, s, out=s)
        s *= self._w
        s *= -depth
        s += 1.0
        np.copyto(self._g, s, casting="same_kind")
        apply_gain(spec, self._g, self._cbuf)
