"""The validation curve of a mask training run, from its log.jsonl, as a Markdown table.

    .venv/bin/python scripts/mask_training_log.py [models/training/mask-gen2] [--every 1000]

Rows: every validation record of the log (48 fixed val mixtures, denoise, 10 ms window; ``train.py:evaluate``)
whose step is a multiple of ``--every``, plus the first and the last; columns: step, cumulative wall time
(hours, summed over every resumed call), validation SI-SDR out / improvement (dB) and multi-resolution STFT
loss, and the mean training loss over the logged steps since the previous row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def curve(log: Path, every: int = 0) -> list[dict]:
    """Validation rows (step, wall_h, si_sdr_out, improvement, mrstft, train_loss) of a log.jsonl."""
    rows, losses = [], []
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    vals = [r for r in recs if "val" in r]
    keep = {id(v) for i, v in enumerate(vals) if i in (0, len(vals) - 1) or not every or v["step"] % every == 0}
    for r in recs:
        if "loss" in r:
            losses.append(r["loss"])
        elif "val" in r and id(r) in keep:
            v = r["val"]
            rows.append({"step": r["step"], "wall_h": r.get("wall_s", float("nan")) / 3600.0,
                         "si_sdr_out": v["si_sdr_out"], "improvement": v["si_sdr_improvement"], "mrstft": v["mrstft"],
                         "train_loss": sum(losses) / len(losses) if losses else float("nan")})
            losses = []
    return rows


def table(rows: list[dict]) -> str:
    L = ["| step | wall h | val SI-SDR out dB | improvement dB | val multi-res STFT loss | mean train loss since previous row |",
         "|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['step']} | {r['wall_h']:.2f} | {r['si_sdr_out']:.2f} | {r['improvement']:+.2f} | "
                 f"{r['mrstft']:.3f} | {r['train_loss']:.3f} |")
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", nargs="?", default=str(REPO / "models" / "training" / "mask-gen2"))
    ap.add_argument("--every", type=int, default=0, help="only validation steps that are multiples of this (0: all)")
    a = ap.parse_args(argv)
    print(table(curve(Path(a.run) / "log.jsonl", a.every)), end="")


if __name__ == "__main__":
    main()
