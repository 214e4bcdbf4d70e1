"""The pause term of the mask trainer (``losses.pause_residual``; needs the [train] extra)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")

SR = 16000


def _rows():
    """Target: a 1 kHz tone in its first half, silence in its second; mixture: the target plus white noise
    at -30 dBFS throughout (1 s at 16 kHz)."""
    n = SR
    tt = np.arange(n) / SR
    t = (0.3 * np.sin(2 * np.pi * 1000 * tt) * (tt < 0.5)).astype(np.float32)
    z = np.random.default_rng(3).standard_normal(n).astype(np.float32) * 10 ** (-30 / 20)
    return torch.tensor(t)[None], torch.tensor(t + z)[None], torch.tensor(z)[None]


def test_pause_residual_reads_the_cut_in_the_pauses_on_a_40_db_scale():
    from resculpt.models.mask.losses import pause_residual

    t, x, _ = _rows()
    half = x.shape[1] // 2
    for cut_db, want in ((0.0, 1.0), (20.0, 0.5), (40.0, 0.0), (60.0, 0.0)):
        y = x.clone()
        y[:, half:] *= 10 ** (-cut_db / 20)  # only the pause is cut; what the speech half keeps does not count
        s, ok = pause_residual(y, x, t)
        assert ok.item() == 1.0
        assert s.item() == pytest.approx(want, abs=0.02), cut_db
    y = x.clone()
    y[:, :half] = 0.0  # cutting the speech leaves the pause score where it was
    s, _ = pause_residual(y, x, t)
    assert s.item() == pytest.approx(1.0, abs=0.02)


def test_pause_residual_skips_rows_without_a_pause_and_a_silent_target_makes_every_frame_one():
    from resculpt.models.mask.losses import pause_residual

    _, x, z = _rows()
    tone = x[:, : SR // 2].repeat(1, 2)  # a target that never pauses
    _, ok = pause_residual(tone, tone, tone)
    assert ok.item() == 0.0
    s, ok = pause_residual(0.1 * z, z, torch.zeros_like(z))  # noise only: every frame a pause, cut by 20 dB
    assert ok.item() == 1.0 and s.item() == pytest.approx(0.5, abs=0.02)


def test_pause_residual_passes_gradient_to_the_output_in_the_pauses_only():
    from resculpt.models.mask.losses import pause_residual

    t, x, _ = _rows()
    y = x.clone().requires_grad_(True)
    s, _ = pause_residual(y, x, t)
    s.sum().backward()
    g = y.grad[0].abs()
    half = x.shape[1] // 2
    assert g[half:].sum() > 0 and g[:half].sum() == 0


def test_mask_training_step_logs_the_pause_term_when_weighted(tmp_path):
    """One smoke step with ``--weight pause=1`` writes the term to the log, and the validation its score."""
    import json

    from resculpt.cli import main

    out = tmp_path / "run"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--weight", "pause=1"]) == 0
    lines = [json.loads(s) for s in (out / "log.jsonl").read_text().splitlines()]
    assert any("pause" in r for r in lines if "val" not in r)
    vals = [r["val"] for r in lines if "val" in r]
    assert vals and all(0.0 <= v["pause_out"] <= 1.0 for v in vals)


def test_a_presence_head_grown_onto_a_net_starts_at_its_output_times_0_993_and_trains(tmp_path):
    """--presence on an --init-from net: the grown net's gains are the old net's x sigmoid(5); a smoke run logs the
    presence term and the validation its accuracy, and the checkpoint records the head."""
    import json

    from resculpt.models.mask.net import MaskNet
    from resculpt.models.mask.train import load_with_new_head

    from resculpt.cli import main

    torch.manual_seed(0)
    old = MaskNet(n_fine=0, df_bins=8)
    new = MaskNet(n_fine=0, df_bins=8, presence=True)
    load_with_new_head(new, old.state_dict(), "presence_head.")
    feat = torch.randn(2, 20, 24) * 10 - 40
    cond = torch.tensor([[0.0, 1.0]] * 2)
    (g0, d0), (g1, d1) = old(feat, None, cond), new(feat, None, cond)
    s = torch.sigmoid(torch.tensor(5.0))
    assert torch.allclose(g1, g0 * s, atol=1e-6) and torch.allclose(d1, d0 * s, atol=1e-6)
    assert new.last_presence.shape == (2, 20, 1)

    out = tmp_path / "run"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--presence", "--df-bins", "8"]) == 0
    lines = [json.loads(s) for s in (out / "log.jsonl").read_text().splitlines()]
    assert any("presence" in r for r in lines if "val" not in r)
    assert all(0.0 <= r["val"]["presence_acc"] <= 1.0 for r in lines if "val" in r)
    ck = torch.load(out / "ckpt.pt", weights_only=False)
    assert ck["net_kwargs"]["presence"] and "presence_head.weight" in ck["net"]


def test_presence_target_marks_the_frames_within_40_db_of_the_loudest():
    from resculpt.models.mask.band_io import BandIO
    from resculpt.models.mask.train import presence_target

    tt = np.arange(SR) / SR
    t = np.sin(2 * np.pi * 1000 * tt).astype(np.float32)
    t[SR // 2 :] *= 10 ** (-60 / 20)  # second half 60 dB down: a pause
    pt = presence_target(BandIO(160, 80), torch.tensor(t)[None])[0, :, 0]
    n = pt.shape[0]
    assert pt[5 : n // 2 - 2].min() == 1.0 and pt[n // 2 + 2 :].max() == 0.0
    assert presence_target(BandIO(160, 80), torch.zeros(1, SR)).max() == 0.0
