#!/usr/bin/env bash
# Export every ablation checkpoint (scripts/mask-ablations.sh) and score them on the validation split:
# benchmarks/denoise.py --ablation (PESQ/STOI/SI-SDR/DNSMOS) and scripts/mask_ablation_val.py (training's
# validation metric). Extra rows: the first phase-1 run (mask-p1, 14000 steps), its two continuations with the
# fine-feature branch grown in (p1b-fine) and without (p1b-nofine), and p1b-fine's two continuations on the
# DeepFilterNet3-LL teacher cache, with the teacher term (p1c-teach) and with it off (p1c-noteach).
# Per-file scores are cached by model sha256 (runs/bench-cache), so a re-run scores only new models.
set -euo pipefail
cd "$(dirname "$0")/.."
N_VAL=${N_VAL:-6}
args=()
ckpts=()
bundle_of() {  # export RUN/bundle unless it is newer than RUN/ckpt.pt (a re-run ablation rewrites the checkpoint)
  [ "$1/bundle/config.json" -nt "$1/ckpt.pt" ] ||
    .venv/bin/python -m resculpt.models.mask.export --ckpt "$1/ckpt.pt" --out "$1/bundle" > /dev/null
}
for name in all-terms no-recon no-adv no-perc no-sparse no-gain no-teach; do
  d=runs/ablate-$name
  bundle_of $d
  args+=("$name=$d/bundle")
  ckpts+=("$name=$d/ckpt.pt")
done
for name in mask-p1 p1b-fine p1b-nofine p1c-teach p1c-noteach; do
  d=runs/$name
  if [ -f $d/ckpt.pt ]; then
    bundle_of $d
    args+=("$name=$d/bundle")
    ckpts+=("$name=$d/ckpt.pt")
  fi
done
.venv-bench/bin/python benchmarks/denoise.py --n-val "$N_VAL" --n-vb 0 --ablation "${args[@]}"
.venv/bin/python scripts/mask_ablation_val.py "${ckpts[@]}"
