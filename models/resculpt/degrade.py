"""The resculpting model's self-supervised training signal: known changes applied to real recordings.

Given a clean clip ``x`` (speech or music of the *train* split, ``resculpt.models.data`` via the mask
trainer's pools), :func:`degrade` applies a random subset of changes, in this order, and records every
parameter it drew, so a pair (changed ``y``, clean ``x``) says exactly what the model must undo:

=========  ==========================================================================================
op         what it does (all offline, numpy/scipy/pedalboard/ffmpeg)
=========  ==========================================================================================
pitch      pitch shift of -4..+4 semitones, duration kept: phase-vocoder time stretch by r then
           FFT resampling by 1/r (the spectral envelope moves with the pitch, as in librosa's
           ``pitch_shift``); realigned on the energy envelope. Not in ``DEFAULT_OPS``: the generator
           has no pitch operator, so it could not restore a pitch-shifted input
formant    spectral-envelope warp by a ratio 0.85..1.18 with the harmonics kept: per 64 ms frame the
           cepstrally smoothed envelope E(f) is replaced by E(f / ratio) (gain clipped to +-20 dB),
           the phase is untouched
eq         1-4 RBJ peaking/shelving biquads, 80 Hz..0.4 x rate, +-12 dB, Q 0.5..3
tilt       a spectral slope of -4..+4 dB/octave around 1 kHz (zero-phase FFT filter)
dynamics   compression (pedalboard Compressor: ratio 2..8, threshold 3..15 dB under the clip's
           peak-ish level, attack 1..30 ms, release 50..300 ms) or downward expansion
           (pedalboard NoiseGate: ratio 1.5..4)
reverb     convolution with a measured room response of the train split (shared/data rir), aligned
           on its direct-sound peak, wet share 0.2..0.8 at equal RMS
bandlimit  zero-phase Butterworth low-pass 2.5..7 kHz and/or high-pass 80..300 Hz
gain       a level change of -12..+12 dB
codec      Opus 6..24 kbps (libopus) or MP3 32..64 kbps (libmp3lame) through ffmpeg, decoded back to
           the clip's rate; the codec delay is measured per clip by cross-correlation with the
           codec's input (searched within +-``MAX_CODEC_LAG``) and removed, so ``y`` is aligned with
           ``x`` to the sample
=========  ==========================================================================================

A final peak guard scales the result under 0.99 (recorded as ``peak_guard``). Everything is seeded:
``make_pair(source, seed, index)`` draws from ``np.random.default_rng([seed, index])``, so the same
(seed, index) gives the same pair on any run (ffmpeg's encoders are deterministic for a given input).
``scripts/resculpt_cache.py`` prebuilds pairs into shards (ffmpeg per batch would be too slow to train on).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt, sosfiltfilt

OPS = ("pitch", "formant", "eq", "tilt", "dynamics", "reverb", "bandlimit", "gain", "codec")
DEFAULT_OPS = tuple(op for op in OPS if op != "pitch")
OP_P = {"pitch": 0.2, "formant": 0.2, "eq": 0.4, "tilt": 0.3, "dynamics": 0.3, "reverb": 0.2,
        "bandlimit": 0.25, "gain": 0.3, "codec": 0.35}
OPUS_KBPS = (6.0, 24.0)
MP3_KBPS = (32, 40, 48, 56, 64)  # the MPEG layer III bitrates between 32 and 64 kbps
MAX_CODEC_LAG = 4096  # samples searched for the codec delay (Opus pre-skip and MP3 encoder+decoder delay are < 2000)
PEAK = 0.99


class CodecError(RuntimeError):
    """ffmpeg is missing, lacks an encoder, or failed on a clip."""


# -- STFT helpers (offline, centred frames) ---------------------------------------------------------
def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(frames, n_fft // 2 + 1) complex; frame j is centred on sample j * hop (reflect-free zero padding)."""
    w = np.hanning(n_fft + 1)[:-1]
    xp = np.pad(x, (n_fft // 2, n_fft // 2 + hop))
    n_frames = 1 + (xp.size - n_fft) // hop
    fr = np.lib.stride_tricks.sliding_window_view(xp, n_fft)[::hop][:n_frames] * w
    return np.fft.rfft(fr, axis=-1)


def _istft(S: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Weighted overlap-add inverse of :func:`_stft` (Hann synthesis, window-square normalised)."""
    w = np.hanning(n_fft + 1)[:-1]
    fr = np.fft.irfft(S, n=n_fft, axis=-1) * w
    n = (S.shape[0] - 1) * hop + n_fft
    y, wsum = np.zeros(n), np.zeros(n)
    for j in range(S.shape[0]):
        y[j * hop : j * hop + n_fft] += fr[j]
        wsum[j * hop : j * hop + n_fft] += w * w
    y /= np.maximum(wsum, 1e-8)
    return y[n_fft // 2 : n_fft // 2 + length]


def _fft_sizes(sr: int) -> tuple[int, int]:
    n = 1 << int(round(math.log2(0.064 * sr)))  # ~64 ms: resolves the harmonics of a low voice
    return n, n // 4


# -- the changes --------------------------------------------------------------------------------------
def time_stretch(x: np.ndarray, rate: float, sr: int) -> np.ndarray:
    """Phase-vocoder time stretch: the output lasts len(x) / rate samples (phase advance per bin kept)."""
    n_fft, hop = _fft_sizes(sr)
    S = _stft(x, n_fft, hop)
    steps = np.arange(0, S.shape[0] - 1, rate)
    omega = 2 * np.pi * hop * np.arange(S.shape[1]) / n_fft
    phase = np.angle(S[0])
    out = np.zeros((steps.size, S.shape[1]), complex)
    for t, s in enumerate(steps):
        i = int(s)
        frac = s - i
        mag = (1 - frac) * np.abs(S[i]) + frac * np.abs(S[i + 1])
        out[t] = mag * np.exp(1j * phase)
        dphi = np.angle(S[i + 1]) - np.angle(S[i]) - omega
        dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
        phase = phase + omega + dphi
    return _istft(out, n_fft, hop, int(round(x.size / rate)))


def pitch_shift(x: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Shift pitch (and the envelope with it) by ``semitones``, same duration (see the module doc)."""
    from scipy.signal import resample

    r = 2.0 ** (semitones / 12.0)
    y = resample(time_stretch(x, 1.0 / r, sr), x.size)
    # The stretch + resample leaves the output up to ~2 ms early (measured on noise bursts); the energy
    # envelopes (10 ms) of input and output are aligned by cross-correlation within +-20 ms.
    k = max(1, int(0.01 * sr))
    ex = np.convolve(np.square(x, dtype=np.float64), np.ones(k) / k, "same")
    ey = np.convolve(np.square(y), np.ones(k) / k, "same")
    lag = codec_delay(ex - ex.mean(), ey - ey.mean(), int(0.02 * sr))
    y = y[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag), y])
    return np.pad(y[: x.size], (0, max(0, x.size - y.size))).astype(np.float32)


def formant_warp(x: np.ndarray, sr: int, ratio: float, lifter_ms: float = 1.5) -> np.ndarray:
    """Move the spectral envelope by ``ratio`` (E(f) -> E(f / ratio)), keeping harmonics and phase."""
    n_fft, hop = _fft_sizes(sr)
    S = _stft(x, n_fft, hop)
    logm = np.log(np.abs(S) + 1e-9)
    c = np.fft.irfft(logm, n=n_fft, axis=-1)
    nc = max(8, int(lifter_ms * 1e-3 * sr))
    c[:, nc : n_fft - nc + 1] = 0.0
    env = np.fft.rfft(c, axis=-1).real  # smoothed log envelope per frame
    k = np.arange(S.shape[1], dtype=float)
    src = np.clip(k / ratio, 0, S.shape[1] - 1)
    warped = np.stack([np.interp(src, k, e) for e in env])
    g = np.exp(np.clip(warped - env, -20 / 8.686, 20 / 8.686))
    return _istft(S * g, n_fft, hop, x.size).astype(np.float32)


def rbj_sos(kind: str, f_hz: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """(1, 6) second-order section of an RBJ cookbook peaking / low-shelf / high-shelf filter."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f_hz / sr
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2 * q)
    if kind == "peak":
        b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
    else:
        sq = 2 * math.sqrt(A) * alpha
        if kind == "lowshelf":
            b = [A * ((A + 1) - (A - 1) * cw + sq), 2 * A * ((A - 1) - (A + 1) * cw), A * ((A + 1) - (A - 1) * cw - sq)]
            a = [(A + 1) + (A - 1) * cw + sq, -2 * ((A - 1) + (A + 1) * cw), (A + 1) + (A - 1) * cw - sq]
        else:
            b = [A * ((A + 1) + (A - 1) * cw + sq), -2 * A * ((A - 1) + (A + 1) * cw), A * ((A + 1) + (A - 1) * cw - sq)]
            a = [(A + 1) - (A - 1) * cw + sq, 2 * ((A - 1) - (A + 1) * cw), (A + 1) - (A - 1) * cw - sq]
    return np.array([[*(np.array(b) / a[0]), 1.0, a[1] / a[0], a[2] / a[0]]])


def apply_eq(x: np.ndarray, sr: int, bands: list[dict]) -> np.ndarray:
    sos = np.concatenate([rbj_sos(b["type"], b["f_hz"], b["gain_db"], b["q"], sr) for b in bands])
    return sosfilt(sos, x).astype(np.float32)


def apply_tilt(x: np.ndarray, sr: int, db_per_oct: float, pivot_hz: float = 1000.0) -> np.ndarray:
    n = x.size + 4096
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 50.0)
    g = 10 ** (db_per_oct * np.log2(f / pivot_hz) / 20)
    return np.fft.irfft(np.fft.rfft(x, n) * g, n)[: x.size].astype(np.float32)


def apply_dynamics(x: np.ndarray, sr: int, p: dict) -> np.ndarray:
    from pedalboard import Compressor, NoiseGate

    if p["kind"] == "compress":
        fx = Compressor(threshold_db=p["threshold_db"], ratio=p["ratio"], attack_ms=p["attack_ms"],
                        release_ms=p["release_ms"])
    else:
        fx = NoiseGate(threshold_db=p["threshold_db"], ratio=p["ratio"], attack_ms=p["attack_ms"],
                       release_ms=p["release_ms"])
    return fx(x[None].astype(np.float32), sr)[0]


def apply_reverb(x: np.ndarray, rir: np.ndarray, wet: float) -> np.ndarray:
    k0 = int(np.argmax(np.abs(rir)))  # direct-sound peak: the wet signal is aligned on it
    w = fftconvolve(x, rir)[k0 : k0 + x.size]
    w = w * (_rms(x) / (_rms(w) + 1e-12))
    return ((1 - wet) * x + wet * w).astype(np.float32)


def apply_bandlimit(x: np.ndarray, sr: int, lowpass_hz: float | None, highpass_hz: float | None) -> np.ndarray:
    y = x.astype(np.float64)
    if lowpass_hz:
        y = sosfiltfilt(butter(6, lowpass_hz, "lowpass", fs=sr, output="sos"), y)
    if highpass_hz:
        y = sosfiltfilt(butter(3, highpass_hz, "highpass", fs=sr, output="sos"), y)
    return y.astype(np.float32)


def have_codecs() -> str | None:
    """None when ffmpeg has the libopus and libmp3lame encoders, else the reason it cannot run codecs."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return "ffmpeg is not on PATH (apt-get install ffmpeg)"
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    missing = [e for e in ("libopus", "libmp3lame") if e not in out]
    return f"ffmpeg lacks the encoder(s) {missing}" if missing else None


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *args], input=data,
                       capture_output=True)
    if r.returncode != 0:
        raise CodecError(f"ffmpeg {' '.join(args)} failed: {r.stderr.decode(errors='replace')[-400:]}")
    return r.stdout


def _raw(sr: int) -> list[str]:
    """ffmpeg's description of the pipe's samples: float32 mono at ``sr``."""
    return ["-f", "f32le", "-ar", str(sr), "-ac", "1"]


def codec_encode(x: np.ndarray, sr: int, codec: str, kbps: float) -> bytes:
    """``x`` (float32 mono at ``sr``) encoded by ffmpeg with ``codec`` ("opus": libopus in Ogg; "mp3": libmp3lame)
    at ``kbps``, bit-exact (the same input gives the same bytes)."""
    if codec == "opus":
        enc = ["-c:a", "libopus", "-b:a", f"{kbps:g}k", "-f", "ogg"]
    elif codec == "mp3":
        enc = ["-c:a", "libmp3lame", "-b:a", f"{int(kbps)}k", "-f", "mp3"]
    else:
        raise ValueError(f"unknown codec {codec!r}")
    xin = np.ascontiguousarray(x, np.float32)
    return _ffmpeg([*_raw(sr), "-i", "pipe:0", "-flags:a", "+bitexact", "-fflags", "+bitexact", *enc, "pipe:1"],
                   xin.tobytes())


def aligned(x: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, int]:
    """A decode ``dec`` of ``x`` (both at x's rate) with its delay removed and cut or padded to ``x``'s length:
    (float32 (len(x),), the delay in samples)."""
    lag = codec_delay(np.ascontiguousarray(x, np.float32), dec)
    y = dec[lag : lag + x.size] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), dec])[: x.size]
    return np.pad(y, (0, x.size - y.size)).astype(np.float32), lag


def codec_roundtrip(x: np.ndarray, sr: int, codec: str, kbps: float) -> tuple[np.ndarray, int]:
    """Encode ``x`` (float32 mono at ``sr``) with ``codec`` ("opus" or "mp3") at ``kbps`` and decode it
    back to ``sr``; returns (decoded aligned to ``x`` sample for sample, the delay that was removed)."""
    bits = codec_encode(x, sr, codec, kbps)
    dec = np.frombuffer(_ffmpeg(["-i", "pipe:0", *_raw(sr), "pipe:1"], bits), np.float32).copy()
    return aligned(x, dec)


def codec_delay(x: np.ndarray, dec: np.ndarray, max_lag: int = MAX_CODEC_LAG) -> int:
    """Lag (samples, -max_lag..max_lag) at which ``dec`` best matches ``x`` (FFT cross-correlation)."""
    n = 1 << int(math.ceil(math.log2(x.size + dec.size)))
    c = np.fft.irfft(np.fft.rfft(dec, n) * np.conj(np.fft.rfft(x, n)), n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([c[: max_lag + 1], c[n - max_lag :]])
    return int(lags[int(np.argmax(vals))])


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


# -- drawing and applying ----------------------------------------------------------------------------
def draw_params(rng: np.random.Generator, sr: int, n_rirs: int, kind: str, ops=DEFAULT_OPS) -> list[dict]:
    """A random change recipe: a list of {op, ...parameters} in application order (at least one op),
    drawn from the allowed ``ops`` (each with probability ``OP_P``)."""
    nyq_lim = 0.4 * sr
    bad = set(ops) - set(OPS)
    if bad:
        raise ValueError(f"unknown op(s) {sorted(bad)}; known: {OPS}")
    draws = {op: rng.random() for op in OPS}  # one draw per op whatever is allowed: recipes stay comparable
    ops = [op for op in OPS if op in ops and draws[op] < OP_P[op] and (op != "reverb" or n_rirs)]
    if not ops:
        ops = [str(rng.choice(["eq", "tilt", "bandlimit"]))]
    out = []
    for op in OPS:
        if op not in ops:
            continue
        if op == "pitch":
            out.append({"op": op, "semitones": round(float(rng.uniform(-4, 4)), 3)})
        elif op == "formant":
            out.append({"op": op, "ratio": round(float(np.exp(rng.uniform(np.log(0.85), np.log(1.18)))), 4)})
        elif op == "eq":
            bands = []
            for _ in range(int(rng.integers(1, 5))):
                t = str(rng.choice(["peak", "peak", "lowshelf", "highshelf"]))
                bands.append({"type": t, "f_hz": round(float(np.exp(rng.uniform(np.log(80), np.log(nyq_lim)))), 1),
                              "gain_db": round(float(rng.uniform(-12, 12)), 2),
                              "q": round(float(rng.uniform(0.5, 3.0) if t == "peak" else 0.707), 3)})
            out.append({"op": op, "bands": bands})
        elif op == "tilt":
            out.append({"op": op, "db_per_oct": round(float(rng.uniform(-4, 4)), 3)})
        elif op == "dynamics":
            comp = rng.random() < 0.7
            out.append({"op": op, "kind": "compress" if comp else "expand",
                        "threshold_rel_db": round(float(rng.uniform(-15, -3) if comp else rng.uniform(-30, -12)), 2),
                        "ratio": round(float(rng.uniform(2, 8) if comp else rng.uniform(1.5, 4)), 3),
                        "attack_ms": round(float(rng.uniform(1, 30)), 2),
                        "release_ms": round(float(rng.uniform(50, 300)), 1)})
        elif op == "reverb":
            out.append({"op": op, "rir": int(rng.integers(n_rirs)), "wet": round(float(rng.uniform(0.2, 0.8)), 3)})
        elif op == "bandlimit":
            r = rng.random()
            lp = round(float(rng.uniform(2500, min(7000, nyq_lim))), 1) if r < 0.8 else None
            hp = round(float(rng.uniform(80, 300)), 1) if (r >= 0.5 or lp is None) else None
            out.append({"op": op, "lowpass_hz": lp, "highpass_hz": hp})
        elif op == "gain":
            out.append({"op": op, "gain_db": round(float(rng.uniform(-12, 12)), 2)})
        elif op == "codec":
            if rng.random() < 0.6:
                out.append({"op": op, "codec": "opus", "kbps": round(float(rng.uniform(*OPUS_KBPS)), 1)})
            else:
                out.append({"op": op, "codec": "mp3", "kbps": int(rng.choice(MP3_KBPS))})
    return out


def apply_params(x: np.ndarray, sr: int, params: list[dict], rirs=()) -> np.ndarray:
    """Apply a recipe from :func:`draw_params` (filling in what is measured: codec delay, peak guard)."""
    y = np.asarray(x, np.float32).copy()
    for p in params:
        op = p["op"]
        if op == "pitch":
            y = pitch_shift(y, sr, p["semitones"])
        elif op == "formant":
            y = formant_warp(y, sr, p["ratio"])
        elif op == "eq":
            y = apply_eq(y, sr, p["bands"])
        elif op == "tilt":
            y = apply_tilt(y, sr, p["db_per_oct"])
        elif op == "dynamics":
            peakish = 20 * math.log10(_rms(y)) + 10.0  # ~ the level of the loud passages
            q = dict(p, threshold_db=peakish + p["threshold_rel_db"])
            y = apply_dynamics(y, sr, q)
        elif op == "reverb":
            y = apply_reverb(y, rirs[p["rir"]], p["wet"])
        elif op == "bandlimit":
            y = apply_bandlimit(y, sr, p["lowpass_hz"], p["highpass_hz"])
        elif op == "gain":
            y = y * np.float32(10 ** (p["gain_db"] / 20))
        elif op == "codec":
            g = min(1.0, 0.9 / (float(np.max(np.abs(y))) + 1e-9))  # the encoder sees an unclipped signal
            y, p["delay_samples"] = codec_roundtrip(y * g, sr, p["codec"], p["kbps"])
            y = y / g
        else:
            raise ValueError(f"unknown op {op!r}")
        y = np.nan_to_num(np.asarray(y, np.float32))
    pk = float(np.max(np.abs(y))) if y.size else 0.0
    if pk > PEAK:
        params.append({"op": "peak_guard", "gain": round(PEAK / pk, 6)})
        y = y * np.float32(PEAK / pk)
    return y.astype(np.float32)


def degrade(x: np.ndarray, sr: int, rng: np.random.Generator, rirs=(), kind: str = "speech",
            ops=DEFAULT_OPS) -> tuple[np.ndarray, list[dict]]:
    """(changed clip, the recipe applied) for a clean clip ``x`` (float32 (n,) at ``sr``)."""
    params = draw_params(rng, sr, len(rirs), kind, ops)
    return apply_params(x, sr, params, rirs), params


# -- clean clips --------------------------------------------------------------------------------------
@dataclass
class Source:
    """Clean material at one rate: unit-RMS speech and music recordings and peak-aligned room responses
    (the mask trainer's pools, ``mixing.load_pools``), with ids for the record."""

    sr: int
    speech: list
    speech_ids: list
    music: list
    music_ids: list
    rir: list
    rir_ids: list
    music_p: float = 0.25

    @classmethod
    def load(cls, split: str = "train", sr: int = 16000) -> Source:
        from resculpt.models.mask import mixing

        p = mixing.load_pools(split, sr)
        return cls(sr, p.speech, p.speech_ids, p.music, p.music_ids, p.rir, p.rir_ids)

    @classmethod
    def synthetic(cls, sr: int = 16000, seed: int = 0) -> Source:
        """Smoke-test material (synthetic, labelled as such): the mask trainer's synthetic pools."""
        from resculpt.models.mask import mixing

        p = mixing.synthetic_pools(seed, sr)
        return cls(sr, p.speech, p.speech_ids, p.music, p.music_ids, p.rir, p.rir_ids)


def clean_clip(rng: np.random.Generator, src: Source, n: int) -> tuple[np.ndarray, dict]:
    """A crop of ``n`` samples of one recording (speech, or music with p = music_p), not near-silent,
    at a random level of -32..-16 dBFS RMS; and where it came from."""
    music = bool(src.music) and rng.random() < src.music_p
    pool, ids = (src.music, src.music_ids) if music else (src.speech, src.speech_ids)
    for _ in range(8):
        i = int(rng.integers(len(pool)))
        rec = pool[i]
        if rec.size < n:
            rec = np.tile(rec, n // max(1, rec.size) + 1)
        s = int(rng.integers(0, rec.size - n + 1))
        x = rec[s : s + n].astype(np.float32)
        if _rms(x) > 0.3:  # recordings are unit-RMS: skip crops that are mostly pause
            break
    level = float(rng.uniform(-32, -16))
    x = x * np.float32(10 ** (level / 20) / _rms(x))
    pk = float(np.max(np.abs(x)))
    if pk > PEAK:
        x = x * np.float32(PEAK / pk)
    return x, {"kind": "music" if music else "speech", "id": str(ids[i]), "start": s, "level_dbfs": round(level, 2)}


def make_pair(src: Source, seed: int, index: int, seconds: float = 3.0, ops=DEFAULT_OPS) -> dict:
    """The (seed, index)-th training pair: {x (clean), y (changed), params, clip}; deterministic."""
    rng = np.random.default_rng([seed, index])
    n = int(round(seconds * src.sr))
    x, clip = clean_clip(rng, src, n)
    y, params = degrade(x, src.sr, rng, src.rir, clip["kind"], ops)
    return {"x": x, "y": y, "params": params, "clip": clip}
