"""Adaptive spectral-mask generator (torch, training/export only) and its discriminator.

Generator (``MaskNet``), causal; ``lookahead`` L frames (0 for the shipped model):

```
band log-power (B, T, F=24, dB) ─► per-band normalise ─► causal Conv2d (time 3 x freq 3) ─► ELU
   ─► concat[ feature maps , W·E ]   (E: learnable frequency embeddings (F, d_e); W: learnable
   ─► causal Conv2d, freq stride 2 ─► ELU        weighting layer, Linear d_e -> d_e, applied
   ─► causal Conv2d ─► ELU                       before the concatenation)
   ─► flatten (C * F/2) ─┬─► + FiLM(cond) ─► GRU(H) ─► Linear ─► sigmoid ─► band gains (B, T, F) in [0, 1]
fine log-PSD (B, T, 128)  │  (32 ms look-back window, 31.25 Hz grid 0-4 kHz, ``common.py``)
   ─► per-bin normalise ─► Conv (1x7, /2) ─► Conv (1x5, /2) ─► Conv (1x5, /2) ─► Linear(256, 96) ─┘ (concat)
```

The fine branch is per frame (kernel 1 in time: no state); it sees harmonic structure (voice F0 80-400 Hz
puts partials 2.5-13 bins apart on the 31.25 Hz grid) that the 24 ERB bands average away, and the GRU
carries it over time.

Optional phase-advance branch (``phase_bins`` P > 0; a training experiment: ``step``/``step_seq`` and so the
exporter refuse such a net, because the stage does not compute its input): (B, T, 2P) unit phase advances of the
lowest P bins of the 10 ms window (``BandIO.phase``; with ``phase_steady`` also their change over one hop,
4P) ─► Linear(2P or 4P, 64) ─► ELU ─► concatenated after the fine
features, before the FiLM, per frame like them.

``cond`` (B, 2) = [enhance (0 = denoise: music is interference, 1 = enhance: music is kept), strength
in 0..1 (how much of the interference the target removes)]. Every conv is causal in time (kernel 3,
two frames of left context); streaming state is explicit: two past input frames per conv layer plus the
GRU hidden state. ``step`` runs one frame from that state, ``step_seq`` T frames from it, ``forward`` a
whole sequence from zero state; all use the same weights and give the same numbers (tested).

Look-ahead L > 0 changes nothing in the graph, only what its output means: the gains emitted with frame t+L
belong to frame t (``align``), so the net has heard L hops (5 ms each) past the frame it gains, e.g. the onset
of a word before it opens the bands. The stage holds L spectra back and reports L hops of latency
(``lookahead_frames`` in the bundle).

Discriminator (``MultiResSpecDisc``): log-magnitude spectrograms of a waveform at three STFT
resolutions, each judged by a small 2-D conv net with patch outputs (LSGAN). It tells clean spectra
from masked ones.
"""

from __future__ import annotations

import torch
from resculpt.models.mask.common import N_FINE, N_LEARNED
from torch import nn
from torch.nn.functional import elu, leaky_relu, pad

FINE_OUT = 96  # features the fine branch hands to the GRU per frame
PHASE_OUT = 64  # features the phase-advance branch (``phase_bins`` > 0, training only so far) hands to the GRU


class CausalConv(nn.Module):
    """Conv2d over (time, freq) with kernel (3, kf), causal in time via an explicit 2-frame cache."""

    def __init__(self, cin, cout, kf=3, sf=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, (3, kf), stride=(1, sf), padding=(0, kf // 2))
        self.cin = cin

    def forward(self, x):  # x (B, C, T, F) -> zero left context
        return self.conv(pad(x, (0, 0, 2, 0)))

    def step(self, x, cache):  # x (B, C, 1, F), cache (B, C, 2, F)
        full = torch.cat([cache, x], dim=2)
        return self.conv(full), full[:, :, 1:]


PRESENCE_BIAS = 5.0  # sigmoid(5) = 0.993: a new presence head passes every frame (-0.06 dB)


class MaskNet(nn.Module):
    def __init__(self, n_bands: int = N_LEARNED, ch: int = 16, emb: int = 8, hidden: int = 128,
                 feat_mean=None, feat_std=None, fine_mean=None, fine_std=None, n_fine: int = N_FINE,
                 lookahead: int = 0, df_bins: int = 0, df_order: int = 5, phase_bins: int = 0,
                 phase_steady: bool = False, presence: bool = False):
        super().__init__()
        self.presence = bool(presence)
        self.last_presence = None  # (B, T, 1) of the last call, for the trainer's presence target
        self.phase_bins, self.phase_steady = int(phase_bins), bool(phase_steady)
        self.n_fine = n_fine
        if int(lookahead) < 0:
            raise ValueError(f"lookahead = {lookahead}: frames of look-ahead must be >= 0")
        self.lookahead = int(lookahead)
        self.df_bins, self.df_order = int(df_bins), int(df_order)
        if self.df_bins and not self.lookahead + 1 <= self.df_order:
            raise ValueError(f"df_order = {df_order}: the taps must reach the frame the output belongs to "
                             f"(df_order >= lookahead + 1 = {self.lookahead + 1})")
        fim = torch.zeros(n_fine) if fine_mean is None else torch.as_tensor(fine_mean, dtype=torch.float32)
        fis = torch.ones(n_fine) if fine_std is None else torch.as_tensor(fine_std, dtype=torch.float32)
        self.register_buffer("fine_mean", fim.clone())
        self.register_buffer("fine_std", fis.clone())
        if n_fine:  # n_fine = 0: band features only (the ablation of the fine branch)
            self.fine_convs = nn.ModuleList([
                nn.Conv2d(1, 8, (1, 7), stride=(1, 2), padding=(0, 3)),
                nn.Conv2d(8, 16, (1, 5), stride=(1, 2), padding=(0, 2)),
                nn.Conv2d(16, 16, (1, 5), stride=(1, 2), padding=(0, 2)),
            ])
            self.fine_fc = nn.Linear(16 * (n_fine // 8), FINE_OUT)
        self.n_bands, self.ch, self.emb, self.hidden = n_bands, ch, emb, hidden
        fm = torch.zeros(n_bands) if feat_mean is None else torch.as_tensor(feat_mean, dtype=torch.float32)
        fs = torch.ones(n_bands) if feat_std is None else torch.as_tensor(feat_std, dtype=torch.float32)
        self.register_buffer("feat_mean", fm.clone())
        self.register_buffer("feat_std", fs.clone())
        self.freq_emb = nn.Parameter(torch.randn(n_bands, emb) * 0.1)  # positional (frequency) embeddings
        self.emb_weight = nn.Linear(emb, emb)                          # small learnable weighting layer
        self.c1 = CausalConv(1, ch)
        self.c2 = CausalConv(ch + emb, 2 * ch, sf=2)
        self.c3 = CausalConv(2 * ch, 2 * ch)
        self.f_out = (n_bands + 1) // 2
        d = 2 * ch * self.f_out + (FINE_OUT if n_fine else 0) + (PHASE_OUT if self.phase_bins else 0)
        if self.phase_bins:  # per frame, like the fine branch: the GRU judges how steady the advance stays
            self.phase_fc = nn.Linear((4 if self.phase_steady else 2) * self.phase_bins, PHASE_OUT)
        self.film = nn.Linear(2, 2 * d)
        self.gru = nn.GRU(d, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_bands)
        if self.df_bins:  # deep-filter taps, zero at the start: the net begins as the band-gain net it grows from
            self.df_head = nn.Linear(hidden, self.df_order * self.df_bins * 2)
            nn.init.zeros_(self.df_head.weight)
            nn.init.zeros_(self.df_head.bias)
        if self.presence:  # speech presence, near 1 at the start: the net begins as the one it grows from
            self.presence_head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.presence_head.weight)
            self.presence_head.bias.data.fill_(PRESENCE_BIAS)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        with torch.no_grad():
            self.head.bias.fill_(2.0)  # start near unity gain (identity effect)

    # -- helpers ---------------------------------------------------------------------------------
    def _emb_map(self, b, t):
        e = self.emb_weight(self.freq_emb)  # (F, emb)
        return e.t()[None, :, None, :].expand(b, self.emb, t, self.n_bands)

    def _norm(self, feat):  # (B, T, F) dB -> (B, 1, T, F)
        return ((feat - self.feat_mean) / self.feat_std).unsqueeze(1)

    def _fine(self, fine):  # (B, T, 128) dB -> (B, T, FINE_OUT)
        x = ((fine - self.fine_mean) / self.fine_std).unsqueeze(1)
        for c in self.fine_convs:
            x = elu(c(x))
        b, ch, t, f = x.shape
        return elu(self.fine_fc(x.permute(0, 2, 1, 3).reshape(b, t, ch * f)))

    def _mid(self, h, fine, cond, phase=None):
        b, c, t, f = h.shape
        h = h.permute(0, 2, 1, 3).reshape(b, t, c * f)
        if self.n_fine:
            h = torch.cat([h, self._fine(fine)], dim=-1)
        if self.phase_bins:
            if phase is None:
                raise ValueError(f"this net reads phase-advance features of {self.phase_bins} bins (BandIO.phase)")
            h = torch.cat([h, elu(self.phase_fc(phase))], dim=-1)
        g = self.film(cond)  # (B, 2d)
        scale, shift = g.chunk(2, dim=-1)
        return h * (1.0 + scale[:, None, :]) + shift[:, None, :]

    # -- whole sequence (training) -------------------------------------------------------------
    def forward(self, feat, fine, cond, phase=None):
        """feat (B, T, F) band log-power in dB; fine (B, T, 128) fine log-PSD in dB; cond (B, 2); phase
        (B, T, 2 or 4 * phase_bins) phase-advance features (``BandIO.phase``, ``steady`` = ``phase_steady``; only
        for a net with ``phase_bins``).
        Returns gains (B, T, F) in [0, 1]."""
        b, t, _ = feat.shape
        x = self._norm(feat)
        h = elu(self.c1(x))
        h = torch.cat([h, self._emb_map(b, t)], dim=1)
        h = elu(self.c2(h))
        h = elu(self.c3(h))
        h = self._mid(h, fine, cond, phase)
        y, _ = self.gru(h)
        return self._out(y)

    def _out(self, y):  # GRU output (B, T, H) -> gains (B, T, F) [, deep-filter taps (B, T, N * K * 2)]
        g = torch.sigmoid(self.head(y))
        df = self.df_head(y) if self.df_bins else None
        if self.presence:  # one frame-wide factor: a pause is cut in every band at once, taps included
            p = torch.sigmoid(self.presence_head(y))  # (B, T, 1)
            self.last_presence = p
            g = g * p
            df = df * p if df is not None else None
        return (g, df) if self.df_bins else g

    def align(self, gains):
        """gains (B, T, F) as emitted -> the gains of input frames 0..T-1: frame t takes the output of frame
        t + L; the last L frames, whose outputs lie past the sequence, repeat the last output (L = 0: as is)."""
        L = self.lookahead
        if L == 0:
            return gains
        return torch.cat([gains[:, L:], gains[:, -1:].expand(-1, min(L, gains.shape[1]), -1)], dim=1)

    # -- one frame (streaming / ONNX) ----------------------------------------------------------
    def _streamable(self):
        if self.phase_bins:  # the stage computes no phase-advance features, so such a net cannot be exported yet
            raise NotImplementedError("a net with phase-advance input (phase_bins > 0) is a training experiment: "
                                      "the streaming path and the exporter do not compute that input")

    def state_shapes(self, b: int = 1):
        return {
            "cache1": (b, 1, 2, self.n_bands),
            "cache2": (b, self.ch + self.emb, 2, self.n_bands),
            "cache3": (b, 2 * self.ch, 2, self.f_out),
            "hidden": (1, b, self.hidden),
        }

    def init_state(self, b: int = 1):
        return [torch.zeros(s) for s in self.state_shapes(b).values()]

    def step_seq(self, feat, fine, cond, cache1, cache2, cache3, hidden):
        """T frames from a streaming state in one call (the runtime batches the frames one audio block
        completes): feat (B, T, F) dB, fine (B, T, 128) dB, cond (B, 2), state -> gains (B, T, F), new state.
        The same numbers as T calls of ``step`` (each conv sees the cached frames, then its own T)."""
        self._streamable()
        b, t, _ = feat.shape
        x = self._norm(feat)
        f1 = torch.cat([cache1, x], dim=2)
        h = elu(self.c1.conv(f1))
        h = torch.cat([h, self._emb_map(b, t)], dim=1)
        f2 = torch.cat([cache2, h], dim=2)
        h = elu(self.c2.conv(f2))
        f3 = torch.cat([cache3, h], dim=2)
        h = elu(self.c3.conv(f3))
        h = self._mid(h, fine, cond)
        y, hidden = self.gru(h, hidden)
        out = self._out(y)
        return (*(out if self.df_bins else (out,)), f1[:, :, -2:], f2[:, :, -2:], f3[:, :, -2:], hidden)

    def step(self, feat, fine, cond, cache1, cache2, cache3, hidden):
        """feat (B, 1, F) dB, fine (B, 1, 128) dB, cond (B, 2), state -> gains (B, 1, F), new state (same shapes)."""
        self._streamable()
        b = feat.shape[0]
        x = self._norm(feat)
        h, cache1 = self.c1.step(x, cache1)
        h = elu(h)
        h = torch.cat([h, self._emb_map(b, 1)], dim=1)
        h, cache2 = self.c2.step(h, cache2)
        h = elu(h)
        h, cache3 = self.c3.step(h, cache3)
        h = elu(h)
        h = self._mid(h, fine, cond)
        y, hidden = self.gru(h, hidden)
        out = self._out(y)
        return (*(out if self.df_bins else (out,)), cache1, cache2, cache3, hidden)


class _DiscNet(nn.Module):
    def __init__(self, ch=8):
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv2d(1, ch, (3, 5), stride=(1, 2), padding=(1, 2)),
            nn.Conv2d(ch, ch, (3, 5), stride=(1, 2), padding=(1, 2)),
            nn.Conv2d(ch, ch, (3, 3), stride=(1, 2), padding=(1, 1)),
        ])
        self.out = nn.Conv2d(ch, 1, (3, 3), padding=(1, 1))

    def forward(self, x):
        return self.features(x)[-1]

    def features(self, x):  # -> [activation of each conv..., patch logits] (feature matching reads the first ones)
        out = []
        for c in self.convs:
            x = leaky_relu(c(x), 0.2)
            out.append(x)
        out.append(self.out(x))
        return out


class MultiResSpecDisc(nn.Module):
    """Judges log-magnitude spectrograms at several resolutions; returns a list of patch-logit maps."""

    def __init__(self, ffts=(256, 512, 1024), ch=8):
        super().__init__()
        self.ffts = ffts
        self.nets = nn.ModuleList([_DiscNet(ch) for _ in ffts])
        for n in ffts:
            self.register_buffer(f"win{n}", torch.hann_window(n), persistent=False)

    def forward(self, wav):  # (B, N)
        return [f[-1] for f in self.features(wav)]

    def features(self, wav):  # (B, N) -> per resolution [conv activations..., patch logits]
        outs = []
        for n, net in zip(self.ffts, self.nets):
            s = torch.stft(wav, n, n // 4, window=getattr(self, f"win{n}"), return_complex=True)
            m = torch.log(s.abs().clamp_min(1e-5)).unsqueeze(1)  # (B, 1, F, T)
            outs.append(net.features(m.transpose(2, 3)))
        return outs


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
