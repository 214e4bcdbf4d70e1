#!/usr/bin/env bash
# Live benchmark of an older revision and of this checkout, alternated on the same machine, so both see the
# same spells of load from other processes:
#   bash scripts/live-ab.sh REV PAIRS OUT_DIR [benchmarks/live.py options both revisions take]
# e.g. bash scripts/live-ab.sh 775670e 2 benchmarks/results/live-ab --minutes 1 --periods 128 --preset denoise-live
# REV is built into a temporary folder as scripts/render-compare.sh does (git worktree + pip --target, run on
# .venv's interpreter); each pair runs REV's benchmarks/live.py on REV's code, then this checkout's on this
# checkout's code, writing OUT_DIR/{rev,this}-K.md; the table rows of every run are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bash scripts/live-ab.sh REV PAIRS OUT_DIR [live.py options]}
PAIRS=${2:?pairs}
OUT=$(realpath -m "${3:?out dir}")
shift 3
mkdir -p "$OUT"
source scripts/rev-pkg.sh "$REV"
for k in $(seq 1 "$PAIRS"); do
  # From $T: with a repository as the working directory, Python would import its resculpt/ folder first.
  (cd "$T" && PYTHONPATH="$T/pkg" "$PY" "$T/src/benchmarks/live.py" "$@" --out "$OUT/rev-$k.md")
  "$PY" "$HERE/benchmarks/live.py" "$@" --out "$OUT/this-$k.md"
done
for f in "$OUT"/rev-*.md "$OUT"/this-*.md; do
  echo "$(basename "$f"): $(grep '^| 128\|^| 256\|^| [0-9]' "$f" | head -2 | tr '\n' ' ')"
done
