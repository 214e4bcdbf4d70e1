"""Speed of the resculpt generator's draft stage beside RNNoise: RTF on one thread at 48 kHz, mono, 10 ms blocks.

    .venv/bin/python scripts/resculpt_rtf.py --export-only /tmp/rs-fresh     # torch + onnx live in .venv
    .venv-bench/bin/python scripts/resculpt_rtf.py --bundle /tmp/rs-fresh/bundle [--seconds 10] [--rounds 3]

``--export-only DIR`` exports a freshly initialised generator (default size, look-ahead 1) to DIR/bundle: the
speed does not depend on the weights (.venv-bench has no ``onnx`` to export with; pyrnnoise is only there). The stage runs inside the shared STFT (``default`` config, 20 ms window,
5 ms hop) with a published target, so every frame runs the ONNX core (IOBinding, one frame per call) and the
numpy output application. RNNoise is ``pyrnnoise`` (in .venv-bench), timed round-robin with the stage by
``benchmarks/denoise.py``'s ``rtf_interleaved`` on the same audio (best round per system). Goal (issue): the
stage's RTF <= 2x RNNoise's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from denoise import rnnoise, rtf_interleaved  # noqa: E402


def fresh_bundle(folder: Path) -> Path:
    import torch
    from resculpt.models.resculpt import export
    from resculpt.models.resculpt.net import ResculptNet

    torch.manual_seed(0)
    torch.save({"net": ResculptNet(lookahead=1).state_dict(), "net_kwargs": {"lookahead": 1}, "step": 0,
                "sample_rate": 16000}, folder / "ckpt.pt")
    export.export(folder / "ckpt.pt", folder / "bundle")
    return folder / "bundle"


def resculpt_runner(bundle: Path):
    from resculpt.dsp.inbox import Inbox
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.profile import Profile
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.models.resculpt.stage import ResculptStage, ResculptTarget
    from resculpt.plugin_host import catalog

    inbox = Inbox(ResculptTarget)
    inbox.publish(ResculptTarget.make(
        Profile("target", {"centroid_hz": 1500.0}, band_env_db=list(-30.0 - 1.5 * np.arange(32)))))
    table = ParamTable(catalog.all_param_specs())
    table.prepare(48000)
    stage = ResculptStage(table, inbox=inbox, bundle=bundle)

    def run(x48):
        s = StreamingSTFT("default", stages=[stage], table=table)
        s.prepare(48000, 480, 1)
        y = x48[None].astype(np.float32).copy()
        for i in range(0, y.shape[1], 480):
            s.process(y[:, i : i + 480])
        return y[0]

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/resculpt_rtf.py")
    ap.add_argument("--bundle", help="bundle folder to time (default: export a fresh one, needs onnx)")
    ap.add_argument("--export-only", help="export a freshly initialised generator to DIR/bundle and stop")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    if a.export_only:
        Path(a.export_only).mkdir(parents=True, exist_ok=True)
        print(fresh_bundle(Path(a.export_only)))
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import onnxruntime  # noqa: F401  (fail early outside a venv that has it)

    t = np.arange(2 * 16000) / 16000
    ph = 2 * np.pi * np.cumsum(130 + 25 * np.sin(2 * np.pi * 1.3 * t)) / 16000
    sig16 = (0.05 * sum(np.sin(h * ph) / h for h in range(1, 25)) * (np.sin(2 * np.pi * 2.5 * t) > -0.2)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(a.bundle) if a.bundle else fresh_bundle(Path(tmp))
        r = rtf_interleaved({"resculpt": (resculpt_runner(bundle), 48000), "rnnoise": (rnnoise(), 48000)},
                            a.seconds, sig16, a.rounds)
    r["ratio_to_rnnoise"] = r["resculpt"] / r["rnnoise"]
    r["load_avg"] = os.getloadavg()
    print(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
