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

    t, x, z = _rows()
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

    t, x, z = _rows()
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
