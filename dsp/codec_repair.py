"""Codec repair (the ``codec`` slot): a valley postfilter on the kept band, then band replication: re-create the
high band a low-bitrate codec (or a telephone line) cut off, from the band below it, frame by frame.

Valley postfilter (``codec.valley_db`` > 0): a low-bitrate codec's quantisation noise fills the valleys between
harmonics and formants. Each bin's power gain is ``(P / local mean)^0.3``, the local mean over 250 Hz around it
(about one harmonic spacing of a voice), clipped to ``[-valley_db, 0]`` dB, then scaled so the frame's power is
kept: valleys go down, peaks up a little.

Decoded Opus at 6-8 kbps carries nothing above 4 kHz (its narrowband mode: the band sits 24-27 dB under the
original's long-term level, `scripts/codec_repair_diag.py`), MP3 at 32 kbps nothing above its low-pass. Per
frame (any STFT config; bins are ``rate / n_fft`` apart):

1. the cut-off ``fc``: ``codec.cutoff_hz``, or with 0 (auto) the edge found in the running long-term spectrum
   (channel-mean power, one-pole over active frames with a 2 s time constant, examined every 50 ms; a frame is
   active within 30 dB of the running peak frame level, which decays by 10 dB/s, so pauses and the codec's
   quiet-frame noise do not flatten the estimate): the bin above 2 kHz with the largest drop from the mean dB
   level of the 500 Hz below to that of the 500 Hz above, when that drop exceeds 15 dB (speech falls ~12 dB
   per octave up there, ~2 dB per 500 Hz; a codec's low-pass drops 20-40 dB over its roll-off). No edge: the
   frame passes unchanged;
2. the bins from ``fc`` up to ``codec.max_hz`` are replaced by the spectrum ``S`` bins lower, patch after patch
   (``S`` = half of ``fc``, rounded down to a multiple of ``n_fft / gcd(n_fft, hop)`` bins, so that the shift
   is a whole number of cycles per hop: a true frequency shift whose frames overlap-add coherently; each
   patch copies the one below, so the top octave of the kept band is what repeats);
3. each ERB band of the rebuilt range is scaled so that its power follows, in this frame, the power density
   of the kept band's top (``0.7 fc`` .. ``fc``, centre ``f_ref``) continued at ``codec.slope_db_oct`` dB per
   octave and offset by ``codec.level_db``: ``ref(t) * 10^((level + slope * log2(f / f_ref)) / 10)``. A
   fricative, bright at the top of the kept band, gets a bright high band; a vowel, dark there, a dark one. The
   per-frame tracking is what measurably helps: a fixed band gain (the long-term ratio) lowers PESQ-WB on
   decoded speech (diagnosis table in docs/resculpt-stage.md).

Linked: one analysis of the channel-mean power and one set of band gains for every channel; the copy is per
channel (each channel's own band below), so a stereo image stays put. No look-ahead. Deterministic from
reset(), so streaming == offline for any block partition.
"""

from __future__ import annotations

import math

import numpy as np

from .bands import BandMap
from .params import ParamSpec
from .stft import SpectralStage

PARAMS = (
    ParamSpec("codec.cutoff_hz", 0.0, 16000.0, 0.0, "Hz", smoothing_ms=0.0,
              doc="edge above which the band is rebuilt (0 = find the codec's edge in the running spectrum; "
                  "values below 1 kHz count as 1 kHz)"),
    ParamSpec("codec.max_hz", 0.0, 24000.0, 8000.0, "Hz", smoothing_ms=0.0,
              doc="top of the rebuilt band (8 kHz: wideband speech); at or below the edge (0) nothing is rebuilt"),
    ParamSpec("codec.slope_db_oct", -30.0, 0.0, -12.0, "dB/oct", smoothing_ms=50.0,
              doc="spectral slope that continues the kept band's top into the rebuilt band, per frame"),
    ParamSpec("codec.level_db", -30.0, 12.0, 0.0, "dB", smoothing_ms=50.0,
              doc="level of the rebuilt band against that continuation (and against the learned envelope)"),
    ParamSpec("codec.valley_db", 0.0, 12.0, 0.0, "dB", smoothing_ms=50.0,
              doc="largest cut of the valley postfilter between harmonics and formants (0 = off)"),
)

MIN_CUT_HZ = 1000.0       # lowest fixed edge; the auto search starts at AUTO_MIN_HZ
AUTO_MIN_HZ = 2000.0
EDGE_WIN_HZ = 500.0       # the windows either side of a candidate edge
EDGE_DROP_DB = 15.0       # the drop across an edge that counts as a codec's cut
LT_TAU_S = 2.0            # the running long-term spectrum's time constant
GATE_DB = 30.0            # a frame enters it when its mean power is within this of the running peak level
PEAK_DECAY_DB_S = 10.0    # the running peak level's decay
DETECT_EVERY_S = 0.05     # how often the edge is searched
ACTIVE_DB = -100.0        # ... and above this absolute floor (mean bin power of the section's spectra)
REF_LO = 0.7              # the reference region: REF_LO * fc .. fc
GAIN_MAX = 1000.0         # a band's amplitude gain is at most +60 dB (silence above a quiet source stays quiet)
VALLEY_WIN_HZ = 250.0    # the valley postfilter's local-mean width
VALLEY_EXP = 0.3          # its power-gain exponent on P / local mean
_EPS = np.float32(1e-20)


class CodecRepair(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread)."""

    name = "codec"

    def __init__(self, table):
        self.table = table
        self._i_cut, self._i_max, self._i_slope, self._i_level, self._i_valley = (table.index(p.id) for p in PARAMS)

    def prepare(self, ctx):
        """Control thread: allocate every buffer."""
        super().prepare(ctx)
        c, nb = ctx.channels, ctx.n_bins
        self._bin_hz = ctx.sample_rate / ctx.n_fft
        self._q = ctx.n_fft // math.gcd(ctx.n_fft, ctx.hop)  # shift granularity, bins
        self._f = (np.arange(nb) * self._bin_hz).astype(np.float32)
        bm = BandMap(ctx.sample_rate, ctx.n_fft)
        self._ana_t = np.ascontiguousarray(bm.analysis.T)    # (nb, 32)
        self._syn_t = np.ascontiguousarray(bm.synthesis.T)   # (32, nb)
        self._centers = [float(v) for v in bm.centers_hz]
        # per edge bin: the first band centred at or above it (a list: read per frame without numpy allocating)
        self._j0_of = [int(j) for j in np.searchsorted(bm.centers_hz, np.arange(nb + 1) * self._bin_hz)]
        hop_s = ctx.hop / ctx.sample_rate
        self._a = np.float32(math.exp(-hop_s / LT_TAU_S))
        self._every = max(1, round(DETECT_EVERY_S / hop_s))
        self._w = max(1, round(EDGE_WIN_HZ / self._bin_hz))
        self._k_auto = max(self._w, math.ceil(AUTO_MIN_HZ / self._bin_hz))
        self._act = 10.0 ** (ACTIVE_DB / 10.0)
        self._gate = 10.0 ** (-GATE_DB / 10.0)
        self._decay = 10.0 ** (-PEAK_DECAY_DB_S * hop_s / 10.0)
        self._pow = np.zeros((c, nb), np.float32)
        self._im = np.zeros((c, nb), np.float32)
        self._pm = np.zeros(nb, np.float32)      # channel-mean power of the frame
        self._lt = np.zeros(nb, np.float32)      # running long-term power
        self._tmp = np.zeros(nb, np.float32)
        self._ldb = np.zeros(nb, np.float64)     # its dB
        self._cs = np.zeros(nb + 1, np.float64)  # prefix sums of _ldb
        n_cand = max(0, nb - self._w - self._k_auto)
        self._lo = np.zeros(n_cand, np.float64)
        self._hi = np.zeros(n_cand, np.float64)
        self._shape = np.zeros(nb, np.float32)   # the rebuilt band's density relative to ref(t)
        self._want = np.zeros(32, np.float32)
        self._have = np.zeros(32, np.float32)
        self._g = np.zeros(32, np.float32)
        self._G = np.zeros(nb, np.float32)
        self._cG = np.zeros((c, nb), np.complex64)
        # valley postfilter: box mean over 2 * half + 1 bins (clipped at the edges) as shifted sums, not prefix
        # sums: a prefix sum's difference cancels to 0 where a codec left bins 90 dB under the frame's peak
        self._vhalf = max(1, round(0.5 * VALLEY_WIN_HZ / self._bin_hz))
        ar = np.arange(nb)
        self._vcnt = (np.minimum(ar + self._vhalf + 1, nb) - np.maximum(ar - self._vhalf, 0)).astype(np.float64)
        self._vp = np.zeros(nb, np.float64)
        self._va = np.zeros(nb, np.float64)
        self._vb = np.zeros(nb, np.float64)
        self.reset()

    def reset(self):
        self._lt.fill(0.0)
        self._n = 0            # frames since reset
        self._n_act = 0        # active frames in the long-term spectrum
        self._peak = 0.0       # running peak of the frames' mean power
        self._auto_fc = 0      # the detected edge (bin), 0 = none
        self._key = None       # (fc, kmax, slope, level) the shape was built for

    # -- the edge ------------------------------------------------------------------------------------------
    def _detect(self) -> None:
        """Search the running long-term spectrum for a codec's edge (sets ``_auto_fc``; 0 = none)."""
        n = self._lo.size
        if n == 0 or self._n_act < self._every:
            self._auto_fc = 0
            return
        np.copyto(self._ldb, self._lt)  # widened first: a mixed-dtype ufunc would buffer
        self._ldb += 1e-20
        np.log10(self._ldb, out=self._ldb)
        np.cumsum(self._ldb, out=self._cs[1:])
        k0, w = self._k_auto, self._w
        # mean dB of the window below each candidate minus that of the window above (times w / 10)
        np.subtract(self._cs[k0 : k0 + n], self._cs[k0 - w : k0 - w + n], out=self._lo)
        np.subtract(self._cs[k0 + w : k0 + w + n], self._cs[k0 : k0 + n], out=self._hi)
        self._lo -= self._hi
        j = int(np.argmax(self._lo))
        self._auto_fc = k0 + j if self._lo[j] * (10.0 / w) > EDGE_DROP_DB else 0

    def _build_shape(self, fc: int, kmax: int, slope: float, level: float) -> None:
        """The rebuilt band's power density relative to the reference density, per bin (0 outside fc..kmax)."""
        f_ref = 0.5 * (REF_LO + 1.0) * fc * self._bin_hz
        self._shape.fill(0.0)
        s = self._shape[fc:kmax]
        np.divide(self._f[fc:kmax], np.float32(f_ref), out=s)
        np.log2(s, out=s)
        s *= np.float32(slope / 10.0)
        s += np.float32(level / 10.0)
        np.power(np.float32(10.0), s, out=s)
        # bands centred below fc take the first rebuilt band's gain (see process_frame)
        self._j0 = self._j0_of[fc]
        self._key = (fc, kmax, slope, level)

    def _valley(self, spec, floor_db: float) -> None:
        """The valley postfilter on ``spec`` in place, from the frame's channel-mean power ``_pm``."""
        p, a, b = self._vp, self._va, self._vb
        np.copyto(p, self._pm)
        p += 1e-20
        nb = p.size
        np.copyto(a, p)
        for d in range(1, self._vhalf + 1):
            np.add(a[d:], p[: nb - d], out=a[d:])
            np.add(a[: nb - d], p[d:], out=a[: nb - d])
        a /= self._vcnt                   # local mean
        np.divide(p, a, out=a)            # P / local mean
        np.power(a, VALLEY_EXP, out=a)
        np.clip(a, 10.0 ** (-floor_db / 10.0), 1.0, out=a)
        np.multiply(a, p, out=b)
        a *= float(p.sum()) / float(b.sum())  # the frame's power kept
        np.sqrt(a, out=a)
        np.copyto(self._G, a, casting="same_kind")
        for ch in range(self.ctx.channels):
            np.copyto(self._cG[ch], self._G)
            np.multiply(spec[ch], self._cG[ch], out=spec[ch])

    # -- hooks of a learned envelope (resculpt.models.codec) ----------------------------------------------
    def _observe(self, spec, fc: int) -> None:
        """Called once per frame with the frame as decoded (``_pm``: its channel-mean power (n_bins,)) and the
        edge ``fc`` (bins, 0 = none), before anything is changed; may edit the kept band of ``spec``."""

    def _rebuilt_want(self, fc: int) -> None:
        """Called with ``_want`` (32,) holding the rule's wanted band powers of the rebuilt range; may replace
        them (the copy's own band powers are in ``_have``)."""

    # -- the frame -----------------------------------------------------------------------------------------
    def process_frame(self, spec):
        ctx = self.ctx
        v = self.table.value
        c, nb = ctx.channels, ctx.n_bins
        np.multiply(spec.real, spec.real, out=self._pow)
        np.multiply(spec.imag, spec.imag, out=self._im)
        self._pow += self._im
        np.copyto(self._pm, self._pow[0])
        for ch in range(1, c):  # linked: mean of the channels (np.mean would allocate)
            self._pm += self._pow[ch]
        self._pm *= np.float32(1.0 / c)
        self._n += 1
        cut = float(v[self._i_cut])
        if cut <= 0.0:
            lvl = float(self._pm.mean(dtype=np.float32))
            self._peak = max(lvl, self._peak * self._decay)
            if lvl > self._act and lvl > self._gate * self._peak:
                self._lt *= self._a
                np.multiply(self._pm, np.float32(1.0) - self._a, out=self._tmp)
                self._lt += self._tmp
                self._n_act += 1
            if self._n % self._every == 0:
                self._detect()
            fc = self._auto_fc
        else:
            fc = math.ceil(max(cut, MIN_CUT_HZ) / self._bin_hz)
        self._observe(spec, fc)
        valley = float(v[self._i_valley])
        if valley > 0.0:
            self._valley(spec, valley)
        kmax = min(nb, int(float(v[self._i_max]) / self._bin_hz) + 1)
        if fc <= 0 or fc >= kmax:
            return
        S = max(self._q, (fc // 2) // self._q * self._q)
        ref_lo = int(REF_LO * fc)
        ref = float(self._pm[ref_lo:fc].mean(dtype=np.float32)) if fc > ref_lo else 0.0
        slope, level = float(v[self._i_slope]), float(v[self._i_level])
        if self._key != (fc, kmax, slope, level):
            self._build_shape(fc, kmax, slope, level)
        # the copy: patch after patch, each from the one S bins below
        for k0 in range(fc, kmax, S):
            k1 = min(k0 + S, kmax)
            for ch in range(c):  # row by row: 2-D slices of one array overlap in memory and numpy would copy
                np.copyto(spec[ch, k0:k1], spec[ch, k0 - S : k1 - S])
        # band powers of the copy (channel mean) and of the wanted continuation, over fc..kmax only
        np.multiply(spec.real, spec.real, out=self._pow)
        np.multiply(spec.imag, spec.imag, out=self._im)
        self._pow += self._im
        np.copyto(self._pm, self._pow[0])
        for ch in range(1, c):
            self._pm += self._pow[ch]
        self._pm *= np.float32(1.0 / c)
        self._pm[:fc] = 0.0
        self._pm[kmax:] = 0.0
        np.matmul(self._pm, self._ana_t, out=self._have)
        np.matmul(self._shape, self._ana_t, out=self._want)
        self._want *= np.float32(ref)
        self._rebuilt_want(fc)
        self._have += _EPS
        np.divide(self._want, self._have, out=self._g)
        np.sqrt(self._g, out=self._g)
        np.minimum(self._g, np.float32(GAIN_MAX), out=self._g)
        # bands wholly below fc carry the first rebuilt band's gain, so the interpolation to bins stays flat
        # across the edge
        j0 = self._j0
        if 0 < j0 < self._g.size:
            self._g[:j0] = self._g[j0]
        np.matmul(self._g, self._syn_t, out=self._G)
        for ch in range(c):
            row = self._cG[ch, fc:kmax]
            np.copyto(row, self._G[fc:kmax])
            np.multiply(spec[ch, fc:kmax], row, out=spec[ch, fc:kmax])
