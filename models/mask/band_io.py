"""The training's band domain (torch): the same frames, band features and fine features the runtime stage
computes, and the masked resynthesis.

At 16 kHz (the speech is 16 kHz), as the stage does at every rate: the signal's STFT (periodic sqrt-Hann,
5 ms hop, a 10 or 20 ms window; frames exactly as the streaming STFT forms them: the first frame ends at
the first hop) -> band PSD features for bands 0..23 (``common.py``) and the 32 ms look-back fine features;
after the net, band gains -> ``BandMap.synthesis`` to bins -> masked spectrum -> weighted overlap-add ->
waveform aligned with the input. Bands 24..31 repeat band 23's gain here (16 kHz audio has nothing above
8 kHz; in the stage they follow the noise-floor rule). ``tests/test_mask_train_export.py`` checks that these
features equal the stage's.
"""

from __future__ import annotations

import numpy as np
import torch
from resculpt.dsp.bands import BandMap
from resculpt.models.mask import common
from resculpt.models.mask.mixing import SR
from torch.nn.functional import fold, pad


class BandIO:
    """Analysis and synthesis for one STFT size: ``n_fft`` and ``hop`` in samples at ``sr``."""

    def __init__(self, n_fft: int, hop: int, sr: int = SR):
        self.n_fft, self.hop = n_fft, hop
        w = common.sqrt_hann(n_fft)
        ola = np.zeros(hop)
        for k in range(0, n_fft, hop):
            ola += (w * w)[k : k + hop]
        self.win_a = torch.tensor(w, dtype=torch.float32)
        self.win_s = torch.tensor(w / ola[0], dtype=torch.float32)
        bm = BandMap(sr, n_fft, common.N_BANDS)
        self.ana = torch.tensor(bm.analysis)       # (32, nb)
        self.syn = torch.tensor(bm.synthesis)      # (nb, 32)
        self.scale = common.psd_scale(sr, w)
        self.n_long = common.fine_len(sr)
        self.win_l = torch.tensor(common.fine_window(sr), dtype=torch.float32)
        self.fine_m = torch.tensor(common.fine_matrix(sr), dtype=torch.float32)  # (128, n_long // 2 + 1)

    def fine(self, x):  # (B, N) -> (B, T, 128) dB: 32 ms look-back window ending where frame t ends
        xp = pad(x, (self.n_long - self.hop, 0))
        fr = xp.unfold(-1, self.n_long, self.hop) * self.win_l
        s = torch.fft.rfft(fr, dim=-1)
        return 10.0 * torch.log10((s.real**2 + s.imag**2) @ self.fine_m.t() + common.EPS)

    def analyse(self, x):  # (B, N) -> spec (B, T, nb), feat (B, T, 24) dB
        spec, band = self.bands(x)
        feat = 10.0 * torch.log10(band + common.EPS)
        return spec, feat

    def stft(self, x):  # (B, N) -> spec (B, T, nb): frame t ends at sample (t + 1) * hop, zeros before the start
        xp = pad(x, (self.n_fft - self.hop, 0))
        return torch.fft.rfft(xp.unfold(-1, self.n_fft, self.hop) * self.win_a, dim=-1)

    def bands(self, x):  # (B, N) -> spec (B, T, nb), band PSD (B, T, 24) (linear, per Hz)
        spec = self.stft(x)
        p = (spec.real**2 + spec.imag**2) * self.scale
        return spec, (p @ self.ana.t())[..., : common.N_LEARNED]

    @staticmethod
    def phase(spec, bins: int, steady: bool = False):
        """Phase-advance features (``common.PHASE_FLOOR``): spec (B, T, nb) complex -> (B, T, 2 * bins) real,
        per bin (re, im) of u = a / sqrt(|a|^2 + (floor * mean_k |a|)^2), a = X[t, k] conj(X[t-1, k]) (-1)^k for
        k < bins; frame -1 counts as zero (the first frame reads 0). ``steady``: (B, T, 4 * bins), per bin also
        (re, im) of u[t] conj(u[t-1]), the change of the advance over one hop: near 1 + 0j while one harmonic holds
        the bin, anywhere in the unit disc for noise."""
        lo = spec[..., :bins]
        prev = torch.cat([torch.zeros_like(lo[:, :1]), lo[:, :-1]], dim=1)
        sign = torch.tensor([(-1.0) ** k for k in range(bins)], dtype=lo.real.dtype)
        a = lo * prev.conj() * sign
        mag2 = a.real**2 + a.imag**2
        ref = (common.PHASE_FLOOR * mag2.sqrt().mean(-1, keepdim=True)) ** 2 + 1e-30
        u = a / torch.sqrt(mag2 + ref)
        parts = [u.real, u.imag]
        if steady:
            v = u * torch.cat([torch.zeros_like(u[:, :1]), u[:, :-1]], dim=1).conj()
            parts += [v.real, v.imag]
        return torch.stack(parts, dim=-1).reshape(*lo.shape[:-1], len(parts) * bins).float()

    def ideal_gains(self, x, t):
        """g* (B, T, 24): clip(sqrt(P_t / P_x), 0, 1) per learned band and frame. A band where the
        mixture is below -120 dB (PSD per Hz, i.e. digital silence) gets 1: nothing to remove."""
        _, px = self.bands(x)
        _, pt = self.bands(t)
        return torch.sqrt((pt + common.EPS) / (px + common.EPS)).clamp(0.0, 1.0)

    def synth(self, spec, gains24, n, df=None, df_order: int = 5, lookahead: int = 0):  # -> (B, n) aligned with the input
        """spec (B, T, nb) complex, gains24 (B, T, 24) aligned with the frames; ``df`` (B, T, N * K * 2), also
        aligned: the deep-filter taps of frame t (``deep_filter``), added to the band-gained lowest K bins."""
        g32 = torch.cat([gains24, gains24[..., -1:].expand(*gains24.shape[:-1], common.N_BANDS - common.N_LEARNED)], -1)
        gb = g32 @ self.syn.t()
        y = spec * gb
        if df is not None:
            low = deep_filter(spec, df, df_order, lookahead)
            k = low.shape[-1]
            y = torch.cat([y[..., :k] + low, y[..., k:]], dim=-1)
        return self.istft(y, n)

    def istft(self, spec, n):  # spec (B, T, nb) -> (B, n): weighted overlap-add, aligned with the input of stft
        fr = torch.fft.irfft(spec, n=self.n_fft, dim=-1) * self.win_s  # (B, T, n_fft)
        b, t, _ = fr.shape
        L = (t - 1) * self.hop + self.n_fft
        y = fold(fr.transpose(1, 2), (1, L), (1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        s = self.n_fft - self.hop
        return y[:, s : s + n]



def deep_filter(spec, df, order: int, lookahead: int):
    """The deep-filter term of each frame: spec (B, T, nb) complex; df (B, T, N * K * 2) real taps of frame t
    (already aligned: ``MaskNet.align``), laid out (N, K, re/im) -> (B, T, K) complex
    sum_j C[t, j, k] * X[t + L - N + 1 + j, k], j = 0..N-1: tap j = N - 1 reads the newest frame the net had heard
    when it emitted them (L frames past t), frames before the start or past the end count as zero."""
    b, t, _ = spec.shape
    n = order
    k = df.shape[-1] // (2 * n)
    c = df.reshape(b, t, n, k, 2)
    c = torch.complex(c[..., 0], c[..., 1])                                 # (B, T, N, K)
    lo = spec[..., :k]
    xp = torch.cat([lo.new_zeros(b, n - 1 - lookahead, k), lo, lo.new_zeros(b, lookahead, k)], dim=1)
    out = c[:, :, 0] * xp[:, 0:t]
    for j in range(1, n):
        out = out + c[:, :, j] * xp[:, j : j + t]
    return out
