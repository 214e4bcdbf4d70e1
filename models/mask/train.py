"""Train the adaptive spectral-mask generator (never imported at run time).

    resculpt train mask --out runs/mask --steps 6000 [--minutes 45] [--no-adv] [--no-perc] ...
    python -m resculpt.models.mask.train --out runs/mask --steps 6000
    resculpt train mask --smoke --out /tmp/x        # CI: 3 steps on synthetic signals, < 60 s

Everything happens at 16 kHz (the speech is 16 kHz) in the band domain the stage uses at every rate:
the mixture's STFT (sqrt-Hann, 5 ms hop, 10 or 20 ms window drawn per batch, frames exactly as the
streaming STFT forms them) -> band PSD features (``common.py``) -> MaskNet band gains for bands 0..23
(band 24+ repeats band 23 here; in the stage bands above 7.3 kHz use the noise-floor rule) ->
``BandMap.synthesis`` to bins -> masked spectrum -> overlap-add -> waveform.

Losses (weights in ``LOSS_W``; each can be switched off for the ablation):
  recon  multi-resolution STFT loss (spectral convergence + log-magnitude L1 at 3 FFT sizes)
         + 0.05 * negative SI-SDR (dB) on examples whose target is not silent;
  adv    LSGAN against ``MultiResSpecDisc`` (clean target vs masked output), from step ``adv_start``;
  perc   perceptual: L1 between the frame features (3-layer LSTM outputs) and 1 - cosine of the
         embeddings of resemblyzer's frozen, pretrained speaker encoder (GE2E, ``pretrained.pt`` from
         the resemblyzer wheel, loaded by path; resemblyzer itself is never imported), on
         -30 dBFS-normalised mel power spectra (40 mels, 25 ms / 10 ms) of output and target;
  sparse mean attenuation ``mean(1 - g)``: the mask should only act where it must;
  gain   band-gain target (as RNNoise trains its gains): squared error between sqrt(g) and sqrt(g*), with
         g* = clip(sqrt(P_target / P_mixture), 0, 1) the ideal gain of each learned band in each frame,
         from the same band analysis the model sees. A dense per-band, per-frame signal that a 2-core
         machine can fit far faster than the waveform losses alone (the model card, ``models/weights/mask/MODEL_CARD.md``).
  teach  distillation from DeepFilterNet3-LL (only with ``--teacher DIR``, a cache built by
         ``scripts/mask_teacher_cache.py``): ``--teacher-frac`` of each batch are crops of the cached
         training-split mixtures, and on those rows the dense gain target is the teacher's band gain
         clip(sqrt(P_teacher / P_mixture), 0, 1) instead of g* (same squared error of square roots). The
         teacher is causal with a 10 ms window, so its gains are ones a causal frame can reach; g* is not
         (it knows the clean speech), which is why the net hedges toward it. Every waveform loss still
         compares with the clean target on every row: the teacher is an extra target, never the only one.
         ``--off teach`` keeps the cached rows in the batch with g* as their gain target (its ablation).

Determinism: batch k is drawn from ``np.random.default_rng([seed, k])`` and torch is seeded, so a
resumed run sees the same batches as an uninterrupted one. Checkpoints: ``OUT/ckpt.pt`` (latest, every
``--ckpt-every`` steps and at the end) and ``OUT/ckpt_stepN.pt`` for each ``--keep-steps``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from resculpt.dsp.bands import BandMap
from resculpt.models.mask import common as C
from resculpt.models.mask import mixing as M
from resculpt.models.mask.net import MaskNet, MultiResSpecDisc, n_params

SR = 16000
LOSS_W = {"recon": 1.0, "adv": 0.1, "perc": 0.5, "sparse": 0.02, "gain": 10.0, "teach": 10.0}
SISDR_W = 0.05


# -- STFT / band plumbing (mirrors dsp/stft.py and the stage) ------------------------------------
class BandIO:
    def __init__(self, n_fft: int, hop: int, sr: int = SR):
        self.n_fft, self.hop = n_fft, hop
        w = C.sqrt_hann(n_fft)
        ola = np.zeros(hop)
        for k in range(0, n_fft, hop):
            ola += (w * w)[k : k + hop]
        self.win_a = torch.tensor(w, dtype=torch.float32)
        self.win_s = torch.tensor(w / ola[0], dtype=torch.float32)
        bm = BandMap(sr, n_fft, C.N_BANDS)
        self.ana = torch.tensor(bm.analysis)       # (32, nb)
        self.syn = torch.tensor(bm.synthesis)      # (nb, 32)
        self.scale = C.psd_scale(sr, w)
        self.n_long = C.fine_len(sr)
        self.win_l = torch.tensor(C.fine_window(sr), dtype=torch.float32)
        self.fine_m = torch.tensor(C.fine_matrix(sr), dtype=torch.float32)  # (128, n_long // 2 + 1)

    def fine(self, x):  # (B, N) -> (B, T, 128) dB: 32 ms look-back window ending where frame t ends
        xp = F.pad(x, (self.n_long - self.hop, 0))
        fr = xp.unfold(-1, self.n_long, self.hop) * self.win_l
        s = torch.fft.rfft(fr, dim=-1)
        return 10.0 * torch.log10((s.real**2 + s.imag**2) @ self.fine_m.t() + C.EPS)

    def analyse(self, x):  # (B, N) -> spec (B, T, nb), feat (B, T, 24) dB
        spec, band = self.bands(x)
        feat = 10.0 * torch.log10(band + C.EPS)
        return spec, feat

    def bands(self, x):  # (B, N) -> spec (B, T, nb), band PSD (B, T, 24) (linear, per Hz)
        xp = F.pad(x, (self.n_fft - self.hop, 0))
        frames = xp.unfold(-1, self.n_fft, self.hop) * self.win_a
        spec = torch.fft.rfft(frames, dim=-1)
        p = (spec.real**2 + spec.imag**2) * self.scale
        return spec, (p @ self.ana.t())[..., : C.N_LEARNED]

    def ideal_gains(self, x, t):
        """g* (B, T, 24): clip(sqrt(P_t / P_x), 0, 1) per learned band and frame. A band where the
        mixture is below -120 dB (PSD per Hz, i.e. digital silence) gets 1: nothing to remove."""
        _, px = self.bands(x)
        _, pt = self.bands(t)
        return torch.sqrt((pt + C.EPS) / (px + C.EPS)).clamp(0.0, 1.0)

    def synth(self, spec, gains24, n):  # -> (B, n) aligned with the input
        g32 = torch.cat([gains24, gains24[..., -1:].expand(*gains24.shape[:-1], C.N_BANDS - C.N_LEARNED)], -1)
        gb = g32 @ self.syn.t()
        fr = torch.fft.irfft(spec * gb, n=self.n_fft, dim=-1) * self.win_s  # (B, T, n_fft)
        b, t, _ = fr.shape
        L = (t - 1) * self.hop + self.n_fft
        y = F.fold(fr.transpose(1, 2), (1, L), (1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        s = self.n_fft - self.hop
        return y[:, s : s + n]


# -- losses --------------------------------------------------------------------------------------
_WINS = {}


def _stft_mag(x, n_fft, hop):
    if n_fft not in _WINS:
        _WINS[n_fft] = torch.hann_window(n_fft)
    return torch.stft(x, n_fft, hop, window=_WINS[n_fft], return_complex=True).abs().clamp_min(1e-5)


def mrstft(y, t, ffts=((512, 128), (256, 64), (1024, 256))):
    loss = 0.0
    for n, h in ffts:
        Y, T = _stft_mag(y, n, h), _stft_mag(t, n, h)
        sc = torch.linalg.norm(T - Y) / (torch.linalg.norm(T) + 1e-5)  # over the batch: silent targets are fine
        lm = (torch.log(Y) - torch.log(T)).abs().mean()
        loss = loss + sc + lm
    return loss / len(ffts)


def si_sdr(y, t, eps=1e-8):
    t0 = t - t.mean(-1, keepdim=True)
    y0 = y - y.mean(-1, keepdim=True)
    a = (y0 * t0).sum(-1, keepdim=True) / ((t0 * t0).sum(-1, keepdim=True) + eps)
    s = a * t0
    return 10 * torch.log10((s * s).sum(-1) / (((y0 - s) ** 2).sum(-1) + eps) + eps)


def _gain_err(g, target):
    """Per-row (B,) mean squared error of square roots of band gains (B, T, 24); +1e-4 keeps a finite slope at 0."""
    return ((g + 1e-4).sqrt() - (target + 1e-4).sqrt()).pow(2).mean(dim=(1, 2))


def _slaney_mel(sr=16000, n_fft=400, n_mels=40):
    def hz2mel(f):
        f = np.asarray(f, float)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000, 15.0 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27), lin)

    def mel2hz(m):
        m = np.asarray(m, float)
        return np.where(m >= 15, 1000 * np.exp((np.log(6.4) / 27) * (m - 15)), m * 200.0 / 3)

    fft_f = np.linspace(0, sr / 2, n_fft // 2 + 1)
    hz = mel2hz(np.linspace(hz2mel(0), hz2mel(sr / 2), n_mels + 2))
    fd = np.diff(hz)
    ramps = hz[:, None] - fft_f[None, :]
    w = np.zeros((n_mels, fft_f.size))
    for i in range(n_mels):
        lo = -ramps[i] / fd[i]
        up = ramps[i + 2] / fd[i + 1]
        w[i] = np.maximum(0, np.minimum(lo, up))
    w *= (2.0 / (hz[2 : n_mels + 2] - hz[:n_mels]))[:, None]
    return torch.tensor(w, dtype=torch.float32)


def find_resemblyzer_weights() -> Path | None:
    """pretrained.pt of the resemblyzer wheel in this venv or in .venv-bench (path lookup, no import)."""
    import importlib.util

    env = os.environ.get("RESCULPT_PERC_WEIGHTS")
    if env and Path(env).is_file():
        return Path(env)
    spec = importlib.util.find_spec("resemblyzer")
    cands = []
    if spec and spec.origin:
        cands.append(Path(spec.origin).parent / "pretrained.pt")
    repo = Path(__file__).resolve().parents[2]
    cands += list((repo / ".venv-bench").glob("lib/python*/site-packages/resemblyzer/pretrained.pt"))
    for c in cands:
        if c.is_file():
            return c
    return None


class PerceptualNet(torch.nn.Module):
    """resemblyzer's GE2E speaker encoder (frozen): LSTM(40, 256, 3) + Linear + ReLU + L2 norm."""

    def __init__(self, weights: Path):
        super().__init__()
        self.lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        sd = torch.load(weights, map_location="cpu")["model_state"]
        self.load_state_dict({k: v for k, v in sd.items() if k.startswith(("lstm", "linear"))})
        self.register_buffer("mel", _slaney_mel())
        self.register_buffer("win", torch.hann_window(400))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def features(self, x):
        s = torch.stft(x, 400, 160, window=self.win, return_complex=True, pad_mode="constant")
        mel = self.mel @ (s.real**2 + s.imag**2)  # (B, 40, T) mel power, as resemblyzer feeds it
        h, _ = self.lstm(mel.transpose(1, 2))
        e = F.relu(self.linear(h[:, -1]))
        return h, e / (e.norm(dim=-1, keepdim=True) + 1e-8)

    def loss(self, y, t, active):
        g = 10 ** (-30 / 20) / (t.pow(2).mean(-1, keepdim=True).sqrt() + 1e-5)  # target to -30 dBFS
        hy, ey = self.features(y * g)
        with torch.no_grad():
            ht, et = self.features(t * g)
        per = (hy - ht).abs().mean(dim=(1, 2)) + (1 - (ey * et).sum(-1))
        return (per * active).sum() / active.sum().clamp_min(1.0)


# -- data --------------------------------------------------------------------------------------
def synthetic_pools(seed=0, sr=SR) -> M.Pools:
    """Smoke-test pools (synthetic, labelled as such): harmonic 'voices', coloured noises, chords."""
    rng = np.random.default_rng(seed)
    t = np.arange(3 * sr) / sr
    sp = []
    for k in range(4):
        f0 = 100 + 40 * k + 20 * np.sin(2 * np.pi * 3 * t)
        ph = 2 * np.pi * np.cumsum(f0) / sr
        env = (np.sin(2 * np.pi * 2.5 * t + k) > 0).astype(float)
        sp.append((sum(np.sin(h * ph) / h for h in range(1, 20)) * env).astype(np.float32))
    no = [np.cumsum(rng.standard_normal(3 * sr)).astype(np.float32) * 0.01 + rng.standard_normal(3 * sr).astype(np.float32)
          for _ in range(3)]
    mu = [sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330, 440 * 4)).astype(np.float32)]
    rir = [(np.exp(-np.arange(4000) / 800) * rng.standard_normal(4000)).astype(np.float32)]
    rir = [r / np.sqrt(np.sum(r**2)) for r in rir]
    return M.Pools(sp, ["s%d" % i for i in range(4)], no, ["n"] * 3, mu, ["m"], rir, ["r"])


def feature_stats(pools, seed, n_batches=8, bsz=8, n=SR * 2, vary_noise=True):
    """Per-input mean/std of the band and fine features over a few training batches (normalisation)."""
    io = BandIO(320, 80)
    feats, fines = [], []
    for k in range(n_batches):
        x, _, _ = M.batch(np.random.default_rng([seed, 10_000_000 + k]), pools, bsz, n, vary_noise=vary_noise)
        xt = torch.tensor(x)
        _, f = io.analyse(xt)
        feats.append(f.reshape(-1, C.N_LEARNED))
        fines.append(io.fine(xt).reshape(-1, C.N_FINE))
    f, g = torch.cat(feats), torch.cat(fines)
    return {"feat_mean": f.mean(0).tolist(), "feat_std": f.std(0).clamp_min(1.0).tolist(),
            "fine_mean": g.mean(0).tolist(), "fine_std": g.std(0).clamp_min(1.0).tolist()}


def grow_fine(net: MaskNet, sd_old: dict) -> None:
    """Load a band-only state dict into ``net`` (which has the fine branch). Every shared tensor is copied;
    the FiLM rows and GRU input columns of the FINE_OUT new features start at zero, so the grown net
    computes exactly what the band-only net did (tested) and training decides what the fine features add.
    The fine branch's own convs keep their random init (their gradient flows once the GRU columns move)."""
    sd = net.state_dict()
    d = net.gru.input_size
    d0 = sd_old["gru.weight_ih_l0"].shape[1]
    with torch.no_grad():
        for k, v in sd_old.items():
            if k == "gru.weight_ih_l0":
                sd[k].zero_()
                sd[k][:, :d0] = v
            elif k in ("film.weight", "film.bias"):  # rows: [scale (d0) | shift (d0)] -> [scale (d) | shift (d)]
                sd[k].zero_()
                sd[k][:d0] = v[:d0]
                sd[k][d:d + d0] = v[d0:]
            elif k not in ("fine_mean", "fine_std"):
                sd[k].copy_(v)
    net.load_state_dict(sd)


class TeacherCache:
    """The DeepFilterNet3-LL cache (``scripts/mask_teacher_cache.py``): mixtures, clean targets and the
    teacher's output (n, N) at 16 kHz, aligned sample for sample."""

    def __init__(self, folder: Path):
        shards = sorted(Path(folder).glob("shard_*.npz"))
        if not shards:
            raise SystemExit(f"--teacher {folder}: no shard_*.npz (build it with scripts/mask_teacher_cache.py)")
        parts = [np.load(p) for p in shards]
        self.x, self.t, self.y = (np.concatenate([q[k] for q in parts]) for k in ("x", "target", "teacher"))
        self.meta = json.loads((Path(folder) / "meta.json").read_text())

    def batch(self, rng: np.random.Generator, bsz: int, n: int):
        """``bsz`` random crops of ``n`` samples: mixture, clean target, teacher output (bsz, n); cond (bsz, 2)
        = [denoise, strength 1] (what the cache was made with)."""
        i = rng.integers(len(self.x), size=bsz)
        s = rng.integers(self.x.shape[1] - n + 1, size=bsz)
        def crop(a):
            return np.stack([a[k, o : o + n] for k, o in zip(i, s)])

        return crop(self.x), crop(self.t), crop(self.y), np.tile(np.array([0.0, 1.0], np.float32), (bsz, 1))


# -- validation ------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(net, val, n_fft=160):
    """Mean SI-SDR (dB) of output and input, and multi-res STFT loss, denoise mode, full strength."""
    io = BandIO(n_fft, 80)
    net.eval()
    x = torch.tensor(np.stack([v["noisy"] for v in val]))
    t = torch.tensor(np.stack([v["clean"] for v in val]))
    cond = torch.tensor([[0.0, 1.0]]).expand(x.shape[0], 2)
    spec, feat = io.analyse(x)
    y = io.synth(spec, net(feat, io.fine(x) if net.n_fine else None, cond), x.shape[1])
    e = x.shape[1] - n_fft
    r = {"si_sdr_out": float(si_sdr(y[:, :e], t[:, :e]).mean()), "si_sdr_in": float(si_sdr(x[:, :e], t[:, :e]).mean()),
         "mrstft": float(mrstft(y[:, :e], t[:, :e]))}
    r["si_sdr_improvement"] = r["si_sdr_out"] - r["si_sdr_in"]
    net.train()
    return r


# -- main ------------------------------------------------------------------------------------
def _progress(step, total, t0, extra, start=0):
    frac = step / max(1, total)
    bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
    el = time.time() - t0
    done = (step - start) / max(1, total - start)
    eta = el / done - el if done > 0 else 0
    sys.stderr.write(f"\r[{bar}] {step}/{total} {el / 60:5.1f} min (eta {eta / 60:5.1f}) {extra}   ")
    sys.stderr.flush()


def train(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w = dict(LOSS_W)
    for term in args.off or []:
        w[term] = 0.0
    seg = int(args.segment_s * SR)
    vary = not args.plain_noise
    if args.smoke:
        pools = synthetic_pools(args.seed)
        val = [{"noisy": x, "clean": y} for x, y, _ in (M.make_example(np.random.default_rng(i), pools, SR, augment=False)
                                                         for i in range(2))]
    else:
        t_load = time.time()
        pools = M.load_pools("train")
        val = M.validation_set()
        print(f"data: {len(pools.speech)} train utterances ({len(set(pools.speech_ids))} speakers), "
              f"{len(pools.noise)} noises, {len(pools.music)} music, {len(pools.rir)} RIRs; "
              f"{len(val)} validation mixtures; loaded in {time.time() - t_load:.0f} s", flush=True)
    ckpt_path = out / "ckpt.pt"
    teacher, n_teach = None, 0
    if args.teacher:
        teacher = TeacherCache(Path(args.teacher))
        n_teach = max(1, round(args.teacher_frac * args.batch))
        print(f"teacher cache: {len(teacher.x)} mixtures of {teacher.x.shape[1] / SR:.1f} s "
              f"({teacher.meta.get('teacher')}); {n_teach} of {args.batch} rows per batch", flush=True)
    else:
        w["teach"] = 0.0
    perc = None
    if w["perc"] > 0:
        wp = find_resemblyzer_weights()
        if wp is None:
            if not args.smoke:
                raise SystemExit("perceptual term needs resemblyzer's pretrained.pt: pip install --no-deps resemblyzer "
                                 "(or set RESCULPT_PERC_WEIGHTS), or pass --off perc")
            print("smoke: resemblyzer weights not found, perceptual term off")
            w["perc"] = 0.0
        else:
            perc = PerceptualNet(wp)
    start = 0
    if ckpt_path.is_file() and not args.fresh:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net = MaskNet(**ck["net_kwargs"])
        net.load_state_dict(ck["net"])
        start = int(ck["step"])
        kw = ck["net_kwargs"]
        print(f"resuming from {ckpt_path} at step {start}", flush=True)
    elif args.init_from:
        ck0 = load_init(args.init_from)
        kw = dict(ck0["net_kwargs"])
        ck = None
        grow = args.fine and not kw.get("n_fine", 0)
        if grow:  # band-only checkpoint -> net with the fine branch (normalisation of the new input measured here)
            st = feature_stats(pools, args.seed, n_batches=2 if args.smoke else 8, vary_noise=vary)
            kw.update(n_fine=C.N_FINE, fine_mean=st["fine_mean"], fine_std=st["fine_std"])
        print(f"fine-tuning from {args.init_from} (its step {ck0['step']}; fresh optimiser and schedule"
              f"{'; fine branch added' if grow else ''})", flush=True)
    else:
        kw = feature_stats(pools, args.seed, n_batches=2 if args.smoke else 8, vary_noise=vary)
        kw["n_fine"] = C.N_FINE if args.fine else 0
        ck = None
    if ck is None:
        net = MaskNet(**kw)
        if args.init_from:
            if grow:
                grow_fine(net, ck0["net"])
            else:
                net.load_state_dict(ck0["net"])
    disc = MultiResSpecDisc()
    opt_g = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.8, 0.99), weight_decay=1e-4)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=args.lr * 0.5, betas=(0.8, 0.99))
    wall_before = 0.0
    if ck is not None:
        disc.load_state_dict(ck["disc"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        wall_before = float(ck.get("wall_s", 0.0))
    print(f"MaskNet {n_params(net)} params, discriminator {n_params(disc)}; loss weights {w}", flush=True)
    ios = {160: BandIO(160, 80), 320: BandIO(320, 80)}
    log = open(out / "log.jsonl", "a")
    t0 = time.time()
    total = args.steps
    deadline = t0 + args.minutes * 60 if args.minutes else None
    keep = set(args.keep_steps or [])
    step = start
    last = {}

    def save(path):
        torch.save({"net": net.state_dict(), "disc": disc.state_dict(), "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(), "step": step, "net_kwargs": kw, "loss_w": w, "args": vars(args),
                    "wall_s": wall_before + time.time() - t0}, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)

    stop_at = min(total, args.stop_at) if args.stop_at else total
    while step < stop_at:
        if deadline and time.time() > deadline:
            print(f"\nstopping at step {step}: --minutes budget reached", flush=True)
            break
        rng = np.random.default_rng([args.seed, step])
        x, t, c = M.batch(rng, pools, args.batch - n_teach, seg, vary_noise=vary)
        if teacher is not None:  # the cached rows come last: rows [nb:] have a teacher output
            xc, tc, yc, cc = teacher.batch(rng, n_teach, seg)
            x, t, c = np.concatenate([x, xc]), np.concatenate([t, tc]), np.concatenate([c, cc])
        nb = args.batch - n_teach
        n_fft = 160 if rng.random() < 0.5 else 320
        io = ios[n_fft]
        x, t, c = torch.tensor(x), torch.tensor(t), torch.tensor(c)
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total)))))
        for g in opt_g.param_groups:
            g["lr"] = lr
        spec, feat = io.analyse(x)
        gains = net(feat, io.fine(x) if net.n_fine else None, c)
        y = io.synth(spec, gains, seg)
        e = seg - n_fft
        t_full = t
        y, t = y[:, :e], t[:, :e]
        active = (t.pow(2).mean(-1) > 1e-9).float()
        parts = {}
        loss = 0.0
        if w["recon"] > 0:
            rec = mrstft(y, t)
            sd = -(si_sdr(y, t) * active).sum() / active.sum().clamp_min(1.0)
            parts["mrstft"], parts["neg_sisdr"] = rec.item(), sd.item()
            loss = loss + w["recon"] * (rec + SISDR_W * sd)
        use_adv = w["adv"] > 0 and step >= args.adv_start
        hb = slice(0, max(1, args.batch // 2))  # the discriminator and the perceptual net see half the batch (CPU)
        if use_adv:
            adv = sum(((d - 1) ** 2).mean() for d in disc(y[hb])) / len(disc.ffts)
            parts["adv"] = adv.item()
            loss = loss + w["adv"] * adv
        if perc is not None and w["perc"] > 0:
            pl = perc.loss(y[hb], t[hb], active[hb])
            parts["perc"] = pl.item()
            loss = loss + w["perc"] * pl
        if w["gain"] > 0 or w["teach"] > 0:
            gt = io.ideal_gains(x, t_full)
            ge = _gain_err(gains, gt)
            if w["teach"] > 0:  # cached rows: the teacher's gains replace g* as the dense target
                te = _gain_err(gains[nb:], io.ideal_gains(x[nb:], torch.tensor(yc)))
                parts["teach"] = te.mean().item()
                loss = loss + w["teach"] * te.sum() / args.batch
                ge = ge[:nb]
            if w["gain"] > 0:
                parts["gain"] = ge.mean().item() if ge.numel() else 0.0
                loss = loss + w["gain"] * ge.sum() / args.batch
        if w["sparse"] > 0:
            sp = (1.0 - gains).mean()
            parts["sparse"] = sp.item()
            loss = loss + w["sparse"] * sp
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt_g.step()
        if use_adv:
            dl = sum(((dr - 1) ** 2).mean() + df.pow(2).mean()
                     for dr, df in zip(disc(t[hb]), disc(y[hb].detach()))) / len(disc.ffts)
            opt_d.zero_grad(set_to_none=True)
            dl.backward()
            opt_d.step()
            parts["disc"] = dl.item()
        step += 1
        last = parts
        if step % 10 == 0 or step == total or args.smoke:
            log.write(json.dumps({"step": step, "lr": lr, "loss": loss.item(), **parts,
                                  "wall_s": wall_before + time.time() - t0}) + "\n")
            log.flush()
        if not args.quiet:
            _progress(step, total, t0, f"loss {loss.item():.3f}", start)
        if step in keep:
            save(out / f"ckpt_step{step}.pt")
        if step % args.ckpt_every == 0:
            save(ckpt_path)
        if args.val_every and step % args.val_every == 0:
            r = evaluate(net, val)
            log.write(json.dumps({"step": step, "val": r}) + "\n")
            log.flush()
            print(f"\nstep {step}: val SI-SDR {r['si_sdr_out']:.2f} dB (input {r['si_sdr_in']:.2f}, "
                  f"improvement {r['si_sdr_improvement']:+.2f}), mrstft {r['mrstft']:.3f}", flush=True)
    save(ckpt_path)
    r = evaluate(net, val)
    wall = wall_before + time.time() - t0
    summary = {"steps": step, "wall_s": wall, "val": r, "loss_w": w, "params": n_params(net), "last": last,
               "batch": args.batch, "segment_s": args.segment_s, "seed": args.seed, "threads": args.threads,
               "lr": args.lr, "schedule_steps": args.steps, "init_from": args.init_from, "n_fine": net.n_fine,
               "vary_noise": vary, "teacher": args.teacher, "teacher_frac": args.teacher_frac if args.teacher else 0.0}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\ndone: {step} steps, {wall / 60:.1f} min wall; val {r}", flush=True)
    log.close()
    return summary


def load_init(path) -> dict:
    """``--init-from``: a training checkpoint (ckpt.pt), or a model bundle folder (model.onnx + config.json),
    whose net is rebuilt from the ONNX initialisers and checked against its golden gains."""
    p = Path(path)
    if p.is_dir():
        from .export import checkpoint_from_bundle

        return checkpoint_from_bundle(p)
    return torch.load(p, map_location="cpu", weights_only=False)


def add_args(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    ap.add_argument("--out", default="runs/mask", help="checkpoint/log folder (resumes if OUT/ckpt.pt exists)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop at this step while keeping the --steps learning-rate schedule (ablations)")
    ap.add_argument("--minutes", type=float, default=0.0, help="stop early after this wall time (0: no limit)")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--segment-s", type=float, default=1.5)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adv-start", type=int, default=200)
    ap.add_argument("--off", action="append", choices=list(LOSS_W), help="switch a loss term off (ablation)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--keep-steps", type=int, nargs="*", help="also keep ckpt_stepN.pt at these steps")
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--init-from", help="start a new run (fresh optimiser, schedule from step 0) from this checkpoint's "
                    "generator weights: the fine-tuning phase of the recipe and its ablations; a bundle folder "
                    "(e.g. models/weights/mask) rebuilds the net from its ONNX initialisers")
    ap.add_argument("--fine", action="store_true",
                    help="add the fine-feature branch (32 ms look-back, 31.25 Hz grid; see net.py); with --init-from "
                         "a band-only checkpoint it is grown in at zero weight (the shipped recipe's phase 1b)")
    ap.add_argument("--teacher", help="DeepFilterNet3-LL teacher cache folder (scripts/mask_teacher_cache.py): "
                    "enables the teach term")
    ap.add_argument("--teacher-frac", type=float, default=0.5, help="share of each batch drawn from the teacher cache")
    ap.add_argument("--plain-noise", action="store_true", help="no noise variations (speed, EQ, coloured, babble)")
    ap.add_argument("--smoke", action="store_true", help="3 steps on synthetic signals (CI)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv=None) -> int:
    args = add_args(argparse.ArgumentParser(prog="resculpt train mask")).parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.segment_s, args.val_every, args.adv_start = 3, 2, 0.5, 0, 1
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
