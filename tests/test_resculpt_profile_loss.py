"""The differentiable fingerprint (models/resculpt/profile_torch.py) agrees with dsp/profile.fingerprint on
real clips, dim by dim, and passes gradients to the waveform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from resculpt.dsp.profile import DIMS, distance, fingerprint
from resculpt.models.resculpt import profile_torch as pt

# Stated tolerances per dim (absolute, in the dim's unit); measured worst cases on the clips below in comments.
TOL = {
    "band_env_db": 1e-3,       # float32 vs float64 only (measured 4e-6 dB)
    "centroid_hz": 0.05,       # (measured 4e-5 Hz)
    "rolloff_hz": 25.0,        # half a 50 Hz bin: continuous crossing vs numpy's bin centre
    "tilt_db_oct": 1e-3,       # (measured 2e-6)
    "lufs_integrated": 0.05,   # numpy's relative gate is quantised to its 0.05 LU histogram (measured 1e-5)
    "lra_lu": 0.1,             # numpy reads its percentiles as 0.05 LU bin centres (two of them)
    "crest_db": 0.01,          # (measured 2e-6)
}


@pytest.fixture(scope="module")
def clips():
    from resculpt.models import data

    if not data.have_data():
        pytest.skip(f"shared data folder not found at {data.data_root()} (set RESCULPT_DATA)")
    out = []
    for cat, sr, k in (("speech", 16000, 2), ("music", 16000, 1), ("music", 48000, 1)):
        items = sorted(data.select(cat, "train", min_duration_s=6.0), key=lambda it: str(it.path))[:k]
        for it in items:
            x, _ = data.load(it, sr)
            x = x[: 6 * sr]
            out.append((f"{cat}:{it.path.name}@{sr}", x, sr, fingerprint(x, sr)))
    return out


def test_torch_profile_matches_fingerprint_per_dim(clips):
    """On real speech and music at 16 and 48 kHz, every covered dim lands within TOL of dsp's fingerprint,
    and the envelope is masked exactly where the fingerprint has NaN."""
    for name, x, sr, fp in clips:
        p = pt.TorchProfiler(sr)(torch.tensor(x)[None])
        ok = p["band_env_ok"][0].numpy()
        assert np.array_equal(ok, np.isfinite(fp.env())), name
        err = np.max(np.abs(p["band_env_db"][0].numpy()[ok] - fp.env()[ok]))
        assert err <= TOL["band_env_db"], (name, err)
        for k in pt.COVERED:
            ref = fp.dims[k]
            assert bool(p[k + "_ok"][0]) == math.isfinite(ref), (name, k)
            if math.isfinite(ref):
                assert abs(float(p[k][0]) - ref) <= TOL[k], (name, k, float(p[k][0]), ref)


def test_covered_and_uncovered_dims_partition_the_schema():
    """Every scalar dim of the schema is either covered by the torch profile or listed as not covered."""
    assert set(pt.COVERED) | set(pt.NOT_COVERED) == {d.name for d in DIMS}
    assert not set(pt.COVERED) & set(pt.NOT_COVERED)


def test_torch_distance_equals_profile_distance_on_covered_dims(clips):
    """pt.distance between two clips == dsp.profile.distance with the uncovered dims weighted 0 (within 2 %)."""
    (n1, x1, sr, fp1), (n2, x2, _, fp2) = clips[0], clips[2]
    tp = pt.TorchProfiler(sr)
    d_t = float(pt.distance(tp(torch.tensor(x1)[None]), tp(torch.tensor(x2)[None]))[0])
    d_np = distance(fp1, fp2, weights={k: 0.0 for k in pt.NOT_COVERED})
    assert d_t == pytest.approx(d_np, rel=0.02)


@pytest.mark.parametrize("dim", [*pt.COVERED, "band_env_db"])
def test_gradients_flow_from_each_dim_to_the_waveform(clips, dim):
    """The squared distance restricted to one dim gives a finite, non-zero gradient on the input samples."""
    name, x, sr, _ = clips[1]
    n = 4 * sr if dim == "lra_lu" else 2 * sr  # LRA needs more than one 3 s short-term block
    tp = pt.TorchProfiler(sr)
    xt = torch.tensor(x[:n] * 0.7, requires_grad=True)
    with torch.no_grad():
        target = tp(torch.tensor(x[:n])[None])
    target = {k: v.detach().clone() for k, v in target.items()}
    # a target away from the clip in every dim (envelope: a tilt of 1 dB per band; Hz dims x 1.2; others + 1)
    target["band_env_db"] += torch.arange(32.0)
    for k in pt.COVERED:
        target[k] = target[k] * 1.2 if k.endswith("_hz") else target[k] + 1.0
    w = {k: 0.0 for k in pt.COVERED} | {"band_env_db": 0.0} | {dim: 1.0}
    loss = pt.squared_distance(tp(xt[None]), target, w).sum()
    assert float(loss.detach()) > 0
    loss.backward()
    g = xt.grad
    assert torch.isfinite(g).all() and float(g.abs().sum()) > 0, dim


def test_torch_conditioning_vector_matches_the_runtime_one(clips):
    """cond_vector(torch profile) equals common.cond_from_profile(fingerprint) on the covered dims and the
    envelope (within 0.03 normalised units; rolloff within half a 50 Hz bin), and leaves the uncovered dims unset."""
    from resculpt.models.resculpt import common as C

    for name, x, sr, fp in clips:
        v_t = pt.cond_vector(pt.TorchProfiler(sr)(torch.tensor(x)[None]), sr, "all")[0].numpy()
        v_np = C.cond_from_profile(fp, sr, "all")
        for i, dim in enumerate(C.DIM_NAMES):
            if dim in pt.NOT_COVERED:
                assert v_t[i] == 0 and v_t[C.N_DIMS + i] == 0
            else:
                tol = 0.03
                if dim == "rolloff_hz":  # half a 50 Hz bin, in quarter octaves at this clip's roll-off
                    tol = math.log2(1 + TOL["rolloff_hz"] / fp.dims[dim]) / 0.25 + 1e-3
                assert v_t[C.N_DIMS + i] == v_np[C.N_DIMS + i], (name, dim)
                assert abs(v_t[i] - v_np[i]) <= tol, (name, dim, v_t[i], v_np[i])
        np.testing.assert_allclose(v_t[2 * C.N_DIMS :], v_np[2 * C.N_DIMS :], atol=1e-3)


def test_a_row_without_active_frames_gives_finite_gradients(clips):
    """A batch row below the activity floor (-70 dB: silence, or an output the generator has turned down) is
    masked out of the profile, and the gradient on every sample of the batch stays finite: one such row
    must not turn a training step's update into NaN."""
    name, x, sr, _ = clips[0]
    n = 2 * sr
    tp = pt.TorchProfiler(sr)
    xt = torch.tensor(np.stack([x[:n], np.full(n, 1e-6, np.float32)]), requires_grad=True)
    with torch.no_grad():
        target = tp(torch.tensor(x[:n] * 0.5)[None].repeat(2, 1))  # 6 dB quieter: a non-zero distance
    p = tp(xt)
    assert bool(p["band_env_ok"][0].any()) and not bool(p["band_env_ok"][1].any())
    pt.squared_distance(p, target).sum().backward()
    assert torch.isfinite(xt.grad).all()
    assert float(xt.grad[0].abs().sum()) > 0
