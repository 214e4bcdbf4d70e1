#!/usr/bin/env bash
# CPU of two revisions measured side by side, in one session, alternating (this machine's speed moves by
# tens of per cent from day to day, so a figure from another day is no baseline for a speed change):
#   bash scripts/bench-compare.sh REV [BLOCK] [PRESET ...]
# Builds REV into a temporary folder (git worktree + pip --target, no dependencies: it runs on .venv's),
# then for 3 rounds times every preset with REV and with this checkout (`resculpt bench`, 48 kHz stereo,
# 5 s), and prints each preset's best round for both and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bash scripts/bench-compare.sh REV [BLOCK] [PRESET ...]}
BLOCK=${2:-128}
shift $(( $# < 2 ? $# : 2 ))
PRESETS=("$@")
[ ${#PRESETS[@]} -gt 0 ] || PRESETS=(clean spectral-freeze denoise-live denoise-strong)
T=$(mktemp -d)
trap 'git worktree remove --force "$T/src" >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
git worktree add -f "$T/src" "$REV" -q
.venv/bin/pip install -q --no-deps --no-build-isolation --target "$T/pkg" "$T/src" >/dev/null 2>&1
PY=$PWD/.venv/bin/python
rtf() {  # $1: PYTHONPATH ('' = this checkout), $2: preset. Run from $T: with the repository as the working
  # directory, Python would import its resculpt/ folder first, whatever PYTHONPATH says.
  (cd "$T" && PYTHONPATH="$1" "$PY" -c "import sys; from resculpt.cli import main; sys.exit(main(sys.argv[1:]))" \
    bench --preset "$2" --block "$BLOCK" --seconds 5 --json) \
    | "$PY" -c "import json, sys; print(json.load(sys.stdin)['rtf'])"
}
# Which code each side runs, checked rather than assumed.
(cd "$T" && PYTHONPATH="$T/pkg" "$PY" -c "import resculpt.dsp.stft as m; assert m.__file__.startswith('$T/pkg'), m.__file__")
declare -A OLD NEW
for round in 1 2 3; do
  for p in "${PRESETS[@]}"; do
    o=$(rtf "$T/pkg" "$p"); n=$(rtf "" "$p")
    OLD[$p]=$(.venv/bin/python -c "print(min(float('$o'), float('${OLD[$p]:-inf}')))")
    NEW[$p]=$(.venv/bin/python -c "print(min(float('$n'), float('${NEW[$p]:-inf}')))")
  done
done
echo "| preset (${BLOCK}-sample blocks, 48 kHz stereo) | $REV | this checkout | ratio |"
echo "|---|---:|---:|---:|"
for p in "${PRESETS[@]}"; do
  .venv/bin/python -c "o, n = ${OLD[$p]}, ${NEW[$p]}; print(f'| $p | {100 * o:.2f} % | {100 * n:.2f} % | {n / o:.2f} |')"
done
