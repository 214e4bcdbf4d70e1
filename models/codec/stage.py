"""The ``codec`` slot with its learned envelope: the band-replication stage of ``resculpt.dsp.codec_repair``
whose rebuilt band follows, frame by frame, the level a small recurrent net predicts from the decoded frame
(numpy + onnxruntime, one thread; never imports torch).

Per frame the net (``models/weights/codec``, ``net.py``) reads the decoded frame's 32 band levels against its
kept-band level, the edge and the absolute level (``common.Features``) and says the level every band had before
the codec. The stage then

- scales the copied-up band (edge .. ``codec.max_hz``; bands centred above 8 kHz keep the rule) to
  ``(1 - a) * rule + a * (net + codec.level_db)`` in dB, ``a`` = ``codec.model``: 0 is the slope/level rule of
  the DSP stage, exactly;
- with ``codec.model_kept_db`` > 0, moves each band below the edge toward the net's level, by at most that many
  dB (times ``a``): the codec's own band errors (a few dB per frame) undone.

The net runs only while ``codec.model`` > 0 (its state continues from where it stopped otherwise). Its state
is two (1, 1, H) buffers used in turn, bound to the session by pointer, so a frame allocates nothing. No
look-ahead: the latency is the DSP stage's (none).
"""

from __future__ import annotations

import numpy as np

from resculpt.dsp import codec_repair
from resculpt.dsp.bands import N_BANDS
from resculpt.dsp.params import ParamSpec

from . import common
from .bundle import Bundle, load_bundle

PARAMS = codec_repair.PARAMS + (
    ParamSpec("codec.model", 0.0, 1.0, 0.0, "", smoothing_ms=50.0,
              doc="weight of the learned per-frame envelope of the rebuilt band against the slope/level rule "
                  "(0 = the rule, 1 = the net; blended in dB)"),
    ParamSpec("codec.model_kept_db", 0.0, 12.0, 0.0, "dB", smoothing_ms=50.0,
              doc="largest correction the learned envelope makes to each band below the edge (0 = untouched)"),
)


class LearnedCodecRepair(codec_repair.CodecRepair):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread)."""

    def __init__(self, table, bundle: Bundle | str | None = None):
        super().__init__(table)
        self._i_model, self._i_kept = table.index("codec.model"), table.index("codec.model_kept_db")
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.session = self.bundle.session

    def prepare(self, ctx):
        hop_ms = 1000.0 * ctx.hop / ctx.sample_rate
        if abs(hop_ms - self.bundle.hop_ms) * ctx.sample_rate / 1000.0 > 1.0:
            raise ValueError(f"codec: the envelope model in {self.bundle.path} runs at a {self.bundle.hop_ms:g} ms "
                             f"hop; this section's hop is {hop_ms:.3f} ms")
        self._sa = np.zeros(self.bundle.state_shape, np.float32)  # before the base's prepare, which resets
        self._sb = np.zeros(self.bundle.state_shape, np.float32)
        super().prepare(ctx)
        self._fx = common.Features(ctx.sample_rate, ctx.n_fft)
        self._feat = np.zeros((1, 1, common.N_FEAT), np.float32)
        self._lv = np.zeros((1, 1, N_BANDS), np.float32)
        self._bind = []
        for src, dst in ((self._sa, self._sb), (self._sb, self._sa)):
            io = self.session.io_binding()
            io.bind_cpu_input("feat", self._feat)
            io.bind_cpu_input("h", src)
            io.bind_output("levels", "cpu", 0, np.float32, list(self._lv.shape), self._lv.ctypes.data)
            io.bind_output("h_out", "cpu", 0, np.float32, list(dst.shape), dst.ctypes.data)
            self._bind.append(io)
        self._net_db = np.zeros(N_BANDS, np.float32)   # the net's band levels, dB (absolute)
        self._rule_db = np.zeros(N_BANDS, np.float32)
        self._kg = np.zeros(N_BANDS, np.float32)       # kept-band gains
        self._kG = np.zeros(ctx.n_bins, np.float32)
        self._kcG = np.zeros(ctx.n_bins, np.complex64)
        # the bands the net speaks for in the rebuilt range (centres at or below MAX_HZ): a prefix
        self._jn = int(np.searchsorted(np.asarray(self._centers), common.MAX_HZ, side="right"))
        self._tmp_db = np.zeros(N_BANDS, np.float32)
        self._on = False

    def reset(self):
        super().reset()
        self._sa.fill(0.0)
        self._sb.fill(0.0)
        self._phase = 0
        self._on = False

    def _observe(self, spec, fc):
        a = float(self.table.value[self._i_model])
        self._on = a > 0.0
        if not self._on:
            return
        r = self._fx.compute(self._pm, fc, self._feat[0, 0])
        self.session.run_with_iobinding(self._bind[self._phase])
        self._phase ^= 1
        nd = self._net_db
        np.multiply(self._lv[0, 0], np.float32(common.DB_UNIT), out=nd)
        nd += np.float32(r)
        kd = float(self.table.value[self._i_kept]) * a
        if kd <= 0.0 or fc <= 1:
            return
        # kept bands: the net's level minus the decoded one, within +-kd dB; bands from the edge's up take the
        # last kept band's gain, so the interpolation to bins stays flat across the edge
        g = self._kg
        np.subtract(nd, self._fx.band_db, out=g)
        np.clip(g, -kd, kd, out=g)
        j0 = self._j0_of[min(fc, self.ctx.n_bins)]
        if j0 <= 0:
            return
        if j0 < N_BANDS:
            g[j0:] = g[j0 - 1]
        g *= np.float32(1.0 / 20.0)
        np.power(np.float32(10.0), g, out=g)
        np.matmul(g, self._syn_t, out=self._kG)
        np.copyto(self._kcG, self._kG, casting="unsafe")
        for ch in range(self.ctx.channels):
            np.multiply(spec[ch, :fc], self._kcG[:fc], out=spec[ch, :fc])

    def _rebuilt_want(self, fc):
        if not self._on:
            return
        a = np.float32(self.table.value[self._i_model])
        n = self._jn
        w, rd = self._want[:n], self._rule_db[:n]
        np.add(w, np.float32(1e-30), out=rd)
        np.log10(rd, out=rd)
        rd *= np.float32(10.0 * (1.0 - a))
        nd = self._net_db[:n]
        t = self._tmp_db[:n]
        np.add(nd, np.float32(self.table.value[self._i_level]), out=t)
        t *= a
        rd += t  # the blend, dB
        rd *= np.float32(0.1)
        np.power(np.float32(10.0), rd, out=w)
