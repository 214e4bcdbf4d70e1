"""The training losses of the mask generator (torch; never imported at run time).

Losses (weights in ``LOSS_W``; each can be switched off for the ablation):
  recon  multi-resolution STFT loss (spectral convergence + log-magnitude L1 at 3 FFT sizes)
         + 0.05 * negative SI-SDR (dB) on examples whose target is not silent;
  adv    LSGAN against ``MultiResSpecDisc`` (clean target vs masked output), from step ``adv_start``;
  perc   perceptual: L1 between the frame features (3-layer LSTM outputs) and 1 - cosine of the
         embeddings of resemblyzer's frozen, pretrained speaker encoder (GE2E, ``pretrained.pt`` from
         the resemblyzer wheel, loaded by path; resemblyzer itself is never imported), on
         -30 dBFS-normalised mel power spectra (40 mels, 25 ms / 10 ms) of output and target;
  sparse mean attenuation ``mean(1 - g)``: the mask should only act where it must;
  gain   band-gain target (as RNNoise trains its gains): squared error between sqrt(g) and sqrt(g*), with
         g* = clip(sqrt(P_target / P_mixture), 0, 1) the ideal gain of each learned band in each frame,
         from the same band analysis the model sees. A dense per-band, per-frame signal that a 2-core
         machine can fit far faster than the waveform losses alone (the model card, ``models/weights/mask/MODEL_CARD.md``).
  cspec  (deep-filter nets only, ``df_bins`` > 0) compressed complex spectral loss on a 20 ms STFT (5 ms hop):
         mean |Yc - Tc|^2 + mean (|Yc| - |Tc|)^2 with Xc = |X|^0.3 e^{j arg X} (DeepFilterNet's spectral loss);
         the deep-filter taps change phase as well as level, and this term sees both in every bin;
  teach  distillation from DeepFilterNet3-LL (only with ``--teacher DIR``, a cache built by
         ``scripts/mask_teacher_cache.py``): ``--teacher-frac`` of each batch are crops of the cached
         training-split mixtures, and on those rows the dense gain target is the teacher's band gain
         clip(sqrt(P_teacher / P_mixture), 0, 1) instead of g* (same squared error of square roots). The
         teacher is causal with a 10 ms window, so its gains are ones a causal frame can reach; g* is not
         (it knows the clean speech), which is why the net hedges toward it. Every waveform loss
         compares with the clean target on every row: the teacher is an extra target, never the only one.
         ``--off teach`` keeps the cached rows in the batch with g* as their gain target (its ablation).
  stoi   1 - a differentiable short-time objective intelligibility (``stoi_torch``: STOI's third-octave band
         envelopes, 30-frame (375 ms) windows, level normalisation, -15 dB clipping and correlation, at the training rate
         instead of STOI's 10 kHz, silent frames masked out instead of cut). Off by default (``--weight stoi=W``):
         the other terms reward level-accurate bins, this one rewards keeping each speech band's modulation, which
         is what the mask loses when it cuts weak consonants and low-SNR bands.
  pause  residual noise in the speech pauses (``pause_residual``): in 20 ms frames where the target is more than
         45 dB under its loudest frame, the output's level relative to the mixture's, in dB, above a
         -40 dB floor, over 40 (1 = nothing removed, 0 = 40 dB or more removed). Off by default
         (``--weight pause=W``): DNSMOS's background score reads the noise left in the pauses, where the
         log-magnitude terms weigh one frame like any other and the gain terms square roots of small gains.
  presence  (nets with a speech-presence head only, ``--presence``) binary cross-entropy of the head's per-frame
         output against the clean frame's activity (``train.presence_target``: within 40 dB of the row's loudest
         frame); the head scales every gain and tap of its frame, so a pause can be cut in all bands at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import relu

LOSS_W = {"recon": 1.0, "adv": 0.1, "perc": 0.5, "sparse": 0.02, "gain": 10.0, "teach": 10.0, "cspec": 10.0,
          "stoi": 0.0, "pause": 0.0,
          "presence": 0.5}
SISDR_W = 0.05  # weight of the negative SI-SDR (dB) inside the recon term


_WINS = {}  # n_fft -> Hann window of the multi-resolution STFT loss, made once


def _stft(x, n_fft, hop):  # (B, N) -> complex (B, F, T), Hann window made once per size
    if n_fft not in _WINS:
        _WINS[n_fft] = torch.hann_window(n_fft)
    return torch.stft(x, n_fft, hop, window=_WINS[n_fft], return_complex=True)


def _stft_mag(x, n_fft, hop):
    return _stft(x, n_fft, hop).abs().clamp_min(1e-5)


def mrstft(y, t, ffts=((512, 128), (256, 64), (1024, 256))):
    loss = 0.0
    for n, h in ffts:
        Y, T = _stft_mag(y, n, h), _stft_mag(t, n, h)
        sc = torch.linalg.norm(T - Y) / (torch.linalg.norm(T) + 1e-5)  # over the batch: silent targets are fine
        lm = (torch.log(Y) - torch.log(T)).abs().mean()
        loss = loss + sc + lm
    return loss / len(ffts)


def cspec(y, t, n_fft=320, hop=80, c=0.3):
    """Compressed complex spectral loss (scalar) of output y and target t (B, N)."""
    Y, T = _stft(y, n_fft, hop), _stft(t, n_fft, hop)
    ym, tm = Y.abs().clamp_min(1e-8), T.abs().clamp_min(1e-8)
    yc, tc = ym.pow(c), tm.pow(c)
    cplx = (Y * (yc / ym) - T * (tc / tm)).abs().pow(2).mean()
    return cplx + (yc - tc).pow(2).mean()


PAUSE_FRAME = 320  # 20 ms at the 16 kHz training rate
PAUSE_BELOW_DB = 45.0  # a frame this far under the target's loudest one is a pause
PAUSE_FLOOR_DB = 40.0  # removing more than this earns nothing (DeepFilterNet3 leaves 40-45 dB in the pauses)


def pause_residual(y, x, t):
    """(B,) residual-noise score in the pauses and (B,) 1 where the row has a pause with noise in it.

    y, x, t (B, N): output, mixture and target, aligned. A frame of ``PAUSE_FRAME`` samples is a pause where the
    target's energy is ``PAUSE_BELOW_DB`` under the row's loudest frame (a silent target: every frame) and the
    mixture has energy (above -90 dBFS). Per pause frame: relu(10 log10(E_y / E_x) + floor) / floor, floor
    ``PAUSE_FLOOR_DB``; the row's score is the mean over its pauses."""
    n = y.shape[-1] // PAUSE_FRAME * PAUSE_FRAME
    e = [z[:, :n].reshape(z.shape[0], -1, PAUSE_FRAME).pow(2).mean(-1) for z in (y, x, t)]  # (B, F) each
    ey, ex, et = e
    top = et.amax(dim=1, keepdim=True)
    pause = ((et <= top * 10 ** (-PAUSE_BELOW_DB / 10)) & (ex > 1e-9)).float()
    att = 10 * torch.log10((ey + 1e-12) / (ex + 1e-12))
    per = relu(att + PAUSE_FLOOR_DB) / PAUSE_FLOOR_DB
    cnt = pause.sum(1)
    return (per * pause).sum(1) / cnt.clamp_min(1.0), (cnt > 0).float()


def si_sdr(y, t, eps=1e-8):
    t0 = t - t.mean(-1, keepdim=True)
    y0 = y - y.mean(-1, keepdim=True)
    a = (y0 * t0).sum(-1, keepdim=True) / ((t0 * t0).sum(-1, keepdim=True) + eps)
    s = a * t0
    return 10 * torch.log10((s * s).sum(-1) / (((y0 - s) ** 2).sum(-1) + eps) + eps)


_STOI_BANDS = {}  # (sr, n_fft) -> (15, F) 0/1 third-octave band matrix


def _third_octaves(sr: int, n_fft: int) -> torch.Tensor:
    """STOI's 15 third-octave bands (centres 150 Hz * 2^(k/3), up to 4.3 kHz) as a (15, n_fft//2+1) 0/1 matrix:
    each band takes the FFT bins between the bins nearest its edges (centre * 2^-1/6 .. * 2^1/6)."""
    key = (sr, n_fft)
    if key not in _STOI_BANDS:
        f = np.arange(n_fft // 2 + 1) * sr / n_fft
        m = np.zeros((15, f.size), np.float32)
        for k in range(15):
            c = 150.0 * 2.0 ** (k / 3)
            lo, hi = np.argmin(abs(f - c * 2 ** (-1 / 6))), np.argmin(abs(f - c * 2 ** (1 / 6)))
            m[k, lo:max(hi, lo + 1)] = 1.0
        _STOI_BANDS[key] = torch.from_numpy(m)
    return _STOI_BANDS[key]


def stoi_torch(y, t, sr: int = 16000, win_s: float = 0.025, n_seg: int = 30, range_db: float = 40.0,
               beta_db: float = -15.0, eps: float = 1e-8, per_band: bool = False):
    """Differentiable STOI of output y against clean target t, both (B, N) at ``sr``; returns (B,) in about [-1, 1]
    (with ``per_band``, (B, 15): each third-octave band's correlation averaged over the windows) and a (B,) 0/1 flag
    of rows that had a full window of speech (silent targets score 0 and are flagged 0).

    As STOI (Taal et al. 2011): third-octave band envelopes (15 bands, 150 Hz-4.3 kHz) of 25 ms frames at half
    overlap, windows of 30 frames (375 ms), the output's envelope scaled to the target's energy in each window and
    band and clipped where its distortion would exceed the target by 15 dB (STOI's beta = -15 dB), then the
    correlation of the two over the window, averaged. Differences: the frames are taken at ``sr`` (STOI resamples
    to 10 kHz), and frames 40 dB below the row's loudest target frame (or under -100 dBFS RMS) are masked out of
    each window's statistics rather than cut from the signal, so the windows stay aligned across a batch; windows
    with under half their frames active are left out. On the 48 validation mixtures (noisy against clean) it
    tracks pystoi with correlation 0.99 (``scripts/stoi_torch_check.py``)."""
    n_win = round(win_s * sr)
    hop = n_win // 2
    n_fft = 1 << (n_win - 1).bit_length()
    if (n_win, "h") not in _WINS:
        _WINS[(n_win, "h")] = torch.hann_window(n_win + 2)[1:-1]  # STOI's window: no zero end points
    win = _WINS[(n_win, "h")]
    if y.shape[-1] < n_win + hop * (n_seg - 1):
        z = torch.zeros(y.shape[0])
        return (torch.zeros(y.shape[0], 15) if per_band else z), z
    bands = _third_octaves(sr, n_fft)

    def env(x):  # (B, N) -> (B, 15, T) band amplitudes, and (B, T) frame energies in dB
        fr = x.unfold(-1, n_win, hop) * win
        p = torch.fft.rfft(fr, n_fft).abs().pow(2)  # (B, T, F)
        e_db = 10 * torch.log10(fr.pow(2).sum(-1) + eps)
        return torch.sqrt(torch.einsum("btf,kf->bkt", p, bands) + eps), e_db

    X, ex = env(t)
    Y, _ = env(y)
    floor_db = 10 * np.log10(n_win * 1e-10)  # a frame's energy at -100 dBFS RMS: digital silence is never speech
    act = ((ex > ex.amax(-1, keepdim=True) - range_db) & (ex > floor_db)).float()  # (B, T)
    Xs, Ys, As = X.unfold(-1, n_seg, 1), Y.unfold(-1, n_seg, 1), act.unfold(-1, n_seg, 1)  # (B,15,W,N), (B,W,N)
    a = As.unsqueeze(1)
    n_act = As.sum(-1)  # (B, W)
    # eps on both sides: a window with every frame masked has a finite gradient (0/0 has none)
    norm = torch.sqrt(((Xs.pow(2) * a).sum(-1) + eps) / ((Ys.pow(2) * a).sum(-1) + eps))
    Yn = torch.minimum(Ys * norm.unsqueeze(-1), Xs * (1 + 10 ** (-beta_db / 20)))
    cnt = n_act.clamp_min(1.0).unsqueeze(1)
    xm = Xs - ((Xs * a).sum(-1) / cnt).unsqueeze(-1)
    ym = Yn - ((Yn * a).sum(-1) / cnt).unsqueeze(-1)
    d = (xm * ym * a).sum(-1) / torch.sqrt((xm.pow(2) * a).sum(-1) * (ym.pow(2) * a).sum(-1) + eps)  # (B,15,W)
    ok = (n_act >= n_seg / 2).float()  # (B, W)
    n_ok = ok.sum(-1)
    band = (d * ok.unsqueeze(1)).sum(-1) / n_ok.clamp_min(1.0).unsqueeze(1)  # (B, 15)
    return (band if per_band else band.mean(1)), (n_ok > 0).float()


def gain_err(g, target):
    """Per-row (B,) mean squared error of square roots of band gains (B, T, 24); +1e-4 keeps a finite slope at 0."""
    return ((g + 1e-4).sqrt() - (target + 1e-4).sqrt()).pow(2).mean(dim=(1, 2))


def slaney_mel(sr=16000, n_fft=400, n_mels=40):
    def hz2mel(f):
        f = np.asarray(f, float)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000, 15.0 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27), lin)

    def mel2hz(m):
        m = np.asarray(m, float)
        return np.where(m >= 15, 1000 * np.exp((np.log(6.4) / 27) * (m - 15)), m * 200.0 / 3)

    fft_f = np.linspace(0, sr / 2, n_fft // 2 + 1)
    hz = mel2hz(np.linspace(hz2mel(0), hz2mel(sr / 2), n_mels + 2))
    fd = np.diff(hz)
    ramps = hz[:, None] - fft_f[None, :]
    w = np.zeros((n_mels, fft_f.size))
    for i in range(n_mels):
        lo = -ramps[i] / fd[i]
        up = ramps[i + 2] / fd[i + 1]
        w[i] = np.maximum(0, np.minimum(lo, up))
    w *= (2.0 / (hz[2 : n_mels + 2] - hz[:n_mels]))[:, None]
    return torch.tensor(w, dtype=torch.float32)


def find_resemblyzer_weights() -> Path | None:
    """pretrained.pt of the resemblyzer wheel in this venv or in .venv-bench (path lookup, no import)."""
    import importlib.util

    env = os.environ.get("RESCULPT_PERC_WEIGHTS")
    if env and Path(env).is_file():
        return Path(env)
    spec = importlib.util.find_spec("resemblyzer")
    cands = []
    if spec and spec.origin:
        cands.append(Path(spec.origin).parent / "pretrained.pt")
    repo = Path(__file__).resolve().parents[2]
    cands += list((repo / ".venv-bench").glob("lib/python*/site-packages/resemblyzer/pretrained.pt"))
    for c in cands:
        if c.is_file():
            return c
    return None


def perceptual_or_off(w: dict, smoke: bool):
    """The frozen perceptual net when ``w["perc"] > 0`` and its weights are found, else None. Without the
    weights a smoke run sets ``w["perc"]`` to 0 and says so; a real run stops with the way to get them."""
    if w["perc"] <= 0:
        return None
    wp = find_resemblyzer_weights()
    if wp is None:
        if not smoke:
            raise SystemExit("perceptual term needs resemblyzer's pretrained.pt: pip install --no-deps resemblyzer "
                             "(or set RESCULPT_PERC_WEIGHTS), or pass --off perc")
        print("smoke: resemblyzer weights not found, perceptual term off")
        w["perc"] = 0.0
        return None
    return PerceptualNet(wp)


class PerceptualNet(torch.nn.Module):
    """resemblyzer's GE2E speaker encoder (frozen): LSTM(40, 256, 3) + Linear + ReLU + L2 norm."""

    def __init__(self, weights: Path):
        super().__init__()
        self.lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        sd = torch.load(weights, map_location="cpu")["model_state"]
        self.load_state_dict({k: v for k, v in sd.items() if k.startswith(("lstm", "linear"))})
        self.register_buffer("mel", slaney_mel())
        self.register_buffer("win", torch.hann_window(400))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def features(self, x):
        s = torch.stft(x, 400, 160, window=self.win, return_complex=True, pad_mode="constant")
        mel = self.mel @ (s.real**2 + s.imag**2)  # (B, 40, T) mel power, as resemblyzer feeds it
        h, _ = self.lstm(mel.transpose(1, 2))
        e = relu(self.linear(h[:, -1]))
        return h, e / (e.norm(dim=-1, keepdim=True) + 1e-8)

    def loss(self, y, t, active):
        g = 10 ** (-30 / 20) / (t.pow(2).mean(-1, keepdim=True).sqrt() + 1e-5)  # target to -30 dBFS
        hy, ey = self.features(y * g)
        with torch.no_grad():
            ht, et = self.features(t * g)
        per = (hy - ht).abs().mean(dim=(1, 2)) + (1 - (ey * et).sum(-1))
        return (per * active).sum() / active.sum().clamp_min(1.0)

