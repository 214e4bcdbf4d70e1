"""Parameter table: validation, normalisation, smoothing, thread handoff."""

import math
import threading

import numpy as np
import pytest

from resculpt.dsp import params as params_mod
from resculpt.dsp.params import ParamError, ParamSpec, ParamTable
from resculpt.plugin_host.catalog import all_param_specs


def test_every_parameter_id_has_a_unit_suffix_when_it_has_a_unit():
    """Ids carry their unit (_db, _hz, _ms) so OSC/DAW users see it in the name."""
    suffix = {"dB": "_db", "Hz": "_hz", "ms": "_ms"}
    for s in all_param_specs():
        if s.unit in suffix:
            assert s.id.endswith(suffix[s.unit]), s.id


def test_set_clamps_out_of_range_values_and_returns_the_clamped_value():
    t = ParamTable(all_param_specs())
    assert t.set("out.gain_db", 1000) == 24.0
    assert t.get("out.gain_db") == 24.0
    assert t.set("mix", -3) == 0.0


def test_unknown_id_error_suggests_close_ids():
    t = ParamTable(all_param_specs())
    with pytest.raises(ParamError, match="did you mean.*out.gain_db"):
        t.set("out.gain_bd", 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "loud", None, [1]])
def test_non_finite_or_non_numeric_values_raise_a_clear_error_and_change_nothing(bad):
    t = ParamTable(all_param_specs())
    before = t.get("mix")
    with pytest.raises(ParamError, match="mix"):
        t.set("mix", bad)
    assert t.get("mix") == before


def test_normalized_round_trip_for_linear_and_log_parameters():
    for s in all_param_specs():
        if s.discrete:
            continue
        for v in (s.min, s.default, s.max):
            assert math.isclose(s.from_normalized(s.to_normalized(v)), v, rel_tol=1e-9, abs_tol=1e-9), s.id


def test_set_many_validates_everything_before_publishing_anything():
    """A batch with one bad value leaves every parameter untouched."""
    t = ParamTable(all_param_specs())
    with pytest.raises(ParamError):
        t.set_many({"mix": 0.3, "out.gain_db": "x"})
    assert t.get("mix") == 1.0


def test_ramp_reaches_target_after_smoothing_time_linearly():
    """A change ramps linearly over smoothing_ms and lands exactly on the target."""
    spec = ParamSpec("g_db", -60, 0, 0, "dB", smoothing_ms=10.0)
    t = ParamTable([spec])
    t.prepare(48000)
    t.set("g_db", -40)
    steps = 480
    vals = []
    for _ in range(steps // 48):
        t.advance(48)
        vals.append(t.value[0])
    assert vals[-1] == -40.0
    d = np.diff([0.0] + vals)
    assert np.allclose(d, d[0])
    assert not t.ramping


def test_serial_changes_whenever_a_value_moves_and_only_then():
    """Stages skip re-deriving coefficients while ``serial`` is unchanged, so it must move on every
    advance that moves a value (each step of a ramp, a jump) and on snap, and stay put otherwise."""
    spec = ParamSpec("g_db", -60, 0, 0, "dB", smoothing_ms=1.0)
    t = ParamTable([spec, ParamSpec("mode", 0, 2, 0, "", scale="choice", smoothing_ms=0.0, choices=("a", "b", "c"))])
    t.prepare(48000)
    s = t.serial
    assert not t.advance(64) and t.serial == s      # nothing set: no move, same serial
    t.set("g_db", -40)
    assert t.serial == s                             # a target alone moves no value
    seen = []
    while True:
        before = t.value[0]
        moved = t.advance(16)
        assert moved == (t.serial != s) == (t.value[0] != before)
        if not moved:
            break
        seen.append(t.value[0])
        s = t.serial
    assert seen[-1] == -40.0 and len(seen) == 3       # 48 samples of ramp in steps of 16
    t.set("mode", "c")
    assert t.advance(1) and t.serial != s and t.value[1] == 2.0
    s = t.serial
    t.snap()
    assert t.serial != s


def test_choice_and_bool_parameters_accept_names_and_jump_without_ramps():
    s = ParamSpec("m", 0, 2, 0, scale="choice", smoothing_ms=0, choices=("a", "b", "c"))
    b = ParamSpec("on", 0, 1, 0, scale="bool", smoothing_ms=0)
    t = ParamTable([s, b])
    assert t.set("m", "c") == 2.0
    assert t.set("on", "on") == 1.0
    with pytest.raises(ParamError, match="one of a, b, c"):
        t.set("m", "d")


def test_concurrent_control_writes_never_give_the_audio_side_an_invalid_value():
    """A control thread hammering set() while the audio side advances never yields a value
    outside the spec range or a non-finite value."""
    t = ParamTable(all_param_specs())
    t.prepare(48000)
    i = t.index("out.gain_db")
    stop = threading.Event()

    def writer():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            t.set("out.gain_db", float(rng.uniform(-100, 100)))

    th = threading.Thread(target=writer)
    th.start()
    try:
        for _ in range(20000):
            t.advance(64)
            v = t.value[i]
            assert np.isfinite(v) and -60.0 - 1e-9 <= v <= 24.0 + 1e-9
    finally:
        stop.set()
        th.join()


@pytest.mark.skipif(not params_mod.AVAILABLE, reason="numba not installed (extra 'fast') or RESCULPT_NO_KERNELS set")
def test_compiled_ramps_move_every_value_bit_for_bit_as_the_numpy_code():
    """The host's table (prepare(compiled=True)) ramps through one compiled loop: over a stream of sub-blocks of
    1..64 samples with targets changed mid-ramp on many parameters of the catalog, its values, prev, serial and
    ramping flag equal the numpy code's after every advance."""
    tables = []
    for compiled in (True, False):
        t = ParamTable(all_param_specs())
        t.prepare(48000, compiled=compiled)
        assert t._kern is compiled
        tables.append(t)
    rng = np.random.default_rng(3)
    specs = [s for s in tables[0].specs if s.smoothing_ms > 0 and s.scale not in ("choice", "bool")]
    assert len(specs) > 20
    moved = 0
    for k in range(400):
        if k % 9 == 0:
            pick = [specs[i] for i in rng.choice(len(specs), 5, replace=False)]
            vals = {s.id: float(rng.uniform(s.min, s.max)) for s in pick}
            for t in tables:
                t.set_many(vals, notify=False)
        n = int(rng.integers(0, 65))
        got = [t.advance(n) for t in tables]
        assert got[0] == got[1]
        moved += got[0]
        a, b = tables
        np.testing.assert_array_equal(a.value, b.value)
        np.testing.assert_array_equal(a.prev, b.prev)
        assert a.serial == b.serial and a.ramping == b.ramping
    assert moved > 100
