"""Int8 quantisation and magnitude pruning of a model bundle (the mask's or the resculpt generator's), written as a
new self-describing bundle that the bundle's own loader verifies.

    .venv/bin/python -m resculpt.models.quantize models/weights/mask --out runs/mask-int8
    .venv/bin/python -m resculpt.models.quantize BUNDLE --out DIR [--precision int8|float32] [--prune 0.5]

Needs ``onnx`` (the ``train`` extra) to write; the result loads with onnxruntime alone.

``--precision int8`` (default): ``onnxruntime.quantization.quantize_dynamic`` on the Conv, MatMul and Gemm nodes:
weights int8 per tensor in the 7-bit range (``reduce_range``: the AVX2 u8s8 kernels add pairs of u8 x s8
products in int16, which saturates with full-range weights, so results would depend on the CPU's instruction
set), activations uint8 with a scale taken from each call's tensor range. onnxruntime has no integer GRU
kernel, so a GRU stays float32; the config lists the compute kernels onnxruntime actually runs (its optimised
graph). A mask bundle's batched graph (``model_seq.onnx``) is left out: the activation scale of a call that
covers T frames is taken over all T, so it would not give the gains of T one-frame calls, which the stage
requires (it then runs one call per frame).

``--prune F``: before quantising, the fraction F of each weight tensor with the smallest magnitudes (Conv, MatMul
and Gemm weights, a GRU's input and recurrent weights) is set to 0. onnxruntime's CPU kernels are dense, so
this changes quality and the compressed size, never the speed.

The new bundle: the graph(s), ``golden.npz`` with the source's golden inputs and the outputs recomputed from the
new graph (so the loader's golden check stays exact for the file it checks), and ``config.json``: the source's,
with the new sha256 and size, ``precision``, and ``quantisation`` = method, kernels, the source bundle's sha256
and the largest deviation of the new golden outputs from the source's golden outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

PRECISIONS = ("float32", "int8")
QUANT_OPS = ("Conv", "MatMul", "Gemm")
# Compute kernels listed in the config (those that do the multiply-adds), as onnxruntime's optimised graph names them.
COMPUTE_OPS = ("Conv", "FusedConv", "ConvInteger", "MatMul", "FusedMatMul", "MatMulInteger", "DynamicQuantizeMatMul",
               "MatMulIntegerToFloat", "Gemm", "FusedGemm", "QGemm", "QLinearConv", "QLinearMatMul", "GRU",
               "DynamicQuantizeLSTM", "LSTM")
INT8_OPS = ("ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm", "QLinearConv",
            "QLinearMatMul", "DynamicQuantizeLSTM")


def _kind(cfg: dict):
    """(loader, run, golden input names, golden output names) for a bundle's config, by its ``name``; ``run(sess,
    golden)`` gives {output: (T, ...)} of an ORT session fed the golden inputs from zero state."""
    from resculpt.models.mask import bundle as mb
    from resculpt.models.resculpt import bundle as rb

    shapes = {k: tuple(v) for k, v in cfg["state_shapes"].items()}
    names = list(cfg["state_inputs"])
    if cfg.get("name") == "resculpt-mask":
        has_fine = int(cfg.get("n_fine", 0)) > 0
        n_df = mb.df_size(cfg)

        def run_mask(sess, g):
            return mb.split_outputs(mb.run_streaming(sess, g["feat"], g["fine"], g["cond"], shapes, has_fine, names,
                                                     df=bool(n_df)), n_df)

        return mb.load_bundle, run_mask, ("feat", "fine", "cond"), ("gains", "df") if n_df else ("gains",)
    if cfg.get("name") == rb.NAME:
        return (rb.load_bundle, lambda sess, g: rb.run_streaming(sess, g["feat"], g["low"], g["cond"], shapes, names),
                ("feat", "low", "cond"), rb.OUTPUTS)
    raise ValueError(f"not a bundle this tool knows: name {cfg.get('name')!r}")


def prune_weights(model, fraction: float) -> dict:
    """Set the ``fraction`` smallest-magnitude entries of every weight initialiser of ``model`` (onnx ModelProto,
    edited in place) to 0: input 1 of Conv/MatMul/Gemm, inputs 1 and 2 (W, R) of GRU/LSTM. Returns
    {initialiser: fraction of zeros after pruning}."""
    from onnx import numpy_helper

    init = {t.name: t for t in model.graph.initializer}
    which = {"Conv": (1,), "MatMul": (1,), "Gemm": (1,), "GRU": (1, 2), "LSTM": (1, 2)}
    zeros = {}
    for node in model.graph.node:
        for i in which.get(node.op_type, ()):
            name = node.input[i] if i < len(node.input) else ""
            if name not in init or name in zeros:
                continue
            w = numpy_helper.to_array(init[name]).copy()
            k = round(fraction * w.size)
            if k:
                flat = w.reshape(-1)
                flat[np.argsort(np.abs(flat), kind="stable")[:k]] = 0.0
            init[name].CopyFrom(numpy_helper.from_array(w, name))
            zeros[name] = float(np.mean(w == 0.0))
    return zeros


def ort_kernels(path: Path) -> dict:
    """{op type: count} of the compute kernels in onnxruntime's optimised graph of ``path`` (what runs on this CPU)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as td:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        so.optimized_model_filepath = str(Path(td) / "opt.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        ops = Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
    return {k: ops[k] for k in sorted(ops) if k in COMPUTE_OPS}


def _transform(src: Path, dst: Path, precision: str, prune: float) -> dict:
    """Write ``dst`` from the ONNX graph ``src``: pruned by ``prune``, then quantised if ``precision`` is int8."""
    import onnx

    with tempfile.TemporaryDirectory() as td:
        m = onnx.load(str(src))
        zeros = prune_weights(m, prune) if prune > 0 else {}
        if precision == "float32":
            onnx.save(m, str(dst))
            return zeros
        from onnxruntime.quantization import QuantType, quantize_dynamic

        mid = Path(td) / "pruned.onnx"
        onnx.save(m, str(mid))
        quantize_dynamic(str(mid), str(dst), op_types_to_quantize=list(QUANT_OPS), per_channel=False,
                         reduce_range=True, weight_type=QuantType.QInt8)
    return zeros


def quantize_bundle(src: Path | str, out: Path | str, precision: str = "int8", prune: float = 0.0) -> dict:
    """Write the quantised / pruned variant of bundle ``src`` to ``out`` (see the module doc) and verify it with
    the bundle's loader; returns its config. Raises ValueError for a source that is not a float32, unpruned
    bundle, an unknown precision, or a prune fraction outside [0, 1)."""
    from resculpt.models.mask.bundle import file_sha256, make_session

    src, out = Path(src), Path(out)
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    if not 0.0 <= prune < 1.0:
        raise ValueError(f"prune {prune!r}: expected a fraction in [0, 1)")
    if precision == "float32" and prune == 0.0:
        raise ValueError("nothing to do: precision float32 without --prune is the source bundle itself")
    cfg = json.loads((src / "config.json").read_text())
    if cfg.get("precision", "float32") != "float32" or cfg.get("quantisation"):
        raise ValueError(f"{src}: already a quantised or pruned bundle; start from the float export")
    load, run, in_names, out_names = _kind(cfg)
    load(src)  # the source passes its own checks first
    out.mkdir(parents=True, exist_ok=True)
    zeros = _transform(src / "model.onnx", out / "model.onnx", precision, prune)
    seq = cfg.pop("seq_model", None)
    # a resculpt bundle's graphs specialised to one target kind are left out: the new golden outputs come from
    # model.onnx, and its variant runs for both kinds
    kinds = cfg.pop("kind_models", None)
    if seq and precision == "float32":  # pruned float: the batched graph stays equal to T one-frame calls
        _transform(src / seq["file"], out / seq["file"], precision, prune)
        cfg["seq_model"] = {**seq, "sha256": file_sha256(out / seq["file"]),
                            "onnx_bytes": (out / seq["file"]).stat().st_size}
    g = np.load(src / "golden.npz")
    new = run(make_session(out / "model.onnx"), g)
    dev = {k: float(np.max(np.abs(new[k] - g[k]))) for k in out_names}
    np.savez(out / "golden.npz", **{k: g[k] for k in in_names}, **new)
    src_sha = cfg["sha256"]
    cfg.update(sha256=file_sha256(out / "model.onnx"), onnx_bytes=(out / "model.onnx").stat().st_size,
               precision=precision)
    import onnxruntime as ort

    q = {"source": {"path": str(src), "sha256": src_sha}, "onnxruntime": ort.__version__,
         "kernels": ort_kernels(out / "model.onnx"),
         "golden_max_dev_from_source": dev}
    if precision == "int8":
        q.update(method="onnxruntime.quantization.quantize_dynamic", ops=list(QUANT_OPS),
                 weights="int8, one scale per tensor, 7-bit range (reduce_range: no int16 saturation in AVX2 kernels)",
                 activations="uint8, scale and zero point from each call's tensor range",
                 float_ops="every op not listed in 'ops' (onnxruntime has no integer GRU kernel)")
        if seq:
            q["seq_model"] = ("left out: one call's activation scale spans all its frames, so a T-frame call would "
                              "not equal T one-frame calls; the stage runs one call per frame")
    if kinds:
        q["kind_models"] = "left out: the stage runs the variant of model.onnx for both target kinds"
    if prune:
        q["prune"] = {"fraction": prune, "rule": "smallest |w| per weight tensor set to 0 (Conv/MatMul/Gemm "
                      "weights, GRU W and R)", "zeros": zeros}
    cfg["quantisation"] = q
    (out / "config.json").write_text(json.dumps(cfg, indent=2, default=list) + "\n")
    load(out)  # the loader's checks (sha256, precision, golden) pass on what was written
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m resculpt.models.quantize", description=__doc__.split("\n")[0])
    ap.add_argument("bundle", help="float32 bundle folder (mask or resculpt)")
    ap.add_argument("--out", required=True, help="folder to write the new bundle to")
    ap.add_argument("--precision", choices=PRECISIONS, default="int8")
    ap.add_argument("--prune", type=float, default=0.0, help="fraction of each weight tensor set to 0 by magnitude")
    a = ap.parse_args(argv)
    cfg = quantize_bundle(a.bundle, a.out, a.precision, a.prune)
    q = cfg["quantisation"]
    print(json.dumps({"sha256": cfg["sha256"], "precision": cfg["precision"], "onnx_bytes": cfg["onnx_bytes"],
                      "kernels": q["kernels"], "golden_max_dev_from_source": q["golden_max_dev_from_source"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
