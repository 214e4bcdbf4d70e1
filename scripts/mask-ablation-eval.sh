#!/usr/bin/env bash
# Export every ablation checkpoint and score them on the validation split (benchmarks/denoise.py --ablation).
# The "all terms" row is the main run's step-300 checkpoint (same recipe, same batches).
set -euo pipefail
cd "$(dirname "$0")/.."
N_VAL=${N_VAL:-3}
[ -d runs/mask-main/bundle300 ] || .venv/bin/python -m resculpt.models.mask.export --ckpt runs/mask-main/ckpt_step300.pt --out runs/mask-main/bundle300
args=("all-terms=runs/mask-main/bundle300")
for term in recon adv perc sparse; do
  d=runs/ablate-no-$term
  [ -d $d/bundle ] || .venv/bin/python -m resculpt.models.mask.export --ckpt $d/ckpt.pt --out $d/bundle
  args+=("no-$term=$d/bundle")
done
.venv-bench/bin/python benchmarks/denoise.py --n-val "$N_VAL" --n-vb 0 --ablation "${args[@]}"
