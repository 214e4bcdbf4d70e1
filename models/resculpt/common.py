"""Facts shared by the resculpting model's training (torch) and its runtime stage (numpy): frame, bands,
output-form constants and the conditioning vector built from a target profile.

Frame: the shared STFT's ``default`` config (20 ms periodic sqrt-Hann, 5 ms hop) at any rate, so bins are
50 Hz apart at every rate: the ``N_LOW`` low bins (0..1550 Hz) the deep filter acts on and the copy-up shift
(``COPY_SHIFT_HZ``, 80 bins) mean the same frequencies at 16 and 48 kHz. The model is tied to that window.

Band feature (the fingerprint's own convention, so the target envelope and the input's running envelope are
in one unit): ``10 log10(BandMap.analysis @ (|X|^2 / sum(w_a^2)) + EPS)``, 32 ERB bands; low-bin feature:
``10 log10(|X_k|^2 / sum(w_a^2) + EPS)`` for k < N_LOW. Both enter the net as ``(dB - FEAT_MEAN_DB) / FEAT_STD_DB``.

Conditioning vector (``COND_DIM`` = 139 floats), built by :func:`cond_from_profile` (an absolute target) or
:func:`delta_cond` (a relative one) from a ``resculpt.dsp.profile.Profile`` (runtime), or by ``profile_torch``'s
mirrors in training, same layout:
  [0:14]    per scalar dim of ``dsp.profile.DIMS``: ``normalized`` z of the target minus z of ``ANCHOR``
            (a typical voice), clipped to +-``Z_CLIP``; 0 where unknown or not matched (and in a relative row)
  [14:28]   1 where that dim is a target (known and selected by the match mode), else 0 (0 in a relative row)
  [28:60]   absolute: target band-envelope shape, level-free (minus its mean over the compared bands it
            defines), / 3 dB; relative: the delta's band offsets / 3 dB (the net adds them to its own running
            shape and makes the sum level-free)
  [60:92]   1 where the target defines that band (and it is compared: centred >= 60 Hz)
  [92:124]  1 where the input defines that band at the running rate (centre <= 0.45 x rate)
  [124]     ``REL_I``: 1 for a relative target (a delta: "a bit warmer", a context), 0 for an absolute one
  [125:139] ``DZ0``: relative rows only: per scalar dim, z(target) - z(input) = what the delta asks, in z units
            (``normalized``'s scale; a ratio dim's log2(ratio) / scale, an additive dim's offset / scale,
            clipped to +-``Z_CLIP``); 0 where the delta leaves a dim as it is or the match mode leaves it out.
            "Unknown" and "unchanged" are the same thing for a relative target, so these slots need no mask.
            Centroid and roll-off: the delta's own values, moves beyond what its band offsets make (the offsets'
            share depends on the input's spectrum, ``dsp.profile.shape_moves``); tilt: the whole move, the
            offsets' own slope at the rate plus the delta's value (the net's relative prior subtracts that slope).

Why a relative form: a causal net cannot tell "target = my own profile" from "a small move" while its running
fingerprint has heard little (the identity gate of ``net.py`` holds such targets back), but a delta says its
move exactly: the net builds the target shape from its own running shape plus the offsets, and the delta's
size alone drives its gate (``REL_GATE_DB``): a zero delta is exactly the identity, any other opens at once.
The first 124 floats are the layout of the first bundles (``COND_DIM_V1``); the 15 later ones start with zero
weights when an older checkpoint is loaded (``net.ResculptNet`` upgrades its state dict).
"""

from __future__ import annotations

import math

import numpy as np
from resculpt.dsp.bands import N_BANDS, BandMap  # noqa: F401  (re-exported model constant)
from resculpt.dsp.features.loudness import k_weighting_power
from resculpt.dsp.profile import BAND_SCALE_DB, DIMS, compare_mask, normalized
from resculpt.dsp.stft import get_config

HOP_MS = 5.0
WINDOW_MS = 20.0
STFT_CONFIG = "default"
N_LOW = 32            # deep-filtered low bins: 0..1550 Hz at 50 Hz spacing
DF_ORDER = 3          # deep-filter taps (frames) per low bin
COPY_SHIFT_HZ = 4000.0  # the copy-up excitation: bin k receives bin k - 80 (4 kHz lower)
GAIN_MAX_DB = 30.0    # band gains lie in +-GAIN_MAX_DB
# The known part of an absolute row's band gain (``net.ResculptNet.absolute_prior``): the level-free target-minus-
# running band shape, clipped as the match-EQ clips its curve by default (``match.max_cut_db`` /
# ``match.max_boost_db``): a band empty in the input (a codec's cut-off) is lifted by at most 18 dB of its noise.
ABS_PRIOR_CUT_DB, ABS_PRIOR_BOOST_DB = 24.0, 18.0
# The prior's own gate (``net.ResculptNet.prior_gate``): width (dB of band-shape difference) of
# 1 - exp(-(relu(dev - warm_db exp(-n / warm_frames)) / width)^2), the identity gate's warm-up term without its
# threshold: while little has been heard the running shape is too uncertain to EQ from (a 25 dB threshold at the
# first frame, 0.46 dB after 3 s of speech, 0.17 dB from a primed estimate), then a difference of 1 dB RMS passes
# 94 % of its curve, 0.5 dB 36 % and 0.2 dB 0.4 % (primed). The learned residual keeps the identity gate.
ABS_PRIOR_GATE_WIDTH_DB = 0.5
EPS = 1e-12
FEAT_MEAN_DB, FEAT_STD_DB = -60.0, 20.0
ACT_DB = -70.0        # a frame counts for the running fingerprint when its band-mean level exceeds this (dB)
RUN_TAU_S = 3.0       # time constant of the running fingerprint (exponential, over active frames)
# The running fingerprint's weight after a long, wholly active stream at the 5 ms hop: sum of alpha^k = 1 / (1 - alpha)
# with alpha = exp(-hop / tau), 600 frames; what a primed (offline) state carries (``stage.ResculptStage.prime``,
# ``net.ResculptNet.prime_state``).
RUN_STEADY_WEIGHT = 1.0 / -math.expm1(-HOP_MS / (1000.0 * RUN_TAU_S))
Z_CLIP = 8.0
N_DIMS = len(DIMS)
DIM_NAMES = tuple(d.name for d in DIMS)
COND_DIM_V1 = 2 * N_DIMS + 3 * N_BANDS  # the absolute layout alone (bundles of config version 1)
REL_I = COND_DIM_V1                     # relative-target flag
DZ0 = REL_I + 1                         # relative scalar moves, N_DIMS floats
COND_DIM = DZ0 + N_DIMS
S0, M0, V0 = 2 * N_DIMS, 2 * N_DIMS + N_BANDS, 2 * N_DIMS + 2 * N_BANDS  # band shape, band mask, input validity
# The gate of a relative row (threshold, width in dB of move size, ``net.ResculptNet.relative_gate``): a zero
# delta measures 3e-6 dB (the square root's floor), far inside the threshold; the smallest band move of the
# descriptor vocabulary ("a bit airy" at 16 kHz: 0.15 dB RMS over the bands the rate defines) opens it to
# 1 - exp(-((0.15 - 0.02) / 0.05)^2) = 0.998.
REL_GATE_DB = (0.02, 0.05)
# The known part of a relative row's band gain (``net.ResculptNet.relative_prior_db``): the band centres in
# octaves from 1 kHz (the pivot of a tilt move), the bands the fingerprint's tilt is fitted over (100 Hz..8 kHz,
# as ``dsp.features.spectral``), and each band's share of BS.1770 loudness for a flat power spectral density
# (the K-weighting's power response at the band centre x the band's width in Hz, 48 kHz design), which the
# net multiplies by its running band shape to predict how a band-gain shape moves the loudness.
_CENTERS = BandMap(48000, 960, N_BANDS).centers_hz
BAND_OCT_1K = np.log2(np.maximum(_CENTERS, 1.0) / 1000.0).astype(np.float32)
TILT_BANDS = (_CENTERS >= 100.0) & (_CENTERS <= 8000.0)


_EDGES = BandMap(48000, 960, N_BANDS).edges_hz
LOUDNESS_BAND_W = (k_weighting_power(_CENTERS, 48000) * np.diff(_EDGES)).astype(np.float32)
RUN_DIM = N_BANDS + 2  # running fingerprint: envelope shape / 3 dB (32), level, has-information flag
# A typical voice: the origin of the conditioning (z minus this), so the numbers the net sees are O(1).
ANCHOR = {"f0_median_hz": 150.0, "f0_range_st": 6.0, "voiced_fraction": 0.5, "f1_hz": 500.0, "f2_hz": 1500.0,
          "f3_hz": 2500.0, "centroid_hz": 1000.0, "rolloff_hz": 3000.0, "tilt_db_oct": -6.0, "hnr_db": 10.0,
          "lufs_integrated": -23.0, "lra_lu": 5.0, "crest_db": 15.0, "onset_rate_hz": 4.0}
# The descriptor targets the training validation and benchmarks/resculpt_model.py measure by default.
EVAL_DESCRIPTORS = ("warmer", "more bass, clearer highs")
MATCH = {
    "timbre": ("centroid_hz", "rolloff_hz", "tilt_db_oct", "lufs_integrated", "lra_lu", "crest_db"),
    "voice": ("centroid_hz", "rolloff_hz", "tilt_db_oct", "lufs_integrated", "lra_lu", "crest_db",
              "f0_median_hz", "f0_range_st", "voiced_fraction", "f1_hz", "f2_hz", "f3_hz", "hnr_db"),
    "all": DIM_NAMES,
}


def frame_sizes(sample_rate: int) -> tuple[int, int]:
    """(n_fft, hop) of the model's frame at ``sample_rate`` (the shared STFT's default config)."""
    return get_config(STFT_CONFIG).sizes(sample_rate)


def copy_shift_bins(sample_rate: int) -> int:
    n_fft, _ = frame_sizes(sample_rate)
    return int(round(COPY_SHIFT_HZ * n_fft / sample_rate))


def input_valid(sample_rate: int) -> np.ndarray:
    """(32,) bool: the bands the input defines at this rate (as the fingerprint: centre <= 0.45 x rate)."""
    n_fft, _ = frame_sizes(sample_rate)
    bm = BandMap(sample_rate, n_fft, N_BANDS)
    return bm.valid & (bm.centers_hz <= 0.45 * sample_rate)


def anchor_z() -> np.ndarray:
    from resculpt.dsp.profile import Profile

    z = normalized(Profile("target", dict(ANCHOR)))
    return np.array([z[n] for n in DIM_NAMES])


def cond_from_profile(target, sample_rate: int, match: str = "timbre") -> np.ndarray:
    """(COND_DIM,) float32 conditioning vector of a target Profile (absolute: fingerprint or target kind)."""
    if match not in MATCH:
        raise ValueError(f"match must be one of {sorted(MATCH)}, got {match!r}")
    z = normalized(target)
    za = anchor_z()
    v = np.zeros(COND_DIM, np.float32)
    for i, name in enumerate(DIM_NAMES):
        if name in MATCH[match] and math.isfinite(z[name]):
            v[i] = np.clip(z[name] - za[i], -Z_CLIP, Z_CLIP)
            v[N_DIMS + i] = 1.0
    env = target.env()
    ok = np.isfinite(env) & compare_mask()
    if ok.any():
        shape = env - env[ok].mean()
        v[2 * N_DIMS : 2 * N_DIMS + N_BANDS] = np.where(ok, shape / BAND_SCALE_DB, 0.0)
        v[2 * N_DIMS + N_BANDS : 2 * N_DIMS + 2 * N_BANDS] = ok
    v[V0:REL_I] = input_valid(sample_rate)
    return v


def delta_z(delta, match: str = "timbre", skip=(), sample_rate: int | None = None) -> np.ndarray:
    """(N_DIMS,) float32: the relative scalar moves of a delta Profile in z units (see the module doc, [125:139]):
    log2(ratio) / scale for ``RATIO_DIMS``, offset / scale for the others, clipped to +-Z_CLIP; 0 for dims the
    delta leaves unset or at the neutral value, outside ``MATCH[match]`` or named in ``skip``. With
    ``sample_rate``, the tilt slot holds the whole tilt move: the delta's band offsets' own slope at that rate
    (``dsp.features.spectral.tilt_slope_db_oct``) plus its tilt beyond the shape."""
    from resculpt.dsp.features.spectral import tilt_slope_db_oct
    from resculpt.dsp.profile import DIM_BY_NAME, RATIO_DIMS

    out = np.zeros(N_DIMS, np.float32)
    for i, name in enumerate(DIM_NAMES):
        v = delta.dims.get(name, math.nan)
        if name == "tilt_db_oct" and sample_rate is not None:
            v = (v if math.isfinite(v) else 0.0) + tilt_slope_db_oct(delta.env(), sample_rate)
        if name not in MATCH[match] or name in skip or not math.isfinite(v):
            continue
        if name in RATIO_DIMS:
            if v <= 0:
                continue
            v = math.log2(v)
        out[i] = np.clip(v / DIM_BY_NAME[name].scale, -Z_CLIP, Z_CLIP)
    return out


def delta_cond(delta, sample_rate: int, match: str = "timbre", skip=()) -> np.ndarray:
    """(COND_DIM,) float32 conditioning vector of a relative target (a delta Profile): flag 1, band offsets / 3 dB
    on the compared bands (0 where the delta leaves a band), band mask = the compared bands, the scalar moves
    of :func:`delta_z` (the tilt slot: the whole tilt move, offsets' slope at ``sample_rate`` included), the
    input's band validity at ``sample_rate``."""
    if match not in MATCH:
        raise ValueError(f"match must be one of {sorted(MATCH)}, got {match!r}")
    cmp = compare_mask()
    v = np.zeros(COND_DIM, np.float32)
    v[S0:M0] = np.where(cmp, np.nan_to_num(delta.env(), nan=0.0, posinf=0.0, neginf=0.0), 0.0) / BAND_SCALE_DB
    v[M0:V0] = cmp
    v[V0:REL_I] = input_valid(sample_rate)
    v[REL_I] = 1.0
    v[DZ0:] = delta_z(delta, match, skip, sample_rate)
    return v
