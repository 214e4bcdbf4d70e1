"""Profile-matching EQ: moves the input's spectral envelope toward a target profile's.

The non-learned baseline the resculpting model must beat, and a stage in its own right
(``match`` slot). Per STFT frame (5 ms hop):

1. Band power of the frame on the 32 ERB bands (:class:`~resculpt.dsp.bands.BandMap`), PSD-
   normalised exactly like :mod:`resculpt.dsp.features.spectral` (stereo: mean of channels when
   linked, so one gain keeps the image).
2. A running long-term estimate C of the input's band power over *active* frames (within 35 dB
   of the running level and above −90 dB): an exponential average with time constant
   ``match.window_s``, which starts as a plain running mean (weight 1/n) so the first seconds
   converge quickly. Offline renders may :meth:`MatchEQ.prime` it with the file's own envelope, and a live chain
   that knows its input beforehand holds it at that input profile (``prime(..., hold=True)``: no update).
3. Desired band gains, level-free: ``g = (T − mean T) − (C − mean C)`` in dB over the bands both
   define, centred from 60 Hz to 0.45 x the rate (others get 0 dB) (a delta target gives g = its offsets directly); clipped to [−max_cut, +max_boost],
   scaled by ``amount``, smoothed across ±``smooth_bands`` bands (triangular).
4. Time smoothing per band in dB: ``attack_ms`` where a gain falls (cuts deepen), ``release_ms``
   where it rises. A new target therefore crossfades in over the same times.
5. Band gains (dB) interpolated to bins with the BandMap's synthesis weights; ``spec *= 10^(g/20)``.

6. Loudness (``match.loudness_follow``): the shared loudness follower (:mod:`resculpt.dsp.loudness_follow`, the
   same operator as the ``resculpt`` stage's) meters the frame before step 1 and the EQ's output, and applies one
   broadband gain toward the target's integrated loudness (a delta target: the input's loudness plus the
   delta's move). Without a target nothing is metered or applied. An offline render also moves the loudness range
   (``match.range_follow``; the follower's primed range trace).
The target is a :class:`MatchTarget` published through the stage's inbox (:mod:`resculpt.dsp.inbox`,
``Chain.set_target`` on a chain); the audio thread reads the reference once per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .bands import N_BANDS, BandMap
from .inbox import Inbox
from .loudness_follow import LoudnessFollower, follow_param, goal_of, range_param
from .params import ParamSpec
from .stft import SpectralStage


PARAMS = (
    ParamSpec("match.amount", 0.0, 1.0, 1.0, "", smoothing_ms=50.0, doc="how far to move toward the target (0 = off)"),
    ParamSpec("match.attack_ms", 5.0, 5000.0, 200.0, "ms", scale="log", smoothing_ms=0.0,
              doc="time for a band gain to fall (cut)"),
    ParamSpec("match.release_ms", 5.0, 5000.0, 500.0, "ms", scale="log", smoothing_ms=0.0,
              doc="time for a band gain to rise (boost)"),
    ParamSpec("match.max_boost_db", 0.0, 24.0, 18.0, "dB", smoothing_ms=50.0, doc="largest boost per band"),
    ParamSpec("match.max_cut_db", 0.0, 36.0, 24.0, "dB", smoothing_ms=50.0, doc="largest cut per band"),
    ParamSpec("match.smooth_bands", 0.0, 6.0, 0.0, "bands", smoothing_ms=0.0,
              doc="half-width of the triangular smoothing of gains across bands"),
    ParamSpec("match.window_s", 0.5, 30.0, 6.0, "s", scale="log", smoothing_ms=0.0,
              doc="time constant of the input's long-term envelope estimate"),
    follow_param("match"),
    ParamSpec("match.loudness_db", -24.0, 24.0, 0.0, "dB", smoothing_ms=50.0,
              doc="adds this to the loudness follower's goal (the target's integrated loudness, or a description's "
                  "loudness move)"),
    range_param("match"),
)

@dataclass(frozen=True)
class MatchTarget:
    """What the match stage moves toward, built on a control thread and never mutated afterwards.

    Attributes:
        env_db: (32,) float64, read-only: an absolute long-term band envelope in dB (NaN = band not
            compared), or with ``delta`` the per-band gain offsets in dB.
        delta: True for offsets (a delta profile), False for an absolute envelope.
        lufs: an absolute target's integrated loudness (LUFS; NaN: unknown, or a delta), the loudness
            follower's goal (``dsp.loudness_follow``).
        lufs_delta: a delta target's loudness move (LU; 0 when it asks none; NaN: absolute or unknown).
    """

    env_db: np.ndarray
    delta: bool = False
    lufs: float = math.nan
    lufs_delta: float = math.nan

    @classmethod
    def make(cls, target, delta: bool | None = None, loudness=None) -> "MatchTarget | None":
        """From a Profile (its kind decides ``delta``, its loudness the follower's goal), a (32,) dB array
        (``delta`` as given; ``loudness``: (lufs, lufs_delta) as :func:`~resculpt.dsp.loudness_follow.goal_of`
        gives them, None: no loudness goal), or None."""
        if target is None:
            return None
        if isinstance(target, MatchTarget):
            return target
        from .profile import Profile, target_envelope

        if isinstance(target, Profile):
            env, is_delta = target_envelope(target)
            loudness = goal_of(target)
        else:
            env = np.asarray(target, dtype=np.float64)
            is_delta = bool(delta)
        if env.shape != (N_BANDS,):
            raise ValueError(f"a match target needs {N_BANDS} band values, got shape {env.shape}")
        env = env.astype(np.float64, copy=True)
        env.setflags(write=False)
        return cls(env, bool(is_delta), *(loudness or (math.nan, math.nan)))


class MatchEQ(SpectralStage):
    name = "match"

    inbox_type = MatchTarget

    def __init__(self, table, inbox: Inbox | None = None):
        self.table = table
        self.inbox = inbox if inbox is not None else Inbox(MatchTarget)
        self._idx = [table.index(p.id) for p in PARAMS]
        self._idx_arr = np.array(self._idx, dtype=np.intp)
        self._follow = LoudnessFollower()
        self._vnew = np.zeros(len(PARAMS))
        self._vold = np.zeros(len(PARAMS))
        self._vchg = np.zeros(len(PARAMS), bool)
        self._primed = None
        self._hold = False

    # -- control side ---------------------------------------------------------------------------
    def prime(self, env_db, hold: bool = False) -> None:
        """Start the long-term input estimate from a known envelope (dB, 32 bands; offline renders);
        None: start empty again (the default, as in a live stream). ``hold``: keep it there instead of
        going on adapting over ``match.window_s`` (an input profile known beforehand: a fixed EQ)."""
        if env_db is None:
            self._primed, self._hold = None, False
        else:
            e = np.asarray(env_db, dtype=np.float64)
            self._primed = np.where(np.isfinite(e), 10.0 ** (e / 10.0), 0.0)
            self._hold = bool(hold)
        if hasattr(self, "_avg"):
            self.reset()

    def prime_loudness(self, lufs) -> None:
        """The whole input's integrated loudness (LUFS) for the loudness follower (offline renders,
        ``plugin_host.render.prime_loudness``); None: follow a running estimate, as a live stream does."""
        self._follow.prime(lufs)

    def prime_range(self, trace_db) -> None:
        """The loudness-range gain trace of an offline render (``dsp.loudness_follow.range_trace``); None: no range
        move (live)."""
        self._follow.prime_range(trace_db)

    # -- lifecycle ------------------------------------------------------------------------------
    def prepare(self, ctx):
        super().prepare(ctx)
        self.bands = BandMap(ctx.sample_rate, ctx.n_fft, N_BANDS)
        # Per-bin work in float32 (the spectrum's precision: mixed dtypes make numpy allocate cast
        # buffers), per-band state in float64.
        self._ana_t = np.ascontiguousarray(self.bands.analysis.T, dtype=np.float32)   # (n_bins, bands)
        self._syn_t = np.ascontiguousarray(self.bands.synthesis.T, dtype=np.float32)  # (bands, n_bins)
        from .profile import COMPARE_LO_HZ

        c = self.bands.centers_hz
        self._valid = self.bands.valid & (c <= 0.45 * ctx.sample_rate)
        self._match = self._valid & (c >= COMPARE_LO_HZ)   # bands the gains are computed on
        # Bands outside the matched set take the gain of the nearest matched band (flat edges).
        idx = np.flatnonzero(self._match)
        if idx.size == 0:
            idx = np.array([0])
        self._edge = idx[np.abs(np.arange(N_BANDS)[:, None] - idx[None, :]).argmin(axis=1)]
        # De-blur: synthesis then analysis (triangular weights) smears a band gain into its
        # neighbours; solve (M^T M + lam I) g = M^T d with M = A S so the *measured* band change
        # equals the desired one (lam keeps it smooth).
        m = (self.bands.analysis.astype(np.float64) @ self.bands.synthesis.astype(np.float64))
        m = m[np.ix_(idx, idx)]
        k = np.linalg.solve(m.T @ m + 0.02 * np.eye(idx.size), m.T)
        self._deblur = np.zeros((N_BANDS, N_BANDS))
        self._deblur[np.ix_(idx, idx)] = k
        self._tmp = np.zeros(N_BANDS)
        self._wvalid = self._valid / max(1, int(self._valid.sum()))
        # Per-target constants (see _okw_for), in buffers of their own so a new target costs no allocation.
        self._okw_env = None
        self._okw = None
        self._cmp = np.zeros(N_BANDS, bool)          # compared bands: finite in the target and matched here
        self._okw_buf = np.zeros(N_BANDS)            # their weights in the mean (1 / count each)
        self._okmask = np.zeros(N_BANDS)             # 0/1 of the same bands
        self._env0 = np.zeros(N_BANDS)               # the target with 0 dB where it is not compared
        # Triangular smoothing across bands for every whole match.smooth_bands value (0..6), made here so a
        # change of the parameter picks a matrix instead of building one on the audio thread.
        self._smooths = []
        smooth_max = next(p.max for p in PARAMS if p.id == "match.smooth_bands")
        for k in range(int(smooth_max) + 1):
            m = np.zeros((N_BANDS, N_BANDS))
            for i in range(N_BANDS):
                for j in range(max(0, i - k), min(N_BANDS, i + k + 1)):
                    m[i, j] = k + 1 - abs(i - j)
            self._smooths.append(m / m.sum(axis=1, keepdims=True))
        w = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(ctx.n_fft) / ctx.n_fft))
        self._norm = 1.0 / float(np.sum(w * w))
        nb = ctx.n_bins
        self._pow = np.zeros((ctx.channels, nb), np.float32)
        self._im = np.zeros((ctx.channels, nb), np.float32)
        self._pm = np.zeros(nb, np.float32)
        self._bp32 = np.zeros(N_BANDS, np.float32)
        self._bp = np.zeros(N_BANDS)
        self._g32 = np.zeros(N_BANDS, np.float32)
        self._avg = np.zeros(N_BANDS)
        self._cur = np.zeros(N_BANDS)
        self._des = np.zeros(N_BANDS)
        self._gdb = np.zeros(N_BANDS)
        self._coef = np.zeros(N_BANDS)
        self._ok = np.zeros(N_BANDS, bool)
        self._bin_g = np.zeros(nb, np.float32)
        self._smooth_key = None
        self._cache = None
        self._follow.prepare(ctx)
        self.reset()

    def reset(self):
        if self._primed is not None:
            np.copyto(self._avg, self._primed)
            self._n = 10 ** 6
        else:
            self._avg.fill(0.0)
            self._n = 0
        self._gdb.fill(0.0)
        self._cache = None
        if hasattr(self, "_pow"):
            self._follow.reset()

    def _update(self):
        # change detection without per-frame Python objects (tuples/floats would be kept by freelists)
        np.take(self.table.value, self._idx_arr, out=self._vnew, mode="clip")
        np.not_equal(self._vnew, self._vold, out=self._vchg)
        if self._cache is not None and not self._vchg.any():
            return
        np.copyto(self._vold, self._vnew)
        self._cache = True
        amount, att, rel, boost, cut, sb, win, follow, self._loud_db, rfollow = (float(x) for x in self._vnew)
        hop_s = self.ctx.hop / self.ctx.sample_rate
        self._amount, self._boost, self._cut, self._loud_amount = amount, boost, cut, amount * follow
        self._range_amount = amount * rfollow
        self._a_att = math.exp(-hop_s / (att * 1e-3))
        self._a_rel = math.exp(-hop_s / (rel * 1e-3))
        self._alpha = 1.0 - math.exp(-hop_s / win)
        k = int(round(sb))
        if k != self._smooth_key:
            self._smooth_key = k
            self._smooth = self._smooths[k]

    def process_frame(self, spec):
        self._update()
        t = self.inbox.value
        if t is not None:
            self._follow.measure_input(spec)
        p = self._pow
        np.multiply(spec.real, spec.real, out=p)
        np.multiply(spec.imag, spec.imag, out=self._im)
        p += self._im
        np.copyto(self._pm, p[0])
        for c in range(1, self.ctx.channels):  # linked: mean of the channels (np.mean would allocate)
            self._pm += p[c]
        self._pm *= self._norm / self.ctx.channels
        np.matmul(self._pm, self._ana_t, out=self._bp32)
        self._bp[:] = self._bp32
        lvl = float(np.dot(self._bp, self._wvalid))
        if lvl > 1e-9 and not self._hold:
            ref = float(np.dot(self._avg, self._wvalid))
            if self._n == 0 or lvl > ref * 10 ** (-3.5):
                self._n += 1
                a = max(1.0 / self._n, self._alpha)
                np.subtract(self._bp, self._avg, out=self._tmp)
                self._tmp *= a
                self._avg += self._tmp
        des = self._des
        if t is None or self._n == 0:
            des.fill(0.0)
        else:
            env, is_delta = t.env_db, t.delta
            if is_delta:
                np.copyto(des, env)
            else:
                np.maximum(self._avg, 1e-20, out=self._cur)
                np.log10(self._cur, out=self._cur)
                self._cur *= 10.0
                okw = self._okw_for(env)
                if okw is not None:
                    # des = (T - C) - weighted mean over the compared bands, 0 elsewhere
                    np.subtract(self._env0, self._cur, out=des)
                    des -= float(np.dot(des, okw))
                    des *= self._okmask
                else:
                    des.fill(0.0)
            if not is_delta:
                np.matmul(self._deblur, des, out=self._tmp)
                np.take(self._tmp, self._edge, out=des, mode="clip")  # mode=raise buffers
            np.clip(des, -self._cut, self._boost, out=des)
            des *= self._amount
            if self._smooth_key:
                np.matmul(self._smooth, des, out=self._tmp)
                np.copyto(des, self._tmp)
        # attack where the gain falls, release where it rises
        g = self._gdb
        np.copyto(self._coef, self._a_rel)
        np.less(des, g, out=self._ok)
        np.copyto(self._coef, self._a_att, where=self._ok)
        des -= g
        np.subtract(1.0, self._coef, out=self._coef)
        des *= self._coef
        g += des
        np.multiply(g, math.log(10.0) / 20.0, out=self._tmp)
        self._g32[:] = self._tmp
        np.matmul(self._g32, self._syn_t, out=self._bin_g)
        np.exp(self._bin_g, out=self._bin_g)
        # complex64 *= float32 would allocate a complex cast buffer: scale both parts in place
        g = self._bin_g
        for c in range(spec.shape[0]):  # per row: a 2-D broadcast into strided views is buffered
            row = spec[c]
            re, im = row.real, row.imag
            np.multiply(re, g, out=re)
            np.multiply(im, g, out=im)
        if t is not None:  # loudness: metered on the input and on the EQ's output, then one broadband gain
            self._follow.update(spec, t.lufs + self._loud_db, t.lufs_delta + self._loud_db, self._loud_amount,
                                self._range_amount)
            self._follow.apply(spec)

    def _okw_for(self, env):
        """Per-target constants, computed once when a new target reference is seen (the first frame
        after a swap; a 32-element job): compared-band weights for the mean, 0/1 mask, NaN-free target."""
        if env is not self._okw_env:
            ok = self._cmp
            np.isfinite(env, out=ok)
            np.logical_and(ok, self._match, out=ok)
            self._okw_env = env
            count = int(np.count_nonzero(ok))
            if count:
                np.copyto(self._okmask, ok)
                np.divide(self._okmask, count, out=self._okw_buf)  # float64 in: a bool operand needs a cast buffer
                self._okw = self._okw_buf
                self._env0.fill(0.0)
                np.copyto(self._env0, env, where=ok)
            else:
                self._okw = None
        return self._okw

    def gains_db(self) -> np.ndarray:
        """Current band gains (dB), for meters and tests."""
        return self._gdb.copy()
