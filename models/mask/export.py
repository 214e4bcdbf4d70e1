"""Export a MaskNet checkpoint to the streaming ONNX bundle the stage loads.

    python -m resculpt.models.mask.export --ckpt runs/mask-main/ckpt.pt --out models/weights/mask

Writes ``model.onnx`` (one frame per call; inputs feat (1, 1, 24) dB, fine (1, 1, 128) dB, cond (1, 2), cache1, cache2,
cache3, hidden; outputs gains (1, 1, 24) and ``<state>_out``), ``model_seq.onnx`` (the same net and state, T frames
per call: feat (1, T, 24), fine (1, T, 128), gains (1, T, 24)), ``config.json`` (version, sha256, frame/
hop/look-ahead, band layout, feature definition, state shapes, training summary) and ``golden.npz``
(reference features -> gains from torch). Asserts before writing the config that
(a) torch streaming (``step``) == torch whole-sequence (``forward``) and (b) onnxruntime == torch on
every streaming frame of real-looking features, and (c) the batched graph fed 1, 3, 2, 7, 5 frames per call
== torch, all within 1e-5.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from resculpt.dsp.bands import BandMap, erb_band_edges
from resculpt.dsp.processor import SUPPORTED_RATES
from resculpt.models.mask import common
from resculpt.models.mask.bundle import (
    SEQ_CHUNKS,
    file_sha256,
    golden_outputs,
    load_bundle,
    make_session,
    run_streaming,
)
from resculpt.models.mask.mixing import SR
from resculpt.models.mask.net import MaskNet, n_params

STATE = ("cache1", "cache2", "cache3", "hidden")


class _ExportGraph(torch.nn.Module):
    """Export wrapper: ``net.step`` (one frame per call) or ``net.step_seq`` (T frames), with the ``fine``
    input only when the net has the fine branch (n_fine > 0)."""

    def __init__(self, net, seq: bool):
        super().__init__()
        self.net, self.seq = net, seq

    def forward(self, *inputs):
        if self.net.n_fine:
            feat, fine, cond, *state = inputs
        else:
            (feat, cond, *state), fine = inputs, None
        return (self.net.step_seq if self.seq else self.net.step)(feat, fine, cond, *state)


def load_net(ckpt: Path) -> tuple[MaskNet, dict]:
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    net = MaskNet(**ck["net_kwargs"])
    net.load_state_dict(ck["net"])
    net.eval()
    return net, ck


def checkpoint_from_bundle(bundle: Path) -> dict:
    """The inverse of :func:`export`: a checkpoint-like dict (``net``, ``net_kwargs``, ``step``) rebuilt from a
    bundle's ONNX initialisers, so training can fine-tune the shipped model (``--init-from models/weights/mask``)
    when its torch checkpoint is not at hand. Checked: the rebuilt net's streaming output reproduces the
    bundle's golden gains within 1e-5 (raises ``ValueError`` otherwise).

    Mapping: initialisers named ``net.*`` are the parameters and buffers themselves; the exporter
    renames three: the two MatMul weights are ``fine_fc.weight`` and ``head.weight`` transposed (told apart
    by shape), and the GRU's W (1, 3H, in), R (1, 3H, H), B (1, 6H) hold ONNX's gate order (z, r, h) where
    torch keeps (r, z, n)."""
    import onnx
    from onnx import numpy_helper

    bundle = Path(bundle)
    cfg = json.loads((bundle / "config.json").read_text())
    m = onnx.load(str(bundle / "model.onnx"))
    init = {t.name: numpy_helper.to_array(t).copy() for t in m.graph.initializer}
    sd = {k[len("net."):]: torch.from_numpy(v) for k, v in init.items() if k.startswith("net.")}
    hidden = int(cfg["state_shapes"]["hidden"][-1])
    n_fine = int(cfg.get("n_fine", 0))
    dfc = cfg.get("deep_filter") or {}
    df_bins, df_order = int(dfc.get("bins", 0)), int(dfc.get("order", 5))
    presence = "presence_head" in cfg
    for node in m.graph.node:
        if node.op_type == "GRU":
            W, R, B = (init[n][0] for n in node.input[1:4])

            def rzn(a):  # ONNX (z, r, h) blocks along axis 0 -> torch (r, z, n)
                z, r, h = np.split(a, 3, axis=0)
                return torch.from_numpy(np.concatenate([r, z, h], axis=0).copy())

            sd["gru.weight_ih_l0"], sd["gru.weight_hh_l0"] = rzn(W), rzn(R)
            sd["gru.bias_ih_l0"], sd["gru.bias_hh_l0"] = rzn(B[: 3 * hidden]), rzn(B[3 * hidden :])
        elif node.op_type == "MatMul" and node.input[1] in init:
            w = init[node.input[1]]
            name = ("head.weight" if w.shape == (hidden, common.N_LEARNED) else
                    "df_head.weight" if df_bins and w.shape == (hidden, df_bins * df_order * 2) else
                    "presence_head.weight" if presence and w.shape == (hidden, 1) else "fine_fc.weight")
            sd[name] = torch.from_numpy(w.T.copy())
    kw = {"n_bands": int(cfg["n_learned"]), "ch": int(sd["c1.conv.weight"].shape[0]),
          "emb": int(sd["freq_emb"].shape[1]), "hidden": hidden, "n_fine": n_fine,
          "feat_mean": sd["feat_mean"].tolist(), "feat_std": sd["feat_std"].tolist(),
          "lookahead": int(cfg.get("lookahead_frames", 0))}
    if df_bins:
        kw.update(df_bins=df_bins, df_order=df_order)
    if presence:
        kw.update(presence=True)
    if n_fine:
        kw.update(fine_mean=sd["fine_mean"].tolist(), fine_std=sd["fine_std"].tolist())
    net = MaskNet(**kw)
    if not n_fine:  # a band-only graph never reads the (empty) fine normalisation buffers
        sd.update({k: v for k, v in net.state_dict().items() if k in ("fine_mean", "fine_std")})
    net.load_state_dict(sd)  # strict: every parameter and buffer accounted for
    net.eval()
    g = np.load(bundle / "golden.npz")
    got = torch_stream(net, g["feat"], g["fine"], g["cond"])
    err = float(np.max(np.abs(got - golden_outputs(g, bool(df_bins)))))
    if not err <= 1e-5:
        raise ValueError(f"{bundle}: the net rebuilt from the ONNX initialisers misses the golden gains by {err:.3g}")
    tr = cfg.get("training") or {}
    step = tr.get("step", tr.get("steps"))
    return {"net": net.state_dict(), "net_kwargs": kw, "step": step, "from_bundle": str(bundle),
            "bundle_sha256": cfg.get("sha256")}


def reference_features(T: int = 400, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Band features (T, 24) and fine features (T, 128) of a deterministic speech-like test signal
    (harmonics + noise), 16 kHz, 20 ms window, 5 ms hop."""
    rng = np.random.default_rng(seed)
    sr, hop, n_fft = 16000, 80, 320
    n = T * hop
    t = np.arange(n) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    x = 0.05 * env * sum(np.sin(h * ph) / h for h in range(1, 30)) + 0.01 * rng.standard_normal(n)
    w = common.sqrt_hann(n_fft)
    xp = np.concatenate([np.zeros(n_fft - hop), x])
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft)[::hop][:T] * w
    p = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 * common.psd_scale(sr, w)
    band = p @ BandMap(sr, n_fft, common.N_BANDS).analysis.T
    L = common.fine_len(sr)
    xl = np.concatenate([np.zeros(L - hop), x])
    fl = np.lib.stride_tricks.sliding_window_view(xl, L)[::hop][:T] * common.fine_window(sr)
    fine = (np.abs(np.fft.rfft(fl, axis=-1)) ** 2) @ common.fine_matrix(sr).T
    return ((10 * np.log10(band[:, : common.N_LEARNED] + common.EPS)).astype(np.float32),
            (10 * np.log10(fine + common.EPS)).astype(np.float32))


def torch_stream(net, feat, fine, cond):
    """Outputs (T, 24 [+ N * K * 2]) of ``net.step`` frame by frame from zero state: the gains, then the deep-filter
    taps when the net has them (the layout of ``bundle.run_streaming``)."""
    st = net.init_state(1)
    out = []
    nh = 2 if net.df_bins else 1
    with torch.no_grad():
        for t in range(feat.shape[0]):
            r = net.step(torch.tensor(feat[t]).view(1, 1, -1), torch.tensor(fine[t]).view(1, 1, -1),
                         torch.tensor(cond).view(1, 2), *st)
            st = list(r[nh:])
            out.append(torch.cat([o[0, 0] for o in r[:nh]]).numpy())
    return np.stack(out)


def _full(net, feat, fine, cond):
    """The whole-sequence outputs (T, 24 [+ N * K * 2]) in torch_stream's layout."""
    with torch.no_grad():
        r = net(torch.tensor(feat)[None], torch.tensor(fine)[None], torch.tensor(cond)[None])
    return torch.cat(list(r), -1)[0].numpy() if net.df_bins else r[0].numpy()


def export(ckpt: Path, out: Path, summary: dict | None = None, opset: int = 17) -> dict:
    net, ck = load_net(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    onnx_p = out / "model.onnx"
    shapes = net.state_shapes(1)
    has_fine = net.n_fine > 0
    args = (torch.zeros(1, 1, net.n_bands), *([torch.zeros(1, 1, net.n_fine)] if has_fine else []),
            torch.tensor([[0.0, 1.0]]), *[torch.zeros(s) for s in shapes.values()])
    in_names = ["feat", *(["fine"] if has_fine else []), "cond", *STATE]
    has_df = net.df_bins > 0
    out_names = ["gains", *(["df"] if has_df else []), *[s + "_out" for s in STATE]]
    tmp = out / "model.onnx.tmp"
    torch.onnx.export(_ExportGraph(net, seq=False), args, str(tmp), input_names=in_names, output_names=out_names,
                      opset_version=opset, dynamo=False)
    tmp.replace(onnx_p)
    # The batched graph (T frames per call; same weights and state): one call per audio block instead of
    # one per frame, which shares onnxruntime's per-node overhead and one pass over the GRU weights among
    # the block's frames (tested: the same gains as T single-frame calls).
    seq_p = out / "model_seq.onnx"
    seq_args = (torch.zeros(1, 3, net.n_bands), *([torch.zeros(1, 3, net.n_fine)] if has_fine else []), *args[1 + has_fine :])
    dyn = {"feat": {1: "frames"}, "gains": {1: "frames"}, **({"fine": {1: "frames"}} if has_fine else {}),
           **({"df": {1: "frames"}} if has_df else {})}
    torch.onnx.export(_ExportGraph(net, seq=True), seq_args, str(tmp), input_names=in_names,
                      output_names=out_names, opset_version=opset, dynamo=False, dynamic_axes=dyn)
    tmp.replace(seq_p)

    feat, fine = reference_features()
    max_err = {}
    for cond in (np.array([0.0, 1.0], np.float32), np.array([1.0, 0.75], np.float32)):
        ref_stream = torch_stream(net, feat, fine, cond)
        ref_full = _full(net, feat, fine, cond)
        e_sf = float(np.max(np.abs(ref_stream - ref_full)))
        assert e_sf < 1e-5, f"torch streaming != torch whole-sequence ({e_sf:.3g})"
        got = run_streaming(make_session(onnx_p), feat, fine, cond, shapes, has_fine, STATE, df=has_df)
        e_ort = float(np.max(np.abs(got - ref_stream)))
        assert e_ort < 1e-5, f"onnxruntime != torch on streaming frames ({e_ort:.3g})"
        got = run_streaming(make_session(seq_p), feat, fine, cond, shapes, has_fine, STATE, SEQ_CHUNKS, df=has_df)
        e_seq = float(np.max(np.abs(got - ref_stream)))
        assert e_seq < 1e-5, f"batched onnxruntime graph != torch on streaming frames ({e_seq:.3g})"
        max_err[f"cond={cond.tolist()}"] = {"torch_stream_vs_full": e_sf, "ort_vs_torch": e_ort,
                                            "ort_batched_vs_torch": e_seq}
    gold_cond = np.array([0.0, 1.0], np.float32)
    gT = 64
    gold = torch_stream(net, feat[:gT], fine[:gT], gold_cond)
    np.savez(out / "golden.npz", feat=feat[:gT], fine=fine[:gT], cond=gold_cond, gains=gold[:, : net.n_bands],
             **({"df": gold[:, net.n_bands :]} if has_df else {}))
    cfg = {
        "version": common.CONFIG_VERSION,
        "name": "resculpt-mask",
        "sha256": file_sha256(onnx_p),
        "onnx_opset": opset,
        "params": n_params(net),
        "onnx_bytes": onnx_p.stat().st_size,
        "sample_rate_independent": {
            "statement": "the model sees band features and emits band gains; bands are defined in Hz and the "
                         "feature is a power spectral density per Hz, so one model serves 16-96 kHz",
            "trained_at_hz": SR,
            "runs_at_hz": list(SUPPORTED_RATES),
        },
        "frame": {"hop_ms": common.HOP_MS, "frames_per_s": 1000.0 / common.HOP_MS, "window_ms": [10.0, 20.0],
                  "window": "periodic sqrt-Hann (analysis and synthesis, COLA-normalised)"},
        "lookahead_frames": net.lookahead,
        **({"presence_head": "one sigmoid per frame from the GRU scales every band's gain (and the deep-filter "
                             "taps) of its frame inside the graph: the gains output already holds it"}
           if net.presence else {}),
        **({"deep_filter": {
            "bins": net.df_bins, "order": net.df_order, "window_ms": common.DF_WINDOW_MS,
            "output": f"df (1, T, {net.df_order} x {net.df_bins} x 2): per frame, taps C[j, k] (re, im) for j = 0..N-1 "
                      "(j = N-1: the newest frame the call heard) and bins k = 0..K-1 of the 10 ms window (k x 100 Hz); "
                      "the output frame (L hops before the newest) adds sum_j C[j, k] X[newest - N + 1 + j, k] to its "
                      "band-gained bin k"}} if has_df else {}),
        "algorithmic_latency_ms": {"low-latency": 10.0 + net.lookahead * common.HOP_MS,
                                   "default": 20.0 + net.lookahead * common.HOP_MS,
                                   "note": "STFT window minus one sample" + (
                                       f", plus {net.lookahead} hops of look-ahead (the gains emitted with frame "
                                       f"t + {net.lookahead} apply to frame t)" if net.lookahead else
                                       "; the model adds no look-ahead")},
        "n_bands": common.N_BANDS,
        "n_learned": common.N_LEARNED,
        "band_edges_hz": [round(float(e), 2) for e in erb_band_edges(common.N_BANDS)],
        "band_layout": "ERB (Glasberg & Moore) 0-24 kHz, 32 bands, resculpt.dsp.bands.BandMap; bands 0..23 "
                       "learned, bands 24..31 noise-floor rule in the stage",
        "eps": common.EPS,
        "feature": "10*log10(BandMap.analysis @ (|X|^2 / (fs * sum(w_a^2))) + eps), bands 0..23",
        "n_fine": net.n_fine,
        "fine_win_ms": common.FINE_WIN_MS,
        "fine_hz": common.FINE_HZ,
        "fine_feature": "10*log10(fine_matrix @ |rfft(hann(32 ms) * last 32 ms of input)|^2 + eps): PSD per Hz at "
                        "j * 31.25 Hz, j = 0..127; the window ends at the current frame's last sample (look-back only)",
        "cond": ["enhance (0 denoise, 1 enhance)", "strength 0..1 (1 - 10^(-reduction_db/20) in the stage)"],
        "seq_model": {"file": seq_p.name, "sha256": file_sha256(seq_p), "onnx_bytes": seq_p.stat().st_size,
                      "note": "the same net, T frames per call (inputs feat (1, T, 24), fine (1, T, 128); gains "
                              "(1, T, 24)); same state as model.onnx"},
        "state_inputs": list(STATE),
        "state_shapes": {k: list(v) for k, v in shapes.items()},
        "inputs": {"feat": [1, 1, common.N_LEARNED], **({"fine": [1, 1, common.N_FINE]} if has_fine else {}), "cond": [1, 2]},
        "outputs": {"gains": [1, 1, common.N_LEARNED],
                    **({"df": [1, 1, net.df_order * net.df_bins * 2]} if has_df else {})},
        "export_check": max_err,
        "training": summary or {k: ck.get(k) for k in ("step", "loss_w", "wall_s")},
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    load_bundle(out)  # the loader's own checks (sha256, version, golden) pass on what we wrote
    return cfg


def export_main(export_fn, prog: str, argv=None, out_default: str | None = None, out_help: str | None = None) -> int:
    """The command line of an exporter: --ckpt, --out, --summary (default: summary.json next to the checkpoint);
    ``export_fn(ckpt, out, summary)`` returns the config, whose sha256, params, size and checks are printed."""
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", **({"default": out_default} if out_default else {"required": True}), help=out_help)
    ap.add_argument("--summary", help="training summary.json to embed (default: next to the checkpoint)")
    a = ap.parse_args(argv)
    sp = Path(a.summary) if a.summary else Path(a.ckpt).parent / "summary.json"
    summary = json.loads(sp.read_text()) if sp.is_file() else None
    cfg = export_fn(Path(a.ckpt), Path(a.out), summary)
    print(json.dumps({k: cfg[k] for k in ("sha256", "params", "onnx_bytes", "export_check")}, indent=2))
    return 0


def main(argv=None) -> int:
    return export_main(export, "python -m resculpt.models.mask.export", argv,
                       out_default=str(Path(__file__).resolve().parent.parent / "weights" / "mask"))


if __name__ == "__main__":
    sys.exit(main())
