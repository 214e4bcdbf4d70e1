"""The resculpting generator (models/resculpt/net.py) and its discriminators (disc.py): streaming equals the
whole-sequence forward, causality within the declared look-ahead, identity at initialisation, size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from resculpt.models.resculpt import common as C
from resculpt.models.resculpt.disc import MultiScaleDisc
from resculpt.models.resculpt.net import ResculptNet, Resculptor, n_params

SR = 16000


def _model(lookahead, seed=0, sr=SR):
    torch.manual_seed(seed)
    net = ResculptNet(lookahead=lookahead).randomise_heads()  # off the identity, so every path contributes
    return Resculptor(net, sr).eval()


def _cond(r, b=2, seed=1):
    """Random conditioning rows: row 0 (and every even row) an absolute target, the odd rows relative ones."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(b, C.COND_DIM, generator=g) * 0.5
    c[:, C.V0 : C.REL_I] = r.fio.valid
    c[:, C.REL_I] = (torch.arange(b) % 2).float()
    c[0::2, C.DZ0 :] = 0.0
    return c


def _speechlike(n, seed=2):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    f0 = 120 + 20 * torch.sin(2 * torch.pi * 3 * t)
    ph = 2 * torch.pi * torch.cumsum(f0, 0) / SR
    v = sum(torch.sin(h * ph) / h for h in range(1, 30)) * (torch.sin(2 * torch.pi * 2 * t) > -0.3)
    return torch.stack([0.05 * v, 0.02 * torch.randn(n, generator=g)])


@pytest.mark.parametrize("lookahead", [0, 1])
def test_streaming_step_equals_whole_sequence(lookahead):
    """Frame-by-frame ``step`` from an explicit state gives the whole-sequence output delayed by the look-ahead,
    within 2e-6 of the output's peak magnitude."""
    torch.set_num_threads(1)
    r = _model(lookahead)
    err, _ = _stream_error(r, _speechlike(SR), _cond(r))
    assert err < 2e-6, err


def _stream_error(r, x, cond):
    """(largest |step output - whole-sequence output| / peak, whole-sequence spectrum X and output)."""
    L = r.net.lookahead
    with torch.no_grad():
        X = r.fio.stft(x)
        full = r.forward_spec(X, cond)
        st = r.init_state(x.shape[0])
        out = []
        for t in range(X.shape[1]):
            y, st = r.step(X[:, t], cond, st)
            out.append(y)
    stream = torch.stack(out, 1)
    T = X.shape[1]
    return float((stream[:, L:] - full[:, : T - L]).abs().max() / full.abs().max()), (X, full)


@pytest.mark.parametrize("lookahead", [0, 1])
def test_output_frame_depends_on_no_frame_beyond_the_lookahead(lookahead):
    """Changing input frames from t0 + L + 1 on leaves every output frame up to t0 unchanged."""
    r = _model(lookahead)
    x = _speechlike(SR // 2)
    cond = _cond(r)
    with torch.no_grad():
        X = r.fio.stft(x)
        a = r.forward_spec(X, cond)
        t0 = 40
        X2 = X.clone()
        X2[:, t0 + lookahead + 1 :] = X2[:, t0 + lookahead + 1 :] * 3.0 + 0.1
        b = r.forward_spec(X2, cond)
    assert torch.equal(a[:, : t0 + 1], b[:, : t0 + 1])
    assert not torch.equal(a[:, t0 + 1 :], b[:, t0 + 1 :])


def test_fresh_generator_is_the_identity_within_60_db():
    """At initialisation (0 dB gains, one-hot deep-filter taps, copy-up at -70 dB) the waveform comes back
    within -60 dB of itself, so training starts from 'leave it alone'."""
    torch.manual_seed(0)
    r = Resculptor(ResculptNet(), SR)
    x = _speechlike(SR)
    cond = _cond(r)
    with torch.no_grad():
        y = r(x, cond)
    e_ = r.fio.n_fft  # the last window is only partly covered by frames (as in every STFT round trip)
    y, x = y[:, :-e_], x[:, :-e_]
    e = float(((y - x) ** 2).mean() / (x**2).mean())
    assert 10 * torch.log10(torch.tensor(e)) < -60


def test_generator_size_and_gradients():
    """Under 300k parameters (the RTF budget), and every parameter gets a gradient from a waveform loss."""
    r = _model(1)
    assert n_params(r.net) < 300_000
    x = _speechlike(SR // 4)
    r.train()
    y = r(x, _cond(r))
    (y - x).pow(2).mean().backward()
    missing = [n for n, p in r.net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_discriminators_return_features_and_logits_per_scale():
    """Five sub-discriminators (3 spectrogram resolutions, 2 waveform scales), each with >= 3 activation maps
    and a logit map, on a 16 kHz and a 48 kHz batch."""
    for sr in (16000, 48000):
        d = MultiScaleDisc(sr)
        outs = d.features(torch.randn(2, sr // 2))
        assert len(outs) == 5
        for o in outs:
            assert len(o) >= 4 and all(torch.isfinite(f).all() for f in o)


RUN_GATE = (2.0, 1.0, 25.0, 120.0)  # models/training/resculpt-gen1/train.args


def _gated(gate, seed=0, relative_prior=False):
    """A generator with randomised output heads (its ungated outputs are far from the identity) and a gate."""
    r = _model(1, seed)
    g = ResculptNet(lookahead=1, gate=gate, relative_prior=relative_prior)
    g.load_state_dict(r.net.state_dict())  # the gate adds no weights: any checkpoint loads into a gated net
    return g.eval()


def _steady_features(T=400, cut_band=None):
    """feat (1, T, 32): the same speech-like band levels every frame (bands from ``cut_band`` up 60 dB lower, as
    a low-pass leaves them); low (1, T, N_LOW)."""
    f = -50.0 - 0.8 * torch.arange(C.N_BANDS, dtype=torch.float32)
    if cut_band is not None:
        f[cut_band:] -= 60.0
    return f.expand(1, T, C.N_BANDS).clone(), torch.full((1, T, C.N_LOW), -45.0)


def _cond_with_shape(env_db, sr=SR):
    """A conditioning vector whose band shape is ``env_db`` (32,) dB (level-free over the compared bands)."""
    c = torch.zeros(1, C.COND_DIM)
    ok = torch.tensor(C.compare_mask() & C.input_valid(sr))
    e = torch.as_tensor(env_db, dtype=torch.float32)
    c[0, 2 * C.N_DIMS : 2 * C.N_DIMS + C.N_BANDS] = torch.where(ok, (e - e[ok].mean()) / 3.0, torch.zeros(()))
    c[0, 2 * C.N_DIMS + C.N_BANDS : 2 * C.N_DIMS + 2 * C.N_BANDS] = ok.float()
    c[0, C.V0 : C.REL_I] = torch.tensor(C.input_valid(sr), dtype=torch.float32)
    return c


def test_identity_gate_returns_exactly_the_identity_when_the_target_is_the_inputs_envelope():
    """Target band shape == the running fingerprint's (a steady input): every output is exactly the identity
    (0 dB gains, no copy-up, identity taps) on every frame, where the same weights without a gate move it."""
    feat, low = _steady_features()
    cond = _cond_with_shape(feat[0, 0])
    with torch.no_grad():
        g, e, d = _gated(RUN_GATE)(feat, low, cond)
        g0, _, _ = _gated(None)(feat, low, cond)
    assert float(g0.abs().max()) > 0.5
    assert torch.count_nonzero(g) == 0 and torch.count_nonzero(e) == 0 and torch.count_nonzero(d) == 0


def test_identity_gate_opens_for_a_band_limited_input_under_a_wideband_target():
    """Input low-passed (bands from 20 up 60 dB down), target the unlimited envelope (codec repair): the gate
    is fully open once 400 ms of input are heard (it starts opening at 200 ms, while the running estimate
    rests on few frames), so the gated outputs equal the ungated ones from there."""
    feat, low = _steady_features(cut_band=20)
    cond = _cond_with_shape(_steady_features()[0][0, 0])
    net = _gated(RUN_GATE)
    with torch.no_grad():
        run, _, _, dens = net.running(feat, cond[:, C.V0 : C.REL_I], torch.zeros(1, C.N_BANDS), torch.zeros(1, 1))
        _, dev, _, _ = net._inputs(feat, cond, run)
        gate = net.identity_gate(dev, dens)
        g, _, _ = net(feat, low, cond)
        g0, _, _ = _gated(None)(feat, low, cond)
    assert float(gate[0, :40].max()) < 0.02 and float(gate[0, 80:].min()) > 0.999, gate[0, :90]
    assert torch.allclose(g[:, 80:], g0[:, 80:], atol=1e-3 * float(g0.abs().max()))


def test_gated_streaming_step_equals_whole_sequence():
    """With the identity gate (which reads the running fingerprint's frame count), frame-by-frame ``step``
    equals the whole-sequence output within 2e-5 of the peak."""
    torch.set_num_threads(1)
    r = Resculptor(_gated(RUN_GATE), SR).eval()
    x = _speechlike(SR)
    cond = _cond(r)
    cond[:, C.S0 : C.M0] += 8.0 * (-1.0) ** torch.arange(C.N_BANDS)  # a far target (and a large delta)
    err, (X, full) = _stream_error(r, x, cond)
    assert not torch.allclose(full[:, :-1], X[:, :-1])  # the gate opened
    assert err < 2e-5, err


def test_gate_arguments_are_checked():
    with pytest.raises(ValueError):
        ResculptNet(gate=(2.0, 0.0, 25.0, 120.0))
    with pytest.raises(ValueError):
        ResculptNet(gate=(2.0, 1.0))


# -- relative targets (a delta: "a bit warmer", a context) ----------------------------------------------------
def _delta_cond(text=None, band_db=None, sr=SR, **dz):
    """A relative conditioning row (1, COND_DIM) from a description (``dsp.descriptors.describe``), or from band
    offsets (32,) dB and scalar moves in z units by dim name."""
    from resculpt.dsp.descriptors import describe

    if text is not None:
        return torch.tensor(C.delta_cond(describe(text), sr))[None]
    c = torch.tensor(C.delta_cond(describe("a bit warmer"), sr))[None]
    c[0, C.S0 : C.M0] = torch.as_tensor(band_db, dtype=torch.float32) / 3.0 * c[0, C.M0 : C.V0]
    c[0, C.DZ0 :] = 0.0
    for k, v in dz.items():
        c[0, C.DZ0 + C.DIM_NAMES.index(k)] = v
    return c


@pytest.mark.parametrize("prior", [False, True])
@pytest.mark.parametrize("gate", [None, RUN_GATE])
def test_zero_delta_returns_exactly_the_identity_from_the_first_frame(gate, prior):
    """A relative target that moves nothing (zero band offsets, or a uniform level offset, and no scalar move)
    returns exactly the identity on every frame, the first included, with or without the identity gate and the
    relative prior, where the same weights under an absolute target far from the input move it."""
    feat, low = _steady_features()
    net = _gated(gate, relative_prior=prior)
    with torch.no_grad():
        for zero in (_delta_cond(band_db=torch.zeros(C.N_BANDS)), _delta_cond(band_db=torch.full((C.N_BANDS,), 6.0))):
            g, e, d = net(feat, low, zero)
            assert torch.count_nonzero(g) == 0 and torch.count_nonzero(e) == 0 and torch.count_nonzero(d) == 0
        far = _cond_with_shape(8.0 * (-1.0) ** torch.arange(C.N_BANDS))
        assert float(net(feat, low, far)[0][:, 100:].abs().max()) > 0.5


@pytest.mark.parametrize("text", ["a bit airy", "a bit warmer", "much louder", "a bit more compressed"])
def test_nonzero_delta_opens_the_gate_from_the_first_frame(text):
    """Under the run's identity gate, a relative target opens its own gate to >= 0.998 from the first frame, for
    band moves (the smallest of the vocabulary: "a bit airy") and scalar-only moves (loudness, dynamics), and
    the outputs move from the first frame; the identity gate does not act on relative rows (the outputs equal
    those of the same weights without it). The same move stated as an absolute target (input shape + offsets)
    is held at the identity over the first 100 ms by the identity gate's warm-up."""
    from resculpt.dsp.descriptors import describe

    feat, low = _steady_features()
    net = _gated(RUN_GATE)
    cond = _delta_cond(text)
    with torch.no_grad():
        run, _, _, _ = net.running(feat, cond[:, C.V0 : C.REL_I], torch.zeros(1, C.N_BANDS), torch.zeros(1, 1))
        _, _, _, size = net._inputs(feat, cond, run)
        gate = net.relative_gate(size)
        g, e, d = net(feat, low, cond)
        ga, _, _ = net(feat, low, _cond_with_shape(feat[0, 0] + torch.tensor(np.nan_to_num(describe(text).env()))))
        net.gate = None
        g1, e1, d1 = net(feat, low, cond)
    assert float(gate.min()) >= 0.998, (text, size, gate)
    assert float(g[0, 0].abs().max()) > 0.01 and float(d[0, 0].abs().max()) > 0.0
    assert torch.equal(g, g1) and torch.equal(e, e1) and torch.equal(d, d1)
    assert torch.count_nonzero(ga[:, :20]) == 0


def test_a_relative_target_equals_the_absolute_target_it_stands_for_on_a_steady_input():
    """On a steady input the running shape is the input's shape from the first active frame, so a relative
    target (offsets) and the absolute target input shape + offsets give the same outputs on every frame (no
    identity gate; the delta is large enough to open its own gate fully; the FiLM weights on the relative slots
    zero, as a checkpoint of the 124-float layout loads, and the same band mask in both rows), within 1e-4 of
    the peak."""
    feat, low = _steady_features()
    net = _gated(None)
    off = 4.0 * torch.sin(torch.arange(C.N_BANDS, dtype=torch.float32) / 3.0)
    rel = _delta_cond(band_db=off)
    ab = _cond_with_shape(feat[0, 0] + off)
    ab[:, C.M0 : C.V0] = rel[:, C.M0 : C.V0]
    with torch.no_grad():
        for f in net.films:
            f.weight[:, C.REL_I : C.COND_DIM] = 0.0
        gr, er, dr = net(feat, low, rel)
        ga, ea, da = net(feat, low, ab)
    for r, a in ((gr, ga), (er, ea), (dr, da)):
        assert float((r - a).abs().max()) <= 1e-4 * max(1.0, float(a.abs().max())), float((r - a).abs().max())
    assert float(ga.abs().max()) > 0.5


def test_scalar_moves_reach_the_film_only_of_relative_rows():
    """The relative flag and scalar moves enter the FiLM through their own weights: a net whose FiLM weights on
    those slots are zero (a checkpoint of the 124-float layout) ignores the scalar moves, and one with nonzero
    weights there moves its outputs with them."""
    feat, low = _steady_features(T=60)
    net = _gated(None)
    a = _delta_cond(band_db=torch.arange(C.N_BANDS) * 0.1)
    b = a.clone()
    b[0, C.DZ0 + C.DIM_NAMES.index("lufs_integrated")] = 3.0
    with torch.no_grad():
        for f in net.films:
            f.weight[:, C.REL_I : C.COND_DIM] = 0.0
        same = [float((x - y).abs().max()) for x, y in zip(net(feat, low, a), net(feat, low, b))]
        for f in net.films:
            f.weight[:, C.REL_I : C.COND_DIM].normal_(0, 0.1)
        moved = float((net(feat, low, a)[0] - net(feat, low, b)[0]).abs().max())
    assert max(same) == 0.0 and moved > 1e-3


def test_a_checkpoint_of_the_124_float_layout_gives_its_old_outputs_with_the_relative_flag_at_zero():
    """tests/data/resculpt_v1_fixture.npz holds small seeded nets of the first conditioning layout (FiLM input
    124 + 34), with and without the run's identity gate, and the outputs that code computed
    (scripts/resculpt_v1_fixture.py at f5da920). Their state dicts load into the current net (zero weights on
    the new slots) and, with the 124 floats padded by zeros (flag 0: absolute), give those outputs within
    1e-5 of each output's peak, under a far target and under one inside the gate's threshold."""
    fx = np.load(Path(__file__).parent / "data" / "resculpt_v1_fixture.npz")
    feat, low = torch.tensor(fx["feat"])[None], torch.tensor(fx["low"])[None]
    for name, gate in (("plain", None), ("gated", RUN_GATE)):
        net = ResculptNet(ch=(4, 6, 8), hidden=16, lookahead=1, gate=gate)
        sd = {k.split("/sd/", 1)[1]: torch.tensor(fx[k]) for k in fx.files if k.startswith(name + "/sd/")}
        assert sd["films.0.weight"].shape[1] == C.COND_DIM_V1 + C.RUN_DIM
        net.load_state_dict(sd)
        net.eval()
        for case in ("far", "near"):
            c1 = torch.tensor(fx[f"{name}/{case}/cond"])
            assert c1.shape == (C.COND_DIM_V1,)
            cond = torch.cat([c1, torch.zeros(C.COND_DIM - C.COND_DIM_V1)])[None]
            with torch.no_grad():
                got = net(feat, low, cond)
            for k, v in zip(("gain_db", "copy", "df"), got):
                want = torch.tensor(fx[f"{name}/{case}/{k}"])
                err = float((v[0] - want).abs().max()) / max(1e-6, float(want.abs().max()))
                assert err <= 1e-5 or float(want.abs().max()) == float(v.abs().max()) == 0.0, (name, case, k, err)


# -- the relative prior: a relative row's band gain = the delta's known gain + the learned residual -----------
def test_relative_prior_leaves_absolute_rows_bit_identical():
    """The same weights with and without ``relative_prior``: absolute rows (flag 0) give bit-identical outputs
    (every output, every frame, with the run's identity gate), relative rows differ in the band gain only."""
    r = _model(1)
    x = _speechlike(SR)
    feat, low = r.fio.features(r.fio.stft(x))
    cond = _cond(r, b=2)
    on = ResculptNet(lookahead=1, gate=RUN_GATE, relative_prior=True)
    off = ResculptNet(lookahead=1, gate=RUN_GATE)
    on.load_state_dict(r.net.state_dict())
    off.load_state_dict(r.net.state_dict())
    with torch.no_grad():
        a, b = on.eval()(feat, low, cond), off.eval()(feat, low, cond)
    assert all(torch.equal(u[0], v[0]) for u, v in zip(a, b))
    assert float((a[0][1] - b[0][1]).abs().max()) > 0.1
    assert torch.equal(a[1][1], b[1][1]) and torch.equal(a[2][1], b[2][1])


def _prior_alone(sr=SR):
    """An identity-initialised generator (residual gain 0, copy-up at -70 dB, identity taps) with the prior."""
    return Resculptor(ResculptNet(lookahead=1, relative_prior=True), sr).eval()


@pytest.mark.parametrize("text", ["warmer", "much brighter", "more bass, clearer highs, much louder"])
def test_the_relative_prior_alone_moves_band_shape_tilt_and_loudness_to_the_delta(text):
    """With the learned parts at the identity, the prior moves a speech-like clip's profile (``TorchProfiler``,
    3 s at 16 kHz) toward the input's profile moved by the description: the tilt within 0.1 dB/oct and the
    integrated loudness within 0.5 LU of what the delta asks (its tilt and loudness moves: 0 for a dim it leaves;
    the offsets' own slope and loudness change are compensated), and the level-free band envelope to at most half
    the input's distance from the target's (>= 0.9 dB RMS; what remains is the slope of the tilt move the offsets
    do not make, e.g. 0.5 dB RMS for "much brighter", 0.3 dB for the others)."""
    from resculpt.dsp.descriptors import describe
    from resculpt.models.resculpt import profile_torch as pt
    from resculpt.models.resculpt.train import nudge_tensors

    x = _speechlike(3 * SR)[:1] + _speechlike(3 * SR, seed=5)[1:]
    tp = pt.TorchProfiler(SR)
    band, dims = nudge_tensors([describe(text)])
    with torch.no_grad():
        px = tp(x)
        tgt = pt.apply_delta(px, band, dims, SR)
        po = tp(_prior_alone()(x, pt.delta_cond(band, dims, SR, "timbre")))

    def shape_rms(a, b):
        ok = a["band_env_ok"] & b["band_env_ok"] & torch.tensor(C.compare_mask())
        d = (a["band_env_db"] - b["band_env_db"]) * ok
        d = (d - d.sum(-1, keepdim=True) / ok.sum(-1, keepdim=True)) * ok
        return float((d.pow(2).sum(-1) / ok.sum(-1)).sqrt()[0])

    assert shape_rms(px, tgt) >= 0.9 and shape_rms(po, tgt) <= 0.5 * shape_rms(px, tgt)
    assert abs(float(po["tilt_db_oct"][0] - tgt["tilt_db_oct"][0])) <= 0.1
    assert abs(float(po["lufs_integrated"][0] - tgt["lufs_integrated"][0])) <= 0.5


def test_a_tilt_in_the_offsets_and_in_the_tilt_move_is_applied_once():
    """The ``resculpt.tilt_db_oct`` override on a delta puts its slope both in the band offsets and in the tilt
    move: the prior's gain then has that slope (least squares over the fingerprint's tilt bands, within 0.01
    dB/oct), not twice it; a tilt move without offsets gets the same slope from the move alone."""
    valid = torch.tensor(C.input_valid(SR), dtype=torch.float32)
    ts = torch.tensor(C.TILT_BANDS) & (valid > 0)
    x = torch.tensor(C.BAND_OCT_1K)

    def slope(g):
        xc, gc = x[ts] - x[ts].mean(), g[ts] - g[ts].mean()
        return float((xc * gc).sum() / (xc * xc).sum())

    z = 2.0 / 1.5  # 2 dB/oct in z units
    both = _delta_cond(band_db=2.0 * x, tilt_db_oct=z)
    move = _delta_cond(band_db=torch.zeros(C.N_BANDS), tilt_db_oct=z)
    with torch.no_grad():
        for c in (both, move):
            g = ResculptNet.relative_prior_db(c, torch.zeros(1, 1, C.N_BANDS))[0, 0]
            assert abs(slope(g) - 2.0) < 0.01


@pytest.mark.parametrize("text", ["more bass", "warmer", "brighter", "thinner"])
def test_the_prior_gives_a_description_its_shapes_own_slope_and_no_counter_tilt(text):
    """A description asks no tilt beyond its band shape, so the conditioning builder (``common.delta_cond``, at
    the net's rate) puts the shape's own slope in the tilt slot and the prior's gain has exactly the offsets'
    least-squares slope over the fingerprint's tilt bands (within 0.01 dB/oct): nothing added, nothing undone."""
    from resculpt.dsp.descriptors import describe
    from resculpt.dsp.features.spectral import tilt_slope_db_oct

    c = _delta_cond(text)
    with torch.no_grad():
        g = ResculptNet.relative_prior_db(c, torch.zeros(1, 1, C.N_BANDS))[0, 0].double().numpy()
    want = tilt_slope_db_oct(describe(text).env(), SR)
    assert abs(want) > 0.1 and abs(tilt_slope_db_oct(g, SR) - want) < 0.01


# -- the residual scale: relative rows' heads' deviations x learned scales that start at zero ------------------
def _scaled_pair(seed=0):
    """The same randomised weights (no ``rel_scale`` in the state dict) in a net with the relative prior and in one
    with the prior and the residual scale, both with the run's identity gate."""
    sd = _model(1, seed).net.state_dict()
    assert "rel_scale" not in sd
    off = ResculptNet(lookahead=1, gate=RUN_GATE, relative_prior=True)
    on = ResculptNet(lookahead=1, gate=RUN_GATE, relative_prior=True, residual_scale=True)
    on.rel_scale.data.fill_(0.7)  # loading a checkpoint without the key must reset it to its zero start
    off.load_state_dict(sd)
    on.load_state_dict(sd)
    return off.eval(), on.eval()


def test_a_checkpoint_without_the_residual_scale_loads_with_relative_rows_at_the_prior_alone():
    """Weights without ``rel_scale`` loaded into a net with the residual scale: the scales are zero; absolute rows
    give bit-identical outputs to the same weights without the scale (every output, every frame), and relative
    rows give exactly the prior alone: band gain = clamp(prior), no copy-up, identity taps, where the unscaled
    net's residual moves the gain by > 0.1 dB."""
    r = _model(1)
    x = _speechlike(SR)
    feat, low = r.fio.features(r.fio.stft(x))
    cond = _cond(r, b=2)
    off, on = _scaled_pair()
    assert torch.count_nonzero(on.rel_scale) == 0
    with torch.no_grad():
        a, b = off(feat, low, cond), on(feat, low, cond)
        run = on.running(feat, cond[:, C.V0 : C.REL_I], torch.zeros(2, C.N_BANDS), torch.zeros(2, 1))[0]
        prior = ResculptNet.relative_prior_db(cond, run[..., : C.N_BANDS])[1].clamp(-C.GAIN_MAX_DB, C.GAIN_MAX_DB)
        _, _, _, size = on._inputs(feat, cond, run)
        g = ResculptNet.relative_gate(size)[1]
    assert all(torch.equal(u[0], v[0]) for u, v in zip(a, b))
    assert float(g) > 0.99
    assert torch.equal(b[0][1], prior * g)
    assert torch.count_nonzero(b[1][1]) == 0 and torch.count_nonzero(b[2][1]) == 0
    assert float((a[0][1] - b[0][1]).abs().max()) > 0.1


def test_residual_scales_of_one_give_the_unscaled_outputs_and_get_a_gradient_at_zero():
    """Scales (1, 1, 1) give what the same weights without the scale give (every output, every row); at the zero
    start the scales get a non-zero gradient from a relative row's loss, so training can open them."""
    r = _model(1)
    feat, low = r.fio.features(r.fio.stft(_speechlike(SR)))
    cond = _cond(r, b=2)
    off, on = _scaled_pair()
    with torch.no_grad():
        on.rel_scale.fill_(1.0)
        a, b = off(feat, low, cond), on(feat, low, cond)
    assert all(torch.allclose(u, v, atol=1e-6) for u, v in zip(a, b))
    with torch.no_grad():
        on.rel_scale.zero_()
    gain, copy, df = on(feat, low, cond)
    (gain[1].pow(2).sum() + copy[1].sum() + (df[1] - 1.0).pow(2).sum()).backward()
    assert torch.count_nonzero(on.rel_scale.grad) == 3


def test_relative_heads_start_relative_rows_at_the_prior_alone_and_leave_absolute_rows_bit_identical():
    """Randomised weights with ``rel_scale`` in the state dict, loaded into a net with relative heads: the scale is
    dropped, the heads load at zero; absolute rows give what the same weights with the scale give (bit for bit),
    relative rows the prior alone (band gain = the zero-scale net's), the copy-up at its -70 dB start
    (softplus(-8)) and identity taps; the heads' weights get a non-zero gradient from a relative row's loss."""
    r = _model(1)
    feat, low = r.fio.features(r.fio.stft(_speechlike(SR)))
    cond = _cond(r, b=2)
    _, scaled = _scaled_pair()
    sd = scaled.state_dict()
    assert "rel_scale" in sd
    heads = ResculptNet(lookahead=1, gate=RUN_GATE, relative_prior=True, relative_heads=True)
    heads.load_state_dict(sd)
    assert not hasattr(heads, "rel_scale") or "rel_scale" not in heads.state_dict()
    assert torch.count_nonzero(heads.head_rel.weight) == 0 and torch.count_nonzero(heads.df_rel.weight) == 0
    with torch.no_grad():
        a, b = scaled(feat, low, cond), heads.eval()(feat, low, cond)
    assert all(torch.equal(u[0], v[0]) for u, v in zip(a, b))
    assert torch.equal(a[0][1], b[0][1])
    g = float(ResculptNet.relative_gate(heads._inputs(feat, cond, heads.running(
        feat, cond[:, C.V0 : C.REL_I], torch.zeros(2, C.N_BANDS), torch.zeros(2, 1))[0])[3])[1])
    assert torch.allclose(b[1][1], torch.full_like(b[1][1], float(torch.nn.functional.softplus(torch.tensor(-8.0))) * g))
    assert torch.count_nonzero(b[2][1]) == 0
    gain, copy, df = heads.train()(feat, low, cond)
    (gain[1].pow(2).sum() + copy[1].sum() + (df[1] - 1.0).pow(2).sum()).backward()
    assert torch.count_nonzero(heads.head_rel.weight.grad) > 0 and torch.count_nonzero(heads.df_rel.weight.grad) > 0


def test_relative_heads_need_the_relative_prior_and_exclude_the_residual_scale():
    with pytest.raises(ValueError, match="need relative_prior"):
        ResculptNet(relative_heads=True)
    with pytest.raises(ValueError, match="pick one"):
        ResculptNet(relative_prior=True, residual_scale=True, relative_heads=True)


def test_the_residual_scale_needs_the_relative_prior():
    with pytest.raises(ValueError):
        ResculptNet(residual_scale=True)


def test_the_committed_run_checkpoint_loads_with_the_residual_scale_at_the_prior_alone():
    """models/training/resculpt-gen1/ckpt.pt, its weights without ``rel_scale``, in a net with the residual scale
    added to its stored arguments: absolute rows bit-identical to the checkpoint's own net, relative rows the prior
    alone (no copy-up, identity taps)."""
    ck_path = Path(__file__).parents[1] / "models" / "training" / "resculpt-gen1" / "ckpt.pt"
    ck = torch.load(ck_path, map_location="cpu", weights_only=False)
    kw = dict(ck["net_kwargs"])
    if not kw.get("relative_prior"):
        pytest.skip("the committed checkpoint has no relative prior")
    sd = {k: v for k, v in ck["net"].items() if k != "rel_scale"}
    own = ResculptNet(**(kw | {"residual_scale": False}))
    own.load_state_dict(sd)
    on = ResculptNet(**(kw | {"residual_scale": True}))
    on.load_state_dict(sd)
    r = Resculptor(on, SR)
    feat, low = r.fio.features(r.fio.stft(_speechlike(SR)))
    cond = _cond(r, b=2)
    with torch.no_grad():
        a, b = own.eval()(feat, low, cond), on.eval()(feat, low, cond)
    assert torch.count_nonzero(on.rel_scale) == 0
    assert all(torch.equal(u[0], v[0]) for u, v in zip(a, b))
    assert torch.count_nonzero(b[1][1]) == 0 and torch.count_nonzero(b[2][1]) == 0


def _abs_prior_pair(seed=0):
    """The same randomised weights without and with the absolute prior (its residual heads as loaded from weights
    without them: the identity), the run's identity gate."""
    r = _model(1, seed)
    off = ResculptNet(lookahead=1, gate=RUN_GATE)
    on = ResculptNet(lookahead=1, gate=RUN_GATE, absolute_prior=True)
    off.load_state_dict(r.net.state_dict())
    on.load_state_dict(r.net.state_dict())
    return off.eval(), on.eval()


def test_a_checkpoint_without_the_absolute_heads_loads_them_at_the_identity():
    off, on = _abs_prior_pair()
    for m in (on.head_abs, on.df_abs):
        assert torch.count_nonzero(m.weight) == 0 and torch.count_nonzero(m.bias) == 0


def test_absolute_prior_leaves_relative_rows_bit_identical():
    """Relative rows (odd) give bit-identical outputs with and without the absolute prior; absolute rows' band gain
    differs (the prior and its own residual replace the shared heads' outputs)."""
    off, on = _abs_prior_pair()
    r = Resculptor(on, SR)
    feat, low = r.fio.features(r.fio.stft(_speechlike(SR)))
    cond = _cond(r, b=2)
    cond[0, C.S0 : C.M0] += 4.0 * (-1.0) ** torch.arange(C.N_BANDS)  # an absolute target far from the input
    with torch.no_grad():
        a, b = off(feat, low, cond), on(feat, low, cond)
    assert all(torch.equal(u[1], v[1]) for u, v in zip(a, b))
    assert float((a[0][0] - b[0][0]).abs().max()) > 0.1


@pytest.mark.parametrize("relative_prior", [False, True])
def test_the_absolute_prior_alone_gives_the_clipped_level_free_shape_difference_once_warmed_up(relative_prior):
    """An identity-initialised generator with the absolute prior (with or without the relative one), a steady input and an absolute target = the
    input's band levels + a 1.5 dB/band zigzag + a 30 dB boost of one band: after 2 s (the prior gate's warm-up
    term below 0.01 dB) each compared band's gain is the level-free difference clipped to -24..+18 dB, within
    0.01 dB, the bands beyond the first and last compared ones take their edge band's gain (as the match-EQ's
    curve), and the residual heads add nothing (zero weights: no copy-up beyond -70 dB, identity taps)."""
    net = ResculptNet(lookahead=1, gate=RUN_GATE, absolute_prior=True, relative_prior=relative_prior).eval()
    T = 600
    feat, low = _steady_features(T)
    want = feat[0, 0] + 1.5 * (-1.0) ** torch.arange(C.N_BANDS)
    want[10] += 30.0
    cond = _cond_with_shape(want)
    with torch.no_grad():
        g, e, dfd = net(feat, low, cond)
    assert torch.count_nonzero(dfd) == 0 and float(e.max()) < 4e-4
    ok = torch.tensor(C.compare_mask() & C.input_valid(SR))
    d = (want - feat[0, 0])[ok]
    d = (d - d.mean()).clamp(-C.ABS_PRIOR_CUT_DB, C.ABS_PRIOR_BOOST_DB)
    assert float(d.max()) == C.ABS_PRIOR_BOOST_DB  # the boosted band is clipped
    assert float((g[0, 400:][:, ok] - d).abs().max()) < 0.01
    # flat edges: the bands below the first compared one and above the last take their gain
    i = torch.nonzero(ok).flatten()
    lo, hi = int(i[0]), int(i[-1])
    assert torch.equal(g[0, 400:, :lo], g[0, 400:, lo : lo + 1].expand(-1, lo))
    assert torch.equal(g[0, 400:, hi + 1 :], g[0, 400:, hi : hi + 1].expand(-1, C.N_BANDS - hi - 1))


def test_absolute_prior_returns_exactly_the_identity_when_the_target_is_the_inputs_envelope():
    """Target band shape == the steady input's: the prior (difference 0, inside its gate's warm-up term) and the
    residual (identity gate) are exactly the identity on every frame."""
    _, on = _abs_prior_pair()
    feat, low = _steady_features()
    cond = _cond_with_shape(feat[0, 0])
    with torch.no_grad():
        g, e, d = on(feat, low, cond)
    assert torch.count_nonzero(g) == 0 and torch.count_nonzero(e) == 0 and torch.count_nonzero(d) == 0


def test_absolute_prior_streaming_step_equals_whole_sequence():
    """With the absolute prior and its gate, frame-by-frame ``step`` equals the whole sequence within 2e-5 of the
    peak (as the gated net without it)."""
    torch.set_num_threads(1)
    r = Resculptor(_abs_prior_pair()[1], SR).eval()
    cond = _cond(r)
    cond[:, C.S0 : C.M0] += 8.0 * (-1.0) ** torch.arange(C.N_BANDS)
    err, (X, full) = _stream_error(r, _speechlike(SR), cond)
    assert not torch.allclose(full[:, :-1], X[:, :-1])
    assert err < 2e-5, err


def test_the_absolute_residual_heads_get_a_gradient_at_their_zero_start():
    _, on = _abs_prior_pair()
    r = Resculptor(on.train(), SR)
    feat, low = r.fio.features(r.fio.stft(_speechlike(SR)))
    cond = _cond(r, b=2)
    cond[0, C.S0 : C.M0] += 4.0 * (-1.0) ** torch.arange(C.N_BANDS)
    gain, copy, df = on(feat, low, cond)
    (gain[0].pow(2).sum() + copy[0].sum() + df[0].sum()).backward()
    assert all(float(on.head_abs.weight.grad[c].abs().max()) > 0 for c in (0, 1))
    assert float(on.df_abs.weight.grad.abs().max()) > 0
