"""A learned content/speaker split of the anon stage's band levels, measured with the anonymity benchmark.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_learned_levels.py capture \
        [--out runs/anon-levels-data.npz]                                        # ~10 min, one core
    .venv-bench/bin/python scripts/anon_learned_levels.py train --data runs/anon-levels-data.npz \
        --run models/training/anon-levels --minutes 40                           # resumable
    .venv-bench/bin/python scripts/anon_learned_levels.py capture-content     # ~30 s: Whisper targets for the capture
    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_learned_levels.py bench \
        --ckpt models/training/anon-levels/ckpt.pt --split train --skip-speakers 48 --speakers 64 \
        --no-baselines --no-asr --preset anon-neutral@anon.dynamics_pct=100 \
        --preset "anon-neutral@anon.dynamics_pct=100+learned" --out benchmarks/results/anon_learned_levels.md

What the oracle probe (scripts/anon_mel_probe.py) found the attacker links on after an anon preset is each band's
level statistics and how the levels move, and the level-dynamics step (dsp/voice/dynamics.py) normalises the
first two moments per band causally; what is left of the speaker is in how the levels move together over time.
This is the issue's content/speaker split at the smallest scale that can be measured end to end: on the same 32
mel bands and 5 ms frames the dynamics step reads, after the stage's other steps,

- an **encoder** (causal: Linear 34 -> 64, GRU 64) reads each frame's band levels as z-scores against the step's
  running per-band mean and spread, plus the speech flag and the frame's level against the running mean, and
  emits a **content code** of ``--code`` numbers per frame (tanh, Gaussian noise of ``--noise`` in training: a
  bottleneck), from which a **speaker adversary** (the code's mean and spread over an utterance's speech frames ->
  MLP -> the training speaker) is pushed away by gradient reversal;
- a **decoder** (causal: GRU 96) reads the code and a speaker embedding (a learned table of the training
  speakers) and reconstructs the z-scores (L1 on speech frames);
- in the stage (``+learned`` on a preset), the decoder is given the **mean of the table** (an average speaker)
  and its z-scores replace the input's: each band's target is the step's long-term target plus the decoded
  z-score times the average speaker's spread; the correction (limited to +-12 dB) is applied as the dynamics
  step applies its own. Pauses take the step's long-term part's cuts only (and its pause cut), as in the step.

With ``train --content-data runs/anon-levels-content.npz --content W`` (targets from ``capture-content``: Whisper
tiny.en's encoder output for the same chunks, each speaker's mean frame removed, 32 principal components, whitened),
a **content head** (training only, bidirectional GRU 64 over the code, or over the decoded z-scores with
``--content-on decoded``, or over the input z-scores with ``input``, a reference; averaged to Whisper's 20 ms
frames) predicts them, and the encoder (and the decoder) get W
times its gradient: the code is asked to keep what a recogniser hears, not only what reconstructs the levels. At
W 0 the head only reads the code (its validation loss says how much of the targets the code carries: 1 is none).

Training data: train-split speakers through the presets (every 2.8 s chunk reset, as the benchmark's
utterances are), leaving out the 64 speakers ``--split train --skip-speakers 48 --speakers 64`` attacks and every
val speaker. The benchmark run is then on speakers the net never saw. Measurement only: allocating, torch in the
loop, one frame at a time (bit-for-bit a streaming computation: the net is causal and stepped per frame).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import anonymity as bench
from resculpt.dsp.voice import dynamics as D
from resculpt.dsp.voice import level_split

VIEWS = ("anon-neutral", "anon-low", "anon-high")
_ORIG = D.BandDynamics


# -- the step's statistics, recorded or used ------------------------------------------------------------
class Recorder(_ORIG):
    """The dynamics step reading and updating its statistics (share 0: the row is left as it is) and keeping,
    for channel 0, each frame's (L (32,), m (32,), v (32,), valid, speech)."""

    instances: ClassVar[list] = []

    def __init__(self, freqs_hz, channels, frame_rate_hz, split_weights=None):
        super().__init__(freqs_hz, channels, frame_rate_hz)
        self.frames: list = []
        Recorder.instances.append(self)

    def process(self, row, ch, share, tilt, speech, split=0.0, max_db=D.MAX_DB, center=0.0, spread=0.0,
                pause_cut_db=0.0, lift_snr_db=0.0, sub_db=0.0, mid=1.0):
        self._L[:] = np.nan
        super().process(row, ch, 0.0, tilt, speech)
        if ch == 0:
            self.frames.append((self._L.copy(), self._mean[0].copy(), self._var[0].copy(),
                                bool(self._n[0] > 0), bool(speech)))

    def reset(self):
        super().reset()
        if hasattr(self, "frames"):
            self.frames.clear()


def features(L, m, v, valid, speech):
    """Per frame (T, 34) float32 net input and (T, 32) z-scores, frame by frame through the stage's own
    ``level_split.features`` (so training and the stage read the same input). L, m, v (T, 32) dB / dB^2;
    valid, speech (T,) bool."""
    L, m, v = (np.asarray(q, np.float32) for q in (L, m, v))
    f = np.zeros((len(L), level_split.N_IN), np.float32)
    tmp = np.zeros(level_split.BANDS_IN, np.float32)
    for t in range(len(L)):
        ok = bool(valid[t]) and bool(np.isfinite(L[t]).all())
        level_split.features(L[t], m[t], v[t], ok, bool(speech[t]), f[t], tmp)
    return f, f[:, :32].copy()


# -- the net ------------------------------------------------------------------------------------------------
def speech_stats(x, speech):
    """x (B, T, C), speech (B, T) 0/1 -> (B, 2C): each channel's mean and spread over the speech frames."""
    import torch

    w = speech[..., None]
    n = w.sum(1).clamp_min(1.0)
    mu = (x * w).sum(1) / n
    sd = (((x - mu[:, None]) ** 2 * w).sum(1) / n + 1e-6).sqrt()
    return torch.cat([mu, sd], -1)


def build_net(n_spk, code=6, emb=16, adv="pooled", content=0, content_on="code"):
    import torch
    from torch import nn

    class Reverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lam):
            ctx.lam = lam
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return -ctx.lam * g, None

    class LevelSplit(nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = {"n_spk": n_spk, "code": code, "emb": emb, "adv": adv, "content": content,
                        "content_on": content_on}
            self.inp = nn.Linear(34, 64)
            self.enc = nn.GRU(64, 64, batch_first=True)
            self.code = nn.Linear(64, code)
            self.spk = nn.Embedding(n_spk, emb)
            self.dinp = nn.Linear(code + emb + 1, 96)
            self.dec = nn.GRU(96, 96, batch_first=True)
            self.out = nn.Linear(96, 32)
            if adv == "gru":  # sees the code's time course, as Resemblyzer's LSTM sees its frames'
                self.adv_rnn = nn.GRU(code, 64, batch_first=True)
                self.adv = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, n_spk))
            else:
                self.adv = nn.Sequential(nn.Linear(2 * code, 128), nn.ReLU(), nn.Linear(128, n_spk))
            if content:  # training only (the stage never runs it), so it may look both ways in time
                self.content_rnn = nn.GRU(code if content_on == "code" else 32, 64, batch_first=True,
                                          bidirectional=True)   # "decoded" and "input": 32 z-scores
                self.content_out = nn.Linear(128, content)

        def encode(self, f, h=None):
            """f (B, T, 34) -> code (B, T, C), h."""
            y, h = self.enc(torch.tanh(self.inp(f)), h)
            return torch.tanh(self.code(y)), h

        def decode(self, c, e, speech, h=None):
            """c (B, T, C), e (B, E), speech (B, T) -> z (B, T, 32), h."""
            e = e[:, None, :].expand(-1, c.shape[1], -1)
            y, h = self.dec(torch.tanh(self.dinp(torch.cat([c, e, speech[..., None]], -1))), h)
            return self.out(y), h

        def adversary(self, c, speech, lam):
            """Speaker logits (B, n_spk) from the code's mean and spread over speech frames (adv "pooled") or
            from a GRU's states over the code pooled the same way (adv "gru"), gradient reversed. c (B, T, C)."""
            c = Reverse.apply(c, lam)
            if adv == "gru":
                c, _ = self.adv_rnn(c)
            return self.adv(speech_stats(c, speech))

        def content_head(self, c, weight):
            """The Whisper targets predicted from the code (content_on "code"), the decoded z-scores ("decoded")
            or the input z-scores ("input": what the levels hold at all): c (B, T, C or 32), T a multiple of 4 ->
            (B, T / 4, content). The head learns at full rate; what feeds it gets ``weight`` times its gradient
            (0: it is only read)."""
            c = Reverse.apply(c, -weight)
            c = c.reshape(c.shape[0], -1, 4, c.shape[-1]).mean(2)
            y, _ = self.content_rnn(c)
            return self.content_out(y)

    return LevelSplit()


# -- capture ------------------------------------------------------------------------------------------------
def eval_speakers(skip=48, n=64):
    """The keys benchmarks/anonymity.py --split train --skip-speakers skip --speakers n attacks."""
    from resculpt.models import data

    el = [it for it in data.select("speech", "train") if it.duration_s >= bench.N_UTT * bench.SEG_S]
    el.sort(key=lambda it: (it.source, int(it.speaker) if it.speaker.isdigit() else 0, it.speaker))
    keys: list = []
    for it in el[skip:]:
        k = f"{it.source}:{it.speaker}"
        if len(set(keys)) >= n:
            break
        keys.append(k)
    return set(keys)


def capture(a) -> int:
    from resculpt.models import data

    bench.one_thread()
    held = eval_speakers()
    items = capture_items(a.items)
    spk = sorted({f"{it.source}:{it.speaker}" for it in items})
    sid = {s: i for i, s in enumerate(spk)}
    D.BandDynamics = Recorder
    try:
        chains = {v: bench.chain_system(f"{v}@anon.dynamics_pct=100") for v in a.view}
    finally:
        D.BandDynamics = _ORIG
    rec = Recorder.instances[-len(a.view):]
    n = int(bench.SEG_S * bench.SR)
    out = {"L": [], "m": [], "v": [], "valid": [], "speech": [], "spk": [], "view": []}
    t0 = time.time()
    for j, it in enumerate(items):
        x, _ = data.load(it, sample_rate=bench.SR)
        per = int(a.max_s * bench.SR)
        x = x[:per]
        for k in range(len(x) // n):
            for vi, (v, run) in enumerate(chains.items()):
                r = rec[vi]
                run(x[k * n:(k + 1) * n])  # resets the chain (and the recorder) first
                L, m, var, ok, sp = (np.array(q) for q in zip(*r.frames))
                out["L"].append(L.astype(np.float16))
                out["m"].append(m.astype(np.float16))
                out["v"].append(var.astype(np.float32))
                out["valid"].append(ok)
                out["speech"].append(sp)
                out["spk"].append(sid[f"{it.source}:{it.speaker}"])
                out["view"].append(vi)
        if j % 25 == 0:
            print(f"{j}/{len(items)} recordings, {len(out['spk'])} chunks, {time.time() - t0:.0f} s", flush=True)
    np.savez_compressed(a.out, **{k: np.stack(v) for k, v in out.items()}, speakers=np.array(spk),
                        views=np.array(list(a.view)), held=np.array(sorted(held)))
    print(f"{len(out['spk'])} chunks of {len(spk)} speakers -> {a.out} ({time.time() - t0:.0f} s)")
    return 0


def capture_items(max_items: int = 0) -> list:
    """The recordings ``capture`` reads, in its order: train-split speech of speakers the benchmark does not attack."""
    from resculpt.models import data

    held = eval_speakers()
    items = [it for it in data.select("speech", "train") if f"{it.source}:{it.speaker}" not in held]
    return items[:max_items] if max_items else items


WHISPER_HOP_S = 0.02        # one Whisper encoder frame: 20 ms, four of the split's 5 ms frames
CHUNKS_PER_WINDOW = 10      # 10 chunks of 2.8 s in one 30 s Whisper window


def capture_content(a) -> int:
    """Whisper tiny.en's encoder output for every chunk ``capture`` rendered, from the original (unrendered) audio:
    the content targets of ``train --content``. Writes (chunks, 140, 384) float16, chunk k being rows
    k * views .. k * views + views - 1 of the levels capture."""
    import ctranslate2
    from faster_whisper.feature_extractor import FeatureExtractor
    from resculpt.models import data

    bench.one_thread()
    # the benchmark's recogniser: its weights, offline, int8 on one thread
    model = ctranslate2.models.Whisper(bench.ASR().path, device="cpu", compute_type="int8", intra_threads=1)
    fe = FeatureExtractor(feature_size=80)
    n = int(bench.SEG_S * bench.SR)
    per_chunk = round(bench.SEG_S / WHISPER_HOP_S)
    chunks = []
    for it in capture_items(a.items):
        x, _ = data.load(it, sample_rate=bench.SR)
        x = x[: int(a.max_s * bench.SR)]
        chunks += [x[k * n:(k + 1) * n] for k in range(len(x) // n)]
    out = np.zeros((len(chunks), per_chunk, 384), np.float16)
    t0 = time.time()
    for i in range(0, len(chunks), CHUNKS_PER_WINDOW):
        group = chunks[i:i + CHUNKS_PER_WINDOW]
        mel = fe(np.concatenate(group).astype(np.float32), padding=30 * bench.SR)[:, :3000]
        enc = np.array(model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32)),
                                    to_cpu=True))[0]
        for j in range(len(group)):
            out[i + j] = enc[j * per_chunk:(j + 1) * per_chunk]
    levels = np.load(a.levels)
    if len(levels["spk"]) != len(chunks) * len(levels["views"]):
        raise SystemExit(f"{a.levels} has {len(levels['spk'])} rows, not {len(chunks)} chunks x {len(levels['views'])} views")
    np.savez(a.out, W=out)
    print(f"{len(chunks)} chunks -> {a.out} ({time.time() - t0:.0f} s)")
    return 0


def content_targets(path, spk_rows, n_views, fit_rows, dims):
    """(chunks, 140, dims) float32: the Whisper targets with each speaker's mean frame removed (what stays the same
    through a speaker's speech is not content), projected on their ``dims`` first principal components over the
    ``fit_rows`` (levels rows: the training chunks) and whitened, so every dimension weighs the same and an MSE of 1
    is no better than predicting zero."""
    W = np.load(path)["W"].astype(np.float32)
    spk = spk_rows[::n_views]
    for s in np.unique(spk):
        W[spk == s] -= W[spk == s].mean((0, 1))
    fit = np.unique(np.asarray(fit_rows) // n_views)
    X = W[fit].reshape(-1, W.shape[-1])
    mu = X.mean(0)
    _, sv, vt = np.linalg.svd(X - mu, full_matrices=False)
    proj = vt[:dims].T / (sv[:dims] / math.sqrt(len(X)))
    return ((W - mu) @ proj).astype(np.float32)


# -- train --------------------------------------------------------------------------------------------------
RECIPE = ("batch", "segment", "code", "noise", "adv", "adv_ramp", "adv_kind", "init", "lr", "seed", "val_every",
          "content", "content_data", "content_dims", "content_on")


def load_data(path):
    d = np.load(path)
    L, m, v = d["L"].astype(np.float32), d["m"].astype(np.float32), d["v"]
    f, z = zip(*(features(L[i], m[i], v[i], d["valid"][i], d["speech"][i]) for i in range(len(L))))
    return np.stack(f), np.stack(z), (d["speech"] & d["valid"]).astype(np.float32), d["spk"], len(d["speakers"])


def val_chunks(n: int, rng) -> np.ndarray:
    """(n,) bool: a training run's validation chunks, 8 % drawn from ``rng`` (the run's seeded generator, first
    draw), at least one."""
    val = rng.random(n) < 0.08
    val[0] = True
    return val


def train(a) -> int:
    import torch

    torch.set_num_threads(1)
    run = Path(a.run)
    ck = run / "ckpt.pt"
    st = torch.load(ck, weights_only=False) if ck.exists() else None
    if st is not None:  # a resumed run keeps its recipe: only the budget comes from this command line
        for k in RECIPE:
            setattr(a, k, st["args"].get(k, {"adv_kind": "pooled", "init": "", "content": 0.0, "content_data": "",
                                              "content_dims": 32, "content_on": "code"}.get(k)))
    F, Z, S, spk, n_spk = load_data(a.data)
    rng = np.random.default_rng(a.seed)
    val = val_chunks(len(F), rng)
    tr = np.flatnonzero(~val)
    va = np.flatnonzero(val)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(a.seed)
    n_views = len(np.load(a.data)["views"])
    C_t = content_targets(a.content_data, spk, n_views, tr, a.content_dims) if a.content_data else None
    net = build_net(n_spk, a.code, adv=a.adv_kind, content=a.content_dims if a.content_data else 0,
                    content_on=a.content_on)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    step, log = 0, run / "log.jsonl"
    if st is None and a.init:  # a new run from another's encoder, decoder and speaker table; its own adversary
        init = torch.load(a.init, weights_only=False)["net"]
        net.load_state_dict({k: v for k, v in init.items() if not k.startswith("adv")}, strict=False)
    if st is not None:
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
    T = F.shape[1]
    seg = min(a.segment, T)
    t_end = time.time() + 60 * a.minutes

    def batch(idx, crop):
        # with content targets, segments start on a Whisper frame (every 4th frame) and span whole ones
        if C_t is None:
            i0 = rng.integers(0, T - seg + 1, len(idx)) if crop else np.zeros(len(idx), int)
            ln = seg if crop else T
        else:
            i0 = 4 * rng.integers(0, (T - seg) // 4 + 1, len(idx)) if crop else np.zeros(len(idx), int)
            ln = (seg if crop else min(T, 4 * C_t.shape[1])) // 4 * 4
        f = torch.from_numpy(np.stack([F[i, s:s + ln] for i, s in zip(idx, i0)]))
        z = torch.from_numpy(np.stack([Z[i, s:s + ln] for i, s in zip(idx, i0)]))
        sp = torch.from_numpy(np.stack([S[i, s:s + ln] for i, s in zip(idx, i0)]))
        w = None if C_t is None else torch.from_numpy(
            np.stack([C_t[i // n_views, s // 4:(s + ln) // 4] for i, s in zip(idx, i0)]))
        return f, z, sp, torch.from_numpy(spk[idx].astype(np.int64)), w

    def losses(f, z, sp, y, lam, noise, w=None):
        c, _ = net.encode(f)
        cn = c + noise * torch.randn_like(c) if noise > 0 else c
        zh, _ = net.decode(cn, net.spk(y), f[..., 32])
        rec = ((zh - z).abs().mean(-1) * sp).sum() / sp.sum().clamp_min(1.0)
        logits = net.adversary(c, sp, lam)
        adv = torch.nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        src = {"code": cn, "decoded": zh, "input": f[..., :32]}[a.content_on]
        con = torch.zeros(()) if w is None else ((net.content_head(src, a.content) - w) ** 2).mean()
        return rec, adv, acc, con

    while time.time() < t_end and step < a.steps:
        lam = a.adv * min(1.0, step / max(a.adv_ramp, 1))
        f, z, sp, y, w = batch(rng.choice(tr, a.batch), True)
        rec, adv, acc, con = losses(f, z, sp, y, lam, a.noise, w)
        opt.zero_grad()
        # the reversal makes adv's gradient ascend on the encoder; con reaches it scaled by --content
        # (the head's own gradient counts in the clip below, so even at W 0 it can shorten the net's step: the
        # control of a content run is a W 0 run with the head, not a run without it)
        (rec + adv + con).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        if step % a.val_every == 0:
            with torch.no_grad():
                f, z, sp, y, w = batch(va, False)
                vr, _, vacc, vcon = losses(f, z, sp, y, 0.0, 0.0, w)
                # identity floor: how far the input z-scores are from a constant 0 (the statistical step)
                floor = ((z.abs().mean(-1) * sp).sum() / sp.sum()).item()
            row = {"step": step, "rec": round(rec.item(), 4), "adv": round(adv.item(), 3), "acc": round(acc.item(), 3),
                   "lam": round(lam, 3), "val_rec": round(vr.item(), 4), "val_adv_acc": round(vacc.item(), 3),
                   "val_zero_rec": round(floor, 4), "chance": round(1.0 / n_spk, 4)}
            if C_t is not None:  # whitened targets: 1 is what predicting zero scores
                row.update(content=round(con.item(), 4), val_content=round(vcon.item(), 4))
            with open(log, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(row, flush=True)
    torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(), "cfg": net.cfg, "args": vars(a)}, ck)
    print(f"saved step {step} -> {ck}")
    return 0


# -- bench ----------------------------------------------------------------------------------------------------
_LEARNED = {"on": "", "net": None}
MODES = ("learned", "flat")


class Learned(_ORIG):
    """The dynamics step with the learned split's z-scores in place of the input's on speech frames (mode
    "learned"), or with every speech frame's z-scores 0 (mode "flat": each band held at its long-term target, the
    trivial way to take every level movement away, content included: the control the net must beat on STOI)."""

    def __init__(self, freqs_hz, channels, frame_rate_hz, split_weights=None):
        super().__init__(freqs_hz, channels, frame_rate_hz)
        self.on = _LEARNED["on"]
        self.h = [None] * channels
        if self.on == "learned":
            import torch

            net = _LEARNED["net"]
            self.e = net.spk.weight.mean(0, keepdim=True).detach()
            self.torch = torch

    def reset(self):
        super().reset()
        if hasattr(self, "h"):
            self.h = [None] * len(self.h)

    def process(self, row, ch, share, tilt, speech, split=0.0, max_db=D.MAX_DB, center=0.0, spread=0.0,
                pause_cut_db=0.0, lift_snr_db=0.0, sub_db=0.0, mid=1.0):
        floor = dict(pause_cut_db=pause_cut_db, lift_snr_db=lift_snr_db, sub_db=sub_db)
        if not self.on:
            return super().process(row, ch, share, tilt, speech, 0.0, max_db, **floor)
        self._L[:] = np.nan
        # statistics, the range, the pause cut's state and the noise floor only: at share 0 the row is left as it is
        super().process(row, ch, 0.0, tilt, speech, 0.0, max_db, **floor)
        L, m, v, n = self._L.copy(), self._mean[ch], self._var[ch], self._n[ch]
        valid = n > 0 and np.isfinite(L).all()
        if self.on == "flat":
            zh = np.zeros((1, 1, 32), np.float32)
        else:
            zh = self._step(L, m, v, valid, speech, ch)
        if not valid:
            return
        t = self._tgt + np.float32(m.mean())
        if speech:
            if self.on == "learned" and (center > 0.0 or spread > 0.0):
                np.copyto(self._zh, zh[0, 0])              # the stage's standardisation of the z-scores
                self._standardise(ch, center, spread)
                zh = self._zh[None, None]
            swing = zh[0, 0] * self._std
            if mid < 1.0:   # the stage's anon.split_mid_pct: the speaker's own deviation for the rest there
                self._split_shares(1.0, mid)
                swing = self._sw * swing + self._so * (L - m)
            t = t + swing
        else:
            t = t + L - m
        t = np.clip(t - L, self._lo, self._hi)
        if lift_snr_db > 0.0:
            self._lift_cap(t, ch, lift_snr_db)                      # the stage's floor options, stepped above
        self._pauses(t, ch, speech, pause_cut_db, advance=False)   # the stage's pause handling, stepped above
        if sub_db > 0.0:
            self._subtract(t, ch, sub_db)
        t = t * np.float32(share * math.log(10.0) / 20.0)
        row *= np.exp(self._s @ t).astype(np.complex64)

    def _step(self, L, m, v, valid, speech, ch):
        f, _ = features(L[None], m[None], v[None], np.array([valid]), np.array([bool(speech)]))
        torch = self.torch
        net = _LEARNED["net"]
        with torch.no_grad():
            ft = torch.from_numpy(f)[None]
            c, he = net.encode(ft, None if self.h[ch] is None else self.h[ch][0])
            zh, hd = net.decode(c, self.e, ft[..., 32], None if self.h[ch] is None else self.h[ch][1])
        self.h[ch] = (he, hd)
        return zh.numpy()


def _chain_system(spec, params=None, random_seed=False, _orig=bench.chain_system):
    mode = ""
    if isinstance(spec, str) and "+" in spec:
        spec, mode = spec.rsplit("+", 1)
        if mode not in MODES:
            raise SystemExit(f"+{mode}: not a mode ({', '.join(MODES)})")
    _LEARNED["on"] = mode
    try:
        return _orig(spec, params, random_seed)
    finally:
        _LEARNED["on"] = ""


def run_bench(a, rest) -> int:
    import torch

    st = torch.load(a.ckpt, weights_only=False)
    net = build_net(**st["cfg"])
    net.load_state_dict(st["net"])
    net.eval()
    _LEARNED["net"] = net
    D.BandDynamics = Learned
    bench.chain_system = _chain_system
    rc = bench.main(rest)
    out = Path(rest[rest.index("--out") + 1]) if "--out" in rest else bench.OUT
    if rc == 0 and out.exists():  # the result names the command that made it
        out.write_text(out.read_text().replace(
            "Generated by `benchmarks/anonymity.py", f"Generated by `scripts/anon_learned_levels.py bench --ckpt {a.ckpt}", 1))
    return rc


def export_weights(net, path: Path, meta: dict, n_ref: int = 200, seed: int = 0) -> str:
    """Write the torch net's encoder and decoder (build_net's LevelSplit) with the
    average speaker folded into the decoder's bias, its metadata and a reference input/output pair; returns
    the weights' sha256. Asserts (level_split.check) that the stage's SplitNet reproduces torch on the reference input (1e-4)."""
    import torch

    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    C = net.cfg["code"]
    e = sd["spk.weight"].mean(0)
    dw = sd["dinp.weight"]                             # (96, C + E + 1): [code, embedding, speech]
    w = {"inp_w": sd["inp.weight"], "inp_b": sd["inp.bias"],
         "enc_wi": sd["enc.weight_ih_l0"], "enc_wh": sd["enc.weight_hh_l0"],
         "enc_bi": sd["enc.bias_ih_l0"], "enc_bh": sd["enc.bias_hh_l0"],
         "code_w": sd["code.weight"], "code_b": sd["code.bias"],
         "dinp_w": np.concatenate([dw[:, :C], dw[:, -1:]], 1), "dinp_b": sd["dinp.bias"] + dw[:, C:-1] @ e,
         "dec_wi": sd["dec.weight_ih_l0"], "dec_wh": sd["dec.weight_hh_l0"],
         "dec_bi": sd["dec.bias_ih_l0"], "dec_bh": sd["dec.bias_hh_l0"],
         "out_w": sd["out.weight"], "out_b": sd["out.bias"]}
    w = {k: np.ascontiguousarray(v, np.float32) for k, v in w.items()}
    rng = np.random.default_rng(seed)
    ref_in = np.zeros((n_ref, level_split.N_IN), np.float32)
    ref_in[:, :32] = np.clip(rng.normal(0.0, 1.0, (n_ref, 32)), -level_split.ZCLIP, level_split.ZCLIP)
    ref_in[:, 32] = (np.arange(n_ref) // 20) % 2 == 0
    ref_in[:, 33] = np.clip(rng.normal(0.0, 0.8, n_ref), -4, 4)
    with torch.no_grad():
        ft = torch.from_numpy(ref_in)[None]
        c, _ = net.encode(ft)
        zh, _ = net.decode(c, torch.from_numpy(e)[None], ft[..., 32])
    ref_out = zh[0].numpy().astype(np.float32)
    meta = dict(meta, format=level_split.FORMAT, weights_sha256=level_split.weights_sha256(w), code=C)
    np.savez(path, **w, meta_json=np.array(json.dumps(meta, sort_keys=True)), ref_in=ref_in, ref_out=ref_out)
    level_split.check(Path(path))  # the NumPy net matches torch on the reference input
    return meta["weights_sha256"]



def export(a) -> int:
    import torch

    st = torch.load(a.ckpt, weights_only=False)
    net = build_net(**st["cfg"])
    net.load_state_dict(st["net"])
    net.eval()
    meta = {"model": "anon-levels", "run": str(Path(a.ckpt).parent), "step": int(st["step"]),
            "train_args": {k: v for k, v in st["args"].items() if k not in ("cmd",)},
            "speakers_in_table": int(st["cfg"]["n_spk"])}
    sha = export_weights(net, Path(a.out), meta)
    print(f"step {st['step']} -> {a.out} (weights sha256 {sha})")
    return 0


# -- probe ----------------------------------------------------------------------------------------------------
def probe(a) -> int:
    """A fresh speaker classifier trained on a frozen encoder's code (or on the input features with --ckpt
    input): how much of the speaker is left in what the decoder is given, read by a time-aware reader (a GRU
    over the code, pooled over speech frames) and by the pooled mean and spread the shipped adversary reads.
    Chunks are held out by recording chunk (every preset's render of a held-out chunk is held out)."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    F, _, S, spk, n_spk = load_data(a.data)
    views = len(np.load(a.data)["views"])
    if a.ckpt == "input":
        X = F
    else:
        st = torch.load(a.ckpt, weights_only=False)
        net = build_net(**st["cfg"])
        net.load_state_dict(st["net"])
        net.eval()
        with torch.no_grad():
            X = np.concatenate([net.encode(torch.from_numpy(F[i:i + 64]))[0].numpy() for i in range(0, len(F), 64)])
    rng = np.random.default_rng(a.seed)
    groups = np.arange(len(X)) // views
    val = (rng.random(groups.max() + 1) < 0.15)[groups]
    tr, va = np.flatnonzero(~val), np.flatnonzero(val)
    if len(va) == 0 or len(tr) == 0:
        raise SystemExit(f"probe: {len(tr)} training and {len(va)} held-out chunks; it needs both")
    C, T, seg = X.shape[2], X.shape[1], min(280, X.shape[1])

    class Reader(nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.kind = kind
            self.rnn = nn.GRU(C, 64, batch_first=True) if kind == "gru" else None
            self.head = nn.Sequential(nn.Linear(128 if kind == "gru" else 2 * C, 128), nn.ReLU(), nn.Linear(128, n_spk))

        def forward(self, x, sp):
            if self.rnn is not None:
                x, _ = self.rnn(x)
            return self.head(speech_stats(x, sp))

    rows = []
    for kind in ("pooled", "gru"):
        m = Reader(kind)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        t_end, step, best = time.time() + 60 * a.minutes / 2, 0, (0.0, 0.0)

        def held_out(m):
            with torch.no_grad():
                lg = torch.cat([m(torch.from_numpy(X[va[i:i + 64]]), torch.from_numpy(S[va[i:i + 64]]))
                                for i in range(0, len(va), 64)])
            y = torch.from_numpy(spk[va].astype(np.int64))
            return ((lg.argmax(-1) == y).float().mean().item(),
                    (lg.topk(min(5, n_spk), -1).indices == y[:, None]).any(-1).float().mean().item())

        while time.time() < t_end and step < a.steps:
            idx = rng.choice(tr, 32)
            i0 = rng.integers(0, T - seg + 1, len(idx))
            x = torch.from_numpy(np.stack([X[i, s:s + seg] for i, s in zip(idx, i0)]))
            sp = torch.from_numpy(np.stack([S[i, s:s + seg] for i, s in zip(idx, i0)]))
            loss = nn.functional.cross_entropy(m(x, sp), torch.from_numpy(spk[idx].astype(np.int64)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 250 == 0:
                best = max(best, held_out(m))
        best = max(best, held_out(m))
        rows.append((kind, step, best))
        print(f"{a.ckpt} reader {kind}: {step} steps, held-out chunks top-1 {best[0]:.3f} top-5 {best[1]:.3f}", flush=True)
    if a.out:
        new = not Path(a.out).exists()
        with open(a.out, "a") as fh:
            if new:
                fh.write("# Speaker left in the split's code: a fresh classifier on frozen features\n\n"
                         f"Generated by `scripts/anon_learned_levels.py probe` (data {a.data}, {n_spk} speakers, "
                         f"{len(tr)} training / {len(va)} held-out chunks of {T} frames, chance {1 / n_spk:.4f}; "
                         "best held-out accuracy over the run, 2.8 s chunks).\n\n"
                         "| features | reader | steps | top-1 | top-5 |\n|---|---|---|---|---|\n")
            for kind, step, (t1, t5) in rows:
                fh.write(f"| {a.ckpt} ({C} per frame) | {kind} | {step} | {t1:.3f} | {t5:.3f} |\n")
    return 0


def embedding_use(a) -> int:
    """How much each checkpoint's decoder uses the speaker: on the training run's validation chunks (the same
    8 % split, seed 0), the L1 on speech frames (z units) of the z-scores decoded with the chunk's own speaker's
    embedding and with the table's mean (the stage's average speaker) against the input, the two decodings
    against each other, and the code read back (the encoder on the mean-speaker decoding) against the code."""
    import torch

    torch.set_num_threads(1)
    F, Z, S, spk, _ = load_data(a.data)
    va = np.flatnonzero(val_chunks(len(F), np.random.default_rng(0)))
    rows = []
    for ck in a.ckpt:
        st = torch.load(ck, weights_only=False)
        net = build_net(**st["cfg"])
        net.load_state_dict(st["net"])
        net.eval()
        f, z, sp = (torch.from_numpy(q[va]) for q in (F, Z, S))
        with torch.no_grad():
            c, _ = net.encode(f)
            zt, _ = net.decode(c, net.spk(torch.from_numpy(spk[va].astype(np.int64))), f[..., 32])
            za, _ = net.decode(c, net.spk.weight.mean(0, keepdim=True).expand(len(va), -1), f[..., 32])
            f2 = f.clone()
            f2[..., :32] = za.clamp(-level_split.ZCLIP, level_split.ZCLIP)
            c2, _ = net.encode(f2)
            w = sp.sum()

            def l1(p, q):
                return float(((p - q).abs().mean(-1) * sp).sum() / w)

            mu = (c * sp[..., None]).sum((0, 1)) / w
            rows.append((ck, int(st["step"]), c.shape[-1], l1(zt, z), l1(za, z), l1(zt, za), l1(c2, c), l1(c, mu)))
        print(rows[-1], flush=True)
    lines = ["# How much the split's decoder uses the speaker embedding", "",
             f"Generated by `scripts/anon_learned_levels.py embedding-use --ckpt {' --ckpt '.join(a.ckpt)}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {len(va)} validation chunks of the training "
             "run's split (the training speakers, 2.8 s each), L1 over speech frames in z units (decoding zeros: "
             f"{l1(torch.zeros_like(z), z):.3f}).", "",
             "| checkpoint | step | code | own speaker vs input | average speaker vs input | own vs average | "
             "code read back vs code | code's spread (L1 to its mean) |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {ck} | {s} | {c} | {a1:.3f} | {a2:.3f} | {a3:.3f} | {a4:.3f} | {a5:.3f} |"
              for ck, s, c, a1, a2, a3, a4, a5 in rows]
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--out", default="runs/anon-levels-data.npz")
    c.add_argument("--view", action="append", default=None, help=f"presets rendered (repeatable; default {', '.join(VIEWS)})")
    c.add_argument("--max-s", type=float, default=30.0, help="at most this much of each recording")
    c.add_argument("--items", type=int, default=0, help="only the first N recordings (a smoke test)")
    t = sub.add_parser("train")
    t.add_argument("--data", default="runs/anon-levels-data.npz")
    t.add_argument("--run", default="models/training/anon-levels")
    t.add_argument("--minutes", type=float, default=30.0)
    t.add_argument("--steps", type=int, default=10**9)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--segment", type=int, default=280, help="frames per training segment")
    t.add_argument("--code", type=int, default=6)
    t.add_argument("--noise", type=float, default=0.1)
    t.add_argument("--adv", type=float, default=1.0, help="gradient-reversal weight once ramped")
    t.add_argument("--adv-ramp", type=int, default=2000)
    t.add_argument("--adv-kind", choices=("pooled", "gru"), default="pooled",
                   help="the adversary reads the code's pooled mean and spread, or a GRU over its time course")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--init", default="", help="a new run starts from this checkpoint's net, adversary excepted")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-every", type=int, default=250)
    t.add_argument("--content-data", default="", help="Whisper targets from capture-content: adds the content head")
    t.add_argument("--content", type=float, default=0.0,
                   help="weight of the content head's gradient on the encoder (0: the head only reads the code)")
    t.add_argument("--content-dims", type=int, default=32, help="principal components of the Whisper targets")
    t.add_argument("--content-on", choices=("code", "decoded", "input"), default="code",
                   help="the content head reads the code, the decoded z-scores (what the stage renders) or the "
                        "input z-scores (a reference: how much of the targets the band levels hold)")
    w = sub.add_parser("capture-content", help="Whisper encoder targets for the chunks of a levels capture")
    w.add_argument("--levels", default="runs/anon-levels-data.npz", help="the capture the targets belong to")
    w.add_argument("--out", default="runs/anon-levels-content.npz")
    w.add_argument("--max-s", type=float, default=30.0, help="as the capture was made")
    w.add_argument("--items", type=int, default=0, help="as the capture was made")
    b = sub.add_parser("bench", help="benchmarks/anonymity.py with +learned presets; other arguments are its own")
    b.add_argument("--ckpt", required=True)
    x = sub.add_parser("export", help="the encoder and decoder, average speaker folded in, for the stage")
    x.add_argument("--ckpt", required=True)
    x.add_argument("--out", default="dsp/voice/anon_levels.npz")
    q = sub.add_parser("probe", help="a fresh speaker classifier on a frozen checkpoint's code (or 'input')")
    q.add_argument("--ckpt", required=True, help="a checkpoint, or 'input' for the encoder's input features")
    q.add_argument("--data", default="runs/anon-levels-data.npz")
    q.add_argument("--minutes", type=float, default=10.0, help="shared by the two readers")
    q.add_argument("--steps", type=int, default=10**9, help="at most this many steps per reader")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default="", help="append the rows to this markdown file")
    e = sub.add_parser("embedding-use", help="how far the decoder's output moves with the speaker embedding")
    e.add_argument("--ckpt", action="append", required=True, help="a checkpoint (repeatable)")
    e.add_argument("--data", default="runs/anon-levels-data.npz")
    e.add_argument("--out", default="", help="write the table to this markdown file")
    a, rest = ap.parse_known_args(argv)
    if a.cmd == "capture":
        a.view = a.view or list(VIEWS)
        return capture(a)
    if a.cmd == "capture-content":
        return capture_content(a)
    if a.cmd == "train":
        return train(a)
    if a.cmd == "export":
        return export(a)
    if a.cmd == "probe":
        return probe(a)
    if a.cmd == "embedding-use":
        return embedding_use(a)
    return run_bench(a, rest)


if __name__ == "__main__":
    sys.exit(main())
