"""Profile schema: JSON round trip, versioning, normalisation and distance, fingerprints, reference checks."""

import json
import math

import numpy as np
import pytest
from resculpt.dsp.profile import (
    DIMS,
    SCHEMA_VERSION,
    Profile,
    ProfileError,
    apply_delta,
    band_distance_db,
    check_reference,
    distance,
    empty_delta,
    fingerprint,
    from_reference,
    load_profile,
    normalized,
)


def _speechlike(sr, sec=4.0, f0=140.0, rng=None):
    rng = rng or np.random.default_rng(0)
    t = np.arange(int(sec * sr)) / sr
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    ph = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 20) if k * f0 * 1.1 < sr / 2)
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2) + 0.01 * rng.standard_normal(t.size)
    return (0.2 * x / np.max(np.abs(x))).astype(np.float32)


def test_json_round_trip_keeps_every_named_unit_bearing_dim_and_nan_as_null(tmp_path):
    """to_json/load_profile preserve values; NaN is written as null; units are named per dim."""
    p = Profile("target", {"f0_median_hz": 120.0, "lufs_integrated": -20.0}, list(np.linspace(-40, -60, 32)))
    p.band_env_db[31] = float("nan")
    path = p.save(tmp_path / "t.json")
    d = json.loads(path.read_text())
    assert d["schema_version"] == SCHEMA_VERSION
    assert d["band_env_db"][31] is None and d["dims"]["f1_hz"] is None
    assert d["units"]["f0_median_hz"] == "Hz" and d["units"]["tilt_db_oct"] == "dB/oct"
    q = load_profile(path)
    assert q.dims["f0_median_hz"] == 120.0 and math.isnan(q.band_env_db[31])
    assert distance(p, q) == pytest.approx(0.0, abs=1e-4)  # JSON keeps 4 decimals


def test_wrong_schema_version_unknown_dim_and_bad_values_are_rejected_with_the_field_named(tmp_path):
    """Validation names what is wrong."""
    good = Profile().to_dict()
    with pytest.raises(ProfileError, match="schema_version"):
        Profile.from_dict(dict(good, schema_version=99))
    with pytest.raises(ProfileError, match="f0_median_h.*did you mean f0_median_hz"):
        Profile.from_dict(dict(good, dims={"f0_median_h": 1.0}))
    with pytest.raises(ProfileError, match=r"band_env_db\[3\]"):
        Profile.from_dict(dict(good, band_env_db=[0.0] * 3 + ["x"] + [0.0] * 28))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ProfileError, match="malformed JSON"):
        load_profile(tmp_path / "bad.json")


def test_distance_is_zero_to_itself_symmetric_level_free_on_bands_and_weighted():
    """distance(a, a) = 0, symmetric; a pure level shift of the envelope costs nothing; 2 semitones of F0
    is one normalised unit."""
    a = Profile("target", {"f0_median_hz": 100.0}, list(np.linspace(-30, -60, 32)))
    b = a.copy()
    b.band_env_db = list(np.asarray(a.band_env_db) + 6.0)
    assert distance(a, a) == 0 and distance(a, b) == pytest.approx(0.0, abs=1e-9)
    c = a.copy()
    c.dims["f0_median_hz"] = 100.0 * 2 ** (2 / 12)
    assert normalized(c)["f0_median_hz"] - normalized(a)["f0_median_hz"] == pytest.approx(1.0)
    assert distance(a, c) == pytest.approx(distance(c, a))
    assert distance(a, c, weights={"band_env_db": 0.0}) == pytest.approx(1.0)
    assert band_distance_db(a.band_env_db, b.band_env_db) == pytest.approx(0.0, abs=1e-9)
    assert {d.name for d in DIMS} >= {"f0_median_hz", "f1_hz", "centroid_hz", "tilt_db_oct", "lufs_integrated"}


@pytest.mark.parametrize("sr", [16000, 48000])
def test_fingerprint_of_a_known_signal_reads_its_f0_and_loudness(sr):
    """A harmonic 140 Hz (+-5 %) signal: F0 median within 2 %, integrated loudness equals the meter's."""
    from resculpt.dsp.features.loudness import integrated_lufs

    x = _speechlike(sr)
    p = fingerprint(x, sr, "synthetic")
    assert p.kind == "fingerprint"
    assert abs(p.dims["f0_median_hz"] / 140.0 - 1) < 0.02
    assert p.dims["lufs_integrated"] == pytest.approx(integrated_lufs(x, sr), abs=1e-6)
    assert p.stats["f0_hz"]["n"] > 100 and np.isfinite(p.env()[5:20]).all()


@pytest.mark.parametrize("rate", [16000, 48000])
def test_a_dc_offset_leaves_the_fingerprint_as_heard(speech_clip, rate):
    """Real speech on a 0.2 DC offset (nearly twice its RMS, as some val recordings carry): the brightness,
    formant, crest and band-envelope dims stay where the clean clip's are. Without the analysers' DC blocker this
    fails on the first of them: the offset's leakage read the centroid 39 % low."""
    from conftest import resample
    from resculpt.dsp.profile import long_term_envelope

    x = resample(speech_clip[0], speech_clip[1], rate)
    a, b = fingerprint(x, rate), fingerprint(x + np.float32(0.2), rate)
    for k in ("centroid_hz", "f1_hz", "f2_hz", "f3_hz"):
        assert abs(b.dims[k] / a.dims[k] - 1) < 0.02, (k, a.dims[k], b.dims[k])
    assert abs(b.dims["rolloff_hz"] - a.dims["rolloff_hz"]) <= 50.0  # one 50 Hz bin
    assert abs(b.dims["tilt_db_oct"] - a.dims["tilt_db_oct"]) < 0.05
    assert abs(b.dims["crest_db"] - a.dims["crest_db"]) < 0.2
    assert abs(b.dims["voiced_fraction"] - a.dims["voiced_fraction"]) < 0.02
    ok = np.isfinite(a.env())
    assert np.array_equal(ok, np.isfinite(b.env()))
    assert np.max(np.abs(b.env()[ok] - a.env()[ok])) < 0.2
    # the offline envelope the renders prime with is the same measurement
    np.testing.assert_array_equal(long_term_envelope(x + np.float32(0.2), rate), b.env())


def test_apply_delta_moves_ratio_dims_multiplicatively_and_bands_additively():
    """Deltas: frequencies scale, loudness adds, band offsets add."""
    base = Profile("fingerprint", {"f0_median_hz": 100.0, "lufs_integrated": -20.0}, [-40.0] * 32)
    d = empty_delta()
    d.dims["f0_median_hz"] = 1.5
    d.dims["lufs_integrated"] = 3.0
    d.band_env_db = [1.0] * 32
    t = apply_delta(base, d, amount=1.0)
    assert t.kind == "target" and t.dims["f0_median_hz"] == pytest.approx(150.0)
    assert t.dims["lufs_integrated"] == pytest.approx(-17.0) and t.band_env_db[0] == pytest.approx(-39.0)


def test_from_reference_rejects_short_silent_and_clipped_clips_and_accepts_a_good_one():
    """>= 3 s, not silent, not clipped; each refusal says why."""
    sr = 16000
    with pytest.raises(ProfileError, match="too short.*at least 3 s"):
        check_reference(_speechlike(sr, 2.0), sr)
    with pytest.raises(ProfileError, match="silent"):
        check_reference(np.zeros(4 * sr, np.float32), sr)
    loud = np.clip(_speechlike(sr) * 20, -1, 1)
    with pytest.raises(ProfileError, match="clipped"):
        check_reference(loud, sr)
    p = from_reference(_speechlike(sr), sr, "ok.wav")
    assert p.kind == "target" and np.isfinite(p.dims["f0_median_hz"])


def test_a_deltas_moments_follow_its_band_shape_and_its_own_values_are_moves_beyond_it():
    """``apply_delta``: the target's tilt moves by the least-squares slope of the offsets over the tilt bands
    (exactly 1 dB/oct for a 1 dB/oct offset), centroid and roll-off by ``shape_moves``' ratios on the base (up for a
    high boost); the delta's own centroid/tilt values multiply/add on top; zero offsets move nothing."""
    from resculpt.dsp.bands import band_centers_hz, erb_band_edges
    from resculpt.dsp.profile import shape_moves

    lf = np.log2(band_centers_hz(erb_band_edges(32)) / 1000.0)
    env = -40.0 - 3.0 * lf
    base = Profile("fingerprint", {"centroid_hz": 800.0, "rolloff_hz": 2000.0, "tilt_db_oct": -6.0}, list(env),
                   meta={"sample_rate": 48000})
    d = empty_delta()
    d.band_env_db = list(1.0 * lf)
    t = apply_delta(base, d)
    m = shape_moves(env, d.env(), 48000, 800.0, 2000.0)
    assert m["tilt_db_oct"] == pytest.approx(1.0, abs=1e-9) and m["centroid_hz"] > 1.05 and m["rolloff_hz"] > 1.05
    assert t.dims["tilt_db_oct"] == pytest.approx(-5.0) and t.dims["centroid_hz"] == pytest.approx(800.0 * m["centroid_hz"])
    d.dims["centroid_hz"], d.dims["tilt_db_oct"] = 1.1, 0.5
    t2 = apply_delta(base, d)
    assert t2.dims["centroid_hz"] == pytest.approx(t.dims["centroid_hz"] * 1.1)
    assert t2.dims["tilt_db_oct"] == pytest.approx(-4.5)
    assert shape_moves(env, np.zeros(32), 48000, 800.0, 2000.0) == {"centroid_hz": 1.0, "rolloff_hz": 1.0,
                                                                   "tilt_db_oct": 0.0}
    t0 = apply_delta(base, empty_delta())
    assert all(t0.dims[k] == base.dims[k] for k in ("centroid_hz", "rolloff_hz", "tilt_db_oct"))


def _tilted(x, sr, slope_db_oct):
    """(1, n) ``x`` through a zero-phase tilt of ``slope_db_oct`` (0 dB at 1 kHz, flat below 50 Hz)."""
    n = x.shape[-1]
    f = np.fft.rfftfreq(n, 1.0 / sr)
    g = 10.0 ** (slope_db_oct * np.log2(np.maximum(f, 50.0) / 1000.0) / 20.0)
    return np.fft.irfft(np.fft.rfft(x, axis=-1) * g, n, axis=-1).astype(np.float32)


def _bright_and_bands(x, sr):
    """(Brightness rows, band rows, long-term envelope) of ``x`` as an offline render's correction pass reads them."""
    from resculpt.dsp.features import analyze
    from resculpt.dsp.features.spectral import Brightness
    from resculpt.dsp.profile import EnvelopeAccumulator

    acc = EnvelopeAccumulator(sr, x.shape[0])
    acc.add(x)
    env = acc.result()
    return analyze(Brightness(), x, sr), np.concatenate(list(acc.store)), env


def test_brightness_tilt_is_zero_toward_the_sounds_own_fingerprint_and_finds_a_known_tilt():
    """Real speech: toward its own fingerprint the tilt is 0 (every term is 0 there); toward the fingerprint of the
    same speech tilted by +1 and -1 dB/oct it finds that tilt within 0.3 dB/oct (the centroid and roll-off are
    predicted from band levels, the envelope and the tilt exactly)."""
    from resculpt.dsp.profile import brightness_tilt
    from resculpt.models import data

    x, sr = data.load(__import__("pathlib").Path(__file__).resolve().parent.parent / "examples"
                      / "speech_1081_librispeech.flac")
    x = np.ascontiguousarray(x[: 6 * sr], np.float32)[None]
    rows = _bright_and_bands(x, sr)
    assert brightness_tilt(*rows, fingerprint(x, sr)) == 0.0
    for slope in (1.0, -1.0):
        t = fingerprint(_tilted(x, sr, slope), sr)
        assert abs(brightness_tilt(*rows, t) - slope) <= 0.3
    t = fingerprint(x, sr)
    for k in ("centroid_hz", "rolloff_hz", "tilt_db_oct"):
        t.dims[k] = float("nan")
    assert brightness_tilt(*rows, t) == 0.0


def test_warp_band_envelope_moves_a_peak_by_the_ratio_and_keeps_undefined_bands():
    """A band envelope with one peak, warped by 2: the peak moves to the band nearest twice its frequency (log-
    frequency interpolation between band centres); by 1 it is unchanged; a band the envelope does not define stays
    undefined, and the lowest bands, whose source lies below the first band, keep their own level."""
    from resculpt.dsp.bands import BandMap
    from resculpt.dsp.profile import warp_band_envelope

    c = BandMap(48000, 960, 32).centers_hz
    env = -40.0 + 20.0 * np.exp(-0.5 * (np.log2(c / 500.0) / 0.15) ** 2)
    env[-1] = np.nan
    w = warp_band_envelope(env, 2.0)
    assert abs(math.log2(c[int(np.nanargmax(w))] / 1000.0)) < 0.1
    assert np.isnan(w[-1]) and w[0] == env[0]
    np.testing.assert_array_equal(warp_band_envelope(env, 1.0), env)
