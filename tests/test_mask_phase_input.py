"""The mask net's phase-advance input (``common.PHASE_FLOOR``, ``BandIO.phase``, ``MaskNet(phase_bins=P)``), a
training experiment (needs the [train] extra: torch)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")


def _tone(sr, f, seconds=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return torch.tensor(np.sin(2 * np.pi * f * t + 0.3)[None].astype(np.float32))


def test_a_steady_tone_reads_a_steady_advance_set_by_its_distance_from_the_bin_centre():
    from resculpt.models.mask.band_io import BandIO

    io = BandIO(160, 80, 16000)
    for f, k in ((1000.0, 10), (1020.0, 10), (730.0, 7)):
        spec, _ = io.analyse(_tone(16000, f))
        u = BandIO.phase(spec, 32)[0, 4:].reshape(-1, 32, 2)
        z = torch.complex(u[:, k, 0], u[:, k, 1])
        expect = np.exp(1j * 2 * np.pi * (f - k * 100.0) * 0.005)
        # within 0.3 degrees: a real tone's mirror image at -f leaks into bin k through the 10 ms window and
        # wobbles the advance by about 1e-3 from frame to frame
        assert np.allclose(z.numpy(), expect, atol=5e-3), (f, z[:3])


def test_the_steady_part_reads_one_while_a_tone_holds_its_bin_and_scatters_for_noise():
    from resculpt.models.mask.band_io import BandIO

    io = BandIO(160, 80, 16000)
    spec, _ = io.analyse(_tone(16000, 1020.0))
    f = BandIO.phase(spec, 32, steady=True)[0, 4:].reshape(-1, 32, 4)
    assert torch.allclose(f[:, :, :2], BandIO.phase(spec, 32)[0, 4:].reshape(-1, 32, 2))  # the advance as before
    assert torch.allclose(f[:, 10, 2], torch.ones(f.shape[0]), atol=1e-4) and float(f[:, 10, 3].abs().max()) < 1e-2
    spec, _ = io.analyse(torch.randn(1, 8000))
    re = BandIO.phase(spec, 32, steady=True)[0, 4:].reshape(-1, 32, 4)[..., 2]
    assert abs(float(re.mean())) < 0.1 and float(re.std()) > 0.5


def test_the_features_of_the_bins_a_tone_holds_are_the_same_at_16_and_48_khz():
    from resculpt.models.mask.band_io import BandIO

    a = BandIO.phase(BandIO(160, 80, 16000).analyse(_tone(16000, 1230.0))[0], 32)[0, 4:40]
    b = BandIO.phase(BandIO(480, 240, 48000).analyse(_tone(48000, 1230.0))[0], 32)[0, 4:40]
    strong = slice(2 * 11, 2 * 14)  # the bins the tone holds; the others are window leakage at -60 dB and below
    assert torch.allclose(a[:, strong], b[:, strong], atol=2e-3)


def test_noise_reads_unit_vectors_and_silence_reads_zero():
    from resculpt.models.mask.band_io import BandIO

    io = BandIO(160, 80, 16000)
    spec, _ = io.analyse(torch.randn(1, 4000))
    u = BandIO.phase(spec, 32)[0, 2:].reshape(-1, 32, 2)
    mag = u.pow(2).sum(-1).sqrt()
    assert float(mag.median()) > 0.95 and float(mag.max()) <= 1.0 + 1e-6
    spec0, _ = io.analyse(torch.zeros(1, 4000))
    assert torch.equal(BandIO.phase(spec0, 32), torch.zeros(1, spec0.shape[1], 64))


def _nets():
    from resculpt.models.mask.net import MaskNet
    from resculpt.models.mask.train import add_phase_input

    torch.manual_seed(0)
    old = MaskNet(hidden=16, ch=4, df_bins=8)
    with torch.no_grad():
        for p in old.parameters():
            p.normal_(0, 0.3)
    new = MaskNet(hidden=16, ch=4, df_bins=8, phase_bins=8)
    add_phase_input(new, old.state_dict())
    return old, new


def test_growing_the_phase_input_leaves_the_nets_output_exactly_as_it_was_in_float64():
    # in float64, because in float32 the GRU's longer input product sums in another order (differences ~1e-5)
    old, new = (n.double() for n in _nets())
    feat, fine = torch.randn(2, 20, 24).double() * 10 - 60, torch.randn(2, 20, 128).double() * 10 - 70
    cond = torch.tensor([[0.0, 1.0], [1.0, 0.5]]).double()
    g0, d0 = old(feat, fine, cond)
    g1, d1 = new(feat, fine, cond, torch.randn(2, 20, 16).double())
    assert torch.equal(g0, g1) and torch.equal(d0, d1)
    with pytest.raises(ValueError, match="phase-advance"):
        new(feat, fine, cond)


def test_a_net_with_phase_input_refuses_streaming_and_export_instead_of_running_without_it(tmp_path):
    from resculpt.models.mask.export import export

    _, new = _nets()
    with pytest.raises(NotImplementedError, match="training experiment"):
        new.step(torch.zeros(1, 1, 24), torch.zeros(1, 1, 128), torch.zeros(1, 2), *new.init_state())
    with pytest.raises(NotImplementedError, match="training experiment"):
        new.step_seq(torch.zeros(1, 3, 24), torch.zeros(1, 3, 128), torch.zeros(1, 2), *new.init_state())
    torch.save({"net": new.state_dict(), "net_kwargs": dict(hidden=16, ch=4, df_bins=8, phase_bins=8), "step": 1},
               tmp_path / "c.pt")
    with pytest.raises(NotImplementedError, match="training experiment"):
        export(tmp_path / "c.pt", tmp_path / "bundle")
    assert not (tmp_path / "bundle" / "model.onnx").exists()


def test_a_smoke_run_trains_with_the_phase_input_and_records_it(tmp_path):
    from resculpt.cli import main

    out = tmp_path / "p"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--phase-bins", "8", "--phase-steady",
                 "--df-bins", "8"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["phase_bins"] == 8 and s["phase_steady"] and np.isfinite(s["val"]["si_sdr_out"])
    ck = torch.load(out / "ckpt.pt", weights_only=False)
    assert ck["net_kwargs"]["phase_bins"] == 8 and ck["net"]["phase_fc.weight"].shape[1] == 4 * 8  # steady: 4 per bin


def test_the_torch_scorer_runs_a_checkpoint_the_way_the_training_validation_does(tmp_path):
    """scripts/mask_torch_scores.py scores nets the stage cannot run yet: its outputs are train.evaluate's (same
    SI-SDR on the same mixtures), and it reads a checkpoint by path."""
    import importlib.util
    from pathlib import Path

    from resculpt.models.mask import mixing
    from resculpt.models.mask.train import evaluate

    repo = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("mts", repo / "scripts" / "mask_torch_scores.py")
    mts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mts)
    _, net = _nets()
    torch.save({"net": net.state_dict(), "net_kwargs": dict(hidden=16, ch=4, df_bins=8, phase_bins=8), "step": 7},
               tmp_path / "c.pt")
    net2, ck = mts.net_of(str(tmp_path / "c.pt"))
    pools = mixing.synthetic_pools(0)
    items = [dict(zip(("noisy", "clean"), mixing.make_example(np.random.default_rng(i), pools, 8000, augment=False)[:2]))
             for i in range(3)]
    ys = mts.outputs(net2, items)
    e = 8000 - 160
    sdr = np.mean([float(_si_sdr(y[:e], it["clean"][:e])) for y, it in zip(ys, items)])
    assert ck["step"] == 7 and abs(sdr - evaluate(net2, items)["si_sdr_out"]) < 1e-3


def _si_sdr(y, t):
    from resculpt.models.mask.losses import si_sdr

    return si_sdr(torch.tensor(y)[None], torch.tensor(t)[None])[0]
