"""The loudness follower (dsp/loudness_follow.py) in both target stages: it reaches an absolute target's loudness,
leaves the level alone for the input's own profile and for a description that asks no loudness move, follows
a description's loudness move, is bounded, and is nothing at amount 0. The stages' contract (streaming,
allocation) is tests/test_stage_conformance.py's; streaming with the follower moving is checked here too."""

import math

import numpy as np
import pytest
from resculpt.dsp.descriptors import describe
from resculpt.dsp.features.loudness import integrated_lufs
from resculpt.dsp.loudness_follow import MAX_DB
from resculpt.dsp.match_eq import MatchTarget
from resculpt.dsp.profile import fingerprint
from resculpt.models import data
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.layout import Layout
from resculpt.plugin_host.render import _ArrayInput, match_stage, prime_loudness, render_with_target

pytestmark = pytest.mark.usefixtures("private_dirs")

EXAMPLE = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"
SR = 48000
NAN = float("nan")


def _steady(seconds: float, lufs: float, rng) -> np.ndarray:
    """(1, n) float32 pink-ish steady noise scaled to ``lufs`` integrated loudness."""
    from scipy.signal import lfilter

    x = lfilter([1.0], [1.0, -0.9], rng.standard_normal(int(seconds * SR)))
    x *= 10.0 ** ((lufs - integrated_lufs(x, SR)) / 20.0)
    return x[None].astype(np.float32)


def _follower_only(loudness, block=4096, prime=None, **params):
    """The match stage with a target that compares no band (so its EQ is flat): the loudness follower alone;
    ``prime``: the (1, n) input an offline render measures first (``render.prime_loudness``), None: live."""
    c = Chain(Layout(spectral=("match",)), SR, 1, block, params=params)
    c.set_target(MatchTarget.make(np.full(32, np.nan), loudness=loudness), engine="match-eq")
    if prime is not None:
        assert prime_loudness(c, _ArrayInput(prime), 4096) is not None
    return c


def _speech() -> np.ndarray:
    """(1, n) the bundled speech example at 48 kHz."""
    x, _ = data.load(EXAMPLE, SR)
    return np.ascontiguousarray(x, np.float32).reshape(1, -1)


def test_live_follower_reaches_the_targets_loudness_within_half_an_lu_after_seven_seconds(rng):
    """Live, steady noise at -30 LUFS, target -20 LUFS: the gain starts once the meter's estimate has held still
    for 1 s (from 1.4 s) and moves with a 1 s time constant; from 7 s on the output reads -20 +- 0.5 LU (the
    dead band: 0.3 LU plus twice the settled estimate's wander)."""
    x = _steady(10.0, -30.0, rng)
    y = _follower_only((-20.0, NAN))(x)
    assert abs(integrated_lufs(y[:, 7 * SR :], SR) - (-20.0)) < 0.5


def test_an_offline_render_reaches_the_targets_loudness_from_the_first_second(rng):
    """Primed with the whole input's loudness (as ``render`` does), the gain starts at its goal: the whole output
    reads the target within 0.1 LU."""
    x = _steady(4.0, -30.0, rng)
    y = _follower_only((-20.0, NAN), prime=x)(x)
    assert abs(integrated_lufs(y, SR) - (-20.0)) < 0.1


def test_match_loudness_db_offsets_the_goal_offline_and_through_renders_second_pass(rng):
    """``match.loudness_db`` +6: the follower-only chain, primed, reads the target + 6 LU within 0.1 LU; and a
    2-pass ``render_with_target`` of speech toward its own fingerprint (whose second pass corrects the goal by
    the first pass's measured output) lands 6 LU above the input within 0.2 LU."""
    x = _steady(4.0, -30.0, rng)
    y = _follower_only((-20.0, NAN), prime=x, **{"match.loudness_db": 6.0})(x)
    assert abs(integrated_lufs(y, SR) - (-14.0)) < 0.1
    s = _speech()[:, : 8 * SR]
    c = Chain(Layout(spectral=("match",)), SR, 1, 4096, params={"match.loudness_db": 6.0})
    y, _ = render_with_target(c, s, SR, fingerprint(s, SR), 4096)
    assert abs(integrated_lufs(y, SR) - (integrated_lufs(s, SR) + 6.0)) < 0.2


def test_the_model_stage_moves_loudness_toward_the_target_too(rng):
    """The same operator in the resculpt stage: an absolute target 8 LU above a steady input, live, ends within
    0.5 LU from 7 s on."""
    from resculpt.dsp.profile import Profile

    x = _steady(10.0, -30.0, rng)
    c = Chain(Layout(spectral=("resculpt",)), SR, 1, 4096)
    c.set_target(Profile("target", {"lufs_integrated": -22.0}, band_env_db=list(fingerprint(x, SR).band_env_db)),
                 engine="model")
    y = c(x)
    assert abs(integrated_lufs(y[:, 7 * SR :], SR) - (-22.0)) < 0.5


@pytest.mark.parametrize("engine,slot", [("match-eq", "match"), ("model", "resculpt")])
def test_the_inputs_own_profile_leaves_the_level_alone(engine, slot):
    """Target = the input's own fingerprint (8 s of speech with pauses, whose running loudness estimate wanders by
    several LU in its first second): an offline render (``render_with_target``: primed, 2 passes, as ``render`` runs
    either engine) keeps the integrated loudness within 0.1 LU (the model, its running fingerprint held at the
    input's own profile: exactly; the match-EQ's second pass, whose loudness goal is corrected by the first pass's
    measured output, lands 0.06 LU off on this clip); live, the follower adds nothing to what the band work does to
    the level
    (the live match-EQ, whose envelope estimate starts empty, moves it by 0.6 LU in its first seconds)."""
    x = _speech()[:, : 8 * SR]
    fp = fingerprint(x, SR)
    lx = integrated_lufs(x, SR)
    c = Chain(Layout(spectral=(slot,)), SR, 1, 4096)
    c.set_target(fp, engine=engine)
    y, _ = render_with_target(c, x, SR, fp, 4096)  # as render runs either engine: primed, 2 passes
    assert abs(integrated_lufs(y, SR) - lx) < (0.1 if slot == "match" else 0.001)
    live = {}
    for follow in (0.0, 1.0):
        c = Chain(Layout(spectral=(slot,)), SR, 1, 4096, params={f"{slot}.loudness_follow": follow})
        c.set_target(fp, engine=engine)
        live[follow] = abs(integrated_lufs(c(x), SR) - lx)
    assert live[1.0] <= live[0.0] + 0.05


@pytest.mark.parametrize("engine,slot", [("match-eq", "match"), ("model", "resculpt")])
def test_amount_zero_is_the_input_bit_for_bit(engine, slot, rng):
    """At ``<slot>.amount`` 0 a target 10 LU away changes nothing: the output equals the no-target output exactly."""
    from resculpt.dsp.profile import Profile

    x = _steady(3.0, -30.0, rng)
    bare = Chain(Layout(spectral=(slot,)), SR, 1, 4096)(x)
    c = Chain(Layout(spectral=(slot,)), SR, 1, 4096, params={f"{slot}.amount": 0.0})
    c.set_target(Profile("target", {"lufs_integrated": -20.0}, band_env_db=list(-30.0 - np.arange(32.0))), engine=engine)
    assert np.array_equal(c(x), bare)


def test_loudness_follow_zero_leaves_the_level_to_the_band_work(rng):
    """``match.loudness_follow`` 0: the follower-only chain is the input, bit for bit."""
    x = _steady(3.0, -30.0, rng)
    bare = Chain(Layout(spectral=("match",)), SR, 1, 4096)(x)
    assert np.array_equal(_follower_only((-20.0, NAN), **{"match.loudness_follow": 0.0})(x), bare)


def test_gain_is_bounded_at_max_db(rng):
    """A target 60 LU above the input: the gain stops at +MAX_DB (24 dB), so the output is 24 LU louder."""
    x = _steady(3.0, -70.0 + 5.0, rng)  # above the meters' -70 LUFS absolute gate
    c = _follower_only((-5.0, NAN), prime=x)
    y = c(x)
    assert match_stage(c)._follow.gain_db == pytest.approx(MAX_DB, abs=1e-6)
    assert integrated_lufs(y, SR) - integrated_lufs(x, SR) == pytest.approx(MAX_DB, abs=0.1)


def test_a_description_without_a_loudness_move_keeps_the_inputs_loudness_under_the_eq(rng):
    """"much warmer" through the match-EQ boosts the low mids by several dB, which alone makes steady noise louder;
    with the follower the output's loudness stays within 0.3 LU of the input's (from 2 s on)."""
    x = _steady(6.0, -30.0, rng)
    kw = {"match.attack_ms": 20.0, "match.release_ms": 20.0}
    c0 = Chain(Layout(spectral=("match",)), SR, 1, 4096, params={**kw, "match.loudness_follow": 0.0})
    c0.set_target(describe("much warmer"), engine="match-eq")
    moved = integrated_lufs(c0(x)[:, 2 * SR :], SR) - integrated_lufs(x[:, 2 * SR :], SR)
    c = Chain(Layout(spectral=("match",)), SR, 1, 4096, params=kw)
    c.set_target(describe("much warmer"), engine="match-eq")
    kept = integrated_lufs(c(x)[:, 2 * SR :], SR) - integrated_lufs(x[:, 2 * SR :], SR)
    assert abs(moved) > 0.5 and abs(kept) < 0.3


def test_a_description_that_asks_for_loudness_gets_it(rng):
    """"louder" (+3 LU) through the match-EQ: from 4 s on the output is 3 +- 0.3 LU above the input."""
    x = _steady(8.0, -30.0, rng)
    c = Chain(Layout(spectral=("match",)), SR, 1, 4096)
    c.set_target(describe("louder"), engine="match-eq")
    d = integrated_lufs(c(x)[:, 4 * SR :], SR) - integrated_lufs(x[:, 4 * SR :], SR)
    assert d == pytest.approx(3.0, abs=0.3)


@pytest.mark.parametrize("block", [63, 64, 65, 512, 8193])
def test_streaming_with_the_follower_moving_equals_one_whole_signal_call(block, rng):
    """The follower's meters and gain depend on frames only: any block partition gives the one-call output exactly
    (primed, so the gain moves from the first frame and its goal is corrected by the meters every 100 ms)."""
    x = _steady(2.0, -30.0, rng)
    whole = _follower_only((-20.0, NAN), block=len(x[0]), prime=x)(x)
    assert np.array_equal(_follower_only((-20.0, NAN), block=block, prime=x)(x), whole)
    assert not math.isclose(integrated_lufs(whole, SR), integrated_lufs(x, SR), abs_tol=1.0)


def _sections(levels, seconds: float, rng) -> np.ndarray:
    """(1, n) float32 steady noise in sections of ``seconds`` each, at the given LUFS one after the other (a
    loudness range of phrases without pauses)."""
    return np.concatenate([_steady(seconds, v, rng) for v in levels], axis=1)


def test_range_trace_maps_short_term_loudness_around_the_integrated_level():
    """``range_trace``: each step's gain is (k - 1)(S - L) on the S centred on it (the trailing value 1.5 s later),
    offset by one constant (the integrated loudness kept), S held within [P10 - 3, P95 + 3] LU and silence taking
    the quietest held value; a goal within the dead band of the input's range, or no gated value, is no trace."""
    from resculpt.dsp.loudness_follow import RANGE_CENTRE_S, RANGE_STEP_S, range_trace

    st = np.r_[np.full(40, -20.0), np.full(40, -30.0), np.full(40, -20.0), [-np.inf] * 10]
    tr = range_trace(st, -22.0, 10.0, 5.0)  # k = 0.5
    shift = int(round(RANGE_CENTRE_S / RANGE_STEP_S))
    centred = np.r_[st[shift:], np.full(shift, st[-1])]
    loud, quiet = centred == -20.0, centred == -30.0
    # 10 LU apart in S, 5 LU apart in the gains' effect: the quiet steps get 5 dB more than the loud ones
    assert np.ptp(tr[loud]) < 1e-12 and np.ptp(tr[quiet]) < 1e-12
    assert tr[quiet][0] - tr[loud][0] == pytest.approx(5.0)
    # silence (the tail) is held at P10 - 3 LU = -33 LUFS: 1.5 dB above the quiet steps' gain
    assert tr[-1] - tr[quiet][0] == pytest.approx(1.5)
    assert range_trace(st, -22.0, 10.0, 10.1) is None
    assert range_trace(np.full(20, -np.inf), -22.0, 10.0, 5.0) is None


def test_range_trace_does_not_lift_a_pause_when_compressing():
    """With the momentary loudness given, compressing (k < 1): the steps whose centred 400 ms loudness is more than
    20 LU under L (a pause) get at most the trace's common offset (no lift), every other step the gain it gets
    without the momentary series (up to that offset, the same for all); expanding (k > 1), the momentary series
    changes nothing."""
    from resculpt.dsp.loudness_follow import (RANGE_MOMENT_CENTRE_S, RANGE_PAUSE_LU, RANGE_STEP_S,
                                              range_trace)

    st = np.r_[np.full(40, -20.0), np.full(30, -34.0), np.full(40, -20.0), np.full(30, -30.0)]
    mo = np.r_[np.full(30, -20.0), np.full(20, -60.0), np.full(60, -20.0), np.full(30, -30.0)]
    plain = range_trace(st, -22.0, 10.0, 5.0)
    quiet = range_trace(st, -22.0, 10.0, 5.0, mo)
    ms = int(round(RANGE_MOMENT_CENTRE_S / RANGE_STEP_S))
    pause = np.r_[mo[ms:], np.full(ms, mo[-1])] < -22.0 - RANGE_PAUSE_LU
    assert pause.sum() == 20
    # the pause steps asked a lift without the momentary series, and get none with it
    off = quiet[~pause] - plain[~pause]
    assert np.ptp(off) < 1e-9
    assert (plain[pause] - off[0] > 3.0).all()
    assert (quiet[pause] - off[0] <= 1e-9).all()
    np.testing.assert_array_equal(range_trace(st, -22.0, 10.0, 15.0, mo), range_trace(st, -22.0, 10.0, 15.0))


@pytest.mark.parametrize("engine,slot", [("match-eq", "match"), ("model", "resculpt")])
def test_a_compressing_render_does_not_lift_the_room_tone_of_a_pause(engine, slot, rng, monkeypatch):
    """Phrases 12 LU apart around a 3 s pause of room tone 35 LU under the loud phrases, rendered offline toward
    "compressed": the pause leaves at most 1 dB above its input level, while the range falls by more than 1 LU;
    the same render with the trace blind to the momentary loudness (the map alone) lifts the pause by more than
    3 dB. Prints both lifts (``pytest -s``)."""
    from resculpt.dsp import loudness_follow

    x = np.concatenate([_steady(4.0, -20.0, rng), _steady(4.0, -32.0, rng), _steady(3.0, -55.0, rng),
                        _steady(4.0, -32.0, rng), _steady(4.0, -20.0, rng)], axis=1)
    d = describe("compressed")
    p = slice(int(8.5 * SR), int(10.5 * SR))  # inside the pause, clear of the 0.4 s windows at its edges

    def render():
        c = Chain(Layout(spectral=(slot,)), SR, 1, 4096)
        c.set_target(d, engine=engine)
        y = render_with_target(c, x, SR, d, 4096)[0]
        return y, 10.0 * math.log10(float(np.mean(y[:, p] ** 2)) / float(np.mean(x[:, p] ** 2)))

    y, lift = render()
    trace = loudness_follow.range_trace
    monkeypatch.setattr(loudness_follow, "range_trace", lambda st, l, a, g, momentary=None: trace(st, l, a, g))
    lift_map = render()[1]
    print(f"{engine}: the pause's level after the render {lift:+.2f} dB, with the map alone {lift_map:+.2f} dB")
    assert lift < 1.0, f"the pause left {lift:.2f} dB above its input level"
    assert lift_map > 3.0
    assert fingerprint(y, SR).dims["lra_lu"] < fingerprint(x, SR).dims["lra_lu"] - 1.0


@pytest.mark.parametrize("engine,slot", [("match-eq", "match"), ("model", "resculpt")])
def test_an_offline_render_moves_the_loudness_range_toward_the_targets(engine, slot, rng):
    """Sections of steady noise 12 LU apart (4 s each, LRA about 12 LU), target = the input's own fingerprint with
    half its range: an offline render (primed, 2 passes) lands within 1.5 LU of the goal (from about 12 LU away),
    with the integrated loudness within 0.5 LU of the input's; ``<slot>.range_follow`` 0 leaves the range within
    0.2 LU of the input's; a live stream (not primed) moves no range: it equals the range_follow 0 stream exactly."""
    x = _sections([-20.0, -32.0, -20.0, -32.0, -20.0], 4.0, rng)
    fp = fingerprint(x, SR)
    lra_in = fp.dims["lra_lu"]
    assert lra_in > 9.0
    t = fp.copy()
    t.dims["lra_lu"] = lra_in / 2.0
    out = {}
    for follow in (0.0, 1.0):
        c = Chain(Layout(spectral=(slot,)), SR, 1, 4096, params={f"{slot}.range_follow": follow})
        c.set_target(t, engine=engine)
        y, info = render_with_target(c, x, SR, t, 4096)
        out[follow] = fingerprint(y, SR).dims
        assert info["lra_after_lu"] == pytest.approx(out[follow]["lra_lu"], abs=1e-9)
    assert abs(out[1.0]["lra_lu"] - lra_in / 2.0) < 1.5
    assert abs(out[1.0]["lufs_integrated"] - fp.dims["lufs_integrated"]) < 0.5
    assert abs(out[0.0]["lra_lu"] - lra_in) < 0.2
    live = []
    for follow in (0.0, 1.0):
        c = Chain(Layout(spectral=(slot,)), SR, 1, 4096, params={f"{slot}.range_follow": follow})
        c.set_target(t, engine=engine)
        live.append(c(x))
    assert np.array_equal(live[0], live[1])


def test_the_inputs_own_range_is_no_range_move():
    """Target = the input's own fingerprint: the render measures the same range as the target's, so no trace is
    primed, and the output equals the render with ``match.range_follow`` 0 bit for bit."""
    x = _speech()[:, : 8 * SR]
    fp = fingerprint(x, SR)
    ys = []
    for follow in (0.0, 1.0):
        c = Chain(Layout(spectral=("match",)), SR, 1, 4096, params={"match.range_follow": follow})
        ys.append(render_with_target(c, x, SR, fp, 4096)[0])
    assert np.array_equal(ys[0], ys[1])


@pytest.mark.parametrize("engine,slot", [("match-eq", "match"), ("model", "resculpt")])
def test_a_description_that_asks_a_range_move_makes_it_offline(engine, slot, rng):
    """"compressed" asks 3 LU less range (a delta): sections of steady noise 12 LU apart, rendered offline toward it,
    leave with a range within 1 LU of the input's less 3, where a live stream of the same leaves the range as it is
    (within 0.5 LU)."""
    x = _sections([-20.0, -32.0, -20.0, -32.0, -20.0], 4.0, rng)
    lra_in = fingerprint(x, SR).dims["lra_lu"]
    d = describe("compressed")
    assert d.dims["lra_lu"] == -3.0
    c = Chain(Layout(spectral=(slot,)), SR, 1, 4096)
    c.set_target(d, engine=engine)
    y, _ = render_with_target(c, x, SR, d, 4096)
    assert abs(fingerprint(y, SR).dims["lra_lu"] - (lra_in - 3.0)) < 1.0
    c = Chain(Layout(spectral=(slot,)), SR, 1, 4096)
    c.set_target(d, engine=engine)
    assert abs(fingerprint(c(x), SR).dims["lra_lu"] - lra_in) < 0.5
