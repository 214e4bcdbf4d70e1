"""Train the resculpting generator: the loop and its command line (never imported at run time).

    .venv/bin/python scripts/resculpt_cache.py --out runs/resculpt-pairs --n 4096       # pairs first (ffmpeg)
    resculpt train resculpt --pairs runs/resculpt-pairs --out runs/resculpt --steps 20000 [--minutes 60]
    resculpt train resculpt --smoke --out /tmp/x       # CI: 3 steps, tiny config, synthetic clips, < 60 s

Each step: ``--batch`` aligned crops (changed y, clean x) from the pair cache (or made on the fly without
``--pairs``: slower, and without codecs unless ``--ops`` names them), a conditioning mode per row
(``losses.MODES``: restore / move / keep / nudge, shares ``--mode-p``), the target profile of each row measured with ``profile_torch`` on
the clip it names and turned into the conditioning vector (absolute: ``profile_torch.cond_vector``; relative, for
``nudge`` rows and a ``--zero-delta-p`` share of ``keep`` rows: ``profile_torch.delta_cond`` of the delta, the
form the stage passes descriptor targets in), the generator on the input (``net.Resculptor``),
the loss terms (``losses.py``), one generator step and, from ``--adv-start``, one discriminator step.

Determinism and resuming: batch k is drawn from ``np.random.default_rng([seed, k])`` (so the data position is
the step), torch is seeded, and ``OUT/ckpt.pt`` holds weights, both optimisers, the step, torch's RNG state,
the net's constructor arguments, the arguments and the wall time; a rerun with the same ``--out`` continues
where it stopped, with the same batches an uninterrupted run would have seen.
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
from resculpt.dsp.profile import Profile
from resculpt.models.mask.losses import perceptual_or_off
from resculpt.models.mask.train import RunStop, loss_weights
from torch import nn

from . import common as C
from . import degrade, losses
from . import profile_torch as pt
from .disc import MultiScaleDisc
from .net import ResculptNet, Resculptor, n_params, widen_film_v1

SMOKE = {"ch": (4, 6, 8), "hidden": 16}


class OnTheFly:
    """Pairs made per batch (no cache): ``degrade.make_pair`` over a Source, indices drawn from the batch rng."""

    def __init__(self, src: degrade.Source, seconds: float, ops, seed: int):
        self.src, self.seconds, self.ops, self.seed, self.sr = src, seconds, list(ops), seed, src.sr

    def batch(self, rng, bsz, n):
        idx = rng.integers(1 << 30, size=bsz)
        ps = [degrade.make_pair(self.src, self.seed, int(i), self.seconds, self.ops) for i in idx]
        return np.stack([p["y"][:n] for p in ps]), np.stack([p["x"][:n] for p in ps]), idx


# Descriptors a nudge draws from (``dsp.descriptors.VOCAB``): those whose move the generator can make with its
# outputs and the profile loss can see (band shape, centroid, tilt, loudness, crest, LRA); the F0/formant and
# pace descriptors need operators the generator does not have.
NUDGE_VOCAB = ("bass", "warm", "bright", "dark", "clear highs", "airy", "soft", "harsh", "sibilance", "nasal",
               "radio", "telephone", "muddy", "boomy", "thin", "full", "crisp", "presence", "compressed", "dynamic",
               "distant", "close", "loud", "quiet")
NUDGE_INTENSITY = ("a bit ", "", "much ")


def nudge_delta(rng: np.random.Generator):
    """A random description in the product's vocabulary (1-2 descriptors of ``NUDGE_VOCAB``, each "a bit",
    plain or "much", negated with p = 0.3) and its delta Profile (``dsp.descriptors.describe``)."""
    from resculpt.dsp.descriptors import describe

    k = int(rng.integers(1, 3))
    names = rng.choice(len(NUDGE_VOCAB), size=k, replace=False)
    parts = [("not " if rng.random() < 0.3 else "") + NUDGE_INTENSITY[int(rng.integers(3))] + NUDGE_VOCAB[j]
             for j in names]
    text = ", ".join(parts)
    return text, describe(text)


def nudge_tensors(deltas: list) -> tuple[torch.Tensor, dict]:
    """Delta Profiles (one per row; None: no move) -> (band offsets (B, 32) dB, {covered dim: (B,)}) for
    ``profile_torch.apply_delta`` (ratio dims 1, additive dims 0 where a row has no delta)."""
    from resculpt.dsp.profile import RATIO_DIMS

    band = torch.zeros(len(deltas), C.N_BANDS)
    dims = {k: torch.full((len(deltas),), 1.0 if k in RATIO_DIMS else 0.0) for k in pt.COVERED}
    for i, d in enumerate(deltas):
        if d is None:
            continue
        band[i] = torch.tensor(np.nan_to_num(d.env()), dtype=torch.float32)
        for k in pt.COVERED:
            v = d.dims[k]
            if math.isfinite(v):
                dims[k][i] = float(v)
    return band, dims


# Descriptions whose moves the validation measures in relative form beyond the benchmark's band-shape ones
# (``common.EVAL_DESCRIPTORS``): loudness and dynamics, which the identity gate cannot see.
EVAL_LEVEL_DESCRIPTORS = ("louder", "more compressed")


def make_batch(rng, data, bsz, n, smoke=False, mode_p=losses.MODE_P, zero_delta_p=0.0):
    """(inp, ref, has_ref, src, modes, nudges) for one step: see ``losses.MODES``. ``src`` rows are the clips
    whose profile is each row's target; ``nudges`` the delta Profile of each row conditioned in relative form: a
    ``nudge`` row's description, and on a ``zero_delta_p`` share of the ``keep`` rows the zero delta (a relative
    target that moves nothing: the identity); None on the rows conditioned on an absolute profile."""
    y, x, _ = data.batch(rng, bsz, n)
    nm = len(losses.MODES)
    modes = np.arange(bsz) % nm if smoke else rng.choice(nm, size=bsz, p=np.asarray(mode_p) / np.sum(mode_p))
    flip = rng.random(bsz) < 0.5
    perm = np.roll(np.arange(bsz), 1)
    inp, ref, src = y.copy(), x.copy(), x.copy()
    nudges = [None] * bsz
    for i, m in enumerate(modes):
        if m == 1:  # move: toward another row's clean profile, from the changed or the clean clip
            inp[i] = x[i] if flip[i] else y[i]
            src[i] = x[perm[i]]
        elif m == 2:  # keep: the input's own profile, output = input
            inp[i] = x[i] if flip[i] else y[i]
            ref[i] = inp[i]
            src[i] = inp[i]
        elif m == 3:  # nudge: the input's own profile moved by a described delta, no reference
            inp[i] = x[i] if flip[i] else y[i]
            src[i] = inp[i]
            nudges[i] = nudge_delta(rng)[1]
    if zero_delta_p > 0:  # drawn after the rest, so the other rows are those of a batch without it
        zero = rng.random(bsz) < zero_delta_p
        for i in np.flatnonzero(zero & (modes == 2)):
            nudges[i] = Profile("delta", {}, meta={"description": ""})
    return (torch.tensor(inp), torch.tensor(ref), torch.tensor((modes != 1) & (modes != 3)), torch.tensor(src),
            torch.tensor(modes), nudges)


def profile_weights(match: str, exclude=()) -> dict:
    """Profile-loss weights of a run (``profile_torch.squared_distance``'s overrides): 0 for the covered dims
    outside the match mode and for those named in ``exclude`` (``--profile-exclude``); the rest keep their
    default weights."""
    return {k: 0.0 for k in pt.COVERED if k not in C.MATCH[match] or k in exclude}


@torch.no_grad()
def evaluate(model, tp, val, match="timbre", weights=None):
    """On fixed validation pairs in restore mode: profile distance to the target (output vs input), and the
    multi-resolution STFT loss against the clean clip (output vs input); keep mode (target = the input's own
    profile): mean |band change| (dB) over frames and bands, and the largest change of the long-term band
    envelope (dB, mean and worst over clips); descriptor targets (``common.EVAL_DESCRIPTORS`` applied to the clean
    clip's profile, input the clean clip): profile distance ratio output / input, mean over clips and texts, with
    the target as an absolute profile (``descriptor_ratio``) and in relative form as the stage passes it
    (``descriptor_ratio_rel``), and for ``EVAL_LEVEL_DESCRIPTORS`` in relative form (``level_ratio_rel``); the restore
    ratio and the keep mode's largest envelope change also as an offline render runs the net, its running
    fingerprint primed with the whole clip's and held (``profile_ratio_held``, ``keep_env_max_db_held``); and move
    mode as the benchmark's reference targets run it (``move_ratio_held``: input the clean clip, target the next
    validation clip's profile, held): profile distance ratio output / input, mean over clips. With ``weights``
    (a run's ``--profile-exclude``: ``profile_weights``) the restore, held restore and held move ratios are also
    reported over the dims the run's profile loss counts (``profile_ratio_excl``, ``profile_ratio_held_excl``,
    ``move_ratio_held_excl``); the plain ratios stay over every covered dim, comparable across runs."""
    model.eval()
    y, x = torch.tensor(np.stack([v["y"] for v in val])), torch.tensor(np.stack([v["x"] for v in val]))
    P_x = tp(x)
    cond = pt.cond_vector(P_x, model.fio.sr, match)
    out = model(y, cond)
    e = x.shape[1] - model.fio.n_fft
    P_o = tp(out)
    d_out = pt.distance(P_o, P_x).mean()
    d_in = pt.distance(tp(y), P_x).mean()
    # as an offline render runs them: the running fingerprint primed with the whole clip's and held
    held = torch.ones(x.shape[0], dtype=torch.bool)
    P_h = tp(model(y, cond, held=held))
    d_held = pt.distance(P_h, P_x).mean()
    keep_held = model(x, cond, held=held)
    # move: each clean clip toward the next clip's profile (another speaker or track), as an offline render runs it
    nxt = torch.roll(torch.arange(x.shape[0]), -1)
    P_n = {k: v[nxt] for k, v in P_x.items()}
    out_m = model(x, pt.cond_vector(P_n, model.fio.sr, match), held=held)
    P_m = tp(out_m)
    move_ratio = (pt.distance(P_m, P_n) / pt.distance(P_x, P_n).clamp_min(1e-9)).mean()
    keep = model(x, pt.cond_vector(P_x, model.fio.sr, match))
    fx, _ = model.fio.features(model.fio.stft(x[:, :e]))
    fk, _ = model.fio.features(model.fio.stft(keep[:, :e]))
    band_change = ((fk - fx).abs() * model.fio.valid).sum(-1) / model.fio.valid.sum()
    # the identity benchmark's measure: the long-term band envelope (fingerprint) of the kept output vs the input
    P_k = tp(keep)
    both = P_k["band_env_ok"] & P_x["band_env_ok"]
    env_d = ((P_k["band_env_db"] - P_x["band_env_db"]).abs() * both).amax(-1)
    P_kh = tp(keep_held)
    both_h = P_kh["band_env_ok"] & P_x["band_env_ok"]
    env_h = ((P_kh["band_env_db"] - P_x["band_env_db"]).abs() * both_h).amax(-1)
    # descriptor targets (the benchmark's): the clean clip's own profile moved by a description
    from resculpt.dsp.descriptors import describe

    ratios = {"abs": [], "rel": [], "level": []}
    for text in C.EVAL_DESCRIPTORS + EVAL_LEVEL_DESCRIPTORS:
        band, dims = nudge_tensors([describe(text)] * x.shape[0])
        P_d = pt.apply_delta(P_x, band, dims, model.fio.sr)
        forms = (("rel", pt.delta_cond(band, dims, model.fio.sr, match)),)
        if text in C.EVAL_DESCRIPTORS:
            forms += (("abs", pt.cond_vector(P_d, model.fio.sr, match)),)
        for form, c in forms:
            out_d = model(x, c)
            r = pt.distance(tp(out_d), P_d) / pt.distance(P_x, P_d).clamp_min(1e-9)
            ratios["level" if text in EVAL_LEVEL_DESCRIPTORS else form].append(r)
    excl = {}
    if weights:
        d_in_x = pt.distance(tp(y), P_x, weights).mean().clamp_min(1e-9)
        excl = {"profile_ratio_excl": float(pt.distance(P_o, P_x, weights).mean() / d_in_x),
                "profile_ratio_held_excl": float(pt.distance(P_h, P_x, weights).mean() / d_in_x),
                "move_ratio_held_excl": float((pt.distance(P_m, P_n, weights)
                                               / pt.distance(P_x, P_n, weights).clamp_min(1e-9)).mean())}
    model.train()
    return {**excl, "profile_dist_out": float(d_out), "profile_dist_in": float(d_in),
            "profile_ratio": float(d_out / d_in.clamp_min(1e-9)),
            "profile_ratio_held": float(d_held / d_in.clamp_min(1e-9)), "keep_env_max_db_held": float(env_h.mean()),
            "move_ratio_held": float(move_ratio),
            "mrstft_out": float(losses.mrstft(out[:, :e], x[:, :e])), "mrstft_in": float(losses.mrstft(y[:, :e], x[:, :e])),
            "keep_band_change_db": float(band_change.mean()), "keep_env_max_db": float(env_d.mean()),
            "keep_env_worst_db": float(env_d.max()), "descriptor_ratio": float(torch.stack(ratios["abs"]).mean()),
            "descriptor_ratio_rel": float(torch.stack(ratios["rel"]).mean()),
            "level_ratio_rel": float(torch.stack(ratios["level"]).mean())}


def optimizer_state_for(net: nn.Module, saved_net: dict, saved_opt: dict) -> dict:
    """The single-group optimiser state ``saved_opt`` of a checkpoint whose weights ``saved_net`` lack some of
    ``net``'s parameters (zero-initialised by its ``load_state_dict``) or hold some it has dropped (a replaced
    residual form: their moments go with them), re-indexed to ``net.parameters()``' order; the new parameters
    start with fresh moments. Returned unchanged when the checkpoint has exactly ``net``'s parameters."""
    names = [n for n, _ in net.named_parameters()]
    kept, own = set(names), set(net.state_dict())
    # the saved net's parameters, in its order: the ones this net still has, and those it dropped
    saved = [k for k in saved_net if k in kept or k not in own]
    if saved == names or len(saved_opt["param_groups"]) != 1:
        return saved_opt
    if len(saved_opt["param_groups"][0]["params"]) != len(saved):
        raise ValueError(f"optimiser state for {len(saved_opt['param_groups'][0]['params'])} parameters, "
                         f"checkpoint weights for {len(saved)}")
    idx = {n: i for i, n in enumerate(names)}
    return {"state": {idx[saved[int(i)]]: st for i, st in saved_opt["state"].items() if saved[int(i)] in idx},
            "param_groups": [dict(saved_opt["param_groups"][0], params=list(range(len(names))))]}


class Trainer:
    """One training run's state (data, generator, discriminators, optimisers, profiler, perceptual net) and its
    step: ``train`` drives it, ``scripts/resculpt_step_time.py`` times it. Built from the parsed arguments;
    resumes from ``OUT/ckpt.pt`` unless ``args.fresh``."""

    def __init__(self, args):
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        w = loss_weights(losses.LOSS_W, args)
        if args.smoke:
            src = degrade.Source.synthetic(args.rate, args.seed)
            self.data = OnTheFly(src, args.segment_s + 0.1, [o for o in degrade.DEFAULT_OPS if o != "codec"],
                                 args.seed)
            self.val = [degrade.make_pair(src, args.seed + 1, i, 1.0, self.data.ops) for i in range(2)]
        else:
            if args.pairs:
                from .cache import PairCache

                self.data = PairCache(args.pairs, args.max_pairs)
                print(f"pairs: {len(self.data)} from {args.pairs} ({self.data.meta})", flush=True)
            else:
                self.data = OnTheFly(degrade.Source.load("train", args.rate), max(3.0, args.segment_s), args.ops,
                                     args.seed)
                print(f"pairs made on the fly (ops {args.ops}); build a cache with scripts/resculpt_cache.py",
                      flush=True)
            self.val = []
            if args.n_val:
                vsrc = degrade.Source.load("val", self.data.sr)
                self.val = [degrade.make_pair(vsrc, 1234, i, 3.0, args.ops) for i in range(args.n_val)]
        self.sr = sr = self.data.sr
        self.seg = int(args.segment_s * sr)
        self.tp = pt.TorchProfiler(sr)
        self.ckpt_path = self.out / "ckpt.pt"
        ck = None
        if self.ckpt_path.is_file() and not args.fresh:
            ck = torch.load(self.ckpt_path, map_location="cpu", weights_only=False)
            kw = dict(ck["net_kwargs"])
            print(f"resuming from {self.ckpt_path} at step {ck['step']}", flush=True)
            if args.gate is not None and kw.get("gate") != tuple(args.gate):
                # the gate has no weights: a run continues with it from any step (the recipe changes there)
                print(f"identity gate {kw.get('gate')} -> {tuple(args.gate)} from step {ck['step']}", flush=True)
                kw["gate"] = tuple(args.gate)
            if args.relative_prior and not kw.get("relative_prior"):
                # the prior has no weights either: from this step on a relative row's gain is prior + residual
                print(f"relative prior on from step {ck['step']}", flush=True)
                kw["relative_prior"] = True
            if args.residual_scale and not kw.get("residual_scale") and not (args.relative_heads or kw.get("relative_heads")):
                # zero scales: relative rows continue from the prior alone and learn how much residual to add
                print(f"residual scale on from step {ck['step']}", flush=True)
                kw["residual_scale"] = True
            if args.relative_heads and not kw.get("relative_heads"):
                # relative rows continue from the prior alone (head_rel, df_rel at the identity); the heads replace
                # the residual scale
                print(f"relative heads on from step {ck['step']}", flush=True)
                kw["relative_heads"], kw["residual_scale"] = True, False
            if args.residual_live and not kw.get("residual_live"):
                # no weights: from this step held rows run the absolute prior alone and train no residual
                print(f"absolute residual on live rows only from step {ck['step']}", flush=True)
                kw["residual_live"] = True
            if args.absolute_prior and not kw.get("absolute_prior"):
                # absolute rows continue from the known shape difference alone (head_abs, df_abs at the identity)
                print(f"absolute prior on from step {ck['step']}", flush=True)
                kw["absolute_prior"] = True
        else:
            kw = {"lookahead": args.lookahead, "gate": tuple(args.gate) if args.gate is not None else None,
                  "relative_prior": args.relative_prior, "residual_scale": args.residual_scale,
                  "absolute_prior": args.absolute_prior, "relative_heads": args.relative_heads,
                  "residual_live": args.residual_live,
                  **(SMOKE if args.smoke else {"ch": tuple(args.ch), "hidden": args.hidden})}
        self.kw = kw
        self.model = Resculptor(ResculptNet(**kw), sr)
        self.disc = MultiScaleDisc(sr)
        self.opt_g = torch.optim.AdamW(self.model.net.parameters(), lr=args.lr, betas=(0.8, 0.99), weight_decay=1e-4)
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=args.lr * 0.5, betas=(0.8, 0.99))
        self.step, self.wall_before = 0, 0.0
        if ck is not None:
            self.model.net.load_state_dict(ck["net"])
            self.disc.load_state_dict(ck["disc"])
            self.opt_g.load_state_dict(optimizer_state_for(self.model.net, ck["net"], ck["opt_g"]))
            films = {id(f.weight) for f in self.model.net.films}
            for prm, st in self.opt_g.state.items():  # a checkpoint of the 124-float layout: zero moments there too
                if id(prm) in films:
                    for k in ("exp_avg", "exp_avg_sq"):
                        if k in st:
                            st[k] = widen_film_v1(st[k])
            self.opt_d.load_state_dict(ck["opt_d"])
            torch.set_rng_state(ck["torch_rng"])
            self.step, self.wall_before = int(ck["step"]), float(ck.get("wall_s", 0.0))
        self.perc = perceptual_or_off(w, args.smoke)
        self.w = w
        self.pw = profile_weights(args.match, args.profile_exclude)  # profile-loss weights of the run
        self.e = self.seg - self.model.fio.n_fft  # the last window of a crop is only partly synthesised
        self.t0 = time.time()

    def wall(self) -> float:
        return self.wall_before + time.time() - self.t0

    def save(self, path=None):
        path = path or self.ckpt_path
        torch.save({"net": self.model.net.state_dict(), "disc": self.disc.state_dict(),
                    "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "step": self.step,
                    "net_kwargs": self.kw, "loss_w": self.w, "args": vars(self.args),
                    "torch_rng": torch.get_rng_state(), "sample_rate": self.sr, "data_position": self.step,
                    "wall_s": self.wall()}, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)

    def scales(self) -> dict:
        """``{"rel_scale": [gain, copy-up, deep filter]}`` of a net with the residual scale, else ``{}``."""
        net = self.model.net
        return {"rel_scale": [round(float(v), 5) for v in net.rel_scale.detach()]} if net.residual_scale else {}

    def evaluate(self) -> dict:
        return evaluate(self.model, self.tp, self.val, self.args.match,
                        self.pw if self.args.profile_exclude else None)

    def train_step(self) -> tuple[float, dict]:
        """One generator step (and, from ``--adv-start``, one discriminator step) on batch ``self.step``;
        returns (total generator loss, {term: value}) and advances ``self.step``."""
        args, w, model, disc, tp, sr, e = self.args, self.w, self.model, self.disc, self.tp, self.sr, self.e
        step = self.step
        rng = np.random.default_rng([args.seed, step])
        inp, ref, has_ref, src, modes, nudges = make_batch(rng, self.data, args.batch, self.seg, args.smoke,
                                                           args.mode_p, args.zero_delta_p)
        held = None
        if args.held_p > 0:  # drawn only then, so a run without it draws what it always drew
            held = torch.tensor(rng.random(args.batch) < args.held_p)
            held = held if bool(held.any()) else None
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, args.steps)))))
        for g in self.opt_g.param_groups:
            g["lr"] = lr
        with torch.no_grad():
            P_t = tp(src)
            rel = torch.tensor([d is not None for d in nudges])
            if bool(rel.any()):
                # relative rows: the target (for the profile loss) is the input's profile moved by the delta; the
                # net is told the delta itself (flag, offsets, scalar moves), as the stage tells it a description
                band, dims = nudge_tensors(nudges)
                P_t = pt.apply_delta(P_t, band, dims, sr)
                cond = torch.where(rel[:, None], pt.delta_cond(band, dims, sr, args.match),
                                   pt.cond_vector(P_t, sr, args.match))
            else:
                cond = pt.cond_vector(P_t, sr, args.match)
        y, outs = model(inp, cond, outputs=True, held=held)
        yc, rc = y[:, :e], ref[:, :e]
        # the waveform terms below read yw: with --level-match each row with a reference at that reference's level
        yw = losses.level_match(yc, rc, has_ref) if args.level_match else yc
        parts, loss = {"lr": lr}, 0.0
        if w["recon"] > 0 and bool(has_ref.any()):
            rec = losses.mrstft(yw[has_ref], rc[has_ref])
            parts["recon"] = rec.item()
            loss = loss + w["recon"] * rec
        if w["profile"] > 0:
            pl = pt.squared_distance(tp(y), P_t, self.pw).mean()
            parts["profile"] = pl.item()
            loss = loss + w["profile"] * pl
        move = (modes == 1) | (modes == 3)
        if w["content"] > 0 and bool(move.any()):
            cl = losses.content(model.fio, yc[move], inp[move, :e]).mean()
            parts["content"] = cl.item()
            loss = loss + w["content"] * cl
        keep = modes == 2
        if w["identity"] > 0 and bool(keep.any()):
            il = losses.identity(*(o[keep] for o in outs)).mean()
            parts["identity"] = il.item()
            loss = loss + w["identity"] * il
        use_adv = (w["adv"] > 0 or w["fm"] > 0) and step >= args.adv_start and step % args.adv_every == 0
        if use_adv:
            # the discriminators judge one window of --disc-crop-s seconds (same place in every row): they
            # cost most of a step, and a 0.5 s window holds 31 frames of their coarsest spectrogram
            nd = min(e, int(args.disc_crop_s * sr)) if args.disc_crop_s > 0 else e
            o = int(rng.integers(e - nd + 1))
            yd, rd = yw[:, o : o + nd], rc[:, o : o + nd]
            fake = disc.features(yd)
            real = disc.features(rd)  # with its graph: the discriminator step below reuses it
            adv = losses.lsgan_gen(fake)
            fm = losses.feature_matching(fake, real, has_ref)
            parts["adv"], parts["fm"] = adv.item(), fm.item()
            loss = loss + w["adv"] * adv + w["fm"] * fm
        if self.perc is not None and bool(has_ref.any()):
            active = (rc[has_ref].pow(2).mean(-1) > 1e-9).float()
            pl = self.perc.loss(yw[has_ref], rc[has_ref], active)
            parts["perc"] = pl.item()
            loss = loss + w["perc"] * pl
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.net.parameters(), 1.0)
        if not bool(torch.isfinite(gnorm)):
            # a non-finite gradient would turn every weight into NaN: this batch makes no update (logged)
            parts["skipped"] = 1
            self.opt_g.zero_grad(set_to_none=True)
            use_adv = False
        else:
            self.opt_g.step()
        if use_adv:
            # the generator's backward reached the discriminators only through `fake` (feature matching
            # detaches `real`), so `real`'s graph is intact and its weights have not moved since
            dl = losses.lsgan_disc(real, disc.features(yd.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            dl.backward()
            self.opt_d.step()
            parts["disc"] = dl.item()
        self.step = step + 1
        return float(loss.detach()), parts


def train(args) -> dict:
    """Run (or resume) the loop until ``--steps``/``--stop-at``, ``--minutes``, ``--until`` or SIGTERM/SIGINT
    (the current step ends, the checkpoint is saved); returns the summary also written to OUT/summary.json."""
    tr = Trainer(args)
    model, disc = tr.model, tr.disc
    print(f"generator {n_params(model.net)} params ({tr.kw}), discriminator {n_params(disc)}; rate {tr.sr} Hz; "
          f"loss weights {tr.w}", flush=True)
    out = tr.out
    log = open(out / "log.jsonl", "a")
    total = args.steps
    start, last, adv_last = tr.step, {}, {}
    stopper = RunStop(args, tr.t0).install()
    if start == 0 and args.val_every and tr.val:  # the fresh generator (the identity) on the curve
        r = tr.evaluate()
        log.write(json.dumps({"step": 0, "val": r, "wall_s": tr.wall_before}) + "\n")
        log.flush()
    stop_at = min(total, args.stop_at) if args.stop_at else total
    while tr.step < stop_at:
        why = stopper.reason()
        if why:
            print(f"\nstopping at step {tr.step}: {why}", flush=True)
            break
        loss, parts = tr.train_step()
        step = tr.step
        lr = parts.pop("lr")
        last = parts
        if "disc" in parts:
            # adversarial steps are every --adv-every-th and a log line every 10th: with an even period they
            # never coincide, so each line carries the newest adversarial step's terms and its index
            adv_last = {"adv_step": step - 1, **{k: parts[k] for k in ("adv", "fm", "disc")}}
        if step % 10 == 0 or step == total or args.smoke:
            extra = {k: v for k, v in adv_last.items() if k not in parts or k == "adv_step"}
            log.write(json.dumps({"step": step, "lr": lr, "loss": loss, **parts, **extra, "wall_s": tr.wall()}) + "\n")
            log.flush()
        if not args.quiet:
            from resculpt.models.mask.train import progress

            progress(step, total, tr.t0, f"loss {loss:.3f}", start)
        if step % args.ckpt_every == 0:
            tr.save()
        if args.val_every and step % args.val_every == 0:
            r = tr.evaluate()
            log.write(json.dumps({"step": step, "val": r, **tr.scales(), "wall_s": tr.wall()}) + "\n")
            log.flush()
            print(f"\nstep {step}: val {r}", flush=True)
    tr.save()
    stopper.restore()
    r = tr.evaluate()
    wall = tr.wall()
    if tr.step > start and not (args.val_every and tr.step % args.val_every == 0):  # where this call ended
        log.write(json.dumps({"step": tr.step, "val": r, **tr.scales(), "wall_s": wall}) + "\n")
    summary = {"steps": tr.step, "schedule_steps": total, "wall_s": wall, "val": r, "loss_w": tr.w,
               "params": n_params(model.net), "last": last, "net_kwargs": tr.kw, "batch": args.batch,
               "segment_s": args.segment_s, "adv_every": args.adv_every, "disc_crop_s": args.disc_crop_s,
               "seed": args.seed, "threads": args.threads, "lr": args.lr, "sample_rate": tr.sr, "match": args.match,
               "pairs": args.pairs, "n_pairs": len(tr.data) if args.pairs else 0}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=list))
    print(f"\ndone: {tr.step} steps, {wall / 60:.1f} min wall; val {r}", flush=True)
    log.close()
    return summary


def add_args(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from resculpt.models.mask.train import add_run_args

    add_run_args(ap, out="runs/resculpt", steps=20000, batch=8, segment_s=2.0, lr=1e-3, threads=1, adv_start=2000,
                 loss_terms=losses.LOSS_W)
    ap.add_argument("--until", type=float, default=0.0,
                    help="stop before the first step that would start after this Unix time (0: no limit); with "
                         "--minutes, whichever comes first")
    ap.add_argument("--adv-every", type=int, default=2,
                    help="adversarial and feature-matching terms and the discriminator step on every k-th step")
    ap.add_argument("--disc-crop-s", type=float, default=0.5,
                    help="seconds of each crop the discriminators judge (one window per step; 0: the whole crop)")
    ap.add_argument("--max-pairs", type=int, default=0,
                    help="use the first N pairs of the cache (0: all): fixes a run's data while the cache grows")
    ap.add_argument("--pairs", help="pair cache folder (scripts/resculpt_cache.py); without it pairs are made per batch")
    ap.add_argument("--rate", type=int, default=16000, help="sample rate of pairs made on the fly")
    ap.add_argument("--ops", nargs="*", choices=degrade.OPS, default=list(degrade.DEFAULT_OPS),
                    help="changes drawn for pairs made on the fly and for the validation pairs")
    ap.add_argument("--match", choices=sorted(C.MATCH), default="timbre", help="which target dims condition and count")
    ap.add_argument("--lookahead", type=int, choices=(0, 1), default=1, help="frames of look-ahead (5 ms each)")
    ap.add_argument("--ch", type=int, nargs=3, default=[16, 24, 32], help="U-Net channels at 32, 16 and 8 bands")
    ap.add_argument("--hidden", type=int, default=96, help="GRU hidden size")
    ap.add_argument("--gate", type=float, nargs=4, default=None,
                    metavar=("THRESHOLD_DB", "WIDTH_DB", "WARM_DB", "WARM_FRAMES"),
                    help="identity gate of the generator (ResculptNet.identity_gate; stored in the checkpoint); "
                         "default: none for a fresh run, the checkpoint's on resume")
    ap.add_argument("--relative-prior", action="store_true",
                    help="relative rows: the band gain is the delta's known gain (ResculptNet.relative_prior_db) plus "
                         "the learned residual; stored in the checkpoint (a resumed run keeps it; this switches it on)")
    ap.add_argument("--residual-scale", action="store_true",
                    help="with --relative-prior: relative rows' residual gain, copy-up and deep-filter deltas times "
                         "learned scales (ResculptNet.rel_scale) that start at zero (the prior alone); stored in the "
                         "checkpoint (a resumed run keeps it; this switches it on)")
    ap.add_argument("--relative-heads", action="store_true",
                    help="with --relative-prior: relative rows' residual gain, copy-up and deep filter from heads of "
                         "their own (ResculptNet.head_rel, df_rel) that start at the identity (the prior alone), "
                         "instead of --residual-scale; stored in the checkpoint (a resumed run keeps it; this switches "
                         "it on and the scale off)")
    ap.add_argument("--level-match", action="store_true",
                    help="the waveform terms (recon, adv, fm, perc) judge each row's output scaled to its reference's "
                         "level (losses.level_match): the product's loudness follower sets the level after the net, "
                         "so the net is not asked for a broadband level move")
    ap.add_argument("--absolute-prior", action="store_true",
                    help="absolute rows: the band gain is the level-free target-minus-running shape (the match-EQ's "
                         "curve) plus a learned residual (ResculptNet.head_abs, df_abs, starting at the identity); stored in the "
                         "checkpoint (a resumed run keeps it; this switches it on)")
    ap.add_argument("--residual-live", action="store_true",
                    help="with --absolute-prior: held rows (as offline renders run the net) run the absolute prior "
                         "alone and live rows add the residual (ResculptNet.residual_live), as the product then runs "
                         "them; stored in the checkpoint (a resumed run keeps it; this switches it on)")
    ap.add_argument("--held-p", type=float, default=0.0,
                    help="share of rows run as an offline render runs them: the running fingerprint primed with the "
                         "whole crop's and held (Resculptor.forward_spec(held=...), ResculptStage.prime(hold=True))")
    ap.add_argument("--profile-exclude", nargs="+", choices=pt.COVERED, default=[], metavar="DIM",
                    help="covered profile dims left out of the profile loss (weight 0), e.g. lufs_integrated: the "
                         "product's loudness follower (dsp/loudness_follow.py) moves integrated loudness outside the "
                         "net, so the net need not learn it; the validation then also reports its ratios without "
                         "them (*_excl). Default: none (every dim of the match mode counts)")
    ap.add_argument("--mode-p", type=float, nargs=len(losses.MODES), default=list(losses.MODE_P),
                    metavar=tuple(m.upper() for m in losses.MODES), help="shares of the conditioning modes")
    ap.add_argument("--zero-delta-p", type=float, default=0.2,
                    help="share of keep rows conditioned as a relative target that moves nothing (flag 1, delta 0; "
                         "the identity by construction of the relative gate) instead of their own absolute profile")
    ap.add_argument("--n-val", type=int, default=16, help="validation pairs (val split, seed 1234)")
    ap.add_argument("--smoke", action="store_true", help="3 steps, tiny net, synthetic clips (CI)")
    return ap


def main(argv=None) -> int:
    args = add_args(argparse.ArgumentParser(prog="resculpt train resculpt")).parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.segment_s, args.val_every, args.adv_start, args.adv_every = 3, 3, 0.5, 0, 0, 1
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
