"""Export a resculpt checkpoint with a weight-free switch of the generator turned on (``absolute_prior``), with its
own validation: what ``train --absolute-prior`` would start from, shipped before any step is trained on it.

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/resculpt_export_switched.py \\
        --ckpt CKPT --summary SUMMARY.json --out models/resculpt/bundle

Loads CKPT (a run's checkpoint; ``git show REV:models/training/resculpt-gen1/ckpt.pt > CKPT`` for an older one) and
SUMMARY (the run's summary.json at that step), switches the absolute prior on in the net arguments (the heads it
adds load at the identity), scores the switched net with ``train.evaluate`` on the run's 16 validation pairs
(val split, seed 1234, 3 s at 16 kHz: what the run's validation records hold), and exports it
(``models.resculpt.export``) with the summary's net arguments updated and the validation under ``exported_val``
(the model card adds it as the last record, with ``exported_note``).

``--residual-live`` also switches ``residual_live`` on (held rows, i.e. offline renders, run the absolute prior
alone; live rows add the trained residual). ``--identity-heads absolute`` / ``relative`` also sets that target
kind's own residual heads (``head_abs`` / ``df_abs``, ``head_rel`` / ``df_rel``) back to the identity (zero
weights): that kind then runs its prior alone, the other keeps what the run trained (a run that improved one kind
and not the other ships only the improvement).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from resculpt.models.resculpt import degrade
from resculpt.models.resculpt import export as E
from resculpt.models.resculpt import profile_torch as pt
from resculpt.models.resculpt.net import ResculptNet, Resculptor
from resculpt.models.resculpt.train import evaluate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/resculpt_export_switched.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--summary", required=True, help="the run's summary.json at the checkpoint's step")
    ap.add_argument("--out", required=True, help="bundle folder to write")
    ap.add_argument("--n-val", type=int, default=16)
    ap.add_argument("--residual-live", action="store_true",
                    help="also switch residual_live on: held rows (offline renders) run the absolute prior alone, "
                         "live rows prior + the trained residual (ResculptNet.residual_live)")
    ap.add_argument("--identity-heads", nargs="*", choices=("absolute", "relative"), default=[],
                    help="target kinds whose own residual heads are set back to the identity (their prior alone)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
    summary = json.loads(Path(a.summary).read_text())
    if int(summary["steps"]) != int(ck["step"]):
        raise SystemExit(f"summary of step {summary['steps']}, checkpoint at step {ck['step']}")
    kw = dict(ck["net_kwargs"], absolute_prior=True, **({"residual_live": True} if a.residual_live else {}))
    net = ResculptNet(**kw)
    net.load_state_dict(ck["net"])
    for kind in a.identity_heads:
        heads = {"absolute": ("head_abs", "df_abs"), "relative": ("head_rel", "df_rel")}[kind]
        if not hasattr(net, heads[0]):
            raise SystemExit(f"the checkpoint's net has no {kind} heads ({', '.join(heads)})")
        with torch.no_grad():
            for m in heads:
                getattr(net, m).weight.zero_()
                getattr(net, m).bias.zero_()
    sr = int(ck.get("sample_rate", 16000))
    vsrc = degrade.Source.load("val", sr)
    val = [degrade.make_pair(vsrc, 1234, i, 3.0, list(degrade.DEFAULT_OPS)) for i in range(a.n_val)]
    with torch.no_grad():
        v = evaluate(Resculptor(net, sr), pt.TorchProfiler(sr), val)
    print(json.dumps(v, indent=1), flush=True)
    summary["net_kwargs"] = kw
    summary["exported_val"] = v
    reset = "".join(f", the {k} rows' own residual heads set back to the identity" for k in a.identity_heads)
    reset += ", the absolute residual on live rows only (residual_live)" if a.residual_live else ""
    summary["exported_note"] = (f"the step-{ck['step']} weights with the absolute prior switched on at export "
                                f"(heads it adds at the identity{reset}; scripts/resculpt_export_switched.py)")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "ckpt.pt"
        torch.save(dict(ck, net_kwargs=kw, net=net.state_dict()), p)
        cfg = E.export(p, Path(a.out), summary)
    print(f"exported {a.out}: sha256 {cfg['sha256']}, export check {cfg['export_check']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
