"""The resculpt training signal: seeded changes with recorded parameters, codecs aligned to the sample,
a resumable pair cache (models/resculpt/degrade.py, cache.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from resculpt.models.resculpt import cache, degrade

SR = 16000


@pytest.fixture(scope="module")
def src():
    return degrade.Source.synthetic(SR)


def _noise_bursts(seed=1, n=2 * SR):
    rng = np.random.default_rng(seed)
    x = np.zeros(n, np.float32)
    for s in range(1000, n - 2000, 4000):
        x[s : s + 1200] = rng.standard_normal(1200) * 0.1
    return x


def test_pairs_are_deterministic_per_seed_and_index(src):
    """The same (seed, index) gives bit-identical pairs and recipes; another index gives another pair."""
    a, b = degrade.make_pair(src, 3, 5, 1.0), degrade.make_pair(src, 3, 5, 1.0)
    assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"]) and a["params"] == b["params"]
    c = degrade.make_pair(src, 3, 6, 1.0)
    assert not np.array_equal(a["x"], c["x"])


def test_recorded_recipe_reproduces_the_change(src):
    """Applying the recorded parameters to the clean clip gives the changed clip again (no hidden draws)."""
    for i in range(6):
        p = degrade.make_pair(src, 0, i, 1.0, ops=[o for o in degrade.DEFAULT_OPS if o != "codec"])
        recipe = [q for q in p["params"] if q["op"] != "peak_guard"]
        y = degrade.apply_params(p["x"], SR, recipe, src.rir)
        np.testing.assert_allclose(y, p["y"], atol=1e-6)


def test_default_ops_exclude_pitch_and_every_op_can_be_drawn():
    """DEFAULT_OPS leaves out pitch (the generator has no pitch operator); over 200 draws every allowed op appears."""
    assert "pitch" not in degrade.DEFAULT_OPS
    seen = set()
    for i in range(200):
        seen |= {p["op"] for p in degrade.draw_params(np.random.default_rng([0, i]), SR, 2, "speech", degrade.OPS)}
    assert seen == set(degrade.OPS)


@pytest.mark.skipif(degrade.have_codecs() is not None, reason=str(degrade.have_codecs()))
@pytest.mark.parametrize("codec,kbps", [("opus", 6), ("opus", 24), ("mp3", 32), ("mp3", 64)])
def test_codec_roundtrip_is_aligned_to_the_sample(codec, kbps):
    """Opus/MP3 through ffmpeg come back at the clip's rate and length, with the codec delay removed: the
    decoded clip's best cross-correlation lag against the original is 0 on a voiced test signal."""
    t = np.arange(2 * SR) / SR
    voice = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 20))  # a voiced, codec-friendly signal
    x = (0.05 * voice * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    y, lag = degrade.codec_roundtrip(x, SR, codec, kbps)
    assert y.shape == x.shape and y.dtype == np.float32
    assert degrade.codec_delay(x, y, 400) == 0
    assert np.corrcoef(x, y)[0, 1] > 0.9  # measured 0.96 (Opus 6 kbps) .. 0.9997 (MP3 64 kbps)


@pytest.mark.parametrize("st", [-4.0, 3.0])
def test_pitch_shift_keeps_duration_and_alignment(st):
    """Pitch shift keeps the length and the energy envelope in place (lag 0 at 1-sample resolution)."""
    x = _noise_bursts(2)
    y = degrade.pitch_shift(x, SR, st)
    k = 160
    ex = np.convolve(x.astype(float) ** 2, np.ones(k) / k, "same")
    ey = np.convolve(y.astype(float) ** 2, np.ones(k) / k, "same")
    assert y.shape == x.shape
    assert abs(degrade.codec_delay(ex - ex.mean(), ey - ey.mean(), 800)) <= 1


def test_formant_warp_moves_the_envelope_peak():
    """A resonance at 1 kHz moves to ~ratio x 1 kHz under formant_warp (harmonic comb kept)."""
    t = np.arange(2 * SR) / SR
    x = sum(np.sin(2 * np.pi * 100 * h * t) * np.exp(-((100 * h - 1000) / 300) ** 2) for h in range(1, 60))
    x = (x * 0.05).astype(np.float32)
    y = degrade.formant_warp(x, SR, 1.18)
    f = np.fft.rfftfreq(x.size, 1 / SR)

    def peak(z):
        p = np.abs(np.fft.rfft(z)) ** 2
        return float(np.sum(f * p) / np.sum(p))

    assert peak(y) / peak(x) == pytest.approx(1.18, rel=0.06)


def test_cache_build_resumes_and_refuses_other_settings(src, tmp_path):
    """A second build with the same settings makes nothing new; other settings in the same folder are refused;
    PairCache reads the pairs back with their recipes."""
    ops = ["eq", "tilt", "gain"]
    cache.build(tmp_path, 6, seed=1, seconds=0.5, sr=SR, ops=ops, shard_size=4, source=src, log=lambda *_: None)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("shard_*.npz")}
    assert len(before) == 2
    cache.build(tmp_path, 6, seed=1, seconds=0.5, sr=SR, ops=ops, shard_size=4, source=src, log=lambda *_: None)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("shard_*.npz")} == before
    with pytest.raises(SystemExit):
        cache.build(tmp_path, 6, seed=2, seconds=0.5, sr=SR, ops=ops, shard_size=4, source=src)
    pc = cache.PairCache(tmp_path)
    assert len(pc) == 6 and pc.x.shape == (6, SR // 2)
    ref = degrade.make_pair(src, 1, 5, 0.5, ops)
    assert np.array_equal(pc.y[5], ref["y"]) and pc.params[5] == json.loads(json.dumps(ref["params"]))
    y, x, idx = pc.batch(np.random.default_rng(0), 3, 4000)
    assert y.shape == x.shape == (3, 4000)
