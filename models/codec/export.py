"""Export a codec-envelope checkpoint to a bundle folder (model.onnx, config.json, golden.npz, MODEL_CARD.md
left to the author) and check that onnxruntime reproduces torch.

    python -m resculpt.models.codec.export --ckpt models/training/codec-gen1/ckpt.pt --out models/weights/codec
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import common
from resculpt.models.mask.bundle import file_sha256

from .bundle import GOLDEN_TOL, load_bundle
from .net import CodecEnvNet


def export(ckpt: Path, out: Path, golden_from: Path | None = None) -> dict:
    s = torch.load(ckpt, weights_only=False)
    net = CodecEnvNet(int(s["hidden"]))
    net.load_state_dict(s["net"])
    net.eval()
    out.mkdir(parents=True, exist_ok=True)
    H = net.hidden
    feat0, h0 = torch.zeros(1, 1, common.N_FEAT), torch.zeros(1, 1, H)
    onnx_p = out / "model.onnx"
    torch.onnx.export(net, (feat0, h0), str(onnx_p), input_names=["feat", "h"],
                      output_names=["levels", "h_out"], opset_version=17, dynamo=False)
    # golden: a real pair's first 200 frames when given, else a seeded random sequence in the features' range
    if golden_from is not None:
        feat = np.load(golden_from)["feat"][:200]
    else:
        rng = np.random.default_rng(0)
        feat = rng.uniform(-2, 1, (200, common.N_FEAT)).astype(np.float32)
    with torch.no_grad():
        levels = net(torch.from_numpy(feat)[None])[0][0].numpy()
    np.savez(out / "golden.npz", feat=feat.astype(np.float32), levels=levels.astype(np.float32))
    summ = {}
    sp = ckpt.parent / "summary.json"
    if sp.is_file():
        summ = json.loads(sp.read_text())
    cfg = {"version": common.CONFIG_VERSION, "n_feat": common.N_FEAT, "max_hz": common.MAX_HZ,
           "db_unit": common.DB_UNIT, "feat_clip": [common.FEAT_LO, common.FEAT_HI],
           "level": [common.LEVEL_SHIFT_DB, common.LEVEL_UNIT_DB, common.LEVEL_CLIP],
           "no_edge_ref_hz": common.NO_EDGE_REF_HZ, "hop_ms": common.HOP_MS, "state_shape": [1, 1, H],
           "hidden": H, "step": int(s["step"]), "train_wall_h": round(float(s["wall_s"]) / 3600, 3),
           "validation": summ, "sha256": file_sha256(onnx_p)}
    (out / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    b = load_bundle(out)  # verifies sha256 and golden
    err = float(np.max(np.abs(b.run_sequence(feat) - levels)))
    assert err <= GOLDEN_TOL, f"onnxruntime differs from torch by {err:.3g}"
    print(f"exported step {cfg['step']} to {out}: ORT vs torch max |diff| {err:.2e} (units of 20 dB)")
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", default="models/training/codec-gen1/ckpt.pt")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "weights" / "codec"))
    ap.add_argument("--golden-from", default=None, help="a pair .npz whose features make the golden sequence")
    a = ap.parse_args(argv)
    export(Path(a.ckpt), Path(a.out), Path(a.golden_from) if a.golden_from else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
