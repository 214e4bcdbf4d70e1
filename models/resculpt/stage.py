"""The resculpting generator as a spectral stage (numpy + onnxruntime; never imports torch): ``resculpt`` slot.

Per frame (the section's 5 ms hop; the model needs the 20 ms ``default`` window: 50 Hz bins):
0. in ``resculpt.match`` voice / all, when the target carries a voice goal (a median F0; a delta's F0 and
   formant ratios): the voice match (``dsp.voice.match.VoiceMatch``) shifts the incoming frame's pitch (and
   warps a delta's formants) by ``resculpt.amount`` of the move, so the model below sees and finishes the moved
   voice; its F0 search reads the section's input frame (``observe_input``). The model's voice / all
   conditioning leaves the dims the voice match moves unset (``VOICE_DSP_DIMS``), as in training;
1. features of the newest spectrum (linked: channel-mean power, one set of gains for every channel, so a
   stereo or multichannel image stays put; the model's running fingerprint is one stream, so the stage is
   linked whatever the section's ``linked``): band dB and low-bin dB into preallocated rows;
2. the conditioning vector: the published :class:`ResculptTarget`'s vector for the ``resculpt.match`` mode,
   plus the overrides (``resculpt.bass_db`` ...) times their unit directions, plus the input-band validity of
   this rate. A delta target (a descriptor, a context) is passed in relative form (``common.delta_cond``:
   flag, band offsets, scalar moves in z units): the graph adds the offsets to its own running input shape and
   opens its gate by the delta's exact size, so a delta needs nothing from the stage per frame. Rebuilt only
   when the target or the table changes;
3. the ONNX core, bound by IOBinding to two preallocated state sets used in turn: the target kind's graph
   (``Bundle.session_for``), one call for all the frames of the section's batch (a 10 ms block: 2 frames) when
   the bundle has the T-frame graphs (their ``hold`` input holds the running fingerprint of an offline render), else
   one call per frame (the one-frame graphs have no hold: the stage puts the state back after each frame);
   a held render runs even its single frames through the T-frame graph, so the graph always sees ``hold``
   (a bundle's ``residual_live`` switch reads it);
4. the outputs, scaled toward the identity by ``resculpt.amount`` (gains in dB, copy-up gains and deep-filter
   deltas times the amount), applied to the frame ``lookahead`` hops old, kept in a ring of the last
   ``DF_ORDER`` spectra (plus a batch's frames): band gains to bins (``BandMap.synthesis``), the deep filter on
   the low bins over the ring, the copy-up excitation (``net.FrameIO.apply``'s numpy twin). Without a published
   target the delayed frame passes unchanged and the model is not run (the latency stays ``lookahead`` hops
   either way);
5. the formant override's envelope warp (``resculpt.formant_ratio``), then the loudness follower: the output's
   loudness is metered after everything that changes it.

The bundle is the shipped one (``bundle.bundle_dir()``) unless one is given; :func:`bundle.load_bundle` caches
it, so a graph rebuild does not reload it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from resculpt.dsp.bands import BandMap
from resculpt.dsp.descriptors import CENTERS, high_shelf, low_shelf
from resculpt.dsp.features.spectral import tilt_slope_db_oct, tilt_weights
from resculpt.dsp.inbox import Inbox
from resculpt.dsp.loudness_follow import LoudnessFollower, follow_param, goal_of, range_param
from resculpt.dsp.params import ParamSpec, ParamTable
from resculpt.dsp.profile import DIM_BY_NAME, DIMS, Profile, ProfileError, compare_mask
from resculpt.dsp.stft import MAX_BATCH, SpectralStage
from resculpt.dsp.voice.match import VoiceGoal, VoiceMatch
from resculpt.dsp.voice.shift import PARAMS as SHIFT_PARAMS
from resculpt.dsp.voice.shift import VoiceShift
from resculpt.models.mask.bundle import iobinding_runner

from . import common as C
from .bundle import Bundle, load_bundle

MATCH_MODES = tuple(C.MATCH)  # ("timbre", "voice", "all"): the order of resculpt.match's choices
# The rate a delta target's conditioning is built at, before the stage knows its own: the stage then sets the
# input-validity part and moves the tilt slot's share made by the band offsets from the slope over the 48 kHz
# tilt bands (100 Hz..8 kHz) to the slope over its rate's (16 kHz: 100 Hz..7.2 kHz; up to 0.1 dB/oct apart for
# the vocabulary's shapes), which is the slope the graph's relative prior subtracts.
DELTA_COND_RATE = 48000
BASS_HZ, BRIGHT_HZ = 150.0, 3000.0  # corners of the bass and brightness overrides (the descriptors' "bass", "bright")

PARAMS = (
    ParamSpec("resculpt.amount", 0.0, 1.0, 1.0, "", smoothing_ms=50.0,
              doc="how far the model moves the sound toward the target (0 = the input, delayed by the look-ahead)"),
    ParamSpec("resculpt.match", 0.0, 2.0, 0.0, "", scale="choice", smoothing_ms=0.0, choices=MATCH_MODES,
              doc="which target dimensions move: timbre (envelope, tilt, brightness, dynamics: the model), voice "
                  "(timbre plus the median F0, and a delta target's F0 and formant ratios: the voice DSP before the "
                  "model), all (voice plus pace)"),
    ParamSpec("resculpt.bass_db", -12.0, 12.0, 0.0, "dB", smoothing_ms=50.0,
              doc="adds a low shelf (150 Hz corner) of this gain to the target's band envelope"),
    ParamSpec("resculpt.brightness_db", -12.0, 12.0, 0.0, "dB", smoothing_ms=50.0,
              doc="adds a high shelf (3 kHz corner) of this gain to the target's band envelope"),
    ParamSpec("resculpt.tilt_db_oct", -6.0, 6.0, 0.0, "dB/oct", smoothing_ms=50.0,
              doc="adds this spectral tilt (around 1 kHz) to the target's envelope and to its tilt dimension"),
    ParamSpec("resculpt.loudness_db", -24.0, 24.0, 0.0, "dB", smoothing_ms=50.0,
              doc="adds this to the target's integrated loudness (when the target has one)"),
    ParamSpec("resculpt.pitch_st", -12.0, 12.0, 0.0, "st", smoothing_ms=50.0,
              doc="moves the pitch by this many semitones on top of what the target asks (in every match mode: "
                  "the voice match runs for it), formants kept"),
    ParamSpec("resculpt.formant_ratio", 0.7, 1.4, 1.0, "x", scale="log", smoothing_ms=50.0,
              doc="moves the formants (spectral envelope) of the model's output by this ratio, on top of the "
                  "target's envelope (in every match mode), pitch kept"),
    follow_param("resculpt"),
    range_param("resculpt"),
)
OVERRIDES = PARAMS[2:6]  # bass, brightness, tilt, loudness: each a unit direction in conditioning space
# Pitch and formants are not conditioning moves (the generator has no pitch operator, and it would match a warped
# voice's envelope back onto the target's): the pitch override is a move of the voice match before the model (with
# it away from 0 the voice match runs in timbre mode too), the formant override an envelope warp of the model's
# output (dsp/voice/shift.py's formant path), so the output's formants are the target's times the ratio.
VOICE_OVERRIDES = PARAMS[6:8]
_NO_VOICE_GOAL = VoiceGoal(relative=True)  # the voice match's goal when only the pitch override moves the voice
I_LOUDNESS = 3  # the loudness override's place in OVERRIDES (also the loudness follower's offset)

_DIM_I = {d.name: i for i, d in enumerate(DIMS)}
_I_TILT_REL = C.DZ0 + _DIM_I["tilt_db_oct"]  # a relative row's tilt slot
# Moved by the voice match (dsp/voice/match.py) in voice / all mode, so left out of the model's conditioning
# there: the generator has no pitch operator and was trained with these slots unset.
VOICE_DSP_DIMS = ("f0_median_hz", "f0_range_st", "f1_hz", "f2_hz", "f3_hz")


def _check_finite(p: Profile, where: str) -> None:
    bad = [k for k, v in p.dims.items() if math.isinf(v)] + [f"band_env_db[{i}]" for i, v in
                                                              enumerate(p.band_env_db) if math.isinf(v)]
    if bad:
        raise ProfileError(f"{where}: infinite value in {', '.join(bad[:4])}; a profile holds finite numbers or null")


# The band shape (32,) dB of one unit of each override: low shelf, high shelf, tilt around 1 kHz, loudness (none).
_OVERRIDE_SHAPES = (low_shelf(BASS_HZ, 1.0), high_shelf(BRIGHT_HZ, 1.0), np.log2(np.maximum(CENTERS, 1.0) / 1000.0),
                    np.zeros(C.N_BANDS))


def _directions(ok: np.ndarray, mask: np.ndarray, relative: bool = False) -> np.ndarray:
    """(len(OVERRIDES), COND_DIM): the change of the conditioning vector per unit of each override, for a
    target whose compared bands are ``ok`` (32,) bool and whose dim mask is ``mask`` (N_DIMS,); a relative
    target's scalar overrides move its relative slots (``common.DZ0``), which need no mask: every relative row
    can move tilt and loudness."""
    d = np.zeros((len(OVERRIDES), C.COND_DIM), np.float32)
    shapes = _OVERRIDE_SHAPES
    for k, s in enumerate(shapes):
        if ok.any():
            d[k, C.S0 : C.M0] = np.where(ok, s - s[ok].mean(), 0.0) / 3.0  # level-free, / 3 dB like the target shape
    for k, name in ((2, "tilt_db_oct"), (3, "lufs_integrated")):
        i = _DIM_I[name]
        if relative:
            d[k, C.DZ0 + i] = 1.0 / DIM_BY_NAME[name].scale
        elif mask[i]:
            d[k, i] = 1.0 / DIM_BY_NAME[name].scale  # one unit of the override in z units
    if relative:
        # a relative tilt slot is the whole tilt move (common.delta_z): the shelves' own slopes count in it, as
        # the tilt override's 1 dB/oct does (its shape's slope is exactly 1), at the rate delta_cond is built at
        i = C.DZ0 + _DIM_I["tilt_db_oct"]
        for k in (0, 1):
            d[k, i] = tilt_slope_db_oct(shapes[k], DELTA_COND_RATE) / DIM_BY_NAME["tilt_db_oct"].scale
    return d


@dataclass(frozen=True)
class ResculptTarget:
    """The published target, built on a control thread by :meth:`make` (read-only arrays).

    Attributes:
        cond: (3, COND_DIM) float32: the conditioning vector per match mode (``MATCH_MODES`` order); its
            input-validity part is left 0 (the stage fills it for its rate); a delta is in relative form
            (``common.delta_cond``: the graph adds its band offsets to the running input shape).
        dirs: (3, len(OVERRIDES), COND_DIM) float32: conditioning change per unit of each override.
        offsets: (32,) float32 dB band offsets of a delta target (0 where the delta leaves a band), or None.
        ok: (32,) float32 0/1: the bands the target defines and compares.
        source: what the target was built from (for messages and state).
        voice: what the voice match moves toward in voice / all mode (None: the target names no F0, F0 range
            or formant figure, and the voice is left as it is).
        lufs: an absolute target's integrated loudness (LUFS; NaN: unknown, or a delta), the loudness follower's goal.
        lufs_delta: a delta target's loudness move (LU; 0 when it asks none; NaN for an absolute target).
    """

    cond: np.ndarray
    dirs: np.ndarray
    offsets: np.ndarray | None = None
    ok: np.ndarray | None = None
    source: str = ""
    voice: VoiceGoal | None = None
    lufs: float = math.nan
    lufs_delta: float = math.nan

    @classmethod
    def make(cls, target, source: str = "") -> ResculptTarget | None:
        """From a Profile (fingerprint or target: absolute; delta: offsets from the running input), a
        ResculptTarget (as is) or None. Raises ProfileError for a target the model cannot move toward: an
        infinite value, or an absolute profile with no compared band and no known timbre dimension (a
        fingerprint of silence measures nothing)."""
        if target is None or isinstance(target, ResculptTarget):
            return target
        if not isinstance(target, Profile):
            raise ProfileError(f"a resculpt target is a Profile, got {type(target).__name__}")
        where = f"target {source or target.meta.get('source') or target.kind}"
        _check_finite(target, where)
        cmp = compare_mask()
        env = target.env()
        cond = np.zeros((len(MATCH_MODES), C.COND_DIM), np.float32)
        dirs = np.zeros((len(MATCH_MODES), len(OVERRIDES), C.COND_DIM), np.float32)
        offsets = None
        if target.kind == "delta":
            ok = cmp.copy()
            offsets = np.where(np.isfinite(env) & cmp, env, 0.0).astype(np.float32)
            for m, mode in enumerate(MATCH_MODES):
                cond[m] = C.delta_cond(target, DELTA_COND_RATE, mode, skip=() if mode == "timbre" else VOICE_DSP_DIMS)
                cond[m, C.V0 : C.REL_I] = 0.0
                dirs[m] = _directions(ok, np.zeros(C.N_DIMS, bool), relative=True)
        else:
            ok = np.isfinite(env) & cmp
            timbre = [n for n in C.MATCH["timbre"] if math.isfinite(target.dims[n])]
            if not ok.any() and not timbre:
                raise ProfileError(f"{where}: no band envelope and no timbre dimension is known (a profile of "
                                   "silence?): the model has nothing to move toward")
            unvoiced = replace(target, dims={**target.dims, **{k: math.nan for k in VOICE_DSP_DIMS}})
            for m, mode in enumerate(MATCH_MODES):
                cond[m] = C.cond_from_profile(target if mode == "timbre" else unvoiced, 48000, mode)
                cond[m, C.V0 : C.REL_I] = 0.0
                dirs[m] = _directions(ok, cond[m, C.N_DIMS : 2 * C.N_DIMS] > 0)
        okf = ok.astype(np.float32)
        for a in (cond, dirs, offsets, okf):
            if a is not None:
                a.setflags(write=False)
        return cls(cond, dirs, offsets, okf, source or str(target.meta.get("source", "")),
                   VoiceGoal.from_profile(target), *goal_of(target))


class ResculptStage(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place."""

    name = "resculpt"
    inbox_type = ResculptTarget
    wants_input = True  # the voice match's F0 search reads the section's input frame

    def __init__(self, table, inbox: Inbox | None = None, bundle: Bundle | str | Path | None = None):
        self.table = table
        self.inbox = inbox if inbox is not None else Inbox(ResculptTarget)
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.latency_frames = self.bundle.lookahead_frames
        self._i_amount = table.index("resculpt.amount")
        self._i_match = table.index("resculpt.match")
        self._i_ovr = np.array([table.index(p.id) for p in OVERRIDES], np.intp)
        self._i_pitch, self._i_formant = (table.index(p.id) for p in VOICE_OVERRIDES)
        self._i_follow = table.index("resculpt.loudness_follow")
        self._i_range = table.index("resculpt.range_follow")
        self._voice = VoiceMatch()
        self._warp_table = ParamTable(SHIFT_PARAMS)  # the formant override's warp of the output (its own table)
        self._warp = VoiceShift(self._warp_table)
        self._warp.formant_floor_db = 60.0  # see VoiceShift.formant_floor_db
        self._i_warp = self._warp_table.index("voice.formant_ratio")
        self._follow = LoudnessFollower()
        self._primed = None
        self._hold = False
        self._bind_held1: list = []  # prepare: held single-frame calls through the T-frame graph

    @staticmethod
    def warps_envelope(params, target: Profile) -> bool:
        """Control side: whether the output's envelope is warped on purpose toward ``target`` (a Profile) under the
        values in ``params``: the formant override away from 1, or, in voice / all mode, a delta target's formant
        move (the voice match's envelope warp). An offline render's second pass then corrects the loudness only."""
        if params.get("resculpt.formant_ratio") != 1.0:
            return True
        if MATCH_MODES[int(round(params.get("resculpt.match")))] == "timbre" or target.kind != "delta":
            return False
        g = VoiceGoal.from_profile(target)
        return g is not None and math.isfinite(g.formant_oct) and g.formant_oct != 0.0

    @staticmethod
    def moves_formants(params, target: Profile) -> bool:
        """Control side: whether the voice match would run toward ``target`` (a Profile) under the values in
        ``params`` (voice / all mode, a target that names a voice figure, amount > 0), so that a formant move
        primed with :meth:`prime_formants` takes effect."""
        if MATCH_MODES[int(round(params.get("resculpt.match")))] == "timbre" or not params.get("resculpt.amount") > 0.0:
            return False
        return VoiceGoal.from_profile(target) is not None

    @staticmethod
    def override_band_db(params) -> np.ndarray:
        """Control side: (32,) dB, the band shape the overrides (``resculpt.bass_db``, ``brightness_db``,
        ``tilt_db_oct``) add to the target's envelope at their values in ``params`` (the chain's table, whose
        values reach the stage's at its next block; level included: compare it level-free)."""
        return sum(float(params.get(p.id)) * sh for p, sh in zip(OVERRIDES, _OVERRIDE_SHAPES))

    def prime(self, env_db, hold: bool = False) -> None:
        """Control side: the whole input's long-term band envelope (32,) dB (the fingerprint's ``band_env_db``, the
        features' PSD convention; NaN: a band the input does not reach) as the model's running fingerprint from the
        first frame, as if it had heard a steady input for longer than its time constant (offline renders,
        ``plugin_host.render.stream_with_target``; a live chain's input profile, ``ChainHost.set_input_profile``);
        None: learn it as a live stream does. Takes effect at ``reset()``.
        ``hold``: keep it there on every frame instead of letting it follow the input (tau 3 s), so the net compares
        the target with the whole input throughout, as a static EQ would."""
        if env_db is None:
            self._primed, self._hold = None, False
            return
        e = np.asarray(env_db, np.float64)
        if e.shape != (C.N_BANDS,):
            raise ValueError(f"resculpt.prime: a ({C.N_BANDS},) band envelope, got shape {e.shape}")
        den = C.RUN_STEADY_WEIGHT
        num = np.where(np.isfinite(e), 10.0 ** (np.nan_to_num(e) / 10.0), 0.0) * den
        self._primed = (num.astype(np.float32), np.float32(den))
        self._hold = bool(hold)

    def prime_loudness(self, lufs) -> None:
        """Control side: the whole input's integrated loudness (LUFS) for the loudness follower (offline renders,
        ``plugin_host.render.prime_loudness``); None: follow a running estimate, as a live stream does."""
        self._follow.prime(lufs)

    def prime_formants(self, oct_: float) -> None:
        """Control side: an absolute target's formant move for the voice match (log2 ratio,
        ``dsp.voice.match.absolute_formant_oct`` of the whole input's formants; offline renders,
        ``plugin_host.render.stream_with_target``), applied in voice / all mode times the amount; NaN: none (live).
        Kept across ``reset()``."""
        self._voice.formant_oct_abs = float(oct_)

    def prime_range(self, trace_db) -> None:
        """Control side: the loudness-range gain trace of an offline render (``dsp.loudness_follow.range_trace``);
        None: no range move (live)."""
        self._follow.prime_range(trace_db)

    def prepare(self, ctx):
        n_fft, hop = C.frame_sizes(ctx.sample_rate)
        if (ctx.n_fft, ctx.hop) != (n_fft, hop):
            raise ValueError(f"resculpt: the model runs {C.WINDOW_MS:g} ms windows at a {C.HOP_MS:g} ms hop "
                             f"({n_fft}/{hop} samples at {ctx.sample_rate} Hz); this section has {ctx.n_fft}/{ctx.hop}: "
                             f"use the {C.STFT_CONFIG!r} STFT config")
        super().prepare(ctx)
        self._voice.prepare(ctx)
        self._warp.prepare(ctx)
        self._follow.prepare(ctx)
        c, nb = ctx.channels, ctx.n_bins
        N, L = self.bundle.df_order, self.latency_frames
        bm = BandMap(ctx.sample_rate, n_fft, C.N_BANDS)
        w = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft))
        self._norm = np.float32(1.0 / np.sum(w * w) / c)  # PSD convention, channel mean folded in
        self._ana_t = np.ascontiguousarray(bm.analysis.T, dtype=np.float32)    # (nb, 32)
        self._syn_t = np.ascontiguousarray(bm.synthesis.T, dtype=np.float32)   # (32, nb)
        self._shift = C.copy_shift_bins(ctx.sample_rate)
        self._valid = C.input_valid(ctx.sample_rate).astype(np.float32)
        # a delta's tilt slot holds its offsets' slope over DELTA_COND_RATE's tilt bands; this turns it into the
        # slope over this rate's (common.delta_cond at this rate), per unit of the band slot (offsets / 3 dB)
        fix = tilt_weights(ctx.sample_rate) - tilt_weights(DELTA_COND_RATE)
        self._tilt_fix = (fix * C.BAND_SCALE_DB / DIM_BY_NAME["tilt_db_oct"].scale).astype(np.float32)[None]
        self._tilt_tmp = np.zeros(1, np.float32)
        self._pow = np.zeros((c, nb), np.float32)
        self._im = np.zeros((c, nb), np.float32)
        self._pmean = np.zeros(nb, np.float32)
        self._bandp = np.zeros(C.N_BANDS, np.float32)
        # features and outputs of up to MAX_BATCH frames; a call of n frames binds the first n rows (contiguous)
        T = MAX_BATCH if self.bundle.batched else 1
        self._holdT = np.zeros(1, bool)  # the T-frame graphs' hold input: set at reset from prime(hold=...)
        self._featT = np.zeros((1, T, C.N_BANDS), np.float32)
        self._lowT = np.zeros((1, T, C.N_LOW), np.float32)
        self._cond = np.zeros((1, C.COND_DIM), np.float32)
        self._ovr64 = np.zeros(len(OVERRIDES))  # the table's values (float64)
        self._ovr_old = np.full(len(OVERRIDES), np.nan)
        self._ovr_chg = np.zeros(len(OVERRIDES), bool)
        self._ovr = np.zeros(len(OVERRIDES), np.float32)
        self._gT = np.zeros((1, T, C.N_BANDS), np.float32)
        self._eT = np.zeros((1, T, C.N_BANDS), np.float32)
        self._dfT = np.zeros((1, T, C.N_LOW, N, 2), np.float32)
        self._gb = np.zeros(C.N_BANDS, np.float32)   # band gains, linear, amount applied
        self._eb = np.zeros(C.N_BANDS, np.float32)   # copy-up band gains, amount applied
        self._G = np.zeros(nb, np.float32)
        self._E = np.zeros(nb, np.float32)
        self._cG = np.zeros((c, nb), np.complex64)   # the bin gains widened to the spectrum's shape and dtype
        self._cE = np.zeros((c, nb), np.complex64)
        self._tmp = np.zeros((c, nb), np.complex64)
        self._coef = np.zeros((N, C.N_LOW), np.complex64)  # deep-filter taps, tap-major
        self._onehot = np.zeros((N, C.N_LOW), np.complex64)
        self._onehot[N - 1 - L] = 1.0
        self._z = np.zeros((c, C.N_LOW), np.complex64)
        self._zt = np.zeros((c, C.N_LOW), np.complex64)
        # the last max(N, L + 1) spectra for the newest frame of a batch, plus the batch's earlier frames, which
        # are applied after the whole batch went in
        R = max(N, L + 1) + T - 1
        self._ring = np.zeros((R, c, nb), np.complex64)
        sa = {k: np.zeros(self.bundle.state_shapes[k], np.float32) for k in self.bundle.state_names}
        sb = {k: np.zeros(self.bundle.state_shapes[k], np.float32) for k in self.bundle.state_names}
        self._states = (sa, sb)
        # _bind[relative][n][phase]: a call of n frames (n = 1: the one-frame graph; n > 1: the T-frame graph) of
        # the target kind's graph (Bundle.session_for), reading state sa and writing sb on even calls and the other
        # way round on odd ones; every graph shares the state, so a target of the other kind continues the stream.
        # _runs[relative][n > 1]: the runner of that graph.
        self._bind, self._runs, self._bind_held1 = [], [], []
        for relative in (False, True):
            runners = [iobinding_runner(self.bundle.session_for(relative, seq=q)) for q in (False, True)[: 1 + (T > 1)]]
            per_n = [None]
            for n in range(1, T + 1):
                per_n.append(self._bind_pair(self.bundle.session_for(relative, seq=n > 1), runners[n > 1][1], n,
                                             n > 1))
            self._bind.append(per_n)
            self._runs.append([run for run, _ in runners])
            # a held render's single frames go through the T-frame graph too: only it takes `hold`, which holds
            # the running fingerprint inside the graph and which a graph's residual_live switch reads
            if T > 1:
                self._bind_held1.append(self._bind_pair(self.bundle.session_for(relative, seq=True),
                                                        runners[1][1], 1, True))
        self.reset()

    def _bind_pair(self, sess, inner, n: int, seq: bool) -> list:
        """Two prepared calls of ``sess`` on the first n rows of the inputs and outputs: one reading state set a and
        writing b, one the other way round (``seq``: a T-frame graph, which also takes ``hold``)."""
        sa, sb = self._states
        pair = []
        for src, dst in ((sa, sb), (sb, sa)):
            io = sess.io_binding()
            for k, v in (("feat", self._featT[:, :n]), ("low", self._lowT[:, :n]), ("cond", self._cond)):
                io.bind_cpu_input(k, v)
            if seq:
                io.bind_cpu_input("hold", self._holdT)
            for k in self.bundle.state_names:
                io.bind_cpu_input(k, src[k])
                io.bind_output(k + "_out", "cpu", 0, np.float32, list(dst[k].shape), dst[k].ctypes.data)
            for k, v in (("gain_db", self._gT), ("copy", self._eT), ("df", self._dfT)):
                io.bind_output(k, "cpu", 0, np.float32, [1, n, *v.shape[2:]], v.ctypes.data)
            pair.append(inner(io))
        return pair

    def reset(self):
        for s in self._states:
            for v in s.values():
                v.fill(0.0)
            if self._primed is not None:
                s["run_num"][0] = self._primed[0]
                s["run_den"][0] = self._primed[1]
        self._holdT[0] = self._hold and self._primed is not None
        self._held_seq = bool(self._holdT[0]) and bool(self._bind_held1)
        self._ring.fill(0.0)
        self._head = 0  # index of the oldest frame in the ring
        self._phase = 0
        self._target = None
        self._mode = -1
        self._rel = 0
        self._ovr_old.fill(np.nan)
        self._voice.reset()
        self._voice_on = False
        self._warp.reset()
        self._follow.reset()

    def _frame(self, k: int) -> np.ndarray:
        """The ring's frame k frames after the oldest (k = R - 1: the newest)."""
        return self._ring[(self._head + k) % self._ring.shape[0]]

    def _update_cond(self, tgt) -> None:
        """The conditioning vector of this frame into ``self._cond`` (allocation-free)."""
        val = self.table.value
        mode = int(val[self._i_match])
        np.take(val, self._i_ovr, out=self._ovr64, mode="clip")
        np.not_equal(self._ovr64, self._ovr_old, out=self._ovr_chg)
        if tgt is not self._target or mode != self._mode or self._ovr_chg.any():
            self._target, self._mode = tgt, mode
            np.copyto(self._ovr_old, self._ovr64)
            np.copyto(self._ovr, self._ovr64)
            cond = self._cond[0]
            np.matmul(self._ovr, tgt.dirs[mode], out=cond)
            cond += tgt.cond[mode]
            cond[C.V0 : C.REL_I] = self._valid
            self._rel = int(cond[C.REL_I] > 0.5)  # the graph of the target's kind (the graph's own rule)
            if tgt.offsets is not None:  # a delta (overrides' shapes included in its band slot)
                np.matmul(self._tilt_fix, cond[C.S0 : C.M0], out=self._tilt_tmp)
                cond[_I_TILT_REL] += self._tilt_tmp[0]

    def _voice_wanted(self):
        """The voice match's goal when it runs, else None: with a target and amount > 0, the target's voice goal in
        voice / all mode, and a goal of no move of its own when only the pitch override moves the voice (timbre
        mode, or a target that names no voice figure). Parameters change between process() calls only, so a frame's
        observe_input and its batch agree."""
        tgt = self.inbox.value
        v = self.table.value
        if tgt is None or not v[self._i_amount] > 0.0:
            return None
        if tgt.voice is not None and int(v[self._i_match]) != 0:
            return tgt.voice
        return _NO_VOICE_GOAL if v[self._i_pitch] != 0.0 else None

    def _voice_start(self, on: bool) -> None:
        """Entering voice mode starts the voice match's trackers afresh (its F0 queue holds frames only while on)."""
        if on and not self._voice_on:
            self._voice.reset()
        self._voice_on = on

    def observe_input(self, inbuf):
        on = self._voice_wanted() is not None
        self._voice_start(on)
        if on:
            self._voice.observe_input(inbuf)

    def process_frames(self, specs, n: int) -> None:
        """The voice match first, on the incoming frames, so the model sees and finishes the moved voice; then
        the model: one call for the n frames when the bundle takes T frames per call (the outputs are those of n
        one-frame calls: the graph is causal, reads one cond per call, which a block keeps, and holds a held running
        fingerprint itself), else frame by frame."""
        goal = self._voice_wanted()
        self._voice_start(goal is not None)
        if goal is not None:
            v = self.table.value
            self._voice.set_goal(goal, float(v[self._i_amount]), float(v[self._i_pitch]))
            self._voice.process_frames(specs, n)
        tgt = self.inbox.value
        if n < 2 or tgt is None or not self.bundle.batched:
            for k in range(n):
                self.process_frame(specs[k])
            return
        self._update_cond(tgt)
        for k in range(n):
            self._push(specs[k])
            self._features(specs[k], k)
        self._call(n)
        warp = self._warp_ratio(tgt)
        for k in range(n):
            self._apply(specs[k], k, n - 1 - k, tgt, warp)

    def _warp_ratio(self, tgt) -> bool:
        """Whether the formant override warps the output of this batch (a target, amount > 0, a ratio away from 1);
        when it does, its warp's ratio is set: formant_ratio^amount."""
        v = self.table.value
        r, a = float(v[self._i_formant]), float(v[self._i_amount])
        if tgt is None or r == 1.0 or not a > 0.0:
            return False
        self._warp_table.value[self._i_warp] = 2.0 ** (a * math.log2(r))
        return True

    def process_frame(self, spec):
        self._push(spec)
        tgt = self.inbox.value
        if tgt is None:
            np.copyto(spec, self._frame(self._ring.shape[0] - 1 - self.latency_frames))
            return
        self._update_cond(tgt)
        self._features(spec, 0)
        self._call(1)
        if self._hold and not self._held_seq:
            # offline through the one-frame graph (a bundle without T-frame graphs): the running fingerprint stays
            # the whole input's (the state the next frame reads); the T-frame graph holds it itself
            st = self._states[self._phase]
            np.copyto(st["run_num"][0], self._primed[0])
            st["run_den"][0, 0] = self._primed[1]
        self._apply(spec, 0, 0, tgt, self._warp_ratio(tgt))

    def _push(self, spec) -> None:
        """The newest input spectrum into the ring (over the oldest)."""
        np.copyto(self._ring[self._head], spec)
        self._head = (self._head + 1) % self._ring.shape[0]

    def _features(self, spec, k: int) -> None:
        """Band dB and low-bin dB of ``spec`` (channels, n_bins) into row k of the model's inputs."""
        np.multiply(spec.real, spec.real, out=self._pow)
        np.multiply(spec.imag, spec.imag, out=self._im)
        self._pow += self._im
        np.copyto(self._pmean, self._pow[0])
        for ch in range(1, self.ctx.channels):  # linked: mean of the channels (np.mean would allocate)
            self._pmean += self._pow[ch]
        self._pmean *= self._norm
        feat, low = self._featT[0, k], self._lowT[0, k]
        np.matmul(self._pmean, self._ana_t, out=self._bandp)
        self._bandp += np.float32(C.EPS)
        np.log10(self._bandp, out=feat)
        feat *= np.float32(10.0)
        np.add(self._pmean[: C.N_LOW], np.float32(C.EPS), out=low)
        np.log10(low, out=low)
        low *= np.float32(10.0)

    def _call(self, n: int) -> None:
        """The model on the first n rows of the inputs (the target kind's graph), outputs into their first n rows."""
        if n == 1 and self._held_seq:
            self._runs[self._rel][1](self._bind_held1[self._rel][self._phase])
        else:
            self._runs[self._rel][n > 1](self._bind[self._rel][n][self._phase])
        self._phase ^= 1

    def _apply(self, spec, k: int, back: int, tgt, warp: bool) -> None:
        """Row k of the outputs applied to the frame ``lookahead`` hops before the batch's frame k, written into
        ``spec``; ``back``: how many frames of the batch came after frame k (its newest frame is that many places
        before the ring's newest); ``warp``: the formant override's warp (:meth:`_warp_ratio`) follows, before the
        loudness follower meters the output (the warp changes the level: metered before it, the output missed the
        target's loudness)."""
        R, L, N = self._ring.shape[0], self.latency_frames, self.bundle.df_order
        X = self._frame(R - 1 - L - back)
        a = np.float32(self.table.value[self._i_amount])
        np.multiply(self._gT[0, k], a * np.float32(math.log(10.0) / 20.0), out=self._gb)
        np.exp(self._gb, out=self._gb)
        np.matmul(self._gb, self._syn_t, out=self._G)
        np.multiply(self._eT[0, k], a, out=self._eb)
        np.matmul(self._eb, self._syn_t, out=self._E)
        np.copyto(self._cG, self._G)
        np.copyto(self._cE, self._E)
        df = self._dfT[0, k]
        np.copyto(self._coef.real, df[..., 0].T)
        np.copyto(self._coef.imag, df[..., 1].T)
        self._coef *= a
        self._coef += self._onehot
        S, nb = self._shift, spec.shape[1]
        np.multiply(X, self._cG, out=spec)
        # Row by row from here: numpy buffers a ufunc over 2-D column slices (tens of kB at six channels),
        # while a row's slice is contiguous.
        for ch in range(self.ctx.channels):
            z, zt = self._z[ch], self._zt[ch]
            z.fill(0.0)
            for j in range(N):
                np.multiply(self._frame(R - N + j - back)[ch, : C.N_LOW], self._coef[j], out=zt)
                z += zt
            np.multiply(z, self._cG[ch, : C.N_LOW], out=spec[ch, : C.N_LOW])
            tmp = self._tmp[ch, S:]
            np.multiply(X[ch, : nb - S], self._cE[ch, S:], out=tmp)
            spec[ch, S:] += tmp
        if warp:
            self._warp.process_frame(spec)
        # Loudness: metered on the delayed input frame and on the model's output, then one broadband gain.
        lo = float(self._ovr64[I_LOUDNESS])
        self._follow.measure_input(X)
        self._follow.update(spec, tgt.lufs + lo, tgt.lufs_delta + lo, float(a) * float(self.table.value[self._i_follow]),
                            float(a) * float(self.table.value[self._i_range]))
        self._follow.apply(spec)
