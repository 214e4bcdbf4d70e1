"""Training smoke run and export parity (need the [train] extra: torch; skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")


def test_smoke_training_runs_three_steps_and_writes_a_resumable_checkpoint(tmp_path):
    """`resculpt train mask --smoke` runs 3 steps on synthetic signals (< 60 s), logs finite losses,
    writes ckpt.pt and summary.json; a second call resumes from the checkpoint instead of restarting."""
    from resculpt.cli import main

    out = tmp_path / "run"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 3
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in logs if "loss" in r)
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 3
    # Resume: same folder, more steps -> continues at 3 (no fresh start).
    from resculpt.models.mask import train

    args = train.add_args(__import__("argparse").ArgumentParser()).parse_args(
        ["--out", str(out), "--steps", "4", "--quiet", "--val-every", "0"])
    args.smoke, args.batch, args.segment_s, args.adv_start = True, 2, 0.5, 1
    s2 = train.train(args)
    assert s2["steps"] == 4


def test_smoke_training_with_fine_branch_and_fine_tuning_from_a_checkpoint(tmp_path):
    """--fine trains the fine-feature branch (n_fine = 128 in the checkpoint); --init-from starts a new run
    from those weights (step 0, fresh optimiser) with the adversarial term on, as phase 2 of the recipe."""
    from resculpt.cli import main

    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "mask", "--smoke", "--quiet", "--fine", "--out", str(a)]) == 0
    ck = torch.load(a / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ck["net_kwargs"]["n_fine"] == 128
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(b), "--init-from", str(a / "ckpt.pt")]) == 0
    s = json.loads((b / "summary.json").read_text())
    assert s["steps"] == 3 and s["n_fine"] == 128 and s["init_from"] == str(a / "ckpt.pt")
    logs = [json.loads(line) for line in (b / "log.jsonl").read_text().splitlines()]
    assert any("adv" in r for r in logs) and all(np.isfinite(r["loss"]) for r in logs if "loss" in r)


def _synthetic_teacher_cache(folder, n=3, seconds=1.0):
    folder.mkdir()
    x = np.random.default_rng(0).standard_normal((n, int(16000 * seconds))).astype(np.float32) * 0.05
    np.savez(folder / "shard_0.npz", x=x, target=0.5 * x, teacher=2.0 * x)
    (folder / "meta.json").write_text(json.dumps({"teacher": "synthetic (test)"}))
    return x


def test_teacher_cache_crops_mixture_target_and_teacher_at_the_same_offsets(tmp_path):
    """A misaligned crop would train the net toward the teacher's gains of another instant: every row of a
    teacher batch takes the same item and offset from the three arrays; cond is [denoise, strength 1]."""
    from resculpt.models.mask.teacher import TeacherCache

    _synthetic_teacher_cache(tmp_path / "c")
    tc = TeacherCache(tmp_path / "c")
    x, t, y, c = tc.batch(np.random.default_rng(3), 5, 4000)
    assert x.shape == t.shape == y.shape == (5, 4000)
    assert np.array_equal(t, 0.5 * x) and np.array_equal(y, 2.0 * x)
    assert len({float(r[0]) for r in x}) == 5  # different crops, not one row repeated
    assert np.array_equal(c, np.tile([0.0, 1.0], (5, 1)))


def test_smoke_training_with_the_teacher_term_and_its_ablation(tmp_path):
    """--teacher DIR mixes cached rows into each batch and logs a finite teach loss; --off teach keeps the
    rows but drops the term (the ablation); a missing cache is a clear error, not a crash."""
    from resculpt.cli import main

    _synthetic_teacher_cache(tmp_path / "c")
    for name, extra, has_teach in (("on", [], True), ("off", ["--off", "teach"], False)):
        out = tmp_path / name
        assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--teacher", str(tmp_path / "c"),
                     *extra]) == 0
        logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
        assert all(("teach" in r) == has_teach and np.isfinite(r["loss"]) for r in logs)
        assert json.loads((out / "summary.json").read_text())["teacher_frac"] == 0.5
    with pytest.raises(SystemExit, match="no shard"):
        main(["train", "mask", "--smoke", "--quiet", "--out", str(tmp_path / "x"), "--teacher", str(tmp_path)])


def _gains_cache(folder, pools, n=4, seconds=1.0, seed=7):
    """A gains-format cache built by the cache script's own code with a stand-in teacher: a low-pass (its band
    gains fall with frequency and follow the signal) delayed by the real teacher's lag."""
    import importlib.util

    from conftest import REPO
    from scipy.signal import butter, sosfilt

    spec = importlib.util.spec_from_file_location("mask_teacher_cache", REPO / "scripts" / "mask_teacher_cache.py")
    tc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tc)
    sos = butter(4, 1500, fs=16000, output="sos")

    def run(x):
        return np.concatenate([np.zeros(tc.TEACHER_LAG, np.float32), sosfilt(sos, x).astype(np.float32)])

    folder.mkdir()
    for k in range(2):
        xs, ts, ys, lag = tc.teacher_rows(k, seed, seconds, n // 2, pools, run)
        assert 0 <= lag - tc.TEACHER_LAG < 10  # the lag check sees the shift (plus the low-pass's group delay)
        tc.save_shard(folder, k, "gains", xs, ts, ys)
    (folder / "meta.json").write_text(json.dumps({
        "format": "gains", "teacher": "low-pass (test)", "seed": seed, "seconds": seconds, "shard_size": n // 2,
        "sample_rate": 16000, "n_fft": tc.GAIN_NFFT, "hop": tc.GAIN_HOP, "coding": tc.CODING}))
    return tc, run


def test_gains_teacher_cache_gives_each_crop_the_coded_gains_of_its_own_samples(tmp_path):
    """The compact cache keeps no audio: a batch regenerates mixture and target from the recipe, and the
    teacher's gains of the crop's odd frames equal those computed on the crop itself (the teacher's output cut
    at the same offset), up to the 5-bit code of their square root; a shard costs < 12 kB per 1 s mixture."""
    import torch
    from resculpt.models.mask import mixing
    from resculpt.models.mask.band_io import BandIO
    from resculpt.models.mask.teacher import Q_LEVELS, TeacherGains

    pools = mixing.synthetic_pools(0)
    tc, run = _gains_cache(tmp_path / "g", pools)
    cache = TeacherGains(tmp_path / "g", pools)
    assert cache.n_rows == 4 and cache.g.shape == (4, 100, 24)
    io = BandIO(160, 80)
    rng = np.random.default_rng(5)
    x, t, g, c = cache.batch(rng, 6, 4000)
    assert x.shape == t.shape == (6, 4000) and g.shape == (6, 25, 24)
    assert np.array_equal(c, np.tile([0.0, 1.0], (6, 1)))
    rng = np.random.default_rng(5)  # the same draws again, to find each row's mixture and offset
    rows, starts = rng.integers(4, size=6), rng.integers(100 - 25 + 1, size=6)
    spread = 0.0
    for b, (r, u) in enumerate(zip(rows, starts)):
        xf, tf, _ = mixing.make_example(np.random.default_rng([7, int(r)]), pools, 16000, enhance=False, strength=1.0)
        o = int(u) * 160
        assert np.array_equal(x[b], xf[o : o + 4000]) and np.array_equal(t[b], tf[o : o + 4000])
        y = run(xf)[tc.TEACHER_LAG : tc.TEACHER_LAG + 16000][o : o + 4000]
        with torch.no_grad():
            direct = io.ideal_gains(torch.tensor(x[b : b + 1]), torch.tensor(y[None]))[0, 1::2].numpy()
        assert np.abs(np.sqrt(direct) - np.sqrt(g[b])).max() <= 0.5 / Q_LEVELS + 1e-6
        spread = max(spread, float(np.ptp(g[b])))
    assert spread > 0.5  # the stand-in's gains move (a constant target would pass any alignment)
    sel, target = cache.gain_target(io, None, torch.tensor(g))  # the cached gains, on the odd frames
    assert sel == slice(1, None, 2) and torch.equal(target, torch.tensor(g))
    assert cache.gain_target(BandIO(320, 80), None, torch.tensor(g)) is None  # another window: no target
    assert max(p.stat().st_size for p in (tmp_path / "g").glob("shard_*.npz")) < 2 * 12_000
    with pytest.raises(ValueError, match="frame pairs"):
        cache.batch(rng, 1, 4000 + 80)


def test_gains_teacher_cache_refuses_mixtures_that_regenerate_differently(tmp_path):
    """Gains paired with other audio would train toward another mixture's gains: pools that differ from the
    ones the teacher heard (or a changed mixing recipe) fail at load, naming the cause."""
    from resculpt.models.mask import mixing
    from resculpt.models.mask.teacher import TeacherGains

    _gains_cache(tmp_path / "g", mixing.synthetic_pools(0))
    with pytest.raises(SystemExit, match="regenerates differently"):
        TeacherGains(tmp_path / "g", mixing.synthetic_pools(1))
    meta = json.loads((tmp_path / "g" / "meta.json").read_text())
    (tmp_path / "g" / "meta.json").write_text(json.dumps({**meta, "coding": "other"}))
    with pytest.raises(SystemExit, match="coded as"):
        TeacherGains(tmp_path / "g", mixing.synthetic_pools(0))


def test_smoke_training_reads_a_gains_teacher_cache_and_logs_the_teach_term(tmp_path):
    """--teacher DIR with a gains cache (built from the smoke run's own synthetic pools, seed 0) trains with a
    finite teach loss on the 10 ms window the gains were computed on (a deep-filter net trains on it only)."""
    from resculpt.models.mask import mixing

    from resculpt.cli import main

    _gains_cache(tmp_path / "g", mixing.synthetic_pools(0))
    out = tmp_path / "run"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--teacher", str(tmp_path / "g"),
                 "--df-bins", "8"]) == 0
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert logs and all("teach" in r and np.isfinite(r["teach"]) and np.isfinite(r["loss"]) for r in logs)
    assert json.loads((out / "summary.json").read_text())["teacher_mixtures"] == 4


def test_smoke_training_with_cached_pairs_draws_them_beside_the_mixtures_and_scores_the_held_out_ones(tmp_path):
    """--pairs DIR puts cached input/target rows (codec decodes and their originals) into each batch at
    --pairs-frac; --pairs-val DIR is scored at every validation as val_pairs, beside the mixtures."""
    from resculpt.cli import main

    rng = np.random.default_rng(0)
    for d in ("p", "v"):
        (tmp_path / d).mkdir()
        x = rng.standard_normal((3, 16000)).astype(np.float32) * 0.05
        np.savez(tmp_path / d / "shard_00000.npz", x=x, target=0.5 * x)
    out = tmp_path / "run"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--pairs", str(tmp_path / "p"),
                 "--pairs-val", str(tmp_path / "v"), "--pairs-frac", "0.5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs_frac"] == 0.5
    vp = summary["val_pairs"]  # the cached rows' target is the input at -6 dB: SI-SDR of the input is high
    assert np.isfinite(vp["si_sdr_out"]) and vp["si_sdr_in"] > 40.0


def test_a_batch_with_cached_pairs_holds_the_mixtures_then_crops_of_the_pairs_aligned_with_their_targets(tmp_path):
    """mixed_rows: n_mix training mixtures first, then n_pairs rows cropped from the cache, each input with its
    own target (same item, same offset) and the denoise condition; no mixture at all when n_mix is 0."""
    from resculpt.models.mask import mixing
    from resculpt.models.mask.teacher import RowCache
    from resculpt.models.mask.train import mixed_rows

    x = np.random.default_rng(1).standard_normal((4, 16000)).astype(np.float32)
    np.savez(tmp_path / "shard_00000.npz", x=x, target=0.5 * x)
    pairs, pools = RowCache(tmp_path), mixing.synthetic_pools(0)
    xb, tb, cb = mixed_rows(np.random.default_rng(2), pools, 2, 4000, True, pairs, 3)
    assert xb.shape == tb.shape == (5, 4000) and cb.shape == (5, 2)
    for r in range(2, 5):
        assert np.array_equal(tb[r], 0.5 * xb[r])
        assert any(np.array_equal(xb[r], row[o : o + 4000]) for row in x for o in range(12001))
    assert not any(np.array_equal(tb[r], 0.5 * xb[r]) for r in range(2))  # the mixtures are not pairs
    assert np.array_equal(cb[2:], np.tile([0.0, 1.0], (3, 1)))
    xb, _, _ = mixed_rows(np.random.default_rng(2), pools, 0, 4000, True, pairs, 3)
    assert xb.shape == (3, 4000)


def test_growing_a_band_only_net_with_the_fine_branch_keeps_its_output_exactly():
    """grow_fine (--init-from a band-only checkpoint with --fine) copies every shared weight and zeroes the
    new FiLM rows and GRU input columns: the grown net's gains equal the band-only net's on any input, so
    the continued run starts from the trained model, not from a perturbed one."""
    from resculpt.models.mask.net import MaskNet
    from resculpt.models.mask.train import grow_fine

    torch.manual_seed(0)
    old = MaskNet(n_fine=0)
    with torch.no_grad():  # non-trivial FiLM so that its row layout matters
        old.film.weight.normal_(0, 0.3)
        old.film.bias.normal_(0, 0.3)
    new = MaskNet(n_fine=128, fine_mean=torch.full((128,), -60.0), fine_std=torch.full((128,), 12.0))
    grow_fine(new, old.state_dict())
    feat = torch.randn(2, 40, 24) * 10 - 50
    fine = torch.randn(2, 40, 128) * 10 - 60
    cond = torch.tensor([[0.0, 1.0], [1.0, 0.4]])
    with torch.no_grad():
        g_old, g_new = old(feat, None, cond), new(feat, fine, cond)
    assert torch.allclose(g_old, g_new, atol=1e-6)
    assert float(new.fine_mean[0]) == -60.0  # the new input's normalisation is the grown net's own
    assert new.gru.weight_ih_l0[:, -1].abs().max() == 0 and old.gru.weight_ih_l0.abs().max() > 0


@pytest.mark.parametrize("n_fine", [0, 128])
def test_export_onnx_matches_torch_on_streaming_frames(tmp_path, n_fine):
    """A (random) MaskNet, with or without the fine branch, exported to ONNX gives the same gains as torch
    frame by frame (<= 1e-5), torch streaming equals torch whole-sequence, and the written bundle passes
    the loader's checks."""
    from resculpt.models.mask.bundle import load_bundle
    from resculpt.models.mask.export import STATE, export, reference_features, torch_stream
    from resculpt.models.mask.net import MaskNet

    torch.manual_seed(0)
    net = MaskNet(n_fine=n_fine)
    ck = tmp_path / "ckpt.pt"
    torch.save({"net": net.state_dict(), "net_kwargs": {"n_fine": n_fine}, "step": 0}, ck)
    cfg = export(ck, tmp_path / "bundle")
    for v in cfg["export_check"].values():
        assert v["ort_vs_torch"] < 1e-5 and v["torch_stream_vs_full"] < 1e-5
    b = load_bundle(tmp_path / "bundle")
    feat, fine = reference_features(T=50)
    cond = np.array([1.0, 0.5], np.float32)
    np.testing.assert_allclose(b.run_sequence(feat, fine, cond), torch_stream(net.eval(), feat, fine, cond), atol=1e-5)
    assert b.state_names == list(STATE)
    assert b.has_fine == (n_fine > 0) and cfg["n_fine"] == n_fine


@pytest.mark.parametrize("n_fine", [0, 128])
def test_a_bundle_gives_back_the_exact_torch_weights_it_was_exported_from(tmp_path, n_fine):
    """checkpoint_from_bundle inverts export: every parameter and buffer of the rebuilt net equals the
    exported net's bit for bit (GRU gates reordered from ONNX's z, r, h to torch's r, z, n; the renamed
    MatMul weights transposed back), so training can fine-tune a shipped bundle without its checkpoint."""
    from resculpt.models.mask.export import checkpoint_from_bundle, export
    from resculpt.models.mask.net import MaskNet

    torch.manual_seed(3)
    net = MaskNet(n_fine=n_fine)
    with torch.no_grad():  # non-trivial FiLM and head (their init is zero / constant)
        net.film.weight.normal_(0, 0.1)
        net.head.bias.normal_(0, 1)
    ck = tmp_path / "ckpt.pt"
    torch.save({"net": net.state_dict(), "net_kwargs": {"n_fine": n_fine}, "step": 7}, ck)
    export(ck, tmp_path / "bundle")
    back = checkpoint_from_bundle(tmp_path / "bundle")
    ref = net.state_dict()
    assert set(back["net"]) == set(ref)
    for k, v in ref.items():
        assert torch.equal(back["net"][k], v), k
    assert back["net_kwargs"]["n_fine"] == n_fine and back["step"] == 7


def test_a_deep_filter_bundle_gives_back_its_exact_torch_weights_taps_included(tmp_path):
    """checkpoint_from_bundle inverts export for a net with deep-filter taps too: the taps' head comes back bit
    for bit, with the tap count and order, and the rebuilt net reproduces the golden gains and taps."""
    from conftest import make_df_net
    from resculpt.models.mask.export import checkpoint_from_bundle, export

    net, kw = make_df_net(seed=5)
    ck = tmp_path / "ckpt.pt"
    torch.save({"net": net.state_dict(), "net_kwargs": kw, "step": 11}, ck)
    export(ck, tmp_path / "bundle")
    back = checkpoint_from_bundle(tmp_path / "bundle")
    ref = net.state_dict()
    assert set(back["net"]) == set(ref) and any(k.startswith("df_head") for k in ref)
    for k, v in ref.items():
        assert torch.equal(back["net"][k], v), k
    assert (back["net_kwargs"]["df_bins"], back["net_kwargs"]["df_order"]) == (kw["df_bins"], kw["df_order"])
    assert back["step"] == 11


def test_a_presence_head_exports_inside_the_gains_and_comes_back_bit_exact(tmp_path):
    """A net with the speech-presence head exports (ORT == torch asserted by export), the stage runs the bundle,
    and checkpoint_from_bundle gives back the head with the rest, bit for bit."""
    from resculpt.models.mask.bundle import load_bundle
    from resculpt.models.mask.export import checkpoint_from_bundle, export
    from resculpt.models.mask.net import MaskNet

    torch.manual_seed(9)
    kw = {"n_fine": 128, "df_bins": 32, "df_order": 5, "presence": True}
    net = MaskNet(**kw)
    with torch.no_grad():  # a head that really gates: weights drawn, bias near 0
        net.presence_head.weight.normal_(0, 0.3)
        net.presence_head.bias.fill_(0.2)
        net.df_head.weight.normal_(0, 0.05)
    ck = tmp_path / "ckpt.pt"
    torch.save({"net": net.state_dict(), "net_kwargs": kw, "step": 4}, ck)
    export(ck, tmp_path / "bundle")
    assert "presence_head" in load_bundle(tmp_path / "bundle").config
    back = checkpoint_from_bundle(tmp_path / "bundle")
    ref = net.state_dict()
    assert set(back["net"]) == set(ref) and "presence_head.weight" in ref
    for k, v in ref.items():
        assert torch.equal(back["net"][k], v), k
    assert back["net_kwargs"]["presence"]


def test_the_shipped_bundle_rebuilds_its_net_and_fine_tunes_from_it(tmp_path):
    """The shipped bundle's rebuilt net reproduces its golden gains (checked inside checkpoint_from_bundle)
    and `--init-from models/weights/mask` starts a smoke fine-tune from it."""
    from resculpt.models.mask.bundle import BUNDLE_DIR
    from resculpt.models.mask.export import checkpoint_from_bundle

    from resculpt.cli import main

    ck = checkpoint_from_bundle(BUNDLE_DIR)
    assert ck["net_kwargs"]["n_fine"] == json.loads((BUNDLE_DIR / "config.json").read_text())["n_fine"]
    out = tmp_path / "ft"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--init-from", str(BUNDLE_DIR)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 3 and s["init_from"] == str(BUNDLE_DIR)


@pytest.mark.parametrize("cfg,n_fft", [("default", 320), ("low-latency", 160)])
@pytest.mark.parametrize("block", [80, 3200])
def test_training_band_and_fine_features_match_the_runtime_stage(cfg, n_fft, block, fine_mask_bundle):
    """The torch feature path (band_io.BandIO) and the numpy stage compute the same band dB features and the
    same fine (32 ms look-back) dB features for the same 16 kHz frames, with either STFT window (so what
    the model learned is what it sees at run time), one frame per block (single-frame graph) and 40 frames
    in one block (the batched graph: frames 0..31 in one call, then 32..39)."""
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.stft import MAX_BATCH, StreamingSTFT
    from resculpt.models.mask import common
    from resculpt.models.mask.band_io import BandIO
    from resculpt.models.mask.stage import MaskStage
    from resculpt.plugin_host import catalog

    sr, hop = 16000, 80
    rng = np.random.default_rng(0)
    t_s = np.arange(hop * 40) / sr
    x = (rng.standard_normal(hop * 40) * 0.05 + 0.1 * np.sin(2 * np.pi * 210 * t_s)).astype(np.float32)
    io = BandIO(n_fft, hop)
    _, feat = io.analyse(torch.tensor(x)[None])
    fine = io.fine(torch.tensor(x)[None])
    t = ParamTable(catalog.all_param_specs())
    st = MaskStage(t, fine_mask_bundle)
    seen, calls = [], []
    real, real_seq = st.session, st.seq_session

    def spy(binding):  # the single-frame model's inputs as bound at the moment of the call
        feed = st._feeds[0][0]
        seen.append((feed["feat"].copy(), feed["fine"].copy()))
        calls.append(1)
        return real.run_with_iobinding(binding)

    def spy_seq(binding):  # the batched model's inputs: the first T frames of the batch buffers
        n = next(T for T in range(2, MAX_BATCH + 1) if binding in st._bindT[0][T])
        seen.extend((st._featT[0, k].copy(), st._fineT[0, k].copy()) for k in range(n))
        calls.append(n)
        return real_seq.run_with_iobinding(binding)

    st.session = type("S", (), {"run_with_iobinding": staticmethod(spy), "io_binding": staticmethod(real.io_binding)})()
    st.seq_session = type("Q", (), {"run_with_iobinding": staticmethod(spy_seq),
                                    "io_binding": staticmethod(real_seq.io_binding)})()
    s = StreamingSTFT(cfg, [st])
    s.prepare(sr, 4096, 1)
    y = x[None].copy()
    for i in range(0, y.shape[1], block):
        s.process(y[:, i : i + block])
    assert calls == ([1] * 40 if block == hop else [32, 8])
    got = np.concatenate([f.reshape(1, common.N_LEARNED) for f, _ in seen])
    assert got.shape[0] == 40
    np.testing.assert_allclose(got, feat[0].numpy()[: got.shape[0]], atol=2e-3)
    got_f = np.concatenate([g.reshape(1, common.N_FINE) for _, g in seen])
    np.testing.assert_allclose(got_f, fine[0].numpy()[: got_f.shape[0]], atol=2e-3)


def test_widening_the_gru_keeps_the_output_exactly_and_trains_the_new_units(tmp_path):
    """widen_gru (--init-from with --grow-hidden) keeps the old units' weights, zeroes what they and the head
    read from the new units: the widened net's gains equal the old net's on any input, streaming or whole;
    the new units are live (non-zero state), so a smoke fine-tune from a widened checkpoint moves the head's
    new columns."""
    from resculpt.models.mask.net import MaskNet
    from resculpt.models.mask.train import widen_gru

    from resculpt.cli import main

    torch.manual_seed(1)
    old = MaskNet(n_fine=128, hidden=16)
    with torch.no_grad():
        old.head.bias.normal_(0, 1)
    new = MaskNet(n_fine=128, hidden=24)
    widen_gru(new, old.state_dict())
    feat = torch.randn(2, 30, 24) * 10 - 50
    fine = torch.randn(2, 30, 128) * 10 - 60
    cond = torch.tensor([[0.0, 1.0], [1.0, 0.4]])
    with torch.no_grad():
        assert torch.allclose(old(feat, fine, cond), new(feat, fine, cond), atol=1e-6)
        g, *st = new.step_seq(feat, fine, cond, *new.init_state(2))
        assert torch.allclose(g, old(feat, fine, cond), atol=1e-6) and st[-1][..., 16:].abs().max() > 0
    ck = tmp_path / "old.pt"
    torch.save({"net": old.state_dict(), "net_kwargs": {"n_fine": 128, "hidden": 16}, "step": 5}, ck)
    out = tmp_path / "wide"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--init-from", str(ck),
                 "--grow-hidden", "24"]) == 0
    wide = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    assert wide["net_kwargs"]["hidden"] == 24 and wide["net"]["head.weight"][:, 16:].abs().max() > 0


def test_widening_the_gru_of_a_net_with_deep_filter_taps_keeps_gains_and_taps_exactly():
    """The deep-filter head reads the GRU too: widened, a net with taps emits the same gains and the same taps
    as before (its head's columns for the new units are zero)."""
    from resculpt.models.mask.net import MaskNet
    from resculpt.models.mask.train import widen_gru

    torch.manual_seed(2)
    old = MaskNet(n_fine=128, hidden=16, df_bins=4, df_order=3)
    with torch.no_grad():  # the taps' head starts at zero; give it weights, so the check has something to keep
        old.df_head.weight.normal_(0, 0.3)
        old.df_head.bias.normal_(0, 0.3)
    new = MaskNet(n_fine=128, hidden=24, df_bins=4, df_order=3)
    widen_gru(new, old.state_dict())
    feat = torch.randn(2, 30, 24) * 10 - 50
    fine = torch.randn(2, 30, 128) * 10 - 60
    cond = torch.tensor([[0.0, 1.0], [1.0, 0.4]])
    with torch.no_grad():
        (g0, d0), (g1, d1) = old(feat, fine, cond), new(feat, fine, cond)
        assert d0.abs().max() > 0.1
        assert torch.allclose(g0, g1, atol=1e-6) and torch.allclose(d0, d1, atol=1e-6)
        assert new.df_head.weight[:, 16:].abs().max() == 0


def test_lookahead_aligns_each_frame_with_the_output_emitted_l_frames_later_and_travels_into_the_bundle(tmp_path):
    """MaskNet(lookahead=L).align gives frame t the gains emitted with frame t + L (the last L frames repeat
    the last output; L = 0 leaves them as emitted); export writes lookahead_frames = L (so the stage holds L
    spectra back and reports L hops more latency) and checkpoint_from_bundle reads it back; a smoke run with
    --lookahead 2 records it in its checkpoint, and resuming that run with another look-ahead is refused."""
    from resculpt.models.mask import train
    from resculpt.models.mask.bundle import load_bundle
    from resculpt.models.mask.export import checkpoint_from_bundle, export
    from resculpt.models.mask.net import MaskNet

    from resculpt.cli import main

    g = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    net = MaskNet(n_fine=0, lookahead=2)
    a = net.align(g)
    assert a.shape == g.shape
    assert torch.equal(a[:, :4], g[:, 2:]) and torch.equal(a[:, 4], g[:, 5]) and torch.equal(a[:, 5], g[:, 5])
    assert torch.equal(MaskNet(n_fine=0).align(g), g)
    with pytest.raises(ValueError, match="look-ahead"):
        MaskNet(lookahead=-1)

    ck = tmp_path / "ckpt.pt"
    torch.save({"net": net.state_dict(), "net_kwargs": {"n_fine": 0, "lookahead": 2}, "step": 1}, ck)
    cfg = export(ck, tmp_path / "bundle")
    assert cfg["lookahead_frames"] == 2 and cfg["algorithmic_latency_ms"]["low-latency"] == 20.0
    assert load_bundle(tmp_path / "bundle").lookahead_frames == 2
    assert checkpoint_from_bundle(tmp_path / "bundle")["net_kwargs"]["lookahead"] == 2

    out = tmp_path / "la"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--lookahead", "2"]) == 0
    run = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    assert run["net_kwargs"]["lookahead"] == 2
    assert json.loads((out / "summary.json").read_text())["lookahead"] == 2
    args = train.add_args(__import__("argparse").ArgumentParser()).parse_args(
        ["--out", str(out), "--steps", "4", "--quiet", "--val-every", "0", "--lookahead", "1"])
    args.smoke, args.batch, args.segment_s = True, 2, 0.5
    with pytest.raises(SystemExit, match="look-ahead"):
        train.train(args)


@pytest.fixture(scope="module")
def df_gains_one(tmp_path_factory):
    """(net, bundle folder): a deep-filter net whose band gains are all 1, exported once for the module."""
    from conftest import make_df_net
    from resculpt.models.mask.export import export

    d = tmp_path_factory.mktemp("df_gains_one")
    net, kw = make_df_net(seed=4, gains_one=True)
    torch.save({"net": net.state_dict(), "net_kwargs": kw, "step": 0}, d / "ckpt.pt")
    export(d / "ckpt.pt", d / "bundle")
    return net, d / "bundle"


@pytest.mark.parametrize("block", [80, 37, 3200])
def test_the_stage_applies_the_deep_filter_taps_exactly_as_training_synthesises_them(df_gains_one, block):
    """End to end at 16 kHz on the 10 ms window: a net with two frames of look-ahead and deep-filter taps, its
    band gains fixed at 1, gives through ONNX and the streaming stage (any block size) the waveform that training's
    synthesis computes (net outputs aligned L frames back, band gains, then sum_j C[j, k] X[t + L - N + 1 + j, k] on
    the lowest K bins): what the net learns to emit is what the stage does with it, delayed by the latency it
    reports (bins above 5 kHz are left out by ``high_hz``: there the stage's noise-floor rule for bands 24..31
    overlaps band 23, which training does not model). A non-trivial check: the deep-filter term moves the output
    by more than a tenth of its level."""
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.models.mask.band_io import BandIO
    from resculpt.models.mask.stage import HighQualityMask
    from resculpt.models.mask.train import masked
    from resculpt.plugin_host import catalog

    net, bundle = df_gains_one
    sr, hop, n = 16000, 80, 80 * 60
    rng = np.random.default_rng(1)
    ts = np.arange(n) / sr
    x = (0.05 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * 180 * ts) + 0.1 * np.sin(2 * np.pi * 1130 * ts))
    x = x.astype(np.float32)
    red = 60.0
    io = BandIO(160, hop)
    xt = torch.tensor(x)[None]
    spec, feat = io.analyse(xt)
    with torch.no_grad():
        gains, df = masked(net, feat, io.fine(xt), torch.tensor([[0.0, 1.0 - 10 ** (-red / 20)]]))
        want = io.synth(spec, gains, n, df, net.df_order, net.lookahead)[0].numpy()
        plain = io.synth(spec, gains, n)[0].numpy()

    t = ParamTable(catalog.all_param_specs())
    for k, v in (("reduction_db", red), ("high_hz", 5000.0), ("low_hz", 20.0)):
        t.set(f"mask_hq.{k}", v)
    t.snap()
    st = HighQualityMask(t, bundle)
    s = StreamingSTFT("low-latency", [st])
    s.prepare(sr, 4096, 1)
    assert st._df_on
    lat = s.latency_samples
    assert lat == 160 - 1 + 2 * hop
    y = np.concatenate([x, np.zeros(lat, np.float32)])[None].copy()
    for i in range(0, y.shape[1], block):
        s.process(y[:, i : i + block])
    got = y[0, lat : lat + n]
    e = n - 4 * hop  # the last frames: training repeats the last output where the stage has not heard past the end
    assert np.max(np.abs(got[:e] - want[:e])) < 2e-4
    assert np.sqrt(np.mean((want[:e] - plain[:e]) ** 2)) > 0.1 * np.sqrt(np.mean(plain[:e] ** 2))


def test_growing_deep_filter_taps_keeps_the_output_and_a_run_keeps_its_taps(tmp_path):
    """load_with_new_head loads a net without taps into one with them, whose taps start at zero: the band gains are the
    old net's exactly and the synthesised waveform is unchanged; a smoke run with --df-bins records them in its
    checkpoint and summary, and resuming it with another --df-bins is refused."""
    from resculpt.models.mask import train
    from resculpt.models.mask.band_io import BandIO
    from resculpt.models.mask.net import MaskNet

    from resculpt.cli import main

    torch.manual_seed(2)
    old = MaskNet(n_fine=128, lookahead=2).eval()
    new = MaskNet(n_fine=128, lookahead=2, df_bins=16, df_order=3).eval()
    train.load_with_new_head(new, old.state_dict(), "df_head.")
    io = BandIO(160, 80)
    x = torch.randn(1, 3200) * 0.1
    spec, feat = io.analyse(x)
    cond = torch.tensor([[0.0, 1.0]])
    with torch.no_grad():
        g_old, _ = train.masked(old, feat, io.fine(x), cond)
        g_new, df = train.masked(new, feat, io.fine(x), cond)
        assert torch.equal(g_old, g_new) and df.shape == (1, feat.shape[1], 3 * 16 * 2) and df.abs().max() == 0
        torch.testing.assert_close(io.synth(spec, g_new, 3200, df, 3, 2), io.synth(spec, g_old, 3200))
    with pytest.raises(ValueError, match="df_order"):
        MaskNet(lookahead=2, df_bins=8, df_order=2)

    out = tmp_path / "df"
    assert main(["train", "mask", "--smoke", "--quiet", "--out", str(out), "--lookahead", "2", "--df-bins", "8",
                 "--df-order", "3"]) == 0
    run = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    assert run["net_kwargs"]["df_bins"] == 8 and run["net_kwargs"]["df_order"] == 3
    s = json.loads((out / "summary.json").read_text())
    assert (s["df_bins"], s["df_order"]) == (8, 3)
    args = train.add_args(__import__("argparse").ArgumentParser()).parse_args(
        ["--out", str(out), "--steps", "4", "--quiet", "--val-every", "0", "--df-bins", "16"])
    args.smoke, args.batch, args.segment_s = True, 2, 0.5
    with pytest.raises(SystemExit, match="deep-filter"):
        train.train(args)
