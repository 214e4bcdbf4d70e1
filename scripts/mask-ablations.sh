#!/usr/bin/env bash
# Loss ablation of the mask model's second phase: from the phase-1c checkpoint (recon + gain + teach +
# sparse), the all-terms fine-tuning on the DeepFilterNet3-LL teacher cache (the shipped recipe's phase 2)
# and the same fine-tuning with one term off in turn: same seed, same batches, same steps. Two runs at a
# time (one torch thread each: 2 cores).
#   bash scripts/mask-ablations.sh   # P1=runs/p1c-teach/ckpt.pt TEACHER=runs/teacher-cache STEPS=300 JOBS=2
# Then scripts/mask-ablation-eval.sh exports and scores them.
set -euo pipefail
cd "$(dirname "$0")/.."
P1=${P1:-runs/p1c-teach/ckpt.pt}
TEACHER=${TEACHER:-runs/teacher-cache}
STEPS=${STEPS:-300}
JOBS=${JOBS:-2}
run() {
  local term=$1 name=all-terms off=()
  if [ "$term" != all ]; then name=no-$term; off=(--off "$term"); fi
  .venv/bin/python -m resculpt.models.mask.train --out "runs/ablate-$name" --fresh --init-from "$P1" \
      --steps "$STEPS" --seed 1 --lr 3e-4 --adv-start 0 --batch 16 --segment-s 1.0 --threads 1 \
      --val-every 0 --quiet --teacher "$TEACHER" "${off[@]}" > "runs/ablate-$name.log" 2>&1
  echo "runs/ablate-$name done"
}
export -f run
export P1 STEPS TEACHER
printf '%s\n' all recon adv perc sparse gain teach | xargs -P "$JOBS" -I{} bash -c 'run {}'
