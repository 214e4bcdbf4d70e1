"""Loudness follower: the broadband gain with which a target-following stage moves integrated loudness.

One operator for both engines that move audio toward a target profile (the ``match`` EQ and the ``resculpt``
model): each owns a :class:`LoudnessFollower` and calls it per STFT frame (5 ms hop) after its own band work, so
the comparison between the engines stays about what each does to timbre.

Meters (per frame, from the spectrum; streaming, no look-ahead):
  the K-weighted mean square of a frame is ``sum_c sum_k |H_K(f_k)|^2 c_k |X_ck|^2 / (n_fft sum(w^2))``
  (``c_k`` = 2 for the bins a one-sided spectrum folds, Parseval with the sqrt-Hann analysis window ``w``):
  BS.1770's K-weighting applied as its power response, channels summed (weights 1, as
  ``dsp.features.loudness``), on the stage's *input* frame and on its output *before* the follower's gain.
  Input loudness L: 400 ms blocks (80 hops) every 100 ms into ``_GatedHistogram`` (absolute gate −70 LUFS,
  relative −10 LU), the running gated integrated loudness, its history forgotten at a time constant of
  ``MEMORY_S`` so a live stream follows a change of source. The band work's loudness change D: output over input
  K-weighted energy, both summed with exponential weights of time constant ``CHANGE_TAU_S`` (energy-weighted, so
  pauses count for little): what the EQ or the model does to the level *now*. The gain is feed-forward (D is
  metered before it), and cancelling D moment by moment leaves the output the input shifted by one constant.

Goal (error e in LU, recomputed every 100 ms):
  absolute target (a fingerprint, profile file, reference clip): e = the target's ``lufs_integrated`` + the
  stage's loudness override − (L + D), less a dead band of ``DEADBAND_LU`` + ``DRIFT_K`` x the range of L over
  the last ``DRIFT_S`` (no move before L has that much history): the running estimate of a clip's integrated
  loudness is several LU off while it is still moving (a quiet intro reads 20 LU under the clip), and a target
  that *is* the input's own profile must not move the level (``scripts/loudness_follow_eval.py`` measures both);
  delta target (a description, a context): e = the delta's loudness move + the override − D (no move asked: the
  level the band work changed is put back); needs no estimate of L, so no dead band.
  No loudness in an absolute target: no gain.
Offline (``prime``, a render that measured the whole input first): L is the whole input's integrated loudness,
  exact from the first frame, so an absolute target needs no dead band and the gain starts at its goal on the
  first frame (D taken as 0 until the first block). A target that is the input's own profile then gets exactly
  0 dB. Live, nothing is primed.

Gain: ``a x e`` dB (``a`` = the stage's amount x its ``loudness_follow``), within ±``MAX_DB``, updated every
100 ms block and smoothed per frame with time constant ``TAU_S`` (live, and a delta target) or ``TAU_PRIMED_S``
(an absolute target offline: the model's own level change arrives late, when its identity gate opens, and a slow
gain would stack on it; a delta's gain only puts back the band work's change, and a fast one would act as a
compressor on it). 0 dB leaves the spectrum untouched (bit
for bit).

Loudness range (offline only, ``<prefix>.range_follow``): EBU Tech 3342's LRA is the spread (10th to 95th
percentile) of the gated 3 s short-term loudness S. A render that knows the whole input (:func:`range_trace`,
``plugin_host.render``) turns the input's S, centred on each moment, into a slow gain ``(k − 1)(S − L)`` that maps
every S onto ``L + k (S − L)`` around the integrated loudness L, so the percentiles, and the range, scale by
``k = goal LRA / input LRA``; the follower adds that trace (times the stage's amount x ``range_follow``) to its
gain frame by frame (:meth:`LoudnessFollower.prime_range`). Its S is centred because a 3 s window read live lags
1.5 s behind the speech it levels; a live stream therefore does not move the range (nothing primes it).
"""

from __future__ import annotations

import math

import numpy as np

from .features.loudness import _GatedHistogram, k_weighting_power
from .params import ParamSpec

MAX_DB = 24.0          # largest broadband move either way
TAU_S = 1.0            # time constant of the applied gain, live
TAU_PRIMED_S = 0.25    # offline (primed): the goal is exact, so the gain follows D's changes faster
MEMORY_S = 60.0        # the meters forget blocks older than about this
BLOCK_HOPS, STEP_HOPS = 80, 20  # 400 ms gating blocks every 100 ms at the 5 ms hop
CHANGE_TAU_S = 0.25    # time constant of the band work's loudness change D
DEADBAND_LU = 0.3      # an absolute target's dead band once the output meter's estimate has settled
DRIFT_K = 2.0          # plus this times the estimate's range (max - min) over the last DRIFT_S
DRIFT_S = 1.0
# Loudness range (see the module's docstring)
RANGE_STEP_S = 0.1         # the trace's step: EBU's short-term values every 100 ms
RANGE_CENTRE_S = 1.5       # half the 3 s short-term window: a trailing value at t + 1.5 s is the one centred at t
RANGE_K_MIN, RANGE_K_MAX = 0.25, 2.0  # the range is compressed at most 4x and expanded at most 2x
RANGE_MARGIN_LU = 3.0      # S is held within [P10 - margin, P95 + margin]: pauses and the gate's tail take the gain
                           # of the quietest counted speech, not a boost that grows as the room tone falls
RANGE_MAX_DB = 12.0        # largest range gain either way
RANGE_DEADBAND_LU = 0.2    # a goal this close to the input's range is no move (an own profile as target: exactly 0)
RANGE_PAUSE_LU = 20.0      # a moment whose 400 ms loudness is this far under L is a pause (the depth of EBU's LRA gate)
RANGE_MOMENT_CENTRE_S = 0.2  # half the 400 ms momentary window


def range_param(prefix: str) -> ParamSpec:
    """The ``<prefix>.range_follow`` parameter of a target-following stage."""
    # Not smoothed for the same reason as loudness_follow: the trace it scales is itself a slow (3 s) gain.
    return ParamSpec(f"{prefix}.range_follow", 0.0, 1.0, 1.0, "", smoothing_ms=0.0,
                     doc="how far an offline render moves the loudness range (EBU LRA) toward the target's (times "
                         "the amount; a slow gain on the 3 s short-term loudness, compressing or expanding around "
                         "the integrated level; live streams do not move it; 0 = off)")


def _gated(st_lufs: np.ndarray, rel_lu: float) -> np.ndarray:
    """The values of ``st_lufs`` (LUFS) that pass the absolute (−70 LUFS) and relative (``rel_lu``) gates of
    BS.1770 / EBU Tech 3342 (the relative gate is taken on the energy mean of the absolute-gated values)."""
    v = st_lufs[np.isfinite(st_lufs) & (st_lufs > -70.0)]
    if v.size == 0:
        return v
    gate = 10.0 * math.log10(float(np.mean(10.0 ** (v / 10.0)))) + rel_lu
    return v[v >= gate]


def _centred(trailing: np.ndarray, half_s: float) -> np.ndarray:
    """(n,) the value of a trailing-window loudness series (one per ``RANGE_STEP_S``) centred on each step: the one
    ``half_s`` (half the window) later, the last value past the end; silence (non-finite) as −inf."""
    shift = int(round(half_s / RANGE_STEP_S))
    c = np.concatenate([trailing[shift:], np.full(min(shift, trailing.size), trailing[-1])])
    return np.where(np.isfinite(c), c, -np.inf)


def range_trace(st_lufs, lufs_in: float, lra_in: float, lra_goal: float, momentary=None) -> np.ndarray | None:
    """The loudness-range gain of an offline render, for the whole move (the follower scales it by its amount).

    st_lufs: (n,) the input's trailing 3 s short-term loudness every ``RANGE_STEP_S`` (LUFS, −inf / NaN where
    silent; the first 3 s over the samples there are, not zero-padded); lufs_in: its integrated loudness L;
    lra_in: its loudness range (LU); lra_goal: the range to reach; momentary: None, or (n,) the trailing 400 ms
    momentary loudness at the same steps (the first 400 ms likewise). Returns (n,) float64 dB, entry j applying at
    ``j * RANGE_STEP_S`` seconds, or None when there is nothing to move (a goal within ``RANGE_DEADBAND_LU`` of
    the input's, a non-finite figure, or no gated speech).

    Each step's S is the one centred on it (the trailing value ``RANGE_CENTRE_S`` later; the last value past the
    end), held within the input's [P10, P95] widened by ``RANGE_MARGIN_LU``, and its gain ``(k − 1)(S − L)`` with
    ``k = lra_goal / lra_in`` within [``RANGE_K_MIN``, ``RANGE_K_MAX``]. Compressing (k < 1) with ``momentary``
    given, a pause (the 400 ms loudness centred on the step more than ``RANGE_PAUSE_LU`` under L) is not lifted
    (its gain at most 0 dB before the offset below): the 3 s windows across a pause read low however the speech
    beside them is levelled, and the lift they ask for would raise the room tone of every pause by up to
    ``RANGE_MAX_DB`` (a compressor's pumping). The trace is then offset so that the gated mean energy of S plus
    the gain (the integrated loudness, in 3 s terms) is the input's, and clipped to ±``RANGE_MAX_DB``."""
    st = np.asarray(st_lufs, np.float64)
    if st.ndim != 1 or st.size == 0 or not all(math.isfinite(v) for v in (lufs_in, lra_in, lra_goal)):
        return None
    if abs(lra_goal - lra_in) < RANGE_DEADBAND_LU or lra_in <= 0.0:
        return None
    gated = _gated(st, -20.0)
    if gated.size < 2:
        return None
    p10, p95 = np.percentile(gated, [10.0, 95.0])
    k = min(max(lra_goal / lra_in, RANGE_K_MIN), RANGE_K_MAX)
    x = np.clip(_centred(st, RANGE_CENTRE_S), p10 - RANGE_MARGIN_LU, p95 + RANGE_MARGIN_LU)
    g = (k - 1.0) * (x - lufs_in)
    if k < 1.0 and momentary is not None:
        pause = _centred(np.asarray(momentary, np.float64), RANGE_MOMENT_CENTRE_S) < lufs_in - RANGE_PAUSE_LU
        g[pause] = np.minimum(g[pause], 0.0)
    # keep the integrated loudness: the follower's loudness goal is met by its other half
    e0 = _gated(st, -10.0)
    with np.errstate(invalid="ignore"):
        e1 = _gated(np.where(np.isfinite(st), st + g, st), -10.0)
    if e0.size and e1.size:
        g -= 10.0 * math.log10(float(np.mean(10.0 ** (e1 / 10.0))) / float(np.mean(10.0 ** (e0 / 10.0))))
    return np.clip(g, -RANGE_MAX_DB, RANGE_MAX_DB)


def follow_param(prefix: str) -> ParamSpec:
    """The ``<prefix>.loudness_follow`` parameter of a target-following stage."""
    # No parameter smoothing: the gain it scales is itself smoothed (0.25-1 s) and updated every 100 ms, and a
    # ramp that only approaches 0 would leave a preset that turns the follower off a hair off its level.
    return ParamSpec(f"{prefix}.loudness_follow", 0.0, 1.0, 1.0, "", smoothing_ms=0.0,
                     doc="how far the broadband gain moves integrated loudness toward the target's (times the "
                         "amount; a description leaves the input's loudness unless it asks for a move; 0 = the "
                         "level is left as the band work makes it)")


class LoudnessFollower:
    """Per-frame meters and gain; the owning stage calls, on the audio thread, per frame:
    :meth:`measure_input` (the frame the output is made from), the stage's own work, :meth:`update` and
    :meth:`apply` on its output spectrum. ``prepare`` and ``reset`` as a stage's."""

    def __init__(self):
        self._primed = math.nan  # the whole input's loudness (LUFS) of an offline render, NaN live
        self._range = None       # the range gain trace of an offline render (dB per RANGE_STEP_S), None live

    def prepare(self, ctx) -> None:
        """ctx: the section's SpectralContext (rate, n_fft, hop, channels, n_bins). Allocates."""
        n_fft, nb = ctx.n_fft, ctx.n_bins
        w = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft))
        f = np.arange(nb) * ctx.sample_rate / n_fft
        fold = np.full(nb, 2.0)
        fold[0] = 1.0
        if n_fft % 2 == 0:
            fold[-1] = 1.0
        self._kw = (k_weighting_power(f, ctx.sample_rate) * fold / (n_fft * np.sum(w * w))).astype(np.float32)
        hop_s = ctx.hop / ctx.sample_rate
        self._a_live = 1.0 - math.exp(-hop_s / TAU_S)
        self._a_primed = 1.0 - math.exp(-hop_s / TAU_PRIMED_S)
        self._forget = math.exp(-STEP_HOPS * hop_s / MEMORY_S)
        self._hist_est = np.zeros(int(round(DRIFT_S / (STEP_HOPS * hop_s))) + 1)  # input estimates, 100 ms apart
        self._c = math.exp(-hop_s / CHANGE_TAU_S)
        self._steps_per_frame = hop_s / RANGE_STEP_S
        self._pow = np.zeros((ctx.channels, nb), np.float32)
        self._im = np.zeros((ctx.channels, nb), np.float32)
        self._ms = np.zeros(BLOCK_HOPS)  # the input's K-weighted mean square per hop
        self._hist = _GatedHistogram()
        self.reset()

    def reset(self) -> None:
        self._ms.fill(0.0)
        self._hist.clear()
        self._n = 0          # frames measured
        self._blocks = 0     # blocks added
        self._hist_est.fill(math.nan)
        self._loud = math.nan   # L, LUFS
        self._e_in = self._e_out = 0.0  # exponentially weighted K-weighted energies (for D)
        self._ms_in = 0.0
        self._want_db = 0.0
        self.gain_db = 0.0
        self.range_db = 0.0

    def prime(self, lufs) -> None:
        """Control side, before a render: the whole input's integrated loudness (LUFS), or None (live: the
        default). Kept across :meth:`reset`."""
        self._primed = math.nan if lufs is None else float(lufs)

    def prime_range(self, trace_db) -> None:
        """Control side, before a render: :func:`range_trace`'s (n,) dB gains (entry j at j x ``RANGE_STEP_S``
        from the first frame), or None (live: the default; no range gain). Kept across :meth:`reset`."""
        self._range = None if trace_db is None else np.ascontiguousarray(trace_db, np.float64)

    def _frame_ms(self, spec) -> float:
        """K-weighted mean square of one frame (channels summed)."""
        np.multiply(spec.real, spec.real, out=self._pow)
        np.multiply(spec.imag, spec.imag, out=self._im)
        self._pow += self._im
        s = 0.0
        for ch in range(self._pow.shape[0]):
            s += float(np.dot(self._pow[ch], self._kw))
        return s

    def measure_input(self, spec) -> None:
        """The stage's input frame (channels, n_bins) complex64, the one its output of this frame is made from."""
        self._ms_in = self._frame_ms(spec)
        self._ms[self._n % BLOCK_HOPS] = self._ms_in

    def update(self, spec, goal_lufs: float, goal_delta: float, amount: float, range_amount: float = 0.0) -> None:
        """Meter the stage's output ``spec`` before the gain and move the gain.

        goal_lufs: an absolute target's loudness (LUFS, override included) or NaN; goal_delta: a delta target's
        loudness move (LU, override included; 0: keep the input's) or NaN; amount: 0..1 scale of the move;
        range_amount: 0..1 scale of a primed range trace (:meth:`prime_range`; nothing without one)."""
        r = self._range
        if r is not None and range_amount > 0.0:
            # linear between the trace's 100 ms steps, the last value past its end
            pos = self._n * self._steps_per_frame
            i = int(pos)
            if i + 1 < r.shape[0]:
                v = float(r[i]) + (pos - i) * float(r[i + 1] - r[i])
            else:
                v = float(r[-1])
            self.range_db = range_amount * v
        else:
            self.range_db = 0.0
        self._e_in = self._c * self._e_in + self._ms_in
        self._e_out = self._c * self._e_out + self._frame_ms(spec)
        self._n += 1
        if self._n == 1 and math.isfinite(self._primed):  # offline: the whole input is known, start at the goal
            self.gain_db = self._want_db = self._goal(goal_lufs, goal_delta, amount)
        if self._n >= BLOCK_HOPS and self._n % STEP_HOPS == 0:
            h = self._hist
            h.energy *= self._forget
            h.count *= self._forget
            h.add(float(self._ms.sum()) / BLOCK_HOPS)
            self._loud = h.integrated()
            self._hist_est[self._blocks % self._hist_est.size] = self._loud
            self._blocks += 1
            self._want_db = self._goal(goal_lufs, goal_delta, amount)
        a = self._a_primed if math.isfinite(self._primed) and math.isfinite(goal_lufs) else self._a_live
        self.gain_db += a * (self._want_db - self.gain_db)

    def change_db(self) -> float:
        """D: the band work's recent loudness change, dB (0 before anything was metered)."""
        if self._e_in > 1e-20 and self._e_out > 1e-20:
            return 10.0 * math.log10(self._e_out / self._e_in)
        return 0.0

    def _goal(self, goal_lufs: float, goal_delta: float, amount: float) -> float:
        d = self.change_db() if self._n >= BLOCK_HOPS else 0.0
        if math.isfinite(goal_lufs) and math.isfinite(self._primed):
            e = goal_lufs - self._primed - d
        elif math.isfinite(goal_lufs) and math.isfinite(self._loud):
            e = goal_lufs - self._loud - d
            band = DEADBAND_LU + DRIFT_K * (float(self._hist_est.max()) - float(self._hist_est.min()))
            e = math.copysign(max(abs(e) - band, 0.0), e) if math.isfinite(band) else 0.0
        elif math.isfinite(goal_delta):
            e = goal_delta - d if self._n >= BLOCK_HOPS else 0.0
        else:
            e = 0.0
        return min(max(amount * e, -MAX_DB), MAX_DB)

    def apply(self, spec) -> None:
        """Scale ``spec`` (channels, n_bins) complex64 in place by the gain, loudness and range (nothing at 0 dB)."""
        g = self.gain_db + self.range_db
        if g != 0.0:
            spec *= np.float32(10.0 ** (g / 20.0))

    def loudness(self) -> float:
        """L: the input's running integrated loudness, LUFS (NaN before the first 400 ms block)."""
        return self._loud


def goal_of(profile) -> tuple[float, float]:
    """(goal_lufs, goal_delta) of a target Profile without overrides: an absolute target's ``lufs_integrated``
    (NaN when unknown), or a delta's loudness move (0 when it asks none)."""
    v = float(profile.dims.get("lufs_integrated", math.nan))
    if profile.kind == "delta":
        return math.nan, (v if math.isfinite(v) else 0.0)
    return v, math.nan


__all__ = ["LoudnessFollower", "follow_param", "goal_of", "range_param", "range_trace", "MAX_DB", "TAU_S"]
