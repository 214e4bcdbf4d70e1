"""The learned codec-repair envelope: what the model sees and what it says, shared by the runtime stage
(numpy + onnxruntime), the pair builder and training (torch). Never imports torch.

Per STFT frame (5 ms hop, any rate and window) the codec stage hands over the decoded frame's channel-mean power
``pm`` (n_bins,) and the codec's edge ``fc`` (bins; 0 = none found). From them:

- ``r`` (dB): the mean power density of the kept band (bins 1 .. fc, or 1 .. 4 kHz without an edge): the level
  every band is read against, so the model sees shapes, not loudness;
- features (N_FEAT,): the 32 ERB band levels (dsp.bands, 0-24 kHz) minus ``r``, / 20 dB, clipped to
  [-4, 2]; a 0/1 row of the bands the codec kept (centre below the edge; all 0 without an edge); the edge in
  units of 8 kHz; the absolute level ``r - 10 log10(n_fft)`` (so the window length does not move it), shifted by
  35 dB and / 30 dB, clipped to [-3, 3] (speech at -20 dBFS sits near 0);
- output (32,): the wanted level of every band, in units of 20 dB against ``r``. The stage uses the bands
  above the edge and at or below MAX_HZ as the rebuilt band's envelope (the copy is scaled to it), and, when
  asked, the kept bands as a bounded correction.
"""

from __future__ import annotations

import math

import numpy as np

from resculpt.dsp.bands import N_BANDS, BandMap

CONFIG_VERSION = 1
N_FEAT = 2 * N_BANDS + 2
HOP_MS = 5.0          # the frame rate the recurrent state was trained at (every shipped STFT config)
MAX_HZ = 8000.0       # bands centred above this keep the slope/level rule (the training speech is 16 kHz)
NO_EDGE_REF_HZ = 4000.0
DB_UNIT = 20.0
FEAT_LO, FEAT_HI = -4.0, 2.0
LEVEL_SHIFT_DB, LEVEL_UNIT_DB, LEVEL_CLIP = 35.0, 30.0, 3.0
EPS = 1e-12


class Features:
    """Per-frame features at one (rate, n_fft), allocation-free after construction (audio thread).

    compute(pm, fc, out): pm (n_bins,) float32 power, fc edge bin (0 = none), out (N_FEAT,) float32 filled;
    returns r (dB). ``band_db`` (32,) float32 then holds the unclipped band levels in dB (absolute).
    """

    def __init__(self, sample_rate: int, n_fft: int, band_map: BandMap | None = None):
        bm = band_map or BandMap(sample_rate, n_fft)
        self.ana_t = np.ascontiguousarray(bm.analysis.T)  # (n_bins, 32)
        self.centers_hz = np.asarray(bm.centers_hz, np.float64)
        self.bin_hz = sample_rate / n_fft
        self.n_bins = n_fft // 2 + 1
        self.k_no_edge = max(2, min(self.n_bins, round(NO_EDGE_REF_HZ / self.bin_hz)))
        self.level_off = 10.0 * math.log10(n_fft) - LEVEL_SHIFT_DB
        # kept-band rows per edge bin (0 = no edge: all 0)
        f_edge = np.arange(self.n_bins + 1)[:, None] * self.bin_hz
        self.kept = (self.centers_hz[None, :] < f_edge).astype(np.float32)
        self.kept[0] = 0.0
        self.band_db = np.zeros(N_BANDS, np.float32)

    def compute(self, pm: np.ndarray, fc: int, out: np.ndarray) -> float:
        k = fc if 1 < fc <= self.n_bins else self.k_no_edge
        r = 10.0 * math.log10(float(pm[1:k].mean(dtype=np.float32)) + EPS)
        b = self.band_db
        np.matmul(pm, self.ana_t, out=b)
        b += np.float32(EPS)
        np.log10(b, out=b)
        b *= np.float32(10.0)
        f = out[:N_BANDS]
        np.subtract(b, np.float32(r), out=f)
        f *= np.float32(1.0 / DB_UNIT)
        np.clip(f, FEAT_LO, FEAT_HI, out=f)
        np.copyto(out[N_BANDS : 2 * N_BANDS], self.kept[min(max(fc, 0), self.n_bins)])
        out[2 * N_BANDS] = fc * self.bin_hz / MAX_HZ
        out[2 * N_BANDS + 1] = min(LEVEL_CLIP, max(-LEVEL_CLIP, (r - self.level_off) / LEVEL_UNIT_DB))
        return r
