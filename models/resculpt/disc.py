"""Multi-scale discriminators of the resculpting generator (torch; training only).

``MultiScaleDisc(sr)``: one list of sub-discriminators, each returning ``[activations..., patch logits]`` so the
trainer can take both an adversarial term (the logits) and a feature-matching term (the activations):
  * spectrogram: log-magnitude STFTs at 3 resolutions (~16, 32 and 64 ms Hann windows, hop 1/4), each judged
    by a small 2-D conv net: the mask trainer's ``MultiResSpecDisc`` (one home), sized to the rate;
  * waveform: MelGAN-style 1-D conv stacks (grouped, strided) on the waveform and on its 2x average-pooled
    version: they see phase and transients, which magnitude spectrograms do not.
"""

from __future__ import annotations

import math

import torch
from resculpt.models.mask.net import MultiResSpecDisc
from torch import nn
from torch.nn.functional import leaky_relu


class WaveDisc(nn.Module):
    def __init__(self, ch: int = 16):
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv1d(1, ch, 15, padding=7),
            nn.Conv1d(ch, 2 * ch, 41, stride=4, padding=20, groups=4),
            nn.Conv1d(2 * ch, 4 * ch, 41, stride=4, padding=20, groups=16),
            nn.Conv1d(4 * ch, 4 * ch, 5, padding=2),
        ])
        self.out = nn.Conv1d(4 * ch, 1, 3, padding=1)

    def features(self, x):  # (B, n) -> [activations..., logits (B, 1, n / 16)]
        h = x[:, None]
        out = []
        for c in self.convs:
            h = leaky_relu(c(h), 0.2)
            out.append(h)
        out.append(self.out(h))
        return out


class MultiScaleDisc(nn.Module):
    def __init__(self, sample_rate: int = 16000, ch_spec: int = 8, ch_wave: int = 16):
        super().__init__()
        ffts = tuple(1 << int(round(math.log2(ms * 1e-3 * sample_rate))) for ms in (16, 32, 64))
        self.spec = MultiResSpecDisc(ffts, ch_spec)
        self.wave = nn.ModuleList([WaveDisc(ch_wave), WaveDisc(ch_wave)])
        self.pool = nn.AvgPool1d(4, 2, padding=1, count_include_pad=False)

    def features(self, wav):
        """wav (B, n) -> list over the 5 sub-discriminators of [activations..., logits]."""
        outs = list(self.spec.features(wav))
        outs.append(self.wave[0].features(wav))
        outs.append(self.wave[1].features(self.pool(wav[:, None])[:, 0]))
        return outs
