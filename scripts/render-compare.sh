#!/usr/bin/env bash
# Are renders bit-identical to an older revision? Every shipped preset, through the CLI and the Python API
# (scripts/render_hashes.py lists the cases), with REV's code and with this checkout's, on this machine:
#   bash scripts/render-compare.sh REV
# Builds REV into a temporary folder (git worktree + pip --target, no dependencies: it runs on .venv's),
# prints every case whose sha256 differs, and exits 1 if any does.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bash scripts/render-compare.sh REV}
source scripts/rev-pkg.sh "$REV"
# Run from $T: with the repository as the working directory, Python would import its resculpt/ folder first.
(cd "$T" && PYTHONPATH="$T/pkg" "$PY" -c "import resculpt.dsp.stft as m; assert m.__file__.startswith('$T/pkg'), m.__file__")
(cd "$T" && PYTHONPATH="$T/pkg" "$PY" "$HERE/scripts/render_hashes.py" 2>/dev/null) > "$T/old.json"
(cd "$T" && "$PY" "$HERE/scripts/render_hashes.py" 2>/dev/null) > "$T/new.json"
"$PY" - "$T/old.json" "$T/new.json" "$REV" <<'PYEOF'
import json, sys
old, new, rev = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
for k in diff:
    print(f"differs: {k}: {rev} {old.get(k)} | this checkout {new.get(k)}")
print(f"{len(old.keys() | new.keys()) - len(diff)} of {len(old.keys() | new.keys())} renders bit-identical to {rev}")
sys.exit(1 if diff else 0)
PYEOF
