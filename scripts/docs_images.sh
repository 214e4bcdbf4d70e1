#!/usr/bin/env bash
# Regenerate the images under docs/:
#   docs/panel.png                  `resculpt serve` on the bundled speech clip (preset spectral-dark),
#                                   the panel attached to it under a private Xvfb, its frame buffer
#                                   written after 150 frames (~2.5 s of feedback);
#   docs/figures/mask-fullband.png  scripts/mask_fullband_figure.py, only when the shared recordings
#                                   (models/data.py: $RESCULPT_DATA) and the mask model are present.
# Usage: bash scripts/docs_images.sh   (PYTHON=... to choose the interpreter; default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
command -v Xvfb >/dev/null || { echo "docs_images: Xvfb is needed (apt-get install xvfb)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# A private config folder: the picture shows the shipped presets only, whatever this user saved.
export XDG_CONFIG_HOME="$tmp/config"
disp=":$((100 + $$ % 150))"
Xvfb "$disp" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
pids+=($!)
port=$("$PY" -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" -m resculpt.cli serve --port "$port" --preset spectral-dark \
    --input examples/speech_1081_librispeech.flac >"$tmp/serve.log" 2>&1 &
pids+=($!)
"$PY" - "$port" <<'PY'  # wait until the server answers (loading the chain takes a few seconds)
import sys
from resculpt.plugin_host.osc_client import OscClient
c = OscClient(int(sys.argv[1]))
for _ in range(60):
    c.send("/resculpt/ping")
    if c.wait_for("/resculpt/pong", 0.5) is not None:
        sys.exit(0)
sys.exit("docs_images: resculpt serve did not answer within 30 s")
PY
DISPLAY="$disp" "$PY" -m resculpt.cli ui --port "$port" --screenshot docs/panel.png --frames 150
echo "wrote docs/panel.png"

if "$PY" - <<'PY'
import sys
from resculpt.models import data as D
from resculpt.plugin_host.chain import Chain
if not D.have_data():
    sys.exit(1)
try:
    Chain({"spectral": ["mask"]}, sample_rate=48000, channels=1)
except Exception:  # no mask model bundle in this checkout
    sys.exit(1)
PY
then
    "${BENCH_PYTHON:-.venv-bench/bin/python}" scripts/mask_fullband_figure.py
    echo "wrote docs/figures/mask-fullband.png"
else
    echo "docs/figures/mask-fullband.png kept: the shared data or the mask model is not present"
fi
