"""What bounds the mask model: oracle band gains vs the trained model on the validation mixtures.

    .venv-bench/bin/python scripts/mask_diagnostics.py --ckpt runs/mask-main/ckpt.pt
    # -> benchmarks/results/mask_diagnostics.{md,json}
    .venv-bench/bin/python scripts/mask_diagnostics.py --teacher --n-val 12 --out benchmarks/results/mask_teacher_ceiling
    # the distillation ceiling: the teacher's own output and its band gains through the 24 bands

Oracle rows apply ideal gains computed from the clean target (so they are upper bounds, not systems): the ideal
band gain clip(sqrt(P_target / P_mixture), 0, 1) of the model's 24 learned bands (bands above repeat the
last, as in training), with and without the -30 dB floor of ``denoise-live``, and the ideal per-bin magnitude
gain for comparison; 10 ms window (the live STFT), 16 kHz, the first ``--n-val`` x 4 validation mixtures.
With ``--teacher``, the rows of DeepFilterNet3-LL (the distillation teacher, ``scripts/mask_teacher_cache.py``): its
output, and its band gains clip(sqrt(P_teacher / P_mixture), 0, 1) applied through the same 24 bands, exactly and as
the gains cache codes them (5-bit root, every frame coded; the cache keeps odd frames): what a student that copied
the teacher perfectly would score in this output form. The model row (with ``--ckpt``) is the checkpoint through
the same torch path (floor -30 dB; band gains only, so a net with deep-filter taps or look-ahead is not scored
whole here). "Hedging" compares the model's
gains with the ideal gains per band and frame: its mean gain where the ideal is < 0.2 (noise-dominated) and
> 0.8 (speech-dominated).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from pesq import pesq
from pystoi import stoi
from resculpt.models.mask.band_io import BandIO
from resculpt.models.mask.export import load_net
from resculpt.models.mask.mixing import validation_set

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
FLOOR = 10 ** (-30 / 20)


@torch.no_grad()
def model_gains(net, io: BandIO, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    """Band gains (B, T, 24) of a checkpoint's net on mixtures ``x`` (B, N), denoise mode, strength for the
    -30 dB floor of ``denoise-live`` (the floor itself is applied by the caller's ``clamp_min(FLOOR)``)."""
    return net(feat, io.fine(x) if net.n_fine else None, torch.tensor([[0.0, 1.0 - FLOOR]]).expand(x.shape[0], 2))


def pesq_stoi(mixes: list[dict], y) -> dict:
    """Mean PESQ-WB and STOI at 16 kHz of outputs ``y`` (B, N) against the mixtures' clean targets."""
    return {"pesq_wb": float(np.mean([pesq(16000, v["clean"], yy, "wb") for v, yy in zip(mixes, y)])),
            "stoi": float(np.mean([stoi(v["clean"], yy, 16000) for v, yy in zip(mixes, y)]))}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", help="a mask checkpoint: adds its row and the hedging line")
    ap.add_argument("--teacher", action="store_true", help="add the DeepFilterNet3-LL teacher's rows")
    ap.add_argument("--n-val", type=int, default=6, help="validation utterances (4 mixtures each)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mask_diagnostics"), help="path stem")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    val = validation_set(n_utts=a.n_val)
    x = torch.tensor(np.stack([v["noisy"] for v in val]))
    t = torch.tensor(np.stack([v["clean"] for v in val]))
    n = x.shape[1]
    io = BandIO(160, 80)
    spec, feat = io.analyse(x)
    tspec, _ = io.analyse(t)
    gt = io.ideal_gains(x, t)

    def bins_out(s):
        fr = torch.fft.irfft(s, n=io.n_fft, dim=-1) * io.win_s
        L = (fr.shape[1] - 1) * io.hop + io.n_fft
        y = torch.nn.functional.fold(fr.transpose(1, 2), (1, L), (1, io.n_fft), stride=(1, io.hop))[:, 0, 0]
        return y[:, io.n_fft - io.hop : io.n_fft - io.hop + n]

    rows = {
        "noisy input": x,
        "oracle band gains, no floor": io.synth(spec, gt, n),
        "oracle band gains, -30 dB floor": io.synth(spec, gt.clamp_min(FLOOR), n),
        "oracle per-bin magnitude gains, no floor": bins_out(spec * (tspec.abs() / (spec.abs() + 1e-9)).clamp(0, 1)),
    }
    if a.teacher:
        from mask_teacher_cache import aligned_teacher
        from resculpt.models.mask.teacher import dequantise, quantise

        run = aligned_teacher()
        yt = torch.tensor(np.stack([run(v["noisy"]) for v in val]))
        gtt = io.ideal_gains(x, yt)
        rows["DeepFilterNet3-LL output (the teacher)"] = yt
        rows["teacher's band gains, no floor"] = io.synth(spec, gtt, n)
        rows["teacher's band gains, 5-bit coded as cached"] = io.synth(spec, torch.tensor(dequantise(quantise(gtt.numpy()))), n)
    g = None
    if a.ckpt:
        net, _ = load_net(Path(a.ckpt))
        g = model_gains(net, io, x, feat)
        rows["model (checkpoint), -30 dB floor"] = io.synth(spec, g.clamp_min(FLOOR), n)
    res = {}
    for name, y in rows.items():
        y = y.detach().numpy()
        res[name] = pesq_stoi(val, y)
        print(name, res[name], flush=True)
    hedge = None
    if g is not None:
        lo, hi = gt < 0.2, gt > 0.8
        hedge = {"mean_gain_where_ideal_below_0.2": float(g[lo].mean()), "mean_gain_where_ideal_above_0.8": float(g[hi].mean()),
                 "share_below_0.2": float(lo.float().mean()), "share_above_0.8": float(hi.float().mean())}
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps({"ckpt": a.ckpt, "n_mixtures": len(val), "scores": res,
                                                    "hedging": hedge}, indent=2) + "\n")
    cmd = " ".join(["scripts/mask_diagnostics.py", *(argv if argv is not None else sys.argv[1:])])
    L = [f"Oracle bounds on {len(val)} validation mixtures (10 ms window, 16 kHz; `{cmd}`):", "",
         "| row | PESQ-WB | STOI |", "|---|---|---|"]
    L += [f"| {k} | {v['pesq_wb']:.3f} | {v['stoi']:.3f} |" for k, v in res.items()]
    if hedge:
        L += ["", f"Hedging: the model's mean band gain is {hedge['mean_gain_where_ideal_below_0.2']:.2f} where the ideal "
              f"gain is below 0.2 ({100 * hedge['share_below_0.2']:.0f} % of band-frames) and "
              f"{hedge['mean_gain_where_ideal_above_0.8']:.2f} where it is above 0.8 ({100 * hedge['share_above_0.8']:.0f} %)."]
    out.with_suffix(".md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
