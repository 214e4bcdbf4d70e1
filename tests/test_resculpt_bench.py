"""The metric functions of benchmarks/resculpt_model.py on synthetic profiles and signals (the benchmark's figures
rest on them; the benchmark itself needs the shared data and the bench venv)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from resculpt.dsp.profile import N_BANDS, Profile

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "resculpt_model.py"


@pytest.fixture(scope="module")
def rb():
    spec = importlib.util.spec_from_file_location("bench_resculpt", BENCH)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def _profile(f0=120.0, f1=500.0, lufs=-23.0, centroid=1000.0, tilt=-6.0):
    env = list(-30.0 - 0.8 * np.arange(N_BANDS))
    return Profile("fingerprint", {"f0_median_hz": f0, "f1_hz": f1, "f2_hz": 1500.0, "f3_hz": 2500.0,
                                   "centroid_hz": centroid, "tilt_db_oct": tilt, "lufs_integrated": lufs}, env)


def test_error_ratio_is_one_for_an_unchanged_output_and_zero_on_target(rb):
    src, tgt = _profile(), _profile(centroid=1600.0, lufs=-18.0)
    assert rb.error_ratio(src, src, tgt, "timbre") == pytest.approx(1.0)
    assert rb.error_ratio(tgt, src, tgt, "timbre") == pytest.approx(0.0)


def test_error_ratio_ignores_dims_outside_the_match_mode(rb):
    src, tgt = _profile(), _profile(centroid=1600.0)
    moved_f0 = _profile(f0=240.0)  # F0 is a voice dim, not a timbre dim
    assert rb.error_ratio(moved_f0, src, tgt, "timbre") == pytest.approx(1.0)
    assert rb.error_ratio(moved_f0, src, tgt, "voice") > 1.0


def test_error_ratio_is_nan_when_the_input_is_already_on_target(rb):
    p = _profile()
    assert math.isnan(rb.error_ratio(p, p, p, "timbre"))


def test_dim_errors_in_physical_units(rb):
    e = rb.dim_errors(_profile(f0=240.0, f1=550.0, lufs=-20.0), _profile())
    assert e["f0_st"] == pytest.approx(12.0)
    assert e["formants_pct"] == pytest.approx(10.0 / 3)  # F1 10 % off, F2 and F3 on target
    assert e["loudness_lu"] == pytest.approx(3.0)
    assert e["envelope_db"] == pytest.approx(0.0)


def test_max_band_deviation_reads_a_broadband_gain_in_db(rb):
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    assert rb.max_band_deviation_db(x, x, 16000) == 0.0
    assert rb.max_band_deviation_db(x * np.float32(10 ** (1.5 / 20)), x, 16000) == pytest.approx(1.5, abs=1e-3)


def test_random_targets_are_seeded_and_bounded(rb):
    a = rb.random_delta(np.random.default_rng([1, 2]))
    b = rb.random_delta(np.random.default_rng([1, 2]))
    assert a.band_env_db == b.band_env_db and a.dims == b.dims
    assert np.max(np.abs(a.env())) <= 18.0 and abs(a.dims["lufs_integrated"]) <= 6.0


def _rows(cells):
    """Profile records: {(kind, category): (match-eq ratio, model ratio)}, one target each."""
    out = []
    for (kind, cat), (me, mo) in cells.items():
        out += [{"kind": kind, "category": cat, "system": s, "ratio": v, "match": "timbre"}
                for s, v in (("identity", 1.0), ("match-eq", me), ("model", mo))]
    return out


def _identity(model_db, match_eq_db):
    return [{"kind": "identity", "category": "speech", "system": s, "max_band_dev_db": v}
            for s, v in (("model", model_db), ("match-eq", match_eq_db))]


def test_match_eq_verdict_lists_every_cell_where_the_model_is_not_below_the_match_eq(rb):
    """The auto engine's verdict: a ratio cell counts against the model when its mean ratio is not strictly below
    the match-EQ's (a tie counts against it); the identity kind when its mean band deviation is above the
    match-EQ's; ``cells`` lists the cells the run measured, in the table's order."""
    win = {("reference", "speech"): (0.4, 0.3), ("descriptor", "music"): (1.2, 1.1)}
    assert rb.match_eq_verdict(_rows(win) + _identity(0.0, 0.1)) == {
        "worse_than_match_eq": [], "beats_match_eq_everywhere": True, "cells": ["reference speech", "descriptor music"]}
    lose = {**win, ("random", "speech"): (0.9, 1.0), ("reference", "music"): (0.5, 0.5)}
    v = rb.match_eq_verdict(_rows(lose) + _identity(0.5, 0.1))
    assert v == {"worse_than_match_eq": ["reference music", "random speech", "identity"],
                 "beats_match_eq_everywhere": False,
                 "cells": ["reference speech", "reference music", "descriptor music", "random speech"]}
    assert rb.match_eq_verdict([])["beats_match_eq_everywhere"] is False


def test_the_untrained_speed_reference_bundle_exports_and_loads(rb, tmp_path):
    """benchmarks/resculpt_model.py's speed reference (an untrained generator of the trained one's size) passes the
    export's own checks, which refuse a net that its reference inputs leave at the identity, and the loader's."""
    pytest.importorskip("torch")
    from resculpt.models.resculpt import bundle as RB

    b = RB.load_bundle(rb.fresh_bundle(tmp_path))
    assert b.lookahead_frames == 1
