"""Per-band level dynamics of a voice normalised onto the average speaker's (the anon stage's ``anon.dynamics_pct``).

A speaker-verification network reads more than a voice's long-term spectrum: how far each band's level swings
over time (how strong the fricatives are against the vowels, how much the low band moves with the syllables) is
the speaker's too. With every other normalisation of the anon stage in place, replacing each utterance's per-band
mean and spread of level by pooled ones in Resemblyzer's own input (an oracle edit: scripts/anon_mel_probe.py,
benchmarks/results/anon_mel_probe.md) was the largest single edit measured against the lazy-informed attacker.
This is its causal, audio-domain form, per channel and per 5 ms frame, after the stage's other steps:

1. the frame's power in ``BANDS`` triangular mel bands (``LO_HZ`` .. ``HI_HZ``, the same bands at every
   sample rate), in dB: L_b;
2. while the frame is speech (the stage's pause test: within ``anon.PAUSE_DB`` of the speaker's median voiced
   level), the band's running mean m_b and variance v_b of L_b: a cumulative mean over the first frames, seeded
   with ``PRIOR_FRAMES`` frames of the targets (so nothing moves before the stage has heard the speaker), then an
   exponential one of ``TAU_S``;
3. the band's target level T_b + (L_b - m_b) r_b, r_b = S_b / sqrt(v_b) limited to ``RATIO``: the band's
   swing scaled to the average speaker's spread S_b, around a long-term shape T_b = the average speaker's
   (``POP_DB``) tilted by the pseudo-speaker's tilt above 500 Hz, at the speaker's own level (T's mean over the
   bands is m's);
4. the correction (target - L_b) limited to +-``max_db`` (the stage's ``anon.dynamics_range_db``; ``MAX_DB`` by
   default), times the share, spread onto the bins by the bands' triangles (below the first band's centre the
   first band's, above the last one's the last band's) and applied as a real gain.

With ``split`` (the stage's ``anon.split_pct``), step 3's swing on speech frames is, for that share, not the
input's deviation scaled but the learned content/speaker split's z-scores (level_split.py: the same frame's
content rendered in the average speaker's level movement) times S_b. In the bands centred within ``MID_HZ``
(1-4 kHz: F2, F3 and most consonant cues) only ``mid`` (the stage's ``anon.split_mid_pct``) of that share is the
split's and the rest is the speaker's own deviation L_b - m_b, not scaled: there the decoder's rendering costs the
most words and hides little of the speaker, and the swing scaled to S_b costs naturalness (docs/anonymization.md,
"The split's share in the mid bands").

The decoder renders the average speaker's movement, but not exactly at mean 0 and spread 1: over a 2.8 s chunk
each band's z-scores keep an offset (0.30 of a spread from chunk to chunk, 3.6-4.8 dB once scaled by S_b) and
a spread of about 0.8 (scripts/anon_band_means.py --view split). With the offset removed the output's
long-term band levels land closer to the target shape and an attacker's long-term band statistics read less of
the speaker (docs/anonymization.md, "What the split's decoder keeps"). From running statistics of the z-scores
over speech frames (``_update``: the same prior and ``TAU_S`` as step 2), ``center`` (the stage's
``anon.split_center_pct``) removes that share of their running mean and ``spread`` (``anon.split_spread_pct``)
scales that share of them to unit running spread:
z' = (z - center m) (1 + spread (1 / sqrt(v) - 1)).

Pauses (frames the stage's pause test does not count as speech) take only the cuts of the long-term part: a
band the speaker has weaker than the target is lifted on speech, but the room tone and the transformation's
residue between phrases are not lifted with it (up to ``max_db`` of hiss in the highs of a dark voice, which is
what DNSMOS's background score heard). ``pause_cut_db`` (the stage's ``anon.pause_cut_db``) lowers pauses by that
much more once a pause has lasted ``PAUSE_HOLD_S`` (the pause test is a level test: a weak consonant inside a word,
/f/ or /th/ often more than 12 dB under the vowels, also fails it, and is over within that hold), closing over
``PAUSE_CLOSE_S`` and opening at once on the first speech frame, so a word's onset is never cut.

Each band's noise floor (``_floor``, stepped on every frame while either option below is on, and started afresh,
as at the stream's start, on the first frame after one it was not stepped on): the band's power
averaged over ``FLOOR_SMOOTH_S``, in dB, at its lowest over the last ``FLOOR_WIN_S`` (kept as the minima of
``FLOOR_PARTS`` parts); minimum statistics in the step's own bands, of the signal it is given (the stage's output
so far). ``sub_db`` (the stage's ``anon.floor_sub_db``) subtracts that floor's power, over-estimated by ``sub_db``,
from every frame (``_subtract``: at most ``SUB_MIN_DB``), after the pause rule. ``lift_snr_db``
(``anon.lift_snr_db``) limits a band's lift to its level's excess over the floor less that margin (``_lift_cap``): a
band that is noise in a frame is not lifted with the voice's weak bands. What each costs and buys:
docs/anonymization.md, "The noise floor under the voice".

``POP_DB`` and ``POP_STD_DB`` are the mean and the spread of L_b over speech frames of 48 LibriSpeech train
speakers (scripts/build_anon_dynamics.py prints them; no validation speaker).
"""

from __future__ import annotations

import math

import numpy as np

from . import level_split

BANDS = 32
LO_HZ, HI_HZ = 50.0, 8000.0
TAU_S = 1.0            # the running statistics' time constant once settled
PRIOR_FRAMES = 40.0    # the targets' weight at the start, in frames (0.2 s at the 5 ms hop)
RATIO = (0.5, 1.5)     # limits of the swing's scaling
MAX_DB = 12.0          # the correction's default limit either way, dB
FLOOR_DB = 100.0       # a band's level is read no lower than this under the frame's loudest band
FLOOR = 10.0 ** (-FLOOR_DB / 10.0)
TILT_FROM_HZ = 500.0
PAUSE_HOLD_S = 0.1     # a pause this long before the pause cut starts closing
PAUSE_CLOSE_S = 0.02   # time constant of the pause cut closing (opening is immediate)
FLOOR_WIN_S = 1.6      # the noise floor is the lowest band level of this past stretch ...
FLOOR_PARTS = 8        # ... kept as the minima of this many equal parts (a new part replaces the oldest)
SUB_MIN_DB = -8.0      # the floor subtraction's deepest cut, dB
FLOOR_SMOOTH_S = 0.02  # the band powers the floor tracker reads are averaged over this (a one-frame dip is no floor)
# Mean (level arbitrary) and standard deviation (dB) of each band's level over speech frames of the average
# speaker: scripts/build_anon_dynamics.py --speakers 48.
POP_DB = (12.4, 14.4, 13.9, 12.3, 11.1, 10.2, 8.1, 4.9, 2.5, 0.9, 0.1, -1.0, -1.2, -0.7, -0.3, -0.4, -1.0, -1.7, -1.9, -1.8, -1.9, -2.7, -3.6, -3.8, -4.4, -5.8, -7.2, -8.6, -9.6, -10.3, -11.1, -12.1)
POP_STD_DB = (11.74, 14.39, 15.14, 15.27, 15.79, 15.84, 15.70, 15.26, 14.66, 14.01, 13.52, 13.37, 13.15, 12.90, 13.09, 13.06, 12.68, 12.43, 12.57, 12.76, 12.61, 12.40, 12.54, 12.65, 12.49, 12.65, 12.62, 12.59, 12.44, 12.13, 11.98, 11.81)


def band_edges_hz(lo: float = LO_HZ, hi: float = HI_HZ, n: int = BANDS) -> np.ndarray:
    """(n + 2,) the triangles' edges: equally spaced in mel (2595 log10(1 + f / 700)), lo .. hi."""
    m = np.linspace(2595.0 * math.log10(1.0 + lo / 700.0), 2595.0 * math.log10(1.0 + hi / 700.0), n + 2)
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def band_weights(freqs_hz: np.ndarray) -> np.ndarray:
    """(BANDS, n_bins) float32 triangles over the bins at ``freqs_hz`` (bins past HI_HZ get none)."""
    e = band_edges_hz()
    f = np.asarray(freqs_hz, np.float64)
    w = np.zeros((BANDS, len(f)), np.float64)
    for b in range(BANDS):
        up = (f - e[b]) / (e[b + 1] - e[b])
        down = (e[b + 2] - f) / (e[b + 2] - e[b + 1])
        w[b] = np.clip(np.minimum(up, down), 0.0, None)
    return w.astype(np.float32)


def spread_weights(freqs_hz: np.ndarray) -> np.ndarray:
    """(n_bins, BANDS) float32: each bin's share of each band's correction (rows sum to 1): linear in Hz between
    the two band centres around it; below the first centre the first band, above the last the last."""
    e = band_edges_hz()
    c = e[1:-1]
    f = np.asarray(freqs_hz, np.float64)
    s = np.zeros((len(f), BANDS), np.float64)
    j = np.clip(np.searchsorted(c, f) - 1, 0, BANDS - 2)
    t = np.clip((f - c[j]) / (c[j + 1] - c[j]), 0.0, 1.0)
    s[np.arange(len(f)), j] = 1.0 - t
    s[np.arange(len(f)), j + 1] += t
    return s.astype(np.float32)


MID_HZ = (1000.0, 4000.0)  # band centres where anon.split_mid_pct divides the split's share (F2, F3, consonant cues)


class BandDynamics:
    """process(row, ch, share, tilt, speech, split): row (n_bins,) complex64, edited in place (audio thread).
    ``split_weights`` (level_split.Weights, loaded on the control thread) enables ``split`` > 0: the share of
    the speech frames' level movement taken from the learned content/speaker split (level_split.py) instead of
    the input's own, scaled."""

    def __init__(self, freqs_hz: np.ndarray, channels: int, frame_rate_hz: float, split_weights=None):
        self._w = band_weights(freqs_hz)
        self._s = spread_weights(freqs_hz)
        c = band_edges_hz()[1:-1]
        self._oct = np.log2(np.maximum(c, TILT_FROM_HZ) / TILT_FROM_HZ).astype(np.float32)
        self._in_mid = (c >= MID_HZ[0]) & (c < MID_HZ[1])
        self._sw = np.zeros(BANDS, np.float32)    # the split's rendering's share per band
        self._so = np.zeros(BANDS, np.float32)    # the speaker's own swing's share (the mid bands' rest)
        self._dr = np.zeros(BANDS, np.float32)    # the frame's deviation L - m before scaling
        self._sw_split = self._sw_mid = math.nan   # the (split, mid) the shares were computed for
        pop = np.asarray(POP_DB, np.float32)
        self._pop = pop - pop.mean()
        self._std = np.asarray(POP_STD_DB, np.float32)
        self._a = 1.0 - math.exp(-1.0 / (TAU_S * frame_rate_hz))
        nb = len(freqs_hz)
        self._mean = np.zeros((channels, BANDS), np.float32)
        self._var = np.zeros((channels, BANDS), np.float32)
        self._n = np.zeros(channels, np.float64)
        self._p = np.zeros(nb, np.float32)
        self._L = np.zeros(BANDS, np.float32)
        self._d = np.zeros(BANDS, np.float32)
        self._r = np.zeros(BANDS, np.float32)
        self._t = np.zeros(BANDS, np.float32)
        self._tilt = math.nan
        self._tgt = np.zeros(BANDS, np.float32)   # T less its mean: the target shape
        self._g = np.zeros(nb, np.float32)
        self._gc = np.zeros(nb, np.complex64)  # the gain as complex: a mixed-dtype multiply buffers its operand
        self._lo, self._hi = np.full((), -MAX_DB, np.float32), np.full((), MAX_DB, np.float32)
        self._max_db = MAX_DB
        self._rlo, self._rhi = np.float32(RATIO[0]), np.float32(RATIO[1])
        self._tiny = np.float32(1e-20)
        self._f = np.zeros((), np.float32)
        self._net = None if split_weights is None else level_split.SplitNet(split_weights, channels)
        self._fin = np.zeros(level_split.N_IN, np.float32)
        self._ftmp = np.zeros(BANDS, np.float32)
        self._zh = np.zeros(BANDS, np.float32)
        self._zm = np.zeros((channels, BANDS), np.float32)   # the z-scores' running mean and variance
        self._zv = np.ones((channels, BANDS), np.float32)
        self._zn = np.zeros(channels, np.float64)
        self._zd = np.zeros(BANDS, np.float32)
        self._zt = np.zeros(BANDS, np.float32)
        self._zk = np.zeros((), np.float32)
        self._f32_1 = np.float32(1.0)
        self._zfloor = np.float32(0.01)   # a z-score's spread read no lower than this (a band the decoder holds still)
        self._pc = np.zeros(channels, np.float64)          # the pause cut reached, dB
        self._pa = 1.0 - math.exp(-1.0 / (PAUSE_CLOSE_S * frame_rate_hz))
        self._ph = np.zeros(channels, np.int64)            # consecutive pause frames
        self._hold = int(round(PAUSE_HOLD_S * frame_rate_hz))
        self._zero = np.float32(0.0)
        self._nf = np.zeros((channels, BANDS), np.float32)   # each band's noise floor, dB (module doc)
        self._nfn = np.zeros(channels, np.int64)
        self._part = max(1, int(round(FLOOR_WIN_S * frame_rate_hz / FLOOR_PARTS)))   # frames per part
        self._mins = np.zeros((channels, FLOOR_PARTS, BANDS), np.float32)   # each part's minimum, dB
        self._u = np.zeros(BANDS, np.float32)
        self._submin = np.float32(10.0 ** (SUB_MIN_DB / 10.0))
        self._ps = np.zeros((channels, BANDS), np.float32)   # band powers averaged over FLOOR_SMOOTH_S
        self._psa = np.float32(1.0 - math.exp(-1.0 / (FLOOR_SMOOTH_S * frame_rate_hz)))
        self.reset()

    def reset(self) -> None:
        self._n.fill(0.0)
        self._mean.fill(0.0)
        self._var.fill(0.0)
        self._zm.fill(0.0)
        self._zv.fill(1.0)
        self._zn.fill(0.0)
        self._pc.fill(0.0)
        self._ph.fill(0)
        self._nf.fill(0.0)
        self._nfn.fill(0)
        self._ps.fill(0.0)
        self._mins.fill(0.0)
        if self._net is not None:
            self._net.reset()

    def _split_shares(self, split: float, mid: float) -> None:
        """Each band's shares of the speech swing's ``split`` part, into the preallocated ``_sw`` (the split's
        rendering: ``split``, times ``mid`` in the mid bands) and ``_so`` (the speaker's own deviation: the rest of
        ``split`` in the mid bands, 0 elsewhere); the scaled deviation keeps 1 - ``split`` in every band."""
        for b in range(BANDS):
            w = split * (mid if self._in_mid[b] else 1.0)
            self._sw[b] = w
            self._so[b] = split - w
        self._sw_split, self._sw_mid = split, mid

    def _update(self, x, m, v, n: float, d, t, k_buf) -> float:
        """One step of the running statistics of x (BANDS,): mean m and variance v updated in place after n
        steps (a cumulative mean weighted against the prior's PRIOR_FRAMES, then exponential at TAU_S);
        d, t (BANDS,) and k_buf (0-d) are scratch. Returns n + 1."""
        k = max(1.0 / (PRIOR_FRAMES + n + 1.0), self._a)
        k_buf[...] = k
        np.subtract(x, m, out=d)
        np.multiply(d, k_buf, out=t)
        m += t                                   # m += k d
        np.multiply(d, d, out=t)
        t *= k_buf
        v += t
        v *= np.float32(1.0 - k)                 # v = (1 - k)(v + k d^2)
        return n + 1.0

    def _split_step(self, split: float, ch: int, valid: bool, speech: bool, center: float = 0.0,
                    spread: float = 0.0) -> None:
        """Advance the split net by this frame (every frame while ``split`` > 0, so its state follows the
        input; a frame without statistics yet feeds zeros): its z-scores into self._zh; on speech frames,
        ``center`` and ``spread`` standardise them by their running statistics (module doc)."""
        if split > 0.0 and self._net is not None:
            level_split.features(self._L, self._mean[ch], self._var[ch], valid, speech, self._fin, self._ftmp)
            self._net.step(self._fin, ch, self._zh)
            if (center > 0.0 or spread > 0.0) and valid and speech:
                self._standardise(ch, center, spread)

    def _standardise(self, ch: int, center: float, spread: float) -> None:
        """A speech frame's z-scores in self._zh: update their running mean and variance (channel ``ch``), then
        z' = (z - center m) (1 + spread (1 / sqrt(v) - 1)) in place."""
        z, m, v, d, t = self._zh, self._zm[ch], self._zv[ch], self._zd, self._zt
        self._zn[ch] = self._update(z, m, v, self._zn[ch], d, t, self._zk)
        if center > 0.0:
            np.multiply(m, np.float32(center), out=d)
            z -= d
        if spread > 0.0:
            np.sqrt(v, out=t)
            np.maximum(t, self._zfloor, out=t)
            np.divide(self._f32_1, t, out=t)
            t -= self._f32_1
            t *= np.float32(spread)
            t += self._f32_1
            z *= t

    def _pauses(self, t: np.ndarray, ch: int, speech: bool, cut_db: float, advance: bool = True) -> None:
        """The correction t (BANDS,) dB, after its range, in place: on a pause only its cuts, less the pause cut
        reached (after PAUSE_HOLD_S of pause, closing toward ``cut_db`` at PAUSE_CLOSE_S; a speech frame opens it
        at once and is left as is). ``advance`` False: apply the cut this frame already reached without stepping
        the hold and the cut again (a caller that ran process() on the same frame first)."""
        if advance:
            if speech:
                self._pc[ch] = 0.0
                self._ph[ch] = 0
            else:
                self._ph[ch] += 1
                if self._ph[ch] > self._hold:
                    self._pc[ch] += self._pa * (cut_db - self._pc[ch])
        if speech:
            return
        np.minimum(t, self._zero, out=t)
        if self._pc[ch] > 1e-3:
            t -= np.float32(self._pc[ch])

    def _floor(self, ch: int) -> None:
        """Step channel ``ch``'s noise floor per band (dB, self._nf) on this frame's band powers self._L (linear):
        the lowest of their average over FLOOR_SMOOTH_S, in dB, over the last FLOOR_WIN_S (minimum statistics:
        a steady noise is read at once and a louder one within FLOOR_WIN_S; speech, never that long without a
        dip in every band, does not lift it). The window is FLOOR_PARTS parts, each part's minimum kept."""
        ps, nf, u, mins = self._ps[ch], self._nf[ch], self._u, self._mins[ch]
        k = int(self._nfn[ch])
        if k == 0:
            np.copyto(ps, self._L)
        else:
            np.subtract(self._L, ps, out=u)
            u *= self._psa
            ps += u
        np.log10(ps, out=u)
        u *= np.float32(10.0)
        j = (k // self._part) % FLOOR_PARTS
        if k % self._part == 0:
            np.copyto(mins[j], u)            # a new part, in the oldest one's place
        else:
            np.minimum(mins[j], u, out=mins[j])
        np.copyto(nf, mins[0])
        # the first window's parts not yet heard stay out
        for i in range(1, min(FLOOR_PARTS, k // self._part + 1)):
            np.minimum(nf, mins[i], out=nf)
        self._nfn[ch] = k + 1

    def _lift_cap(self, t: np.ndarray, ch: int, snr_db: float) -> None:
        """The correction t (BANDS,) dB in place: a band lifts by at most its level's excess over its noise floor
        plus ``snr_db`` (a band within ``snr_db`` of its floor is noise there and is not lifted; cuts untouched)."""
        u = self._u
        np.subtract(self._L, self._nf[ch], out=u)
        u -= np.float32(snr_db)
        np.maximum(u, self._zero, out=u)
        np.minimum(t, u, out=t)

    def _subtract(self, t: np.ndarray, ch: int, over_db: float) -> None:
        """The correction t (BANDS,) dB in place, less a power subtraction of the band's noise floor over-estimated
        by ``over_db``: 10 log10(max(1 - 10^((over_db - e) / 10), SUB_MIN)), e the band's excess over its floor."""
        u = self._u
        np.subtract(self._nf[ch], self._L, out=u)
        u += np.float32(over_db)
        u *= np.float32(0.1)
        np.power(np.float32(10.0), u, out=u)
        np.subtract(self._f32_1, u, out=u)
        np.maximum(u, self._submin, out=u)
        np.log10(u, out=u)
        u *= np.float32(10.0)
        t += u

    def process(self, row: np.ndarray, ch: int, share: float, tilt: float, speech: bool,
                split: float = 0.0, max_db: float = MAX_DB, center: float = 0.0, spread: float = 0.0,
                pause_cut_db: float = 0.0, lift_snr_db: float = 0.0, sub_db: float = 0.0,
                mid: float = 1.0) -> None:
        """One channel's frame row (n_bins,) complex64: the correction's ``share`` (0..1) applied in place.
        ``speech``: the frame is speech (it updates the statistics and takes the swing's scaling); other frames
        take the cuts of the long-term part of the correction only (a pause's noise is neither pulled up to the
        speech's swing nor lifted with a weak band), less ``pause_cut_db`` (dB, smoothed: module doc).
        ``split`` (0..1): on speech frames, that share of the swing is the split net's z-scores times the
        average speaker's spread instead of the input's deviation scaled (needs ``split_weights``). ``max_db``:
        the correction's limit either way, per band, before the share. ``center``, ``spread`` (0..1): the shares
        of the split's z-scores' running mean removed and of their running spread brought to 1 (module doc).
        ``mid`` (0..1): in the bands centred within ``MID_HZ`` this share of ``split`` is the split's and the rest
        the speaker's own deviation, not scaled (module doc)."""
        if max_db != self._max_db:
            self._max_db = max_db
            self._hi[...] = max_db
            self._lo[...] = -max_db
        if tilt != self._tilt:
            np.multiply(self._oct, np.float32(tilt), out=self._tgt)
            self._tgt += self._pop
            self._tgt -= self._tgt.mean()
            self._tilt = tilt
        L, d, r, t = self._L, self._d, self._r, self._t
        np.abs(row, out=self._p)
        np.multiply(self._p, self._p, out=self._p)
        np.dot(self._w, self._p, out=L)
        # An empty band (a shift up leaves the lowest bins at zero) reads FLOOR_DB under the frame's loudest
        # band, not under an absolute floor: the same frame at any level gives the same correction.
        self._f[...] = float(L.max()) * FLOOR + 1e-37
        L += self._f
        if (lift_snr_db > 0.0 or sub_db > 0.0) and math.isfinite(float(self._f)):
            self._floor(ch)
        else:
            self._nfn[ch] = 0    # restarts when next stepped: older minima would be up to FLOOR_WIN_S stale
        np.log10(L, out=L)
        L *= np.float32(10.0)
        lvl = float(L.mean())
        if not math.isfinite(lvl):
            self._split_step(split, ch, False, speech)
            return
        m, v = self._mean[ch], self._var[ch]
        n = self._n[ch]
        if speech:
            if n == 0.0:
                # the targets' statistics at the speaker's level, weighted as PRIOR_FRAMES frames
                np.add(self._tgt, np.float32(lvl), out=m)
                np.multiply(self._std, self._std, out=v)
            self._n[ch] = self._update(L, m, v, n, d, t, self._f)
        elif n == 0.0:
            self._split_step(split, ch, False, speech)
            return                                   # nothing heard of the speaker yet: no correction
        self._split_step(split, ch, True, speech, center, spread)
        # target: T + mean(m) + (L - m) r on speech frames, T + mean(m) - m + L (the long-term part) on others,
        # whose correction _pauses then limits to its cuts
        np.add(self._tgt, np.float32(m.mean()), out=t)
        np.subtract(L, m, out=d)
        if speech:
            np.sqrt(v, out=r)
            np.maximum(r, self._tiny, out=r)
            np.divide(self._std, r, out=r)
            np.clip(r, self._rlo, self._rhi, out=r)
            learned = split > 0.0 and self._net is not None
            if learned and mid < 1.0:
                np.copyto(self._dr, d)
            d *= r
            if learned:
                # d = (1 - split) d r + w zhat S + (split - w) d, w the split's share in each band: the learned
                # movement in the average speaker's spread, and in the mid bands the speaker's own for the rest
                if split != self._sw_split or mid != self._sw_mid:
                    self._split_shares(split, mid)
                d *= np.float32(1.0 - split)
                np.multiply(self._zh, self._std, out=r)
                r *= self._sw
                d += r
                if mid < 1.0:
                    self._dr *= self._so
                    d += self._dr
        t += d
        t -= L
        np.clip(t, self._lo, self._hi, out=t)
        if lift_snr_db > 0.0:
            self._lift_cap(t, ch, lift_snr_db)   # the floor was stepped above: this frame's levels are finite
        self._pauses(t, ch, speech, pause_cut_db)
        if sub_db > 0.0:
            self._subtract(t, ch, sub_db)     # after the pause rule: its cut adds to a pause's, not to a lift dropped there
        t *= np.float32(share * math.log(10.0) / 20.0)  # nepers
        np.dot(self._s, t, out=self._g)
        np.exp(self._g, out=self._g)
        np.copyto(self._gc, self._g)
        np.multiply(row, self._gc, out=row)
