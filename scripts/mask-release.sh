#!/usr/bin/env bash
# Bundle a trained mask checkpoint and regenerate everything derived from it:
#   bash scripts/mask-release.sh runs/mask-main/ckpt.pt
# 1. ONNX export + config.json + golden.npz into models/weights/mask (asserts ORT == torch);
# 2. fullband figure (docs/figures/mask-fullband.{png,json});
# 3. benchmark against the peers (benchmarks/results/denoise.{md,json});
# 4. oracle bounds and hedging of the checkpoint (benchmarks/results/mask_diagnostics.md);
# 5. MODEL_CARD.md from all of the above.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:-runs/mask-main/ckpt.pt}
.venv/bin/python -m resculpt.models.mask.export --ckpt "$CKPT" --out models/weights/mask \
    --summary "$(dirname "$CKPT")/summary.json"
.venv-bench/bin/python scripts/mask_fullband_figure.py
.venv-bench/bin/python benchmarks/denoise.py --n-val "${N_VAL:-12}" --n-vb "${N_VB:-6}"
.venv-bench/bin/python scripts/mask_diagnostics.py --ckpt "$CKPT"
.venv/bin/python scripts/mask_model_card.py --run "$(dirname "$CKPT")"
