#!/usr/bin/env bash
# Export every ablation checkpoint (scripts/mask-ablations.sh) and score them on the validation split:
# benchmarks/denoise.py --ablation (PESQ/STOI/SI-SDR/DNSMOS) and scripts/mask_ablation_val.py (training's
# validation metric). Extra rows: the first phase-1 run (mask-p1, 14000 steps) and its two continuations,
# with the fine-feature branch grown in (p1b-fine) and without (p1b-nofine): same seed, schedule and wall budget.
set -euo pipefail
cd "$(dirname "$0")/.."
N_VAL=${N_VAL:-6}
args=()
for name in all-terms no-recon no-adv no-perc no-sparse no-gain; do
  d=runs/ablate-$name
  [ -d $d/bundle ] || .venv/bin/python -m resculpt.models.mask.export --ckpt $d/ckpt.pt --out $d/bundle > /dev/null
  args+=("$name=$d/bundle")
done
for name in mask-p1 p1b-fine p1b-nofine; do
  d=runs/$name
  if [ -f $d/ckpt.pt ]; then
    [ -d $d/bundle ] || .venv/bin/python -m resculpt.models.mask.export --ckpt $d/ckpt.pt --out $d/bundle > /dev/null
    args+=("$name=$d/bundle")
  fi
done
.venv-bench/bin/python benchmarks/denoise.py --n-val "$N_VAL" --n-vb 0 --ablation "${args[@]}"
.venv/bin/python scripts/mask_ablation_val.py
