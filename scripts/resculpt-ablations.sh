#!/usr/bin/env bash
# Loss ablation of the resculpting generator on the validation split, as a fine-tuning ablation: every variant
# resumes a copy of one committed checkpoint with the run's own settings (RUN/train.args: same seed, so the same
# batches in the same order, same optimiser state) for STEPS steps, one variant with every term and one per
# term switched off (`--off`); the closing validation of each (16 val pairs: restore profile ratio, multi-res
# STFT, identity, descriptor ratio) goes into one table. It measures what each term does to a trained model over
# a short horizon, not what a whole run without it would reach.
#   bash scripts/resculpt-ablations.sh   # RUN=models/training/resculpt-gen1 STEPS=200 TERMS="all recon ..."
# -> runs/ablate-resculpt/NAME/ (checkpoints, logs) and benchmarks/results/resculpt_ablation.{json,md}
# One torch thread per variant, one variant at a time, nice 19 (pin it with taskset -c 1 beside other work).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-models/training/resculpt-gen1}
STEPS=${STEPS:-200}
TERMS=${TERMS:-all recon adv fm profile perc content identity}
OUT=${OUT:-runs/ablate-resculpt}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mapfile -t ARGS < <(grep -v '^\s*\(#\|$\)' "$RUN/train.args")
START=$(.venv/bin/python -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=False)['step'])" "$RUN/ckpt.pt")
mkdir -p "$OUT"
NAMES=()
for term in $TERMS; do
    name=all-terms; off=()
    if [ "$term" != all ]; then name=no-$term; off=(--off "$term"); fi
    NAMES+=("$name")
    if [ -f "$OUT/$name/summary.json" ] && .venv/bin/python -c "import json, sys; sys.exit(json.load(open(sys.argv[1]))['steps'] < int(sys.argv[2]))" "$OUT/$name/summary.json" "$((START + STEPS))"; then
        echo "$name: done before"; continue
    fi
    mkdir -p "$OUT/$name"
    [ -f "$OUT/$name/ckpt.pt" ] || cp "$RUN/ckpt.pt" "$OUT/$name/ckpt.pt"
    nice -n 19 .venv/bin/resculpt train resculpt "${ARGS[@]}" --out "$OUT/$name" --stop-at "$((START + STEPS))" \
        "${off[@]}" > "$OUT/$name.log" 2>&1
    echo "$name: done"
done
.venv/bin/python - "$OUT" "$START" "$STEPS" "$RUN" "${NAMES[@]}" <<'PY'
import json, sys
from pathlib import Path
out, start, steps, run, names = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
res = {n: json.loads((out / n / "summary.json").read_text())["val"] for n in names}
dest = Path("benchmarks/results/resculpt_ablation")
dest.with_suffix(".json").write_text(json.dumps({"run": run, "from_step": start, "steps": steps, "val": res}, indent=2) + "\n")
cols = [("profile_ratio", "restore profile ratio (lower: closer to the clean clip)"),
        ("mrstft_out", "restore multi-res STFT vs clean"), ("keep_env_max_db", "identity: largest envelope change dB"),
        ("keep_band_change_db", "identity: mean band change dB"), ("descriptor_ratio", "descriptor ratio")]
rows = [f"Fine-tuning ablation of `{run}` from its step {start}: each variant {steps} more steps with the run's "
        f"settings and one loss term off (`scripts/resculpt-ablations.sh`); validation on 16 val-split pairs "
        f"(their input's restore profile distance is {next(iter(res.values()))['profile_dist_in']:.3f}, multi-res "
        f"STFT {next(iter(res.values()))['mrstft_in']:.3f}).", "",
        "| variant | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
for n, v in res.items():
    rows.append(f"| {n} | " + " | ".join(f"{v[c]:.3f}" if c in v else "-" for c, _ in cols) + " |")
dest.with_suffix(".md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
