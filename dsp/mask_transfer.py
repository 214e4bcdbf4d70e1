"""Mask transfer: impose a reference clip's band envelopes on the input, looping.

A reference (a user clip loaded as the sidechain, or one of the built-in synthetic loops) is
analysed once, off the audio thread, into a sequence of ERB band envelopes at the section's frame
rate (5 ms hop, 20 ms window, 32 ERB bands of :class:`~resculpt.dsp.bands.BandMap`, so the
sequence means the same thing at every sample rate). Each band's amplitude envelope is normalised
to its own peak over the clip (0 dB), with at most ``MAX_BOOST_DB`` of lift relative to the loudest
band so a band that is near-silent in the whole reference stays closed instead of amplifying its
noise floor. The result, a (frames, bands) table of mask levels in dB <= 0, is published to the
audio thread by one reference store.

Per frame the stage reads the table at a fractional position (linear interpolation between
frames), clamps it at ``xmask.floor_db``, scales it by ``xmask.depth`` (0 = no effect, 1 = the full
envelope), turns it into band gains and interpolates them onto bins. The position advances by
``xmask.rate_x`` frames per frame (1 = the reference's own tempo, 2 = twice as fast) and wraps, so
the reference loops for ever. Streaming == offline: the position is a function of the frame count
since reset() only.

Sources (``xmask.source``): ``beat`` (a synthetic 120 bpm two-bar drum loop: kick, snare, hats),
``vowels`` (a synthetic 110 Hz voice gliding through a-e-i-o-u), ``sidechain`` (a clip's
:class:`SidechainEnvelopes` published to the stage's inbox, ``Chain.set_sidechain`` on a chain; the
stage passes audio through unchanged until one is published).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .bands import N_BANDS, BandMap
from .inbox import Inbox
from .params import ParamSpec
from .spectral_util import apply_gain
from .stft import SpectralStage, sqrt_hann_pair

HOP_MS = 5.0
WINDOW_MS = 20.0
MAX_BOOST_DB = 40.0
MIN_DB = -120.0
SOURCES = ("beat", "vowels", "sidechain")

PARAMS = (
    ParamSpec("xmask.source", 0.0, 2.0, 0.0, "", scale="choice", smoothing_ms=0.0,
              doc="which reference imposes its envelopes: built-in beat, built-in vowels, or the loaded sidechain",
              choices=SOURCES),
    ParamSpec("xmask.depth", 0.0, 1.0, 1.0, "", smoothing_ms=30.0,
              doc="0 = no effect, 1 = the reference's full band envelopes"),
    ParamSpec("xmask.rate_x", 0.125, 8.0, 1.0, "x", scale="log", smoothing_ms=30.0,
              doc="playback speed of the reference loop (1 = its own tempo)"),
    ParamSpec("xmask.floor_db", -80.0, 0.0, -40.0, "dB", smoothing_ms=30.0,
              doc="deepest cut the mask applies (where the reference is silent)"),
)


def analyse_reference(x: np.ndarray, sample_rate: int, n_bands: int = N_BANDS) -> np.ndarray:
    """Band envelope mask of a looping reference clip (control thread; allocates freely).

    Args:
        x: (n,) or (channels, n) audio, any float dtype; channels are averaged.
        sample_rate: Hz of ``x``.
    Returns:
        (frames, n_bands) float32 mask levels in dB (<= 0, >= MIN_DB), one frame per 5 ms.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"reference audio must be (n,) or (channels, n), got shape {np.shape(x)}")
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    hop = max(1, round(HOP_MS * 1e-3 * sample_rate))
    n_fft = hop * round(WINDOW_MS / HOP_MS)
    if x.size < n_fft:
        raise ValueError(f"reference clip too short: {x.size} samples, need at least {n_fft}")
    win, _ = sqrt_hann_pair(n_fft, hop)
    # Circular analysis: the clip loops, so the frames across the seam see its end then its start,
    # and the loop is exactly len // hop frames long (its own duration, no drift against a tempo).
    n_frames = x.size // hop
    x = np.concatenate([x, x[: n_fft]])
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(x[idx] * win, axis=-1)
    power = spec.real ** 2 + spec.imag ** 2
    bm = BandMap(sample_rate, n_fft, n_bands)
    band = bm.band_power(power.astype(np.float32)).astype(np.float64)  # (frames, bands)
    amp = np.sqrt(np.maximum(band, 0.0))
    peak = amp.max(axis=0)
    loudest = float(peak.max()) if peak.size else 0.0
    if loudest <= 0.0:
        return np.full((n_frames, n_bands), MIN_DB, np.float32)
    norm = np.maximum(peak, loudest * 10.0 ** (-MAX_BOOST_DB / 20.0))
    db = 20.0 * np.log10(np.maximum(amp / norm, 10.0 ** (MIN_DB / 20.0)))
    db[:, ~bm.valid] = 0.0  # bands above the reference's Nyquist: no information, no cut
    return np.clip(db, MIN_DB, 0.0).astype(np.float32)


@dataclass(frozen=True)
class SidechainEnvelopes:
    """A sidechain clip analysed for the ``sidechain`` source (built on a control thread, read-only).

    Attributes:
        db: (frames, 32) float32, read-only: :func:`analyse_reference`'s mask levels, one frame per 5 ms.
    """

    db: np.ndarray

    def __post_init__(self):
        if self.db.ndim != 2 or self.db.shape[1] != N_BANDS or self.db.shape[0] < 1 or self.db.flags.writeable:
            raise ValueError(f"sidechain envelopes must be a read-only (frames, {N_BANDS}) array, got {self.db.shape}")

    @classmethod
    def from_audio(cls, x: np.ndarray, sample_rate: int) -> "SidechainEnvelopes":
        """Analyse reference audio (n,) or (channels, n) at ``sample_rate`` Hz (allocates freely)."""
        return cls.from_table(analyse_reference(x, sample_rate))

    @classmethod
    def from_table(cls, db) -> "SidechainEnvelopes":
        """From an analysed (frames, 32) dB table (copied, made read-only)."""
        db = np.array(db, dtype=np.float32)
        db.setflags(write=False)
        return cls(db)


def _env(n, sr, attack_s, decay_s):
    t = np.arange(n) / sr
    return np.minimum(t / max(attack_s, 1e-6), 1.0) * np.exp(-t / decay_s)


def _fft_filter(x: np.ndarray, sr: int, response) -> np.ndarray:
    """Filter x by a frequency response (callable of the rfft frequencies in Hz -> complex/real
    gains), as one circular convolution. numpy only: importing scipy.signal costs ~1.5 s."""
    f = np.fft.rfftfreq(x.size, 1.0 / sr)
    return np.fft.irfft(np.fft.rfft(x) * response(f), n=x.size)


def _band(lo_hz, hi_hz, order=4):
    """Magnitude of a Butterworth-like band (high-pass at lo_hz, low-pass at hi_hz; None = open)."""
    def resp(f):
        g = np.ones_like(f)
        if lo_hz:
            g /= np.sqrt(1.0 + (lo_hz / np.maximum(f, 1e-3)) ** (2 * order))
        if hi_hz:
            g /= np.sqrt(1.0 + (f / hi_hz) ** (2 * order))
        return g
    return resp


def _resonator(f0_hz, bw_hz, sr):
    """Complex response of a two-pole resonator (1 - r) / (1 - 2 r cos(w0) z^-1 + r^2 z^-2)."""
    r = math.exp(-math.pi * bw_hz / sr)
    c = 2.0 * r * math.cos(2.0 * math.pi * f0_hz / sr)

    def resp(f):
        z1 = np.exp(-2j * np.pi * f / sr)
        return (1.0 - r) / (1.0 - c * z1 + r * r * z1 * z1)
    return resp


def synthetic_reference(kind: str, sample_rate: int = 48000) -> np.ndarray:
    """A deterministic built-in reference clip (mono float64), generated, never loaded.

    ``beat``: 4 s, 120 bpm, two bars of 4/4: kick on beats 1 and 3, snare on 2 and 4, closed hats
    on every eighth. ``vowels``: 2 s of a 110 Hz pulse voice through a-e-i-o-u formants (400 ms each).
    """
    rng = np.random.default_rng(1234)
    sr = int(sample_rate)
    if kind == "beat":
        n = 4 * sr
        y = np.zeros(n)
        eighth = sr // 4  # 120 bpm: a beat is 0.5 s, an eighth 0.25 s
        for k in range(16):
            t0 = k * eighth
            m = min(n - t0, sr // 2)
            t = np.arange(m) / sr
            if k % 4 == 0:  # kick: pitch-dropping sine
                f = 50.0 + 90.0 * np.exp(-t / 0.03)
                y[t0 : t0 + m] += 0.9 * np.sin(2 * np.pi * np.cumsum(f) / sr) * _env(m, sr, 0.002, 0.12)
            if k % 4 == 2:  # snare: band-passed noise and a 190 Hz body
                nz = _fft_filter(rng.standard_normal(m), sr, _band(300.0, 5000.0, 2))
                y[t0 : t0 + m] += (0.5 * nz + 0.3 * np.sin(2 * np.pi * 190.0 * t)) * _env(m, sr, 0.001, 0.08)
            hat = _fft_filter(rng.standard_normal(m), sr, _band(7000.0, None, 2))  # hats on every eighth
            y[t0 : t0 + m] += 0.25 * hat * _env(m, sr, 0.0005, 0.025)
        return y / max(1e-9, np.abs(y).max()) * 0.9
    if kind == "vowels":
        formants = ((800, 1150, 2900), (400, 1600, 2700), (300, 2300, 3000), (450, 800, 2830), (325, 700, 2700))
        seg = int(0.4 * sr)
        t = np.arange(seg) / sr
        src = np.zeros(seg)
        src[:: max(1, round(sr / 110.0))] = 1.0
        src += 0.02 * rng.standard_normal(seg)
        out = []
        for fs in formants:
            v = np.zeros(seg)
            for j, f in enumerate(fs):
                if f >= sr / 2 - 100:
                    continue
                v += _fft_filter(src, sr, _resonator(f, 80.0 + 40.0 * j, sr)) / (1 + j)
            v *= np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.03)  # 30 ms fades between vowels
            out.append(v)
        y = np.concatenate(out)
        return y / max(1e-9, np.abs(y).max()) * 0.9
    raise ValueError(f"unknown synthetic reference {kind!r}; choose beat or vowels")


@functools.lru_cache(maxsize=4)
def builtin_mask(kind: str) -> np.ndarray:
    """The analysed mask of a built-in source (computed once per process at 48 kHz; read-only)."""
    m = analyse_reference(synthetic_reference(kind, 48000), 48000)
    m.setflags(write=False)
    return m


class MaskTransfer(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread).

    The ``sidechain`` source reads the :class:`SidechainEnvelopes` in ``self.inbox``.
    """

    name = "xmask"
    inbox_type = SidechainEnvelopes

    def __init__(self, table, inbox: Inbox | None = None):
        self.table = table
        self.inbox = inbox if inbox is not None else Inbox(SidechainEnvelopes)
        self._i_src, self._i_depth, self._i_rate, self._i_floor = (table.index(p.id) for p in PARAMS)
        self._builtin = (builtin_mask("beat"), builtin_mask("vowels"))

    # -- lifecycle ------------------------------------------------------------------------------
    def prepare(self, ctx):
        super().prepare(ctx)
        self._bm = BandMap(ctx.sample_rate, ctx.n_fft, N_BANDS)
        self._band = np.zeros(N_BANDS, np.float64)
        self._band2 = np.zeros(N_BANDS, np.float64)
        self._bandf = np.zeros(N_BANDS, np.float32)
        self._gain = np.zeros(ctx.n_bins, np.float32)
        self._cbuf = np.zeros((ctx.channels, ctx.n_bins), np.complex64)
        self.reset()

    def reset(self):
        self.pos = 0.0

    def process_frame(self, spec):
        v = self.table.value
        src = int(v[self._i_src])
        if src < len(self._builtin):
            m = self._builtin[src]
        else:
            side = self.inbox.value
            if side is None:
                return
            m = side.db
        n = m.shape[0]
        pos = self.pos % n
        i0 = int(pos)
        f = pos - i0
        i1 = i0 + 1 if i0 + 1 < n else 0
        b = self._band
        np.multiply(m[i0], 1.0 - f, out=b)
        np.multiply(m[i1], f, out=self._band2)
        b += self._band2
        np.maximum(b, float(v[self._i_floor]), out=b)
        b *= float(v[self._i_depth]) * (math.log(10.0) / 20.0)
        np.exp(b, out=b)
        np.copyto(self._bandf, b, casting="same_kind")
        self._bm.bin_gains(self._bandf, out=self._gain)
        apply_gain(spec, self._gain, self._cbuf)
        self.pos = (pos + float(v[self._i_rate])) % n
