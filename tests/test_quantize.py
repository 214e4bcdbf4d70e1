"""Quantised and pruned bundles (resculpt.models.quantize): what the tool writes describes itself, the loaders verify
it exactly (sha256, precision, golden outputs recomputed from the new graph), and the stages run it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("onnx", reason="writing a quantised bundle needs onnx (the train extra)")
pytest.importorskip("torch", reason="the resculpt export needs torch (the train extra)")
from resculpt.dsp.stft import StreamingSTFT
from resculpt.models.mask.bundle import BUNDLE_DIR, BundleError, load_bundle
from resculpt.models.mask.stage import MaskStage
from resculpt.models.quantize import prune_weights, quantize_bundle
from test_mask_stage import _signal, _table
from test_resculpt_export import exported  # noqa: F401  (fixture: the generator export with randomised heads)


@pytest.fixture(scope="module")
def int8_mask(tmp_path_factory):
    d = tmp_path_factory.mktemp("q") / "mask-int8"
    return d, quantize_bundle(BUNDLE_DIR, d)


def _mask_out(bundle, x, block):
    s = StreamingSTFT("low-latency", [MaskStage(_table(**{"mask.reduction_db": 30.0}), bundle)])
    s.prepare(48000, 4096, 1)
    y = x.copy()
    for i in range(0, y.shape[1], block):
        s.process(y[:, i : i + block])
    return y


def test_int8_mask_bundle_describes_itself_and_passes_its_golden_check(int8_mask):
    """The int8 bundle loads through the mask loader's checks (sha256, precision, golden within 1e-4 of the int8
    graph's own outputs); its config names the source bundle, the int8 kernels onnxruntime runs, the float GRU
    and the golden deviation from the float bundle, which equals the golden files' difference."""
    path, cfg = int8_mask
    b = load_bundle(path)
    assert b.precision == "int8" and b.seq_session is None and "seq_model" not in cfg
    src = json.loads((BUNDLE_DIR / "config.json").read_text())
    q = cfg["quantisation"]
    assert q["source"]["sha256"] == src["sha256"] != cfg["sha256"]
    assert q["kernels"].get("ConvInteger", 0) + q["kernels"].get("DynamicQuantizeMatMul", 0) > 0
    assert q["kernels"]["GRU"] == 1  # onnxruntime has no integer GRU
    g_new, g_src = np.load(path / "golden.npz"), np.load(BUNDLE_DIR / "golden.npz")
    for k in ("feat", "fine", "cond"):
        np.testing.assert_array_equal(g_new[k], g_src[k])
    assert q["golden_max_dev_from_source"]["gains"] == float(np.max(np.abs(g_new["gains"] - g_src["gains"])))
    assert q["golden_max_dev_from_source"]["gains"] > 0


def test_int8_mask_stage_output_does_not_depend_on_the_block_size(int8_mask):
    """Without a batched graph every frame is one int8 call, so 128-sample blocks (the live path) and 4096-sample
    blocks (renders) give the same output bit for bit, and it is finite."""
    x = _signal(48000, 48000)
    y128 = _mask_out(load_bundle(int8_mask[0]), x, 128)
    y4096 = _mask_out(load_bundle(int8_mask[0]), x, 4096)
    assert np.all(np.isfinite(y128))
    np.testing.assert_array_equal(y128, y4096)


def test_int8_bundle_with_float_golden_altered_golden_or_unknown_precision_is_rejected(int8_mask, tmp_path):
    """The golden check is exact for the graph the file holds: the float bundle's golden gains (the int8 graph
    misses them), gains moved by 2e-4, or a precision this code does not run: BundleError."""
    for case in ("float-golden", "moved", "precision"):
        d = tmp_path / case
        shutil.copytree(int8_mask[0], d)
        if case == "float-golden":
            shutil.copy(BUNDLE_DIR / "golden.npz", d / "golden.npz")
        elif case == "moved":
            g = dict(np.load(d / "golden.npz"))
            g["gains"] = g["gains"] + np.float32(2e-4)
            np.savez(d / "golden.npz", **g)
        else:
            cfg = json.loads((d / "config.json").read_text())
            cfg["precision"] = "int4"
            (d / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(BundleError):
            load_bundle(d)


def test_quantising_a_quantised_bundle_or_an_unknown_precision_is_refused(int8_mask, tmp_path):
    with pytest.raises(ValueError, match="already"):
        quantize_bundle(int8_mask[0], tmp_path / "twice")
    with pytest.raises(ValueError, match="precision"):
        quantize_bundle(BUNDLE_DIR, tmp_path / "x", precision="int4")


def test_pruned_float_bundle_keeps_its_batched_graph_and_has_the_stated_zeros(tmp_path):
    """--prune 0.5 at float32: each pruned weight tensor is half zeros (as the config records), and the batched
    graph is kept and passes the loader's golden check beside the one-frame graph."""
    import onnx
    from onnx import numpy_helper

    cfg = quantize_bundle(BUNDLE_DIR, tmp_path / "p", precision="float32", prune=0.5)
    b = load_bundle(tmp_path / "p")
    assert b.precision == "float32" and b.seq_session is not None
    zeros = cfg["quantisation"]["prune"]["zeros"]
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "p" / "model.onnx")).graph.initializer}
    assert len(zeros) >= 8  # 6 convs, 2 matmuls/gemms at least, the GRU's W and R
    for name, z in zeros.items():
        assert z == float(np.mean(init[name] == 0.0))
        assert abs(z - 0.5) <= 0.5 / init[name].size + 1e-9


def test_prune_weights_zeroes_the_smallest_magnitudes():
    import onnx
    from onnx import helper, numpy_helper

    w = np.array([[0.1, -0.5], [0.3, -0.05]], np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g)
    assert prune_weights(m, 0.5) == {"w": 0.5}
    np.testing.assert_array_equal(numpy_helper.to_array(m.graph.initializer[0]), np.array([[0.0, -0.5], [0.3, 0.0]], np.float32))


def test_int8_resculpt_bundle_passes_its_golden_check_and_runs_in_the_resculpt_stage(exported, tmp_path, monkeypatch):  # noqa: F811
    """A generator export (randomised output heads, so the outputs are non-trivial), quantised: the resculpt loader
    verifies it, its golden outputs differ from the float ones by the recorded amount, and the resculpt stage runs it
    with a published target to a finite output with the float bundle's latency."""
    from resculpt.dsp.profile import Profile
    from resculpt.models.resculpt import bundle as RB
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.layout import Layout

    shutil.copytree(exported[1], tmp_path / "float")
    cfg = quantize_bundle(tmp_path / "float", tmp_path / "int8")
    b = RB.load_bundle(tmp_path / "int8")
    assert b.precision == "int8" and cfg["quantisation"]["kernels"]["GRU"] == 1
    g_new, g_src = np.load(tmp_path / "int8" / "golden.npz"), np.load(tmp_path / "float" / "golden.npz")
    for k in RB.OUTPUTS:
        assert cfg["quantisation"]["golden_max_dev_from_source"][k] == float(np.max(np.abs(g_new[k] - g_src[k])))
    assert max(cfg["quantisation"]["golden_max_dev_from_source"].values()) > 0
    target = Profile("target", {"centroid_hz": 1500.0}, band_env_db=list(-30.0 - 1.5 * np.arange(32)))
    outs = {}
    for name in ("float", "int8"):
        monkeypatch.setenv(RB.BUNDLE_ENV, str(tmp_path / name))
        ch = Chain(Layout(spectral=("resculpt",)), 48000, 1, 480)
        ch.set_target(target, engine="model")
        y = _signal(48000, 24000)
        for i in range(0, y.shape[1], 480):
            ch.process(y[:, i : i + 480])
        outs[name] = (y, ch.latency_samples)
    assert np.all(np.isfinite(outs["int8"][0])) and outs["int8"][1] == outs["float"][1]
    assert not np.array_equal(outs["int8"][0], outs["float"][0])


def test_int8_deep_filter_bundle_keeps_its_taps_checked_and_runs_them(df_mask_bundle, tmp_path):
    """A bundle whose net emits deep-filter taps quantises like any mask bundle: the golden file holds the int8
    graph's gains and taps, the config gives the deviation of each from the float bundle, and the stage loads it
    and applies the taps (its output differs from the same stage with them switched off)."""
    from resculpt.models.mask.stage import HighQualityMask

    cfg = quantize_bundle(df_mask_bundle.path, tmp_path / "df-int8")
    b = load_bundle(tmp_path / "df-int8")
    assert b.precision == "int8" and b.df_bins == df_mask_bundle.df_bins
    g_new, g_src = np.load(tmp_path / "df-int8" / "golden.npz"), np.load(df_mask_bundle.path / "golden.npz")
    dev = cfg["quantisation"]["golden_max_dev_from_source"]
    assert dev["df"] == float(np.max(np.abs(g_new["df"] - g_src["df"]))) > 0
    x = _signal(48000, 24000)
    outs = []
    for on in (True, False):
        st = HighQualityMask(_table(**{"mask_hq.reduction_db": 30.0}), b)
        s = StreamingSTFT("low-latency", [st])
        s.prepare(48000, 4096, 1)
        st._df_on = st._df_on and on
        y = x.copy()
        s.process(y)
        outs.append(y)
    assert np.all(np.isfinite(outs[0])) and np.abs(outs[0] - outs[1]).max() > 1e-3
