"""Training-validation metric for the ablation checkpoints (48 fixed val mixtures, denoise, 10 ms window):
SI-SDR improvement and multi-resolution STFT loss, from models/mask/train.py:evaluate.

    .venv/bin/python scripts/mask_ablation_val.py NAME=CKPT ...   # -> benchmarks/results/ablation_val.{json,md}

(scripts/mask-ablation-eval.sh passes the same rows it scores with benchmarks/denoise.py --ablation.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from resculpt.models.mask import mixing
from resculpt.models.mask.export import load_net
from resculpt.models.mask.train import evaluate

REPO = Path(__file__).resolve().parent.parent


def main(argv=None):
    ckpts = dict(a.split("=", 1) for a in (argv if argv is not None else sys.argv[1:]))
    torch.set_num_threads(1)
    val = mixing.validation_set()
    res = {}
    for name, ck in ckpts.items():
        net, _ = load_net(REPO / ck)
        res[name] = evaluate(net, val)
        print(name, res[name], flush=True)
    out = REPO / "benchmarks" / "results" / "ablation_val"
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    rows = ["| variant | val SI-SDR improvement dB (48 mixtures) | val multi-res STFT loss |", "|---|---|---|"]
    rows += [f"| {k} | {v['si_sdr_improvement']:+.2f} | {v['mrstft']:.3f} |" for k, v in res.items()]
    out.with_suffix(".md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
