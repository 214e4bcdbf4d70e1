# Sourced by scripts that run an older revision beside this checkout (render-compare.sh, live-ab.sh):
#   source scripts/rev-pkg.sh REV
# builds REV into a temporary folder $T (git worktree $T/src, pip --target $T/pkg, no dependencies: it runs on
# .venv's), sets PY (.venv's python) and HERE (this checkout), and removes the folder on exit. Run REV's code with
# `cd "$T" && PYTHONPATH="$T/pkg" "$PY" ...` (from the repository, Python would import its resculpt/ folder first).
T=$(mktemp -d)
trap 'git worktree remove --force "$T/src" >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
git worktree add -f "$T/src" "$1" -q
PY=$PWD/.venv/bin/python
"$PY" -m pip install -q --no-deps --no-build-isolation --target "$T/pkg" "$T/src" >/dev/null 2>&1
HERE=$PWD
