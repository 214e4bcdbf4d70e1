"""Voice match: move a speaker's median F0 and F0 range (and, for a relative target, the formants) toward a
target, streaming.

:class:`VoiceMatch` is the ``anon`` stage's machinery (:class:`~resculpt.dsp.voice.anon.AnonVoice`: F0 search,
sign-step median, peak-locked pitch shift, envelope warp) driven by a :class:`VoiceGoal` instead of the
``anon.*`` parameters. It has no slot of its own: the ``resculpt`` stage runs it for ``resculpt.match`` = voice /
all (docs/resculpt-stage.md). Its private parameter table holds the ``anon`` settings that stay fixed here: the
intonation kept by AnonVoice (range 1: the range match below scales around the long-term median itself), no
McAdams warp (alpha 1), no timbre replacement, no formant follow, no seed.

Per frame, with amount a (0..1, the share of the move):

* **Voicing.** AnonVoice's F0 pick, held to a stricter voicing (``VOICED_STRICT``) and refusing picks at the
  search range's floor: with its own 0.5 threshold, noise and breath pass as F0s near 71 Hz (a third of the
  'voiced' frames of a LibriSpeech clip), which pull a median down by semitones.
* **The input's median F0** m (log2 Hz) is a sign-step median of the voiced frames within ``OUTLIER_OCT`` of
  AnonVoice's own (fast) median, with a step of 1/8 octave decaying to ``Q_STEP`` (1/1000 octave per voiced
  frame): it follows the speaker over seconds (a speaker who starts a recording high and declines is moved by
  what they do now, which is what lands the output's whole-clip median on the target's).
* **F0 level.** Every frame is shifted by a (t - m): t = log2 of the target's ``f0_median_hz``; for a delta
  target a (log2 ratio). AnonVoice computes the shift against its fast median, so :meth:`_targets` hands it that
  median plus the move.
* **F0 range.** The input's 10th, 50th and 90th F0 percentiles (log2, the same voiced frames as its median),
  from a histogram of all its voiced frames since reset (1/48-octave bins, interpolated within the bin; read
  on each of the first 100 such frames, then every ``RANGE_EVERY``), so R_in = 12 (p90 - p10) is the
  fingerprint's ``f0_range_st`` measured as the audio streams. After ``RANGE_MIN`` voiced frames (1 s of
  voicing) each voiced frame's excursion from the histogram's median is scaled by (R_t / R_in)^a, clamped to
  ``RANGE_RATIO``: R_t the target's ``f0_range_st``, or R_in plus a delta's. Before that, and without a range
  goal, the intonation is kept. The centre is the histogram's, not the sign-step median above: that one
  follows the intonation within a phrase, and excursions measured from it are too small to scale.
* **Pauses** keep their pitch (``anon.PAUSE_DB``): an unvoiced frame more than 12 dB below the speaker's median
  voiced level (power above 100 Hz) takes no shift. Shifted with the voice, a pause's mains hum left its place and
  its noise came out louder at 100-700 Hz (the 2 ms envelope smears the hum's peak over those bins, and the
  shifted noise is put back on that envelope; tests/test_resculpt_voice_match.py), which a fingerprint reads as
  a brighter voice: the median spectral centroid counts the pauses. A frame that AnonVoice's own voicing (0.5)
  finds periodic above the search's floor, refused only by the stricter voicing here, is soft or creaky voice,
  not a pause: it takes the voice's shift (left at the speaker's pitch, it would sound, and read, as the input's
  F0 under the moved voice).
* **Formants**: the envelope is warped by r^a: for a delta target, r the geometric mean of its F1..F3 ratios; for
  an absolute target, the median of the target's F1..F3 over the input's (:func:`absolute_formant_oct`), which only
  an offline render knows (the whole input's medians, measured before it renders: :attr:`VoiceMatch.formant_oct_abs`).
  Live, an absolute target's formants are left to the model's band-envelope gains. (A ratio fitted between the
  input's and the target's long-term band *envelopes* instead, applied the same way, raised the benchmark's LPC
  formant error from 9.4 % to 17.6 %: docs/resculpt-stage.md, "Voice match".)

* **Pitch override** (``resculpt.pitch_st``, given to :meth:`VoiceMatch.set_goal`): every frame's pitch moves by a
  further a * pitch_st semitones on top of the goal (alone, with a goal of no move, when the stage runs the voice
  match for it only). The formant override is applied after the model (see the stage), not here.

Latency: none beyond the section's (AnonVoice has no look-ahead). Stereo: one pitch ratio and warp for all
channels (AnonVoice's). ``scripts/voice_match_estimators.py`` measures the median F0 against the fingerprint's
on real speech.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..params import ParamTable
from . import anon
from .anon import MIN_VOICED, OUTLIER_OCT, AnonVoice, sign_step_median

VOICED_STRICT = 0.8           # normalised autocorrelation (octave cost included) a voiced frame needs here
EDGE = 1.03                   # picks within 3 % of the search's lowest F0 are the lag range's edge: unvoiced
RANGE_MIN = 200               # voiced frames (1 s of voiced speech) before the input's F0 range is trusted
Q_STEP, Q_STEP0 = 0.001, 0.125  # octaves per voiced frame of the input's median: settled, at the start
# The input's F0 percentiles for the range come from a histogram of every voiced frame since reset (as the
# fingerprint's come from the whole clip): 1/48-octave bins (a quarter semitone) from 50 Hz over 5 octaves.
H_LO_OCT, H_PER_OCT, H_BINS, RANGE_EVERY = math.log2(50.0), 48, 240, 10
# AnonVoice's synthesized excitation (``anon.excite_pct``) in the voice match: off. It had been measured as a cure
# for low voices moved up keeping their own periodicity and cost naturalness (docs/resculpt-stage.md, "Low voices
# moved up"); AnonVoice's harmonic shift now moves those voices. The benchmark's ``--voice-excite`` sets this
# constant.
EXCITE_PCT = 0.0
RANGE_RATIO = (0.25, 2.0)     # the range scale's limits (a monotone voice is not given 4x its intonation)
_FORMANTS = ("f1_hz", "f2_hz", "f3_hz")


@dataclass(frozen=True)
class VoiceGoal:
    """What :class:`VoiceMatch` moves toward; NaN = no goal for that part.

    Absolute (``relative`` False, from a fingerprint or target): ``f0_oct`` = log2 of the median F0 in Hz,
    ``range_st`` = its F0 range (p90 - p10, semitones). Relative (a delta): ``f0_oct`` = log2 of the F0 ratio,
    ``range_st`` = semitones added to the input's range, ``formant_oct`` = log2 of the formant ratio."""

    f0_oct: float = math.nan
    formant_oct: float = math.nan
    relative: bool = False
    range_st: float = math.nan

    @property
    def active(self) -> bool:
        return any(math.isfinite(v) for v in (self.f0_oct, self.formant_oct, self.range_st))

    @classmethod
    def from_profile(cls, p) -> VoiceGoal | None:
        """From a ``dsp.profile.Profile``: an absolute profile's median F0 and F0 range; a delta's ``f0_median_hz``
        ratio, ``f0_range_st`` offset and the geometric mean of its F1..F3 ratios. None when it names none."""
        d = p.dims

        def oct_(v):
            return math.log2(v) if math.isfinite(v) and v > 0.0 else math.nan

        rng = d.get("f0_range_st", math.nan)
        if p.kind == "delta":
            fr = [oct_(d[k]) for k in _FORMANTS if math.isfinite(oct_(d[k]))]
            g = cls(oct_(d["f0_median_hz"]), sum(fr) / len(fr) if fr else math.nan, True,
                    rng if math.isfinite(rng) else math.nan)
        else:
            g = cls(oct_(d["f0_median_hz"]), range_st=rng if math.isfinite(rng) and rng > 0.0 else math.nan)
        return g if g.active else None


FORMANT_LIMITS = (0.7, 1.4)    # an absolute target's formant ratio is held within the formant override's range


def absolute_formant_oct(input_dims: dict, target) -> float:
    """log2 of the formant ratio that moves a voice with median formants ``input_dims`` ({"f1_hz", "f2_hz",
    "f3_hz"}, the whole input's, :class:`~resculpt.dsp.profile.FormantAccumulator`) toward an absolute ``target``
    Profile's: the median of log2(target / input) over F1..F3 where both are known, held within
    ``FORMANT_LIMITS``; NaN when none is known or the target is a delta.

    The median, not the mean a delta's ratios take (a delta's are asked, these are measured): two speakers'
    median F1 often differ far more than their F2 and F3 (the LPC picker's broad-F1 rule reads a different pole
    on each), and that one ratio dragged a mean's warp the wrong way for the other two."""
    if target.kind == "delta":
        return math.nan
    v = []
    for k in _FORMANTS:
        a, b = float(input_dims.get(k, math.nan)), float(target.dims.get(k, math.nan))
        if math.isfinite(a) and math.isfinite(b) and a > 0.0 and b > 0.0:
            v.append(math.log2(b / a))
    if not v:
        return math.nan
    return min(max(float(np.median(v)), math.log2(FORMANT_LIMITS[0])), math.log2(FORMANT_LIMITS[1]))


class VoiceMatch(AnonVoice):
    """process_frames(specs, n) / process_frame(spec): spec (channels, n_bins) complex64, edited in place
    (audio thread), toward the goal last given to :meth:`set_goal`. Needs ``observe_input`` per frame."""

    name = "voice-match"
    use_kernels = False  # the resculpt stage's renders stay on the numpy loops (see VoiceShift.use_kernels)

    def __init__(self):
        table = ParamTable(anon.PARAMS)
        super().__init__(table)
        fixed = {"warp_alpha": 1.0, "timbre_pct": 0.0, "formant_follow": 0.0, "tilt_db_oct": 0.0, "seed": 0.0,
                 "detail_pct": 0.0, "vtln_pct": 0.0, "pitch_range": 1.0, "formant_ratio": 1.0, "excite_pct": EXCITE_PCT}
        for k, v in fixed.items():
            table.value[self._i[k]] = v
        self.goal = VoiceGoal()
        self.amount = 1.0
        self._st_oct = 0.0  # the pitch override's move on top of the goal, octaves
        # An absolute goal's formant move (log2 ratio, :func:`absolute_formant_oct`), set by the control side before
        # an offline render (ResculptStage.prime_formants); NaN: none (live). Kept across reset.
        self.formant_oct_abs = math.nan

    def set_goal(self, goal: VoiceGoal | None, amount: float, pitch_st: float = 0.0) -> None:
        """The goal (None: keep the voice), the share of the move (0..1), and a pitch move on top of the goal (the
        ``resculpt.pitch_st`` override, semitones; also scaled by the share) for the next frames."""
        self.goal = goal if goal is not None else VoiceGoal()
        self.amount = min(max(float(amount), 0.0), 1.0)
        self._st_oct = float(pitch_st) / 12.0

    def _pick(self, n: int, e: float) -> float:
        f = super()._pick(n, e)
        if f > 0.0 and (float(self._score.max()) < VOICED_STRICT or f < self._f0_floor):
            # periodic at AnonVoice's own threshold and above the search's floor (where hum and rumble are picked):
            # a soft or creaky stretch of voice, too weak for an F0 here, but not a pause
            self._weak_last = f >= self._f0_floor
            return 0.0
        return f

    def reset_trackers(self):
        super().reset_trackers()
        self._lmed = math.nan            # the input's median F0, log2 Hz
        self._nm = 0
        self.input_median_hz = 0.0    # 2^_m (diagnostics and tests)
        if hasattr(self, "_hist"):
            self._hist.fill(0.0)
        self.range_st = 0.0           # 12 (q90 - q10): the input's F0 range (diagnostics and tests)
        self._q50 = math.nan          # the histogram's median, log2 Hz: the centre of the range scaling
        self._rng = 1.0               # this frame's range ratio (target / input)^amount

    def _targets(self):
        """(F0 in Hz, formant scale, McAdams alpha 1, tilt 0) for this frame: AnonVoice shifts by log2(F0) minus
        its own fast median, so the F0 handed back is that median plus the move. The move is the level's (the
        input's median toward the goal) plus the range's: this frame's excursion from the histogram's median
        scaled by the range ratio (AnonVoice's own range scaling works around its fast median, which follows
        the intonation within a second and would leave little to scale)."""
        g, a, fast = self.goal, self.amount, self._med
        lt = fast if not math.isnan(fast) else 7.0  # 7.0: any F0; AnonVoice shifts nothing before a median exists
        if not math.isnan(fast):
            if math.isfinite(g.f0_oct):
                if g.relative:
                    lt += a * g.f0_oct
                elif not math.isnan(self._lmed):
                    lt += a * (g.f0_oct - self._lmed)
            lt += a * self._st_oct
            f0 = self._f0_cur
            if self._rng != 1.0 and f0 > 0.0:
                dev = math.log2(f0) - self._q50
                if abs(dev) <= OUTLIER_OCT:
                    lt += (self._rng - 1.0) * dev
        fo = g.formant_oct if g.relative else self.formant_oct_abs
        fr = 2.0 ** (a * fo) if math.isfinite(fo) else 1.0
        return 2.0 ** lt, fr, 1.0, 0.0

    def process_frame(self, spec):
        g = self.goal
        self._rng = 1.0
        if math.isfinite(g.range_st) and self._nm >= RANGE_MIN and self.range_st > 0.0:
            r_t = self.range_st + g.range_st if g.relative else g.range_st
            self._rng = min(max(r_t / self.range_st, RANGE_RATIO[0]), RANGE_RATIO[1]) ** self.amount
        super().process_frame(spec)
        f0 = self.f0
        if f0 > 0.0 and self._nvoiced >= MIN_VOICED:
            x = math.log2(f0)
            if abs(x - self._med) <= OUTLIER_OCT:
                self._lmed = sign_step_median(self._lmed, x, self._nm, Q_STEP, Q_STEP0)
                self._nm += 1
                self.input_median_hz = 2.0 ** self._lmed
                b = int((x - H_LO_OCT) * H_PER_OCT)
                self._hist[min(max(b, 0), H_BINS - 1)] += 1.0
                if self._nm < 10 * RANGE_EVERY or self._nm % RANGE_EVERY == 0:
                    q10, self._q50, q90 = self._quantiles()
                    self.range_st = 12.0 * max(q90 - q10, 0.0)

    def prepare(self, ctx):
        self._hist = np.zeros(H_BINS, np.float64)  # voiced frames per 1/48 octave of F0 since reset
        super().prepare(ctx)
        self._f0_floor = EDGE * self._fs0 / self._hi

    def _quantiles(self) -> tuple[float, float, float]:
        """The 10th, 50th and 90th percentiles (log2 Hz) of the histogram's F0s, linear within their bins."""
        h, n = self._hist, self._nm
        out = [math.nan, math.nan, math.nan]
        k, want, c = 0, 0.1 * n, 0.0
        for i in range(H_BINS):
            hi = float(h[i])
            while hi > 0.0 and c + hi >= want:
                out[k] = H_LO_OCT + (i + (want - c) / hi) / H_PER_OCT
                k += 1
                if k == 3:
                    return out[0], out[1], out[2]
                want = (0.5, 0.9)[k - 1] * n
            c += hi
        return out[0], out[1], out[2]
