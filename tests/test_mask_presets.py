"""The mask presets (both tiers): they load, run on the bundled real clip, and sound different from each other."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from resculpt.models import data
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.presets import load_preset

PRESETS = ("denoise-gentle", "denoise-strong", "voice-enhance", "denoise-live", "denoise-hq")


def _slot(name):
    """The preset's mask tier: ``mask`` (live) or ``mask_hq`` (high quality)."""
    return next(s for s in load_preset(name).layout.spectral if s in ("mask", "mask_hq"))
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"


@pytest.fixture(scope="module")
def noisy_clip():
    """The bundled real clip (LibriSpeech speaker 1081, held out) at 48 kHz with steady noise at 5 dB SNR."""
    x, _ = data.load(EXAMPLE, 48000)
    x = x[: 48000 * 4]
    n = np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    n *= np.sqrt(np.mean(x**2) / np.mean(n**2)) * 10 ** (-5 / 20)
    return (x + n).astype(np.float32)


@pytest.fixture(scope="module")
def outputs(noisy_clip):
    out = {}
    for name in PRESETS:
        ch = Chain.from_preset(name, sample_rate=48000, channels=1)
        out[name] = ch(noisy_clip[None].copy())[0]
    return out


def test_mask_presets_use_the_mask_slot_with_documented_windows():
    """Each preset runs a mask tier (denoise-hq the high-quality one); denoise-live's latency is <= 10 ms at
    48 kHz (10 ms window, no look-ahead), denoise-hq's <= 20 ms (the same window plus 10 ms of look-ahead)."""
    assert [_slot(n) for n in PRESETS] == ["mask"] * 4 + ["mask_hq"]
    live = Chain.from_preset("denoise-live", sample_rate=48000, channels=2)
    assert 1000.0 * live.latency_samples / 48000 <= 10.0
    hq = Chain.from_preset("denoise-hq", sample_rate=48000, channels=2)
    assert 1000.0 * hq.latency_samples / 48000 <= 20.0
    assert hq.latency_samples == live.latency_samples + 2 * 240  # two 5 ms hops of look-ahead


def test_mask_presets_output_is_finite_and_the_mask_removes_energy(noisy_clip, outputs):
    """Every preset gives finite output with less energy than the same preset with mask.mix = 0."""
    for name, y in outputs.items():
        assert np.all(np.isfinite(y)), name
        ch = Chain.from_preset(name, sample_rate=48000, channels=1)
        ch.params[_slot(name) + ".mix"] = 0.0
        ch.reset()
        ref = ch(noisy_clip[None].copy())[0]
        assert np.mean(y**2) < 0.9 * np.mean(ref**2), name


def test_mask_presets_are_audibly_distinct(outputs):
    """Any two presets differ by more than -25 dB (difference energy relative to the output energy)."""
    for a, b in combinations(PRESETS, 2):
        d = 10 * np.log10(np.mean((outputs[a] - outputs[b]) ** 2) / np.mean(outputs[a] ** 2))
        assert d > -25.0, f"{a} vs {b}: difference only {d:.1f} dB"
