"""The differentiable STOI term of the mask trainer (``losses.stoi_torch``; needs the [train] extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")

SR = 16000


def _speechlike(seed: int, seconds: float = 1.0) -> np.ndarray:
    """Harmonics of a gliding 120-220 Hz F0 under a 4 Hz syllable envelope with pauses: band envelopes that
    move the way speech's do, which is what STOI correlates."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    tt = np.arange(n) / SR
    f0 = 120 + 100 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * tt + rng.uniform(0, 6)))
    ph = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * ph + rng.uniform(0, 6)) / k for k in range(1, 25) if k * 220 < SR / 2)
    syll = np.clip(np.sin(2 * np.pi * 4 * tt + rng.uniform(0, 6)), 0, None) ** 2
    return (0.1 * x * syll).astype(np.float32)


def _noise_at(clean: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
    z *= np.sqrt((clean ** 2).mean() / (z ** 2).mean()) * 10 ** (-snr_db / 20)
    return clean + z


def test_stoi_torch_scores_the_target_one_falls_with_each_step_of_noise_and_ignores_the_output_level():
    from resculpt.models.mask.losses import stoi_torch

    c = _speechlike(0)
    ys = [c, _noise_at(c, 10, 1), _noise_at(c, 0, 1), _noise_at(c, -10, 1)]
    s, ok = stoi_torch(torch.tensor(np.stack(ys)), torch.tensor(np.stack([c] * 4)))
    assert ok.tolist() == [1.0] * 4
    assert s[0] > 0.999
    assert s[0] > s[1] > s[2] > s[3]
    s3, _ = stoi_torch(torch.tensor(3.0 * ys[2])[None], torch.tensor(c)[None])
    assert abs(float(s3[0]) - float(s[2])) < 1e-4  # the level normalisation: a louder output scores the same


def test_stoi_torch_per_band_gives_the_bands_whose_mean_is_the_score_and_noise_in_one_band_lowers_that_band():
    from resculpt.models.mask.losses import stoi_torch

    c = _speechlike(3)
    # noise band-limited to about 1-2 kHz: only the bands centred 0.95-1.9 kHz lose correlation
    z = np.fft.rfft(np.random.default_rng(4).standard_normal(c.size))
    f = np.fft.rfftfreq(c.size, 1 / SR)
    z[(f < 1000) | (f > 2000)] = 0
    z = np.fft.irfft(z, c.size).astype(np.float32)
    y = c + z * np.sqrt((c**2).mean() / (z**2).mean()) * 3.0
    yt, ct = torch.tensor(np.stack([c, y])), torch.tensor(np.stack([c, c]))
    bands, ok = stoi_torch(yt, ct, per_band=True)
    score, _ = stoi_torch(yt, ct)
    assert bands.shape == (2, 15) and ok.tolist() == [1.0, 1.0]
    assert torch.allclose(bands.mean(1), score, atol=1e-6)
    drop = (bands[0] - bands[1]).numpy()
    centres = 150 * 2 ** (np.arange(15) / 3)
    inside = (centres > 1000) & (centres < 2000)
    assert drop[inside].min() > 0.1 and np.abs(drop[centres < 600]).max() < 0.02


def test_stoi_torch_flags_silent_targets_and_rows_shorter_than_one_window():
    from resculpt.models.mask.losses import stoi_torch

    c = _speechlike(1)
    s, ok = stoi_torch(torch.tensor(np.stack([c, c])), torch.tensor(np.stack([c, np.zeros_like(c)])))
    assert ok.tolist() == [1.0, 0.0]
    short = torch.tensor(c[: SR // 4])[None]  # 250 ms < 30 frames of 12.5 ms
    s, ok = stoi_torch(short, short)
    assert ok.tolist() == [0.0] and s.tolist() == [0.0]


def test_gradient_steps_on_the_stoi_term_raise_the_score_of_a_noisy_output():
    from resculpt.models.mask.losses import stoi_torch

    c = _speechlike(2)
    t = torch.tensor(c)[None]
    y = torch.tensor(_noise_at(c, -5, 3))[None].requires_grad_(True)
    start = float(stoi_torch(y, t)[0][0])
    opt = torch.optim.Adam([y], lr=3e-3)
    for _ in range(30):
        s, _ = stoi_torch(y, t)
        opt.zero_grad()
        (1 - s).sum().backward()
        assert torch.isfinite(y.grad).all()
        opt.step()
    assert float(stoi_torch(y, t)[0][0]) > start + 0.05


def test_weight_turns_the_stoi_term_on_in_a_smoke_run_and_rejects_unknown_terms_and_negative_weights(tmp_path):
    from resculpt.cli import main

    out = tmp_path / "on"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--weight", "stoi=2"]) == 0
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert logs and all("stoi" in r and np.isfinite(r["stoi"]) for r in logs)
    assert json.loads((out / "summary.json").read_text())["loss_w"]["stoi"] == 2.0
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(tmp_path / "off")]) == 0
    logs = [json.loads(line) for line in (tmp_path / "off" / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert logs and not any("stoi" in r for r in logs)  # off by default: the shipped recipes are unchanged
    for bad in ("stoy=1", "stoi=-1", "stoi=x"):
        with pytest.raises(SystemExit, match="--weight"):
            main(["train", "mask", "--smoke", "--quiet", "--out", str(tmp_path / "bad"), "--weight", bad])
