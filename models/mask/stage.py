"""Adaptive spectral mask: the runtime stage (numpy + onnxruntime, one thread; never imports torch).

Per STFT frame (the bundle's hop, 5 ms for the shipped model; any rate 16-96 kHz; 10 or 20 ms window):

1. Band features: bin power -> power spectral density per Hz -> weighted mean in the 32 ERB bands of
   :class:`~resculpt.dsp.bands.BandMap` -> dB (``common.py``). Linked stereo (``ctx.linked``): one
   analysis on the channel-mean power, one gain for both channels; unlinked: one per channel.
   Fine features, only for a bundle whose model has the optional fine branch (``n_fine`` > 0 in its
   config; the shipped model has it): the stage keeps the last 32 ms of its input (``observe_input``,
   called by the STFT section each frame), windows it (Hann), and reads the PSD per Hz at 128 points
   31.25 Hz apart (0-3.97 kHz), in dB; same channel rule. This look-back window adds no latency.
2. Bands 0..23 (0-7.33 kHz): the ONNX MaskNet with explicit streaming state (conv caches + GRU hidden)
   bound by IOBinding to two pre-allocated state sets used in turn (no array is allocated per frame;
   ``session.run`` would return fresh ones), conditioned on [mode == enhance, strength]; strength follows
   ``mask.reduction_db`` (s = 1 - 10^(-R/20), the fraction of interference amplitude the target removes).
   A frame that is alone in its block (live, blocks under one 5 ms hop) runs ``model.onnx`` (one frame per
   call); the frames one larger block completes reach the stage together (``process_frames``) and run
   ``model_seq.onnx`` once for all of them (the same net and state, T frames per call): onnxruntime's
   per-node overhead and the pass over the 0.9 MB of GRU weights are then shared among them (2 frames
   per 10 ms block live, 17 per 4096-sample render block). The gains are bit-identical either way
   (tested), so streaming equals offline exactly.
3. Bands 24..31 (7.33-24 kHz; absent from the 16 kHz training speech): a non-learned noise-floor rule.
   Each band's floor N tracks the band level in dB, falling at once and rising at ``HF_RISE_DB_S``. Digital
   silence (a frame whose every band is within ``HF_SILENT_MARGIN_DB`` of the features' level of nothing,
   -120 dB: zeros, a NaN/Inf frame the section zeroed, the empty history a stream starts with) does not
   count as noise: the floor goes back to what it was before the frames whose window reached into the
   silence and holds until the windows are past it, and with no floor yet the rule passes (gain 1). A
   dropout or a silent lead-in would otherwise leave the floor at a part-empty frame's level, far under
   the noise, and at 6 dB a second it climbs back for seconds while the hiss passes (in enhance mode above
   all; ``tests/test_mask_fullband.py`` holds hiss after a dropout, a silent lead-in or a NaN frame within
   2 dB of the same hiss without one). The
   rule gain is ``clip(1 - HF_OVERSUBTRACTION * N / P, 0, 1)`` (power subtraction, 3 dB over-subtraction),
   and, with ``p`` = the largest learned gain in ``HF_PRESENCE_BANDS`` 20..23 (3.4-7.3 kHz):
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
6. Deep filter (bundles whose net also emits taps, ``deep_filter`` in the config; on the taps' 10 ms window
   only, whose bins are 100 Hz apart at every rate; with another window the band gains act alone): the
   lowest K bins of the output frame get sum_j C[j, k] X[newest - N + 1 + j, k] added, the taps emitted with
   the newest frame over the newest N input spectra (kept in a small history), so a bin can follow a
   harmonic between frames where one band gain cannot. The term is scaled by ``mix``, left out outside
   ``[low_hz, high_hz]`` and in creative mode; it is not floored by ``reduction_db`` nor smoothed (the taps are
   the model's own per-frame estimate). Linked stereo: one tap set for every channel.

Steps 1 (bands, fine features after their FFT) and 3-6 run as compiled loops (``kernels.py``, numba, extra
``fast``) when numba is installed: the same steps to float32 rounding in four calls per hop instead of several
dozen ufunc calls; the numpy code below stays the reference and the fallback.

Hop and look-ahead come from the bundle's config (``frame.hop_ms``, ``lookahead_frames``): prepare() refuses a
section whose hop is not the bundle's, and ``latency_frames`` = the model's look-ahead L. A model with look-ahead
emits, with the newest frame, the gains of the frame L hops before it: the stage keeps the last L + 1 spectra
and applies those gains to the oldest, so its output is L hops late (L * hop samples added to the section's
n_fft - 1). The rule above 7.3 kHz reads the newest frame's bands too, so with look-ahead it also opens L hops
ahead of the frame it gains. The shipped model has L = 0: the gains apply to the frame they were computed on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from resculpt.dsp.bands import BandMap
from resculpt.dsp.params import ParamSpec
from resculpt.dsp.spectral_util import RealFFT
from resculpt.dsp.stft import MAX_BATCH, SpectralStage

from . import common, kernels
from .bundle import HQ_BUNDLE_DIR, Bundle, iobinding_runner, load_bundle

# The ufunc's own reduction: np.sum() and ndarray.sum() go through Python wrappers that cost about as much as the
# sum itself on these 24..320-element rows, and this runs per frame.
_add_all = np.add.reduce

HF_RISE_DB_S = 6.0  # how fast the HF noise floor may rise, dB per second (it falls at once)
HF_SILENT_MARGIN_DB = 1.0  # a frame whose every band is within this of 10 log10(eps) is digital silence
HF_OVERSUBTRACTION = 2.0  # power over-subtraction factor of the HF rule (3 dB)
HF_PRESENCE_BANDS = slice(20, 24)  # learned bands 3.4-7.3 kHz whose gain gates the rule above 7.3 kHz


def mask_params(slot: str) -> tuple[ParamSpec, ...]:
    """The mask controls under ``slot``'s prefix (``mask`` for the live tier, ``mask_hq`` for the high-quality one):
    both tiers take the same controls, each under its own ids so one chain's table can hold both."""
    return (
        ParamSpec(f"{slot}.reduction_db", 0.0, 60.0, 24.0, "dB", smoothing_ms=30.0,
                  doc="attenuation limit: the mask never cuts a band by more than this (a bundle's deep-filter "
                      "taps, below 3.1 kHz on the 10 ms window, are held to it by training, not by a floor)"),
        ParamSpec(f"{slot}.mix", 0.0, 1.0, 1.0, "", smoothing_ms=20.0, doc="blend of the mask's gain toward unity"),
        ParamSpec(f"{slot}.attack_ms", 0.5, 200.0, 1.0, "ms", scale="log", smoothing_ms=0.0,
                  doc="time for a band to open (gain rising)"),
        ParamSpec(f"{slot}.release_ms", 5.0, 2000.0, 20.0, "ms", scale="log", smoothing_ms=0.0,
                  doc="time for a band to close (gain falling)"),
        ParamSpec(f"{slot}.low_hz", 20.0, 20000.0, 20.0, "Hz", scale="log", smoothing_ms=0.0,
                  doc="the mask acts above this frequency (gain 1 below)"),
        ParamSpec(f"{slot}.high_hz", 200.0, 24000.0, 24000.0, "Hz", scale="log", smoothing_ms=0.0,
                  doc="the mask acts below this frequency (gain 1 above; at 24 kHz: up to Nyquist)"),
        ParamSpec(f"{slot}.mode", 0.0, 2.0, 0.0, "", scale="choice", smoothing_ms=0.0, choices=common.MODES,
                  doc="denoise (voice only), enhance (keeps music), creative (inverted mask: keeps the ambience)"),
        ParamSpec(f"{slot}.contrast", 1.0, 3.0, 1.0, "", smoothing_ms=0.0,
                  doc="exponent on the mask's gains before the limit: above 1 deepens the cuts where the model "
                      "is unsure (less residual noise, weak speech cut more); 1 = the model as trained"),
    )


PARAMS = mask_params("mask")
HQ_PARAMS = mask_params("mask_hq")


class MaskStage(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place."""

    name = "mask"
    params = PARAMS  # the controls this stage reads (the tiers differ only in their ids and bundle)
    # Run the per-frame steps around the model through kernels.py's compiled loops when numba is installed (the same
    # steps, to float32 rounding, in four calls per hop instead of several dozen ufunc calls).
    use_kernels = True

    def __init__(self, table, bundle: Bundle | str | Path | None = None):
        self.table = table
        self._idx = [table.index(p.id) for p in self.params]
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.session = self.bundle.session
        self.seq_session = self.bundle.seq_session  # batched graph, or None
        self.wants_input = self.bundle.has_fine  # the 32 ms look-back history feeds the fine features
        self.latency_frames = self.bundle.lookahead_frames

    def _check_hop(self, ctx):
        """Raise ValueError unless the section's hop is the bundle's hop (to the nearest sample)."""
        hop_ms = self.bundle.hop_ms
        want = hop_ms * 1e-3 * ctx.sample_rate
        if abs(ctx.hop - want) > 0.5:
            raise ValueError(
                f"mask: the model in {self.bundle.path} runs at a {hop_ms:g} ms hop ({want:g} samples at "
                f"{ctx.sample_rate} Hz), but this STFT section's hop is {ctx.hop} samples "
                f"({ctx.hop * 1e3 / ctx.sample_rate:.4g} ms): use an STFT config with a {hop_ms:g} ms hop")

    def prepare(self, ctx):
        self._check_hop(ctx)
        super().prepare(ctx)
        bm = BandMap(ctx.sample_rate, ctx.n_fft, common.N_BANDS)
        self.bm = bm
        nb, c = ctx.n_bins, ctx.channels
        rows = 1 if (ctx.linked or c == 1) else c
        self.rows = rows
        # The PSD-per-Hz scale and, for linked stereo, the 1/channels of the channel mean are folded into
        # the analysis matrix, so |X|^2 (summed over channels when linked) @ ana is the band PSD per Hz.
        fold = common.psd_scale(ctx.sample_rate, common.sqrt_hann(ctx.n_fft)) / (c if rows < c else 1)
        self._ana_t = np.ascontiguousarray((bm.analysis.T * fold).astype(np.float32))   # (nb, 32)
        # Synthesis into the interleaved (re, im) float32 view of the spectrum: each bin's gain twice, so
        # the gain multiplies the complex spectrum as one real product (no complex cast of the gains).
        self._syn2 = np.ascontiguousarray(np.repeat(bm.synthesis.T, 2, axis=1).astype(np.float32))  # (32, 2 nb)
        # Bins outside [low_hz, high_hz] get gain 1: their synthesis columns are zeroed and a base of 1 is
        # added there (one same-shape add per frame instead of a masked copy); set in _update.
        self._syn2_act = self._syn2.copy()
        self._base2 = np.zeros((rows, 2 * nb), np.float32)
        self._out2 = np.zeros(2 * nb, bool)
        self._above2 = np.zeros(2 * nb, bool)
        self._freqs2 = np.repeat(ctx.freqs_hz, 2)  # bin frequencies in the interleaved (re, im) layout
        n_valid = int(np.flatnonzero(bm.valid)[-1]) + 1  # valid bands are a prefix (bands above Nyquist are not)
        self._invalid = slice(n_valid, common.N_BANDS)
        self._has_invalid = n_valid < common.N_BANDS
        self._nonfinite = np.zeros((c, nb), bool)           # bins of a spectrum that are NaN/Inf (rare path)
        self._bin_pow = np.zeros((c, nb), np.float32)       # |X|^2 per channel and bin
        self._bin_pow_sum = np.zeros((rows, nb), np.float32)  # linked: |X|^2 summed over the channels
        self._band_psd = np.zeros((rows, common.N_BANDS), np.float32)  # band PSD per Hz (linear)
        self._db = np.zeros((rows, common.N_BANDS), np.float32)   # band PSD in dB; bands 0..23 are the model's input
        self._g = np.ones((rows, common.N_BANDS), np.float32)     # raw band gain this frame (0..23: model output)
        self._gs = np.ones((rows, common.N_BANDS), np.float32)    # smoothed band gain
        # Band-shaped scratch: the smoother's gain change (g - gs) x k_rel, then the mixed gain; the HF rule's
        # working row (bands 24..31) before that.
        self._scratch = np.zeros((rows, common.N_BANDS), np.float32)
        self._change_att = np.zeros((rows, common.N_BANDS), np.float32)  # the smoother's (g - gs) x k_att
        self._bin_gain2 = np.ones((rows, 2 * nb), np.float32)  # bin gains, each twice (interleaved re, im)
        self._nf = np.zeros((rows, common.N_BANDS), np.float32)    # HF noise floor, dB (bands 24..31 used)
        # The frames whose window can reach into a silent frame's: n_fft / hop - 1 (1 at 10 ms, 3 at 20 ms).
        self._nf_depth = max(1, -(-ctx.n_fft // ctx.hop) - 1)
        self._nf_ring = np.zeros((self._nf_depth, rows, common.N_BANDS), np.float32)  # floors before those frames
        self._nf_hold = np.zeros(rows, np.int32)   # frames left whose window still reaches into silence
        self._nf_pos = 0                           # the ring's oldest slot
        self._rowmax = np.zeros(rows, np.float32)  # each row's loudest band this frame, dB
        self._presence = np.zeros((rows, 1), np.float32)       # largest learned gain in HF_PRESENCE_BANDS
        self._presence_pair = np.zeros((rows, 2), np.float32)  # its two pairwise maxima
        self._cond = np.zeros((1, 2), np.float32)              # model conditioning [enhance, strength]
        # Look-ahead L > 0: the last L + 1 spectra in a ring; the gains of the newest frame are applied to
        # the oldest (see the module doc). Views made here: none per frame.
        look = self.latency_frames
        self._ahead = np.zeros((look + 1 if look else 0, c, nb), np.complex64)
        self._ahead_list = [self._ahead[k] for k in range(self._ahead.shape[0])]
        # Fine features: ping-pong history of the last L input samples (float64: pocketfft computes in
        # float64 and would allocate a converted copy of float32 input), Hann window, the rfft bins the
        # 31.25 Hz grid reads (a prefix: up to ~4 kHz), and the interpolation matrix (PSD scale and, when
        # linked, the 1/channels of the channel mean folded in).
        L = common.fine_len(ctx.sample_rate)
        self._L = L
        self._lfft = RealFFT(L)
        self._lbuf = np.zeros((c, L), np.float64)
        self._lbuf2 = np.zeros((c, L), np.float64)
        self._lfr = np.zeros((c, L), np.float64)
        self._lspec = np.zeros((c, L // 2 + 1), np.complex128)
        self._lwin = np.tile(common.fine_window(ctx.sample_rate), (c, 1))
        fm = common.fine_matrix(ctx.sample_rate)
        used = int(np.flatnonzero(fm.any(axis=0))[-1]) + 1
        self._fine_mt = np.ascontiguousarray((fm[:, :used].T / (c if rows < c else 1)).astype(np.float32))  # (used, 128)
        # At 16/48/96 kHz the grid falls on the bins (31.25 Hz apart): the matrix is diagonal, and a
        # scale per bin replaces the (128 x 128) product.
        mt = self._fine_mt
        diag = mt.shape[0] == mt.shape[1] and not np.any(mt - np.diag(np.diag(mt)))
        self._fine_diag = np.ascontiguousarray(np.tile(np.diag(mt), (rows, 1))) if diag else None
        self._lpow = np.zeros((c, used), np.float32)
        self._lpow64 = np.zeros((c, used), np.float64)
        # (a strided (c, used) view would make np.abs allocate a ~5 KB iteration buffer per frame in stereo)
        self._lpow_views = [(self._lspec[k, :used], self._lpow64[k]) for k in range(c)]
        self._lprow = np.zeros((rows, used), np.float32)
        # Fine features per pending frame (observe_input runs as each frame is analysed, the model later):
        # slot k holds the k-th frame of the section's batch; slot 0 is also the single-frame model's input.
        self._fineT = np.zeros((rows, MAX_BATCH, common.N_FINE), np.float32)
        self._fine_slot = [self._fineT[:, k] for k in range(MAX_BATCH)]
        self._nobs = 0    # frames observed since the last batch
        self._slot = 0    # frames of the current batch already processed one by one
        self._lbad = np.zeros((c, ctx.hop), bool)
        # Deep filter (bundles whose net emits taps, and only on the taps' 10 ms window: bins 100 Hz apart at every
        # rate): the newest N input spectra of the lowest K bins (ping-pong histories of (channels, N, K), the
        # older one shifted into the other), the taps of the frame being applied (rows, N * K * 2) float32 with
        # their complex view (rows, N, K), the per-tap products and their sum.
        b = self.bundle
        self._df_on = bool(b.df_size) and abs(ctx.n_fft - b.df_window_ms * 1e-3 * ctx.sample_rate) <= 1.0 \
            and b.df_bins <= nb
        n_df, k_df = (b.df_order, b.df_bins) if b.df_size else (1, 1)
        self._df = np.zeros((rows, max(b.df_size, 2)), np.float32)
        self._dfT = np.zeros((rows, MAX_BATCH, max(b.df_size, 2)), np.float32)
        self._df_slot = [self._dfT[:, k] for k in range(MAX_BATCH)]
        self._df_taps = [self._df[r].view(np.complex64).reshape(n_df, k_df) for r in range(rows)]
        self._dfx = [np.zeros((c, n_df, k_df), np.complex64) for _ in range(2)]
        self._dfx_i = 0
        # From history i, per channel: (the other's first N-1 frames, i's last N-1, the other's newest frame), each
        # contiguous within its channel (views made once).
        self._dfx_moves = [[(self._dfx[1 - i][ch, : n_df - 1], self._dfx[i][ch, 1:], self._dfx[1 - i][ch, n_df - 1])
                            for ch in range(c)] for i in range(2)]
        self._df_prod = np.zeros((c, n_df, k_df), np.complex64)
        self._df_term = np.zeros((c, k_df), np.complex64)
        # Per history: (history, product, taps, sum) of each channel (linked: the one tap set for all), views made
        # once; per channel because a ufunc over a 2-D strided view allocates an iteration buffer in stereo.
        self._df_rows = [[(h[ch], self._df_prod[ch], self._df_taps[0 if rows == 1 else ch], self._df_term[ch])
                          for ch in range(c)] for h in self._dfx]
        self._df_gain = np.zeros(k_df, np.complex64)  # per bin: the taps' scale inside [low_hz, high_hz], 0 outside (_update)
        self._df_bins_hz = np.asarray(ctx.freqs_hz[:k_df], np.float64)
        self._df_inside, self._df_upto = np.zeros(k_df, bool), np.zeros(k_df, bool)  # _update's scratch
        # Per analysed row, bound to the session by pointer (IOBinding): the inputs are the row's views of
        # _db (bands 0..23) and fine slot 0, the gains output is written straight into _g's bands 0..23, and two
        # state sets A, B are used in turn (frame k reads A and writes B, frame k+1 reads B and writes A),
        # so a frame copies nothing in or out and allocates nothing (onnxruntime's plain run() returns
        # fresh arrays).
        self._run, inner = iobinding_runner(self.session)
        self._inner = {id(self.session): inner}
        if self.seq_session is not None:
            self._run_seq, self._inner[id(self.seq_session)] = iobinding_runner(self.seq_session)
        self._feeds, self._bind = [], []
        for r in range(rows):
            feed = {"feat": self._db[r, : common.N_LEARNED].reshape(1, 1, common.N_LEARNED), "cond": self._cond}
            if self.bundle.has_fine:
                feed["fine"] = self._fineT[r, 0].reshape(1, 1, common.N_FINE)
            sa = {k: np.zeros(self.bundle.state_shapes[k], np.float32) for k in self.bundle.state_names}
            sb = {k: np.zeros(self.bundle.state_shapes[k], np.float32) for k in self.bundle.state_names}
            self._feeds.append((feed, sa, sb))
            outs = {"gains": self._g[r, : common.N_LEARNED].reshape(1, 1, -1)}
            if self.bundle.df_size:
                outs["df"] = self._df[r].reshape(1, 1, -1)
            self._bind.append(self._bind_pair(self.session, feed, outs, sa, sb))
        self._phase = [0] * rows
        # Batched path (bundles with model_seq.onnx): T = 2..MAX_BATCH frames per call, inputs and gains
        # in (rows, MAX_BATCH, ·) buffers whose row prefixes are bound, the same state sets A/B in turn.
        seq = self.seq_session
        self._featT = np.zeros((rows, MAX_BATCH, common.N_LEARNED), np.float32)
        self._gT = np.zeros((rows, MAX_BATCH, common.N_LEARNED), np.float32)
        self._dbT = np.zeros((MAX_BATCH, rows, common.N_BANDS), np.float32)
        self._feat_slot = [self._featT[:, k] for k in range(MAX_BATCH)]
        self._g_slot = [self._gT[:, k] for k in range(MAX_BATCH)]
        self._db_learned, self._g_learned = self._db[:, : common.N_LEARNED], self._g[:, : common.N_LEARNED]
        self._bindT = [[None] * (MAX_BATCH + 1) for _ in range(rows)]
        if seq is not None:
            for r, (_, sa, sb) in enumerate(self._feeds):
                for T in range(2, MAX_BATCH + 1):
                    feed = {"feat": self._featT[r, :T].reshape(1, T, common.N_LEARNED), "cond": self._cond}
                    if self.bundle.has_fine:
                        feed["fine"] = self._fineT[r, :T].reshape(1, T, common.N_FINE)
                    outs = {"gains": self._gT[r, :T].reshape(1, T, -1)}
                    if self.bundle.df_size:
                        outs["df"] = self._dfT[r, :T].reshape(1, T, -1)
                    self._bindT[r][T] = self._bind_pair(seq, feed, outs, sa, sb)
        self._rise = np.float32(HF_RISE_DB_S * ctx.hop / ctx.sample_rate)  # dB per hop
        self._silent = np.float32(10.0 * np.log10(common.EPS) + HF_SILENT_MARGIN_DB)  # dB: digital silence
        # The HF rule's views (bands 24..31), made once: slicing per frame would allocate view objects.
        hf = slice(common.N_LEARNED, common.N_BANDS)
        self._v_db_hf, self._v_nf_hf = self._db[:, hf], self._nf[:, hf]
        self._v_db_hf_rows, self._v_nf_hf_rows = list(self._v_db_hf), list(self._v_nf_hf)
        self._v_ring_hf = [[self._nf_ring[j, r, hf] for j in range(self._nf_depth)] for r in range(rows)]
        self._nf_unset = np.zeros((rows, common.N_BANDS - common.N_LEARNED), bool)  # floors still at +inf
        self._v_scratch_hf, self._v_g_hf = self._scratch[:, hf], self._g[:, hf]
        p0 = HF_PRESENCE_BANDS.start  # presence = max over the 4 bands as two pairwise maxima
        self._v_g_pres = (self._g[:, p0 : p0 + 2], self._g[:, p0 + 2 : p0 + 4],
                          self._presence_pair[:, 0:1], self._presence_pair[:, 1:2])
        self._v_g_invalid = self._g[:, self._invalid]
        # float32 scalars, so that arithmetic with the float32 arrays stays float32 (no upcast copy).
        self._ln10_over_10 = np.float32(np.log(10.0) / 10.0)  # 10^(x/10) = exp(x * ln(10) / 10)
        self._neg_oversub = np.float32(-HF_OVERSUBTRACTION)
        self._f32_one, self._f32_zero = np.float32(1.0), np.float32(0.0)
        self._vcache = {}  # id(spectrum) -> (spectrum, its float32 views): the section's, made once each
        self._prepare_kernels(ctx, bm, fold)

        self._cache = None
        self.reset()

    def _prepare_kernels(self, ctx, bm, fold):
        """The compiled loops' operands (kernels.py): each bin's two bands for analysis and synthesis, the per-bin
        band limits, float32 views of the deep filter's history and taps. ``_kern`` False (no numba, or a band
        layout with more than two bands on a bin) leaves the numpy code in charge."""
        ana = kernels.sparse_pairs(bm.analysis.T)
        syn = kernels.sparse_pairs(bm.synthesis)
        self._kern = bool(self.use_kernels and kernels.AVAILABLE and ana is not None and syn is not None
                          and kernels.warm_up())
        if not self._kern:
            return
        j0, j1, w0, w1 = ana
        # The PSD scale (and the linked 1/channels) folded into the weights, in float32 as the numpy code's matrix.
        self._k_ana = (j0, j1, (w0 * np.float32(fold)).astype(np.float32), (w1 * np.float32(fold)).astype(np.float32))
        self._k_syn = syn
        self._outside = self._out2[::2]  # per bin: outside [low_hz, high_hz] (_update's interleaved mask, every other)
        self._k_hist = self._dfx[0].view(np.float32)      # (channels, N, 2 K): the kernel moves it on in place
        self._k_ahead_f = [a.view(np.float32) for a in self._ahead_list]  # the look-ahead ring's float32 views
        n_df = self._dfx[0].shape[1]
        self._k_taps = self._df[:, : self._dfx[0].shape[2] * n_df * 2].reshape(self.rows, n_df, -1)
        self._df_gain_r = self._df_gain.view(np.float32)[::2]  # the taps' real scale per bin (_update sets it)
        self._k_eps = np.float32(common.EPS)
        self._k_pickmax = True
        assert HF_PRESENCE_BANDS.stop == common.N_LEARNED  # the loop's presence bands end where the rule's begin
        # numba compiles one version per operand type and memory layout: run each loop once here on the stage's own
        # arrays (and scalars of the types process() passes), so that no audio callback compiles. reset() follows.
        c, nb = ctx.channels, ctx.n_bins
        spec_f = np.zeros((c, nb), np.complex64).view(np.float32)
        kernels.band_db(spec_f, *self._k_ana, self._band_psd, self._db, self._k_eps)
        if self._fine_diag is not None:
            kernels.push_history(self._lbuf, np.zeros((c, ctx.n_fft), np.float32), ctx.n_fft - ctx.hop, self._lwin,
                                 self._lfr)
            kernels.fine_db(self._lspec, self._fine_diag, self._fine_slot[0], self._k_eps)
        f32 = np.float32
        kernels.apply_frame(spec_f, spec_f, self._g, self._db, self._nf, self._nf_ring, self._nf_hold, 0, self._gs,
                            self._scratch, *self._k_syn, self._outside, self._silent, self._rise, self._neg_oversub,
                            common.N_LEARNED, self._invalid.start,
                            HF_PRESENCE_BANDS.start, f32(1.0), 0, f32(0.0), f32(0.5), f32(0.5), True, f32(1.0),
                            self._k_hist, self._k_taps, self._df_gain_r, False, False)

    def _bind_pair(self, sess, inputs: dict, outputs: dict, sa: dict, sb: dict) -> list:
        """Two IOBindings of ``sess`` by pointer: the inputs and the outputs (gains, and the deep-filter taps when
        the net has them) as given (contiguous views of the stage's arrays), state read from sa and written to sb,
        then the reverse; each as the session's :func:`iobinding_runner` call takes it."""
        pair = []
        for src, dst in ((sa, sb), (sb, sa)):
            io = sess.io_binding()
            for k, v in inputs.items():
                io.bind_cpu_input(k, v)
            for k in self.bundle.state_names:
                io.bind_cpu_input(k, src[k])
                io.bind_output(k + "_out", "cpu", 0, np.float32, list(dst[k].shape), dst[k].ctypes.data)
            for k, v in outputs.items():
                io.bind_output(k, "cpu", 0, np.float32, list(v.shape), v.ctypes.data)
            pair.append(self._inner[id(sess)](io))
        return pair

    def observe_input(self, inbuf):
        """Append the newest hop of the section's input to the 32 ms history (non-finite samples -> 0)."""
        hop, L = self.ctx.hop, self._L
        n = inbuf.shape[1]
        if self._kern and self._fine_diag is not None:
            kernels.push_history(self._lbuf, inbuf, n - hop, self._lwin, self._lfr)
            self._lfft.forward(self._lfr, self._lspec)
            k = self._nobs
            kernels.fine_db(self._lspec, self._fine_diag, self._fine_slot[min(k, MAX_BATCH - 1)], self._k_eps)
            self._nobs = k + 1
            return
        dst = self._lbuf2
        np.copyto(dst[:, : L - hop], self._lbuf[:, hop:])
        tail = dst[:, L - hop :]
        # Per row: a float32 -> float64 cast or a sum over a 2-D strided view would allocate a ~4 KB iteration
        # buffer every frame in stereo; 1-D contiguous rows need none.
        for k in range(inbuf.shape[0]):
            row = tail[k]
            np.copyto(row, inbuf[k, n - hop :])
            if not np.isfinite(_add_all(row)):  # rare path: NaN/Inf input must not reach the model state
                bad = self._lbad[k]
                np.isfinite(row, out=bad)
                np.logical_not(bad, out=bad)
                np.copyto(row, 0.0, where=bad)
        self._lbuf2, self._lbuf = self._lbuf, dst
        # This frame's fine features are computed here: the batch reaches the model after later frames
        # have moved the history on.
        k = self._nobs
        self._fine_features(self._fine_slot[min(k, MAX_BATCH - 1)])
        self._nobs = k + 1

    def _rowsum(self, per_channel, rows):
        """Linked stereo: the channel sum (the 1/channels of the mean is folded into the matrix that
        follows; np.sum(out=) would allocate a temporary)."""
        np.copyto(rows[0], per_channel[0])
        for k in range(1, self.ctx.channels):
            rows[0] += per_channel[k]

    def _fine_features(self, out):
        """out (rows, 128) <- fine features (dB) of the current 32 ms history."""
        np.multiply(self._lbuf, self._lwin, out=self._lfr)
        self._lfft.forward(self._lfr, self._lspec)
        for spec_row, pow_row in self._lpow_views:  # per channel: a contiguous prefix, so no ufunc buffer
            np.abs(spec_row, out=pow_row)  # complex128 -> float64: no casting buffer
        np.multiply(self._lpow64, self._lpow64, out=self._lpow64)
        np.copyto(self._lpow, self._lpow64)
        lp = self._lpow
        if self.rows < self.ctx.channels:
            self._rowsum(lp, self._lprow)
            lp = self._lprow
        if self._fine_diag is not None:
            np.multiply(lp, self._fine_diag, out=out)
        else:
            np.matmul(lp, self._fine_mt, out=out)
        out += common.EPS
        np.log10(out, out=out)
        out *= 10.0

    def reset(self):
        self._ahead.fill(0.0)
        for h in self._dfx:
            h.fill(0.0)
        self._df.fill(0.0)
        self._dfT.fill(0.0)
        self._ahead_i = 0
        self._lbuf.fill(0.0)
        self._lbuf2.fill(0.0)
        self._gs.fill(1.0)
        self._g.fill(1.0)
        # No floor yet, and the stream starts as after silence (the section's history is zeros).
        self._nf.fill(np.inf)
        self._nf_ring.fill(np.inf)
        self._nf_hold.fill(self._nf_depth)
        self._nf_pos = 0
        for _, sa, sb in self._feeds:
            for v in (*sa.values(), *sb.values()):
                v.fill(0.0)
        self._phase = [0] * self.rows
        self._cache = None
        self._serial = None
        self._nobs = self._slot = 0

    def _update(self):
        serial = self.table.serial  # unchanged serial: no value moved since the last frame
        if serial == self._serial:
            return
        self._serial = serial
        v = self.table.value
        red, mix, att, rel, lo, hi, mode, contrast = (float(v[i]) for i in self._idx)
        key = (red, mix, att, rel, lo, hi, mode, contrast)
        if key == self._cache:
            return
        self._cache = key
        self._floor = np.float32(10.0 ** (-red / 20.0))
        self._mix = np.float32(mix)
        self._one_minus_mix = np.float32(1.0 - mix)
        self._contrast = np.float32(contrast)
        hop_s = self.ctx.hop / self.ctx.sample_rate
        # One-pole smoothing gs += k (g - gs), k = 1 - a: k_att when the gain rises, k_rel when it falls.
        # With k_att >= k_rel (attack at least as fast as release) that choice is max(k_att d, k_rel d)
        # for d = g - gs of either sign, otherwise min: two products and one max instead of a select.
        k_att = self._f32_one - np.float32(np.exp(-hop_s / (att * 1e-3)))
        k_rel = self._f32_one - np.float32(np.exp(-hop_s / (rel * 1e-3)))
        self._k_att, self._k_rel = k_att, k_rel
        self._pick = np.maximum if k_att >= k_rel else np.minimum
        self._mode = int(round(mode))
        self._cond[0, 0] = 1.0 if self._mode == 1 else 0.0
        self._cond[0, 1] = 1.0 - self._floor  # strength: fraction of interference amplitude removed
        # Control rate only (a parameter moved): the band limits into the synthesis matrix and base.
        top = np.inf if hi >= PARAMS[5].max else hi
        o2, above = self._out2, self._above2
        np.less(self._freqs2, lo, out=o2)
        np.greater(self._freqs2, top, out=above)
        o2 |= above
        np.copyto(self._syn2_act, self._syn2)
        np.copyto(self._syn2_act, 0.0, where=o2)
        np.copyto(self._base2, o2)
        self._any_outside = bool(o2.any())
        # The deep-filter term follows the mix and the band limits, and fades out with the strength 1 - floor below
        # the least strength training draws (0.3: limits under 3.1 dB), so that a 0 dB limit leaves the input
        # untouched, as it does without taps (the floor holds the gains at 1, nothing holds the taps); at the
        # limits training saw, the term is the one it learned. Creative mode (the inverted mask) has none.
        inside, upto = self._df_inside, self._df_upto
        np.greater_equal(self._df_bins_hz, lo, out=inside)
        np.less_equal(self._df_bins_hz, top, out=upto)
        inside &= upto  # lo <= f <= top
        df_scale = mix * min(1.0, (1.0 - float(self._floor)) / common.MIN_STRENGTH)
        self._df_gain.fill(0.0)
        np.copyto(self._df_gain, df_scale, where=inside)
        self._df_apply = self._df_on and self._mode != 2 and df_scale > 0.0 and bool(inside.any())
        if self._kern:
            self._k_pickmax = bool(k_att >= k_rel)

    def _views(self, spec):
        """(whole, per channel) interleaved float32 views of ``spec``, made once per array: the section
        passes the same MAX_BATCH spectra again and again, and a view made per frame would be an allocation."""
        hit = self._vcache.get(id(spec))
        if hit is None or hit[0] is not spec:
            f = spec.view(np.float32)
            k = self._df_term.shape[1]
            hit = self._vcache[id(spec)] = (spec, f, [f[c] for c in range(f.shape[0])],
                                            [spec[c, :k] for c in range(spec.shape[0])])
        return hit[1], hit[2]

    def _low_bins(self, spec):
        """Per channel, the view of ``spec``'s lowest K bins (the deep filter's), made once per array."""
        self._views(spec)
        return self._vcache[id(spec)][3]

    def _band_power(self, spec):
        """_band_psd (rows, 32) <- band PSD per Hz of spec (linked: of the channel mean)."""
        # |X|^2 as abs() then square: ufuncs over the strided .real/.imag views of a 2-D spectrum
        # allocate an iteration buffer; complex64 -> float32 abs() does not.
        pw = self._bin_pow
        np.abs(spec, out=pw)
        np.multiply(pw, pw, out=pw)
        if self.rows < self.ctx.channels:
            self._rowsum(pw, self._bin_pow_sum)
            pw = self._bin_pow_sum
        np.matmul(pw, self._ana_t, out=self._band_psd)

    def _analyse(self, spec):
        """_db (rows, 32) <- the frame's band features in dB (non-finite bins of spec zeroed first)."""
        if self._kern:
            j0, j1, w0, w1 = self._k_ana
            if kernels.band_db(self._views(spec)[0], j0, j1, w0, w1, self._band_psd, self._db, self._k_eps):
                return
        self._band_power(spec)
        # The section zeroes non-finite spectra before any stage; this guards a stage placed after one
        # that produced them (checked on the 32 band sums, which any NaN/Inf bin reaches), so neither
        # the output nor the model state sees a NaN/Inf.
        if not np.isfinite(_add_all(self._band_psd, axis=None)):  # rare path
            bad = self._nonfinite
            np.isfinite(spec, out=bad)
            np.logical_not(bad, out=bad)
            np.copyto(spec, 0, where=bad)
            self._band_power(spec)
            np.minimum(self._band_psd, 1e30, out=self._band_psd)  # |X|^2 of a finite but huge bin overflows
        self._band_psd += common.EPS
        np.log10(self._band_psd, out=self._db)
        self._db *= 10.0   # bands 0..23 of each row are the single-frame model's bound input

    def process_frame(self, spec):
        """One frame: features, one model call (single-frame graph), gains applied to spec in place."""
        self._update()
        self._analyse(spec)
        k = self._slot
        if 0 < k < min(self._nobs, MAX_BATCH):  # a batch run frame by frame (bundle without the batched graph)
            np.copyto(self._fine_slot[0], self._fine_slot[k])
        self._slot = k + 1
        run = self._run
        for r in range(self.rows):   # writes the learned gains into _g[r, :24]
            ph = self._phase[r]
            run(self._bind[r][ph])
            self._phase[r] = ph ^ 1
        self._apply(spec)

    def process_frames(self, specs, n):
        """The section's batch: with the batched graph, one model call per row for all n frames (the
        same gains as n single-frame calls, tested), then each frame's gains applied in order."""
        if n > 1 and self.seq_session is not None:
            self._update()
            for k in range(n):
                self._analyse(specs[k])
                np.copyto(self._dbT[k], self._db)
                np.copyto(self._feat_slot[k], self._db_learned)
            run = self._run_seq
            for r in range(self.rows):   # gains of frame k of row r -> _gT[r, k]
                ph = self._phase[r]
                run(self._bindT[r][n][ph])
                self._phase[r] = ph ^ 1
            for k in range(n):
                np.copyto(self._db, self._dbT[k])      # the HF rule reads this frame's bands 24..31
                np.copyto(self._g_learned, self._g_slot[k])
                if self._df_on:
                    np.copyto(self._df, self._df_slot[k])
                self._apply(specs[k])
        else:
            for k in range(n):
                self.process_frame(specs[k])
        self._nobs = self._slot = 0

    def _apply(self, spec):
        """_g[:, :24] holds the frame's learned gains: the HF rule, controls, smoothing, and the gain
        applied in place to spec (with look-ahead L: spec is replaced by the spectrum L frames back first)."""
        if self._kern:
            self._apply_compiled(spec)
            return
        self._hf_rule()
        g = self._g
        if self._contrast != 1.0:
            # The net hedges (a mean gain of ~0.1 where the ideal is < 0.2 and ~0.7 where it is > 0.8,
            # benchmarks/results/mask_diagnostics.md); g^c with c > 1 pushes the unsure middle down while
            # keeping 1 at 1. Before the inversion, so creative mode removes the voice more cleanly too.
            np.power(g, self._contrast, out=g)
        if self._mode == 2:  # creative: inverted mask
            np.subtract(self._f32_one, g, out=g)
        np.maximum(g, self._floor, out=g)
        # Attack (gain rising) / release (gain falling) per band (see _update).
        d, kd = self._scratch, self._change_att
        np.subtract(g, self._gs, out=d)
        np.multiply(d, self._k_att, out=kd)
        d *= self._k_rel
        self._pick(d, kd, out=d)
        self._gs += d
        gain = self._gs
        if self._mix != 1.0:   # mix toward unity: (1 - mix) + mix g
            gain = self._scratch
            np.multiply(self._gs, self._mix, out=gain)
            gain += self._one_minus_mix
        bg = self._bin_gain2
        np.matmul(gain, self._syn2_act, out=bg)
        if self._any_outside:
            bg += self._base2
        if self._df_on:  # the newest frame's lowest bins into the deep filter's history (before spec is replaced)
            lows = self._low_bins(spec)
            for (head, tail, newest), low in zip(self._dfx_moves[self._dfx_i], lows):
                np.copyto(head, tail)
                np.copyto(newest, low)
            self._dfx_i ^= 1
        if self._ahead_list:  # look-ahead L: these gains belong to the spectrum L frames back
            self._swap_ahead(spec)
        sf, sf_rows = self._views(spec)
        if self.rows == spec.shape[0]:
            np.multiply(sf, bg, out=sf)
        else:   # linked: one gain row for every channel (a broadcast operand would need a buffer)
            row = bg[0]
            for ch in sf_rows:
                np.multiply(ch, row, out=ch)
        if self._df_apply:
            self._deep_filter(lows)  # views of spec: with look-ahead they see the older frame copied in

    def _swap_ahead(self, spec):
        """Look-ahead L: keep ``spec`` (the newest frame) in the ring and replace it by the spectrum L frames back;
        returns the ring slot that now holds the newest frame."""
        ring, i = self._ahead_list, self._ahead_i
        np.copyto(ring[i], spec)
        j = (i + 1) % len(ring)
        np.copyto(spec, ring[j])
        self._ahead_i = j
        return i

    def _apply_compiled(self, spec):
        """_apply's steps in one compiled call (kernels.apply_frame). The deep filter's history is moved on in place
        (the numpy code's ping-pong pair is not used), so a stage runs one way or the other from prepare() on."""
        spec_f = self._views(spec)[0]
        push_f = spec_f
        if self._ahead_list:  # look-ahead L: these gains belong to the spectrum L frames back
            push_f = self._k_ahead_f[self._swap_ahead(spec)]  # the newest spectrum, for the deep filter's history
        j0, j1, w0, w1 = self._k_syn
        kernels.apply_frame(spec_f, push_f, self._g, self._db, self._nf, self._nf_ring, self._nf_hold, self._nf_pos,
                            self._gs, self._scratch, j0, j1, w0, w1,
                            self._outside, self._silent, self._rise, self._neg_oversub, common.N_LEARNED,
                            self._invalid.start, HF_PRESENCE_BANDS.start, self._contrast, self._mode, self._floor,
                            self._k_att, self._k_rel, self._k_pickmax, self._mix, self._k_hist,
                            self._k_taps, self._df_gain_r, self._df_on, self._df_apply)
        self._nf_pos = (self._nf_pos + 1) % self._nf_depth

    def _deep_filter(self, lows):
        """Add to the output frame's lowest K bins sum_j C[j, k] X[newest - N + 1 + j, k] (the taps emitted with the
        newest frame; linked: one tap set for every channel), scaled by ``_df_gain`` (the mix, faded out below the
        least strength training draws; zero outside the band limits).
        ``lows``: per channel, the (K,) complex64 view of the output frame's lowest bins."""
        for (x, p, c, term), low in zip(self._df_rows[self._dfx_i], lows):
            np.multiply(x, c, out=p)
            _add_all(p, axis=0, out=term)
            term *= self._df_gain
            low += term

    def _hf_floor(self):
        """Bands 24..31's floor, one frame (module doc, step 3): a silent row goes back to its floor before the D
        frames whose window reached into the silence (ring slot _nf_pos) and holds it D frames past the silence;
        otherwise it falls to the band level at once and rises HF_RISE_DB_S."""
        np.maximum.reduce(self._db, axis=1, out=self._rowmax)
        pos, rise = self._nf_pos, self._rise
        for r in range(self.rows):
            nf_r, ring = self._v_nf_hf_rows[r], self._v_ring_hf[r]
            if self._rowmax[r] <= self._silent:
                np.copyto(nf_r, ring[pos])
                for slot in ring:
                    np.copyto(slot, nf_r)
                self._nf_hold[r] = self._nf_depth
                continue
            np.copyto(ring[pos], nf_r)
            if self._nf_hold[r] > 0:
                self._nf_hold[r] -= 1
            else:
                nf_r += rise
                np.minimum(nf_r, self._v_db_hf_rows[r], out=nf_r)
        self._nf_pos = (pos + 1) % self._nf_depth

    def _hf_rule(self):
        """Bands 24..31: power subtraction against a tracked noise floor (see module doc). Works on views
        made in prepare(): slicing here would allocate view objects every frame."""
        db, nf, t, g = self._v_db_hf, self._v_nf_hf, self._v_scratch_hf, self._v_g_hf
        self._hf_floor()
        # rule = clip(1 - over * 10^((N - P)/10), 0, 1); 10^(x/10) = exp(x ln(10) / 10). The power is
        # positive, so the rule never exceeds 1: only the lower clip is needed, and only in denoise (in
        # enhance max(rule, presence) with presence >= 0 ignores a negative rule anyway).
        np.subtract(nf, db, out=t)
        t *= self._ln10_over_10
        np.exp(t, out=t)
        t *= self._neg_oversub
        t += self._f32_one
        np.isinf(nf, out=self._nf_unset)
        np.copyto(t, self._f32_one, where=self._nf_unset)  # no floor yet: the rule passes
        pa, pb, p2a, p2b = self._v_g_pres
        np.maximum(pa, pb, out=self._presence_pair)
        np.maximum(p2a, p2b, out=self._presence)
        if self._mode == 1:
            np.maximum(t, self._presence, out=g)
        else:
            np.maximum(t, self._f32_zero, out=t)
            np.minimum(t, self._presence, out=g)
        if self._has_invalid:
            self._v_g_invalid.fill(1.0)


class HighQualityMask(MaskStage):
    """The high-quality tier (``mask_hq``): the same stage on the ``mask-hq`` bundle, whose net has two frames of
    look-ahead (10 ms at the 5 ms hop: with the 10 ms window, 20 ms of latency in all), read under the ``mask_hq.*``
    ids."""

    name = "mask_hq"
    params = HQ_PARAMS

    def __init__(self, table, bundle: Bundle | str | Path | None = None):
        super().__init__(table, HQ_BUNDLE_DIR if bundle is None else bundle)
