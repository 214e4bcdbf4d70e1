"""Adaptive spectral mask: the runtime stage (numpy + onnxruntime, one thread; never imports torch).

Per STFT frame (5 ms hop, any rate 16-96 kHz, 10 or 20 ms window):

1. Band features: bin power -> power spectral density per Hz -> weighted mean in the 32 ERB bands of
   :class:`~resculpt.dsp.bands.BandMap` -> dB (``common.py``). Linked stereo (``ctx.linked``): one
   analysis on the channel-mean power, one gain for both channels; unlinked: one per channel.
   Fine features, only for a bundle whose model has the optional fine branch (``n_fine`` > 0 in its
   config; the shipped model has none): the stage keeps the last 32 ms of its input (``observe_input``,
   called by the STFT section each frame), windows it (Hann), and reads the PSD per Hz at 128 points
   31.25 Hz apart (0-3.97 kHz), in dB; same channel rule. This look-back window adds no latency.
2. Bands 0..23 (0-7.33 kHz): the ONNX MaskNet, one frame per call with explicit streaming state
   (conv caches + GRU hidden) bound by IOBinding to two pre-allocated state sets used in turn (no array is
   allocated per frame; ``session.run`` would return fresh ones), conditioned on [mode == enhance, strength]; strength follows
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
   ``contrast`` raises every band gain to that power (1 = off); ``reduction_db`` then floors the gain at
   10^(-R/20); attack/release smooth each band's gain (attack when
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
    ParamSpec("mask.contrast", 1.0, 3.0, 1.0, "", smoothing_ms=0.0,
              doc="exponent on the mask's gains before the limit: above 1 deepens the cuts where the model "
                  "is unsure (less residual noise, weak speech cut more); 1 = the model as trained"),
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
        self.has_fine = int(config.get("n_fine", 0)) > 0

    def run_sequence(self, feat: np.ndarray, fine: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """Gains (T, 24) for band features (T, 24) and fine features (T, 128) from zero state (golden checks)."""
        st = {k: np.zeros(self.state_shapes[k], np.float32) for k in self.state_names}
        out = np.zeros_like(feat, dtype=np.float32)
        c = np.asarray(cond, np.float32).reshape(1, 2)
        for t in range(feat.shape[0]):
            fd = {"feat": feat[t].reshape(1, 1, -1).astype(np.float32), "cond": c, **st}
            if self.has_fine:
                fd["fine"] = fine[t].reshape(1, 1, -1).astype(np.float32)
            r = self.session.run(self.out_names, fd)
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
    if cfg.get("n_fine") not in (0, C.N_FINE):
        raise BundleError(f"{cfg_p}: n_fine = {cfg.get('n_fine')!r}, the stage computes 0 or {C.N_FINE} fine features")
    for k, v in (("n_bands", C.N_BANDS), ("n_learned", C.N_LEARNED), ("eps", C.EPS),
                 ("fine_win_ms", C.FINE_WIN_MS), ("fine_hz", C.FINE_HZ)):
        if cfg.get(k) != v:
            raise BundleError(f"{cfg_p}: {k} = {cfg.get(k)!r}, the stage expects {v!r}")
    try:
        sess = make_session(onnx_p)
    except Exception as e:  # onnxruntime raises its own exception types
        raise BundleError(f"{onnx_p}: onnxruntime cannot load it ({e})") from None
    b = Bundle(path, cfg, sess)
    if check_golden:
        g = np.load(gold_p)
        got = b.run_sequence(g["feat"], g["fine"], g["cond"])
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
        self.wants_input = self.bundle.has_fine  # the 32 ms look-back history feeds the fine features

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
        self._pres = np.zeros((rows, 1), np.float32)
        self._outside = np.zeros(nb, bool)
        self._cond = np.zeros((1, 2), np.float32)
        # Fine features: ping-pong history of the last L input samples (float64: pocketfft computes in
        # float64 and would allocate a converted copy of float32 input), Hann window, the rfft bins the
        # 31.25 Hz grid reads (a prefix: up to ~4 kHz), and the interpolation matrix (PSD scale folded in).
        L = C.fine_len(ctx.sample_rate)
        self._L = L
        self._lbuf = np.zeros((c, L), np.float64)
        self._lbuf2 = np.zeros((c, L), np.float64)
        self._lfr = np.zeros((c, L), np.float64)
        self._lspec = np.zeros((c, L // 2 + 1), np.complex128)
        self._lwin = np.tile(C.fine_window(ctx.sample_rate), (c, 1))
        fm = C.fine_matrix(ctx.sample_rate)
        used = int(np.flatnonzero(fm.any(axis=0))[-1]) + 1
        self._fine_mt = np.ascontiguousarray(fm[:, :used].T.astype(np.float32))  # (used, 128)
        self._lpow = np.zeros((c, used), np.float32)
        self._lpow64 = np.zeros((c, used), np.float64)
        # (a strided (c, used) view would make np.abs allocate a ~5 KB iteration buffer per frame in stereo)
        self._lpow_views = [(self._lspec[k, :used], self._lpow64[k]) for k in range(c)]
        self._lprow = np.zeros((rows, used), np.float32)
        self._fine = np.zeros((rows, C.N_FINE), np.float32)
        self._lbad = np.zeros((c, ctx.hop), bool)
        self._used = used
        # Per analysed row: input buffers (feat, fine; cond shared) and two state sets A, B bound to the
        # session by pointer (IOBinding): frame k reads A and writes B, frame k+1 reads B and writes A, so
        # a frame allocates nothing and copies no state (onnxruntime's plain run() returns fresh arrays).
        names = self.bundle.state_names
        self._feeds, self._bind, self._gout = [], [], []
        for _ in range(rows):
            feed = {"feat": np.zeros((1, 1, C.N_LEARNED), np.float32), "cond": self._cond}
            if self.bundle.has_fine:
                feed["fine"] = np.zeros((1, 1, C.N_FINE), np.float32)
            sa = {k: np.zeros(self.bundle.state_shapes[k], np.float32) for k in names}
            sb = {k: np.zeros(self.bundle.state_shapes[k], np.float32) for k in names}
            gout = np.zeros((1, 1, C.N_LEARNED), np.float32)
            pair = []
            for src, dst in ((sa, sb), (sb, sa)):
                io = self.session.io_binding()
                for k, v in feed.items():
                    io.bind_cpu_input(k, v)
                for k in names:
                    io.bind_cpu_input(k, src[k])
                    io.bind_output(k + "_out", "cpu", 0, np.float32, list(dst[k].shape), dst[k].ctypes.data)
                io.bind_output("gains", "cpu", 0, np.float32, list(gout.shape), gout.ctypes.data)
                pair.append(io)
            self._feeds.append((feed, sa, sb))
            self._bind.append(pair)
            self._gout.append(gout)
        self._phase = [0] * rows
        # Per-row views made once (slicing per frame would allocate view objects on the audio path).
        self._row_views = [(feed["feat"][0, 0], self._db[r, : C.N_LEARNED],
                            feed["fine"][0, 0] if "fine" in feed else None, self._fine[r],
                            self._g[r, : C.N_LEARNED], self._gout[r][0, 0])
                           for r, (feed, _, _) in enumerate(self._feeds)]
        self._rise = np.float32(HF_RISE_DB_S * ctx.hop / ctx.sample_rate)
        hf = slice(C.N_LEARNED, C.N_BANDS)
        self._v_db_hf, self._v_nf_hf = self._db[:, hf], self._nf[:, hf]
        self._v_tmp_hf, self._v_g_hf = self._tmp[:, hf], self._g[:, hf]
        self._v_g_pres = tuple(self._g[:, k : k + 1] for k in range(HF_PRESENCE.start, HF_PRESENCE.stop))
        self._v_g_invalid = self._g[:, self._invalid]
        self._ln10_10 = np.float32(np.log(10.0) / 10.0)
        self._m_over, self._one, self._zero = np.float32(-HF_OVER), np.float32(1.0), np.float32(0.0)
        self._cbuf = np.zeros((rows, nb), np.complex64)

        self._cache = None
        self.reset()

    def observe_input(self, inbuf):
        """Append the newest hop of the section's input to the 32 ms history (non-finite samples -> 0)."""
        hop, L = self.ctx.hop, self._L
        n = inbuf.shape[1]
        dst = self._lbuf2
        np.copyto(dst[:, : L - hop], self._lbuf[:, hop:])
        tail = dst[:, L - hop :]
        # Per row: a float32 -> float64 cast or a sum over a 2-D strided view would allocate a ~4 KB iteration
        # buffer every frame in stereo; 1-D contiguous rows need none.
        for k in range(inbuf.shape[0]):
            row = tail[k]
            np.copyto(row, inbuf[k, n - hop :])
            if not np.isfinite(row.sum()):  # rare path: NaN/Inf input must not reach the model state
                bad = self._lbad[k]
                np.isfinite(row, out=bad)
                np.logical_not(bad, out=bad)
                np.copyto(row, 0.0, where=bad)
        self._lbuf2, self._lbuf = self._lbuf, dst

    def _rowmean(self, per_channel, rows):
        """Linked stereo: the channel mean (np.mean(out=) would allocate a temporary); else a copy."""
        if self.rows == 1 and self.ctx.channels > 1:
            np.copyto(rows[0], per_channel[0])
            for k in range(1, self.ctx.channels):
                rows[0] += per_channel[k]
            rows *= np.float32(1.0 / self.ctx.channels)
        else:
            np.copyto(rows, per_channel)

    def _fine_features(self):
        np.copyto(self._lfr, self._lbuf)
        self._lfr *= self._lwin
        np.fft.rfft(self._lfr, axis=-1, out=self._lspec)
        for spec_row, pow_row in self._lpow_views:  # per channel: a contiguous prefix, so no ufunc buffer
            np.abs(spec_row, out=pow_row)  # complex128 -> float64: no casting buffer
        np.multiply(self._lpow64, self._lpow64, out=self._lpow64)
        np.copyto(self._lpow, self._lpow64)
        self._rowmean(self._lpow, self._lprow)
        np.matmul(self._lprow, self._fine_mt, out=self._fine)
        self._fine += C.EPS
        np.log10(self._fine, out=self._fine)
        self._fine *= 10.0

    def reset(self):
        self._lbuf.fill(0.0)
        self._lbuf2.fill(0.0)
        self._gs.fill(1.0)
        self._g.fill(1.0)
        self._nf.fill(0.0)
        self._nf_ready = False
        for _, sa, sb in self._feeds:
            for v in (*sa.values(), *sb.values()):
                v.fill(0.0)
        self._phase = [0] * self.rows
        self._cache = None

    def _update(self):
        v = self.table.value
        red, mix, att, rel, lo, hi, mode, contrast = (float(v[i]) for i in self._idx)
        key = (red, mix, att, rel, lo, hi, mode, contrast)
        if key == self._cache:
            return
        self._cache = key
        self._floor = np.float32(10.0 ** (-red / 20.0))
        self._mix = np.float32(mix)
        self._contrast = np.float32(contrast)
        self._neg_mix = np.float32(-mix)
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
        # |X|^2 as abs() then square: ufuncs over the strided .real/.imag views of a 2-D spectrum
        # allocate an iteration buffer; complex64 -> float32 abs() does not.
        np.abs(spec, out=self._pow)
        np.multiply(self._pow, self._pow, out=self._pow)
        self._rowmean(self._pow, self._prow)
        self._prow *= self._scale
        np.matmul(self._prow, self._ana_t, out=self._band)
        self._band += C.EPS
        np.log10(self._band, out=self._db)
        self._db *= 10.0
        if self.wants_input:
            self._fine_features()
        sess = self.session
        for r, (feat_in, db_row, fine_in, fine_row, g_row, g_out) in enumerate(self._row_views):
            np.copyto(feat_in, db_row)
            if fine_in is not None:
                np.copyto(fine_in, fine_row)
            ph = self._phase[r]
            sess.run_with_iobinding(self._bind[r][ph])
            self._phase[r] = ph ^ 1
            np.copyto(g_row, g_out)
        self._hf_rule()
        g = self._g
        if self._contrast != 1.0:
            # The net hedges (a mean gain of ~0.1 where the ideal is < 0.2 and ~0.7 where it is > 0.8,
            # benchmarks/results/mask_diagnostics.md); g^c with c > 1 pushes the unsure middle down while
            # keeping 1 at 1. Before the inversion, so creative mode removes the voice more cleanly too.
            np.power(g, self._contrast, out=g)
        if self._mode == 2:  # creative: inverted mask
            np.subtract(self._one, g, out=g)
        np.maximum(g, self._floor, out=g)
        # Attack (gain rising) / release (gain falling) per band: gs += (1 - a) (g - gs).
        np.greater(g, self._gs, out=self._up)
        self._coef.fill(self._a_rel)
        np.copyto(self._coef, self._a_att, where=self._up)
        np.subtract(g, self._gs, out=self._tmp)
        np.subtract(self._one, self._coef, out=self._coef)
        self._tmp *= self._coef
        self._gs += self._tmp
        # mix toward unity: 1 - mix (1 - g)
        np.subtract(self._one, self._gs, out=self._tmp)
        self._tmp *= self._neg_mix
        self._tmp += self._one
        np.matmul(self._tmp, self._syn_t, out=self._binsg)
        if self._any_outside:
            np.copyto(self._binsg, 1.0, where=self._outside)
        # complex64 *= float32 would allocate a converted copy, and a (1, n_bins) gain broadcast onto
        # (channels, n_bins) an iteration buffer: cast once into a complex row, multiply per channel.
        cb = self._cbuf
        np.copyto(cb, self._binsg)
        if self.rows == spec.shape[0]:
            np.multiply(spec, cb, out=spec)
        else:
            row = cb[0]
            for k in range(spec.shape[0]):
                ch = spec[k]
                np.multiply(ch, row, out=ch)

    def _hf_rule(self):
        """Bands 24..31: power subtraction against a tracked noise floor (see module doc). Works on views
        made in prepare(): slicing here would allocate view objects every frame."""
        db, nf, t, g = self._v_db_hf, self._v_nf_hf, self._v_tmp_hf, self._v_g_hf
        if not self._nf_ready:
            np.copyto(nf, db)
            self._nf_ready = True
        nf += self._rise
        np.minimum(nf, db, out=nf)
        # rule = clip(1 - over * 10^((N - P)/10), 0, 1); 10^(x/10) = exp(x ln(10) / 10)
        np.subtract(nf, db, out=t)
        t *= self._ln10_10
        np.exp(t, out=t)
        t *= self._m_over
        t += self._one
        np.maximum(t, self._zero, out=t)  # np.clip / np.max(axis=) allocate; plain ufuncs do not
        np.minimum(t, self._one, out=t)
        pres = self._pres
        np.copyto(pres, self._v_g_pres[0])
        for band in self._v_g_pres[1:]:
            np.maximum(pres, band, out=pres)
        if self._mode == 1:
            np.maximum(t, self._pres, out=g)
        else:
            np.minimum(t, self._pres, out=g)
        self._v_g_invalid.fill(1.0)
