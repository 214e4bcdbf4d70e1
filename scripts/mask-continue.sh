#!/usr/bin/env bash
# The mask's committed training run: `bash scripts/train-continue.sh mask ...` (its header lists the options).
exec bash "$(dirname "$0")/train-continue.sh" mask "$@"
