"""The issue's metrics (PESQ-WB, STOI, SI-SDR, DNSMOS OVRL; ``benchmarks/denoise.py``'s ``metrics``) for mask
*training checkpoints* run in torch, for nets the stage cannot run yet (e.g. one with the phase-advance input).

Each checkpoint's net runs on the 48 fixed validation mixtures through the training's band domain (``BandIO`` at
16 kHz, the 10 ms window, denoise, full strength: ``train.evaluate``'s path), with no reduction limit and none of
the stage's controls, so its rows compare with each other (include the shipped checkpoint as the reference row),
not with ``benchmarks/denoise.py --ablation``'s rows through the stage.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/mask_torch_scores.py \
        shipped=<13822 ckpt> ctrl=models/training/mask-phase-ctrl/ckpt.pt ... --out benchmarks/results/X.md
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent


def _module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def net_of(spec: str):
    """(net, checkpoint dict) of a checkpoint path or ``REV:PATH`` (``mask_average.load``)."""
    from resculpt.models.mask.net import MaskNet

    ck = _module("mask_average", REPO / "scripts" / "mask_average.py").load(spec)
    net = MaskNet(**ck["net_kwargs"])
    net.load_state_dict(ck["net"])
    return net.eval(), ck


@torch.no_grad()
def outputs(net, items):
    """The net's denoised waveforms (list of (N,) float32) for items with ``noisy`` (N,) at 16 kHz."""
    from resculpt.models.mask.band_io import BandIO
    from resculpt.models.mask.train import masked, phase_of

    io = BandIO(160, 80)
    x = torch.tensor(np.stack([it["noisy"] for it in items]))
    cond = torch.tensor([[0.0, 1.0]]).expand(x.shape[0], 2)
    spec, feat = io.analyse(x)
    gains, df = masked(net, feat, io.fine(x) if net.n_fine else None, cond, phase_of(net, spec))
    y = io.synth(spec, gains, x.shape[1], df, net.df_order, net.lookahead)
    return [r.numpy().astype(np.float32) for r in y]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpts", nargs="+", help="NAME=CKPT (a path or REV:PATH of a committed checkpoint)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    from resculpt.models.mask.mixing import validation_set

    torch.set_num_threads(1)
    bench = _module("denoise_bench", REPO / "benchmarks" / "denoise.py")
    items = validation_set()
    res = {}
    for spec in a.ckpts:
        name, ck = spec.split("=", 1)
        net, c = net_of(ck)
        rows = [bench.metrics(y, it["clean"]) for y, it in zip(outputs(net, items), items)]
        res[name] = {"step": int(c.get("step", -1)), **{k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]},
                     "per_snr": {f"{s:g}": {k: float(np.nanmean([r[k] for r, it in zip(rows, items)
                                                                  if it["snr_db"] == s])) for k in rows[0]}
                                 for s in sorted({it["snr_db"] for it in items})}}
        print(name, {k: v for k, v in res[name].items() if k != "per_snr"}, flush=True)
    L = [f"Command: `scripts/mask_torch_scores.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
         f"{len(items)} validation mixtures (SNR 0/5/10/15 dB), each checkpoint's net in torch through the training's "
         "band domain (16 kHz, 10 ms window, denoise, full strength, no reduction limit): compare rows with each "
         "other, not with the stage's.", "",
         "| checkpoint | step | PESQ-WB | STOI | SI-SDR dB | DNSMOS OVRL | STOI at 0 / 5 dB |", "|---|---|---|---|---|---|---|"]
    for k, r in res.items():
        L.append(f"| {k} | {r['step']} | {r['pesq_wb']:.3f} | {r['stoi']:.3f} | {r['si_sdr']:.2f} | "
                 f"{r['dnsmos_ovrl']:.3f} | {r['per_snr']['0']['stoi']:.3f} / {r['per_snr']['5']['stoi']:.3f} |")
    sys.path.insert(0, str(REPO / "scripts"))
    from resculpt_bench_io import write_result

    print("\n".join(L))
    write_result(a.out, L, res)


if __name__ == "__main__":
    main()
