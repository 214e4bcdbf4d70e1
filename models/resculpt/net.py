"""The resculpting generator (torch; training and export only): a causal U-Net over ERB bands with attention
across bands, FiLM-conditioned on the target profile and the input's running fingerprint.

Per 5 ms frame (``common.py``: 20 ms sqrt-Hann, 50 Hz bins at every rate):

```
band dB (32) ──► running fingerprint (state: exponential sums over active frames, tau 3 s) ──► run (34)
     │                                                                                            │
     ▼ per-band channels: [band dB, target-minus-running shape, target mask, band valid, running shape]
       (a relative target: target shape = running shape + the delta's offsets, so the difference is the offsets)
causal conv (2 frames x 3 bands) 5->16 @32 ─ ELU ─ FiLM ───────────────────────────────┐ skip
causal conv 16->24, band stride 2 @16 ─ ELU ─ FiLM ─────────────────────────────┐ skip │
causal conv 24->32, band stride 2 @8 ─ ELU ─ FiLM ────────────────────┐ skip    │      │
self-attention across the 8 bands (2 heads) + feed-forward (per frame) │         │      │
GRU over time on [8 x 32 tokens, low-bin dB (32) -> 32] (hidden 96) ─ + tokens    │      │
decoder: causal conv @8 ◄──────────────────────────────────────────────┘ ─ up x2 ◄┘ ─ up x2 ◄┘
heads: band gain dB (32) = 30 tanh(0.1 h), copy-up gain (32) = softplus(h - 8); from the GRU: deep-filter
       coefficients (32 low bins x 3 taps, complex) = one-hot identity tap + tanh(h)
FiLM (scale, shift per channel, per frame) from [conditioning vector (139, its band shape per frame for a
       relative target), running fingerprint (34)]
relative prior (optional, ``relative_prior``): a relative row's band gain = the delta's known gain (its offsets,
       tilt and loudness moves: :meth:`ResculptNet.relative_prior_db`) + the head's output as a learned residual
residual scale (optional, ``residual_scale``, with the prior): on relative rows the residual gain, the copy-up
       gain and the deep-filter deltas are multiplied by learned scales ``rel_scale`` (3,), zero-initialised
residual live (optional, ``residual_live``, with the absolute prior; no weights): on held rows (``hold``: an offline
       render, the running fingerprint primed with the whole input's and held) the absolute residual heads'
       outputs are zeroed before their activations, so those rows run the prior alone exactly; live rows add it
relative heads (optional, ``relative_heads``, with the prior, instead of the scale): relative rows' residual gain,
       copy-up and deep filter come from heads of their own (``head_rel``, ``df_rel``), zero-initialised, so a
       relative row starts at the prior alone and its residual still gets a gradient
absolute prior (optional, ``absolute_prior``): an absolute row's band gain = the level-free target-minus-running
       band shape (the match-EQ's curve, clipped to -24..+18 dB) under its own gate (the identity gate's warm-up,
       no threshold) + the residual of heads of its own (``head_abs``, ``df_abs``: gain, copy-up and deep filter,
       starting at the identity) under the identity gate
identity gate (optional): outputs' deviation from the identity x g; absolute target: g from the target-minus-
       running difference and how much has been heard; relative target: g from the delta's exact size
```

Output form (:func:`apply_outputs`), and why it does not smear phase on speech:

``Y[t, k] = G[t, k] * Z[t, k] + E[t, k] * X[t, k - S]`` with
  * ``G`` = 10^(g/20) interpolated from 32 band gains to bins (``BandMap.synthesis``): a real, positive
    gain that varies smoothly across frequency (triangular ERB interpolation) and keeps every bin's phase.
    It moves the envelope, tilt, brightness and (frame by frame) the dynamics. A smooth real gain is a
    short, zero-phase filter per frame: no dispersion, no pre-echo beyond the window, harmonics stay where
    they are. This carries most of the work.
  * ``Z`` = ``X`` except on the ``N_LOW`` lowest bins (0-1550 Hz), where a complex deep filter of 3 taps per
    bin across frames (``sum_j c[k, j] X[t - 2 + L + j, k]``, L = look-ahead) can rebuild what a real gain
    cannot: harmonic peaks smeared by a codec or a room, phase coherence of the first harmonics. It is
    confined to the low bins where voice harmonics are resolved at 50 Hz (F0 >= 80 Hz puts them >= 1.6 bins
    apart), it starts as the identity (one-hot tap) and is bounded (|delta| < 1 per tap), so it cannot
    spread energy across time beyond its 3 frames (10 ms).
  * ``E * X[k - S]``: a copy-up excitation (S = 4 kHz = 80 bins): the bins 4 kHz lower, scaled by a learned
    positive band gain (starting at -70 dB), regenerate the band a codec or a low-pass removed (as spectral
    band replication does); gains cannot create energy where there is none. A shift by S bins with
    S * hop / n_fft whole (80 * 80 / 320 = 20 at 16 kHz, 80 * 240 / 960 = 20 at 48 kHz) is a true frequency
    shift of the signal, so the copies overlap-add coherently: it adds content without smearing the
    phase of what is there.

Causality and look-ahead: every conv sees the current and one past frame, the GRU is causal, the running
fingerprint is causal. ``lookahead`` (0 or 1 frame, a constructor value stored in the checkpoint and the
bundle) delays the output: the outputs computed at frame t apply to frame t - L (and its deep filter reads
frames t - 2 .. t). ``Resculptor.forward`` (training) evaluates a whole sequence with the output aligned to
the input; ``Resculptor.step`` processes one frame from an explicit state and returns frame t - L; the two agree
(tests/test_resculpt_net.py). :meth:`ResculptNet.step_seq` (band features in, band outputs out: the
rate-independent part, what the ONNX export holds) takes T frames from a state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from resculpt.dsp.bands import BandMap
from resculpt.dsp.profile import DIMS
from resculpt.models.mask.band_io import BandIO
from resculpt.models.mask.net import n_params  # noqa: F401  (re-exported for the trainer)
from torch import nn
from torch.nn.functional import elu, pad, softplus

from . import common as C

KT = 2  # conv kernel length in time: the current and one past frame
DIM_SCALE = {d.name: d.scale for d in DIMS}
DZ_TILT, DZ_LUFS = C.DIM_NAMES.index("tilt_db_oct"), C.DIM_NAMES.index("lufs_integrated")


class CausalConv(nn.Module):
    """Conv2d over (time, band), kernel (2, kf), band stride sf, causal in time through a 1-frame cache."""

    def __init__(self, cin, cout, kf=3, sf=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, (KT, kf), stride=(1, sf), padding=(0, kf // 2))
        self.cin = cin

    def seq(self, x, cache):  # x (B, C, T, F), cache (B, C, 1, F) -> y (B, C', T, F'), new cache
        full = torch.cat([cache, x], dim=2)
        return self.conv(full), full[:, :, -(KT - 1) :]


FILM_IN_V1 = C.COND_DIM_V1 + C.RUN_DIM  # FiLM input width of checkpoints with the 124-float conditioning


def widen_film_v1(w: torch.Tensor) -> torch.Tensor:
    """A FiLM weight (or its optimiser moment) of the 124-float conditioning layout, (2C, 158), as one of the
    current layout, (2C, 173): zero columns inserted for the relative-target slots (``common.REL_I``, ``DZ0``),
    so the loaded net computes what it computed before for every absolute target. Other shapes pass unchanged."""
    if w.dim() != 2 or w.shape[1] != FILM_IN_V1:
        return w
    z = w.new_zeros(w.shape[0], C.COND_DIM - C.COND_DIM_V1)
    return torch.cat([w[:, : C.COND_DIM_V1], z, w[:, C.COND_DIM_V1 :]], 1)


def _edge_fill(v, m):
    """v (B, T, F) with the bands outside m (B, T, F) 0/1 given the value of the nearest band inside it below the
    first and above the last (flat edges, as the match-EQ's curve: a 0 dB band beside the edge would pull the
    edge band's synthesised gain toward 0 dB); zero where m is empty."""
    F = v.shape[-1]
    idx = torch.arange(F, device=v.device).expand_as(v)
    first = torch.where(m > 0, idx, torch.full_like(idx, F)).amin(-1, keepdim=True)
    last = torch.where(m > 0, idx, torch.full_like(idx, -1)).amax(-1, keepdim=True)
    j = torch.minimum(torch.maximum(idx, first), last).clamp(0, F - 1)
    return torch.gather(v, -1, j) * (last >= 0).to(v.dtype)


def _pick(kind, rel, a, b):
    """``torch.where(rel, a(), b())`` for a batch of both target kinds; with ``kind`` fixed (``"relative"``,
    ``"absolute"``) only that branch, a() or b(), is computed. The branches run inside this call, so
    ``x = _pick(kind, rel, lambda: x, ...)`` reads the ``x`` from before the assignment."""
    if kind == "relative":
        return a()
    if kind == "absolute":
        return b()
    return torch.where(rel, a(), b())


def _level_free(d, m):
    """d minus its mean over the entries where m (both (..., F)), masked by m."""
    return (d - d.sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)) * m


class ResculptNet(nn.Module):
    """Band-domain core: (band dB, low-bin dB, cond) -> (band gain dB, copy-up gain, deep-filter delta)."""

    def __init__(self, ch=(16, 24, 32), hidden: int = 96, heads: int = 2, lookahead: int = 0,
                 n_low: int = C.N_LOW, df_order: int = C.DF_ORDER, frame_rate_hz: float = 1000.0 / C.HOP_MS,
                 gate=None, relative_prior: bool = False, residual_scale: bool = False,
                 absolute_prior: bool = False, relative_heads: bool = False, residual_live: bool = False):
        super().__init__()
        self.relative_prior = bool(relative_prior)
        self.absolute_prior = bool(absolute_prior)
        self.residual_scale = bool(residual_scale)
        self.relative_heads = bool(relative_heads)
        self.residual_live = bool(residual_live)
        if self.residual_live and not self.absolute_prior:
            raise ValueError("residual_live switches the absolute rows' residual off on held rows: it needs absolute_prior")
        if (self.residual_scale or self.relative_heads) and not self.relative_prior:
            # without the prior the heads' output is a relative row's whole move, not a residual on a known one
            raise ValueError("residual_scale and relative_heads shape the residual on the relative prior: "
                             "they need relative_prior")
        if self.residual_scale and self.relative_heads:
            raise ValueError("residual_scale and relative_heads are two forms of the relative residual: pick one")
        if gate is not None:
            gate = tuple(float(v) for v in gate)
            if len(gate) != 4 or min(gate) < 0 or gate[1] <= 0 or gate[3] <= 0:
                raise ValueError("gate must be (threshold_db, width_db, warm_db, warm_frames) with width, frames > 0")
        self.gate = gate
        if lookahead not in (0, 1):
            raise ValueError("lookahead must be 0 or 1 frame")
        c1, c2, c3 = ch
        self.ch, self.hidden, self.heads, self.lookahead = tuple(ch), hidden, heads, lookahead
        self.n_low, self.df_order = n_low, df_order
        self.n_bot = C.N_BANDS // 4
        self.alpha = math.exp(-1.0 / (C.RUN_TAU_S * frame_rate_hz))
        fin = C.COND_DIM + C.RUN_DIM
        self.e1, self.e2, self.e3 = CausalConv(5, c1), CausalConv(c1, c2, sf=2), CausalConv(c2, c3, sf=2)
        self.films = nn.ModuleList([nn.Linear(fin, 2 * c) for c in (c1, c2, c3)])
        for f in self.films:  # FiLM starts as the identity
            nn.init.zeros_(f.weight)
            nn.init.zeros_(f.bias)
        self.pos = nn.Parameter(torch.randn(self.n_bot, c3) * 0.1)
        self.ln1, self.ln2 = nn.LayerNorm(c3), nn.LayerNorm(c3)
        self.qkv, self.proj = nn.Linear(c3, 3 * c3), nn.Linear(c3, c3)
        self.ff1, self.ff2 = nn.Linear(c3, 2 * c3), nn.Linear(2 * c3, c3)
        self.low = nn.Linear(n_low, 32)
        self.gru = nn.GRU(self.n_bot * c3 + 32, hidden, batch_first=True)
        self.gru_out = nn.Linear(hidden, self.n_bot * c3)
        self.d3, self.d2, self.d1 = CausalConv(2 * c3, c2), CausalConv(2 * c2, c1), CausalConv(2 * c1, c1)
        # outputs start at the identity: 0 dB, copy-up at -70 dB, one-hot taps
        self.head, self.df = self._identity_heads(c1, hidden)
        if self.residual_scale:
            # relative rows: (residual band gain, copy-up gain, deep-filter deltas) x rel_scale; zero, so a relative
            # row starts at the prior alone and a checkpoint without the scale loads with these zeros
            self.rel_scale = nn.Parameter(torch.zeros(3))
        if self.absolute_prior:
            # absolute rows: band gain = the known shape difference + these heads' residual, copy-up and deep
            # filter, which start at the identity (the prior alone; zero weights still get a gradient through their
            # non-zero inputs). Not the shared heads: trained to make the whole move themselves, their copy-up and
            # deep filter on top of the prior moved a music clip further from a reference target than the prior
            # alone.
            self.head_abs, self.df_abs = self._identity_heads(c1, hidden)
        if self.relative_heads:
            # relative rows: the residual on the prior from heads of their own, at the identity (the prior alone).
            # A zero scale on the shared heads (residual_scale) gets a gradient only along the shared heads'
            # relative-row output, which did not point where the loss wanted, so the scales random-walked near
            # zero; zero weights get a gradient through their non-zero inputs.
            self.head_rel, self.df_rel = self._identity_heads(c1, hidden)

    def _identity_heads(self, c1: int, hidden: int) -> tuple[nn.Conv2d, nn.Linear]:
        """(band head: c1 channels -> gain, copy-up; deep-filter head: GRU state -> N_LOW x order complex taps),
        zero weights and biases: 0 dB, copy-up at softplus(-8) (-70 dB), identity taps."""
        heads = (nn.Conv2d(c1, 2, 1), nn.Linear(hidden, self.n_low * self.df_order * 2))
        for m in heads:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        return heads

    @torch.no_grad()
    def randomise_heads(self, std: float = 0.1) -> ResculptNet:
        """Draw the output heads and the FiLM layers from N(0, std), in place (returns self). A freshly initialised
        net returns its input, which the export refuses; an untrained net that acts on every output path is what
        tests and speed references need."""
        for m in (self.head, self.df, *self.films):
            m.weight.normal_(0, std)
            m.bias.normal_(0, std)
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; a checkpoint of the 124-float conditioning layout loads with zero
        weights on the relative-target slots (:func:`widen_film_v1`), and one without ``rel_scale`` into a net with
        :attr:`residual_scale` loads with the scales at zero (relative rows: the prior alone), and one without
        ``head_abs`` / ``df_abs`` (``head_rel`` / ``df_rel``) into a net with :attr:`absolute_prior`
        (:attr:`relative_heads`) loads with them at the identity (those rows: the prior alone). A checkpoint with
        ``rel_scale`` loads into a net with :attr:`relative_heads` without it (the heads replace the scale)."""
        sd = {k: widen_film_v1(v) if k.startswith("films.") and k.endswith(".weight") else v
              for k, v in state_dict.items()}
        if self.residual_scale and "rel_scale" not in sd:
            sd["rel_scale"] = torch.zeros_like(self.rel_scale)
        if self.relative_heads:
            sd.pop("rel_scale", None)
        for on, heads in ((self.absolute_prior, ("head_abs", "df_abs")), (self.relative_heads, ("head_rel", "df_rel"))):
            if not on:
                continue
            for m in heads:
                for k in ("weight", "bias"):
                    if f"{m}.{k}" not in sd:
                        sd[f"{m}.{k}"] = torch.zeros_like(getattr(getattr(self, m), k))
        return super().load_state_dict(sd, strict=strict, assign=assign)

    # -- state ------------------------------------------------------------------------------------------
    def state_shapes(self, b: int = 1) -> dict:
        c1, c2, c3 = self.ch
        F = C.N_BANDS
        return {"cache1": (b, 5, 1, F), "cache2": (b, c1, 1, F), "cache3": (b, c2, 1, F // 2),
                "cache4": (b, 2 * c3, 1, F // 4), "cache5": (b, 2 * c2, 1, F // 2), "cache6": (b, 2 * c1, 1, F),
                "hidden": (1, b, self.hidden), "run_num": (b, F), "run_den": (b, 1)}

    def init_state(self, b: int = 1) -> list:
        return [torch.zeros(s) for s in self.state_shapes(b).values()]

    # -- pieces -----------------------------------------------------------------------------------------
    @staticmethod
    def _power_and_activity(feat, valid):
        """Band power (B, T, 32) of band dB ``feat`` and each frame's activity (B, T) 0/1: its mean power over the
        bands the rate defines (``valid`` (B, 32)) above ``ACT_DB``, the frames the running fingerprint counts."""
        p = torch.pow(10.0, feat / 10.0)
        nv = valid.sum(-1, keepdim=True).clamp_min(1.0)
        lvl = 10.0 * torch.log10((p * valid[:, None]).sum(-1) / nv + C.EPS)
        return p, (lvl > C.ACT_DB).to(feat.dtype)

    def prime_state(self, feat, valid):
        """(num (B, 32), den (B, 1)): the running sums a long steady stream of these T frames (B, T, 32) band dB
        leaves, the mean band power over their active frames with the steady-state weight 1 / (1 - alpha): what
        ``ResculptStage.prime`` sets from a whole input's envelope (offline renders), for training rows in that
        condition. No active frame: zeros (nothing heard)."""
        p, act = self._power_and_activity(feat, valid)
        act = act[..., None]  # (B, T, 1)
        n = act.sum(1)  # (B, 1)
        w = 1.0 / (1.0 - self.alpha)
        mean = (act * p).sum(1) / n.clamp_min(1.0)
        has = (n > 0).to(feat.dtype)
        return mean * w * has, torch.full_like(n, w) * has

    def running(self, feat, valid, num, den, hold=None):
        """Running fingerprint over T frames from state (num (B, 32), den (B, 1)): exponentially weighted
        (tau ``RUN_TAU_S``) mean band power over active frames. Returns run (B, T, 34) = [shape / 3 dB over
        the valid compared bands, (level - FEAT_MEAN_DB) / FEAT_STD_DB, has-information], new num, den, and
        the weighted count of active frames behind each frame's estimate (B, T, 1). ``hold`` (B,) bool: on those
        rows the state is held (``ResculptStage.prime(hold=True)`` puts it back after every frame), so each
        frame's estimate is the state decayed once plus that frame, and the state returned is the one given."""
        B, T, F = feat.shape
        p, act = self._power_and_activity(feat, valid)
        t = torch.arange(T, dtype=feat.dtype)
        lag = t[:, None] - t[None, :]
        W = torch.where(lag >= 0, torch.exp(math.log(self.alpha) * lag.clamp_min(0.0)), torch.zeros_like(lag))
        decay = torch.exp(math.log(self.alpha) * (t + 1.0))  # (T,)
        nums = decay[None, :, None] * num[:, None] + W @ (act[..., None] * p)  # (B, T, 32)
        dens = decay[None, :, None] * den[:, None] + W @ act[..., None]        # (B, T, 1)
        if hold is not None:
            h = hold[:, None, None]
            nums = torch.where(h, self.alpha * num[:, None] + act[..., None] * p, nums)
            dens = torch.where(h, self.alpha * den[:, None] + act[..., None], dens)
        has = (dens > 1e-3).float()
        env = 10.0 * torch.log10(nums / dens.clamp_min(1e-6) + C.EPS)
        m = valid[:, None] * torch.tensor(C.compare_mask(), dtype=feat.dtype) * has
        mean = (env * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
        shape = (env - mean) * m / C.BAND_SCALE_DB
        level = ((mean - C.FEAT_MEAN_DB) / C.FEAT_STD_DB) * has
        num_out, den_out = nums[:, -1], dens[:, -1]
        if hold is not None:
            num_out = torch.where(hold[:, None], num, num_out)
            den_out = torch.where(hold[:, None], den, den_out)
        return torch.cat([shape, level, has], -1), num_out, den_out, dens

    def _inputs(self, feat, cond, run, kind=None):
        """Per-band input channels (B, 5, T, F), the absolute rows' gate reading dev (B, T), the target band
        shape the FiLM reads (B, T, F) and the relative rows' move size (B,) in dB. ``kind`` as in
        :meth:`step_seq` (``"relative"``: dev is None; ``"absolute"``: size is None)."""
        B, T, F = feat.shape
        tgt = cond[:, C.S0 : C.M0][:, None]
        tok = cond[:, C.M0 : C.V0][:, None]
        valid = cond[:, C.V0 : C.REL_I][:, None]
        rel = (cond[:, C.REL_I] > 0.5)[:, None, None]
        rshape = run[..., :F]
        d = dev = off = size = None
        if kind != "relative":
            m = tok * valid * run[..., F + 1 : F + 2]
            d = _level_free((tgt - rshape) * m, m)  # level-free on the bands both define
            # RMS (dB) of the level-free target-minus-running difference over the bands both define: what the
            # identity gate reads
            dev = C.BAND_SCALE_DB * torch.sqrt((d * d).sum(-1) / m.sum(-1).clamp_min(1.0) + 1e-12)
        # a relative row: the target is the running shape plus the offsets, so the difference is the offsets,
        # known from the first frame (also before the running fingerprint has heard anything)
        mv = tok * valid
        if kind != "absolute":
            off = _level_free(tgt * mv, mv)  # (B, 1, F)
            dz = cond[:, C.DZ0 :]
            size = C.BAND_SCALE_DB * torch.sqrt((off[:, 0] ** 2).sum(-1) / mv[:, 0].sum(-1).clamp_min(1.0)
                                                + (dz * dz).sum(-1) + 1e-12)
        d = _pick(kind, rel, lambda: off.expand(B, T, F), lambda: d)
        shape = _pick(kind, rel, lambda: (rshape + off) * mv, lambda: tgt.expand(B, T, F))
        x = torch.stack([(feat - C.FEAT_MEAN_DB) / C.FEAT_STD_DB * valid, d, mv.expand(B, T, F),
                         valid.expand(B, T, F), rshape * valid], dim=1)
        return x, dev, shape, size

    def identity_gate(self, dev, dens):
        """(B, T) factor in [0, 1] that scales every output's deviation from the identity on absolute-target
        rows (relative rows: :meth:`relative_gate`), or None without a gate: ``1 - exp(-(relu(dev - threshold) / width)^2)`` with ``threshold = threshold_db + warm_db *
        exp(-n / warm_frames)``, dev the band-shape difference (dB RMS) between target and running fingerprint and n (B, T, 1) the
        weighted count of active frames behind the running estimate. A difference inside the threshold (the
        target the input already has, up to the running estimate's error, which is larger while few frames have
        been heard) gives exactly the identity; a band-limited input under a wideband target (10-20 dB) opens it."""
        if self.gate is None:
            return None
        th_db, width_db, warm_db, warm_n = self.gate
        th = th_db + warm_db * torch.exp(-dens[..., 0] / warm_n)
        return 1.0 - torch.exp(-(torch.relu(dev - th) / width_db) ** 2)

    def prior_gate(self, dev, dens):
        """(B, T) factor in [0, 1] on an absolute row's prior (:attr:`absolute_prior`): ``1 - exp(-(relu(dev - warm_db *
        exp(-n / warm_frames)) / width)^2)`` with the identity gate's warm-up term (none without a gate) and width
        ``common.ABS_PRIOR_GATE_WIDTH_DB``. dev (B, T) and dens (B, T, 1) as in :meth:`identity_gate`."""
        th = 0.0 if self.gate is None else self.gate[2] * torch.exp(-dens[..., 0] / self.gate[3])
        return 1.0 - torch.exp(-(torch.relu(dev - th) / C.ABS_PRIOR_GATE_WIDTH_DB) ** 2)

    @staticmethod
    def relative_gate(size):
        """(B,) factor in [0, 1] for relative rows from the delta's size (B,) in dB: ``1 - exp(-(relu(size -
        threshold) / width)^2)`` with ``common.REL_GATE_DB``. size = 3 dB x sqrt(mean square of the level-free
        band offsets / 3 dB over the bands the target and the input define + sum of the squared scalar moves
        in z units): one z unit of a scalar dim weighs as 3 dB of band shape (the profile distance's
        ``BAND_SCALE_DB``). A zero delta gives exactly 0 (the identity), every move of the descriptor
        vocabulary opens it from the first frame; it does not depend on what the net has heard."""
        th, width = C.REL_GATE_DB
        return 1.0 - torch.exp(-(torch.relu(size - th) / width) ** 2)

    @staticmethod
    def relative_prior_db(cond, rshape):
        """(B, T, 32) dB: the band gain a relative row's delta asks for, known exactly (the net learns only the
        residual on top, :attr:`relative_prior`). cond (B, COND_DIM), rshape (B, T, 32) the running fingerprint's
        level-free shape / 3 dB. Three parts:
          * the delta's band offsets, level-free over the bands it and the input define (``_inputs``' off);
          * a slope (dB/octave around 1 kHz, on the bands the input defines) of the tilt move the offsets do not
            already make: 1.5 dB/oct x the tilt slot (z units) minus the least-squares slope of the offsets over
            the fingerprint's tilt bands (100 Hz..8 kHz; the in-graph twin of ``dsp.features.spectral.
            tilt_slope_db_oct`` at the running rate), so an offset that is itself a tilt is not counted twice (the
            tilt slot is the whole move: ``common.delta_z`` puts the offsets' slope plus the delta's tilt there);
          * a level: the loudness slot (z units of 1 LU) minus the loudness change the shape above makes on the
            running spectrum (band power = 10^(3 rshape / 10) x ``common.LOUDNESS_BAND_W``: K-weighting x width;
            flat before anything has been heard), so the integrated loudness moves by what the delta asks.
        Centroid, roll-off, crest and LRA moves are left to the learned residual."""
        valid = cond[:, C.V0 : C.REL_I]
        mv = cond[:, C.M0 : C.V0] * valid
        off = C.BAND_SCALE_DB * _level_free(cond[:, C.S0 : C.M0] * mv, mv)  # (B, F) dB
        x = torch.tensor(C.BAND_OCT_1K)
        ts = torch.tensor(C.TILT_BANDS, dtype=cond.dtype) * valid
        nt = ts.sum(-1, keepdim=True).clamp_min(1.0)
        xc = (x - (x * ts).sum(-1, keepdim=True) / nt) * ts
        oc = (off - (off * ts).sum(-1, keepdim=True) / nt) * ts
        made = (oc * xc).sum(-1, keepdim=True) / (xc * xc).sum(-1, keepdim=True).clamp_min(1e-6)
        dz = cond[:, C.DZ0 :]
        slope = DIM_SCALE["tilt_db_oct"] * dz[:, DZ_TILT : DZ_TILT + 1] - made  # (B, 1) dB/oct
        shape = (off + slope * x * valid)[:, None]  # (B, 1, F)
        w = torch.tensor(C.LOUDNESS_BAND_W) * valid[:, None] * torch.pow(10.0, 0.1 * C.BAND_SCALE_DB * rshape)
        moved = 10.0 * torch.log10((w * torch.pow(10.0, 0.1 * shape)).sum(-1, keepdim=True) / w.sum(-1, keepdim=True))
        level = DIM_SCALE["lufs_integrated"] * dz[:, None, DZ_LUFS : DZ_LUFS + 1] - moved  # (B, T, 1)
        return shape + level

    @staticmethod
    def _film(h, g):  # h (B, C, T, F), g (B, T, 2C)
        s, b = g.chunk(2, dim=-1)
        return h * (1.0 + s.permute(0, 2, 1)[..., None]) + b.permute(0, 2, 1)[..., None]

    def _attend(self, tok):  # (B, T, 8, c3): self-attention across bands, then a feed-forward, both residual
        B, T, N, D = tok.shape
        H = self.heads
        q, k, v = self.qkv(self.ln1(tok)).chunk(3, dim=-1)

        def heads(z):
            return z.reshape(B, T, N, H, D // H).transpose(2, 3)  # (B, T, H, N, d)

        q, k, v = heads(q), heads(k), heads(v)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H), dim=-1)
        o = (a @ v).transpose(2, 3).reshape(B, T, N, D)
        tok = tok + self.proj(o)
        return tok + self.ff2(elu(self.ff1(self.ln2(tok))))

    # -- T frames from a state (training: zero or primed state; the stage: 1 frame, or a block's frames) -------
    def step_seq(self, feat, low, cond, cache1, cache2, cache3, cache4, cache5, cache6, hidden, run_num, run_den,
                 hold=None, kind=None):
        """feat (B, T, 32) band dB, low (B, T, N_LOW) low-bin dB, cond (B, COND_DIM), state ->
        gain_db (B, T, 32), copy (B, T, 32), df (B, T, N_LOW, DF_ORDER, 2) (delta from the identity tap),
        new state (same shapes). ``hold`` (B,) bool: rows whose running fingerprint is held (:meth:`running`; an
        input of the exported T-frame graphs, left out of the one-frame ones, after which the stage puts the state
        back itself). ``kind`` None: rows of
        either target kind, each row's by its cond; ``"absolute"`` / ``"relative"``: every row is of that kind and
        only its branch is computed (the export writes one graph per kind; the stage runs the target's)."""
        B, T, F = feat.shape
        valid = cond[:, C.V0 : C.REL_I]
        run, run_num, run_den, dens = self.running(feat, valid, run_num, run_den, hold)
        x, dev, shape, size = self._inputs(feat, cond, run, kind)
        fc = torch.cat([cond[:, None, : C.S0].expand(B, T, C.S0), shape,
                        cond[:, None, C.M0 :].expand(B, T, C.COND_DIM - C.M0), run], -1)
        h1, cache1 = self.e1.seq(x, cache1)
        h1 = self._film(elu(h1), self.films[0](fc))
        h2, cache2 = self.e2.seq(h1, cache2)
        h2 = self._film(elu(h2), self.films[1](fc))
        h3, cache3 = self.e3.seq(h2, cache3)
        h3 = self._film(elu(h3), self.films[2](fc))
        tok = self._attend(h3.permute(0, 2, 3, 1) + self.pos)  # (B, T, 8, c3)
        lo = elu(self.low((low - C.FEAT_MEAN_DB) / C.FEAT_STD_DB))
        y, hidden = self.gru(torch.cat([tok.reshape(B, T, -1), lo], -1), hidden)
        tok = tok + self.gru_out(y).reshape(tok.shape)
        u, cache4 = self.d3.seq(torch.cat([tok.permute(0, 3, 1, 2), h3], 1), cache4)
        u = elu(u).repeat_interleave(2, dim=3)
        u, cache5 = self.d2.seq(torch.cat([u, h2], 1), cache5)
        u = elu(u).repeat_interleave(2, dim=3)
        u, cache6 = self.d1.seq(torch.cat([u, h1], 1), cache6)
        o = self.head(elu(u))  # (B, 2, T, 32)
        gain_db = C.GAIN_MAX_DB * torch.tanh(0.1 * o[:, 0])
        copy = softplus(o[:, 1] - 8.0)
        df = torch.tanh(self.df(y)).reshape(B, T, self.n_low, self.df_order, 2)
        rel = (cond[:, C.REL_I] > 0.5)[:, None]
        if kind != "relative" and self.absolute_prior:
            # an absolute row's gain = the known shape difference + the learned residual
            oa, dfa = self.head_abs(elu(u)), self.df_abs(y)
            if self.residual_live and hold is not None:
                # held rows (an offline render: the running fingerprint primed with the whole input's) run the
                # prior alone, as if the residual heads were at the identity; live rows add the residual
                live = (~hold).to(oa.dtype)
                oa, dfa = oa * live[:, None, None, None], dfa * live[:, None, None]
            m = x[:, 2] * run[..., F + 1 : F + 2]  # the bands the difference is defined on (target, rate, heard)
            known = _edge_fill(C.BAND_SCALE_DB * x[:, 1], m).clamp(-C.ABS_PRIOR_CUT_DB, C.ABS_PRIOR_BOOST_DB)
            gp = self.prior_gate(dev, dens)[..., None]
            res_abs = C.GAIN_MAX_DB * torch.tanh(0.1 * oa[:, 0])
            # (_pick calls its branches before the name is rebound: a branch reading gain_db reads the old one)
            gain_db = _pick(kind, rel[..., None], lambda: gain_db, lambda: res_abs)
            copy = _pick(kind, rel[..., None], lambda: copy, lambda: softplus(oa[:, 1] - 8.0))
            df = _pick(kind, rel[..., None, None, None], lambda: df,
                       lambda: torch.tanh(dfa).reshape(B, T, self.n_low, self.df_order, 2))
        if kind != "absolute" and self.relative_prior:
            # a relative row's gain = the delta's known gain + the learned residual
            prior = self.relative_prior_db(cond, run[..., :F])
            res = gain_db
            if self.relative_heads:  # the residual of the relative rows' own heads (zero: the prior alone)
                orl = self.head_rel(elu(u))
                res = C.GAIN_MAX_DB * torch.tanh(0.1 * orl[:, 0])
                copy = _pick(kind, rel[..., None], lambda: softplus(orl[:, 1] - 8.0), lambda: copy)
                df = _pick(kind, rel[..., None, None, None],
                           lambda: torch.tanh(self.df_rel(y)).reshape(B, T, self.n_low, self.df_order, 2),
                           lambda: df)
            elif self.residual_scale:  # the heads' deviations on relative rows, scaled (zero: the prior alone)
                s = self.rel_scale
                res = gain_db * s[0]
                copy = _pick(kind, rel[..., None], lambda: copy * s[1], lambda: copy)
                df = _pick(kind, rel[..., None, None, None], lambda: df * s[2], lambda: df)
            gain_db = _pick(kind, rel[..., None], lambda: (prior + res).clamp(-C.GAIN_MAX_DB, C.GAIN_MAX_DB),
                            lambda: gain_db)
        ig = (lambda: self.identity_gate(dev, dens)) if self.gate is not None else (lambda: torch.ones_like(dev))
        g = _pick(kind, rel, lambda: self.relative_gate(size)[:, None].expand(B, T), ig)
        gain_db, copy, df = gain_db * g[..., None], copy * g[..., None], df * g[..., None, None, None]
        if kind != "relative" and self.absolute_prior:  # the prior under its own gate, added after the residual's
            gain_db = _pick(kind, rel[..., None], lambda: gain_db,
                            lambda: (known * gp + gain_db).clamp(-C.GAIN_MAX_DB, C.GAIN_MAX_DB))
        return gain_db, copy, df, cache1, cache2, cache3, cache4, cache5, cache6, hidden, run_num, run_den

    def forward(self, feat, low, cond, prime=None, hold=None):
        """Whole sequence from zero state: (gain_db, copy, df) as in :meth:`step_seq`; ``prime`` (num (B, 32),
        den (B, 1)) starts the running fingerprint there (:meth:`prime_state`), ``hold`` (B,) bool holds it."""
        state = self.init_state(feat.shape[0])
        if prime is not None:
            state[-2], state[-1] = prime
        return self.step_seq(feat, low, cond, *state, hold=hold)[:3]


# -- the STFT side: features in, outputs applied --------------------------------------------------------
class FrameIO:
    """Frames, features and output application at one rate (the shared STFT's default config)."""

    def __init__(self, sample_rate: int):
        self.sr = int(sample_rate)
        self.n_fft, self.hop = C.frame_sizes(self.sr)
        self.io = BandIO(self.n_fft, self.hop, self.sr)  # stft / istft (sqrt-Hann pair, COLA)
        self.norm = 1.0 / float(torch.sum(self.io.win_a.double() ** 2))
        bm = BandMap(self.sr, self.n_fft, C.N_BANDS)
        self.ana = torch.tensor(bm.analysis)   # (32, nb)
        self.syn = torch.tensor(bm.synthesis)  # (nb, 32)
        self.nb = self.n_fft // 2 + 1
        self.shift = C.copy_shift_bins(self.sr)
        self.valid = torch.tensor(C.input_valid(self.sr), dtype=torch.float32)

    def stft(self, x):  # (B, n) -> (B, T, nb) complex
        return self.io.stft(x)

    def istft(self, spec, n):  # (B, T, nb) -> (B, n) aligned with the stft input
        return self.io.istft(spec, n)

    def features(self, spec):
        """spec (B, T, nb) complex -> band dB (B, T, 32), low-bin dB (B, T, N_LOW) (see common.py)."""
        p = (spec.real**2 + spec.imag**2) * self.norm
        return 10.0 * torch.log10(p @ self.ana.t() + C.EPS), 10.0 * torch.log10(p[..., : C.N_LOW] + C.EPS)

    def apply(self, X, taps, gain_db, copy, df, lookahead: int):
        """One or more output frames. X (B, T, nb) complex: the frames the outputs apply to; taps
        (B, T, DF_ORDER, N_LOW) complex: for each, the low bins of frames t - DF_ORDER + 1 + L .. t + L;
        gain_db, copy (B, T, 32); df (B, T, N_LOW, DF_ORDER, 2). Returns Y (B, T, nb) complex."""
        coef = torch.complex(df[..., 0], df[..., 1])  # (B, T, K, N)
        one = torch.zeros(coef.shape[-1])
        one[coef.shape[-1] - 1 - lookahead] = 1.0
        coef = coef + one
        z = (coef * taps.transpose(-1, -2)).sum(-1)  # (B, T, K)
        Z = torch.cat([z, X[..., C.N_LOW :]], -1)
        G = torch.pow(10.0, gain_db / 20.0) @ self.syn.t()
        E = copy @ self.syn.t()
        S = self.shift
        Xs = pad(X[..., : self.nb - S], (S, 0))
        return G * Z + E * Xs


def cond_tensor(cond, b: int) -> torch.Tensor:
    c = torch.as_tensor(np.asarray(cond, np.float32) if not torch.is_tensor(cond) else cond, dtype=torch.float32)
    return c.expand(b, C.COND_DIM) if c.dim() == 1 else c


class Resculptor(nn.Module):
    """The generator on spectra and waveforms at one rate: ``ResculptNet`` + ``FrameIO``."""

    def __init__(self, net: ResculptNet, sample_rate: int):
        super().__init__()
        self.net = net
        self.fio = FrameIO(sample_rate)

    def forward_spec(self, X, cond, outputs: bool = False, held=None):
        """X (B, T, nb) complex, cond (B, COND_DIM) -> Y (B, T, nb), output frame t aligned with input frame t
        (the last L frames see zero frames as their look-ahead); with ``outputs`` (Y, (gain_db, copy, df)), the
        net's outputs aligned the same way. ``held`` (B,) bool: those rows run as an offline render runs them, the
        running fingerprint primed with the whole clip's (``ResculptNet.prime_state``) and held there."""
        L, N = self.net.lookahead, self.net.df_order
        B, T, _ = X.shape
        Xp = pad(X, (0, 0, 0, L))
        feat, low = self.fio.features(Xp)
        if held is not None:
            g, e, d = self.net(feat, low, cond, self.net.prime_state(feat[:, :T], cond[:, C.V0 : C.REL_I]), held)
        else:
            g, e, d = self.net(feat, low, cond)
        g, e, d = g[:, L:], e[:, L:], d[:, L:]
        lowp = pad(Xp[..., : C.N_LOW], (0, 0, N - 1, 0))  # frame s of Xp at index s + N - 1
        taps = torch.stack([lowp[:, L + j : L + j + T] for j in range(N)], 2)  # (B, T, N, K)
        Y = self.fio.apply(X, taps, g, e, d, L)
        return (Y, (g, e, d)) if outputs else Y

    def forward(self, x, cond, outputs: bool = False, held=None):
        """x (B, n) waveform -> (B, n) output aligned with x; with ``outputs`` also the net's (gain_db, copy, df);
        ``held`` as in :meth:`forward_spec`."""
        if outputs:
            Y, o = self.forward_spec(self.fio.stft(x), cond, True, held)
            return self.fio.istft(Y, x.shape[-1]), o
        return self.fio.istft(self.forward_spec(self.fio.stft(x), cond, held=held), x.shape[-1])

    def init_state(self, b: int = 1) -> list:
        R = max(self.net.df_order, self.net.lookahead + 1)
        return [*self.net.init_state(b), torch.zeros(b, R, self.fio.nb, dtype=torch.complex64)]

    def step(self, frame, cond, state):
        """One streaming frame: frame (B, nb) complex (frame t), cond (B, COND_DIM), state (init_state) ->
        output frame t - L (B, nb) complex, new state."""
        *ns, ring = state
        L, N = self.net.lookahead, self.net.df_order
        ring = torch.cat([ring[:, 1:], frame[:, None]], 1)  # the newest R frames, oldest first
        feat, low = self.fio.features(frame[:, None])
        g, e, d, *ns = self.net.step_seq(feat, low, cond, *ns)
        R = ring.shape[1]
        taps = ring[:, R - N :, : C.N_LOW][:, None]  # (B, 1, N, K)
        y = self.fio.apply(ring[:, R - 1 - L][:, None], taps, g, e, d, L)
        return y[:, 0], [*ns, ring]
