"""A differentiable (torch) version of the fingerprint's measurable dimensions, for the profile loss.

It mirrors ``resculpt.dsp.profile.fingerprint`` (and the extractors of ``resculpt.dsp.features``) step by
step on the same frames (of the input through the analysers' 10 Hz DC blocker, applied as its frequency
response like the K-weighting below; the loudness figures read the input itself): 20 ms periodic sqrt-Hann analysis at a 5 ms hop, frame i ending at sample
(i + 1) * hop with zeros before the start; band PSD ``10 log10(BandMap.analysis @ |X|^2 / sum(w^2) + 1e-12)``;
active frames within 40 dB of the 95th-percentile frame level and above -70 dB; medians over active frames.

Covered (differentiable almost everywhere in the waveform):

==================  ======================================================================================
dim                 how
==================  ======================================================================================
band_env_db         mean band power over active frames, in dB; bands past the effective bandwidth
                    (``limit_bandwidth``) and above 0.45 x rate are masked, as they are NaN in numpy
centroid_hz         median (linear-interpolated, as ``np.median``) over active frames of the power-
                    weighted mean frequency over 80 Hz .. min(Nyquist, 20 kHz)
rolloff_hz          the same median of the 85 % roll-off, with each bin's power spread evenly over its
                    width (f_k +- df/2) so the crossing moves continuously; numpy takes the centre of the
                    first bin reaching 85 %: the two differ by at most half a bin (25 Hz at 20 ms)
tilt_db_oct         median of the least-squares slope of the band envelope vs log2(centre), 100 Hz..8 kHz
lufs_integrated     BS.1770-4: K-weighting applied as its exact frequency response on a zero-padded FFT
                    (equal to the time-domain biquads from zero state), 400 ms blocks every 100 ms,
                    absolute (-70 LUFS) and relative (-10 LU) gates; numpy quantises the relative gate to
                    its 0.05 LU histogram
lra_lu              EBU Tech 3342 on 3 s short-term blocks every 100 ms (gates -70 LUFS and -20 LU),
                    95th minus 10th percentile as the same order statistics numpy reads from its
                    histogram (the first value reaching 10 % / 95 % of the count; numpy reports its
                    0.05 LU bin centre)
crest_db            median over active frames of the 400 ms peak / RMS in dB, both about the window's mean
                    (peak through max)
==================  ======================================================================================

Not covered (NaN-masked in :func:`normalized` and skipped by :func:`distance`): ``f0_median_hz``,
``f0_range_st``, ``voiced_fraction``, ``hnr_db`` (YIN picks a lag by a thresholded argmin: no useful
gradient), ``f1_hz``..``f3_hz`` (LPC root picking: discontinuous in the signal) and ``onset_rate_hz`` (counts
of peak-picked events). A generator moves those through operators of their own, not through this loss.

Gates, active frames and the bandwidth limit are decisions (masks) computed without gradient; the values
they select carry it. Agreement with ``fingerprint`` on real clips is tested per dim
(``tests/test_resculpt_profile_loss.py``). Normalisation and distance follow ``dsp/profile.py``'s
``normalized`` and ``distance`` (same scales, weights, level-free band shape over ``compare_mask()``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from resculpt.dsp.bands import N_BANDS, BandMap
from resculpt.dsp.features.base import dc_block_sos
from resculpt.dsp.features.loudness import k_weighting_sos
from resculpt.dsp.profile import BAND_SCALE_DB, BAND_WEIGHT, DIM_BY_NAME, EMPTY_BELOW_DB, compare_mask
from resculpt.dsp.stft import get_config, sqrt_hann_pair

EPS = 1e-12
COVERED = ("centroid_hz", "rolloff_hz", "tilt_db_oct", "lufs_integrated", "lra_lu", "crest_db")
NOT_COVERED = ("f0_median_hz", "f0_range_st", "voiced_fraction", "f1_hz", "f2_hz", "f3_hz", "hnr_db",
               "onset_rate_hz")
M_HOPS, S_HOPS, STEP_HOPS = 80, 600, 20  # 400 ms, 3 s, 100 ms at the 5 ms hop (as dsp Loudness)


def _median(v: torch.Tensor, ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row median of v (B, T) over the entries where ok (B, T); (B,) values and (B,) defined flags."""
    out, defined = [], []
    for b in range(v.shape[0]):
        sel = v[b][ok[b]]
        defined.append(sel.numel() > 0)
        out.append(torch.quantile(sel, 0.5) if sel.numel() else v.new_zeros(()))
    return torch.stack(out), torch.tensor(defined)


class TorchProfiler:
    """Differentiable fingerprint dims of mono clips (B, n) at one sample rate (see the module doc)."""

    def __init__(self, sample_rate: int):
        sr = int(sample_rate)
        self.sr = sr
        self.n_fft, self.hop = get_config("default").sizes(sr)
        w = sqrt_hann_pair(self.n_fft, self.hop)[0].astype(np.float64)
        self.win = torch.tensor(w, dtype=torch.float32)
        self.norm = 1.0 / float(np.sum(w**2))
        bm = BandMap(sr, self.n_fft, N_BANDS)
        self.ana = torch.tensor(bm.analysis)  # (32, nb)
        self.valid = torch.tensor(bm.valid & (bm.centers_hz <= 0.45 * sr))
        f = np.arange(self.n_fft // 2 + 1) * sr / self.n_fft
        fsel = (f >= 80.0) & (f <= min(0.5 * sr, 20000.0))
        self.fsel = torch.tensor(fsel)
        self.f = torch.tensor(f[fsel], dtype=torch.float32)
        c = bm.centers_hz
        tsel = bm.valid & (c <= 0.45 * sr) & (c >= 100.0) & (c <= min(8000.0, 0.45 * sr))
        lx = np.log2(c[tsel])
        lx = lx - lx.mean()
        self.tsel = torch.tensor(tsel)
        self.tx = torch.tensor(lx / np.dot(lx, lx), dtype=torch.float32)
        self._resp = {}  # (filter, padded FFT length) -> frequency response (complex)

    # -- per-frame tracks ------------------------------------------------------------------------------
    def frames(self, x: torch.Tensor) -> dict:
        """Per-frame tracks of x (B, n): band_db (B, T, 32) (invalid bands hold their raw value), centroid,
        rolloff, tilt, level_db (B, T)."""
        xp = torch.nn.functional.pad(x, (self.n_fft - self.hop, 0))
        fr = xp.unfold(-1, self.n_fft, self.hop) * self.win
        s = torch.fft.rfft(fr, dim=-1)
        p = (s.real**2 + s.imag**2) * self.norm  # (B, T, nb)
        band = p @ self.ana.t() + EPS
        band_db = 10.0 * torch.log10(band)
        ps = p[..., self.fsel]
        tot = ps.sum(-1)
        defined = tot > EPS * ps.shape[-1] * 10
        tot_c = tot.clamp_min(1e-30)
        centroid = (ps * self.f).sum(-1) / tot_c
        cum = torch.cumsum(ps, -1)
        goal = 0.85 * tot_c
        k = torch.searchsorted(cum.detach().contiguous(), goal.detach().unsqueeze(-1).contiguous()).squeeze(-1)
        k = k.clamp(0, ps.shape[-1] - 1)
        km1 = (k - 1).clamp_min(0)
        c_hi = torch.gather(cum, -1, k.unsqueeze(-1)).squeeze(-1)
        c_lo = torch.where(k > 0, torch.gather(cum, -1, km1.unsqueeze(-1)).squeeze(-1), torch.zeros_like(c_hi))
        frac = ((goal - c_lo) / (c_hi - c_lo).clamp_min(1e-30)).clamp(0.0, 1.0)
        df = float(self.sr / self.n_fft)
        # each bin's power spread evenly over its width (f_k +- df/2): where the cumulative crosses 85 %
        rolloff = self.f[k] + (frac - 0.5) * df
        y = band_db[..., self.tsel]
        tilt = ((y - y.mean(-1, keepdim=True)) * self.tx).sum(-1)
        level = 10.0 * torch.log10((fr * fr).sum(-1) * self.norm + EPS)
        return {"band_db": band_db, "band": band, "centroid_hz": centroid, "rolloff_hz": rolloff,
                "tilt_db_oct": tilt, "level_db": level, "defined": defined}

    # -- loudness ---------------------------------------------------------------------------------------
    def _sos(self, x: torch.Tensor, name: str, sos) -> torch.Tensor:
        """x (B, n) through the IIR ``sos`` from zero state: its exact frequency response on an FFT with 1 s of zero
        padding (both filters here have decayed by far more than float32 resolution within 1 s)."""
        n = x.shape[-1]
        N = 1 << int(math.ceil(math.log2(n + self.sr)))
        if (name, N) not in self._resp:
            from scipy.signal import sosfreqz

            _, h = sosfreqz(sos(self.sr), worN=N // 2 + 1, whole=False, fs=self.sr)
            # sosfreqz's grid is k * (fs/2) / (N/2): the rfft bins of an N-point FFT
            self._resp[name, N] = torch.tensor(h, dtype=torch.complex64)
        return torch.fft.irfft(torch.fft.rfft(x, N) * self._resp[name, N], N)[..., :n]

    def k_weight(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, n) through the BS.1770 K-weighting filter from zero state."""
        return self._sos(x, "k", k_weighting_sos)

    def dc_block(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, n) through the analysers' DC blocker (``dsp.features.base.dc_block_sos``) from zero state."""
        return self._sos(x, "dc", dc_block_sos)

    def loudness(self, x: torch.Tensor) -> dict:
        """lufs_integrated, lra_lu, crest per hop; (B,) values and ok flags."""
        B, n = x.shape
        hop = self.hop
        T = n // hop
        y = self.k_weight(x)[:, : T * hop]
        e = (y * y).reshape(B, T, hop).sum(-1)  # K-weighted energy per hop
        ce = torch.cumsum(torch.nn.functional.pad(e, (S_HOPS, 0)), -1)  # zeros before the start

        def window_ms(nh):  # mean square over the newest nh hops ending at each hop h: (B, T)
            return (ce[:, S_HOPS:] - ce[:, S_HOPS - nh : S_HOPS - nh + T]) / (nh * hop)

        ms_m, ms_s = window_ms(M_HOPS), window_ms(S_HOPS)
        done = torch.arange(1, T + 1)
        blk = ((done % STEP_HOPS) == 0) & (done >= M_HOPS)
        st = ((done % STEP_HOPS) == 0) & (done >= S_HOPS)
        lufs_i, ok_i, lra, ok_r = [], [], [], []
        for b in range(B):
            m = ms_m[b][blk]
            with torch.no_grad():
                l = -0.691 + 10 * torch.log10(m.clamp_min(1e-30))
                keep = (m > 0) & (l > -70.0)
                gate = -0.691 + 10 * torch.log10(m[keep].mean()) - 10.0 if keep.any() else None
                if gate is not None:
                    keep = keep & (l >= gate)
            ok_i.append(bool(keep.any()))
            lufs_i.append(-0.691 + 10 * torch.log10(m[keep].mean()) if keep.any() else x.new_zeros(()))
            s = ms_s[b][st]
            with torch.no_grad():
                ls = -0.691 + 10 * torch.log10(s.clamp_min(1e-30))
                ks = (s > 0) & (ls > -70.0)
                if ks.any():
                    ks = ks & (ls >= -0.691 + 10 * torch.log10(s[ks].mean()) - 20.0)
            if int(ks.sum()) >= 2:
                lsv = torch.sort(-0.691 + 10 * torch.log10(s[ks])).values
                N = lsv.numel()  # the order statistics numpy's histogram reads: the first reaching q * N

                def rank(q):
                    return min(max(math.ceil(q * N - 1e-9) - 1, 0), N - 1)

                lra.append(lsv[rank(0.95)] - lsv[rank(0.10)])
                ok_r.append(True)
            else:
                lra.append(x.new_zeros(()))
                ok_r.append(bool(ks.any()))  # one block: numpy reports 0 LU
        # crest: unweighted peak over RMS of the last 400 ms, per hop, both about the window's mean m
        xr = x[:, : T * hop].reshape(B, T, hop)

        def last_400ms(v):  # sum over the newest M_HOPS hops ending at each hop (zeros before the start)
            c = torch.cumsum(torch.nn.functional.pad(v, (M_HOPS, 0)), -1)
            return (c[:, M_HOPS:] - c[:, :T]) / (M_HOPS * hop)

        def max_400ms(v):  # max over the newest M_HOPS hops (hops before the start count as 0)
            return torch.nn.functional.max_pool1d(torch.nn.functional.pad(v, (M_HOPS - 1, 0)).unsqueeze(1),
                                                  M_HOPS, 1).squeeze(1)

        m = last_400ms(xr.sum(-1))
        ms_ac = last_400ms((xr * xr).sum(-1)) - m * m
        pk = torch.maximum(max_400ms(xr.amax(-1)) - m, max_400ms(-xr.amin(-1)) + m)
        crest = 20 * torch.log10(pk.clamp_min(1e-30) / ms_ac.clamp_min(1e-30).sqrt())
        crest_ok = (ms_ac > 0) & (pk > 0)
        return {"lufs_integrated": torch.stack(lufs_i), "lufs_integrated_ok": torch.tensor(ok_i),
                "lra_lu": torch.stack(lra), "lra_lu_ok": torch.tensor(ok_r), "crest": crest, "crest_ok": crest_ok}

    # -- the fingerprint --------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> dict:
        """x (B, n) mono -> {"band_env_db": (B, 32), "band_env_ok": (B, 32) bool, and for each of
        :data:`COVERED` the value (B,) and "<dim>_ok" (B,) bool}."""
        if x.dim() == 1:
            x = x[None]
        fr = self.frames(self.dc_block(x))
        lv = fr["level_db"]
        with torch.no_grad():
            fin = torch.isfinite(lv)
            act = torch.zeros_like(lv, dtype=torch.bool)
            for b in range(lv.shape[0]):
                if fin[b].any():
                    top = torch.quantile(lv[b][fin[b]].double(), 0.95).float()
                    act[b] = fin[b] & (lv[b] > torch.maximum(top - 40.0, torch.tensor(-70.0)))
        n_act = act.sum(-1, keepdim=True).clamp_min(1)
        # (B, 32) mean power over active frames (>= EPS, as each frame's is); a row without active frames
        # is masked below, and the floor keeps log10's gradient there finite (0 through the mask, not 0 * inf)
        mean_band = ((fr["band"] * act.unsqueeze(-1)).sum(1) / n_act).clamp_min(EPS)
        env = 10.0 * torch.log10(mean_band)
        with torch.no_grad():
            ok = self.valid.unsqueeze(0) & act.any(-1, keepdim=True)
            e = torch.where(ok, env, torch.full_like(env, -math.inf))
            top = e.amax(-1, keepdim=True)
            live = ok & (env > top - EMPTY_BELOW_DB)
            idx = torch.arange(N_BANDS).expand_as(live)
            last = torch.where(live, idx, torch.full_like(idx, -1)).amax(-1, keepdim=True)
            ok = ok & (idx <= last)
        out = {"band_env_db": torch.where(ok, env, torch.zeros_like(env)), "band_env_ok": ok}
        sel = act & fr["defined"]
        for k in ("centroid_hz", "rolloff_hz", "tilt_db_oct"):
            out[k], out[k + "_ok"] = _median(fr[k], sel)
        ld = self.loudness(x)
        out["lufs_integrated"], out["lufs_integrated_ok"] = ld["lufs_integrated"], ld["lufs_integrated_ok"]
        out["lra_lu"], out["lra_lu_ok"] = ld["lra_lu"], ld["lra_lu_ok"]
        T = min(act.shape[1], ld["crest"].shape[1])
        out["crest_db"], out["crest_db_ok"] = _median(ld["crest"][:, :T], act[:, :T] & ld["crest_ok"][:, :T])
        return out


# -- normalisation and distance (as dsp/profile.py's normalized / distance) ----------------------------
def normalized(prof: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(z (B, len(COVERED)), ok (B, len(COVERED))): z = T(value) / scale per dim, T = log2 for frequencies."""
    zs, oks = [], []
    for k in COVERED:
        d = DIM_BY_NAME[k]
        v = prof[k]
        ok = prof[k + "_ok"].clone()
        if d.log:
            ok = ok & (v > 0)
            v = torch.log2(torch.where(ok, v, torch.ones_like(v)))
        zs.append(v / d.scale)
        oks.append(ok)
    return torch.stack(zs, -1), torch.stack(oks, -1)


def _compare_mask() -> torch.Tensor:
    return torch.tensor(compare_mask())


def band_shape_rms_db(a_env, a_ok, b_env, b_ok) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS (dB) of the level-free band difference over the compared bands both define (``band_distance_db``):
    (B,) values and (B,) ok flags."""
    m = (a_ok & b_ok & _compare_mask()).float()
    n = m.sum(-1)
    d = (a_env - b_env) * m
    mean = d.sum(-1) / n.clamp_min(1)
    r = ((d - mean.unsqueeze(-1)) * m) ** 2
    return torch.sqrt(r.sum(-1) / n.clamp_min(1) + 1e-12), n > 0


def squared_distance(a: dict, b: dict, weights: dict | None = None) -> torch.Tensor:
    """(B,) squared :func:`resculpt.dsp.profile.distance` over the covered dims both profiles define
    (the default weights, overridable by name; ``band_env_db`` for the envelope shape). Its square root is
    the distance; the square is what the loss uses (finite gradient at 0)."""
    w = {k: DIM_BY_NAME[k].weight for k in COVERED} | {"band_env_db": BAND_WEIGHT}
    w.update(weights or {})
    za, oa = normalized(a)
    zb, ob = normalized(b)
    wv = torch.tensor([w[k] for k in COVERED])
    ok = (oa & ob).float() * wv
    num = (ok * (za - zb) ** 2).sum(-1)
    den = ok.sum(-1)
    if w["band_env_db"] > 0:
        bd, bok = band_shape_rms_db(a["band_env_db"], a["band_env_ok"], b["band_env_db"], b["band_env_ok"])
        num = num + w["band_env_db"] * bok * (bd / BAND_SCALE_DB) ** 2
        den = den + w["band_env_db"] * bok
    return num / den.clamp_min(1e-9)


def distance(a: dict, b: dict, weights: dict | None = None) -> torch.Tensor:
    """(B,) profile distance over the covered dims (see :func:`squared_distance`)."""
    return torch.sqrt(squared_distance(a, b, weights) + 1e-12)


def apply_delta(prof: dict, band_db: torch.Tensor, dims: dict, sample_rate: int) -> dict:
    """The torch mirror of ``dsp.profile.apply_delta`` on the covered dims: a copy of ``prof`` with
    ``band_db`` (B, 32) dB added to ``band_env_db`` and, per name in ``dims`` ((B,) tensors), the value
    multiplied (``RATIO_DIMS``: frequencies) or offset (the others). The spectral moments (``MOMENT_DIMS``) first
    move as the offsets move them on each row's envelope and median centroid and roll-off
    (``dsp.profile.shape_moves``, at ``sample_rate``; no gradient flows into that move), then by ``dims``' value (the move beyond the shape). Validity flags are
    kept."""
    from resculpt.dsp.profile import MOMENT_DIMS, RATIO_DIMS, shape_moves

    out = dict(prof)
    out["band_env_db"] = prof["band_env_db"] + band_db
    env = torch.where(prof["band_env_ok"], prof["band_env_db"], torch.full_like(prof["band_env_db"], math.nan))
    env, off = env.detach().double().numpy(), band_db.detach().double().numpy()
    med = {k: torch.where(prof[k + "_ok"], prof[k].detach(), torch.full_like(prof[k], math.nan)).double().numpy()
           for k in ("centroid_hz", "rolloff_hz")}
    made = [shape_moves(env[b], off[b], sample_rate, med["centroid_hz"][b], med["rolloff_hz"][b])
            for b in range(off.shape[0])]
    for k in MOMENT_DIMS:
        m = torch.tensor([mv[k] for mv in made], dtype=prof[k].dtype)
        out[k] = prof[k] * m if k in RATIO_DIMS else prof[k] + m
    for k, v in dims.items():
        if k in COVERED:
            out[k] = out[k] * v if k in RATIO_DIMS else out[k] + v
    return out


# -- the conditioning vector (the torch mirror of common.cond_from_profile) -----------------------------
def cond_vector(prof: dict, sample_rate: int, match: str = "timbre") -> torch.Tensor:
    """(B, COND_DIM) conditioning vectors of torch profiles, laid out as ``common.cond_from_profile`` lays out
    a dsp Profile's; the dims this module does not cover are unknown (0, mask 0)."""
    from . import common as C

    if match not in C.MATCH:
        raise ValueError(f"match must be one of {sorted(C.MATCH)}, got {match!r}")
    z, ok = normalized(prof)
    B = z.shape[0]
    za = torch.tensor(C.anchor_z(), dtype=torch.float32)
    v = torch.zeros(B, C.COND_DIM)
    for j, name in enumerate(COVERED):
        i = C.DIM_NAMES.index(name)
        if name in C.MATCH[match]:
            m = ok[:, j]
            v[:, i] = torch.where(m, (z[:, j] - za[i]).clamp(-C.Z_CLIP, C.Z_CLIP), torch.zeros(()))
            v[:, C.N_DIMS + i] = m.float()
    env, eok = prof["band_env_db"], prof["band_env_ok"] & _compare_mask()
    n = eok.sum(-1, keepdim=True).clamp_min(1)
    mean = (env * eok).sum(-1, keepdim=True) / n
    v[:, 2 * C.N_DIMS : 2 * C.N_DIMS + N_BANDS] = torch.where(eok, (env - mean) / BAND_SCALE_DB, torch.zeros(()))
    v[:, 2 * C.N_DIMS + N_BANDS : 2 * C.N_DIMS + 2 * N_BANDS] = eok.float()
    v[:, C.V0 : C.REL_I] = torch.tensor(C.input_valid(sample_rate), dtype=torch.float32)
    return v.detach()


def delta_cond(band_db: torch.Tensor, dims: dict, sample_rate: int, match: str = "timbre") -> torch.Tensor:
    """(B, COND_DIM) conditioning vectors of relative targets (the torch mirror of ``common.delta_cond``) from
    band offsets (B, 32) dB and {covered dim: (B,)} moves (``train.nudge_tensors``' form: ratios for
    ``RATIO_DIMS``, offsets for the others, the moments' beyond the shape): flag 1, offsets / 3 dB on the compared
    bands, scalar moves in z units for the covered dims of the match mode; the tilt slot holds the whole tilt move,
    the offsets' own slope at ``sample_rate`` (``dsp.features.spectral.tilt_weights``) plus ``dims``' tilt."""
    from resculpt.dsp.features.spectral import tilt_weights
    from resculpt.dsp.profile import RATIO_DIMS

    from . import common as C

    if match not in C.MATCH:
        raise ValueError(f"match must be one of {sorted(C.MATCH)}, got {match!r}")
    B = band_db.shape[0]
    cmp = _compare_mask()
    v = torch.zeros(B, C.COND_DIM)
    v[:, C.S0 : C.M0] = torch.where(cmp, band_db, torch.zeros(())) / BAND_SCALE_DB
    v[:, C.M0 : C.V0] = cmp.float()
    v[:, C.V0 : C.REL_I] = torch.tensor(C.input_valid(sample_rate), dtype=torch.float32)
    v[:, C.REL_I] = 1.0
    made = band_db.detach().double() @ torch.tensor(tilt_weights(sample_rate))  # (B,) dB/oct
    dims = dict(dims)
    dims["tilt_db_oct"] = (dims["tilt_db_oct"].double() if "tilt_db_oct" in dims else 0.0) + made
    for name, val in dims.items():
        if name not in COVERED or name not in C.MATCH[match]:
            continue
        if name in RATIO_DIMS:
            z = torch.where(val > 0, torch.log2(val.clamp_min(1e-12)), torch.zeros(())) / DIM_BY_NAME[name].scale
        else:
            z = val / DIM_BY_NAME[name].scale
        v[:, C.DZ0 + C.DIM_NAMES.index(name)] = z.float().clamp(-C.Z_CLIP, C.Z_CLIP)
    return v.detach()
