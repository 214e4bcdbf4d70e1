"""Shared fixtures: real clips, block-size schedules, streaming helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resculpt.models import data

BLOCK_SIZES = (1, 63, 64, 65, 512, 8193)
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "speech_1081_librispeech.flac"


def stream(proc, x: np.ndarray, sizes, seed: int = 0) -> np.ndarray:
    """Feed x (channels, n) through proc.process in blocks cycling through ``sizes``; "random"
    picks a size in 0..max_block (0 included: zero-length blocks are part of the schedule)."""
    out = x.copy()
    rng = np.random.default_rng(seed)
    i, k = 0, 0
    n = x.shape[1]
    while i < n:
        s = sizes[k % len(sizes)]
        k += 1
        if s == "random":
            s = int(rng.integers(0, min(proc.max_block, 3000) + 1))
        s = min(s, n - i, proc.max_block)
        proc.process(out[:, i : i + s])
        i += s
    return out


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    from scipy.signal import resample_poly

    g = int(np.gcd(sr_in, sr_out))
    return resample_poly(x, sr_out // g, sr_in // g, axis=-1).astype(np.float32)


@pytest.fixture(scope="session")
def speech_clip():
    """The bundled real speech clip (LibriSpeech, CC BY 4.0): (x (n,), 16000)."""
    x, sr = data.load(EXAMPLE)
    return x, sr


def real_stereo(sr: int, seconds: float = 1.0, offset_s: float = 2.0) -> np.ndarray:
    """A real stereo-ish test signal at ``sr``: left = bundled speech, right = a shared-data music
    clip (validation split) when the data folder is present, else speech delayed by 7 ms."""
    x, xsr = data.load(EXAMPLE)
    x = resample(x, xsr, sr)
    a = int(offset_s * sr)
    n = int(seconds * sr)
    left = x[a : a + n]
    right = None
    if data.have_data():
        music = data.select("music", "val", min_duration_s=seconds + offset_s)
        if music:
            m, _ = data.load(music[0], sample_rate=sr)
            right = m[a : a + n]
    if right is None or right.size < n:
        d = int(0.007 * sr)
        right = x[a - d : a - d + n]
    return np.stack([left, right]).astype(np.float32) * 0.8


@pytest.fixture
def needs_data():
    if not data.have_data():
        pytest.skip(f"shared data folder not found at {data.data_root()} (set RESCULPT_DATA)")
    return data.data_root()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def private_dirs(tmp_path, monkeypatch):
    """Own XDG data/config folders for a test (the user profile and contexts never touch $HOME).
    Profile tests use it module-wide: ``pytestmark = pytest.mark.usefixtures("private_dirs")``."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    return tmp_path


@pytest.fixture(autouse=True, scope="session")
def _private_user_data(tmp_path_factory):
    """The whole suite writes user data (the adjustment log an OSC server attaches, learned
    profiles) under a temporary $XDG_DATA_HOME, never into the tester's home."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def fine_mask_bundle(tmp_path_factory):
    """A mask bundle *with* the fine-feature branch (random weights, exported and verified like a trained
    one): the shipped model may not use the branch, its runtime path is tested all the same."""
    torch = pytest.importorskip("torch")
    from resculpt.models.mask.export import export
    from resculpt.models.mask.net import MaskNet
    from resculpt.models.mask.bundle import load_bundle

    d = tmp_path_factory.mktemp("fine_bundle")
    torch.manual_seed(0)
    net = MaskNet(n_fine=128)
    torch.save({"net": net.state_dict(), "net_kwargs": {"n_fine": 128}, "step": 0}, d / "ckpt.pt")
    export(d / "ckpt.pt", d / "bundle")
    return load_bundle(d / "bundle")


def make_df_net(seed: int = 0, lookahead: int = 2, gains_one: bool = False):
    """A MaskNet with the fine branch and deep-filter taps (5 frames x 32 bins of the 10 ms window) whose taps are
    non-trivial (a few tenths: the deep-filter term moves the low bins audibly); ``gains_one`` fixes every band
    gain at 1 (head weights 0, bias 30), so a test sees the deep-filter term alone; bin 0's taps are zero (the
    stage's band limits never reach 0 Hz). Returns (net, net_kwargs)."""
    import torch
    from resculpt.models.mask.net import MaskNet

    torch.manual_seed(seed)
    kw = {"n_fine": 128, "lookahead": lookahead, "df_bins": 32, "df_order": 5}
    net = MaskNet(**kw)
    with torch.no_grad():
        net.df_head.weight.normal_(0, 0.05)
        net.df_head.bias.normal_(0, 0.15)
        k = net.df_bins
        for j in range(net.df_order):  # bin 0 of every tap: rows (j K + 0) * 2 + {re, im}
            net.df_head.weight[2 * j * k : 2 * j * k + 2] = 0.0
            net.df_head.bias[2 * j * k : 2 * j * k + 2] = 0.0
        if gains_one:
            net.head.weight.zero_()
            net.head.bias.fill_(30.0)
    return net.eval(), kw


@pytest.fixture(scope="session")
def df_mask_bundle(tmp_path_factory):
    """A mask bundle whose net has two frames of look-ahead and deep-filter taps (random weights, ``make_df_net``),
    exported and verified like a trained one: the runtime's deep-filter path is tested whichever bundle ships."""
    torch = pytest.importorskip("torch")
    from resculpt.models.mask.bundle import load_bundle
    from resculpt.models.mask.export import export

    d = tmp_path_factory.mktemp("df_bundle")
    net, kw = make_df_net()
    torch.save({"net": net.state_dict(), "net_kwargs": kw, "step": 0}, d / "ckpt.pt")
    export(d / "ckpt.pt", d / "bundle")
    return load_bundle(d / "bundle")


def export_test_generator(folder, lookahead: int = 1, seed: int = 0):
    """A resculpting generator with randomised output heads and FiLM (every output path moves the sound by a
    few dB), exported and verified like a trained one into ``folder``; returns the folder."""
    import torch
    from resculpt.models.resculpt.export import export
    from resculpt.models.resculpt.net import ResculptNet

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = ResculptNet(lookahead=lookahead).randomise_heads()
    with torch.no_grad():
        net.head.bias[0] += 1.0  # band gains of a few dB (30 tanh(0.1 h)), so the stage is audibly active
    torch.save({"net": net.state_dict(), "net_kwargs": {"lookahead": lookahead}, "step": 0, "sample_rate": 16000},
               folder / "ckpt.pt")
    export(folder / "ckpt.pt", folder / "bundle")
    return folder / "bundle"


@pytest.fixture(scope="session")
def resculpt_bundle(tmp_path_factory):
    """The resculpt slot's bundle for the session: the shipped one when present, else a test generator
    (``export_test_generator``, look-ahead 1) that the stage's default loader finds through
    $RESCULPT_GENERATOR_BUNDLE. Tests that build every catalog slot use it."""
    from resculpt.models.resculpt import bundle as rb

    if rb.bundle_present():
        yield rb.bundle_dir()
        return
    pytest.importorskip("torch")
    path = export_test_generator(tmp_path_factory.mktemp("resculpt_gen"))
    mp = pytest.MonkeyPatch()
    mp.setenv(rb.BUNDLE_ENV, str(path))
    yield path
    mp.undo()
