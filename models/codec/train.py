"""Train the codec-repair envelope net on the pairs of ``resculpt.models.codec.data`` (resumable, seeded).

    python -m resculpt.models.codec.train --pairs runs/codec-pairs --run models/training/codec-gen1 \
        --steps 6000 [--minutes M]

Loss: weighted pinball loss (--quantile; 0.5 = L1) between predicted and clean band levels (units of 20 dB;
weights from the pairs: rebuilt bands 1, kept bands 0.3, quiet frames 0.1), on random windows of --seq frames, batch --batch, Adam with a cosine
schedule over --steps. The run folder holds ckpt.pt (net, optimiser, step, RNG; a few hundred kB: committed, so
a later session continues), log.jsonl (one line per validation) and summary.json. Validation: the same loss
on the val-split pairs (other speakers) run whole from zero state, reported in dB for the rebuilt and the
kept bands, and for the rebuilt bands per codec.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .net import CodecEnvNet


def load_pairs(folder: Path) -> list[dict]:
    out = []
    for p in sorted(folder.glob("*.npz")):
        z = np.load(p)
        out.append({k: z[k] for k in ("feat", "target", "weight", "rule") if k in z} | {"codec": str(z["codec"])})
    return out


def batch(pairs, rng, n: int, seq: int):
    f, t, w = [], [], []
    for _ in range(n):
        p = pairs[rng.integers(len(pairs))]
        T = p["feat"].shape[0]
        i = int(rng.integers(0, max(1, T - seq + 1)))
        sl = slice(i, i + seq)
        pad = seq - min(seq, T - i)
        f.append(np.pad(p["feat"][sl], ((0, pad), (0, 0))))
        t.append(np.pad(p["target"][sl], ((0, pad), (0, 0))))
        w.append(np.pad(p["weight"][sl], ((0, pad), (0, 0))))
    return (torch.from_numpy(np.stack(f)), torch.from_numpy(np.stack(t)), torch.from_numpy(np.stack(w)))


def wl1(y, t, w, quantile: float = 0.5):
    """Weighted pinball loss of quantile ``quantile`` (0.5: half the L1), normalised by the weights; times 2, so
    that 0.5 reads as the mean absolute error."""
    d = t - y
    return 2.0 * (w * torch.maximum(quantile * d, (quantile - 1.0) * d)).sum() / w.sum().clamp_min(1e-6)


@torch.no_grad()
def validate(net, pairs) -> dict:
    """Mean absolute band-level error in dB over the val pairs: rebuilt bands (weight 1), kept bands (0.3),
    and rebuilt per codec; the error of the decoded kept levels themselves (kept_identity_db); and, for pairs
    that record it, the slope/level rule's error on the frames it rebuilds beside the net's on the same frames."""
    acc = {}

    def add(k, e, n):
        s = acc.setdefault(k, [0.0, 0.0])
        s[0] += e
        s[1] += n

    for p in pairs:
        f, t, w = (torch.from_numpy(p[k])[None] for k in ("feat", "target", "weight"))
        y, _ = net(f)
        e = (y - t).abs() * 20.0
        reb = (w > 0.999) & (f[..., 32:64] == 0)  # rebuilt bands of frames that are not quiet (weight 1)
        kept = (f[..., 32:64] > 0) & (w > 0)
        add("rebuilt_db", float((e * reb).sum()), float(reb.sum()))
        add("rebuilt_bias_db", float((((y - t) * 20.0) * reb).sum()), float(reb.sum()))
        add(f"rebuilt_db[{p['codec']}]", float((e * reb).sum()), float(reb.sum()))
        add("kept_db", float((e * kept).sum()), float(kept.sum()))
        ei = (f[..., :32] - t).abs() * 20.0
        add("kept_identity_db", float((ei * kept).sum()), float(kept.sum()))
        if "rule" in p:  # the slope/level rule on the frames it rebuilds
            ru = torch.from_numpy(p["rule"])[None]
            ok = reb & torch.isfinite(ru)
            er = torch.where(ok, (ru - t).abs() * 20.0, torch.zeros_like(t))
            add("rebuilt_rule_db", float(er.sum()), float(ok.sum()))
            add("rebuilt_on_rule_frames_db", float((e * ok).sum()), float(ok.sum()))
    return {k: round(s / n, 3) for k, (s, n) in sorted(acc.items()) if n > 0}  # a codec with nothing rebuilt: absent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="runs/codec-pairs")
    ap.add_argument("--run", default="models/training/codec-gen1")
    ap.add_argument("--steps", type=int, default=6000, help="planned steps (the cosine schedule's length)")
    ap.add_argument("--minutes", type=float, default=0.0, help="stop (saving) after this much wall time (0: none)")
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop (saving) at this step without changing the schedule (0: at --steps)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=300, help="frames per training window (1.5 s at the 5 ms hop)")
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--quantile", type=float, default=0.5,
                    help="the quantile of the clean level the net predicts (pinball loss; 0.5: the median). Below "
                         "0.5 the net is conservative where it is unsure: an over-loud rebuilt band costs PESQ-WB "
                         "far more than a quiet one")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(a.run)
    run.mkdir(parents=True, exist_ok=True)
    # every folder train* / val* (codec pairs, band-limited pairs)
    train = [q for d in sorted(Path(a.pairs).glob("train*")) for q in load_pairs(d)]
    val = [q for d in sorted(Path(a.pairs).glob("val*")) for q in load_pairs(d)]
    if not train or not val:
        print(f"no pairs under {a.pairs} (python -m resculpt.models.codec.data)", file=sys.stderr)
        return 2
    torch.manual_seed(a.seed)
    net = CodecEnvNet(a.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    rng = np.random.default_rng(a.seed)
    step, wall = 0, 0.0
    ck = run / "ckpt.pt"
    if ck.exists():
        s = torch.load(ck, weights_only=False)
        net.load_state_dict(s["net"])
        opt.load_state_dict(s["opt"])
        step, wall = s["step"], s["wall_s"]
        rng.bit_generator.state = s["rng"]
        print(f"resumed at step {step} ({wall / 3600:.2f} h)")
    sched = lambda k: a.lr * 0.5 * (1 + math.cos(math.pi * min(k, a.steps) / a.steps))
    t0, last = time.time(), time.time()

    def save():
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng.bit_generator.state,
                    "wall_s": wall + time.time() - t0, "hidden": a.hidden}, ck)

    run_loss = 0.0
    end = min(a.steps, a.stop_at) if a.stop_at > 0 else a.steps
    while step < end:
        for g in opt.param_groups:
            g["lr"] = sched(step)
        f, t, w = batch(train, rng, a.batch, a.seq)
        y, _ = net(f)
        loss = wl1(y, t, w, a.quantile)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        run_loss += float(loss.detach()) * 20.0
        if step % a.val_every == 0 or step == end:
            v = validate(net, val)
            rec = {"step": step, "train_db": round(run_loss / a.val_every, 3), "quantile": a.quantile, **v,
                   "wall_h": round((wall + time.time() - t0) / 3600, 3)}
            run_loss = 0.0
            with open(run / "log.jsonl", "a") as log:
                log.write(json.dumps(rec) + "\n")
            nan = float("nan")
            print(f"step {step} train {rec['train_db']:.2f} dB val rebuilt {v.get('rebuilt_db', nan):.2f} kept "
                  f"{v.get('kept_db', nan):.2f} (identity {v.get('kept_identity_db', nan):.2f}) "
                  f"[{time.time() - last:.0f} s]", flush=True)
            last = time.time()
            save()
            (run / "summary.json").write_text(json.dumps(rec, indent=1) + "\n")
        if a.minutes and time.time() - t0 > a.minutes * 60:
            break
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
