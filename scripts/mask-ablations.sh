#!/usr/bin/env bash
# Ablation runs for the mask model: the main recipe with one loss term off, stopped at step 300 of the
# same 5000-step schedule (same seeds, same batches). The "all terms" row is the main run's
# ckpt_step300.pt. Then each is exported to runs/ablate-*/bundle for benchmarks/denoise.py --ablation.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
STOP=${STOP:-300}
for term in adv perc sparse recon; do
  $PY -m resculpt.models.mask.train --out runs/ablate-no-$term --steps 5000 --stop-at "$STOP" --off "$term" \
      --threads 1 --batch 8 --segment-s 1.0 --adv-start 100 --val-every 0 --quiet
done
