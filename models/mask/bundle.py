"""The mask model bundle: reading and verifying a bundle folder (numpy + onnxruntime; never imports torch).

A bundle folder holds ``model.onnx`` (one frame per call), optionally ``model_seq.onnx`` (the same net and
state, T frames per call), ``config.json`` (written by ``export.py``) and ``golden.npz`` (reference band and
fine features -> gains from torch; in an int8 bundle written by ``resculpt.models.quantize``, from the int8
graph, whose config says ``precision: int8``). :func:`load_bundle` refuses a bundle whose files are missing, whose ONNX
files do not have the sha256 that config.json records, whose config is of another version or describes
features the stage does not compute, or whose graphs do not reproduce the golden gains within 1e-4.

What the runtime stage reads from the config besides the graphs: the frame hop (``frame.hop_ms``, the
section's hop must equal it), the model's look-ahead (``lookahead_frames``: the gains of a call belong to
the frame that many hops before the newest, so the stage delays its output by that many hops) and, for a net
with deep-filter taps, ``deep_filter`` ({bins K, order N, window_ms}): the graphs then have a second output
``df`` (1, T, N * K * 2), and ``golden.npz`` holds the taps too (``df``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import common

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "weights" / "mask"
HQ_BUNDLE_DIR = BUNDLE_DIR.parent / "mask-hq"  # the high-quality tier (look-ahead; models/weights/mask-hq/MODEL_CARD.md)
SEQ_CHUNKS = (1, 3, 2, 7, 5)  # frames per call when checking the batched graph (cycled)
GOLDEN_TOL = 1e-4  # largest |gain - golden gain| a loaded graph may show (gains are in [0, 1])
# Weight precisions a bundle's graphs may have (config ``precision``, absent = float32; int8 bundles are written by
# resculpt.models.quantize with golden outputs recomputed from the int8 graph, so GOLDEN_TOL holds for them too).
PRECISIONS = ("float32", "int8")


class BundleError(RuntimeError):
    """The model bundle is missing, altered, of another version, or does not reproduce its golden I/O."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_files(path: Path, what: str, export: str) -> tuple[Path, Path, Path, str]:
    """(config.json, model.onnx, golden.npz, sha256 of model.onnx) of the bundle folder ``path``; one BundleError
    naming the first missing file, ``what`` bundle it is and the ``export`` script that writes one."""
    cfg_p, onnx_p, gold_p = path / "config.json", path / "model.onnx", path / "golden.npz"
    for p in (cfg_p, onnx_p, gold_p):
        if not p.is_file():
            raise BundleError(f"{what} bundle incomplete: {p} is missing (re-run {export})")
    return cfg_p, onnx_p, gold_p, file_sha256(onnx_p)


def make_session(model_path: Path):
    """An onnxruntime CPU session with one intra-op and one inter-op thread (the audio thread's own core)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


class Bundle:
    """A verified model bundle: config, ORT sessions, state names and shapes, frame hop and look-ahead."""

    def __init__(self, path: Path, config: dict, session, seq_session=None):
        self.path, self.config, self.session = path, config, session
        self.seq_session = seq_session  # batched graph (T frames per call), or None: one call per frame
        self.state_names = list(config["state_inputs"])
        self.state_shapes = {k: tuple(v) for k, v in config["state_shapes"].items()}
        dfc = config.get("deep_filter") or {}
        self.df_bins, self.df_order = int(dfc.get("bins", 0)), int(dfc.get("order", 0))
        self.df_window_ms = float(dfc.get("window_ms", common.DF_WINDOW_MS))
        self.df_size = df_size(config)
        self.out_names = ["gains", *(["df"] if self.df_size else [])] + [n + "_out" for n in self.state_names]
        self.has_fine = int(config.get("n_fine", 0)) > 0
        self.precision = config.get("precision", "float32")
        self.hop_ms = float(config["frame"]["hop_ms"])          # frame hop the model was trained at, ms
        self.lookahead_frames = int(config["lookahead_frames"])  # hops between the newest frame and its gains

    def run_sequence(self, feat: np.ndarray, fine: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """Outputs (T, 24 [+ N * K * 2]) for band features (T, 24) and fine features (T, 128) from zero state
        (golden checks): the gains, then the deep-filter taps when the net has them."""
        return run_streaming(self.session, feat, fine, cond, self.state_shapes, self.has_fine, self.state_names,
                             df=bool(self.df_size))


def df_size(config: dict) -> int:
    """Floats of the ``df`` output per frame of a bundle with this config: bins x order x 2 (re, im); 0: no taps."""
    dfc = config.get("deep_filter") or {}
    return int(dfc.get("bins", 0)) * int(dfc.get("order", 0)) * 2


def golden_outputs(golden, df: bool) -> np.ndarray:
    """(T, 24), or (T, 24 + N * K * 2) with ``df``: golden.npz's gains, then its deep-filter taps, in the layout
    ``run_streaming`` returns."""
    return np.concatenate([golden["gains"], golden["df"]], axis=-1) if df else golden["gains"]


def split_outputs(out: np.ndarray, df_size: int) -> dict[str, np.ndarray]:
    """{"gains": (T, 24)[, "df": (T, df_size)]} of ``run_streaming``'s (T, 24 + df_size) output."""
    n_g = out.shape[-1] - df_size
    return {"gains": out[:, :n_g], **({"df": out[:, n_g:]} if df_size else {})}


def run_streaming(sess, feat, fine, cond, shapes, has_fine, state_names, chunks=(1,), df=False) -> np.ndarray:
    """Outputs (T, 24), or (T, 24 + N * K * 2) with ``df`` (gains, then the deep-filter taps), of a streaming graph
    fed ``chunks`` frames per call in turn (cycled; (1,) for model.onnx, e.g. SEQ_CHUNKS for model_seq.onnx), from
    zero state: feat (T, 24), fine (T, 128), cond (2,)."""
    state = {k: np.zeros(shapes[k], np.float32) for k in state_names}
    heads = ["gains", "df"] if df else ["gains"]
    names = [*heads, *[k + "_out" for k in state_names]]
    cond_row = np.asarray(cond, np.float32).reshape(1, 2)
    out, t, i = [], 0, 0
    while t < feat.shape[0]:
        n = min(chunks[i % len(chunks)], feat.shape[0] - t)
        feed = {"feat": np.ascontiguousarray(feat[None, t : t + n], np.float32), "cond": cond_row, **state}
        if has_fine:
            feed["fine"] = np.ascontiguousarray(fine[None, t : t + n], np.float32)
        r = sess.run(names, feed)
        out.append(np.concatenate([o[0] for o in r[: len(heads)]], axis=-1))
        state = dict(zip(state_names, r[len(heads):]))
        t, i = t + n, i + 1
    return np.concatenate(out)


def iobinding_runner(sess):
    """(run, inner) for ``sess``: ``run(b)`` executes the IOBinding ``b = inner(io)``. onnxruntime's compiled
    session method and binding when this onnxruntime exposes them (``InferenceSession._sess``,
    ``IOBinding._iobinding``), else the public ``run_with_iobinding`` and the binding itself: the public method
    checks for WebGPU graph capture on every call (a CPU session never captures), ~3 us of Python per frame."""
    raw = getattr(sess, "_sess", None)
    if raw is not None and hasattr(raw, "run_with_iobinding") and getattr(sess.io_binding(), "_iobinding", None) is not None:
        call = raw.run_with_iobinding
        return (lambda b: call(b, None)), (lambda io: io._iobinding)
    return sess.run_with_iobinding, (lambda io: io)


def extra_session(path: Path, entry: dict, what: str, bundle_what: str, export: str):
    """An onnxruntime session of a bundle's second graph, named in its config by ``entry`` ({"file", "sha256",
    ...}) and checked against it; every failure is one BundleError naming the file (``what``: the graph's role,
    ``bundle_what``: the bundle's kind, ``export``: the script that writes it)."""
    p = path / str(entry.get("file"))
    if not p.is_file():
        raise BundleError(f"{bundle_what} bundle incomplete: {p} is missing (re-run {export})")
    if entry.get("sha256") != file_sha256(p):
        raise BundleError(f"{p}: sha256 does not match config.json; {what} was altered or belongs to another bundle")
    try:
        return make_session(p)
    except Exception as e:  # onnxruntime raises its own exception types
        raise BundleError(f"{p}: onnxruntime cannot load it ({e})") from None


def read_checked(onnx_p: Path, cfg_p: Path, sha: str, check) -> tuple[dict, object]:
    """The bundle's config (parsed, ``check(cfg, cfg_p)`` run on it, its ``precision`` one of PRECISIONS, its
    sha256 equal to ``sha``, the model file's) and an onnxruntime session of ``onnx_p``; every failure is one
    BundleError naming the file."""
    try:
        cfg = json.loads(cfg_p.read_text())
    except ValueError as e:
        raise BundleError(f"{cfg_p}: not valid JSON ({e})") from None
    check(cfg, cfg_p)
    if cfg.get("precision", "float32") not in PRECISIONS:
        raise BundleError(f"{cfg_p}: precision {cfg.get('precision')!r}, this code runs {' or '.join(PRECISIONS)} graphs")
    if cfg.get("sha256") != sha:
        raise BundleError(f"{onnx_p}: sha256 {sha[:16]}... does not match config.json ({str(cfg.get('sha256'))[:16]}...); "
                          "the model file was altered or belongs to another bundle")
    try:
        return cfg, make_session(onnx_p)
    except Exception as e:  # onnxruntime raises its own exception types
        raise BundleError(f"{onnx_p}: onnxruntime cannot load it ({e})") from None


def _check_config(cfg: dict, cfg_p: Path) -> None:
    """Raise BundleError unless config.json describes what the stage computes and runs."""
    if cfg.get("version") != common.CONFIG_VERSION:
        raise BundleError(f"{cfg_p}: config version {cfg.get('version')!r}, this code reads version "
                          f"{common.CONFIG_VERSION}; re-export the bundle with this checkout")
    if cfg.get("n_fine") not in (0, common.N_FINE):
        raise BundleError(f"{cfg_p}: n_fine = {cfg.get('n_fine')!r}, the stage computes 0 or {common.N_FINE} "
                          "fine features")
    for k, v in (("n_bands", common.N_BANDS), ("n_learned", common.N_LEARNED), ("eps", common.EPS),
                 ("fine_win_ms", common.FINE_WIN_MS), ("fine_hz", common.FINE_HZ)):
        if cfg.get(k) != v:
            raise BundleError(f"{cfg_p}: {k} = {cfg.get(k)!r}, the stage expects {v!r}")
    hop_ms = (cfg.get("frame") or {}).get("hop_ms")
    if isinstance(hop_ms, bool) or not isinstance(hop_ms, (int, float)) or not hop_ms > 0:
        raise BundleError(f"{cfg_p}: frame.hop_ms = {hop_ms!r}, expected a positive number of milliseconds")
    look = cfg.get("lookahead_frames")
    if isinstance(look, bool) or not isinstance(look, int) or look < 0:
        raise BundleError(f"{cfg_p}: lookahead_frames = {look!r}, expected a whole number of frames >= 0")
    dfc = cfg.get("deep_filter")
    if dfc is not None:
        k, n, w = dfc.get("bins"), dfc.get("order"), dfc.get("window_ms")
        if not (isinstance(k, int) and isinstance(n, int) and k > 0 and n >= look + 1 and w == common.DF_WINDOW_MS):
            raise BundleError(f"{cfg_p}: deep_filter = {dfc!r}, expected whole bins > 0, order >= lookahead_frames + 1 "
                              f"and window_ms {common.DF_WINDOW_MS:g}")


def _check_io(b: Bundle) -> None:
    """Raise BundleError unless each graph has the inputs and outputs config.json describes (the taps' ``df``
    output, the fine features' input, the state names): a graph of another bundle fails here with its names rather
    than inside onnxruntime."""
    want_in = {"feat", "cond", *(["fine"] if b.has_fine else []), *b.state_names}
    for what, sess in (("model.onnx", b.session), ("model_seq.onnx", b.seq_session)):
        if sess is None:
            continue
        got_in, got_out = {i.name for i in sess.get_inputs()}, {o.name for o in sess.get_outputs()}
        if got_in != want_in or got_out != set(b.out_names):
            raise BundleError(f"{b.path}: {what} has inputs {sorted(got_in)} and outputs {sorted(got_out)}; config.json "
                              f"describes {sorted(want_in)} and {sorted(b.out_names)} (a graph of another bundle?)")


def _check_golden(b: Bundle, gold_p: Path) -> None:
    """Raise BundleError unless both graphs reproduce golden.npz's gains within GOLDEN_TOL."""
    g = np.load(gold_p)
    want = golden_outputs(g, bool(b.df_size))
    got = b.run_sequence(g["feat"], g["fine"], g["cond"])
    err = float(np.max(np.abs(got - want)))
    if not np.isfinite(err) or err > GOLDEN_TOL:
        raise BundleError(f"{b.path}: model output differs from golden.npz by {err:.3g} (> {GOLDEN_TOL:g})")
    if b.seq_session is not None:
        got = run_streaming(b.seq_session, g["feat"], g["fine"], g["cond"], b.state_shapes, b.has_fine,
                            b.state_names, SEQ_CHUNKS, df=bool(b.df_size))
        err = float(np.max(np.abs(got - want)))
        if not np.isfinite(err) or err > GOLDEN_TOL:
            raise BundleError(f"{b.path}: batched model output differs from golden.npz by {err:.3g} "
                              f"(> {GOLDEN_TOL:g})")


# (resolved folder, check_golden) -> (sha256 of model.onnx, Bundle): a stage per chain rebuild reuses the
# verified sessions; a replaced model.onnx (another sha256) is loaded and verified afresh.
_CACHE: dict = {}


def load_bundle(path: Path | str | None = None, check_golden: bool = True) -> Bundle:
    """Load and verify a bundle folder (model.onnx, config.json, golden.npz; model_seq.onnx when the config
    names it), the shipped one by default; raise BundleError."""
    path = Path(path) if path else BUNDLE_DIR
    key = (str(path.resolve()), check_golden)
    cfg_p, onnx_p, gold_p, sha = bundle_files(path, "mask model", "models/mask/export.py")
    if key in _CACHE and _CACHE[key][0] == sha:
        return _CACHE[key][1]
    cfg, sess = read_checked(onnx_p, cfg_p, sha, _check_config)
    seq = None
    if cfg.get("seq_model"):  # optional (bundles exported without it run a block's frames one by one)
        seq = extra_session(path, cfg["seq_model"], "the batched model", "mask model", "models/mask/export.py")
    b = Bundle(path, cfg, sess, seq)
    _check_io(b)
    if check_golden:
        _check_golden(b, gold_p)
    _CACHE[key] = (sha, b)
    return b
