"""Voice match: move a speaker's median F0, F0 range and formant scale toward a target profile's, streaming.

:class:`VoiceMatch` is the ``anon`` stage's machinery (:class:`~resculpt.dsp.voice.anon.AnonVoice`: F0 search,
sign-step median, pitch map target · (f0 / median)^range, envelope warp by a formant scale, the speaker's
formant scale measured from the long-term envelope against the average speaker's) driven by a
:class:`VoiceGoal` instead of the ``anon.*`` parameters. It has no slot of its own: the ``resculpt`` stage runs
it for ``resculpt.match`` = voice / all (docs/resculpt-stage.md). Its private parameter table holds the ``anon``
settings that stay fixed here: no McAdams warp (alpha 1), no timbre replacement, no formant follow, no seed.

Per frame, with amount a (0..1, the share of each move):

* **F0 level.** Output median (log2 Hz) = m + a (t - m), m the input's tracked median (the previous frame's:
  the median moves at most 1/100 octave per voiced frame once settled), t the target's ``f0_median_hz``; for a
  delta target, m + a log2(ratio). Without an F0 goal the median stays (t = m).
* **F0 range.** The input's 10th and 90th F0 percentiles (log2, voiced frames within ``OUTLIER_OCT`` of the
  median) are tracked by stochastic quantile steps (q += s (tau - [x < q])), so the input's p90 - p10 in
  semitones R_in is the fingerprint's ``f0_range_st`` measured as the audio streams. After ``RANGE_MIN``
  voiced frames the excursions around the median are scaled by (R_t / R_in)^a (clamped to
  ``RANGE_RATIO``), so the output's p90 - p10 lands on R_t.
* **Formants.** The envelope warp is (w_t / w_in)^a: w_in the input's formant scale re the average speaker
  (AnonVoice's long-term-envelope estimate, updated every 20 voiced frames; 1 until then), w_t the target's
  by :func:`band_formant_scale` (the same correlation against the same average-speaker envelope, on the
  profile's 32-band long-term envelope); a delta target's F1..F3 ratios give the warp directly.

Latency: none beyond the section's (AnonVoice has no look-ahead). Stereo: one pitch ratio and warp for all
channels (AnonVoice's). The estimators' agreement on real speech is measured by
``scripts/voice_match_estimators.py`` (docs/resculpt-stage.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..bands import N_BANDS, BandMap, band_centers_hz, erb_band_edges
from ..params import ParamTable
from . import anon
from .anon import MIN_VOICED, OUTLIER_OCT, AnonVoice

VOICED_STRICT = 0.8           # normalised autocorrelation (octave cost included) a voiced frame needs here
EDGE = 1.03                   # estimates within 3 % of the search's lowest F0 are the lag range's edge: unvoiced
RANGE_MIN = 200               # voiced frames (1 s of voiced speech) before the input's range is trusted
Q_STEP, Q_STEP0 = 0.002, 0.25  # octaves per voiced frame of the percentile trackers: settled, at the start
RANGE_RATIO = (0.25, 2.0)     # the range scale's limits
SCALE_GRID = 2.0 ** (np.arange(-48, 49) / 192.0)  # candidate formant scales 0.84 .. 1.19 in 1/16 semitone steps
_FORMANTS = ("f1_hz", "f2_hz", "f3_hz")


FIT_LO_HZ, FIT_HI_HZ, FIT_STEP_HZ = 300.0, 3500.0, 50.0  # where envelopes are compared (AnonVoice's band)
FIT_GRID = np.arange(FIT_LO_HZ, FIT_HI_HZ + 1.0, FIT_STEP_HZ)
FIT_MIN_FRAMES = 200          # input frames (1 s) in the long-term envelope before the first fit
FIT_EVERY = 20                # frames between two fits
FIT_RATE = 0.3                # each fit moves the ratio this share of the way (log)
ENV_FRAMES = 2000             # the input's long-term envelope: cumulative mean, then exponential over 10 s


def _interp_matrix(points_hz: np.ndarray) -> np.ndarray:
    """(len(points), 32): linear interpolation in Hz of 32 band levels at their centres, read at ``points_hz``."""
    cen = band_centers_hz(erb_band_edges(N_BANDS))
    return np.stack([np.interp(points_hz, cen, e) for e in np.eye(N_BANDS)], axis=1)


def _centred_slopes(m: np.ndarray) -> np.ndarray:
    """Rows of first differences along axis -2 of ``m`` with their mean over that axis removed (a tilt and a
    level are not taken for a formant shift)."""
    d = np.diff(m, axis=-2)
    return d - d.mean(axis=-2, keepdims=True)


def target_slopes(band_env_db) -> np.ndarray | None:
    """(len(FIT_GRID) - 1,) unit-norm centred slopes of a profile's 32-band envelope (dB) on ``FIT_GRID``, or
    None when the envelope does not define every band the grid reads."""
    env = np.asarray(band_env_db, dtype=np.float64)
    m = _interp_matrix(FIT_GRID)
    used = np.any(m != 0.0, axis=0)
    if not np.all(np.isfinite(env[used])):
        return None
    t = _centred_slopes(m) @ np.where(used, env, 0.0)
    n = float(np.linalg.norm(t))
    return t / n if n > 1e-9 else None


class EnvelopeScaleFit:
    """The formant ratio between a 32-band long-term envelope and a target's: the scale w (``SCALE_GRID``)
    for which the envelope read at f / w has the slopes that correlate best with the target's at f
    (``FIT_GRID``). Both sides are the fingerprint's band envelope (mean band power in dB), so no population
    reference and no estimator bias sits between them. :meth:`fit` allocates nothing."""

    def __init__(self):
        m = np.stack([_interp_matrix(FIT_GRID / w) for w in SCALE_GRID])        # (n_w, G, 32)
        self._a = np.ascontiguousarray(_centred_slopes(m).reshape(-1, N_BANDS))  # (n_w (G - 1), 32)
        self._y = np.zeros(self._a.shape[0])
        self._y2 = self._y.reshape(len(SCALE_GRID), -1)
        self._num = np.zeros(len(SCALE_GRID))
        self._den = np.zeros(len(SCALE_GRID))
        self._sq = np.zeros_like(self._y2)

    def fit(self, env_db: np.ndarray, slopes: np.ndarray) -> float:
        """log2 w for the envelope ``env_db`` (32,) float64 against :func:`target_slopes` ``slopes``."""
        np.matmul(self._a, env_db, out=self._y)
        np.matmul(self._y2, slopes, out=self._num)
        np.multiply(self._y2, self._y2, out=self._sq)
        np.add.reduce(self._sq, axis=1, out=self._den)
        np.maximum(self._den, 1e-18, out=self._den)
        np.sqrt(self._den, out=self._den)
        self._num /= self._den
        return math.log2(float(SCALE_GRID[int(np.argmax(self._num))]))


@dataclass(frozen=True)
class VoiceGoal:
    """What :class:`VoiceMatch` moves toward; NaN / None = no goal for that part.

    Absolute (``relative`` False, from a fingerprint or target): ``f0_oct`` = log2 of the median F0 in Hz,
    ``range_st`` = p90 - p10 of F0 in semitones, ``slopes`` = :func:`target_slopes` of its band envelope (the
    formant ratio is fitted against the input's as it streams). Relative (a delta): ``f0_oct`` = log2 of the F0
    ratio, ``range_st`` = semitones added to the input's range, ``formant_oct`` = log2 of the formant ratio."""

    f0_oct: float = math.nan
    range_st: float = math.nan
    formant_oct: float = math.nan
    slopes: np.ndarray | None = None
    relative: bool = False

    @property
    def active(self) -> bool:
        return self.slopes is not None or any(math.isfinite(v) for v in (self.f0_oct, self.range_st, self.formant_oct))

    @classmethod
    def from_profile(cls, p) -> VoiceGoal | None:
        """From a ``dsp.profile.Profile``: a delta's ``f0_median_hz`` ratio, ``f0_range_st`` offset and the
        geometric mean of its F1..F3 ratios; an absolute profile's median F0, F0 range and band-envelope
        slopes. None when the profile names none of them."""
        d = p.dims

        def pos(v):
            return math.isfinite(v) and v > 0.0

        if p.kind == "delta":
            fr = [math.log2(d[k]) for k in _FORMANTS if pos(d[k])]
            g = cls(math.log2(d["f0_median_hz"]) if pos(d["f0_median_hz"]) else math.nan,
                    d["f0_range_st"] if math.isfinite(d["f0_range_st"]) else math.nan,
                    sum(fr) / len(fr) if fr else math.nan, None, True)
        else:
            sl = target_slopes(p.band_env_db)
            if sl is not None:
                sl.setflags(write=False)
            g = cls(math.log2(d["f0_median_hz"]) if pos(d["f0_median_hz"]) else math.nan,
                    d["f0_range_st"] if pos(d["f0_range_st"]) else math.nan, math.nan, sl, False)
        return g if g.active else None


class VoiceMatch(AnonVoice):
    """process_frames(specs, n) / process_frame(spec): spec (channels, n_bins) complex64, edited in place
    (audio thread), toward the goal last given to :meth:`set_goal`. Needs ``observe_input`` per frame."""

    name = "voice-match"

    def __init__(self):
        table = ParamTable(anon.PARAMS)
        super().__init__(table)
        fixed = {"warp_alpha": 1.0, "timbre_pct": 0.0, "formant_follow": 0.0, "tilt_db_oct": 0.0, "seed": 0.0,
                 "detail_pct": 0.0, "vtln_pct": 0.0, "pitch_range": 1.0, "formant_ratio": 1.0}
        for k, v in fixed.items():  # written past the table's ranges on purpose: pitch_range may exceed 1 here
            table.value[self._i[k]] = v
        self.goal = VoiceGoal()
        self.amount = 1.0

    def set_goal(self, goal: VoiceGoal | None, amount: float) -> None:
        """The goal (None: keep the voice) and the share of each move (0..1) for the next frames."""
        self.goal = goal if goal is not None else VoiceGoal()
        self.amount = min(max(float(amount), 0.0), 1.0)

    def prepare(self, ctx):
        super().prepare(ctx)
        self._f0_floor = EDGE * self._fs0 / self._hi
        self._fitter = EnvelopeScaleFit()
        self._ana = np.ascontiguousarray(BandMap(ctx.sample_rate, ctx.n_fft, N_BANDS).analysis.T, np.float32)
        self._p32 = np.zeros(ctx.n_bins, np.float32)
        self._psum = np.zeros(ctx.n_bins, np.float32)
        self._b32 = np.zeros(N_BANDS, np.float32)
        self._b64 = np.zeros(N_BANDS)
        self._envp = np.zeros(N_BANDS)   # the input's long-term band power
        self._envd = np.zeros(N_BANDS)   # the same in dB
        self.reset_trackers()

    def _pick(self, n: int, e: float) -> float:
        """AnonVoice's F0 pick, held to a stricter voicing: on real speech its 0.5 threshold lets noise and
        breath through as F0s at the search range's floor (a third of LibriSpeech's 'voiced' frames at 71 Hz),
        which pull a median down by semitones (scripts/voice_match_estimators.py)."""
        f = super()._pick(n, e)
        if f > 0.0 and (float(self._score.max()) < VOICED_STRICT or f < self._f0_floor):
            return 0.0
        return f

    def reset_trackers(self):
        super().reset_trackers()
        self._pct = [math.nan, math.nan, math.nan]  # the input's 10th, 50th, 90th F0 percentiles, log2 Hz
        self._nq_f0 = 0
        self.input_median_hz = 0.0        # the input's long-term median and p90 - p10 (diagnostics and tests)
        self.range_st = 0.0
        self._nenv = 0
        self._lr = 0.0                    # fitted log2 formant ratio target / input
        self.fitted_ratio = 1.0           # 2^_lr (diagnostics and tests)
        if hasattr(self, "_envp"):
            self._envp.fill(0.0)

    def _targets(self):
        """(output median F0 in Hz, formant scale, McAdams alpha 1, tilt 0) for this frame. AnonVoice shifts by
        log2(returned F0) - its own median (a fast one: it follows the last second or so); the returned F0 is
        that median plus the move from the long-term one, so the shift is the same for every frame."""
        g, a, med, q50 = self.goal, self.amount, self._med, self._pct[1]
        if math.isnan(med) or math.isnan(q50):
            lt = med if not math.isnan(med) else 7.0  # no move until the long-term median has started
        elif g.relative:
            lt = med + a * g.f0_oct if math.isfinite(g.f0_oct) else med
        else:
            lt = med + a * (g.f0_oct - q50) if math.isfinite(g.f0_oct) else med
        if g.relative:
            fr = 2.0 ** (a * g.formant_oct) if math.isfinite(g.formant_oct) else 1.0
        else:
            fr = 2.0 ** (a * self._lr) if g.slopes is not None else 1.0
        return 2.0 ** lt, fr, 1.0, 0.0

    def _track_envelope(self, spec) -> None:
        """The input's long-term band power (channel sum) and, every FIT_EVERY frames, the formant ratio fit."""
        p, ps = self._p32, self._psum
        for ch in range(spec.shape[0]):
            np.abs(spec[ch], out=p)
            p *= p
            if ch == 0:
                np.copyto(ps, p)
            else:
                ps += p
        np.matmul(ps, self._ana, out=self._b32)
        np.copyto(self._b64, self._b32)
        if not float(self._b64.sum()) > 1e-12:
            return
        self._nenv += 1
        self._b64 -= self._envp
        self._b64 *= 1.0 / min(self._nenv, ENV_FRAMES)
        self._envp += self._b64
        sl = self.goal.slopes
        if sl is not None and self._nenv >= FIT_MIN_FRAMES and self._nenv % FIT_EVERY == 0:
            np.add(self._envp, 1e-20, out=self._envd)
            np.log10(self._envd, out=self._envd)
            self._envd *= 10.0
            self._lr += FIT_RATE * (self._fitter.fit(self._envd, sl) - self._lr)
            self.fitted_ratio = 2.0 ** self._lr

    def process_frame(self, spec):
        g, a = self.goal, self.amount
        v, i = self.table.value, self._i
        rng = 1.0
        if math.isfinite(g.range_st) and self._nq_f0 >= RANGE_MIN and self.range_st > 0.0:
            r_t = self.range_st + g.range_st if g.relative else g.range_st
            rng = min(max(r_t / self.range_st, RANGE_RATIO[0]), RANGE_RATIO[1]) ** a
        v[i["pitch_range"]] = rng
        self._track_envelope(spec)
        super().process_frame(spec)
        f0 = self.f0
        if f0 > 0.0 and self._nvoiced >= MIN_VOICED:
            x = math.log2(f0)
            if abs(x - self._med) <= OUTLIER_OCT:
                q = self._pct
                if self._nq_f0 == 0:
                    q[0] = q[1] = q[2] = x
                else:
                    s = max(Q_STEP, Q_STEP0 / (1.0 + 0.1 * self._nq_f0))
                    q[0] += s * (0.1 - (1.0 if x < q[0] else 0.0))
                    q[1] += s * (0.5 - (1.0 if x < q[1] else 0.0))
                    q[2] += s * (0.9 - (1.0 if x < q[2] else 0.0))
                self._nq_f0 += 1
                self.input_median_hz = 2.0 ** q[1]
                self.range_st = 12.0 * max(q[2] - q[0], 0.0)
