"""The resculpt bundle (models/resculpt/export.py, bundle.py) and the stage (stage.py): ONNX == torch at
export, the loader refuses altered or foreign bundles, and the numpy/ORT stage reproduces the torch generator's
streaming step frame by frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from resculpt.dsp.inbox import Inbox
from resculpt.dsp.params import ParamTable
from resculpt.dsp.profile import Profile
from resculpt.dsp.stft import SpectralContext
from resculpt.models.mask.bundle import BundleError
from resculpt.models.resculpt import bundle as B
from resculpt.models.resculpt import common as C
from resculpt.models.resculpt import export as E
from resculpt.models.resculpt.net import ResculptNet, Resculptor
from resculpt.models.resculpt.stage import ResculptStage, ResculptTarget
from resculpt.plugin_host import catalog

SR = 16000


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A generator with randomised output heads (so every output path is non-trivial), exported."""
    torch.manual_seed(0)
    net = ResculptNet(lookahead=1).randomise_heads()
    d = tmp_path_factory.mktemp("rs")
    torch.save({"net": net.state_dict(), "net_kwargs": {"lookahead": 1}, "step": 0, "sample_rate": SR}, d / "ckpt.pt")
    cfg = E.export(d / "ckpt.pt", d / "bundle")
    return net.eval(), d / "bundle", cfg


def test_export_checks_and_config(exported):
    """The export's own checks (torch stream == whole sequence, ORT == torch) hold within ``export.TOL`` of each
    output's peak, and the config states the frame, look-ahead and output form the stage applies."""
    _, path, cfg = exported
    assert cfg["export_check"]["torch_stream_vs_full"] < E.TOL and cfg["export_check"]["ort_vs_torch"] < E.TOL
    assert cfg["lookahead_frames"] == 1 and cfg["frame"] == {**cfg["frame"], "hop_ms": 5.0, "window_ms": 20.0}
    b = B.load_bundle(path)
    assert b.lookahead_frames == 1 and set(b.state_names) == set(cfg["state_shapes"])


def test_loader_refuses_altered_or_foreign_bundles(exported, tmp_path):
    """A changed byte in model.onnx or in a target kind's graph (sha256), a kind's graph missing, another config
    version, or a missing golden file: BundleError."""
    import shutil

    _, path, _ = exported
    for case in ("sha", "kind_sha", "kind_missing", "version", "golden"):
        d = tmp_path / case
        shutil.copytree(path, d)
        if case in ("sha", "kind_sha"):
            f = d / ("model.onnx" if case == "sha" else B.KIND_FILES["absolute"])
            raw = bytearray(f.read_bytes())
            raw[-10] ^= 0xFF
            f.write_bytes(bytes(raw))
        elif case == "kind_missing":
            (d / B.KIND_FILES["relative"]).unlink()
        elif case == "version":
            cfg = json.loads((d / "config.json").read_text())
            cfg["version"] = 99
            (d / "config.json").write_text(json.dumps(cfg))
        else:
            (d / "golden.npz").unlink()
        with pytest.raises(BundleError):
            B.load_bundle(d)


def test_loader_compares_outputs_with_golden_relative_to_their_peak(exported, tmp_path):
    """golden.npz's gains moved by half of GOLDEN_TOL times their peak still load (this bundle's gains reach about
    10 dB, so that is about 5e-4 dB: more than an absolute 1e-4 dB check would take); moved by ten times it:
    BundleError that says how far, relative to the peak."""
    import shutil

    _, path, _ = exported
    for case, k in (("within", 0.5), ("beyond", 10.0)):
        d = tmp_path / case
        shutil.copytree(path, d)
        g = dict(np.load(d / "golden.npz"))
        g["gain_db"] = g["gain_db"] + k * B.GOLDEN_TOL * max(1.0, float(np.max(np.abs(g["gain_db"]))))
        np.savez(d / "golden.npz", **g)
        if case == "within":
            B.load_bundle(d)
        else:
            with pytest.raises(BundleError, match="of its peak"):
                B.load_bundle(d)


def test_loader_refuses_a_bundle_of_the_124_float_conditioning_and_says_to_re_export(exported, tmp_path):
    """A config of version 1 (conditioning without relative targets): one BundleError that names the version
    this code reads and the export command."""
    import shutil

    _, path, _ = exported
    shutil.copytree(path, tmp_path / "v1")
    cfg = json.loads((tmp_path / "v1" / "config.json").read_text())
    cfg.update(version=1, cond_dim=C.COND_DIM_V1)
    (tmp_path / "v1" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match=r"version 1; .* version 2 .* re-export"):
        B.load_bundle(tmp_path / "v1")


def test_golden_frames_cover_an_absolute_then_a_relative_target(exported):
    """golden.npz feeds a per-frame conditioning: an absolute target for 32 frames, then the reference delta
    (flag 1), and the net moves under both (so the loader's golden check covers both paths of the graph)."""
    _, path, _ = exported
    g = np.load(path / "golden.npz")
    assert g["cond"].shape == (64, C.COND_DIM)
    assert np.all(g["cond"][:32, C.REL_I] == 0) and np.all(g["cond"][32:, C.REL_I] == 1)
    assert np.abs(g["gain_db"][:32]).max() > 0 and np.abs(g["gain_db"][32:]).max() > 0


def _voiced_test_signal() -> np.ndarray:
    """1 s at 16 kHz: a 130 Hz voice with 25 harmonics and vibrato, gated 2.5 times a second, over light noise."""
    t = np.arange(SR) / SR
    ph = 2 * np.pi * np.cumsum(130 + 25 * np.sin(2 * np.pi * 1.3 * t)) / SR
    return (0.05 * sum(np.sin(h * ph) / h for h in range(1, 25)) * (np.sin(2 * np.pi * 2.5 * t) > -0.2)
            + 0.003 * np.random.default_rng(3).standard_normal(SR)).astype(np.float32)


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_stage_equals_torch_streaming_step(exported, kind):
    """Mono 16 kHz, a published target (an absolute profile, or a description in relative form), the loudness
    follower off: every output frame of the ORT/numpy stage equals torch's ``Resculptor.step`` within 1e-4 of the
    frame peak, the stage's
    conditioning vector being ``cond_from_profile`` / ``delta_cond`` of the target at this rate (a delta's within
    float32 round-off, 1e-6); without a
    target the stage only delays by the look-ahead."""
    from resculpt.dsp.descriptors import describe

    net, path, _ = exported
    x = _voiced_test_signal()
    r = Resculptor(net, SR)
    X = r.fio.stft(torch.tensor(x)[None])[0]  # (T, nb)
    prof = Profile("target", {"centroid_hz": 1500.0, "lufs_integrated": -16.0}, band_env_db=list(-30.0 - 1.5 * np.arange(32)))
    if kind == "relative":
        prof = describe("much warmer, a bit louder")
    target = ResculptTarget.make(prof)
    inbox = Inbox(ResculptTarget)
    table = ParamTable(catalog.all_param_specs())
    # The loudness follower is the stage's own broadband gain after the graph (a description that asks for
    # "louder" moves it), not part of what torch's step computes.
    table.set("resculpt.loudness_follow", 0.0)
    table.prepare(SR)
    stage = ResculptStage(table, inbox=inbox, bundle=path)
    nb = X.shape[1]
    stage.prepare(SpectralContext(SR, r.fio.n_fft, r.fio.hop, nb, 1, True, np.arange(nb) * SR / r.fio.n_fft))
    # no target: the frame L hops old comes out unchanged
    spec = X[0].numpy()[None].astype(np.complex64).copy()
    stage.process_frame(spec)
    assert np.all(spec == 0)
    spec = X[1].numpy()[None].astype(np.complex64).copy()
    stage.process_frame(spec)
    np.testing.assert_array_equal(spec[0], X[0].numpy().astype(np.complex64))
    stage.reset()
    inbox.publish(target)
    st = r.init_state(1)
    cond = torch.tensor((C.delta_cond if kind == "relative" else C.cond_from_profile)(prof, SR, "timbre"))[None]
    worst = 0.0
    with torch.no_grad():
        for k in range(X.shape[0]):
            ref, st = r.step(X[k][None], cond, st)
            spec = X[k].numpy()[None].astype(np.complex64).copy()
            stage.process_frame(spec)
            peak = float(ref.abs().max()) + 1e-9
            worst = max(worst, float(np.max(np.abs(spec[0] - ref[0].numpy()))) / peak)
            # a delta's tilt slot: the stage moves the offsets' slope from DELTA_COND_RATE's tilt bands to this
            # rate's in float32 (round-off 6e-8); everything else bit for bit
            np.testing.assert_allclose(stage._cond[0], cond[0].numpy(), rtol=0, atol=1e-6 if kind == "relative" else 0)
    assert worst < 1e-4, worst


def test_a_gated_checkpoint_exports_its_gate_into_the_graph_and_the_config(tmp_path):
    """A checkpoint whose net arguments carry the identity gate: the bundle's config records it, the export's
    checks hold within export.TOL, the golden frames exercise the open gate (non-zero gains), the loader accepts
    the bundle, and the graph returns exactly the identity for a target equal to a steady input's envelope."""
    gate = (2.0, 1.0, 25.0, 120.0)
    torch.manual_seed(0)
    net = ResculptNet(lookahead=1, gate=gate).randomise_heads()
    torch.save({"net": net.state_dict(), "net_kwargs": {"lookahead": 1, "gate": gate}, "step": 0,
                "sample_rate": SR}, tmp_path / "ckpt.pt")
    cfg = E.export(tmp_path / "ckpt.pt", tmp_path / "bundle")
    assert cfg["identity_gate"] == list(gate)
    assert max(cfg["export_check"].values()) < E.TOL
    assert np.abs(np.load(tmp_path / "bundle" / "golden.npz")["gain_db"]).max() > 0.1
    b = B.load_bundle(tmp_path / "bundle")
    T = 200
    feat = np.tile(-50.0 - 0.8 * np.arange(C.N_BANDS, dtype=np.float32), (T, 1))
    env = feat[0].astype(float)
    cond = C.cond_from_profile(Profile("target", {}, band_env_db=list(env)), SR)
    low = np.full((T, C.N_LOW), -45.0, np.float32)
    out = b.run_sequence(feat, low, cond)
    assert all(np.count_nonzero(out[k]) == 0 for k in B.OUTPUTS)
    # relative targets in the graph: a zero delta is exactly the identity from the first frame, a description
    # moves the first frame already (where the identity gate holds an absolute target back for ~200 ms)
    from resculpt.dsp.descriptors import describe

    zero = C.delta_cond(describe("a bit warmer"), SR)
    zero[C.S0 : C.M0] = 0.0
    zero[C.DZ0 :] = 0.0
    out = b.run_sequence(feat, low, zero)
    assert all(np.count_nonzero(out[k]) == 0 for k in B.OUTPUTS)
    out = b.run_sequence(feat[:3], low[:3], C.delta_cond(describe("a bit warmer"), SR))
    assert np.abs(out["gain_db"][0]).max() > 0.01


def _export_switched(tmp_path, exported, switch):
    """The ``exported`` fixture's weights exported with the net argument ``switch`` on: checks that the config
    records it (the fixture's: false) and that the export's checks hold within export.TOL; returns (config, the
    fixture's config, the fixture's golden frames, these)."""
    net0, path0, cfg0 = exported
    torch.save({"net": net0.state_dict(), "net_kwargs": {"lookahead": 1, switch: True}, "step": 0,
                "sample_rate": SR}, tmp_path / "ckpt.pt")
    cfg = E.export(tmp_path / "ckpt.pt", tmp_path / "bundle")
    assert cfg[switch] is True and cfg0[switch] is False
    assert max(cfg["export_check"].values()) < E.TOL
    return cfg, cfg0, np.load(path0 / "golden.npz"), np.load(tmp_path / "bundle" / "golden.npz")


def test_a_checkpoint_with_the_relative_prior_exports_it_into_the_graph_and_the_config(tmp_path, exported):
    """A checkpoint whose net arguments switch the relative prior on: the config records it (a checkpoint without
    it: false), the export's checks (ORT == torch) hold within export.TOL, the golden frames of the absolute
    target are bit for bit those of the same weights without the prior and those of the relative target differ
    (the prior is in the graph), and a zero delta through the graph is exactly the identity."""
    cfg, cfg0, g0, g1 = _export_switched(tmp_path, exported, "relative_prior")
    assert np.array_equal(g0["gain_db"][:32], g1["gain_db"][:32])
    assert np.abs(g0["gain_db"][32:] - g1["gain_db"][32:]).max() > 1.0
    b = B.load_bundle(tmp_path / "bundle")
    from resculpt.dsp.descriptors import describe

    zero = C.delta_cond(describe("a bit warmer"), SR)
    zero[C.S0 : C.M0] = 0.0
    zero[C.DZ0 :] = 0.0
    T = 50
    feat = np.tile(-50.0 - 0.8 * np.arange(C.N_BANDS, dtype=np.float32), (T, 1))
    out = b.run_sequence(feat, np.full((T, C.N_LOW), -45.0, np.float32), zero)
    assert all(np.count_nonzero(out[k]) == 0 for k in B.OUTPUTS)


def test_a_checkpoint_with_the_residual_scale_exports_it_into_the_graph_and_the_config(tmp_path, exported):
    """The prior's weights with the residual scale at (0.5, 1, 0.25): the config records the scales (without
    them: null), the export's checks hold within export.TOL, the absolute target's golden frames are bit for bit
    those of the same weights with the prior alone and the relative target's differ (the scales are in the graph)."""
    net0, _, _ = exported
    torch.save({"net": net0.state_dict(), "net_kwargs": {"lookahead": 1, "relative_prior": True}, "step": 0,
                "sample_rate": SR}, tmp_path / "prior.pt")
    net = ResculptNet(lookahead=1, relative_prior=True, residual_scale=True)
    net.load_state_dict(net0.state_dict())
    with torch.no_grad():
        net.rel_scale.copy_(torch.tensor([0.5, 1.0, 0.25]))
    torch.save({"net": net.state_dict(), "net_kwargs": {"lookahead": 1, "relative_prior": True, "residual_scale": True},
                "step": 0, "sample_rate": SR}, tmp_path / "scaled.pt")
    cfg0 = E.export(tmp_path / "prior.pt", tmp_path / "prior")
    cfg = E.export(tmp_path / "scaled.pt", tmp_path / "scaled")
    assert cfg0["residual_scale"] is None and cfg["residual_scale"] == [0.5, 1.0, 0.25]
    assert max(cfg["export_check"].values()) < E.TOL
    g0, g1 = np.load(tmp_path / "prior" / "golden.npz"), np.load(tmp_path / "scaled" / "golden.npz")
    assert all(np.array_equal(g0[k][:32], g1[k][:32]) for k in B.OUTPUTS)
    assert np.abs(g0["gain_db"][32:] - g1["gain_db"][32:]).max() > 0.1
    B.load_bundle(tmp_path / "scaled")


def test_a_checkpoint_with_relative_heads_exports_them_into_the_graph_and_the_config(tmp_path, exported):
    """The prior's weights with relative heads drawn at random: the config records them (without: false), the
    export's checks hold within export.TOL (every graph, both kinds), the absolute target's golden frames are bit
    for bit those of the same weights with the prior alone and the relative target's differ (the heads are in the
    graph), and the bundle loads."""
    net0, _, _ = exported
    torch.save({"net": net0.state_dict(), "net_kwargs": {"lookahead": 1, "relative_prior": True}, "step": 0,
                "sample_rate": SR}, tmp_path / "prior.pt")
    kw = {"lookahead": 1, "relative_prior": True, "relative_heads": True}
    net = ResculptNet(**kw)
    net.load_state_dict(net0.state_dict())
    with torch.no_grad():
        for m in (net.head_rel, net.df_rel):
            m.weight.normal_(0, 0.1)
            m.bias.normal_(0, 0.1)
    torch.save({"net": net.state_dict(), "net_kwargs": kw, "step": 0, "sample_rate": SR}, tmp_path / "heads.pt")
    cfg0 = E.export(tmp_path / "prior.pt", tmp_path / "prior")
    cfg = E.export(tmp_path / "heads.pt", tmp_path / "heads")
    assert cfg0["relative_heads"] is False and cfg["relative_heads"] is True
    assert max(cfg["export_check"].values()) < E.TOL
    g0, g1 = np.load(tmp_path / "prior" / "golden.npz"), np.load(tmp_path / "heads" / "golden.npz")
    assert all(np.array_equal(g0[k][:32], g1[k][:32]) for k in B.OUTPUTS)
    assert np.abs(g0["gain_db"][32:] - g1["gain_db"][32:]).max() > 0.1
    B.load_bundle(tmp_path / "heads")


def test_a_checkpoint_with_the_absolute_prior_exports_it_into_the_graph_and_the_config(tmp_path, exported):
    """A checkpoint whose net arguments switch the absolute prior on: the config records it (without: false), the
    export's checks hold within export.TOL, the relative target's golden frames are bit for bit those of the same
    weights without it and the absolute target's differ (the prior is in the graph), and for a target equal to a
    steady input's envelope the graph's band gains are exactly 0 dB (the prior has nothing to add; the residual's
    gain starts at zero)."""
    cfg, cfg0, g0, g1 = _export_switched(tmp_path, exported, "absolute_prior")
    assert all(np.array_equal(g0[k][32:], g1[k][32:]) for k in B.OUTPUTS)
    assert np.abs(g0["gain_db"][:32] - g1["gain_db"][:32]).max() > 1.0
    b = B.load_bundle(tmp_path / "bundle")
    T = 200
    feat = np.tile(-50.0 - 0.8 * np.arange(C.N_BANDS, dtype=np.float32), (T, 1))
    cond = C.cond_from_profile(Profile("target", {}, band_env_db=list(feat[0].astype(float))), SR)
    out = b.run_sequence(feat, np.full((T, C.N_LOW), -45.0, np.float32), cond)
    assert np.count_nonzero(out["gain_db"]) == 0


@pytest.mark.parametrize("mode", ["one-frame bundle", "frames", "batches"])
def test_a_held_running_fingerprint_in_torch_is_what_the_stage_holds_offline(exported, mode):
    """Offline the stage primes its running fingerprint with the whole input's envelope and holds it
    (``ResculptStage.prime(hold=True)``); torch's ``forward_spec(held=...)``, what training rows in that condition
    run, gives the same output frames within 1e-4 of the peak (the stage primed with ``ResculptNet.prime_state`` of
    the same frames, in dB): frame by frame with a bundle that has only the one-frame graph (the stage putting the
    state back), frame by frame and in batches of 1, 3, 2, 7 and 5 frames with the T-frame graph (holding it through
    its hold input); and differs from torch's cold start."""
    net, path, _ = exported
    x = _voiced_test_signal()
    r = Resculptor(net, SR)
    X = r.fio.stft(torch.tensor(x)[None])  # (1, T, nb)
    prof = Profile("target", {"centroid_hz": 1500.0}, band_env_db=list(-30.0 - 1.5 * np.arange(32)))
    cond = torch.tensor(C.cond_from_profile(prof, SR, "timbre"))[None]
    with torch.no_grad():
        feat, _ = r.fio.features(X)
        num, den = net.prime_state(feat, cond[:, C.V0 : C.REL_I])
        held = r.forward_spec(X, cond, held=torch.tensor([True]))[0]
        cold = r.forward_spec(X, cond)[0]
    table = ParamTable(catalog.all_param_specs())
    table.set("resculpt.loudness_follow", 0.0)
    table.prepare(SR)
    inbox = Inbox(ResculptTarget)
    b = B.load_bundle(path)
    if mode == "one-frame bundle":
        b = B.Bundle(b.path, b.config, b.session, None)
    stage = ResculptStage(table, inbox=inbox, bundle=b)
    assert stage.bundle.batched == (mode != "one-frame bundle")
    nb = X.shape[2]
    stage.prepare(SpectralContext(SR, r.fio.n_fft, r.fio.hop, nb, 1, True, np.arange(nb) * SR / r.fio.n_fft))
    stage.prime((10.0 * torch.log10(num[0] / den[0])).numpy(), hold=True)
    stage.reset()
    inbox.publish(ResculptTarget.make(prof))
    L, worst, T = net.lookahead, 0.0, X.shape[1]
    specs = X[0].numpy()[:, None].astype(np.complex64).copy()  # (T, 1, nb)
    t, i, chunks = 0, 0, ((1, 3, 2, 7, 5) if mode == "batches" else (1,))
    while t < T:
        n = min(chunks[i % len(chunks)], T - t)
        if mode == "batches":
            stage.process_frames(specs[t : t + n], n)
        else:
            stage.process_frame(specs[t])
        t, i = t + n, i + 1
    for k in range(L, T):
        ref = held[k - L].numpy()
        worst = max(worst, float(np.max(np.abs(specs[k, 0] - ref))) / (float(np.abs(ref).max()) + 1e-9))
    assert worst < 1e-4, worst
    assert float((held - cold).abs().max()) > 1e-3 * float(held.abs().max())


def _non_constant_nodes(path) -> int:
    import onnx

    return sum(n.op_type != "Constant" for n in onnx.load(str(path)).graph.node)


def test_each_target_kind_runs_a_graph_with_only_its_branch_and_a_stage_switching_kinds_equals_torch(tmp_path, exported):
    """Every switch on (identity gate, both priors, residual scale): each target kind's one-frame graph has under
    85 % of model.onnx's nodes (onnxruntime's cost per call is mostly per node), the
    loader's golden checks pass through them (absolute then relative, one state), and a stage whose target changes
    from an absolute profile to a description mid-stream (so it changes graphs and keeps the state) equals torch's
    ``Resculptor.step`` with the conditioning switched at the same frame, within 1e-4 of each frame's peak, both
    frame by frame and fed batches of 1, 3, 2, 7 and 5 frames as a section's blocks give them (one call each)."""
    from resculpt.dsp.descriptors import describe

    net0, _, _ = exported
    kw = {"lookahead": 1, "gate": [2.0, 1.0, 25.0, 120.0], "relative_prior": True, "residual_scale": True,
          "absolute_prior": True}
    net = ResculptNet(**kw)
    net.load_state_dict(net0.state_dict())
    torch.manual_seed(1)
    with torch.no_grad():
        net.rel_scale.copy_(torch.tensor([0.5, 1.0, 0.25]))
        for m in (net.head_abs, net.df_abs):
            m.weight.normal_(0, 0.1)
            m.bias.normal_(0, 0.1)
    torch.save({"net": net.state_dict(), "net_kwargs": kw, "step": 0, "sample_rate": SR}, tmp_path / "ckpt.pt")
    cfg = E.export(tmp_path / "ckpt.pt", tmp_path / "bundle")
    path = tmp_path / "bundle"
    assert set(cfg["kind_models"]) == set(B.KIND_FILES) and max(cfg["export_check"].values()) < E.TOL
    full = _non_constant_nodes(path / "model.onnx")
    for k in ("absolute", "relative"):  # (the T-frame twins add the nodes that compute shapes from T)
        assert _non_constant_nodes(path / B.KIND_FILES[k]) < 0.85 * full
    b = B.load_bundle(path)
    assert b.batched and b.session_for(True, seq=True) is b.kind_sessions["relative_seq"]
    net.eval()
    x = _voiced_test_signal()
    r = Resculptor(net, SR)
    X = r.fio.stft(torch.tensor(x)[None])[0]
    T = X.shape[0]
    # a +-24 dB comb: far enough from the input that the gates are open while the running fingerprint warms up
    prof = Profile("target", {"lufs_integrated": -16.0},
                   band_env_db=list(-40.0 - 2.0 * np.arange(32) + 24.0 * (-1.0) ** np.arange(32)))
    desc = describe("much warmer, a bit louder")
    chunks, cuts = (1, 3, 2, 7, 5), [0]
    while cuts[-1] < T:
        cuts.append(min(T, cuts[-1] + chunks[(len(cuts) - 1) % len(chunks)]))
    switch = next(c for c in cuts if c >= T // 2)  # at a block boundary: a block reads one target
    conds = [torch.tensor(C.cond_from_profile(prof, SR, "timbre"))[None], torch.tensor(C.delta_cond(desc, SR, "timbre"))[None]]
    st, ref, moved = r.init_state(1), [], [0.0, 0.0]
    with torch.no_grad():
        for k in range(T):
            y, st = r.step(X[k][None], conds[k >= switch], st)
            ref.append(y[0].numpy())
            if k >= 1:
                moved[k >= switch] = max(moved[k >= switch], float((y[0] - X[k - 1]).abs().max()) / float(y.abs().max()))
    assert min(moved) > 1e-2  # both halves move the audio: the comparison covers both kinds' graphs at work
    table = ParamTable(catalog.all_param_specs())
    table.set("resculpt.loudness_follow", 0.0)
    table.prepare(SR)
    nb = X.shape[1]
    for batched in (False, True):
        inbox = Inbox(ResculptTarget)
        stage = ResculptStage(table, inbox=inbox, bundle=path)
        stage.prepare(SpectralContext(SR, r.fio.n_fft, r.fio.hop, nb, 1, True, np.arange(nb) * SR / r.fio.n_fft))
        inbox.publish(ResculptTarget.make(prof))
        specs = X.numpy()[:, None].astype(np.complex64).copy()  # (T, 1, nb)
        for a, e in zip(cuts[:-1], cuts[1:]):
            if a == switch:
                inbox.publish(ResculptTarget.make(desc))
            if batched:
                stage.process_frames(specs[a:e], e - a)
            else:
                for k in range(a, e):
                    stage.process_frame(specs[k])
        assert stage._rel == 1
        worst = max(float(np.max(np.abs(specs[k, 0] - ref[k]))) / (float(np.abs(ref[k]).max()) + 1e-9) for k in range(T))
        assert worst < 1e-4, (batched, worst)


def _stage_render(path, X, prof, prime=None, chunks=(1,)):
    """Spectra (T, 1, nb) of ``X`` (1, T, nb) through a ResculptStage of bundle ``path`` toward ``prof``: primed and
    held with ``prime`` (band dB, an offline render) or live without; calls of ``chunks`` frames in turn (1 alone:
    ``process_frame``)."""
    table = ParamTable(catalog.all_param_specs())
    table.set("resculpt.loudness_follow", 0.0)
    table.prepare(SR)
    inbox = Inbox(ResculptTarget)
    stage = ResculptStage(table, inbox=inbox, bundle=path)
    r = Resculptor(ResculptNet(lookahead=1), SR)
    nb = X.shape[2]
    stage.prepare(SpectralContext(SR, r.fio.n_fft, r.fio.hop, nb, 1, True, np.arange(nb) * SR / r.fio.n_fft))
    if prime is not None:
        stage.prime(prime, hold=True)
    stage.reset()
    inbox.publish(ResculptTarget.make(prof))
    specs = X[0].numpy()[:, None].astype(np.complex64).copy()
    t, i, T = 0, 0, X.shape[1]
    while t < T:
        n = min(chunks[i % len(chunks)], T - t)
        if chunks == (1,):
            stage.process_frame(specs[t])
        else:
            stage.process_frames(specs[t : t + n], n)
        t, i = t + n, i + 1
    return specs


def test_a_live_only_residual_leaves_held_renders_at_the_prior_alone_and_moves_live_streams(tmp_path):
    """``residual_live``: absolute residual heads drawn at random. Torch: held rows give exactly what the same
    weights with those heads at the identity give, live rows differ. Exported: the config records it, the export's
    checks hold, and the stage's held render (primed, frame by frame and in batches of 1, 3, 2, 7, 5 frames) equals
    the prior-alone bundle's held render within 1e-6 of the peak, while a live stream differs from the prior-alone
    bundle's by more than 1 %."""
    torch.manual_seed(1)
    kw = {"lookahead": 1, "absolute_prior": True}
    base = ResculptNet(**kw).randomise_heads()
    live = ResculptNet(**kw, residual_live=True)
    live.load_state_dict(base.state_dict())
    with torch.no_grad():
        for m in (live.head_abs, live.df_abs):
            m.weight.normal_(0, 0.1)
            m.bias.normal_(0, 0.1)
    prior = ResculptNet(**kw)
    prior.load_state_dict({k: v for k, v in live.state_dict().items()})
    with torch.no_grad():
        for m in (prior.head_abs, prior.df_abs):
            m.weight.zero_()
            m.bias.zero_()
    x = torch.tensor(_voiced_test_signal())[None]
    r_live, r_prior = Resculptor(live.eval(), SR), Resculptor(prior.eval(), SR)
    prof = Profile("target", {"centroid_hz": 1500.0}, band_env_db=list(-30.0 - 1.5 * np.arange(32)))
    cond = torch.tensor(C.cond_from_profile(prof, SR, "timbre"))[None]
    X = r_live.fio.stft(x)
    with torch.no_grad():
        held = torch.tensor([True])
        assert torch.equal(r_live.forward_spec(X, cond, held=held), r_prior.forward_spec(X, cond, held=held))
        a, b = r_live.forward_spec(X, cond), r_prior.forward_spec(X, cond)
        assert float((a - b).abs().max()) > 1e-2 * float(b.abs().max())
        feat, _ = r_live.fio.features(X)
        num, den = live.prime_state(feat, cond[:, C.V0 : C.REL_I])
    for name, net in (("live", live), ("prior", prior)):
        torch.save({"net": net.state_dict(), "net_kwargs": dict(kw, residual_live=net.residual_live), "step": 0,
                    "sample_rate": SR}, tmp_path / f"{name}.pt")
    cfg = E.export(tmp_path / "live.pt", tmp_path / "live")
    E.export(tmp_path / "prior.pt", tmp_path / "prior")
    assert cfg["residual_live"] is True and max(cfg["export_check"].values()) < E.TOL
    env = (10.0 * torch.log10(num[0] / den[0])).numpy()
    ref = _stage_render(tmp_path / "prior", X, prof, env, (1, 3, 2, 7, 5))
    for chunks in ((1,), (1, 3, 2, 7, 5)):
        out = _stage_render(tmp_path / "live", X, prof, env, chunks)
        assert np.max(np.abs(out - ref)) <= 1e-6 * np.max(np.abs(ref))
    out, ref = _stage_render(tmp_path / "live", X, prof), _stage_render(tmp_path / "prior", X, prof)
    assert np.max(np.abs(out - ref)) > 1e-2 * np.max(np.abs(ref))


def test_a_live_only_residual_needs_the_absolute_prior():
    with pytest.raises(ValueError, match="absolute_prior"):
        ResculptNet(residual_live=True)
