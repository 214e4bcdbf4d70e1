"""The anon stage's level dynamics (dsp/voice/dynamics.py, ``anon.dynamics_pct``): each band's long-term level
shape and its swing over time normalised onto the average speaker's, from running statistics over speech frames.

The stage's streaming, reset, NaN, rates, allocation and latency are checked for the anon slot (with this step
at 100 %) by tests/test_stage_conformance.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from stage_testlib import make_section, run
from test_voice_shift import _tone

from resculpt.dsp.voice import dynamics

SPACING_HZ = 50.0  # the 20 ms section's bins


def _rows(levels_db: np.ndarray, nb: int, seed: int = 0, shape_db: np.ndarray | None = None) -> np.ndarray:
    """(frames, nb) complex64 rows: bin k of frame t has the magnitude 10^((level_t + shape(f_k)) / 20) and a
    random phase; shape: (BANDS,) dB at the band centres (interpolated over the bins; None: flat)."""
    rng = np.random.default_rng(seed)
    ph = np.exp(2j * np.pi * rng.random((len(levels_db), nb)))
    f = np.arange(nb) * SPACING_HZ
    sh = np.zeros(nb) if shape_db is None else np.interp(f, dynamics.band_edges_hz()[1:-1], shape_db)
    return (10 ** ((levels_db[:, None] + sh[None]) / 20.0) * ph).astype(np.complex64)


def _band_db(rows: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """(frames, BANDS) band levels in dB, as the step measures them."""
    w = dynamics.band_weights(freqs).astype(np.float64)
    return 10 * np.log10((np.abs(rows.astype(np.complex128)) ** 2) @ w.T + 1e-20)


POP = np.asarray(dynamics.POP_DB) - np.mean(dynamics.POP_DB)


GAP_SR = 16000


def _gapped_voice(seed: int) -> np.ndarray:
    """(1, 4 s at GAP_SR) float32: a 150 Hz voice in 0.4 s syllables at 0.3 peak with 0.4 s gaps of -60 dB noise."""
    x = _tone(GAP_SR, 150.0, 4.0)[0]
    gate = (np.arange(x.size) // int(0.4 * GAP_SR)) % 2 == 0
    noise = 1e-3 * np.random.default_rng(seed).standard_normal(x.size)
    return np.where(gate, 0.3 * x / np.max(np.abs(x)), noise).astype(np.float32)[None]


def _through_stage(x: np.ndarray, **extra) -> np.ndarray:
    """``x`` (1, n) through the anon stage at a 150 Hz target with the level-dynamics step at 100 % and ``extra``
    parameters, in 512-sample blocks: (n,)."""
    p = {"anon.f0_hz": 150.0, "anon.dynamics_pct": 100.0, **extra}
    return run(make_section(["anon"], GAP_SR, 1, p), x, 512)[0]


def _through(x: np.ndarray, nb: int) -> np.ndarray:
    y = x.copy()
    st = dynamics.BandDynamics(np.arange(nb) * SPACING_HZ, 1, 200.0)
    for t in range(len(y)):
        st.process(y[t], 0, 1.0, 0.0, True)
    return y


def test_each_bands_swing_is_scaled_toward_the_average_speakers_within_the_ratios_limits():
    """A voice with the average speaker's spectral shape whose level swings over time by 9 dB (standard
    deviation; the average speaker's bands swing by 11.7-15.8 dB) and one that swings by 18 dB: after 5 s of
    speech frames through the step at 100 % (the running statistics settled: over the first seconds the
    targets' prior still holds the variance estimate a few dB toward them), each band's swing over the next 10 s
    is the average speaker's, or the input's times the ratio's limit (1.5) where that binds, within 5 %; the
    lowest band and the top three within 12 % (the gains are interpolated between band centres, and a band at
    the edge of the range shares most of its bins with a neighbour of another spread)."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    for sd, limit in ((9.0, dynamics.RATIO[1]), (18.0, dynamics.RATIO[0])):
        lv = -30.0 + sd * np.random.default_rng(1).standard_normal(3000)
        x = _rows(lv, nb, shape_db=POP)
        y = _through(x, nb)
        Lx, Ly = _band_db(x[1000:], freqs), _band_db(y[1000:], freqs)
        pop_sd = np.asarray(dynamics.POP_STD_DB)
        want = np.minimum(pop_sd, limit * Lx.std(0)) if limit > 1 else np.maximum(pop_sd, limit * Lx.std(0))
        err = np.abs(Ly.std(0) / want - 1.0)
        assert np.all(err[1:-3] < 0.05), (sd, np.round(Ly.std(0) / want, 3))
        assert np.all(err < 0.12), (sd, np.round(Ly.std(0) / want, 3))


def test_the_long_term_band_shape_moves_onto_the_average_speakers_at_the_speakers_level():
    """A voice whose long-term band shape has half the average speaker's contrast (its level swinging by the
    average speaker's 13 dB): after 5 s through the step at 100 %, the band shape (less its mean) over the next
    10 s is the average speaker's within 1 dB (it was up to 7 dB off), and the mean level moves by less than
    1 dB."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    lv = -30.0 + 13.0 * np.random.default_rng(5).standard_normal(3000)
    x = _rows(lv, nb, shape_db=0.5 * POP)
    y = _through(x, nb)
    Lx, Ly = _band_db(x[1000:], freqs), _band_db(y[1000:], freqs)
    shape_in, shape_out = Lx.mean(0) - Lx.mean(), Ly.mean(0) - Ly.mean()
    assert np.max(np.abs(shape_in - POP)) > 5.0
    assert np.max(np.abs(shape_out - POP)) < 1.0, np.round(shape_out - POP, 2)
    assert abs(Ly.mean() - Lx.mean()) < 1.0


def test_a_pause_takes_only_the_long_term_corrections_cuts_and_nothing_before_speech_is_heard():
    """Frames that are not speech update nothing, are not pulled up to the speech's swing and are not lifted
    where the long-term part lifts a band: a frame 30 dB under the speech gets the long-term part's cuts alone as
    its per-band gain (within 0.01 dB), where that part lifts some bands by more than 3 dB, while the same frame
    called speech would be raised. Before the first speech frame nothing is changed."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    st = dynamics.BandDynamics(freqs, 1, 200.0)
    quiet = _rows(np.array([-60.0]), nb, seed=3)[0]
    y = quiet.copy()
    st.process(y, 0, 1.0, 0.0, False)
    assert np.array_equal(y, quiet)
    rng = np.random.default_rng(2)
    for r in _rows(-30.0 + 20.0 * rng.standard_normal(600), nb, seed=4):  # a wide swing: ratio < 1
        st.process(r, 0, 1.0, 0.0, True)
    mean_before = st._mean.copy()
    as_pause, as_speech = quiet.copy(), quiet.copy()
    st.process(as_pause, 0, 1.0, 0.0, False)
    assert np.array_equal(st._mean, mean_before)
    g_pause = 20 * np.log10(np.abs(as_pause[1:100]) / np.abs(quiet[1:100]))
    long_term = np.clip(st._tgt + st._mean[0].mean() - st._mean[0], -dynamics.MAX_DB, dynamics.MAX_DB)
    assert long_term.max() > 3.0 and long_term.min() < -3.0, np.round(long_term, 1)
    want = dynamics.spread_weights(freqs)[1:100] @ np.minimum(long_term, 0.0)
    assert np.max(np.abs(g_pause - want)) < 0.01
    st2 = dynamics.BandDynamics(freqs, 1, 200.0)
    st2._mean[:], st2._var[:], st2._n[:], st2._tilt = st._mean, st._var, st._n, np.nan
    st2.process(as_speech, 0, 1.0, 0.0, True)
    g_speech = 20 * np.log10(np.abs(as_speech[1:100]) / np.abs(quiet[1:100]))
    assert np.mean(g_speech - g_pause) > 6.0


def test_the_pause_cut_waits_its_hold_closes_over_its_time_constant_and_opens_at_once_on_speech():
    """``pause_cut_db`` 12: after 2 s of speech frames, pause frames take the long-term part's cuts and, once the
    pause has lasted PAUSE_HOLD_S (20 frames of 5 ms), less a cut that closes as 1 - exp(-t / 20 ms) (the first
    frame past the hold 12 (1 - e^-0.25) dB, 40 frames later the full 12 dB), each within 0.01 dB of the same
    frame's gain without the cut, less that cut; a speech frame takes no cut at all (its gain equals that of a
    step that never cut, within 0.01 dB), and a pause after it waits the whole hold again."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    rng = np.random.default_rng(6)
    talk = _rows(-30.0 + 12.0 * rng.standard_normal(400), nb, seed=7)
    hold = round(dynamics.PAUSE_HOLD_S * 200.0)
    quiet = _rows(np.full(hold + 60, -65.0), nb, seed=8)
    cut, plain = (dynamics.BandDynamics(freqs, 1, 200.0) for _ in range(2))
    for r in talk:
        cut.process(r.copy(), 0, 1.0, 0.0, True, pause_cut_db=12.0)
        plain.process(r.copy(), 0, 1.0, 0.0, True)
    a = 1.0 - np.exp(-1.0 / (dynamics.PAUSE_CLOSE_S * 200.0))

    def step(r, speech):
        yc, yp = r.copy(), r.copy()
        cut.process(yc, 0, 1.0, 0.0, speech, pause_cut_db=12.0)
        plain.process(yp, 0, 1.0, 0.0, speech)
        return 20 * np.log10(np.abs(yc[1:120]) / np.abs(yp[1:120]))

    for k, r in enumerate(quiet):
        extra = step(r, False)
        want = 0.0 if k < hold else 12.0 * (1.0 - (1.0 - a) ** (k - hold + 1))
        assert np.max(np.abs(extra + want)) < 0.01, (k, extra[:3])
    assert np.max(np.abs(extra + 12.0)) < 0.01
    assert np.max(np.abs(step(_rows(np.array([-25.0]), nb, seed=9)[0], True))) < 0.01
    for r in quiet[:hold]:
        assert np.max(np.abs(step(r, False))) < 0.01


def test_the_stage_passes_its_pause_cut_to_the_step_and_only_pauses_change():
    """Through the anon stage (dynamics 100 %) a 150 Hz voice in 0.4 s syllables with 0.4 s gaps of -60 dB
    noise: ``anon.pause_cut_db`` 0 renders exactly as the default, and 12 dB lowers the gaps' level past the
    hold (0.2-0.36 s into each, clear of the next syllable's window) by 6 dB or more while every syllable's middle stays within 0.1 dB."""
    sr = GAP_SR
    x = _gapped_voice(10)

    def out(**extra):
        return _through_stage(x, **extra)

    y = out()
    assert np.array_equal(y, out(**{"anon.pause_cut_db": 0.0}))
    yc = out(**{"anon.pause_cut_db": 12.0})
    seg = int(0.4 * sr)

    def level(z, k, lo, hi):
        part = z[k * seg + int(lo * seg): k * seg + int(hi * seg)]
        return 10 * np.log10(np.mean(part.astype(np.float64) ** 2) + 1e-30)

    for k in (3, 5, 7):   # gaps after the first second (the stage has its level by then)
        assert level(y, k, 0.5, 0.9) - level(yc, k, 0.5, 0.9) > 6.0, k
    for k in (4, 6, 8):
        assert abs(level(y, k, 0.3, 0.7) - level(yc, k, 0.3, 0.7)) < 0.1, k


QUIET_SD, LOUD_SD = 10.0, 18.0


@pytest.mark.parametrize("sr", (16000, 48000))
def test_two_voices_of_different_dynamics_leave_the_stage_with_closer_swings(sr):
    """The same 150 Hz voice in 100 ms syllables of random level, the levels' standard deviation 10 dB in one
    copy and 18 dB in the other (the average speaker's bands: 11.7-15.8 dB), 8 s: through the anon stage at
    dynamics 0 % the two swings (the band levels' standard deviation over the last 4 s, mean over the bands
    200 Hz-6 kHz) stay 4 dB or more apart; at 100 % the gap shrinks by more than a quarter. Not to nothing: the
    18 dB copy's quietest syllables fall under the stage's pause test (12 dB under the median voiced level) and
    keep their level (the step does not pull a pause up to the speech's swing), and the 10 dB copy's scaling
    stops at the ratio's limit of 1.5."""
    voice = _tone(sr, 150.0, 8.0)
    steps = np.random.default_rng(7).standard_normal(80)

    def swing(sd_db, pct):
        env = np.repeat(10 ** (sd_db * steps / 20), int(0.1 * sr))
        x = (voice * env[: voice.shape[-1]]).astype(np.float32)
        x *= np.float32(0.3 / np.max(np.abs(x)))
        y = run(make_section(["anon"], sr, 1, {"anon.f0_hz": 150.0, "anon.dynamics_pct": pct}), x, 512)[0]
        n, hop = int(0.02 * sr), int(0.005 * sr)
        fr = np.stack([y[i:i + n] * np.hanning(n) for i in range(4 * sr, len(y) - n, hop)])
        freqs = np.fft.rfftfreq(n, 1.0 / sr)
        L = 10 * np.log10((np.abs(np.fft.rfft(fr, axis=1)) ** 2) @ dynamics.band_weights(freqs).T.astype(np.float64)
                          + 1e-20)
        c = dynamics.band_edges_hz()[1:-1]
        return float(L.std(0)[(c > 200.0) & (c < 6000.0)].mean())

    gap0 = swing(LOUD_SD, 0.0) - swing(QUIET_SD, 0.0)
    gap1 = swing(LOUD_SD, 100.0) - swing(QUIET_SD, 100.0)
    print(f"swing gap: {gap0:.1f} dB at 0 %, {gap1:.1f} dB at 100 %")
    assert gap0 > 4.0
    assert abs(gap1) < 0.75 * gap0


@pytest.mark.parametrize("max_db", [12.0, 24.0])
def test_a_bands_correction_stops_at_the_range_either_way(max_db):
    """A steady voice with the average speaker's shape but six middle bands 40 dB too loud: once settled, those
    bands come down by the range (``anon.dynamics_range_db``: 12 dB by default, 24 dB here), within 1 dB; bands
    away from them move up, by less than the range (the long-term target sits at the voice's mean level, which
    the loud bands raise)."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    shape = POP.copy()
    shape[13:19] += 40.0
    x = _rows(np.full(600, -40.0), nb, shape_db=shape)
    y = x.copy()
    st = dynamics.BandDynamics(freqs, 1, 200.0)
    for t in range(len(y)):
        st.process(y[t], 0, 1.0, 0.0, True, max_db=max_db)
    moved = _band_db(y[400:], freqs).mean(0) - _band_db(x[400:], freqs).mean(0)
    assert np.all(np.abs(moved[15:17] + max_db) < 1.0), np.round(moved, 1)
    assert np.all(moved[3:10] > 0.0) and np.all(moved[3:10] < max_db)


def test_the_stage_passes_its_range_to_the_step():
    """Through the anon stage (dynamics 100 %) a 150 Hz voice whose syllables swing by 18 dB: the default range
    renders exactly as an explicit 12 dB, and 24 dB renders differently (the swing's corrections pass 12 dB)."""
    sr = 16000
    steps = np.random.default_rng(3).standard_normal(20)
    x = _tone(sr, 150.0, 2.0)
    x = (x * np.repeat(10 ** (LOUD_SD * steps / 20), int(0.1 * sr))[: x.shape[-1]]).astype(np.float32)
    x *= np.float32(0.3 / np.max(np.abs(x)))

    def out(**extra):
        p = {"anon.f0_hz": 150.0, "anon.dynamics_pct": 100.0, **extra}
        return run(make_section(["anon"], sr, 1, p), x, 512)[0]

    y = out()
    assert np.array_equal(y, out(**{"anon.dynamics_range_db": 12.0}))
    assert np.max(np.abs(out(**{"anon.dynamics_range_db": 24.0}) - y)) > 1e-3 * np.max(np.abs(y))


def test_the_noise_floor_is_the_lowest_level_of_its_window():
    """The floor tracker (run while ``sub_db`` or ``lift_snr_db`` is on) on frames of constant level: it reads
    the level (within 0.1 dB) once the FLOOR_SMOOTH_S average has settled; 20 dB quieter frames pull it down to
    the new level (within 0.1 dB) as fast as that average falls (0.25 s); 20 dB louder ones after that leave it
    there for most of FLOOR_WIN_S (1.4 s) and bring it up to their level (within 0.1 dB) once the window has
    passed over the quiet ones (1.9 s)."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    st = dynamics.BandDynamics(freqs, 1, 200.0)

    def feed(level_db, frames):
        for r in _rows(np.full(frames, level_db), nb, seed=frames):
            st.process(r, 0, 1.0, 0.0, True, sub_db=3.0)
        return st._nf[0].copy()

    ref = _band_db(_rows(np.array([0.0]), nb, seed=1), freqs)[0]   # a 0 dB frame's band levels
    assert np.max(np.abs(feed(-40.0, 200) - (ref - 40.0))) < 0.1
    assert np.max(np.abs(feed(-60.0, 50) - (ref - 60.0))) < 0.1
    assert np.max(np.abs(feed(-40.0, 280) - (ref - 60.0))) < 0.1
    assert np.max(np.abs(feed(-40.0, 100) - (ref - 40.0))) < 0.1


def test_the_floor_subtraction_cuts_a_noise_band_to_its_limit_and_leaves_a_band_far_above_it_alone():
    """Against a step without it, on frames whose bands below 2 kHz sit 40 dB over a steady floor that the
    tracker has heard for 2 s and whose bands above 3 kHz are the floor alone: ``sub_db`` 3 cuts the floor-only
    bins by SUB_MIN_DB (within 0.2 dB) and changes the loud bins by at most 0.05 dB (the subtraction's
    10 log10(1 - 10^-3.7) there)."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    c = dynamics.band_edges_hz()[1:-1]
    shape = np.where(c < 2000.0, 40.0, 0.0)
    noise = _rows(np.full(400, -70.0), nb, seed=11)
    talk = _rows(np.full(40, -70.0), nb, seed=12, shape_db=shape)
    sub, plain = (dynamics.BandDynamics(freqs, 1, 200.0) for _ in range(2))
    for r in noise:
        sub.process(r.copy(), 0, 1.0, 0.0, True, sub_db=3.0)
        plain.process(r.copy(), 0, 1.0, 0.0, True)
    for r in talk:
        ys, yp = r.copy(), r.copy()
        sub.process(ys, 0, 1.0, 0.0, True, sub_db=3.0)
        plain.process(yp, 0, 1.0, 0.0, True)
    diff = 20 * np.log10(np.abs(ys) / np.abs(yp))
    lo, hi = freqs < 1500.0, (freqs > 3500.0) & (freqs < 7500.0)
    assert np.max(np.abs(diff[lo][2:])) < 0.05, diff[lo][:6]
    assert np.max(np.abs(diff[hi] - dynamics.SUB_MIN_DB)) < 0.2, diff[hi][:6]


def test_the_lift_cap_keeps_a_noise_band_from_being_lifted():
    """A band the target wants louder but that is the floor alone: without ``lift_snr_db`` the step lifts it
    (by more than 3 dB), with 6 dB it takes no lift (its gain at most 0.01 dB), while a band far above its floor
    keeps the same gain as without the cap (within 0.01 dB)."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    c = dynamics.band_edges_hz()[1:-1]
    shape = np.where(c < 2000.0, 40.0, 0.0)   # highs far under the average speaker's: the target lifts them
    rows = _rows(-70.0 + 3.0 * np.random.default_rng(13).standard_normal(600), nb, seed=14, shape_db=shape)
    cap, plain = (dynamics.BandDynamics(freqs, 1, 200.0) for _ in range(2))
    for r in rows:
        yc, yp = r.copy(), r.copy()
        cap.process(yc, 0, 1.0, 0.0, True, lift_snr_db=6.0)
        plain.process(yp, 0, 1.0, 0.0, True)
    hi = (freqs > 3500.0) & (freqs < 7500.0)
    lo = (freqs > 300.0) & (freqs < 1200.0)
    g_plain = 20 * np.log10(np.abs(yp) / np.abs(r))
    g_cap = 20 * np.log10(np.abs(yc) / np.abs(r))
    assert np.min(g_plain[hi]) > 3.0, g_plain[hi][:4]
    assert np.max(g_cap[hi]) < 0.01, g_cap[hi][:4]
    assert np.max(np.abs(g_cap[lo] - g_plain[lo])) < 0.01


def test_the_stage_passes_its_floor_options_to_the_step_and_off_renders_as_the_default():
    """Through the anon stage (dynamics 100 %): ``anon.floor_sub_db`` 0 and ``anon.lift_snr_db`` 0 render
    exactly as the default, ``anon.lift_snr_db`` 15 changes the render (by more than 1e-3 of its peak: the step
    lifts the noise-only highs of this dark voice), and 10 dB of floor subtraction lowers a syllable-gapped voice's -60 dB noise between
    syllables by more than 3 dB (the floor is a minimum: it sits under a noise's mean, by more in the narrow low
    bands, and the over-estimate has to make that up)."""
    sr = GAP_SR
    x = _gapped_voice(15)

    def out(**extra):
        return _through_stage(x, **extra)

    y = out()
    assert np.array_equal(y, out(**{"anon.floor_sub_db": 0.0, "anon.lift_snr_db": 0.0}))
    assert np.max(np.abs(out(**{"anon.lift_snr_db": 15.0}) - y)) > 1e-3 * np.max(np.abs(y))
    ys = out(**{"anon.floor_sub_db": 10.0})
    seg = int(0.4 * sr)
    for k in (3, 5, 7):
        a, b = y[k * seg + seg // 4: k * seg + 3 * seg // 4], ys[k * seg + seg // 4: k * seg + 3 * seg // 4]
        assert 10 * np.log10(np.mean(a.astype(np.float64) ** 2) / np.mean(b.astype(np.float64) ** 2)) > 3.0, k


def test_a_floor_option_switched_on_mid_stream_tracks_from_that_frame_as_a_fresh_stream_would():
    """The floor is stepped only while an option is on; after 1 s of -20 dB frames with the options on, 1 s at
    -60 dB with them off, then on again over -40 dB frames: its floor equals (to 1e-4 dB) a step that heard only
    the -40 dB frames, at once and 0.5 s later (the -60 dB minima, if kept, would hold it 20 dB low for
    FLOOR_WIN_S)."""
    nb = 161
    freqs = np.arange(nb) * SPACING_HZ
    st = dynamics.BandDynamics(freqs, 1, 200.0)
    fresh = dynamics.BandDynamics(freqs, 1, 200.0)
    for r in _rows(np.full(200, -20.0), nb, seed=1):
        st.process(r, 0, 1.0, 0.0, True, sub_db=3.0)
    for r in _rows(np.full(200, -60.0), nb, seed=2):
        st.process(r, 0, 1.0, 0.0, True)
    for k, r in enumerate(_rows(np.full(101, -40.0), nb, seed=3)):
        st.process(r.copy(), 0, 1.0, 0.0, True, sub_db=3.0)
        fresh.process(r.copy(), 0, 1.0, 0.0, True, sub_db=3.0)
        if k in (0, 100):
            assert np.max(np.abs(st._nf[0] - fresh._nf[0])) < 1e-4
