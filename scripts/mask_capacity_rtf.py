"""What recurrent capacity the live tier can afford: real-time factor of the mask stage for MaskNets with a
wider GRU, against the shipped bundle, in the live path's shape (48 kHz mono, 128-sample blocks, low-latency
STFT, one thread).

    .venv/bin/python scripts/mask_capacity_rtf.py [--hidden 128 192 256] [--seconds 10] [--rounds 5] \
        [--bundle NAME=DIR ...]

Each candidate is a MaskNet with random weights (the cost does not depend on the values) exported to a bundle in
a temporary folder with ``export.py``, and each ``--bundle`` as it is (a trained bundle with look-ahead or deep-filter
taps, say); every bundle runs round-robin on the same noise, best round each. RTF here
is CPU seconds of the calling thread (onnxruntime with one intra-op thread runs on it) per second of audio, so
that the time spent waiting for a core on a shared machine does not count. Prints a Markdown table: GRU width, parameters, ONNX bytes, RTF, RTF relative to the shipped
bundle. Compare with RNNoise's RTF in ``benchmarks/results/denoise.md`` (10 ms blocks there).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

SR, BLOCK = 48000, 128


def stage_runner(bundle_dir: Path):
    """A function x (n,) -> RTF seconds of the mask stage alone on x in BLOCK-sample blocks (allocations in prepare)."""
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.models.mask.bundle import load_bundle
    from resculpt.models.mask.stage import MaskStage
    from resculpt.plugin_host import catalog

    b = load_bundle(bundle_dir)
    t = ParamTable(catalog.all_param_specs())
    t.set_many({"mask.reduction_db": 30.0})
    t.snap()
    s = StreamingSTFT("low-latency", [MaskStage(t, b)])
    s.prepare(SR, BLOCK, 1)

    def run(x):
        y = x[None].copy()
        t0 = time.thread_time()
        for i in range(0, y.shape[1] - BLOCK + 1, BLOCK):
            s.process(y[:, i : i + BLOCK])
        return time.thread_time() - t0

    return run


def _bundle_info(bundle_dir: Path) -> tuple[int, int, int]:
    """(GRU width, parameters, ONNX bytes) of a bundle, from its config.json."""
    c = json.loads((bundle_dir / "config.json").read_text())
    return int(c["state_shapes"]["hidden"][-1]), c["params"], c["onnx_bytes"]


def main(argv=None):
    import torch
    from resculpt.models.mask.bundle import BUNDLE_DIR
    from resculpt.models.mask.export import export
    from resculpt.models.mask.net import MaskNet

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="*", default=[128, 192, 256])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bundle", nargs="*", default=[], metavar="NAME=DIR", help="bundle folders to time as well")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = {"shipped bundle": BUNDLE_DIR}
    with tempfile.TemporaryDirectory() as td:
        for h in a.hidden:
            torch.manual_seed(0)
            net = MaskNet(n_fine=128, hidden=h)
            ck = Path(td) / f"h{h}.pt"
            torch.save({"net": net.state_dict(), "net_kwargs": {"n_fine": 128, "hidden": h}, "step": 0}, ck)
            export(ck, Path(td) / f"h{h}")
            rows[f"GRU {h}"] = Path(td) / f"h{h}"
        for spec in a.bundle:
            name, _, d = spec.partition("=")
            rows[name] = Path(d)
        info = {k: _bundle_info(p) for k, p in rows.items()}
        x = (0.05 * np.random.default_rng(0).standard_normal(int(a.seconds * SR))).astype(np.float32)
        runs = {k: stage_runner(p) for k, p in rows.items()}
        for r in runs.values():
            r(x[: SR // 2])  # warm-up
        best = {k: float("inf") for k in runs}
        for _ in range(a.rounds):
            for k, r in runs.items():
                best[k] = min(best[k], r(x))
    ref = best["shipped bundle"] / a.seconds
    print(f"mask stage alone, {SR // 1000} kHz mono, {BLOCK}-sample blocks, low-latency STFT, one thread; best of "
          f"{a.rounds} round-robin rounds on {a.seconds:g} s; load average {os.getloadavg()[0]:.1f}\n")
    print("| model | GRU width | parameters | ONNX bytes | RTF (thread CPU) | RTF / shipped |\n|---|---|---|---|---|---|")
    for k, s in best.items():
        h, p, nb = info[k]
        print(f"| {k} | {h} | {p} | {nb} | {s / a.seconds:.4f} | {s / a.seconds / ref:.2f} |")


if __name__ == "__main__":
    main()
