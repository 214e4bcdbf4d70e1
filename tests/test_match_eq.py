"""The match-EQ stage: target handling and the real-clip figures. The processor contract (streaming,
reset, NaN/Inf, rates, allocation) is tests/test_stage_conformance.py's."""

import numpy as np
import pytest
from resculpt.dsp.processor import SUPPORTED_RATES
from resculpt.dsp.profile import Profile, band_distance_db, long_term_envelope
from resculpt.models import data
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.layout import Layout
from resculpt.plugin_host.render import match_stage, render_with_target, with_match_stage

pytestmark = pytest.mark.usefixtures("private_dirs")

EXAMPLE = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"


def _noise(sr, ch, sec, rng, tilt=0.0):
    x = rng.standard_normal((ch, int(sec * sr)))
    if tilt:
        from scipy.signal import lfilter

        x = lfilter([1.0], [1.0, -tilt], x, axis=1)
        x /= np.max(np.abs(x))
    return (0.1 * x).astype(np.float32)


def _chain(sr, ch, block, target=None, **params):
    c = Chain(Layout(spectral=("match",)), sr, ch, block, params=params)
    if target is not None:
        c.set_target(target)
    c.reset()
    return c


def _target(sr, rng):
    return long_term_envelope(_noise(sr, 1, 1.0, rng, tilt=0.9), sr)


@pytest.mark.parametrize("sr", SUPPORTED_RATES)
@pytest.mark.parametrize("ch", [1, 2])
def test_match_stage_moves_toward_target_at_every_rate_mono_and_stereo(sr, ch, rng):
    """At every supported rate, mono/stereo: the band-envelope distance to the target shrinks by more than half."""
    x = _noise(sr, ch, 3.0, rng)
    tgt = _target(sr, rng)
    y = _chain(sr, ch, 4096, tgt)(x)
    assert np.all(np.isfinite(y))
    before = band_distance_db(long_term_envelope(x, sr), tgt)
    after = band_distance_db(long_term_envelope(y[:, sr:], sr), tgt)
    assert after < 0.5 * before


def test_no_target_or_amount_zero_is_transparent(rng):
    """Without a target (or at amount 0) the stage is the STFT identity."""
    sr = 48000
    x = _noise(sr, 2, 0.5, rng)
    y0 = _chain(sr, 2, 512)(x)
    np.testing.assert_allclose(y0, x, atol=1e-5)
    c = _chain(sr, 2, 512, _target(sr, rng), **{"match.amount": 0.0})
    np.testing.assert_allclose(c(x), x, atol=1e-5)


def test_gains_respect_range_limits_and_a_new_target_crossfades(rng):
    """Band gains stay within [-max_cut, +max_boost]; after a target swap they move gradually (attack/release)."""
    sr = 16000
    c = _chain(sr, 1, 80, np.full(32, 0.0), **{"match.max_boost_db": 6.0, "match.max_cut_db": 6.0})
    x = _noise(sr, 1, 4.0, rng)
    st = match_stage(c)
    env = long_term_envelope(x, sr)
    tgt = env + np.linspace(-30, 30, 32)
    c.set_target(tgt)
    traj = []
    for i in range(0, x.shape[1], 80):
        c.process(x[:, i : i + 80])
        traj.append(st.gains_db())
    traj = np.array(traj)
    assert traj.max() <= 6.0 + 1e-9 and traj.min() >= -6.0 - 1e-9
    steps = np.abs(np.diff(traj, axis=0)).max()
    assert steps < 0.3  # no jump: at most 0.3 dB per 5 ms hop
    assert np.abs(traj[-1]).max() > 5.0  # it got there


def test_delta_target_applies_its_offsets():
    """A delta profile (e.g. from descriptors) sets band gains equal to its offsets (clipped, x amount)."""
    from resculpt.dsp.descriptors import describe

    sr = 16000
    rng = np.random.default_rng(0)
    c = _chain(sr, 1, 4096, describe("more bass"), **{"match.amount": 0.5})
    c(_noise(sr, 1, 4.0, rng))
    g = match_stage(c).gains_db()
    want = 0.5 * np.asarray(describe("more bass").band_env_db)
    assert np.allclose(g[:12], want[:12], atol=0.05)


def test_self_matched_bundled_clip_is_unchanged_within_half_a_db():
    """Rendering a clip toward its own fingerprint leaves its band envelope within 0.5 dB RMS (level-free,
    compared bands) and within 1 dB in every compared band, with 1 and 2 passes."""
    from resculpt.dsp.profile import compare_mask
    from resculpt.plugin_host.audio_io import read_audio

    x, sr = read_audio(EXAMPLE)
    env = long_term_envelope(x, sr)
    c = with_match_stage(Chain(Layout(), sr, 1, 4096))
    for passes in (1, 2):
        y, info = render_with_target(c, x, sr, Profile(band_env_db=list(env)), 4096, passes=passes)
        ey = long_term_envelope(y, sr)
        assert info["distance_after_db"] <= 0.5
        ok = np.isfinite(env) & np.isfinite(ey) & compare_mask()
        d = (ey - env)[ok]
        assert np.abs(d - d.mean()).max() <= 1.0


@pytest.mark.skipif(not data.have_data(), reason="shared data (../shared/data or $RESCULPT_DATA) is absent")
def test_match_eq_removes_at_least_80_percent_of_band_distance_on_held_back_real_clips():
    """On validation speech and music, render --target removes >= 80 % of the band-envelope distance
    to a reference (median over pairs), and a self-matched real clip moves <= 0.5 dB."""
    sp = data.select("speech", "val")[:2]
    mu = [it for it in data.select("music", "val") if it.duration_s >= 5][:2]
    removed = []
    for a in sp + mu[:1]:
        x, sr = data.load(a)
        x = x[None, : 10 * sr]
        c = with_match_stage(Chain(Layout(), sr, 1, 4096))
        _, info = render_with_target(c, x, sr, Profile(band_env_db=list(long_term_envelope(x, sr))), 4096)
        assert info["distance_after_db"] <= 0.5
        for b in sp + mu:
            if b is a:
                continue
            r, _ = data.load(b, sample_rate=sr)
            _, info = render_with_target(c, x, sr, Profile(band_env_db=list(long_term_envelope(r[: 10 * sr], sr))), 4096)
            removed.append(1 - info["distance_after_db"] / info["distance_before_db"])
    assert np.median(removed) >= 0.8, removed
