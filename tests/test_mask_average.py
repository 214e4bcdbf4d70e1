"""scripts/mask_average.py: weight averaging of mask checkpoints (needs the [train] extra: torch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")

REPO = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("mask_average", REPO / "scripts" / "mask_average.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ckpt(path, seed, **kw):
    from resculpt.models.mask.net import MaskNet

    torch.manual_seed(seed)
    kwargs = dict(hidden=16, ch=4, n_fine=0, **kw)
    net = MaskNet(**kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    torch.save({"net": net.state_dict(), "net_kwargs": kwargs, "step": seed * 100, "args": {}, "loss_w": {}}, path)
    return net


def test_the_average_of_two_checkpoints_is_their_elementwise_midpoint_and_loads_as_a_net(tmp_path):
    from resculpt.models.mask.export import load_net

    a, b = _ckpt(tmp_path / "a.pt", 1), _ckpt(tmp_path / "b.pt", 2)
    _script().main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "m.pt")])
    net, ck = load_net(tmp_path / "m.pt")
    sa, sb, sm = a.state_dict(), b.state_dict(), net.state_dict()
    for k, v in sm.items():
        if k in ("feat_mean", "feat_std", "fine_mean", "fine_std"):
            assert torch.equal(v, sa[k])
        else:
            assert torch.allclose(v, (sa[k] + sb[k]) / 2, atol=1e-6), k
    assert [r["step"] for r in ck["averaged_from"]] == [100, 200]
    assert "opt_g" not in ck  # no optimiser state: training cannot resume from a mean


def test_checkpoints_of_different_architectures_are_refused(tmp_path):
    _ckpt(tmp_path / "a.pt", 1)
    _ckpt(tmp_path / "b.pt", 2, df_bins=4)
    with pytest.raises(ValueError, match="different"):
        _script().main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "m.pt")])


def test_a_committed_checkpoint_is_read_from_history_by_rev_and_path_after_the_file_changed(tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}

    def git(*a):
        return subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True, text=True, env=env).stdout

    git("init", "-q")
    _ckpt(repo / "ckpt.pt", 1)
    git("add", "ckpt.pt")
    git("commit", "-q", "-m", "one")
    rev = git("rev-parse", "HEAD").strip()
    _ckpt(repo / "ckpt.pt", 2)  # the worktree's file moves on; the commit keeps step 100
    ck = _script().load(f"{rev}:ckpt.pt", repo=repo)
    assert ck["step"] == 100 and torch.load(repo / "ckpt.pt", weights_only=False)["step"] == 200
