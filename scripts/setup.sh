#!/usr/bin/env bash
# Set up Resculpt on a fresh Debian 12 / Python 3.11 machine and run the main job on the bundled
# example. Idempotent: re-running only installs what is missing.
#   1. system packages (when root): JACK (live mode and its tests), PortAudio, Xvfb (panel tests), sox/ffmpeg,
#      the LV2 plugin's build (gcc, lv2-dev, python3.11-dev) and its test hosts (lv2file, lilv-utils, jalv, ardour)
#   2. .venv with the package (editable) + the train (torch CPU), dev (pytest), ray and fast (numba) extras
#   3. `resculpt demo`: the bundled clip through every shipped preset, with spectrograms
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(libportaudio2 jackd2 libasound2-plugins xvfb xauth imagemagick espeak-ng ffmpeg sox libsndfile1 libgl1 libgl1-mesa-dri
          gcc lv2-dev lilv-utils lv2file jalv sordi ardour python3.11-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    # jackd2 asks whether to enable realtime limits; answer for a headless install.
    echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections 2>/dev/null || true
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: warning: missing system packages (${missing[*]}); run as root or install them:" >&2
    echo "       sudo apt-get install ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do command -v "$c" >/dev/null && { PY=$c; break; }; done
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# pip, quiet, without its note about a find-links location in the machine's pip config that does not
# exist (not this project's to fix). pip's exit status is kept: a failed install stops the script.
pip_q() {
  .venv/bin/python -m pip "$@" -q 2>&1 | { grep -v -E "^WARNING: Location|is ignored: it is neither" || true; }
}
pip_q install --upgrade pip
# torch==2.13.0 is pinned in the train extra so pip takes the CPU wheel and never a CUDA build.
# setuptools notes once that an editable install with a package-dir mapping goes through a meta path finder.
pip_q install -e ".[train,dev,ray,fast]"
.venv/bin/python -c "import resculpt, torch; print('setup: resculpt', resculpt.__version__, '| torch', torch.__version__)"

echo "setup: running the demo (bundled clip through every shipped preset)"
.venv/bin/resculpt demo --out-dir demo-output
