"""scripts/mask_pause_diag.py's pause depth: the noise a denoiser leaves in the speech pauses, in dB."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SR = 16000


@pytest.fixture(scope="module")
def diag():
    sys.path.insert(0, str(REPO / "scripts"))
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("mask_pause_diag", REPO / "scripts" / "mask_pause_diag.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _file(seed=0):
    """1 s of a 500 Hz tone then 1 s of silence (clean), and that plus white noise at -30 dBFS (noisy)."""
    tt = np.arange(2 * SR) / SR
    clean = (0.3 * np.sin(2 * np.pi * 500 * tt) * (tt < 1.0)).astype(np.float32)
    noisy = clean + 10 ** (-30 / 20) * np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
    return clean, noisy


def test_pause_depth_reads_a_uniform_cut_in_every_band_and_frame(diag):
    clean, noisy = _file()
    y = noisy.copy()
    y[SR:] *= 10 ** (-20 / 20)
    d = diag.pause_depth(y, noisy, clean)
    assert np.allclose(d["bands"], 20.0, atol=0.01)
    assert d["frames"] == pytest.approx(20.0, abs=0.01) and d["spread"] == pytest.approx(0.0, abs=0.01)


def test_pause_depth_counts_zeroed_frames_in_the_frame_mean_but_not_in_the_band_energy(diag):
    clean, noisy = _file()
    y = noisy.copy()
    y[SR:] *= 10 ** (-20 / 20)
    y[SR + 320 * 10 : SR + 320 * 20] = 0.0  # 10 of the 50 pause frames silenced outright
    d = diag.pause_depth(y, noisy, clean)
    # a silenced frame reads its noise's -30 dB over the 1e-12 floor: 90 dB; 0.8 * 20 + 0.2 * 90 = 34
    assert d["frames"] == pytest.approx(34.0, abs=0.5) and d["spread"] == pytest.approx(28.0, abs=0.5)
    assert np.all(d["bands"] < 21.5)  # the energy left in the other 40 frames still sets it


def test_pause_depth_is_none_without_pauses(diag):
    clean, noisy = _file()
    assert diag.pause_depth(noisy[:SR], noisy[:SR], clean[:SR]) is None
