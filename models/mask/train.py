"""Train the adaptive spectral-mask generator: the training loop and its command line (never imported at run time).

    resculpt train mask --out runs/mask --steps 6000 [--minutes 45] [--off adv] [--off perc] ...
    python -m resculpt.models.mask.train --out runs/mask --steps 6000
    resculpt train mask --smoke --out /tmp/x        # CI: 3 steps on synthetic signals, < 60 s

Each step: a batch of 16 kHz mixtures (``mixing.py``; with ``--pairs``, cached input/target rows such as
decoded low-bitrate speech and its original, ``scripts/codec_mask_pairs.py``; with ``--teacher``, rows from the
teacher cache; both ``teacher.py``), a 10 or 20 ms STFT window drawn per batch, band and fine features -> MaskNet band gains ->
masked resynthesis (``band_io.py``), the weighted loss terms (``losses.py``), one generator step and, with
the adversarial term on, one discriminator step.

Determinism: batch k is drawn from ``np.random.default_rng([seed, k])`` (the step is the data-order
position) and torch's RNG state travels in the checkpoint, so a resumed run sees the same batches as an
uninterrupted one. Checkpoints: ``OUT/ckpt.pt`` (latest, every ``--ckpt-every`` steps, on ``--minutes``,
SIGTERM or SIGINT, and at the end; written to a temporary file and renamed, so an interrupted save leaves
the previous one) and ``OUT/ckpt_stepN.pt`` for each ``--keep-steps``. A checkpoint holds the generator and
discriminator weights, both AdamW optimisers with their moments, the step, the wall time so far and torch's
RNG state, all float32 (a resumed run reaches the uninterrupted run's weights bit for bit; tested): 3.4 MB for
the shipped net, small enough to commit (``models/training/``, ``scripts/mask-continue.sh``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from resculpt.models.mask import common, mixing
from resculpt.models.mask.band_io import BandIO
from resculpt.models.mask.losses import (
    LOSS_W,
    SISDR_W,
    cspec,
    gain_err,
    mrstft,
    pause_residual,
    perceptual_or_off,
    si_sdr,
    stoi_torch,
)
from resculpt.models.mask.mixing import SR
from resculpt.models.mask.net import MaskNet, MultiResSpecDisc, n_params
from resculpt.models.mask.teacher import RowCache, open_teacher


def mixed_rows(rng, pools, n_mix: int, seg: int, vary: bool, pairs=None, n_pairs: int = 0):
    """A batch's rows without a teacher output: ``n_mix`` training mixtures, then ``n_pairs`` cached rows of
    ``pairs`` (a RowCache, or None): input, target (n_mix + n_pairs, seg) and cond (n_mix + n_pairs, 2)."""
    x, t, c = (mixing.batch(rng, pools, n_mix, seg, vary_noise=vary) if n_mix > 0 else
               (np.zeros((0, seg), np.float32), np.zeros((0, seg), np.float32), np.zeros((0, 2), np.float32)))
    if pairs is not None and n_pairs > 0:
        xp, tp, cp = pairs.batch(rng, n_pairs, seg)
        x, t, c = np.concatenate([x, xp]), np.concatenate([t, tp]), np.concatenate([c, cp])
    return x, t, c


def feature_stats(pools, seed, n_batches=8, bsz=8, n=SR * 2, vary_noise=True):
    """Per-input mean/std of the band and fine features over a few training batches (normalisation)."""
    io = BandIO(320, 80)
    feats, fines = [], []
    for k in range(n_batches):
        x, _, _ = mixing.batch(np.random.default_rng([seed, 10_000_000 + k]), pools, bsz, n, vary_noise=vary_noise)
        xt = torch.tensor(x)
        _, f = io.analyse(xt)
        feats.append(f.reshape(-1, common.N_LEARNED))
        fines.append(io.fine(xt).reshape(-1, common.N_FINE))
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


def widen_gru(net: MaskNet, sd_old: dict) -> None:
    """Load a state dict with a narrower GRU into ``net`` (same everything else, ``hidden`` H' > H): the old
    units keep their weights and read nothing from the new ones (the new columns of the recurrent matrix that
    feed the old units' gates are zero), and the heads (band gains, deep-filter taps, speech presence) read
    nothing from the new units (zero columns), so the widened net computes exactly what the old one did
    (tested). The new units' own rows keep the random init, so they carry a signal from the first step and the
    heads' new columns get a gradient."""
    sd = net.state_dict()
    h0 = sd_old["gru.weight_hh_l0"].shape[1]
    h1 = net.hidden
    with torch.no_grad():
        for k, v in sd_old.items():
            if k.startswith("gru."):  # rows: gates (r, z, n) of h units each
                new = sd[k].view(3, h1, *sd[k].shape[1:])
                old = v.view(3, h0, *v.shape[1:])
                if k.startswith("gru.weight_hh"):
                    new[:, :h0, h0:] = 0.0
                    new[:, :h0, :h0] = old
                else:
                    new[:, :h0] = old
            elif k.endswith("head.weight"):  # every head reads the GRU's output: gains, taps, presence
                sd[k].zero_()
                sd[k][:, :h0] = v
            else:
                sd[k].copy_(v)
    net.load_state_dict(sd)


def masked(net, feat, fine, cond, phase=None):
    """The net's outputs aligned with the input frames: gains (B, T, 24) and the deep-filter taps (B, T, N * K * 2),
    or None for a net without them. ``phase``: the phase-advance features, for a net with ``phase_bins``."""
    out = net(feat, fine, cond, phase)
    gains, df = out if net.df_bins else (out, None)
    return net.align(gains), (net.align(df) if df is not None else None)


def phase_of(net, spec):
    """The phase-advance input a net reads (``BandIO.phase`` of the 10 ms spectrum), or None for a net without it."""
    return BandIO.phase(spec, net.phase_bins, net.phase_steady) if net.phase_bins else None


def add_phase_input(net: MaskNet, sd_old: dict) -> None:
    """Load a state dict without the phase-advance branch into ``net`` (which has it, same everything else): the
    GRU's input columns for the new features and the FiLM rows that scale and shift them start at zero, so the
    grown net computes what the old one did (exactly in float64: tested); the branch's own layer keeps its random init, so its
    output carries a signal and those zero columns get a gradient from the first step."""
    sd = net.state_dict()
    d_old = int(sd_old["gru.weight_ih_l0"].shape[1])
    d_new = int(sd["gru.weight_ih_l0"].shape[1])
    for k, v in sd_old.items():
        if k not in sd:
            raise ValueError(f"add_phase_input: {k} is not in the grown net")
        if k == "gru.weight_ih_l0":
            sd[k].zero_()
            sd[k][:, :d_old] = v
        elif k in ("film.weight", "film.bias"):  # rows [scale (d) | shift (d)]
            sd[k].zero_()
            sd[k][:d_old] = v[:d_old]
            sd[k][d_new : d_new + d_old] = v[d_old:]
        elif sd[k].shape == v.shape:
            sd[k].copy_(v)
        else:
            raise ValueError(f"add_phase_input: {k} has shape {tuple(v.shape)}, the grown net {tuple(sd[k].shape)}")
    net.load_state_dict(sd)


def load_with_new_head(net: MaskNet, sd_old: dict, prefix: str) -> None:
    """Load a state dict that lacks one head (``prefix``: ``df_head.`` for the deep-filter taps, ``presence_head.``
    for the speech-presence output) into ``net``, which has it: every shared tensor is copied and the new head keeps
    its init (taps zero: the old net's output exactly; presence at sigmoid(PRESENCE_BIAS) = 0.993 of it)."""
    missing, unexpected = net.load_state_dict(sd_old, strict=False)
    if unexpected or any(not k.startswith(prefix) for k in missing):
        raise ValueError(f"state dict does not match apart from {prefix[:-1]} (missing {missing}, "
                         f"unexpected {unexpected})")


PRESENCE_BELOW_DB = 40.0  # a frame whose clean power is this far under the row's loudest frame is a pause


def presence_target(io: BandIO, t):
    """(B, T, 1) 1 where the target t (B, N) has speech in the frame the net's outputs belong to: the frame's power
    in the learned bands within ``PRESENCE_BELOW_DB`` of the row's loudest frame (a silent row: 0 everywhere)."""
    _, band = io.bands(t)
    db = 10.0 * torch.log10(band.sum(-1) + common.EPS)  # (B, T)
    top = db.amax(dim=1, keepdim=True)
    on = (db > top - PRESENCE_BELOW_DB) & (top > 10.0 * np.log10(common.EPS) + 1.0)
    return on.float().unsqueeze(-1)


# -- validation ------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(net, val, n_fft=160):  # 160: the 10 ms window, the deep filter's
    """Mean SI-SDR (dB) of output and input, multi-res STFT loss, the differentiable STOI of output and input
    (``stoi_torch``, the training term's measure, within about 0.02 of pystoi) and the pause term's score of the
    output (``pause_residual``: 1 = the pauses' noise left whole, 0 = cut by 40 dB or more), denoise mode, full
    strength."""
    io = BandIO(n_fft, 80)
    net.eval()
    x = torch.tensor(np.stack([v["noisy"] for v in val]))
    t = torch.tensor(np.stack([v["clean"] for v in val]))
    cond = torch.tensor([[0.0, 1.0]]).expand(x.shape[0], 2)
    spec, feat = io.analyse(x)
    gains, df = masked(net, feat, io.fine(x) if net.n_fine else None, cond, phase_of(net, spec))
    y = io.synth(spec, gains, x.shape[1], df, net.df_order, net.lookahead)
    e = x.shape[1] - n_fft
    r = {"si_sdr_out": float(si_sdr(y[:, :e], t[:, :e]).mean()), "si_sdr_in": float(si_sdr(x[:, :e], t[:, :e]).mean()),
         "mrstft": float(mrstft(y[:, :e], t[:, :e]))}
    r["si_sdr_improvement"] = r["si_sdr_out"] - r["si_sdr_in"]
    for key, z in (("stoi_torch_out", y), ("stoi_torch_in", x)):
        s, ok = stoi_torch(z[:, :e], t[:, :e], SR)
        r[key] = float((s * ok).sum() / ok.sum().clamp_min(1.0))
    pr, ok = pause_residual(y[:, :e], x[:, :e], t[:, :e])
    r["pause_out"] = float((pr * ok).sum() / ok.sum().clamp_min(1.0))
    if net.presence:  # how often the presence head is on the right side of 0.5
        pt = presence_target(io, t)
        r["presence_acc"] = float(((net.align(net.last_presence) > 0.5).float() == pt).float().mean())
    net.train()
    return r


# -- main ------------------------------------------------------------------------------------
def progress(step, total, t0, extra, start=0):
    """One-line progress bar on stderr: done/total, elapsed and estimated remaining minutes, ``extra``."""
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
    w = loss_weights(LOSS_W, args)
    seg = int(args.segment_s * SR)
    vary = not args.plain_noise
    if args.smoke:
        pools = mixing.synthetic_pools(args.seed)
        val = [{"noisy": x, "clean": y} for x, y, _ in (mixing.make_example(np.random.default_rng(i), pools, SR, augment=False)
                                                         for i in range(2))]
    else:
        t_load = time.time()
        pools = mixing.load_pools("train")
        val = mixing.validation_set()
        print(f"data: {len(pools.speech)} train utterances ({len(set(pools.speech_ids))} speakers), "
              f"{len(pools.noise)} noises, {len(pools.music)} music, {len(pools.rir)} RIRs; "
              f"{len(val)} validation mixtures; loaded in {time.time() - t_load:.0f} s", flush=True)
    ckpt_path = out / "ckpt.pt"
    teacher, n_teach = None, 0
    if args.teacher:
        teacher = open_teacher(Path(args.teacher), pools)
        n_teach = max(1, round(args.teacher_frac * args.batch))
        print(f"teacher cache: {teacher.n_rows} mixtures of {teacher.seconds:.1f} s "
              f"({teacher.meta.get('teacher')}); {n_teach} of {args.batch} rows per batch", flush=True)
    else:
        w["teach"] = 0.0
    pairs, n_pairs, val_pairs = None, 0, []
    if args.pairs:
        pairs = RowCache(Path(args.pairs))
        n_pairs = min(args.batch - n_teach, max(1, round(args.pairs_frac * args.batch)))
        if args.pairs_val:
            vp = RowCache(Path(args.pairs_val), "--pairs-val")
            val_pairs = [{"noisy": a, "clean": b} for a, b in zip(vp.x, vp.t)]
        print(f"pairs: {len(pairs.x)} rows of {pairs.x.shape[1] / SR:.1f} s ({pairs.meta.get('input')}); "
              f"{n_pairs} of {args.batch} rows per batch", flush=True)
    perc = perceptual_or_off(w, args.smoke)
    start = 0
    rng_state = None
    if ckpt_path.is_file() and not args.fresh:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net = MaskNet(**ck["net_kwargs"])
        net.load_state_dict(ck["net"])
        start = int(ck["step"])
        kw = ck["net_kwargs"]
        rng_state = ck.get("torch_rng")
        if args.df_bins and args.df_bins != kw.get("df_bins", 0):
            raise SystemExit(f"{ckpt_path} has {kw.get('df_bins', 0)} deep-filter bins; --df-bins {args.df_bins} cannot "
                             "change a run in progress (use a new --out)")
        if args.presence and not kw.get("presence", False):
            raise SystemExit(f"{ckpt_path} was trained without --presence, which cannot change a run in progress")
        if args.phase_steady and not kw.get("phase_steady", False):
            raise SystemExit(f"{ckpt_path} was trained without --phase-steady, which cannot change a run in progress")
        if args.phase_bins and args.phase_bins != kw.get("phase_bins", 0):
            raise SystemExit(f"{ckpt_path} has {kw.get('phase_bins', 0)} phase-advance bins; --phase-bins "
                             f"{args.phase_bins} cannot change a run in progress (use a new --out)")
        if args.lookahead is not None and args.lookahead != kw.get("lookahead", 0):
            raise SystemExit(f"{ckpt_path} was trained with {kw.get('lookahead', 0)} frames of look-ahead; "
                             f"--lookahead {args.lookahead} cannot change a run in progress (use a new --out)")
        print(f"resuming from {ckpt_path} at step {start}", flush=True)
    elif args.init_from:
        ck0 = load_init(args.init_from)
        kw = dict(ck0["net_kwargs"])
        ck = None
        grow = args.fine and not kw.get("n_fine", 0)
        if grow:  # band-only checkpoint -> net with the fine branch (normalisation of the new input measured here)
            st = feature_stats(pools, args.seed, n_batches=2 if args.smoke else 8, vary_noise=vary)
            kw.update(n_fine=common.N_FINE, fine_mean=st["fine_mean"], fine_std=st["fine_std"])
        add_df = bool(args.df_bins) and not kw.get("df_bins", 0)
        if add_df:
            kw.update(df_bins=args.df_bins, df_order=args.df_order)
        add_phase = bool(args.phase_bins) and not kw.get("phase_bins", 0)
        if add_phase:
            kw.update(phase_bins=args.phase_bins, phase_steady=args.phase_steady)
        add_pres = args.presence and not kw.get("presence", False)
        if add_pres:
            kw.update(presence=True)
        h_old = int(ck0["net"]["gru.weight_hh_l0"].shape[1])
        widen = args.grow_hidden > h_old
        print(f"fine-tuning from {args.init_from} (its step {ck0['step']}; fresh optimiser and schedule"
              f"{'; fine branch added' if grow else ''}{f'; GRU {h_old} -> {args.grow_hidden}' if widen else ''}"
              f"{f'; deep-filter taps added ({args.df_order} frames x {args.df_bins} bins)' if add_df else ''}"
              f"{f'; phase-advance input added ({args.phase_bins} bins)' if add_phase else ''}"
              f"{'; speech-presence head added' if add_pres else ''})",
              flush=True)
    else:
        kw = feature_stats(pools, args.seed, n_batches=2 if args.smoke else 8, vary_noise=vary)
        kw["n_fine"] = common.N_FINE if args.fine else 0
        if args.df_bins:
            kw.update(df_bins=args.df_bins, df_order=args.df_order)
        if args.phase_bins:
            kw.update(phase_bins=args.phase_bins, phase_steady=args.phase_steady)
        if args.presence:
            kw.update(presence=True)
        ck = None
    if ck is None:  # a new run (fresh or a fine-tune) may set the look-ahead; the weights are the same either way
        kw["lookahead"] = args.lookahead if args.lookahead is not None else kw.get("lookahead", 0)
        net = MaskNet(**kw)
        if args.init_from:
            sd0 = ck0["net"]
            if grow:
                grow_fine(net, sd0)
                sd0 = net.state_dict()
            if add_phase and (widen or add_df):
                raise SystemExit("--phase-bins grows one thing at a time: not with --grow-hidden or new --df-bins")
            if add_pres and (widen or add_df or add_phase):
                raise SystemExit("--presence grows one thing at a time: not with --grow-hidden, new --df-bins or "
                                 "--phase-bins")
            if widen:
                kw["hidden"] = args.grow_hidden
                net = MaskNet(**kw)
                widen_gru(net, sd0)
            elif add_df:
                load_with_new_head(net, sd0, "df_head.")
            elif add_phase:
                add_phase_input(net, sd0)
            elif add_pres:
                load_with_new_head(net, sd0, "presence_head.")
            else:
                net.load_state_dict(sd0)
    disc = MultiResSpecDisc()
    opt_g = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.8, 0.99), weight_decay=1e-4)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=args.lr * 0.5, betas=(0.8, 0.99))
    wall_before = 0.0
    if ck is not None:
        disc.load_state_dict(ck["disc"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        wall_before = float(ck.get("wall_s", 0.0))
    if rng_state is not None:
        torch.set_rng_state(rng_state)
    print(f"MaskNet {n_params(net)} params, discriminator {n_params(disc)}; loss weights {w}", flush=True)
    ios = {160: BandIO(160, 80), 320: BandIO(320, 80)}
    log = open(out / "log.jsonl", "a")
    t0 = time.time()
    total = args.steps
    stopper = RunStop(args, t0)
    keep = set(args.keep_steps or [])
    step = start
    last = {}

    def save(path):
        torch.save({"net": net.state_dict(), "disc": disc.state_dict(), "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(), "step": step, "net_kwargs": kw, "loss_w": w,
                    "args": vars(args), "wall_s": wall_before + time.time() - t0,
                    "torch_rng": torch.get_rng_state()}, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)

    def validate():  # (the mixtures' scores, {"val_pairs": the held pairs' scores} or {} without pairs)
        return evaluate(net, val), ({"val_pairs": evaluate(net, val_pairs)} if val_pairs else {})

    stopper.install()
    if start == 0 and args.init_from and args.val_every:  # the starting point of a fine-tune on the curve
        r, rp = validate()
        log.write(json.dumps({"step": 0, "val": r, **rp, "wall_s": wall_before}) + "\n")
        log.flush()
    stop_at = min(total, args.stop_at) if args.stop_at else total
    while step < stop_at:
        why = stopper.reason()
        if why:
            print(f"\nstopping at step {step}: {why}", flush=True)
            break
        rng = np.random.default_rng([args.seed, step])
        x, t, c = mixed_rows(rng, pools, args.batch - n_teach - n_pairs, seg, vary, pairs, n_pairs)
        if teacher is not None:  # the cached rows come last: rows [nb:] have a teacher output
            xc, tc, yc, cc = teacher.batch(rng, n_teach, seg)
            x, t, c = np.concatenate([x, xc]), np.concatenate([t, tc]), np.concatenate([c, cc])
        nb = args.batch - n_teach
        # deep-filter taps and the phase-advance input: their 10 ms window only
        n_fft = 160 if rng.random() < 0.5 or net.df_bins or net.phase_bins else 320
        io = ios[n_fft]
        x, t, c = torch.tensor(x), torch.tensor(t), torch.tensor(c)
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total)))))
        if step < args.warmup:  # a fresh optimiser's first steps are full-size: ramp up from a trained net
            lr *= (step + 1) / args.warmup
        for g in opt_g.param_groups:
            g["lr"] = lr
        spec, feat = io.analyse(x)
        gains, df = masked(net, feat, io.fine(x) if net.n_fine else None, c, phase_of(net, spec))
        y = io.synth(spec, gains, seg, df, net.df_order, net.lookahead)
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
        if w["cspec"] > 0 and net.df_bins:
            cs = cspec(y, t)
            parts["cspec"] = cs.item()
            loss = loss + w["cspec"] * cs
        if w["presence"] > 0 and net.presence:
            pt = presence_target(io, t_full)
            pb = torch.nn.functional.binary_cross_entropy(net.align(net.last_presence).clamp(1e-6, 1 - 1e-6), pt)
            parts["presence"] = pb.item()
            loss = loss + w["presence"] * pb
        if w["pause"] > 0:
            pr, ok = pause_residual(y, x[:, :e], t)
            pl = (pr * ok).sum() / ok.sum().clamp_min(1.0)
            parts["pause"] = pl.item()
            loss = loss + w["pause"] * pl
        if w["stoi"] > 0:
            st, ok = stoi_torch(y, t, SR)
            sl = ((1.0 - st) * ok).sum() / ok.sum().clamp_min(1.0)
            parts["stoi"] = sl.item()
            loss = loss + w["stoi"] * sl
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
            ge = gain_err(gains, gt)
            tg = teacher.gain_target(io, x[nb:], torch.tensor(yc)) if w["teach"] > 0 else None
            if tg is not None:  # cached rows: the teacher's gains replace g* as the dense target
                te = gain_err(gains[nb:, tg[0]], tg[1])
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
            dl = sum(((dr - 1) ** 2).mean() + dfake.pow(2).mean()
                     for dr, dfake in zip(disc(t[hb]), disc(y[hb].detach()))) / len(disc.ffts)
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
            progress(step, total, t0, f"loss {loss.item():.3f}", start)
        if step in keep:
            save(out / f"ckpt_step{step}.pt")
        if step % args.ckpt_every == 0:
            save(ckpt_path)
        if args.val_every and step % args.val_every == 0:
            r, rp = validate()
            log.write(json.dumps({"step": step, "val": r, **rp, "wall_s": wall_before + time.time() - t0}) + "\n")
            log.flush()
            print(f"\nstep {step}: val SI-SDR {r['si_sdr_out']:.2f} dB (input {r['si_sdr_in']:.2f}, "
                  f"improvement {r['si_sdr_improvement']:+.2f}), mrstft {r['mrstft']:.3f}", flush=True)
    save(ckpt_path)
    stopper.restore()
    r, rp = validate()
    wall = wall_before + time.time() - t0
    if step > start and not (args.val_every and step % args.val_every == 0):  # where this call ended
        log.write(json.dumps({"step": step, "val": r, **rp, "wall_s": wall}) + "\n")
    summary = {"steps": step, "wall_s": wall, "val": r, **rp, "loss_w": w, "params": n_params(net), "last": last,
               "batch": args.batch, "segment_s": args.segment_s, "seed": args.seed, "threads": args.threads,
               "lr": args.lr, "schedule_steps": args.steps, "init_from": args.init_from, "n_fine": net.n_fine,
               "vary_noise": vary, "teacher": args.teacher, "teacher_frac": args.teacher_frac if args.teacher else 0.0,
               "teacher_mixtures": teacher.n_rows if teacher is not None else 0,
               "pairs": args.pairs, "pairs_frac": args.pairs_frac if args.pairs else 0.0,
               "lookahead": net.lookahead, "df_bins": net.df_bins, "df_order": net.df_order,
               "phase_bins": net.phase_bins, "phase_steady": net.phase_steady, "presence": net.presence}
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


class RunStop:
    """When a training loop stops early: the ``--minutes`` budget (counted from ``t0``) or the ``--until`` time,
    whichever comes first, or SIGTERM/SIGINT (the loop ends after the current step and saves). ``install()``
    sets the signal handlers (main thread only), ``restore()`` puts the previous ones back."""

    def __init__(self, args, t0: float):
        self.deadline = t0 + args.minutes * 60 if args.minutes else None
        if getattr(args, "until", 0):
            self.deadline = min(self.deadline or args.until, args.until)
        self.signals: list[str] = []  # the names of the signals received
        self._old: dict = {}

    def install(self) -> RunStop:
        if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
            self._old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _on_signal(self, signum, _frame):
        self.signals.append(signal.Signals(signum).name)

    def reason(self) -> str | None:
        """Why the loop must stop before its next step, or None."""
        if self.deadline and time.time() > self.deadline:
            return "time budget reached"
        return self.signals[0] if self.signals else None

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}


def loss_weights(defaults: dict, args) -> dict:
    """The run's loss weights: ``defaults`` (a trainer's LOSS_W), then each ``--weight TERM=VALUE``, then ``--off``."""
    w = dict(defaults)
    for spec in getattr(args, "weight", None) or []:
        term, _, v = spec.partition("=")
        try:
            val = float(v)
        except ValueError:
            val = math.nan
        if term not in w or not math.isfinite(val) or val < 0:
            raise SystemExit(f"--weight {spec!r}: expected TERM=VALUE with VALUE >= 0 and TERM one of {', '.join(w)}")
        w[term] = val
    for term in args.off or []:
        w[term] = 0.0
    return w


def add_run_args(ap: argparse.ArgumentParser, *, out: str, steps: int, batch: int, segment_s: float, lr: float,
                 threads: int, adv_start: int, loss_terms) -> argparse.ArgumentParser:
    """The options every trainer shares: run folder, schedule, batch, seed, threads, ablation switches, checkpoints,
    validation, --fresh and --quiet (defaults per trainer)."""
    ap.add_argument("--out", default=out, help="checkpoint/log folder (resumes if OUT/ckpt.pt exists)")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop at this step while keeping the --steps learning-rate schedule (ablations)")
    ap.add_argument("--minutes", type=float, default=0.0, help="stop early after this wall time (0: no limit)")
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--segment-s", type=float, default=segment_s)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--adv-start", type=int, default=adv_start)
    ap.add_argument("--off", action="append", choices=list(loss_terms), help="switch a loss term off (ablation)")
    ap.add_argument("--weight", action="append", metavar="TERM=VALUE",
                    help="set one loss term's weight (repeatable; default: the trainer's LOSS_W); --off still switches "
                         "a term off")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def add_args(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_run_args(ap, out="runs/mask", steps=6000, batch=12, segment_s=1.5, lr=2e-3, threads=2, adv_start=200,
                 loss_terms=LOSS_W)
    ap.add_argument("--keep-steps", type=int, nargs="*", help="also keep ckpt_stepN.pt at these steps")
    ap.add_argument("--until", type=float, default=0.0,
                    help="stop before the first step that would start after this Unix time (0: no limit); with "
                         "--minutes, whichever comes first")
    ap.add_argument("--warmup", type=int, default=0,
                    help="linear learning-rate ramp over the first N steps (fine-tuning with a fresh optimiser)")
    ap.add_argument("--init-from", help="start a new run (fresh optimiser, schedule from step 0) from this checkpoint's "
                    "generator weights: the fine-tuning phase of the recipe and its ablations; a bundle folder "
                    "(e.g. models/weights/mask) rebuilds the net from its ONNX initialisers")
    ap.add_argument("--fine", action="store_true",
                    help="add the fine-feature branch (32 ms look-back, 31.25 Hz grid; see net.py); with --init-from "
                         "a band-only checkpoint it is grown in at zero weight (the shipped recipe's phase 1b)")
    ap.add_argument("--lookahead", type=int, default=None, metavar="L",
                    help="frames of look-ahead of a new run (the gains emitted with frame t + L apply to frame t: "
                         "L x 5 ms more latency; default: none, or the --init-from model's); a resumed run keeps "
                         "its checkpoint's")
    ap.add_argument("--df-bins", type=int, default=0, metavar="K",
                    help="a new run's deep-filter taps on the lowest K bins of the 10 ms window (100 Hz apart: K = 32 "
                         "covers 0-3.1 kHz); with --init-from a net without them they are grown in at zero "
                         "(load_with_new_head); such a run trains on the 10 ms window only")
    ap.add_argument("--df-order", type=int, default=5, metavar="N",
                    help="frames each deep-filter tap set spans (the newest N; needs N >= look-ahead + 1)")
    ap.add_argument("--phase-bins", type=int, default=0, metavar="P",
                    help="a new run's phase-advance input on the lowest P bins of the 10 ms window (common.py; a "
                         "training experiment: such a net cannot be exported yet); with --init-from a net without "
                         "it, it is grown in at zero influence (add_phase_input); trains on the 10 ms window only")
    ap.add_argument("--phase-steady", action="store_true",
                    help="with --phase-bins: also give the net each bin's change of phase advance over one hop "
                         "(BandIO.phase steady=True)")
    ap.add_argument("--presence", action="store_true",
                    help="a speech-presence head: one sigmoid per frame from the GRU that scales every band's gain "
                         "and the deep-filter taps, trained toward the clean frame's activity (binary cross-entropy, "
                         "--weight presence=W); grown onto an --init-from net at 0.993")
    ap.add_argument("--grow-hidden", type=int, default=0,
                    help="with --init-from: widen the GRU to this many units, starting from exactly the old net's "
                         "output (widen_gru)")
    ap.add_argument("--teacher", help="DeepFilterNet3-LL teacher cache folder (scripts/mask_teacher_cache.py): "
                    "enables the teach term")
    ap.add_argument("--teacher-frac", type=float, default=0.5, help="share of each batch drawn from the teacher cache")
    ap.add_argument("--pairs", help="a folder of cached input/target rows (scripts/codec_mask_pairs.py: decoded "
                    "low-bitrate speech and its original) drawn beside the mixtures")
    ap.add_argument("--pairs-val", help="held-out rows of the same kind (other speakers), scored beside the "
                    "mixtures at every validation (val_pairs in log.jsonl)")
    ap.add_argument("--pairs-frac", type=float, default=0.75, help="share of each batch drawn from --pairs")
    ap.add_argument("--plain-noise", action="store_true", help="no noise variations (speed, EQ, coloured, babble)")
    ap.add_argument("--smoke", action="store_true", help="3 steps on synthetic signals (CI)")
    return ap


def main(argv=None) -> int:
    args = add_args(argparse.ArgumentParser(prog="resculpt train mask")).parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.segment_s, args.val_every, args.adv_start = 3, 2, 0.5, 0, 1
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
