#!/usr/bin/env bash
# The whole test suite (what CI runs after scripts/setup.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
case $rc in
  0) ;;
  1) echo "test: some tests failed" >&2 ;;
  5) echo "test: no tests were collected (treated as a failure)" >&2 ;;
  *) echo "test: pytest stopped with exit code $rc (interrupted, internal or usage error)" >&2 ;;
esac
exit $rc
