"""Streaming feature extractors (one row per 5 ms hop) and their offline per-file runs.

Every extractor is a :class:`~resculpt.dsp.features.base.FrameAnalyzer` (the Processor
protocol, pass-through, latency 0); :func:`analyze` runs one over a whole signal with the same
code, so streaming equals offline. :func:`extract` runs all of them and returns named tracks.

=================  ==================================================================  ==========
extractor          columns                                                             module
=================  ==================================================================  ==========
Pitch              f0_hz, voiced, periodicity, hnr_db (breathiness)                    pitch
Formants           f1_hz, f2_hz, f3_hz, b1_hz, b2_hz, b3_hz (LPC)                     formants
SpectralFeatures   band_env_db[0..31] (ERB), mfcc[0..12], centroid_hz, rolloff_hz,     spectral
                   tilt_db_oct, level_db  (also BandEnvelope, MFCC, Brightness)
Loudness           lufs_momentary, lufs_shortterm, lufs_integrated, lra_lu,            loudness
                   crest_db, peak_dbfs (BS.1770-4, EBU R128/Tech 3342)
Pace               onset_rate_hz, event, active                                         pace
=================  ==================================================================  ==========
"""

from __future__ import annotations

import numpy as np

from .base import FrameAnalyzer, analyze, as_2d, hop_size
from .formants import Formants
from .loudness import Loudness, integrated_lufs, k_weighting_sos
from .pace import Pace
from .pitch import Pitch
from .spectral import MFCC, N_BANDS, N_MFCC, BandEnvelope, Brightness, SpectralFeatures

ALL = (Pitch, Formants, SpectralFeatures, Loudness, Pace)


def extract(x, sample_rate: int) -> dict[str, np.ndarray]:
    """Run every extractor offline; return {column: (frames,) track} (all tracks the same length)."""
    out: dict[str, np.ndarray] = {}
    rows = [analyze(cls(), x, sample_rate) for cls in ALL]
    n = min(r.shape[0] for r in rows)
    for cls, r in zip(ALL, rows):
        for j, c in enumerate(cls.columns):
            out[c] = r[:n, j]
    return out


__all__ = [
    "ALL",
    "MFCC",
    "N_BANDS",
    "N_MFCC",
    "BandEnvelope",
    "Brightness",
    "Formants",
    "FrameAnalyzer",
    "Loudness",
    "Pace",
    "Pitch",
    "SpectralFeatures",
    "analyze",
    "as_2d",
    "extract",
    "hop_size",
    "integrated_lufs",
    "k_weighting_sos",
]
