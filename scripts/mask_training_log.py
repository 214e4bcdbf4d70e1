"""The validation curve of a mask training run, from its log.jsonl, as a Markdown table.

    .venv/bin/python scripts/mask_training_log.py [models/training/mask-gen2] [--every 1000]
    .venv/bin/python scripts/mask_training_log.py RUN --against CONTROL    # a branch against its control

``--against``: two runs that differ in one thing and draw the same batches (same seed and arguments otherwise),
side by side at every validation step both reached: each one's SI-SDR improvement and differentiable STOI, the
difference, and the mean difference over all and over the later half of the shared steps (validations move by
about +-0.15 dB from one to the next, so a single step says little).

Rows: every validation record of the log (48 fixed val mixtures, denoise, 10 ms window; ``train.py:evaluate``)
whose step is a multiple of ``--every``, plus the first and the last; columns: step, cumulative wall time
(hours, summed over every resumed call), validation SI-SDR out / improvement (dB) and multi-resolution STFT
loss, the mean training loss over the logged steps since the previous row, and where the run logs them the pause
score (``pause_out``: the noise left in the clean speech's pauses, lower is deeper; ``train.py:evaluate``) and the
presence head's frame accuracy (``presence_acc``, runs with ``--presence``), with their means over the later half
of the validations under the table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def curve(log: Path, every: int = 0) -> list[dict]:
    """Validation rows (step, wall_h, si_sdr_out, improvement, mrstft, train_loss, pause_out, presence_acc; NaN
    where the run does not log them) of a log.jsonl."""
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
                         "train_loss": sum(losses) / len(losses) if losses else float("nan"),
                         "pause_out": v.get("pause_out", float("nan")),
                         "presence_acc": v.get("presence_acc", float("nan"))})
            losses = []
    return rows


EXTRA = (("pause_out", "val pause score"), ("presence_acc", "presence accuracy"))


def table(rows: list[dict]) -> str:
    extra = [(k, h) for k, h in EXTRA if any(not math.isnan(r.get(k, float("nan"))) for r in rows)]
    L = ["| step | wall h | val SI-SDR out dB | improvement dB | val multi-res STFT loss | mean train loss since previous row |"
         + "".join(f" {h} |" for _, h in extra),
         "|---|---|---|---|---|---|" + "---|" * len(extra)]
    for r in rows:
        L.append(f"| {r['step']} | {r['wall_h']:.2f} | {r['si_sdr_out']:.2f} | {r['improvement']:+.2f} | "
                 f"{r['mrstft']:.3f} | {r['train_loss']:.3f} |" + "".join(f" {r[k]:.3f} |" for k, _ in extra))
    return "\n".join(L) + "\n"


def later_half(rows: list[dict]) -> str:
    """A line with the means of the logged extras over the later half of ``rows`` (every validation), or ""."""
    half = rows[len(rows) // 2:]
    parts = []
    for k, h in EXTRA:
        vals = [r[k] for r in half if not math.isnan(r.get(k, float("nan")))]
        if vals:
            parts.append(f"{h} {sum(vals) / len(vals):.3f}")
    if not parts:
        return ""
    return (f"\nOver the later half of the {len(rows)} validations (the {len(half)} from step {half[0]['step']}): "
            + ", ".join(parts) + ".\n")


def paired(run: Path, control: Path) -> tuple[str, dict]:
    """Markdown table of two runs' validations at their shared steps, and the mean differences (run - control)."""
    def vals(p):
        return {r["step"]: r["val"] for r in (json.loads(x) for x in (p / "log.jsonl").read_text().splitlines()
                                              if x.strip()) if "val" in r}
    a, b = vals(run), vals(control)
    steps = sorted(set(a) & set(b))
    L = [f"| step | {run.name} SI-SDR impr. dB | {control.name} | difference | {run.name} STOI (torch) | "
         f"{control.name} | difference |", "|---|---|---|---|---|---|---|"]
    d_sdr, d_stoi = [], []
    for k in steps:
        x, y = a[k], b[k]
        ds = x["si_sdr_improvement"] - y["si_sdr_improvement"]
        dt = x.get("stoi_torch_out", float("nan")) - y.get("stoi_torch_out", float("nan"))
        d_sdr.append(ds)
        d_stoi.append(dt)
        L.append(f"| {k} | {x['si_sdr_improvement']:+.3f} | {y['si_sdr_improvement']:+.3f} | {ds:+.3f} | "
                 f"{x.get('stoi_torch_out', float('nan')):.4f} | {y.get('stoi_torch_out', float('nan')):.4f} | {dt:+.4f} |")
    post = [i for i, k in enumerate(steps) if k > 0]  # step 0 is the shared starting point of a branch and its control
    later = post[len(post) // 2:]

    def avg(d, idx):
        return sum(d[i] for i in idx) / max(1, len(idx))

    mean = {"steps": len(steps), "sdr_all": avg(d_sdr, post), "sdr_later": avg(d_sdr, later),
            "stoi_all": avg(d_stoi, post), "stoi_later": avg(d_stoi, later)}
    L.append("")
    L.append(f"Mean difference over the {len(post)} validations after step 0: SI-SDR {mean['sdr_all']:+.3f} dB, "
             f"STOI {mean['stoi_all']:+.4f}; over the later {len(later)}: {mean['sdr_later']:+.3f} dB, "
             f"{mean['stoi_later']:+.4f}.")
    return "\n".join(L) + "\n", mean


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", nargs="?", default=str(REPO / "models" / "training" / "mask-gen2"))
    ap.add_argument("--every", type=int, default=0, help="only validation steps that are multiples of this (0: all)")
    ap.add_argument("--against", metavar="CONTROL", help="a control run: both runs' validations side by side")
    a = ap.parse_args(argv)
    if a.against:
        print(paired(Path(a.run), Path(a.against))[0], end="")
        return
    log = Path(a.run) / "log.jsonl"
    print(table(curve(log, a.every)) + later_half(curve(log)), end="")


if __name__ == "__main__":
    main()
