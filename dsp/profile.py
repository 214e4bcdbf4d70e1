"""Sonic fingerprints and target profiles: one versioned schema (see docs/profiles.md).

A :class:`Profile` is a set of named, unit-bearing dimensions (:data:`DIMS`) plus the 32-band ERB
envelope ``band_env_db`` and 13 ``mfcc``. ``kind`` says what the numbers are:

* ``fingerprint``: measured from a recording (:func:`fingerprint`); also carries per-feature
  statistics (``stats``: mean, std, p10, p50, p90 and the number of frames used);
* ``target``: absolute values the resculpting stage should move the sound toward;
* ``delta``: changes relative to whatever comes in (descriptors without a base clip, the learned
  user profile, context rules); ``band_env_db`` then holds dB offsets and scalar dims hold
  offsets in their own unit (semitone-like dims use the ``*_ratio`` convention below).

Missing values are ``None`` in JSON and NaN in memory (e.g. bands above a 16 kHz clip's Nyquist).

Normalisation (:func:`normalized`): each dim becomes ``z = T(value) / scale``, with T a log for
frequencies (octaves) and identity otherwise, and ``scale`` about one "clearly audible step"
(2 semitones of F0, 10 % of a formant, a quarter octave of centroid, 1 LU, 3 dB of HNR...). The
band envelope is compared by *shape*: its level-free form (each band minus the mean over the
bands both profiles have) in units of 3 dB. :func:`distance` is the weighted RMS of normalised
differences over the dims both profiles define; weights (:data:`DIMS`) favour what a listener
notices most (envelope shape, loudness, F0) over derived statistics.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bands import N_BANDS, band_centers_hz, erb_band_edges
from .features.base import dc_block_sos, dc_filter
from .features.spectral import BRIGHT_COLUMNS, ENV_COLUMNS, SpectralFeatures

SCHEMA_VERSION = 1
N_MFCC = 13


class ProfileError(ValueError):
    """A profile could not be built, read or validated; the message says why."""


@dataclass(frozen=True)
class Dim:
    name: str
    unit: str
    log: bool          # compare in octaves (frequencies)
    scale: float       # one normalised unit, in `unit` (or octaves when log)
    weight: float
    doc: str


DIMS: tuple[Dim, ...] = (
    Dim("f0_median_hz", "Hz", True, 2 / 12, 1.0, "median F0 over voiced frames"),
    Dim("f0_range_st", "st", False, 2.0, 0.3, "F0 spread: p90 − p10 over voiced frames, semitones"),
    Dim("voiced_fraction", "", False, 0.1, 0.2, "voiced frames / active frames"),
    Dim("f1_hz", "Hz", True, 0.1375, 0.5, "median F1 over voiced frames (LPC)"),
    Dim("f2_hz", "Hz", True, 0.1375, 0.5, "median F2 over voiced frames"),
    Dim("f3_hz", "Hz", True, 0.1375, 0.3, "median F3 over voiced frames"),
    Dim("centroid_hz", "Hz", True, 0.25, 0.7, "median spectral centroid over active frames"),
    Dim("rolloff_hz", "Hz", True, 0.25, 0.4, "median 85 % roll-off frequency over active frames"),
    Dim("tilt_db_oct", "dB/oct", False, 1.5, 0.7, "median spectral tilt 100 Hz–8 kHz"),
    Dim("hnr_db", "dB", False, 3.0, 0.5, "median harmonic-to-noise ratio over voiced frames (low = breathy)"),
    Dim("lufs_integrated", "LUFS", False, 1.0, 0.8, "integrated loudness (BS.1770-4)"),
    Dim("lra_lu", "LU", False, 2.0, 0.3, "loudness range (EBU Tech 3342)"),
    Dim("crest_db", "dB", False, 2.0, 0.3, "median 400 ms crest factor over active frames"),
    Dim("onset_rate_hz", "1/s", True, 0.2, 0.4, "syllable/onset rate per active second (pace)"),
)
DIM_BY_NAME = {d.name: d for d in DIMS}
BAND_SCALE_DB, BAND_WEIGHT = 3.0, 2.0
MFCC_SCALE_DB, MFCC_WEIGHT = 10.0, 0.0  # stored and returned, not part of the default distance
KINDS = ("fingerprint", "target", "delta")


def _nan_list(n):
    return [float("nan")] * n


@dataclass
class Profile:
    """See the module doc. ``dims`` maps :data:`DIMS` names to values (NaN = unknown)."""

    kind: str = "target"
    dims: dict = field(default_factory=dict)
    band_env_db: list = field(default_factory=lambda: _nan_list(N_BANDS))
    mfcc: list = field(default_factory=lambda: _nan_list(N_MFCC))
    stats: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ProfileError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for d in DIMS:
            self.dims.setdefault(d.name, float("nan"))
        unknown = set(self.dims) - set(DIM_BY_NAME)
        if unknown:
            raise ProfileError(f"unknown dimension(s) {sorted(unknown)}; known: {[d.name for d in DIMS]}")
        self.band_env_db = [float(v) for v in self.band_env_db]
        self.mfcc = [float(v) for v in self.mfcc]
        if len(self.band_env_db) != N_BANDS or len(self.mfcc) != N_MFCC:
            raise ProfileError(f"band_env_db needs {N_BANDS} values and mfcc {N_MFCC}")

    # -- vector view -----------------------------------------------------------------------------
    def env(self) -> np.ndarray:
        return np.asarray(self.band_env_db, dtype=np.float64)

    def get(self, name: str) -> float:
        return float(self.dims[name])

    def copy(self) -> Profile:
        return Profile.from_dict(self.to_dict())

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        def enc(v):
            v = float(v)
            return round(v, 4) if math.isfinite(v) else None

        return {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "dims": {d.name: enc(self.dims[d.name]) for d in DIMS},
            "units": {d.name: d.unit for d in DIMS} | {"band_env_db": "dB", "mfcc": "dB"},
            "band_env_db": [enc(v) for v in self.band_env_db],
            "mfcc": [enc(v) for v in self.mfcc],
            "stats": self.stats,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d, where: str = "profile") -> Profile:
        if not isinstance(d, dict):
            raise ProfileError(f"{where}: expected a JSON object")
        v = d.get("schema_version")
        if v != SCHEMA_VERSION:
            raise ProfileError(f"{where}: schema_version {v!r} is not supported (this Resculpt reads {SCHEMA_VERSION})")

        def dec(x, f):
            if x is None:
                return float("nan")
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise ProfileError(f"{where}: {f}: expected a number or null, got {x!r}")
            return float(x)

        dims = d.get("dims", {})
        if not isinstance(dims, dict):
            raise ProfileError(f"{where}: dims: expected an object")
        for k in dims:
            if k not in DIM_BY_NAME:
                import difflib

                close = difflib.get_close_matches(k, list(DIM_BY_NAME), n=3)
                raise ProfileError(f"{where}: dims.{k}: unknown dimension"
                                   + (f" (did you mean {', '.join(close)}?)" if close else ""))
        env = d.get("band_env_db", [None] * N_BANDS)
        mf = d.get("mfcc", [None] * N_MFCC)
        if not isinstance(env, list) or len(env) != N_BANDS:
            raise ProfileError(f"{where}: band_env_db: expected a list of {N_BANDS} numbers/null")
        if not isinstance(mf, list) or len(mf) != N_MFCC:
            raise ProfileError(f"{where}: mfcc: expected a list of {N_MFCC} numbers/null")
        try:
            return cls(kind=d.get("kind", "target"),
                       dims={k: dec(x, f"dims.{k}") for k, x in dims.items()},
                       band_env_db=[dec(x, f"band_env_db[{i}]") for i, x in enumerate(env)],
                       mfcc=[dec(x, f"mfcc[{i}]") for i, x in enumerate(mf)],
                       stats=dict(d.get("stats", {})), meta=dict(d.get("meta", {})))
        except ProfileError as e:
            if str(e).startswith(where):
                raise
            raise ProfileError(f"{where}: {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path


def load_profile(path) -> Profile:
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ProfileError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
    return Profile.from_dict(d, str(path))


# -- normalisation and distance -----------------------------------------------------------------
def normalized(p: Profile) -> dict:
    """{dim: z} for the scalar dims (see module doc); NaN stays NaN."""
    out = {}
    for d in DIMS:
        v = p.dims[d.name]
        if d.log:
            v = math.log2(v) if (isinstance(v, float) and v > 0) else float("nan")
        out[d.name] = v / d.scale
    return out


# Bands compared by distances and matched by the match-EQ: centred at or above 60 Hz (below, a
# 20 ms analysis at 16 kHz only sees the DC and 50 Hz bins: rumble and offsets, not timbre).
COMPARE_LO_HZ = 60.0


def compare_mask() -> np.ndarray:
    from .bands import band_centers_hz, erb_band_edges

    return band_centers_hz(erb_band_edges(N_BANDS)) >= COMPARE_LO_HZ


def band_shape_diff(a, b) -> np.ndarray:
    """Level-free band difference a − b (dB) over the compared bands both define (NaN elsewhere)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b) & compare_mask()
    out = np.full(a.shape, np.nan)
    if ok.any():
        d = a[ok] - b[ok]
        out[ok] = d - d.mean()
    return out


def band_distance_db(a, b) -> float:
    """RMS (dB) of the level-free band-envelope difference: the match-EQ figure of merit."""
    d = band_shape_diff(a, b)
    d = d[np.isfinite(d)]
    return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")


def distance_terms(a: Profile, b: Profile, weights: dict | None = None) -> tuple[dict, float]:
    """The parts of :func:`distance`: ({dim name or ``band_env_db``: weight x squared normalised difference}, the sum
    of the weights), over the dims both define and weigh. distance = sqrt(sum(terms) / weight sum)."""
    w = {d.name: d.weight for d in DIMS} | {"band_env_db": BAND_WEIGHT}
    w.update(weights or {})
    za, zb = normalized(a), normalized(b)
    terms, den = {}, 0.0
    for d in DIMS:
        x = za[d.name] - zb[d.name]
        if math.isfinite(x) and w[d.name] > 0:
            terms[d.name] = w[d.name] * x * x
            den += w[d.name]
    bd = band_distance_db(a.band_env_db, b.band_env_db)
    if math.isfinite(bd) and w["band_env_db"] > 0:
        terms["band_env_db"] = w["band_env_db"] * (bd / BAND_SCALE_DB) ** 2
        den += w["band_env_db"]
    return terms, den


def distance(a: Profile, b: Profile, weights: dict | None = None) -> float:
    """Weighted RMS of normalised differences over the dims both define (0 = identical).

    ``weights`` overrides per-dim weights by name (``band_env_db`` for the envelope shape).
    """
    terms, den = distance_terms(a, b, weights)
    num = 0.0
    for v in terms.values():  # in DIMS order, then the band shape, as the sum has always run
        num += v
    return math.sqrt(num / den) if den else float("nan")


# -- fingerprint ------------------------------------------------------------------------------
def _stats(v: np.ndarray) -> dict:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    return {"n": int(v.size), "mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
            "p10": round(float(p10), 4), "p50": round(float(p50), 4), "p90": round(float(p90), 4)}


def _med(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


def active_frames(tracks: dict, rel_db: float = 40.0, abs_db: float = -70.0) -> np.ndarray:
    """Frames within ``rel_db`` of the loud (95th-percentile) frame level and above ``abs_db``."""
    lv = tracks["level_db"]
    fin = np.isfinite(lv)
    if not fin.any():
        return np.zeros(lv.shape, bool)
    top = np.percentile(lv[fin], 95)
    return fin & (lv > max(top - rel_db, abs_db))


def long_term_envelope(x, sample_rate: int) -> np.ndarray:
    """The 32-band long-term envelope (dB) a fingerprint stores: mean band power over active frames.

    ``x``: ``(n,)`` or ``(channels, n)`` float; the analysis runs on the mean of the channels."""
    x = np.asarray(x, dtype=np.float32)
    x = x[None, :] if x.ndim == 1 else x
    acc = EnvelopeAccumulator(sample_rate, x.shape[0])
    acc.add(x)
    return acc.result()


class EnvelopeLevelFeatures(SpectralFeatures):
    """SpectralFeatures' band-envelope and brightness/level columns (the same values), no MFCCs."""

    columns = ENV_COLUMNS + BRIGHT_COLUMNS
    parts = ("env", "bright")


class EnvelopeAccumulator:
    """:func:`long_term_envelope` by blocks: :meth:`add` a signal in pieces of any size, in order;
    :meth:`result` is bit for bit what :func:`long_term_envelope` gives for their concatenation, and
    each frame's band levels are bit for bit the ``band_env_db`` row that the streaming
    :class:`EnvelopeLevelFeatures` analyser computes for that frame.

    The mono mix (mean of the channels, non-finite samples as 0, DC-blocked per channel as the analysers do,
    float64) is collected until
    :attr:`CHUNK` samples are pending, and their frames are analysed together
    (:meth:`~resculpt.dsp.features.spectral.SpectralFeatures.env_level_rows`); the last
    ``win_len - hop`` samples (15 ms) and any incomplete hop carry over to the next batch.
    Which frames are active (within 40 dB of the 95th-percentile frame level) is known only at the
    end, so each frame's level (8 bytes, 1.6 kB per second of audio at 200 frames/s) is kept in
    memory and its 32 band levels are appended to ``store``: any object with ``append(rows)``
    (``rows`` float64 ``(k, 32)``) that iterates over float64 ``(m, 32)`` arrays holding the same rows
    in the same order (a list by default; a file-backed store keeps memory flat for hour-long
    signals). :meth:`result` sums the active frames' band powers in frame order, as ``np.mean``
    over axis 0 does, so the figures do not depend on the block sizes.
    """

    CHUNK = 65536  # samples analysed at once: at 48 kHz 273 frames, (273, 960) float64 = 2 MB

    def __init__(self, sample_rate: int, channels: int, store=None):
        self._an = EnvelopeLevelFeatures()
        self._an.prepare(sample_rate, 1, 1, history_frames=1)  # the analysis constants only
        self._dc_sos = dc_block_sos(sample_rate)
        self._dc_zi = np.zeros((1, channels, 2))
        self.hop, self.win_len = self._an.hop, self._an.win_len
        # mono samples from the start of the next frame's window on; zeros before the signal starts
        self._tail = np.zeros(self.win_len - self.hop)
        self._pending: list[np.ndarray] = []  # mono pieces not analysed yet (fewer than CHUNK samples)
        self._n_pending = 0
        self._levels: list[np.ndarray] = []
        self.store = [] if store is None else store

    def add(self, x: np.ndarray) -> None:
        """Analyse the next samples, ``x`` float32 ``(channels, n)`` (not modified)."""
        for i in range(0, x.shape[1], self.CHUNK):
            blk = x[:, i : i + self.CHUNK].astype(np.float64)
            np.nan_to_num(blk, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            if blk.shape[1]:
                blk, self._dc_zi = dc_filter(self._dc_sos, blk, self._dc_zi)
            self._pending.append(blk[0] if blk.shape[0] == 1 else np.mean(blk, axis=0))
            self._n_pending += blk.shape[1]
            if self._n_pending >= self.CHUNK:
                self._analyse()

    def _analyse(self) -> None:
        """Analyse every complete frame of the pending samples."""
        from numpy.lib.stride_tricks import sliding_window_view

        hop = self.hop
        buf = np.concatenate([self._tail, *self._pending])
        self._pending, self._n_pending = [], 0
        f = (buf.size - (self.win_len - hop)) // hop
        if f:
            env, lvl = self._an.env_level_rows(sliding_window_view(buf, self.win_len)[: f * hop : hop])
            self._levels.append(lvl)
            self.store.append(env)
        self._tail = buf[f * hop :].copy()

    def levels(self) -> np.ndarray:
        """Every frame's level so far (dB; the ``level_db`` track that decides which frames are active)."""
        self._analyse()
        return np.concatenate(self._levels) if self._levels else np.zeros(0)

    def result(self) -> np.ndarray:
        """The (32,) long-term envelope in dB (NaN for bands the signal does not reach)."""
        self._analyse()
        levels = np.concatenate(self._levels) if self._levels else np.zeros(0)
        act = active_frames({"level_db": levels})
        n_act = int(act.sum())
        if not n_act:
            return np.full(N_BANDS, np.nan)
        total = np.zeros(N_BANDS)
        start = 0
        with np.errstate(invalid="ignore"):
            for rows in self.store:
                a = act[start : start + len(rows)]
                start += len(rows)
                if a.any():
                    # add.reduce over axis 0 of [total; rows] adds the rows one after another
                    total = np.add.reduce(np.concatenate([total[None], 10.0 ** (rows[a] / 10.0)]), axis=0)
            env = 10.0 * np.log10(total / n_act)
        return limit_bandwidth(env)


class FormantAccumulator:
    """The fingerprint's median F1..F3 (over active voiced frames) by blocks: :meth:`add` a signal in pieces of
    any size, in order, then :meth:`result` with the frame levels of an :class:`EnvelopeAccumulator` fed the same
    pieces (which frames are active is known only at the end). The rows are those of the streaming
    :class:`~.features.formants.Formants` and :class:`~.features.pitch.Pitch` analysers, so the medians are bit for
    bit :func:`fingerprint`'s ``f1_hz``..``f3_hz`` of the concatenation. Memory: 4 floats per 5 ms frame."""

    def __init__(self, sample_rate: int, channels: int, max_block: int):
        from .features.base import hop_size
        from .features.formants import Formants
        from .features.pitch import Pitch

        rows = max(1, int(max_block)) // hop_size(sample_rate) + 2
        self._an = (Formants(), Pitch())
        for an in self._an:
            an.prepare(sample_rate, max(1, int(max_block)), channels, history_frames=rows)
        self._cols = ([Formants.columns.index(c) for c in ("f1_hz", "f2_hz", "f3_hz")], [Pitch.columns.index("voiced")])
        self._rows: tuple[list, list] = ([], [])

    def add(self, x: np.ndarray) -> None:
        """Analyse the next samples, ``x`` float32 ``(channels, n)`` (not modified)."""
        cap = self._an[0].max_block
        for i in range(0, x.shape[1], cap):
            blk = np.ascontiguousarray(x[:, i : i + cap], np.float32)
            for an, cols, rows in zip(self._an, self._cols, self._rows):
                an.process(blk)
                rows.append(an.read()[:, cols])

    def result(self, levels: np.ndarray) -> dict:
        """{"f1_hz", "f2_hz", "f3_hz"}: medians over the frames that are active by ``levels`` (the envelope
        accumulator's :meth:`EnvelopeAccumulator.levels`) and voiced; NaN where none."""
        f = np.concatenate(self._rows[0]) if self._rows[0] else np.zeros((0, 3))
        v = np.concatenate(self._rows[1])[:, 0] if self._rows[1] else np.zeros(0)
        n = min(len(f), len(v), len(levels))
        voiced = active_frames({"level_db": np.asarray(levels)[:n]}) & (v[:n] > 0.5)
        return {k: _med(f[:n, j][voiced]) for j, k in enumerate(("f1_hz", "f2_hz", "f3_hz"))}


def warp_band_envelope(env_db, ratio: float) -> np.ndarray:
    """(32,) the band envelope ``env_db`` (dB, NaN where undefined) with its frequency axis scaled by ``ratio``: the
    level at band centre f is the input's at f / ratio (interpolated on log frequency between band centres; where
    that falls outside the defined bands, the band keeps its own level, and an undefined band stays NaN). What a
    formant warp by ``ratio`` does to a long-term envelope."""
    e = np.asarray(env_db, np.float64)
    ok = np.isfinite(e)
    if ratio == 1.0 or ok.sum() < 2:
        return e.copy()
    lf = np.log2(band_centers_hz(erb_band_edges(N_BANDS)))
    w = np.interp(lf - math.log2(ratio), lf[ok], e[ok], left=np.nan, right=np.nan)
    return np.where(ok & np.isfinite(w), w, e)


# The brightness tilt of an offline render's correction pass (:func:`brightness_tilt`)
BRIGHT_DIMS = ("centroid_hz", "rolloff_hz", "tilt_db_oct")
TILT_SEARCH_DB_OCT = 1.5   # the tilts tried: -1.5 .. +1.5 dB/oct
TILT_STEP_DB_OCT = 0.1
TILT_PIVOT_HZ = 1000.0     # the tilt's 0 dB point


def tilt_shape(slope_db_oct: float) -> np.ndarray:
    """(32,) dB: a tilt of ``slope_db_oct`` on the band centres, 0 dB at ``TILT_PIVOT_HZ``."""
    return slope_db_oct * np.log2(band_centers_hz(erb_band_edges(N_BANDS)) / TILT_PIVOT_HZ)


def brightness_tilt(bright_rows, env_rows, env_db, target: Profile, offsets_db=None,
                    sample_rate: float = 48000.0) -> float:
    """The tilt (dB/oct, a multiple of ``TILT_STEP_DB_OCT`` within ±``TILT_SEARCH_DB_OCT``) that, added to a
    sound, brings its fingerprint nearest ``target`` on the brightness dims and the band envelope together.

    A matched long-term envelope does not match the frame medians of centroid, roll-off and tilt: the envelope is
    a power mean, which the loud and the bright frames dominate, the medians are the typical frame's. An offline
    render's correction pass asks this tilt on top of the envelope it corrects toward.

    bright_rows: (F, 4) the sound's :class:`~.features.spectral.Brightness` rows (centroid, roll-off, tilt,
    level per frame); env_rows: (F', 32) its band levels per frame (the same frames:
    :class:`EnvelopeAccumulator`'s rows); env_db: (32,) its long-term envelope; offsets_db: (32,) band gains (dB,
    NaN = 0) the sound will take anyway (the correction pass's envelope correction), the candidates' tilt on top.
    Per candidate c, with o = offsets + c (the tilt's band shape), predicted: tilt = the measured median + the
    slope of o (a frame's tilt is that linear fit of its band levels, at ``sample_rate``); centroid and roll-off =
    the measured medians times the ratio their band-domain estimates (each band's power at its centre) move by
    when every active frame's bands take o; envelope = ``env_db`` + o. The candidate with the smallest
    :func:`distance_terms` over those four (at the profile's own weights) wins; 0 when ``target`` defines none of
    the brightness dims or the sound has no active frame."""
    from .features.spectral import tilt_slope_db_oct

    b = np.asarray(bright_rows, np.float64)
    e = np.asarray(env_rows, np.float64)
    n = min(len(b), len(e))
    if n == 0 or not any(math.isfinite(target.dims.get(k, math.nan)) for k in BRIGHT_DIMS):
        return 0.0
    b, e = b[:n], e[:n]
    act = active_frames({"level_db": b[:, 3]})
    meas = [_med(b[act, j]) for j in range(3)]
    if not act.any() or not all(math.isfinite(v) for v in meas):
        return 0.0
    f = tilt_shape(1.0)
    cent = band_centers_hz(erb_band_edges(N_BANDS))
    sel = (cent >= 80.0) & (cent <= 20000.0)  # the brightness analyser's range
    bw = np.diff(erb_band_edges(N_BANDS))[sel]
    rows = e[act][:, sel]
    fs = cent[sel]

    base = np.zeros(N_BANDS) if offsets_db is None else np.nan_to_num(np.asarray(offsets_db, np.float64))

    def band_moments(o):
        with np.errstate(invalid="ignore", over="ignore"):
            pw = np.where(np.isfinite(rows), 10.0 ** ((rows + o[sel]) / 10.0), 0.0) * bw
        tot = pw.sum(axis=1)
        ok = tot > 0.0
        cen = (pw[ok] @ fs) / tot[ok]
        cum = np.cumsum(pw[ok], axis=1) / tot[ok][:, None]
        ro = fs[np.minimum((cum < 0.85).sum(axis=1), fs.size - 1)]
        return float(np.median(cen)), float(np.median(ro))

    c0, r0 = band_moments(np.zeros(N_BANDS))
    w = {d.name: d.weight if d.name in BRIGHT_DIMS else 0.0 for d in DIMS}  # band_env_db keeps its own weight
    env = np.asarray(env_db, np.float64)
    best, best_c = math.inf, 0.0
    steps = int(round(TILT_SEARCH_DB_OCT / TILT_STEP_DB_OCT))
    for i in range(-steps, steps + 1):
        c = i * TILT_STEP_DB_OCT
        o = base + c * f
        cc, rr = band_moments(o)
        p = Profile("fingerprint", {"centroid_hz": meas[0] * cc / c0, "rolloff_hz": meas[1] * rr / r0,
                                    "tilt_db_oct": meas[2] + tilt_slope_db_oct(o, sample_rate)},
                    band_env_db=list(env + o))
        terms, _ = distance_terms(p, target, w)
        d = sum(terms.values())
        if d < best - 1e-12:
            best, best_c = d, c
    return best_c


EMPTY_BELOW_DB = 60.0


def limit_bandwidth(env: np.ndarray) -> np.ndarray:
    """Bands above the recording's effective bandwidth (every band from the top down that sits more
    than 60 dB below the loudest band, e.g. an upsampled 16 kHz source) become NaN: the recording
    says nothing about them, so neither distances nor the match-EQ use them."""
    env = np.asarray(env, dtype=np.float64).copy()
    fin = np.isfinite(env)
    if not fin.any():
        return env
    live = np.flatnonzero(fin & (env > np.nanmax(env) - EMPTY_BELOW_DB))
    env[live[-1] + 1 :] = np.nan
    return env


def fingerprint(x, sample_rate: int, source: str = "") -> Profile:
    """Measure a recording (``(n,)`` or ``(channels, n)`` float) into a fingerprint Profile."""
    from .features import extract
    from .features.base import as_2d, hop_size

    x = as_2d(x)
    tr = extract(x, sample_rate)
    act = active_frames(tr)
    voiced = act & (tr["voiced"] > 0.5)
    f0 = tr["f0_hz"][voiced]
    env_tracks = np.stack([tr[f"band_env_db[{i}]"] for i in range(N_BANDS)], axis=1)
    env = np.full(N_BANDS, np.nan)
    if act.any():
        # long-term envelope: mean band power over active frames, in dB (as long_term_envelope)
        with np.errstate(invalid="ignore"):
            env = limit_bandwidth(10.0 * np.log10(np.mean(10.0 ** (env_tracks[act] / 10.0), axis=0)))
    mf = np.stack([tr[f"mfcc[{i}]"] for i in range(N_MFCC)], axis=1)
    mfcc = np.nanmean(mf[act], axis=0) if act.any() else np.full(N_MFCC, np.nan)
    hop = hop_size(sample_rate)
    dims = {
        "f0_median_hz": _med(f0),
        "f0_range_st": (12 * math.log2(np.percentile(f0, 90) / np.percentile(f0, 10))) if f0.size > 10 else float("nan"),
        "voiced_fraction": float(voiced.sum() / act.sum()) if act.any() else float("nan"),
        "f1_hz": _med(tr["f1_hz"][voiced]), "f2_hz": _med(tr["f2_hz"][voiced]), "f3_hz": _med(tr["f3_hz"][voiced]),
        "centroid_hz": _med(tr["centroid_hz"][act]), "rolloff_hz": _med(tr["rolloff_hz"][act]),
        "tilt_db_oct": _med(tr["tilt_db_oct"][act]), "hnr_db": _med(tr["hnr_db"][voiced]),
        "lufs_integrated": float(tr["lufs_integrated"][-1]) if len(act) else float("nan"),
        "lra_lu": float(tr["lra_lu"][-1]) if len(act) else float("nan"),
        "crest_db": _med(tr["crest_db"][act]),
    }
    act_s = float(tr["active"].sum()) * hop / sample_rate
    dims["onset_rate_hz"] = float(tr["event"].sum() / act_s) if act_s >= 1.0 else float("nan")
    stats = {k: _stats(tr[k][voiced if k in ("f0_hz", "f1_hz", "f2_hz", "f3_hz", "hnr_db") else act])
             for k in ("f0_hz", "f1_hz", "f2_hz", "f3_hz", "hnr_db", "centroid_hz", "rolloff_hz", "tilt_db_oct",
                       "lufs_momentary", "lufs_shortterm", "crest_db", "level_db")}
    meta = {"source": str(source), "sample_rate": int(sample_rate), "channels": int(x.shape[0]),
            "duration_s": round(x.shape[1] / sample_rate, 3), "active_s": round(float(act.sum()) * hop / sample_rate, 3),
            "bandwidth_hz": _bandwidth(env, sample_rate)}
    return Profile("fingerprint", dims, list(env), list(mfcc), stats, meta)


def _bandwidth(env, sample_rate) -> float:
    """Upper edge (Hz) of the highest band the envelope defines (the effective bandwidth)."""
    from .bands import erb_band_edges

    fin = np.flatnonzero(np.isfinite(env))
    return round(float(min(erb_band_edges(N_BANDS)[fin[-1] + 1], sample_rate / 2)), 1) if fin.size else 0.0


# -- deltas -------------------------------------------------------------------------------------
# Scalar dims whose delta is multiplicative (stored as a ratio in a delta profile).
RATIO_DIMS = {"f0_median_hz", "f1_hz", "f2_hz", "f3_hz", "centroid_hz", "rolloff_hz", "onset_rate_hz"}
# The spectral moments: measured from the spectrum, so a band shape moves them. A delta's values for these dims
# are what it asks *beyond* the move its own band offsets make (see :func:`apply_delta`).
MOMENT_DIMS = ("centroid_hz", "rolloff_hz", "tilt_db_oct")
MOMENT_GRID_HZ = 10.0  # spacing of the frequency grid the centroid and roll-off moves are integrated on
MOMENT_LO_HZ, MOMENT_HI_HZ = 80.0, 20000.0  # the centroid's and roll-off's range (dsp.features.spectral)


def shape_moves(env, offsets, sample_rate: float | None = None, centroid_hz: float = math.nan,
                rolloff_hz: float = math.nan) -> dict:
    """The move band offsets make on the spectral moments of a sound whose long-term envelope is ``env``:
    ``{"centroid_hz": ratio, "rolloff_hz": ratio, "tilt_db_oct": dB/oct}`` (the neutral 1, 1, 0 where ``env``
    defines no band or ``offsets`` are all 0).

    ``env`` (32,) dB PSD per band (a fingerprint's ``band_env_db``, NaN where the recording says nothing),
    ``offsets`` (32,) dB gains (NaN = 0). Tilt: the least-squares slope of the offsets over the fingerprint's
    tilt bands at ``sample_rate`` (:func:`~resculpt.dsp.features.spectral.tilt_slope_db_oct`; unknown rate: 48
    kHz); a frame's tilt is that same linear fit of its band levels, so every frame's tilt moves by about this.
    Centroid and roll-off: the long-term spectrum and the gain, each interpolated linearly on the ERB-rate axis
    between band centres (the match-EQ's synthesis interpolation; flat past the ends), on a 10 Hz grid from 80 Hz
    to the upper edge of the highest band ``env`` defines (at most 20 kHz and Nyquist); power-weighted mean
    frequency and 85 % point (interpolated between grid points) with and without the gain, as ratios. The
    fingerprint's figures are medians over frames, and the long-term mean is pulled up by loud or fricative
    frames (a speech clip's median centroid 300 Hz, its long-term centroid over 1 kHz), so given the sound's
    median ``centroid_hz`` (``rolloff_hz``) the spectrum is first tilted (a slope in dB/oct, found by
    bisection) until its own centroid (roll-off) is that median: a typical frame's spectrum. Against an ideal EQ
    of the offsets that predicts the median's move within 4 % (centroid) and 5 % (roll-off, one 50 Hz bin at
    500 Hz is 10 %) on speech, 3 % and 5 % on music, where the long-term spectrum alone is off by 10 % and 22 % on
    speech (``scripts/delta_consistency.py``; ``docs/profiles.md``, "Deltas")."""
    from .bands import band_centers_hz, erb_band_edges, hz_to_erb
    from .features.spectral import tilt_slope_db_oct

    off = np.nan_to_num(np.asarray(offsets, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    env = np.asarray(env, dtype=np.float64)
    rate = float(sample_rate) if sample_rate else 48000.0
    out = {"centroid_hz": 1.0, "rolloff_hz": 1.0, "tilt_db_oct": tilt_slope_db_oct(off, rate)}
    fin = np.flatnonzero(np.isfinite(env))
    if fin.size == 0 or not off.any():
        return out
    edges = erb_band_edges(N_BANDS)
    ec = hz_to_erb(band_centers_hz(edges))
    hi = min(MOMENT_HI_HZ, 0.5 * rate, float(edges[fin[-1] + 1]))
    f = np.arange(MOMENT_LO_HZ, hi + 0.5 * MOMENT_GRID_HZ, MOMENT_GRID_HZ)
    ef = hz_to_erb(f)
    p0 = 10.0 ** (np.interp(ef, ec[fin], env[fin] - np.max(env[fin])) / 10.0)
    gain = 10.0 ** (np.interp(ef, ec, off) / 10.0)
    oct_1k = np.log2(f / 1000.0)

    def centroid(p):
        return float(np.dot(f, p) / p.sum())

    def rolloff(p):
        cum = np.cumsum(p)
        return float(np.interp(0.85 * cum[-1], cum, f))

    def typical(fn, median):
        """p0 tilted (+-30 dB/oct around 1 kHz) until fn of it is ``median`` (p0 itself when unknown)."""
        if not (math.isfinite(median) and median > 0):
            return p0
        lo, hi_s = -30.0, 30.0
        for _ in range(40):  # the moment rises with the slope: bisection to 60/2^40 dB/oct
            s = 0.5 * (lo + hi_s)
            if fn(p0 * 10.0 ** (s * oct_1k / 10.0)) > median:
                hi_s = s
            else:
                lo = s
        return p0 * 10.0 ** (0.5 * (lo + hi_s) * oct_1k / 10.0)

    for name, fn, median in (("centroid_hz", centroid, centroid_hz), ("rolloff_hz", rolloff, rolloff_hz)):
        p = typical(fn, median)
        out[name] = fn(p * gain) / fn(p)
    return out


def empty_delta(**meta) -> Profile:
    """A delta that changes nothing (zeros for additive dims, 1 for ratio dims)."""
    dims = {d.name: (1.0 if d.name in RATIO_DIMS else 0.0) for d in DIMS}
    return Profile("delta", dims, [0.0] * N_BANDS, [0.0] * N_MFCC, {}, dict(meta))


def combine_deltas(a: Profile, b: Profile, amount_b: float = 1.0) -> Profile:
    """a then b (scaled by amount_b): band offsets add, additive dims add, ratio dims multiply. The moment dims
    (:data:`MOMENT_DIMS`) hold moves beyond each delta's shape, so they compose the same way: the summed offsets'
    own move is added when the result is applied (:func:`apply_delta`)."""
    out = a.copy()
    for d in DIMS:
        va, vb = a.dims[d.name], b.dims[d.name]
        va = (1.0 if d.name in RATIO_DIMS else 0.0) if not math.isfinite(va) else va
        if not math.isfinite(vb):
            continue
        out.dims[d.name] = va * vb ** amount_b if d.name in RATIO_DIMS else va + amount_b * vb
    ea, eb = np.nan_to_num(a.env()), np.nan_to_num(b.env())
    out.band_env_db = list(ea + amount_b * eb)
    return out


def apply_delta(base: Profile, delta: Profile, amount: float = 1.0) -> Profile:
    """A target: ``base`` (fingerprint/target) moved by ``delta`` (scaled by ``amount``).

    Band offsets add to the envelope; scalar dims move by the delta's ratio (``RATIO_DIMS``) or offset. The
    spectral moments (:data:`MOMENT_DIMS`: centroid, roll-off, tilt) first move as the offsets move them on this
    base (:func:`shape_moves`), then by the delta's own value, which is what it asks beyond its shape (NaN or
    neutral: nothing more). So a target made from a band shape is one an EQ of that shape reaches."""
    if delta.kind != "delta":
        raise ProfileError("apply_delta needs a delta profile")
    out = base.copy()
    out.kind = "target"
    off = amount * np.nan_to_num(delta.env())
    made = shape_moves(base.env(), off, base.meta.get("sample_rate"), base.dims["centroid_hz"], base.dims["rolloff_hz"])
    for d in DIMS:
        b, v = base.dims[d.name], delta.dims[d.name]
        if d.name in made and not math.isfinite(v):
            v = 1.0 if d.name in RATIO_DIMS else 0.0
        if not (math.isfinite(b) and math.isfinite(v)):
            continue
        if d.name in RATIO_DIMS:
            out.dims[d.name] = b * made.get(d.name, 1.0) * v ** amount
        else:
            out.dims[d.name] = b + made.get(d.name, 0.0) + amount * v
    out.band_env_db = list(base.env() + off)
    out.stats = {}
    out.meta = dict(base.meta) | {"delta": delta.meta}
    return out


def target_envelope(target: Profile, current: Profile | None = None) -> tuple[np.ndarray, bool]:
    """(band values, is_delta) for the match-EQ: an absolute envelope, or dB offsets for a delta."""
    if target.kind == "delta":
        if current is not None:
            return apply_delta(current, target).env(), False
        return np.nan_to_num(target.env()), True
    return target.env(), False


# -- from reference audio -----------------------------------------------------------------------
MIN_REFERENCE_S = 3.0


def check_reference(x, sample_rate: int, name: str = "reference") -> None:
    """Raise ProfileError when a reference clip is too short, silent or clipped."""
    from .features.base import as_2d

    x = as_2d(x)
    dur = x.shape[1] / sample_rate
    if dur < MIN_REFERENCE_S:
        raise ProfileError(f"{name}: {dur:.2f} s is too short; a reference needs at least {MIN_REFERENCE_S:g} s")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(peak) or peak < 10 ** (-60 / 20):
        raise ProfileError(f"{name}: the clip is silent (peak below -60 dBFS)")
    a = np.abs(x)
    near = a >= 0.999 * max(peak, 0.999)
    # clipped: runs of 3+ consecutive samples at the peak >= -0.01 dBFS, on more than 0.1 % of samples
    if peak >= 0.999:
        runs = near[:, 2:] & near[:, 1:-1] & near[:, :-2]
        frac = float(runs.sum()) / x.size
        if frac > 1e-3:
            raise ProfileError(f"{name}: the clip is clipped ({100 * frac:.2f} % of samples sit at full scale); "
                               "use an unclipped recording")


def from_reference(x, sample_rate: int, name: str = "reference") -> Profile:
    """A target profile measured from a reference clip (>= 3 s, not silent, not clipped)."""
    check_reference(x, sample_rate, name)
    p = fingerprint(x, sample_rate, source=name)
    if p.meta.get("active_s", 0) < 1.0:
        raise ProfileError(f"{name}: under 1 s of active (non-silent) audio")
    p.kind = "target"
    return p
