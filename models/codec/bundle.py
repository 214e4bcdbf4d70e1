"""The codec-repair envelope bundle: reading and verifying ``models/weights/codec`` (numpy + onnxruntime).

A bundle folder holds ``model.onnx`` (one frame per call: ``feat`` (1, 1, N_FEAT) and state ``h`` (1, 1, H) in;
``levels`` (1, 1, 32) and ``h_out`` out), ``config.json`` (written by ``export.py``: version, feature constants,
hop, state shape, sha256 of model.onnx, training summary) and ``golden.npz`` (a feature sequence and the
levels torch gave for it). :func:`load_bundle` refuses, with one BundleError naming the file, a bundle whose
files are missing, whose model.onnx does not have the recorded sha256, whose config is of another version or
describes features this code does not compute, or whose graph does not reproduce the golden levels within
GOLDEN_TOL.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from resculpt.models.mask.bundle import BundleError, bundle_files, read_checked

from . import common

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "weights" / "codec"
BUNDLE_ENV = "RESCULPT_CODEC_BUNDLE"  # a bundle folder to load instead of the shipped one (benchmarks: A/B runs)
GOLDEN_TOL = 1e-4  # units of 20 dB: 2 mdB


class Bundle:
    """A verified codec-envelope bundle: config, ORT session, state shape, hop."""

    def __init__(self, path: Path, config: dict, session):
        self.path, self.config, self.session = path, config, session
        self.state_shape = tuple(config["state_shape"])
        self.hop_ms = float(config["hop_ms"])

    def run_sequence(self, feat: np.ndarray) -> np.ndarray:
        """Levels (T, 32) for features (T, N_FEAT), one frame per call from zero state."""
        h = np.zeros(self.state_shape, np.float32)
        out = []
        for row in np.asarray(feat, np.float32):
            y, h = self.session.run(["levels", "h_out"], {"feat": row.reshape(1, 1, -1), "h": h})
            out.append(y[0, 0])
        return np.stack(out)


def _check_config(cfg: dict, cfg_p: Path) -> None:
    if cfg.get("version") != common.CONFIG_VERSION:
        raise BundleError(f"{cfg_p}: config version {cfg.get('version')!r}, this code reads version "
                          f"{common.CONFIG_VERSION}; re-export the bundle with this checkout")
    want = {"n_feat": common.N_FEAT, "max_hz": common.MAX_HZ, "db_unit": common.DB_UNIT,
            "feat_clip": [common.FEAT_LO, common.FEAT_HI],
            "level": [common.LEVEL_SHIFT_DB, common.LEVEL_UNIT_DB, common.LEVEL_CLIP],
            "no_edge_ref_hz": common.NO_EDGE_REF_HZ}
    for k, v in want.items():
        if cfg.get(k) != v:
            raise BundleError(f"{cfg_p}: {k} = {cfg.get(k)!r}, the stage computes {v!r}")
    if cfg.get("hop_ms") != common.HOP_MS:
        raise BundleError(f"{cfg_p}: hop_ms = {cfg.get('hop_ms')!r}, the stage runs at {common.HOP_MS} ms")
    sh = cfg.get("state_shape")
    if not (isinstance(sh, list) and len(sh) == 3 and all(isinstance(d, int) and d > 0 for d in sh)):
        raise BundleError(f"{cfg_p}: state_shape = {sh!r}, expected [1, 1, H]")


_CACHE: dict = {}


def load_bundle(path: Path | str | None = None) -> Bundle:
    """Load and verify a bundle folder (by default $RESCULPT_CODEC_BUNDLE, else the shipped one); raise BundleError."""
    path = Path(path) if path else Path(os.environ.get(BUNDLE_ENV) or BUNDLE_DIR)
    cfg_p, onnx_p, gold_p, sha = bundle_files(path, "codec model", "models/codec/export.py")
    key = str(path.resolve())
    if key in _CACHE and _CACHE[key][0] == sha:
        return _CACHE[key][1]
    cfg, sess = read_checked(onnx_p, cfg_p, sha, _check_config)
    b = Bundle(path, cfg, sess)
    g = np.load(gold_p)
    err = float(np.max(np.abs(b.run_sequence(g["feat"]) - g["levels"])))
    if not np.isfinite(err) or err > GOLDEN_TOL:
        raise BundleError(f"{path}: model output differs from golden.npz by {err:.3g} (> {GOLDEN_TOL:g})")
    _CACHE[key] = (sha, b)
    return b
