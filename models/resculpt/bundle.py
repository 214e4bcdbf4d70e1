"""The resculpting model bundle: reading and verifying a bundle folder (numpy + onnxruntime; never imports torch).

A bundle folder holds ``model.onnx`` (the band-domain core, one frame per call, explicit state), ``config.json``
(written by ``export.py``) and ``golden.npz`` (reference inputs -> outputs from torch), and, when the config names
them (``kind_models``), ``absolute.onnx``, ``relative.onnx`` and their T-frame twins ``*_seq.onnx``: model.onnx
with only one target kind's branch, the graphs the stage runs. :func:`load_bundle` refuses a bundle whose files
are missing, whose ONNX files do not have the sha256 config.json records, whose config is of another version or
describes a frame/output form this code does not apply, or whose graphs do not reproduce the golden outputs within
``GOLDEN_TOL``. sha256 and the ORT sessions come from the mask bundle's helpers (one home).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from resculpt.models.mask.bundle import BundleError, extra_session, file_sha256, read_checked

from . import common as C

# Version 2: the 139-float conditioning with relative targets (common.py: REL_I, DZ0); version 1 bundles take
# 124 floats and no relative target, and are refused (re-export their checkpoint: it loads unchanged).
CONFIG_VERSION = 2
NAME = "resculpt-generator"
INPUTS = ("feat", "low", "cond")
OUTPUTS = ("gain_db", "copy", "df")
# Largest |output - golden| over the output's peak (at least 1), as export.py's checks measure it: dB for gains
# (so 1e-4 of a 24 dB gain, 2.4 mdB), linear for copy gains and deep-filter taps (peaks under 1: absolute).
# Relative because float32 rounding scales with the value: on gains of tens of dB onnxruntime and torch differ by
# more than 1e-4 dB (1.3e-4 measured with onnxruntime 1.32 / torch 2.13).
GOLDEN_TOL = 1e-4
# model.onnx specialised to one target kind (export.py; config ``kind_models``): the graphs the stage runs, one
# frame per call (``absolute``, ``relative``) and T frames per call (``*_seq``: the stage runs a block's frames in one
# call; onnxruntime's cost per call is mostly per node, so two 5 ms frames cost little more than one, while one
# frame costs more than in the one-frame graph: its shapes are computed at run time). A bundle without them runs
# model.onnx for both kinds, one frame per call.
KIND_FILES = {"absolute": "absolute.onnx", "relative": "relative.onnx",
              "absolute_seq": "absolute_seq.onnx", "relative_seq": "relative_seq.onnx"}
# The T-frame graphs also take ``hold`` ((1,) bool): True holds the running fingerprint where the state put it (each
# frame's estimate is the state decayed once plus that frame, and the state comes back as given: an offline render's
# primed fingerprint, ResculptStage.prime(hold=True)), so an offline render runs a block's frames in one call too.
# The loader and the export check the T-frame graphs in calls of these many frames (cycled), against frame-by-frame
# torch.
CHECK_CHUNKS = (1, 3, 2, 7, 5)
# The shipped bundle: models/resculpt/bundle/ (inside the installed package); RESCULPT_GENERATOR_BUNDLE names
# another folder (a bundle exported from a scratch checkpoint, tests).
BUNDLE_DIR = Path(__file__).resolve().parent / "bundle"
BUNDLE_ENV = "RESCULPT_GENERATOR_BUNDLE"
_CACHE: dict = {}  # resolved folder -> (signature of its files, Bundle)


def bundle_dir() -> Path:
    """The folder the stage loads by default: $RESCULPT_GENERATOR_BUNDLE, else the shipped ``BUNDLE_DIR``."""
    env = os.environ.get(BUNDLE_ENV)
    return Path(env) if env else BUNDLE_DIR


def bundle_present(path=None) -> bool:
    """True when ``path`` (default :func:`bundle_dir`) holds the three files of a bundle (not yet verified)."""
    p = Path(path) if path else bundle_dir()
    return all((p / f).is_file() for f in ("config.json", "model.onnx", "golden.npz"))


# ``--engine auto`` takes a bundle only when its training validation kept the input's own profile as target
# within this many dB on every band of the long-term envelope (``training.val.keep_env_max_db``, measured by
# train.py on validation-split pairs): the identity goal; a model that moves audio it was asked to leave alone
# runs only when asked for by name (``--engine model``). It must also have a benchmark verdict in its config
# (``benchmark``, written by ``benchmarks/resculpt_model.py compare --verdict-into``) saying that it leaves audio
# no less alone than the match-EQ under the input's own profile and that its profile error is below the
# match-EQ's on every target kind and category the target in hand may be (FORM_KINDS): auto would otherwise
# replace the match-EQ by something worse there.
AUTO_KEEP_MAX_DB = 0.5

# The benchmark's target kinds by the form a target reaches the stage in (``Profile.kind``): a description is a
# delta (the model's relative path); a reference clip, a profile file or a shipped target is an absolute profile
# (the benchmark's reference and random targets).
FORM_KINDS = {"delta": ("descriptor",), "absolute": ("reference", "random")}


def target_form(target) -> str | None:
    """"delta" or "absolute" for a Profile target (its kind), None for anything else (no target, a band-gain
    array for the match-EQ alone)."""
    kind = getattr(target, "kind", None)
    return None if kind is None else ("delta" if kind == "delta" else "absolute")


def auto_refusal(path=None, form: str | None = None) -> str | None:
    """None when the bundle in ``path`` (default :func:`bundle_dir`) may serve ``--engine auto`` for a target of
    ``form`` ("delta" / "absolute", :func:`target_form`; None: any target, so every cell of the verdict counts),
    else why not (a sentence). Reads config.json only (no verification: that happens when the stage loads it)."""
    p = Path(path) if path else bundle_dir()
    try:
        cfg = json.loads((p / "config.json").read_text())
    except (OSError, ValueError) as e:
        return f"its config.json cannot be read ({e})"
    val = (cfg.get("training") or {}).get("val") or {}
    keep = val.get("keep_env_max_db")
    if keep is None:
        return "its training validation records no identity check (keep_env_max_db)"
    if not keep <= AUTO_KEEP_MAX_DB:
        return (f"with the input's own profile as target it still moves the band envelope by {keep:.2f} dB "
                f"(validation), more than the {AUTO_KEEP_MAX_DB} dB the auto engine allows")
    bench = cfg.get("benchmark") or {}
    if "beats_match_eq_everywhere" not in bench:
        return "its config records no benchmark verdict against the match-EQ (benchmarks/resculpt_model.py compare)"
    report = bench.get("report", "benchmark")
    if form is None:
        if not bench["beats_match_eq_everywhere"]:
            return (f"its benchmark finds it no better than the match-EQ on "
                    f"{', '.join(bench.get('worse_than_match_eq') or [])} targets ({report})")
        return None
    kinds = FORM_KINDS[form]
    cells = bench.get("cells")
    if cells is None:
        return ("its benchmark verdict does not list the target kinds it measured (rewrite it: "
                "benchmarks/resculpt_model.py compare --verdict-into)")
    if not any(c.split()[0] in kinds for c in cells):
        return f"its benchmark measured no {' or '.join(kinds)} targets, the kind of a {form} target ({report})"
    bad = [w for w in bench.get("worse_than_match_eq") or [] if w == "identity" or w.split()[0] in kinds]
    if bad:
        return f"its benchmark finds it no better than the match-EQ on {', '.join(bad)} targets ({report})"
    return None


class Bundle:
    """A verified bundle: config, ORT session, state names/shapes, look-ahead. ``kind_sessions``: {key of
    :data:`KIND_FILES`: session} of the graphs specialised to one target kind, or None."""

    def __init__(self, path: Path, config: dict, session, kind_sessions: dict | None = None):
        self.path, self.config, self.session = path, config, session
        self.kind_sessions = kind_sessions
        self.state_names = list(config["state_inputs"])
        self.state_shapes = {k: tuple(v) for k, v in config["state_shapes"].items()}
        self.out_names = [*OUTPUTS, *(n + "_out" for n in self.state_names)]
        self.lookahead_frames = int(config["lookahead_frames"])
        self.df_order = int(config["df_order"])
        self.precision = config.get("precision", "float32")  # "int8": written by resculpt.models.quantize

    @property
    def batched(self) -> bool:
        """True when the stage may run several frames per call (the bundle has the T-frame graphs)."""
        return self.kind_sessions is not None

    def session_for(self, relative: bool, seq: bool = False):
        """The session the stage runs for a target of that kind: its specialised graph (``seq``: the one that
        takes T frames per call), else model.onnx (one frame)."""
        if self.kind_sessions is None:
            if seq:
                raise ValueError("this bundle has no T-frame graphs (Bundle.batched is False)")
            return self.session
        return self.kind_sessions[("relative" if relative else "absolute") + ("_seq" if seq else "")]

    def run_sequence(self, feat, low, cond, kinds: bool = False, seq: bool = False) -> dict:
        """{output: (T, ...)} for feat (T, 32), low (T, N_LOW), cond (COND_DIM,) or per frame (T, COND_DIM),
        from zero state; ``kinds``: through the graphs the stage runs (:meth:`session_for` each frame's kind),
        with ``seq`` the T-frame ones in calls of CHECK_CHUNKS frames (a call never spans a change of cond)."""
        if not kinds:
            return run_streaming(self.session, feat, low, cond, self.state_shapes, self.state_names)
        return run_streaming(lambda rel: self.session_for(rel, seq), feat, low, cond, self.state_shapes,
                             self.state_names, CHECK_CHUNKS if seq else (1,))


def run_streaming(sess, feat, low, cond, shapes, state_names, chunks=(1,), prime=None) -> dict:
    """``sess``: an onnxruntime session, or a function of a frame's kind (relative: bool) giving one; ``chunks``:
    frames per call, cycled (a call ends where cond changes; more than 1 needs graphs that take T frames).
    ``prime`` (run_num (1, 32), run_den (1, 1)): start the running fingerprint there and hold it (the T-frame
    graphs' ``hold`` input; needs them); None: zero state, not held."""
    state = {k: np.zeros(shapes[k], np.float32) for k in state_names}
    if prime is not None:
        state["run_num"], state["run_den"] = (np.asarray(v, np.float32).reshape(shapes[k]) for v, k in
                                              zip(prime, ("run_num", "run_den")))
    hold = {"hold": np.array([prime is not None])}
    names = [*OUTPUTS, *(k + "_out" for k in state_names)]
    c = np.asarray(cond, np.float32)
    c = np.broadcast_to(c.reshape(1, -1) if c.ndim == 1 else c, (feat.shape[0], c.shape[-1]))
    outs = {k: [] for k in OUTPUTS}
    t, i, T = 0, 0, feat.shape[0]
    while t < T:
        n = min(chunks[i % len(chunks)], T - t)
        n = next((m for m in range(1, n) if not np.array_equal(c[t + m], c[t])), n)  # stop where cond changes
        s = sess(bool(c[t, C.REL_I] > 0.5)) if callable(sess) else sess
        held = hold if any(inp.name == "hold" for inp in s.get_inputs()) else {}
        r = s.run(names, {"feat": feat[None, t : t + n].astype(np.float32),
                          "low": low[None, t : t + n].astype(np.float32), "cond": c[t : t + 1], **state, **held})
        for k, v in zip(OUTPUTS, r[:3]):
            outs[k].extend(v[0])
        state = dict(zip(state_names, r[3:]))
        t, i = t + n, i + 1
    return {k: np.stack(v) for k, v in outs.items()}


def _check_config(cfg: dict, cfg_p: Path) -> None:
    if cfg.get("version") != CONFIG_VERSION or cfg.get("name") != NAME:
        raise BundleError(f"{cfg_p}: {cfg.get('name')!r} version {cfg.get('version')!r}; this code reads "
                          f"{NAME!r} version {CONFIG_VERSION} (a {C.COND_DIM}-float conditioning with relative "
                          f"targets): re-export the bundle's checkpoint with this checkout "
                          f"(python -m resculpt.models.resculpt.export --ckpt CKPT --out DIR)")
    want = {"n_bands": C.N_BANDS, "n_low": C.N_LOW, "df_order": C.DF_ORDER, "copy_shift_hz": C.COPY_SHIFT_HZ,
            "cond_dim": C.COND_DIM, "eps": C.EPS, "feat_norm_db": [C.FEAT_MEAN_DB, C.FEAT_STD_DB]}
    for k, v in want.items():
        if cfg.get(k) != v:
            raise BundleError(f"{cfg_p}: {k} = {cfg.get(k)!r}, this code expects {v!r}")
    fr = cfg.get("frame") or {}
    if fr.get("hop_ms") != C.HOP_MS or fr.get("window_ms") != C.WINDOW_MS:
        raise BundleError(f"{cfg_p}: frame {fr!r}; this code runs {C.HOP_MS} ms hops of {C.WINDOW_MS} ms windows")
    look = cfg.get("lookahead_frames")
    if isinstance(look, bool) or look not in (0, 1):
        raise BundleError(f"{cfg_p}: lookahead_frames = {look!r}, expected 0 or 1")


def _kind_sessions(cfg: dict, path: Path, cfg_p: Path) -> dict | None:
    """{kind: session} of the config's ``kind_models`` (:data:`KIND_FILES`, each present with its recorded
    sha256), or None when the config names none."""
    km = cfg.get("kind_models")
    if km is None:
        return None
    if not isinstance(km, dict) or set(km) != set(KIND_FILES) or any(
            not isinstance(km[k], dict) or km[k].get("file") != f for k, f in KIND_FILES.items()):
        raise BundleError(f"{cfg_p}: kind_models must name {KIND_FILES}, got {km!r}")
    out = {k: extra_session(path, km[k], f"the {k} graph", "resculpt model", "models/resculpt/export.py")
           for k in KIND_FILES}
    for k, sess in out.items():
        if k.endswith("_seq") and "hold" not in {i.name for i in sess.get_inputs()}:
            raise BundleError(f"{path / KIND_FILES[k]}: a T-frame graph without the hold input; re-export the bundle's "
                              "checkpoint with this checkout (python -m resculpt.models.resculpt.export --ckpt CKPT --out DIR)")
    return out


def load_bundle(path=None) -> Bundle:
    """Load and verify a bundle folder (default :func:`bundle_dir`); raise BundleError. A folder already loaded
    whose model.onnx is unchanged is returned from a cache (graph rebuilds do not reload it)."""
    path = Path(path) if path else bundle_dir()
    if not path.is_dir():
        raise BundleError(f"the resculpting model is not installed: no bundle folder {path} (export one with "
                          f"models/resculpt/export.py, or set {BUNDLE_ENV}); use the match-EQ engine")
    cfg_p, onnx_p, gold_p = path / "config.json", path / "model.onnx", path / "golden.npz"
    for p in (cfg_p, onnx_p, gold_p):
        if not p.is_file():
            raise BundleError(f"resculpt model bundle incomplete: {p} is missing (run models/resculpt/export.py)")
    sha = file_sha256(onnx_p)
    key = str(path.resolve())
    g = gold_p.stat()
    sig = (sha, cfg_p.read_bytes(), g.st_size, g.st_mtime_ns,
           tuple(file_sha256(path / f) if (path / f).is_file() else None for f in KIND_FILES.values()))
    if key in _CACHE and _CACHE[key][0] == sig:
        return _CACHE[key][1]
    cfg, sess = read_checked(onnx_p, cfg_p, sha, _check_config)
    b = Bundle(path, cfg, sess, _kind_sessions(cfg, path, cfg_p))
    g = np.load(gold_p)
    for kinds, seq in (((False, False), (True, False), (True, True)) if b.kind_sessions else ((False, False),)):
        got = b.run_sequence(g["feat"], g["low"], g["cond"], kinds=kinds, seq=seq)
        err = max(float(np.max(np.abs(got[k] - g[k]))) / max(1.0, float(np.max(np.abs(g[k])))) for k in OUTPUTS)
        if not np.isfinite(err) or err > GOLDEN_TOL:
            which = ("the T-frame target-kind graphs' output" if seq else "the target-kind graphs' output") if kinds \
                else "model output"
            raise BundleError(f"{path}: {which} differs from golden.npz by {err:.3g} of its peak (> {GOLDEN_TOL:g})")
    _CACHE[key] = (sig, b)
    return b
