"""Adaptive spectral mask: the runtime stage (numpy + onnxruntime, one thread; never imports torch).

Per STFT frame (5 ms hop, any rate 16-96 kHz, 10 or 20 ms window):

1. Band features: bin power -> power spectral density per Hz -> weighted mean in the 32 ERB bands of
   :class:`~resculpt.dsp.bands.BandMap` -> dB (``common.py``). Linked stereo (``ctx.linked``): one
   analysis on the channel-mean power, one gain for both channels; unlinked: one per channel.
2. Bands 0..23 (0-7.33 kHz): the ONNX MaskNet, one frame per call with explicit streaming state
   (conv caches + GRU hidden), conditioned on [mode == enhance, strength]; strength follows
   ``mask.reduction_db`` (s = 1 - 10^(-R/20), the fraction of interference amplitude the target removes).
3. Bands 24..31 (7.33-24 kHz; the 16 kHz speech never reached them): a non-learned noise-floor rule.
   Each band's floor N tracks the band level in dB, falling at once and rising at ``HF_RISE_DB_S``; the
   rule gain is ``clip(1 - HF_OVER * N / P, 0, 1)`` (power subtraction with 3 dB over-subtraction),
   and, with ``p`` = the largest learned gain in bands 20..23 (3.4-7.3 kHz):
   denoise (and creative, before inversion): ``min(rule, p)``: content above 8 kHz passes when it stands
   above the stationary floor *and* the model hears speech in the top learned octave, so 48 kHz speech
   keeps its sibilance, steady hiss goes, and music removed below 7.3 kHz is not left audible above;
   enhance: ``max(rule, p)``: everything above the floor is kept (music's top octave survives even
   where the model is unsure). Tested in ``tests/test_mask_fullband.py``.
4. Controls: ``mode`` creative = the inverted denoise mask (keeps the ambience, takes the voice out);
   ``reduction_db`` floors the gain at 10^(-R/20); attack/release smooth each band's gain (attack when
   the gain rises, i.e. a band opening, as in the spectral gate); ``mix`` blends the gain toward 1;
   bins outside ``[low_hz, high_hz]`` get gain 1 (``high_hz`` at its maximum means up to Nyquist).
5. Band gains -> bin gains with ``BandMap.synthesis``; the spectrum is scaled in place.

Look-ahead: none (``latency_frames = 0``); the stage adds nothing to the STFT latency (n_fft - 1).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from resculpt.dsp.bands import BandMap
from resculpt.dsp.params import ParamSpec
from resculpt.dsp.stft import SpectralStage

from . import common as C

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "weights" / "mask"
HF_RISE_DB_S = 6.0
HF_OVER = 2.0
HF_PRESENCE = slice(20, 24)  # learned bands 3.4-7.3 kHz whose gain gates the rule above 7.3 kHz

PARAMS = (
    ParamSpec("mask.reduction_db", 0.0, 60.0, 24.0, "dB", smoothing_ms=30.0,
              doc="attenuation limit: the mask never cuts a band by more than this"),
    ParamSpec("mask.mix", 0.0, 1.0, 1.0, "", smoothing_ms=20.0, doc="blend of the mask's gain toward unity"),
    ParamSpec("mask.attack_ms", 0.5, 200.0, 1.0, "ms", scale="log", smoothing_ms=0.0,
              doc="time for a band to open (gain rising)"),
    ParamSpec("mask.release_ms", 5.0, 2000.0, 20.0, "ms", scale="log", smoothing_ms=0.0,
              doc="time for a band to close (gain falling)"),
    ParamSpec("mask.low_hz", 20.0, 20000.0, 20.0, "Hz", scale="log", smoothing_ms=0.0,
              doc="the mask acts above this frequency (gain 1 below)"),
    ParamSpec("mask.high_hz", 200.0, 24000.0, 24000.0, "Hz", scale="log", smoothing_ms=0.0,
              doc="the mask acts below this frequency (gain 1 above; at 24 kHz: up to Nyquist)"),
    ParamSpec("mask.mode", 0.0, 2.0, 0.0, "", scale="choice", smoothing_ms=0.0, choices=C.MODES,
              doc="denoise (voice only), enhance (keeps music), creative (inverted mask: keeps the ambience)"),
)


class BundleError(RuntimeError):
    """The model bundle is missing, altered, of another version, or does not reproduce its golden I/O."""


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_session(model_path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


class Bundle:
    """A verified model bundle: config, ORT session, state shapes."""

    def __init__(self, path: Path, config: dict, session):
        self.path, self.config, self.session = path, config, session
        self.state_names = list(config["state_inputs"])
        self.state_shapes = {k: tuple(v) for k, v in config["state_shapes"].items()}
        self.out_names = ["gains"] + [n + "_out" for n in self.state_names]

    def run_sequence(self, feat: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """Gains (T, 24) for features (T, 24) from zero state (reference / golden checks)."""
        st = {k: np.zeros(self.state_shapes[k], np.float32) for k in self.state_names}
        out = np.zeros_like(feat, dtype=np.float32)
        c = np.asarray(cond, np.float32).reshape(1, 2)
        for t in range(feat.shape[0]):
            r = self.session.run(self.out_names, {"feat": feat[t].reshape(1, 1, -1).astype(np.float32), "cond": c, **st})
            out[t] = r[0][0, 0]
            st = dict(zip(self.state_names, r[1:]))
        return out


_CACHE: dict = {}


def load_bundle(path: Path | str | None = None, check_golden: bool = True) -> Bundle:
    """Load and verify a bundle folder (model.onnx, config.json, golden.npz); raise BundleError."""
    path = Path(path) if path else BUNDLE_DIR
    key = (str(path.resolve()), check_golden)
    cfg_p, onnx_p, gold_p = path / "config.json", path / "model.onnx", path / "golden.npz"
    for p in (cfg_p, onnx_p, gold_p):
        if not p.is_file():
            raise BundleError(f"mask model bundle incomplete: {p} is missing (re-run models/mask/export.py)")
    sha = _sha256(onnx_p)
    if key in _CACHE and _CACHE[key][0] == sha:
        return _CACHE[key][1]
    try:
        cfg = json.loads(cfg_p.read_text())
    except ValueError as e:
        raise BundleError(f"{cfg_p}: not valid JSON ({e})") from None
    if cfg.get("version") != C.CONFIG_VERSION:
        raise BundleError(f"{cfg_p}: config version {cfg.get('version')!r}, this code reads version "
                          f"{C.CONFIG_VERSION}; re-export the bundle with this checkout")
    if cfg.get("sha256") != sha:
        raise BundleError(f"{onnx_p}: sha256 {sha[:16]}... does not match config.json ({str(cfg.get('sha256'))[:16]}...); "
                          "the model file was altered or belongs to another bundle")
    for k, v in (("n_bands", C.N_BANDS), ("n_learned", C.N_LEARNED), ("eps", C.EPS)):
        if cfg.get(k) != v:
            raise BundleError(f"{cfg_p}: {k} = {cfg.get(k)!r}, the stage expects {v!r}")
    try:
        sess = make_session(onnx_p)
    except Exception as e:  # onnxruntime raises its own exception types
        raise BundleError(f"{onnx_p}: onnxruntime cannot load it ({e})") from None
    b = Bundle(path, cfg, sess)
    if check_golden:
        g = np.load(gold_p)
        got = b.run_sequence(g["feat"], g["cond"])
        err = float(np.max(np.abs(got - g["gains"])))
        if not np.isfinite(err) or err > 1e-4:
            raise BundleError(f"{path}: model output differs from golden.npz by {err:.3g} (> 1e-4)")
    _CACHE[key] = (sha, b)
    return b


class MaskStage(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place."""

    name = "mask"
    latency_frames = 0

    def __init__(self, table, bundle: Bundle | str | Path | None = None):
        self.table = table
        self._idx = [table.index(p.id) for p in PARAMS]
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.session = self.bundle.session

    def prepare(self, ctx):
        super().prepare(ctx)
        bm = BandMap(ctx.sample_rate, ctx.n_fft, C.N_BANDS)
        self.bm = bm
        self._ana_t = np.ascontiguousarray(bm.analysis.T)      # (nb, 32)
        self._syn_t = np.ascontiguousarray(bm.synthesis.T)     # (32, nb)
        n_valid = int(np.flatnonzero(bm.valid)[-1]) + 1  # valid bands are a prefix (bands above Nyquist are not)
        self._invalid = slice(n_valid, C.N_BANDS)
        w = C.sqrt_hann(ctx.n_fft)
        self._scale = np.float32(C.psd_scale(ctx.sample_rate, w))
        nb, c = ctx.n_bins, ctx.channels
        rows = 1 if (ctx.linked or c == 1) else c
        self.rows = rows
        self._finite = np.zeros((c, nb), bool)
        self._pow = np.zeros((c, nb), np.float32)
        self._im = np.zeros((c, nb), np.float32)
        self._prow = np.zeros((rows, nb), np.float32)
        self._band = np.zeros((rows, C.N_BANDS), np.float32)
        self._db = np.zeros((rows, C.N_BANDS), np.float32)
        self._g = np.ones((rows, C.N_BANDS), np.float32)        # raw band gain this frame
        self._gs = np.ones((rows, C.N_BANDS), np.float32)       # smoothed band gain
        self._tmp = np.zeros((rows, C.N_BANDS), np.float32)
        self._up = np.zeros((rows, C.N_BANDS), bool)
        self._coef = np.zeros((rows, C.N_BANDS), np.float32)
        self._binsg = np.ones((rows, nb), np.float32)
        self._nf = np.zeros((rows, C.N_BANDS), np.float32)       # HF noise floor, dB
        self._nf_init = np.zeros(rows, bool)
        self._pres = np.zeros((rows, 1), np.float32)
        self._outside = np.zeros(nb, bool)
        self._feat = np.zeros((1, 1, C.N_LEARNED), np.float32)
        self._cond = np.zeros((1, 2), np.float32)
        self._state0 = {k: np.zeros(s, np.float32) for k, s in self.bundle.state_shapes.items()}
        # One input dict per analysed row: feat (own buffer), cond (shared), state (rebound every frame).
        self._feeds = [{"feat": np.zeros((1, 1, C.N_LEARNED), np.float32), "cond": self._cond, **self._state0}
                       for _ in range(rows)]
        self._rise = np.float32(HF_RISE_DB_S * ctx.hop / ctx.sample_rate)
        self._hf = slice(C.N_LEARNED, C.N_BANDS)
        self._cache = None
        self.reset()

    def reset(self):
        self._gs.fill(1.0)
        self._g.fill(1.0)
        self._nf.fill(0.0)
        self._nf_init.fill(False)
        for feed in self._feeds:
            feed.update(self._state0)  # zero state arrays are never written in place
        self._cache = None

    def _update(self):
        v = self.table.value
        red, mix, att, rel, lo, hi, mode = (float(v[i]) for i in self._idx)
        key = (red, mix, att, rel, lo, hi, mode)
        if key == self._cache:
            return
        self._cache = key
        self._floor = np.float32(10.0 ** (-red / 20.0))
        self._mix = np.float32(mix)
        hop_s = self.ctx.hop / self.ctx.sample_rate
        self._a_att = np.float32(np.exp(-hop_s / (att * 1e-3)))
        self._a_rel = np.float32(np.exp(-hop_s / (rel * 1e-3)))
        self._mode = int(round(mode))
        self._cond[0, 0] = 1.0 if self._mode == 1 else 0.0
        self._cond[0, 1] = 1.0 - self._floor  # strength: fraction of interference amplitude removed
        f = self.ctx.freqs_hz
        top = np.inf if hi >= PARAMS[5].max else hi
        np.logical_or(f < lo, f > top, out=self._outside)
        self._any_outside = bool(self._outside.any())

    def process_frame(self, spec):
        self._update()
        # Non-finite bins (NaN/Inf input) are zeroed so neither the output nor the model state sees them.
        np.isfinite(spec, out=self._finite)
        if not self._finite.all():
            np.logical_not(self._finite, out=self._finite)
            np.copyto(spec, 0, where=self._finite)
        np.multiply(spec.real, spec.real, out=self._pow)
        np.multiply(spec.imag, spec.imag, out=self._im)
        self._pow += self._im
        if self.rows == 1 and self.ctx.channels > 1:
            np.mean(self._pow, axis=0, keepdims=True, out=self._prow)
        else:
            np.copyto(self._prow, self._pow)
        self._prow *= self._scale
        np.matmul(self._prow, self._ana_t, out=self._band)
        self._band += C.EPS
        np.log10(self._band, out=self._db)
        self._db *= 10.0
        sess, names, snames = self.session, self.bundle.out_names, self.bundle.state_names
        for r in range(self.rows):
            feed = self._feeds[r]
            feed["feat"][0, 0] = self._db[r, : C.N_LEARNED]
            out = sess.run(names, feed)
            self._g[r, : C.N_LEARNED] = out[0][0, 0]
            for k, v in zip(snames, out[1:]):  # onnxruntime returns fresh arrays: rebind, no copy
                feed[k] = v
        self._hf_rule()
        g = self._g
        if self._mode == 2:  # creative: inverted mask
            np.subtract(1.0, g, out=g)
        np.maximum(g, self._floor, out=g)
        # Attack (gain rising) / release (gain falling) per band: gs += (1 - a) (g - gs).
        np.greater(g, self._gs, out=self._up)
        self._coef.fill(self._a_rel)
        np.copyto(self._coef, self._a_att, where=self._up)
        np.subtract(g, self._gs, out=self._tmp)
        np.subtract(1.0, self._coef, out=self._coef)
        self._tmp *= self._coef
        self._gs += self._tmp
        # mix toward unity: 1 - mix (1 - g)
        np.subtract(1.0, self._gs, out=self._tmp)
        self._tmp *= -self._mix
        self._tmp += 1.0
        np.matmul(self._tmp, self._syn_t, out=self._binsg)
        if self._any_outside:
            np.copyto(self._binsg, 1.0, where=self._outside)
        spec *= self._binsg

    def _hf_rule(self):
        """Bands 24..31: power subtraction against a tracked noise floor (see module doc)."""
        hf = self._hf
        db = self._db[:, hf]
        nf = self._nf[:, hf]
        for r in range(self.rows):
            if not self._nf_init[r]:
                nf[r] = db[r]
                self._nf_init[r] = True
        nf += self._rise
        np.minimum(nf, db, out=nf)
        self._nf[:, hf] = nf
        # rule = clip(1 - over * 10^((N - P)/10), 0, 1)
        t = self._tmp[:, hf]
        np.subtract(nf, db, out=t)
        t *= 0.1
        np.power(10.0, t, out=t)
        t *= -HF_OVER
        t += 1.0
        np.clip(t, 0.0, 1.0, out=t)
        np.max(self._g[:, HF_PRESENCE], axis=1, keepdims=True, out=self._pres)
        if self._mode == 1:
            np.maximum(t, self._pres, out=t)
        else:
            np.minimum(t, self._pres, out=t)
        self._g[:, hf] = t
        self._g[:, self._invalid] = 1.0
