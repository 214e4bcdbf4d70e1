"""On-the-fly mixtures of real recordings (numpy only; used by training and benchmarks/denoise.py).

Pools are read from the shared data root (never copied into the repository) and resampled to the
training rate (16 kHz: the speech is 16 kHz) once, cached in ``$RESCULPT_CACHE`` (default
``/tmp/resculpt-mask-cache``) as .npy so a restart does not decode again.

Recipe of one training example (``make_example``):
  * speech crop (train speakers; the 8 kHz FSDD digits are excluded: no content above 4 kHz),
    absent in ~8 % of examples (the target is then silence, or music in enhance mode);
  * reverb with a measured room response (p = 0.4); the target keeps the first 50 ms (direct + early),
    the late tail is interference;
  * noise crop (one or two recordings), SNR uniform in -5..20 dB against what is kept; with only ~17 min
    of training noise, each crop is varied (``_vary_noise``, training only): speed change 0.7-1.4x
    (p 0.5: moves every spectral feature of the recording by up to half an octave), its own random EQ
    (p 0.5), and in 10 % of examples coloured noise (slope -6..+3 dB/octave) or, in denoise mode,
    babble of 3-6 training speakers stands in for the recording;
  * music (p = 0.3 denoise / 0.6 enhance): interference in ``denoise`` mode, kept in ``enhance`` mode;
  * strength s (1 in 70 %, else U(0.3, 1)): target = kept + (1 - s) * interference;
  * the same random EQ (low and high shelf, +-6 dB) and band limit (p = 0.15, 3.5-7.5 kHz low-pass)
    on mixture and target, then a random level (-45..-12 dBFS RMS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from resculpt.models import data
from resculpt.models.mask.common import MIN_STRENGTH
from scipy.signal import fftconvolve, sosfilt

SR = 16000


def cache_dir() -> Path:
    p = Path(os.environ.get("RESCULPT_CACHE", "/tmp/resculpt-mask-cache"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def _load_cached(item, sr: int) -> np.ndarray:
    key = item.path.relative_to(data.data_root()).as_posix().replace("/", "__")
    f = cache_dir() / f"{sr}__{key}.npy"
    if f.is_file():
        return np.load(f)
    x, _ = data.load(item, sample_rate=sr)
    np.save(f, x)
    return x


@dataclass
class Pools:
    speech: list
    speech_ids: list
    noise: list
    noise_ids: list
    music: list
    music_ids: list
    rir: list
    rir_ids: list


def load_pools(split: str, sr: int = SR, limit_speech: int | None = None) -> Pools:
    """Every recording of ``split`` (train/val) resampled to ``sr``."""
    sp = [it for it in data.select("speech", split) if it.sample_rate >= 16000]
    sp = sorted(sp, key=lambda it: str(it.path))
    if limit_speech:
        sp = sp[:limit_speech]
    no = sorted(data.select("noise", split), key=lambda it: str(it.path))
    mu = sorted(data.select("music", split), key=lambda it: str(it.path))
    ri = sorted(data.select("rir", split), key=lambda it: str(it.path))

    def ld(items, norm=True):
        out = []
        for it in items:
            x = _load_cached(it, sr).astype(np.float32)
            if norm:
                r = np.sqrt(np.mean(x**2) + 1e-12)
                x = x / r
            out.append(x)
        return out

    rirs = []
    for x in ld(ri, norm=False):
        k = int(np.argmax(np.abs(x)))
        x = x[max(0, k - int(0.002 * sr)):][: int(1.5 * sr)]
        rirs.append((x / (np.sqrt(np.sum(x**2)) + 1e-9)).astype(np.float32))
    return Pools(ld(sp), [it.speaker or str(it.path) for it in sp], ld(no), [str(it.path) for it in no],
                 ld(mu), [str(it.path) for it in mu], rirs, [str(it.path) for it in ri])


def _crop(rng, x: np.ndarray, n: int) -> np.ndarray:
    if x.size < n:
        x = np.tile(x, n // max(1, x.size) + 1)
    s = int(rng.integers(0, x.size - n + 1))
    return x[s : s + n]


def _rms(x):
    return float(np.sqrt(np.mean(x**2) + 1e-12))


def _shelf_sos(rng, sr):
    from scipy.signal import butter

    # Random tilt: a gentle low-shelf and high-shelf made from 1st-order sections mixed with dry.
    sos = []
    for kind, lo, hi in (("lowpass", 150, 600), ("highpass", 2000, 6000)):
        fc = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        sos.append((kind, butter(1, fc, kind, fs=sr, output="sos"), rng.uniform(-6, 6)))
    return sos


def _apply_eq(x, eq):
    y = x.copy()
    for _, sos, g_db in eq:
        band = sosfilt(sos, x)
        y = y + (10 ** (g_db / 20) - 1.0) * band
    return y


def _speed(rng, x: np.ndarray, n: int, factor: float) -> np.ndarray:
    """n samples of x played ``factor`` times faster (linear interpolation; the noise recordings are
    broadband textures, so the interpolation's mild low-pass is immaterial)."""
    m = int(np.ceil(n * factor)) + 2
    src = _crop(rng, x, m) if x.size >= m else np.tile(x, m // max(1, x.size) + 1)[:m]
    return np.interp(np.arange(n) * factor, np.arange(m), src).astype(np.float32)


def _coloured(rng, n: int, sr: int) -> np.ndarray:
    """Stationary noise with a random spectral slope of -6..+3 dB per octave around 1 kHz."""
    slope = rng.uniform(-6.0, 3.0)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    spec *= 10 ** (slope * np.log2(f / 1000.0) / 20)
    return np.fft.irfft(spec, n).astype(np.float32)


def _vary_noise(rng, pools: Pools, noise: np.ndarray, n: int, sr: int, babble_ok: bool) -> np.ndarray:
    """Training-only variations of the interference (see the module doc)."""
    r = rng.random()
    if r < 0.05:
        noise = _coloured(rng, n, sr)
    elif r < 0.10 and babble_ok and len(pools.speech) > 6:
        k = int(rng.integers(3, 7))
        noise = sum(_crop(rng, pools.speech[int(i)], n) for i in rng.choice(len(pools.speech), k, replace=False))
    elif rng.random() < 0.5:
        src = pools.noise[int(rng.integers(len(pools.noise)))]
        noise = _speed(rng, src, n, float(np.exp(rng.uniform(np.log(0.7), np.log(1.4)))))
    if rng.random() < 0.5:
        eq = [(k, sos, g * 1.5) for k, sos, g in _shelf_sos(rng, sr)]  # +-9 dB on the noise alone
        noise = _apply_eq(noise, eq)
    return np.asarray(noise, np.float32)


def make_example(rng: np.random.Generator, pools: Pools, n: int, sr: int = SR, snr_db: float | None = None,
                 enhance: bool | None = None, music_p: float | None = None, reverb_p: float = 0.4,
                 augment: bool = True, vary_noise: bool = True, strength: float | None = None):
    """One (mixture, target, cond) triple; cond = [enhance, strength]. Arrays float32 (n,).
    ``strength`` None draws it (1 in 70 % of examples when augmenting); a value fixes it (the teacher cache
    fixes 1: its teacher only knows full removal)."""
    if enhance is None:
        enhance = rng.random() < 0.35
    if strength is None:
        strength = 1.0 if (not augment or rng.random() < 0.7) else float(rng.uniform(MIN_STRENGTH, 1.0))
    has_speech = (not augment) or rng.random() > 0.08
    speech = np.zeros(n, np.float32)
    if has_speech:
        for _ in range(4):  # avoid near-silent crops
            s = _crop(rng, pools.speech[int(rng.integers(len(pools.speech)))], n)
            if _rms(s) > 0.3:
                break
        speech = s / _rms(s)
    sp_in, sp_keep = speech, speech
    if pools.rir and rng.random() < reverb_p and has_speech:
        h = pools.rir[int(rng.integers(len(pools.rir)))]
        early = h[: int(0.05 * sr)]
        sp_in = fftconvolve(speech, h)[:n].astype(np.float32)
        sp_keep = fftconvolve(speech, early)[:n].astype(np.float32)
        g = 1.0 / (_rms(sp_in) + 1e-9)
        sp_in, sp_keep = sp_in * g, sp_keep * g
    mp = music_p if music_p is not None else (0.6 if enhance else 0.3)
    music = np.zeros(n, np.float32)
    if pools.music and rng.random() < mp:
        music = _crop(rng, pools.music[int(rng.integers(len(pools.music)))], n)
        music = music / (_rms(music) + 1e-9) * (10 ** (rng.uniform(-10, 5) / 20) if has_speech else 1.0)
    noise = _crop(rng, pools.noise[int(rng.integers(len(pools.noise)))], n).copy()
    if augment and rng.random() < 0.2:
        noise = noise + _crop(rng, pools.noise[int(rng.integers(len(pools.noise)))], n) * rng.uniform(0.3, 1.0)
    if augment and vary_noise:  # training's --plain-noise passes False (its ablation)
        noise = _vary_noise(rng, pools, noise, n, sr, babble_ok=not enhance)
    keep = sp_keep + (music if enhance else 0.0)
    ref = keep if _rms(keep) > 1e-3 else np.ones(1, np.float32)
    snr = float(rng.uniform(-5, 20)) if snr_db is None else float(snr_db)
    noise = noise / (_rms(noise) + 1e-9) * _rms(ref) * 10 ** (-snr / 20)
    mix = sp_in + music + noise
    interf = mix - keep
    target = keep + (1.0 - strength) * interf
    if augment:
        if rng.random() < 0.7:
            eq = _shelf_sos(rng, sr)
            mix, target = _apply_eq(mix, eq), _apply_eq(target, eq)
        if rng.random() < 0.15:
            from scipy.signal import butter

            sos = butter(6, rng.uniform(3500, 7500), "lowpass", fs=sr, output="sos")
            mix, target = sosfilt(sos, mix), sosfilt(sos, target)
    level = 10 ** ((rng.uniform(-45, -12) if augment else -26.0) / 20)
    g = level / (_rms(mix) + 1e-9)
    peak = np.max(np.abs(mix)) * g
    if peak > 0.99:
        g *= 0.99 / peak
    return ((mix * g).astype(np.float32), (target * g).astype(np.float32),
            np.array([1.0 if enhance else 0.0, strength], np.float32))


def batch(rng, pools, bsz, n, sr=SR, vary_noise: bool = True):
    xs, ys, cs = zip(*(make_example(rng, pools, n, sr, vary_noise=vary_noise) for _ in range(bsz)))
    return np.stack(xs), np.stack(ys), np.stack(cs)


VAL_SNRS = (0.0, 5.0, 10.0, 15.0)


def validation_set(n_utts: int = 12, seconds: float = 4.0, sr: int = SR, seed: int = 1234, pools: Pools | None = None):
    """The fixed validation mixtures: ``n_utts`` val speakers x SNR 0/5/10/15 dB, val noises, no music,
    no reverb, denoise mode. Returns a list of dicts (name, noisy, clean, snr_db)."""
    pools = pools or load_pools("val", sr)
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = []
    order = rng.permutation(len(pools.speech))[:n_utts]
    for k, si in enumerate(order):
        sub = Pools([pools.speech[si]], [pools.speech_ids[si]], pools.noise, pools.noise_ids, [], [], [], [])
        for snr in VAL_SNRS:
            r = np.random.default_rng([seed, int(k), int(snr)])
            x, y, _ = make_example(r, sub, n, sr, snr_db=snr, enhance=False, music_p=0.0, reverb_p=0.0,
                                   augment=False)
            out.append({"name": f"val_spk{pools.speech_ids[si]}_snr{int(snr)}", "noisy": x, "clean": y,
                        "snr_db": snr})
    return out


def synthetic_pools(seed=0, sr=SR) -> Pools:
    """Smoke-test pools (synthetic, labelled as such): harmonic 'voices', coloured noises, chords."""
    rng = np.random.default_rng(seed)
    t = np.arange(3 * sr) / sr
    sp = []
    for k in range(4):
        f0 = 100 + 40 * k + 20 * np.sin(2 * np.pi * 3 * t)
        ph = 2 * np.pi * np.cumsum(f0) / sr
        env = (np.sin(2 * np.pi * 2.5 * t + k) > 0).astype(float)
        sp.append((sum(np.sin(h * ph) / h for h in range(1, 20)) * env).astype(np.float32))
    no = [np.cumsum(rng.standard_normal(3 * sr)).astype(np.float32) * 0.01 + rng.standard_normal(3 * sr).astype(np.float32)
          for _ in range(3)]
    mu = [sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330, 440 * 4)).astype(np.float32)]
    rir = [(np.exp(-np.arange(4000) / 800) * rng.standard_normal(4000)).astype(np.float32)]
    rir = [r / np.sqrt(np.sum(r**2)) for r in rir]
    return Pools(sp, ["s%d" % i for i in range(4)], no, ["n"] * 3, mu, ["m"], rir, ["r"])

