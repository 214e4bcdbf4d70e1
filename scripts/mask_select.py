"""Pick between candidate mask checkpoints on *training-split* mixtures (train speakers x train noises, never the
validation split the benchmark reports): PESQ-WB and STOI of each checkpoint through the torch path, denoise
mode, 10 ms window, -30 dB floor (the model row of ``scripts/mask_diagnostics.py``, same functions), 24 mixtures
at 0/5/10/15 dB.

    .venv-bench/bin/python scripts/mask_select.py runs/p1b-fine/ckpt.pt runs/p1b-nofine/ckpt.pt
    # -> benchmarks/results/mask_select.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from mask_diagnostics import FLOOR, REPO, model_gains, pesq_stoi
from resculpt.models.mask import mixing
from resculpt.models.mask.band_io import BandIO
from resculpt.models.mask.export import load_net


def main(argv=None):
    ckpts = (argv if argv is not None else sys.argv[1:]) or [str(REPO / "runs" / "mask-main" / "ckpt.pt")]
    torch.set_num_threads(1)
    mixes = mixing.validation_set(n_utts=6, pools=mixing.load_pools("train"))
    x = torch.tensor(np.stack([v["noisy"] for v in mixes]))
    io = BandIO(160, 80)
    spec, feat = io.analyse(x)
    rows = ["| checkpoint | step | PESQ-WB | STOI |", "|---|---|---|---|"]
    for ck in ckpts:
        net, meta = load_net(Path(ck))
        y = io.synth(spec, model_gains(net, io, x, feat).clamp_min(FLOOR), x.shape[1]).numpy()
        r = pesq_stoi(mixes, y)
        rows.append(f"| `{ck}` | {meta.get('step', '?')} | {r['pesq_wb']:.3f} | {r['stoi']:.3f} |")
        print(rows[-1], flush=True)
    text = (f"Checkpoint selection on {len(mixes)} training-split mixtures (`scripts/mask_select.py`):\n\n"
            + "\n".join(rows) + "\n")
    (REPO / "benchmarks" / "results" / "mask_select.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
