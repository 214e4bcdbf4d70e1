"""The codec-repair envelope net (torch; training and export only).

A causal recurrent net over frames: features (B, T, N_FEAT) -> band levels (B, T, 32) in units of 20 dB
against the frame's kept-band level ``r`` (``common``). Input layer 66 -> H (tanh), one GRU layer H -> H, output
layer H -> 32. The kept bands' output is a residual on their input level, so a fresh net leaves them as decoded
and learns only corrections; the rebuilt bands (input empty) are predicted outright. No look-ahead: the GRU
state is the only memory (it sees the phoneme's past, about the last second, which is what tells a fricative's
high band from a vowel's).
"""

from __future__ import annotations

import torch
from torch import nn

from resculpt.dsp.bands import N_BANDS

from . import common


class CodecEnvNet(nn.Module):
    def __init__(self, hidden: int = 96):
        super().__init__()
        self.hidden = hidden
        self.inp = nn.Linear(common.N_FEAT, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, N_BANDS)

    def forward(self, feat: torch.Tensor, h: torch.Tensor | None = None):
        """feat (B, T, N_FEAT), h (1, B, H) or None -> (levels (B, T, 32), h (1, B, H))."""
        z = torch.tanh(self.inp(feat))
        y, h = self.gru(z, h)
        kept = feat[..., N_BANDS : 2 * N_BANDS]
        return self.out(y) + kept * feat[..., :N_BANDS], h
