"""The learned content/speaker split of the band levels (dsp/voice/level_split.py, ``anon.split_pct``).

The anon slot's streaming, reset, NaN, rates, allocation and latency with the split at 100 % are checked by
tests/test_stage_conformance.py; here: the shipped weights' checks, what the loader refuses, what the split
does to the level-dynamics step, and the training script's smoke run through export.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from resculpt.dsp.voice import dynamics, level_split

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_weights_pass_their_sha256_and_reference_output_checks():
    w = level_split.load()
    assert w.sha256 == w.meta["weights_sha256"]
    assert w.meta["format"] == level_split.FORMAT and w.meta["code"] == w.w["code_w"].shape[0]
    assert all(not a.flags.writeable for a in w.w.values())


def _copy(tmp_path, edit):
    with np.load(level_split.FILE) as z:
        d = {k: np.array(z[k]) for k in z.files}
    edit(d)
    p = tmp_path / "levels.npz"
    np.savez(p, **d)
    return p


def test_loader_refuses_changed_weights(tmp_path):
    def edit(d):
        d["out_b"][0] += 0.01
    with pytest.raises(ValueError, match="sha256"):
        level_split.check(_copy(tmp_path, edit))


def test_loader_refuses_a_reference_output_the_net_does_not_give(tmp_path):
    def edit(d):
        d["ref_out"][5, 3] += 1e-3
    with pytest.raises(ValueError, match="reference output"):
        level_split.check(_copy(tmp_path, edit))


def test_loader_refuses_another_format(tmp_path):
    def edit(d):
        m = json.loads(str(d["meta_json"]))
        m["format"] = level_split.FORMAT + 1
        d["meta_json"] = np.array(json.dumps(m))
    with pytest.raises(ValueError, match="format"):
        level_split.check(_copy(tmp_path, edit))


def test_net_state_is_per_channel_and_reset_clears_it():
    net = level_split.SplitNet(level_split.load(), 2)
    rng = np.random.default_rng(3)
    f = rng.normal(0, 1, (30, level_split.N_IN)).astype(np.float32)
    f[:, 32] = 1.0
    a, b = np.zeros(32, np.float32), np.zeros(32, np.float32)
    outs = []
    for t in range(30):
        net.step(f[t], 0, a)
        outs.append(a.copy())
    net.step(f[0] * 0, 1, b)                           # channel 1 saw something else
    net.reset()
    for t in range(30):
        net.step(f[t], 1, b)
        np.testing.assert_array_equal(b, outs[t])      # the same input from reset: the same output, any channel


FS, NB = 16000, 161                                    # a 20 ms window's bins at 16 kHz (50 Hz apart)


def _speech_rows(n=120, seed=0):
    """(n, NB) complex64 frames whose band levels move like syllables (4 Hz, +-9 dB, tilted)."""
    rng = np.random.default_rng(seed)
    f = np.arange(NB) * 50.0
    t = np.arange(n)[:, None]
    lvl = 9.0 * np.sin(2 * np.pi * 4.0 * t / 200.0 + f[None] / 2000.0) - f[None] / 400.0
    return (10 ** (lvl / 20) * np.exp(2j * np.pi * rng.random((n, NB)))).astype(np.complex64)


def _run(split, weights, rows):
    d = dynamics.BandDynamics(np.arange(NB) * 50.0, 1, 200.0, weights)
    out = rows.copy()
    for k in range(len(out)):
        d.process(out[k], 0, 1.0, 0.0, True, split)
    return out, d


def test_split_zero_is_the_statistical_step_bit_for_bit():
    rows = _speech_rows()
    with_w, _ = _run(0.0, level_split.load(), rows)
    without, _ = _run(0.0, None, rows)
    np.testing.assert_array_equal(with_w, without)


def test_split_blends_the_swing_between_the_inputs_and_the_decoded_one():
    """At split p a speech frame's target swing is (1 - p) (L - m) r + p zhat S: the applied log-gain is linear
    in p (while no band's correction reaches the +-12 dB limit), the frames before it being the same."""
    rows = _speech_rows()
    w = level_split.load()
    g = {}
    for p in (0.0, 0.5, 1.0):
        out, _ = _run(p, w, rows)
        g[p] = np.log(np.abs(out[60]) / np.abs(rows[60]))
    assert np.max(np.abs(g[1.0] - g[0.0])) > 0.05   # the net moves the frame (> 0.4 dB somewhere)
    # the state (statistics and net) before frame 60 is the same at every p: the mid-blend is the mean
    np.testing.assert_allclose(g[0.5], 0.5 * (g[0.0] + g[1.0]), atol=2e-4)


def test_split_follows_the_nets_output_exactly():
    """Frame by frame, split 1 applies T + mean(m) + zhat S - L (limited), with zhat from a SplitNet fed the
    step's own statistics: the stage's wiring of features, net and target."""
    rows = _speech_rows(60, seed=4)
    w = level_split.load()
    d = dynamics.BandDynamics(np.arange(NB) * 50.0, 1, 200.0, w)
    net = level_split.SplitNet(w, 1)
    f, tmp, zh = (np.zeros(level_split.N_IN, np.float32), np.zeros(32, np.float32), np.zeros(32, np.float32))
    S = np.asarray(dynamics.POP_STD_DB, np.float32)
    pop = np.asarray(dynamics.POP_DB, np.float32) - np.mean(dynamics.POP_DB)
    for k in range(len(rows)):
        row = rows[k].copy()
        d.process(row, 0, 1.0, 0.0, True, 1.0)
        L = d._L.copy()                                # the frame's band levels the step read (dB)
        m, v = d._mean[0], d._var[0]
        level_split.features(L, m, v, True, True, f, tmp)
        net.step(f, 0, zh)
        t = np.clip(pop - pop.mean() + m.mean() + zh * S - L, -dynamics.MAX_DB, dynamics.MAX_DB)
        want = np.exp(d._s @ (t * math.log(10.0) / 20.0))
        np.testing.assert_allclose(np.abs(row) / np.abs(rows[k]), want, rtol=2e-4)


def _zscores(center, spread, rows, speech=None):
    """(frames, 32) the split's z-scores as the step used them (split 1, the standardisation's shares)."""
    d = dynamics.BandDynamics(np.arange(NB) * 50.0, 1, 200.0, level_split.load())
    out, z = rows.copy(), []
    for k in range(len(out)):
        d.process(out[k], 0, 1.0, 0.0, True if speech is None else bool(speech[k]), 1.0,
                  center=center, spread=spread)
        z.append(d._zh.copy())
    return np.array(z)


def test_split_standardisation_off_leaves_the_step_bit_for_bit():
    rows = _speech_rows(80, seed=5)
    a, _ = _run(1.0, level_split.load(), rows)
    d = dynamics.BandDynamics(np.arange(NB) * 50.0, 1, 200.0, level_split.load())
    b = rows.copy()
    for k in range(len(b)):
        d.process(b[k], 0, 1.0, 0.0, True, 1.0, center=0.0, spread=0.0)
    np.testing.assert_array_equal(a, b)


def test_split_center_and_spread_hold_each_bands_movement_at_mean_zero_and_unit_spread_over_speech():
    """Over 6 s of syllable-like speech, once the running statistics have settled (after 2 s): centred, every
    band's z-scores average within 0.25 of 0 and keep the decoder's spread (within 10 %); centred and spread,
    their spread is 0.75-1.25 too; the decoder's own are off in some band by more. Each share blends linearly:
    at 50 % a frame's z-score is the mean of the two ends."""
    rows = _speech_rows(1200, seed=6)
    raw = _zscores(0.0, 0.0, rows)[400:]
    cen = _zscores(1.0, 0.0, rows)[400:]
    z = _zscores(1.0, 1.0, rows)[400:]
    assert np.max(np.abs(raw.mean(0))) > 0.25 or np.max(np.abs(raw.std(0) - 1.0)) > 0.25
    assert np.max(np.abs(cen.mean(0))) < 0.25, np.round(cen.mean(0), 2)
    np.testing.assert_allclose(cen.std(0), raw.std(0), rtol=0.1)
    assert np.max(np.abs(z.mean(0))) < 0.25, np.round(z.mean(0), 2)
    assert 0.75 < z.std(0).min() and z.std(0).max() < 1.25, np.round(z.std(0), 2)
    np.testing.assert_allclose(_zscores(0.5, 0.0, rows)[400:], 0.5 * (raw + cen), atol=1e-4)
    np.testing.assert_allclose(_zscores(1.0, 0.5, rows)[400:], 0.5 * (cen + z), atol=1e-4)


def test_split_standardisation_statistics_follow_speech_frames_only():
    """Frames the stage calls pauses neither update the z-scores' statistics nor get standardised: with every
    other frame a pause, the pauses' z-scores are the decoder's own, and the speech frames' equal the
    standardisation replayed by hand over the speech frames' raw z-scores (the split's net steps on every frame
    and reads the input's statistics, not its own output, so the raw run is the same one)."""
    rows = _speech_rows(200, seed=7)
    speech = np.arange(200) % 2 == 0
    z_raw = _zscores(0.0, 0.0, rows, speech)
    z = _zscores(1.0, 1.0, rows, speech)
    np.testing.assert_array_equal(z[~speech], z_raw[~speech])
    m, v = np.zeros(32), np.ones(32)
    a = 1.0 - math.exp(-1.0 / (dynamics.TAU_S * 200.0))
    for n, k in enumerate(np.flatnonzero(speech)):
        kk = max(1.0 / (dynamics.PRIOR_FRAMES + n + 1.0), a)
        dd = z_raw[k] - m
        m = m + kk * dd
        v = (1 - kk) * (v + kk * dd * dd)
        np.testing.assert_allclose(z[k], (z_raw[k] - m) / np.maximum(np.sqrt(v), 0.01), atol=2e-4)


def test_the_stage_passes_the_splits_standardisation_and_mid_share_to_the_step():
    """Through the anon stage (dynamics and split at 100 %) a 150 Hz voice whose syllables swing: the
    standardisation's shares at 0 and anon.split_mid_pct at 100 render exactly as the defaults, and each
    standardisation share at 100 and the mid share at 0 on its own renders differently."""
    from stage_testlib import make_section, run
    from test_voice_shift import _tone

    sr = 16000
    steps = np.random.default_rng(3).standard_normal(20)
    x = _tone(sr, 150.0, 2.0)
    x = (x * np.repeat(10 ** (6.0 * steps / 20), int(0.1 * sr))[: x.shape[-1]]).astype(np.float32)
    x *= np.float32(0.3 / np.max(np.abs(x)))

    def out(**extra):
        p = {"anon.f0_hz": 150.0, "anon.dynamics_pct": 100.0, "anon.split_pct": 100.0, **extra}
        return run(make_section(["anon"], sr, 1, p), x, 512)[0]

    y = out()
    assert np.array_equal(y, out(**{"anon.split_center_pct": 0.0, "anon.split_spread_pct": 0.0,
                                    "anon.split_mid_pct": 100.0}))
    for k, v in (("anon.split_center_pct", 100.0), ("anon.split_spread_pct", 100.0), ("anon.split_mid_pct", 0.0)):
        assert np.max(np.abs(out(**{k: v}) - y)) > 1e-3 * np.max(np.abs(y)), k


def _corrections(split, rows, mid=1.0):
    """(frames, 32) the step's per-band correction (nepers, before the bins' spreading) at split and mid, with
    (frames, 32) each frame's long-term part alone (target shape at the speaker's level less m, nepers)."""
    d = dynamics.BandDynamics(np.arange(NB) * 50.0, 1, 200.0, level_split.load())
    out, t, lt = rows.copy(), [], []
    for k in range(len(out)):
        d.process(out[k], 0, 1.0, 0.0, True, split, max_db=36.0, mid=mid)   # no band at the range's limit
        t.append(d._t.copy())
        m = d._mean[0].astype(np.float64)
        lt.append((d._tgt + m.mean() - m) * math.log(10.0) / 20.0)
    return np.array(t), np.array(lt), d._in_mid


def test_split_mid_share_keeps_the_speakers_own_swing_in_the_mid_bands_and_the_split_elsewhere():
    """anon.split_mid_pct at split 1: at 0 the bands centred at 1-4 kHz keep the speaker's own deviation
    (their correction is the long-term part alone: T + mean(m) - m) and every other band takes the split's; at 0.5
    the mid bands take the mean of the two (no band reaches the range's limit: 36 dB here) and the others still
    the split's; at 1 the step is the split's bit for bit."""
    rows = _speech_rows(120, seed=6)
    full, lt, in_mid = _corrections(1.0, rows)
    assert 8 <= in_mid.sum() <= 16 and in_mid[11] and not in_mid[5] and not in_mid[24]
    assert np.max(np.abs(full[:, in_mid] - lt[:, in_mid])) > 0.05     # the split moves the mid bands
    zero, _, _ = _corrections(1.0, rows, mid=0.0)
    np.testing.assert_allclose(zero[:, in_mid], lt[:, in_mid], atol=1e-5)
    np.testing.assert_array_equal(zero[:, ~in_mid], full[:, ~in_mid])
    half, _, _ = _corrections(1.0, rows, mid=0.5)
    np.testing.assert_allclose(half[:, in_mid], 0.5 * (full[:, in_mid] + zero[:, in_mid]), atol=1e-5)
    np.testing.assert_array_equal(half[:, ~in_mid], full[:, ~in_mid])
    np.testing.assert_array_equal(_corrections(1.0, rows, mid=1.0)[0], full)


def test_split_mid_share_leaves_the_scaled_swing_its_share_when_the_split_is_partial():
    """At split 0.5 and mid 0 a mid band's swing is half the statistical step's scaled deviation and half the
    speaker's own: the mean of the split-0 correction and the long-term part (own deviation) there."""
    rows = _speech_rows(120, seed=7)
    stat, lt, in_mid = _corrections(0.0, rows)
    part, _, _ = _corrections(0.5, rows, mid=0.0)
    np.testing.assert_allclose(part[:, in_mid], 0.5 * (stat[:, in_mid] + lt[:, in_mid]), atol=1e-5)
    assert np.max(np.abs(stat[:, in_mid] - lt[:, in_mid])) > 0.05     # scaled and own swings differ here


def test_training_script_smoke_trains_resumes_and_exports_weights_the_loader_accepts(tmp_path):
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "scripts"))
    import anon_learned_levels as A

    rng = np.random.default_rng(0)
    n, T = 12, 300
    L = rng.normal(-20, 8, (n, T, 32)).astype(np.float16)
    np.savez(tmp_path / "d.npz", L=L, m=np.full((n, T, 32), -20, np.float16),
             v=np.full((n, T, 32), 64, np.float32), valid=np.ones((n, T), bool),
             speech=rng.random((n, T)) < 0.7, spk=np.arange(n) % 3, view=np.zeros(n, int),
             speakers=np.array(["a", "b", "c"]), views=np.array(["x"]), held=np.array(["h"]))
    args = ["train", "--data", str(tmp_path / "d.npz"), "--run", str(tmp_path / "run"), "--steps", "6",
            "--batch", "4", "--segment", "100", "--val-every", "3"]
    assert A.main(args) == 0
    # resumes at 6 with the checkpoint's recipe: this command line's learning rate is not used
    assert A.main(args[:-4] + ["--steps", "9", "--batch", "4", "--val-every", "3", "--lr", "0.5"]) == 0
    import torch
    st = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)
    assert st["step"] == 9 and st["args"]["lr"] == 1e-3 and st["opt"]["param_groups"][0]["lr"] == 1e-3
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6, 9] and all(math.isfinite(r["val_rec"]) for r in log)
    out = tmp_path / "w.npz"
    assert A.main(["export", "--ckpt", str(tmp_path / "run" / "ckpt.pt"), "--out", str(out)]) == 0
    w = level_split.check(out)
    assert w.meta["step"] == 9 and w.meta["speakers_in_table"] == 3
    shutil.rmtree(tmp_path / "run")


def test_a_time_aware_adversary_run_resumes_as_one_exports_and_a_probe_reads_its_code(tmp_path):
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "scripts"))
    import anon_learned_levels as A

    rng = np.random.default_rng(1)
    n, T = 12, 300
    spk = np.arange(n) % 3
    # each speaker's bands move with its own offset pattern, so a reader of the raw input can tell them apart
    L = (rng.normal(-20, 8, (n, T, 32)) + 6.0 * np.sin(np.arange(32) * (1 + spk[:, None, None]))).astype(np.float16)
    np.savez(tmp_path / "d.npz", L=L, m=np.full((n, T, 32), -20, np.float16),
             v=np.full((n, T, 32), 64, np.float32), valid=np.ones((n, T), bool),
             speech=rng.random((n, T)) < 0.7, spk=spk, view=np.zeros(n, int),
             speakers=np.array(["a", "b", "c"]), views=np.array(["x"]), held=np.array(["h"]))
    run = tmp_path / "run"
    base = ["train", "--data", str(tmp_path / "d.npz"), "--run", str(run), "--batch", "4", "--segment", "100",
            "--val-every", "3"]
    assert A.main(base + ["--steps", "3", "--adv-kind", "gru"]) == 0
    assert A.main(base + ["--steps", "6"]) == 0  # no --adv-kind: the checkpoint's is kept
    import torch
    st = torch.load(run / "ckpt.pt", weights_only=False)
    assert st["step"] == 6 and st["cfg"]["adv"] == "gru" and any(k.startswith("adv_rnn.") for k in st["net"])
    out = tmp_path / "w.npz"
    assert A.main(["export", "--ckpt", str(run / "ckpt.pt"), "--out", str(out)]) == 0
    level_split.check(out)
    with np.load(out) as z:  # the adversary is training's alone: nothing of it ships
        assert not any(k.startswith("adv") for k in z.files)
    md = tmp_path / "probe.md"
    for src in ("input", str(run / "ckpt.pt")):
        assert A.main(["probe", "--ckpt", src, "--data", str(tmp_path / "d.npz"), "--steps", "20", "--out", str(md)]) == 0
    rows = [r for r in md.read_text().splitlines() if r.startswith("| ") and "reader" not in r]
    assert [r.split("|")[2].strip() for r in rows] == ["pooled", "gru", "pooled", "gru"]
    assert all(0.0 <= float(r.split("|")[4]) <= float(r.split("|")[5]) <= 1.0 for r in rows)


def test_content_targets_are_whitened_on_the_training_chunks_with_each_speakers_mean_frame_removed(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import anon_learned_levels as A

    rng = np.random.default_rng(2)
    n_chunks, n_views, spk_of_chunk = 30, 3, np.arange(30) % 5
    W = rng.normal(0, 1, (n_chunks, 140, 384)) @ rng.normal(0, 1, (384, 384)) / 20
    W += 5.0 * rng.normal(0, 1, (5, 1, 384))[spk_of_chunk]     # a constant per speaker: not content
    np.savez(tmp_path / "w.npz", W=W.astype(np.float16))
    spk_rows = np.repeat(spk_of_chunk, n_views)
    fit_rows = np.arange(0, 24 * n_views)                       # the first 24 chunks fit, the rest are held out
    C = A.content_targets(tmp_path / "w.npz", spk_rows, n_views, fit_rows, 8)
    assert C.shape == (n_chunks, 140, 8)
    X = C[:24].reshape(-1, 8)
    assert np.allclose(X.mean(0), 0, atol=1e-3) and np.allclose(np.cov(X.T, bias=True), np.eye(8), atol=1e-3)
    # a linear map of targets whose every speaker's mean frame is the same: the speakers' means coincide
    means = np.array([C[spk_of_chunk == s].mean((0, 1)) for s in range(5)])
    assert np.abs(means - means[0]).max() < 1e-4


def test_the_content_weight_scales_the_heads_gradient_on_the_encoder_and_zero_leaves_it_untouched():
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "scripts"))
    import anon_learned_levels as A

    torch.manual_seed(0)
    net = A.build_net(3, code=6, content=8)
    f, w = torch.randn(2, 40, 34), torch.randn(2, 10, 8)

    def grads(weight):
        net.zero_grad()
        c, _ = net.encode(f)
        ((net.content_head(c, weight) - w) ** 2).mean().backward()
        return net.inp.weight.grad.clone(), net.content_out.weight.grad.clone()

    g0, h0 = grads(0.0)
    g1, h1 = grads(1.0)
    g5, h5 = grads(0.5)
    assert torch.count_nonzero(g0) == 0 and torch.count_nonzero(g1) > 0
    assert torch.allclose(g5, 0.5 * g1, atol=1e-7)
    assert torch.allclose(h0, h1) and torch.allclose(h5, h1) and torch.count_nonzero(h1) > 0   # the head always learns


@pytest.mark.parametrize("content_on", ["code", "decoded", "input"])
def test_a_run_with_content_targets_logs_their_validation_resumes_and_exports_without_the_head(tmp_path, content_on):
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "scripts"))
    import anon_learned_levels as A

    rng = np.random.default_rng(3)
    n, T, views = 12, 563, 2
    np.savez(tmp_path / "d.npz", L=rng.normal(-20, 8, (n, T, 32)).astype(np.float16),
             m=np.full((n, T, 32), -20, np.float16), v=np.full((n, T, 32), 64, np.float32),
             valid=np.ones((n, T), bool), speech=rng.random((n, T)) < 0.7, spk=np.repeat(np.arange(6) % 3, views),
             view=np.tile(np.arange(views), 6), speakers=np.array(["a", "b", "c"]), views=np.array(["x", "y"]),
             held=np.array(["h"]))
    np.savez(tmp_path / "w.npz", W=rng.normal(0, 1, (n // views, 140, 384)).astype(np.float16))
    run = tmp_path / "run"
    base = ["train", "--data", str(tmp_path / "d.npz"), "--run", str(run), "--batch", "4", "--val-every", "3"]
    assert A.main(base + ["--steps", "3", "--content-data", str(tmp_path / "w.npz"), "--content", "0.5",
                          "--content-dims", "4", "--content-on", content_on]) == 0
    assert A.main(base + ["--steps", "6"]) == 0          # the checkpoint's content recipe is kept
    import torch
    st = torch.load(run / "ckpt.pt", weights_only=False)
    assert st["step"] == 6 and st["args"]["content"] == 0.5 and st["cfg"]["content"] == 4
    assert st["cfg"]["content_on"] == content_on
    assert st["net"]["content_rnn.weight_ih_l0"].shape[1] == (6 if content_on == "code" else 32)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6] and all(math.isfinite(r["val_content"]) for r in log)
    out = tmp_path / "w_export.npz"
    assert A.main(["export", "--ckpt", str(run / "ckpt.pt"), "--out", str(out)]) == 0
    level_split.check(out)
    with np.load(out) as z:  # the content head is training's alone
        assert not any(k.startswith("content") for k in z.files)


def test_the_bench_modes_take_the_stages_call_and_learned_reproduces_the_stages_split(monkeypatch):
    """scripts/anon_learned_levels.py's stand-ins for the dynamics step take the call the stage makes (split,
    range and pause cut included): on a voice with two 0.3 s gaps, where the preset's pause cut changes the render,
    `+learned` with the shipped run's checkpoint renders `anon-neutral` as the stage does with the exported
    weights (within 1e-3 of the peak: torch against NumPy GRUs), `+flat` differently, and the capture's recorder
    reads frames without touching the row; with the split's mid-band share lowered, `+learned` still renders as the
    stage."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "scripts"))
    import anon_learned_levels as A
    from test_voice_shift import _tone

    sr = A.bench.SR
    x = _tone(sr, 140.0, 2.0)[0]
    gain = 10 ** (6.0 * np.random.default_rng(2).standard_normal(20) / 20)
    gain[[8, 9, 10, 15, 16, 17]] = 0.03   # two 0.3 s gaps 30 dB down: pauses past the cut's hold
    x = (x * np.repeat(gain, sr // 10)).astype(np.float32)
    stage = A.bench.chain_system("anon-neutral")(x)
    uncut = A.bench.chain_system("anon-neutral@anon.pause_cut_db=0")(x)
    mid = "anon-neutral@anon.split_mid_pct=30"      # the split's share in the mid bands: the same call again
    stage_mid = A.bench.chain_system(mid)(x)
    assert np.max(np.abs(uncut - stage)) > 1e-3 * np.max(np.abs(stage))
    st = torch.load(ROOT / "models/training/anon-levels/ckpt.pt", weights_only=False)
    net = A.build_net(**st["cfg"])
    net.load_state_dict(st["net"])
    net.eval()
    monkeypatch.setitem(A._LEARNED, "net", net)
    monkeypatch.setattr(A.D, "BandDynamics", A.Learned)
    learned = A._chain_system("anon-neutral+learned")(x)
    flat = A._chain_system("anon-neutral+flat")(x)
    peak = np.max(np.abs(stage))
    assert np.max(np.abs(learned - stage)) < 1e-3 * peak
    assert np.max(np.abs(stage_mid - stage)) > 1e-3 * peak
    assert np.max(np.abs(A._chain_system(mid + "+learned")(x) - stage_mid)) < 1e-3 * peak
    assert np.max(np.abs(flat - stage)) > 1e-2 * peak
    monkeypatch.setattr(A.D, "BandDynamics", A.Recorder)
    plain = A.bench.chain_system("anon-neutral@anon.dynamics_pct=0")(x)
    rec = A.bench.chain_system("anon-neutral")
    recorded = rec(x)
    r = A.Recorder.instances[-1]
    assert len(r.frames) > 100 and np.allclose(recorded, plain, atol=1e-6 * peak)
