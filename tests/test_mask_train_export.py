"""Training smoke run and export parity (need the [train] extra: torch; skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")


def test_smoke_training_runs_three_steps_and_writes_a_resumable_checkpoint(tmp_path):
    """`resculpt train mask --smoke` runs 3 steps on synthetic signals (< 60 s), logs finite losses,
    writes ckpt.pt and summary.json; a second call resumes from the checkpoint instead of restarting."""
    from resculpt.plugin_host.cli import main

    out = tmp_path / "run"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 3
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in logs if "loss" in r)
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 3
    # Resume: same folder, more steps -> continues at 3 (no fresh start).
    from resculpt.models.mask import train as T

    args = T.add_args(__import__("argparse").ArgumentParser()).parse_args(
        ["--out", str(out), "--steps", "4", "--quiet", "--val-every", "0"])
    args.smoke, args.batch, args.segment_s, args.adv_start = True, 2, 0.5, 1
    s2 = T.train(args)
    assert s2["steps"] == 4


def test_export_onnx_matches_torch_on_streaming_frames(tmp_path):
    """A (random) MaskNet exported to ONNX gives the same gains as torch frame by frame (<= 1e-5), torch
    streaming equals torch whole-sequence, and the written bundle passes the loader's checks."""
    from resculpt.models.mask.export import STATE, export, reference_features, torch_stream
    from resculpt.models.mask.net import MaskNet
    from resculpt.models.mask.stage import load_bundle

    torch.manual_seed(0)
    net = MaskNet()
    ck = tmp_path / "ckpt.pt"
    torch.save({"net": net.state_dict(), "net_kwargs": {}, "step": 0}, ck)
    cfg = export(ck, tmp_path / "bundle")
    for v in cfg["export_check"].values():
        assert v["ort_vs_torch"] < 1e-5 and v["torch_stream_vs_full"] < 1e-5
    b = load_bundle(tmp_path / "bundle")
    feat = reference_features(T=50)
    cond = np.array([1.0, 0.5], np.float32)
    np.testing.assert_allclose(b.run_sequence(feat, cond), torch_stream(net.eval(), feat, cond), atol=1e-5)
    assert b.state_names == list(STATE)


def test_training_band_features_match_the_runtime_stage():
    """The torch feature path (train.BandIO) and the numpy stage compute the same band dB features for the
    same 16 kHz frames (so what the model learned is what it sees at run time)."""
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.models.mask import common as C
    from resculpt.models.mask.stage import MaskStage
    from resculpt.models.mask.train import BandIO
    from resculpt.plugin_host import catalog

    sr, n_fft, hop = 16000, 320, 80
    x = (np.random.default_rng(0).standard_normal(hop * 40) * 0.05).astype(np.float32)
    _, feat = BandIO(n_fft, hop).analyse(torch.tensor(x)[None])
    t = ParamTable(catalog.all_param_specs())
    st = MaskStage(t)
    seen = []
    orig = st.session.run

    def spy(names, feed):
        seen.append(feed["feat"].copy())
        return orig(names, feed)

    st.session = type("S", (), {"run": staticmethod(spy)})()
    s = StreamingSTFT("default", [st])
    s.prepare(sr, 4096, 1)
    s.process(x[None].copy())
    got = np.concatenate([f.reshape(1, C.N_LEARNED) for f in seen])
    np.testing.assert_allclose(got, feat[0].numpy()[: got.shape[0]], atol=2e-3)
