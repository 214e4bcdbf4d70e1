"""Weight averaging of mask checkpoints of one run (or of runs that branch from one checkpoint): the element-wise
mean of the generator's parameters, written as a checkpoint that ``python -m resculpt.models.mask.export``
and ``scripts/mask_generalization.py`` read. Late checkpoints of a run that has stopped improving sit around a
minimum that SGD noise keeps them from reaching; their mean often lies nearer it than any one of them.

Checkpoints are paths or ``REV:PATH`` (a committed ``ckpt.pt`` read with ``git show``, so the run's history is
the pool):

    .venv/bin/python scripts/mask_average.py --out runs/avg.pt \
        02d81e0:models/training/mask-df-live/ckpt.pt 6512774:models/training/mask-df-live/ckpt.pt ...

The output keeps the last checkpoint's settings (``net_kwargs``, ``args``, ``loss_w``) and records
``averaged_from``; it carries no optimiser state, so training does not resume from it.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def load(spec: str, repo: Path = REPO) -> dict:
    """A checkpoint dict from a path or from ``REV:PATH`` in ``repo``'s history (this repository's by default)."""
    if ":" in spec and not Path(spec).exists():
        blob = subprocess.run(["git", "-C", str(repo), "show", spec], check=True, capture_output=True).stdout
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    return torch.load(spec, map_location="cpu", weights_only=False)


def average(cks: list[dict]) -> dict:
    """The mean of the ``net`` state dicts (floating tensors averaged; the rest, e.g. normalisation buffers, must be
    equal across checkpoints and is taken from the first). Raises ValueError when architectures differ."""
    kw = cks[0]["net_kwargs"]
    keys = list(cks[0]["net"])
    for c in cks[1:]:
        if list(c["net"]) != keys or any(c["net"][k].shape != cks[0]["net"][k].shape for k in keys):
            raise ValueError("checkpoints of different architectures cannot be averaged")
        if {k: v for k, v in c["net_kwargs"].items() if not k.endswith(("_mean", "_std"))} != \
                {k: v for k, v in kw.items() if not k.endswith(("_mean", "_std"))}:
            raise ValueError("checkpoints with different net settings cannot be averaged")
    out = {}
    for k in keys:
        v0 = cks[0]["net"][k]
        if v0.is_floating_point() and k not in ("feat_mean", "feat_std", "fine_mean", "fine_std"):
            out[k] = torch.stack([c["net"][k].double() for c in cks]).mean(0).to(v0.dtype)
        else:
            for c in cks[1:]:
                if not torch.equal(c["net"][k], v0):
                    raise ValueError(f"{k} differs between checkpoints (a fixed buffer must not)")
            out[k] = v0.clone()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpts", nargs="+", help="checkpoint paths or REV:PATH")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    cks = [load(s) for s in a.ckpts]
    last = cks[-1]
    res = {"net": average(cks), "net_kwargs": last["net_kwargs"], "args": last.get("args", {}),
           "loss_w": last.get("loss_w", {}), "step": last["step"], "wall_s": last.get("wall_s", 0.0),
           "averaged_from": [{"spec": s, "step": int(c["step"])} for s, c in zip(a.ckpts, cks)]}
    torch.save(res, a.out)
    print(f"{a.out}: mean of {len(cks)} checkpoints (steps {', '.join(str(c['step']) for c in cks)})")


if __name__ == "__main__":
    main()
