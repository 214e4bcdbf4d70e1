"""Facts shared by the resculpting model's training (torch) and its runtime stage (numpy): frame, bands,
output-form constants and the conditioning vector built from a target profile.

Frame: the shared STFT's ``default`` config (20 ms periodic sqrt-Hann, 5 ms hop) at any rate, so bins are
50 Hz apart at every rate: the ``N_LOW`` low bins (0..1550 Hz) the deep filter acts on and the copy-up shift
(``COPY_SHIFT_HZ``, 80 bins) mean the same frequencies at 16 and 48 kHz. The model is tied to that window.

Band feature (the fingerprint's own convention, so the target envelope and the input's running envelope are
in one unit): ``10 log10(BandMap.analysis @ (|X|^2 / sum(w_a^2)) + EPS)``, 32 ERB bands; low-bin feature:
``10 log10(|X_k|^2 / sum(w_a^2) + EPS)`` for k < N_LOW. Both enter the net as ``(dB - FEAT_MEAN_DB) / FEAT_STD_DB``.

Conditioning vector (``COND_DIM`` = 124 floats), built by :func:`cond_from_profile` from a
``resculpt.dsp.profile.Profile`` (runtime) or by ``profile_torch``-side code in training, same layout:
  [0:14]    per scalar dim of ``dsp.profile.DIMS``: ``normalized`` z of the target minus z of ``ANCHOR``
            (a typical voice), clipped to +-``Z_CLIP``; 0 where unknown or not matched
  [14:28]   1 where that dim is a target (known and selected by the match mode), else 0
  [28:60]   target band-envelope shape: level-free (minus its mean over the compared bands it defines), / 3 dB
  [60:92]   1 where the target defines that band (and it is compared: centred >= 60 Hz)
  [92:124]  1 where the input defines that band at the running rate (centre <= 0.45 x rate)
"""

from __future__ import annotations

import math

import numpy as np
from resculpt.dsp.bands import N_BANDS, BandMap  # noqa: F401  (re-exported model constant)
from resculpt.dsp.profile import BAND_SCALE_DB, DIMS, compare_mask, normalized
from resculpt.dsp.stft import get_config

HOP_MS = 5.0
WINDOW_MS = 20.0
STFT_CONFIG = "default"
N_LOW = 32            # deep-filtered low bins: 0..1550 Hz at 50 Hz spacing
DF_ORDER = 3          # deep-filter taps (frames) per low bin
COPY_SHIFT_HZ = 4000.0  # the copy-up excitation: bin k receives bin k - 80 (4 kHz lower)
GAIN_MAX_DB = 30.0    # band gains lie in +-GAIN_MAX_DB
EPS = 1e-12
FEAT_MEAN_DB, FEAT_STD_DB = -60.0, 20.0
ACT_DB = -70.0        # a frame counts for the running fingerprint when its band-mean level exceeds this (dB)
RUN_TAU_S = 3.0       # time constant of the running fingerprint (exponential, over active frames)
Z_CLIP = 8.0
N_DIMS = len(DIMS)
DIM_NAMES = tuple(d.name for d in DIMS)
COND_DIM = 2 * N_DIMS + 3 * N_BANDS
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
    v[2 * N_DIMS + 2 * N_BANDS :] = input_valid(sample_rate)
    return v
