#!/usr/bin/env bash
# Quantisation and pruning, measured: builds the variants of a float mask bundle (default: the shipped one) and of
# a resculpt bundle (default: a freshly initialised export; pass the trained one as RS_BUNDLE) with
# resculpt.models.quantize in .venv, then times and scores them against their source in one run of
# benchmarks/quantize.py in .venv-bench (-> benchmarks/results/quantize.{md,json}).
#   bash scripts/quantize-bench.sh [extra benchmarks/quantize.py options, e.g. --n-val 8]
#   MASK_BUNDLE=DIR RS_BUNDLE=DIR bash scripts/quantize-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MASK_BUNDLE=${MASK_BUNDLE:-models/weights/mask}
RS_BUNDLE=${RS_BUNDLE:-}
OUT=${QUANT_OUT:-runs/quantize}
mkdir -p "$OUT"
q() { .venv/bin/python -m resculpt.models.quantize "$@" > /dev/null 2> >(grep -v "pre-processing before quantization" >&2); }
q "$MASK_BUNDLE" --out "$OUT/mask-int8"
q "$MASK_BUNDLE" --out "$OUT/mask-prune50" --precision float32 --prune 0.5
if [ -z "$RS_BUNDLE" ]; then
  .venv/bin/python benchmarks/resculpt_model.py --export-fresh "$OUT/rs-fresh" > /dev/null 2>&1
  RS_BUNDLE=$OUT/rs-fresh/bundle
fi
q "$RS_BUNDLE" --out "$OUT/rs-int8"
.venv-bench/bin/python benchmarks/quantize.py \
  --mask "float32=$MASK_BUNDLE" "int8=$OUT/mask-int8" "prune50=$OUT/mask-prune50" \
  --resculpt "float32=$RS_BUNDLE" "int8=$OUT/rs-int8" "$@"
