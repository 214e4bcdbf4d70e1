"""Speed and quality of quantised / pruned model bundles against their float32 source, in one run.

    bash scripts/quantize-bench.sh                 # builds the variants with .venv, then runs this in .venv-bench
    .venv-bench/bin/python benchmarks/quantize.py --mask float=models/weights/mask int8=runs/mask-int8 \\
        [--resculpt float=runs/rs-fresh/bundle int8=runs/rs-int8] [--n-val 8] [--seconds 10] [--rounds 15]

Mask bundles (``--mask NAME=BUNDLE``; the first is the reference):
- speed: thread CPU per one-frame call of the graph alone, and the mask stage alone in the live tier's shape, 48 kHz mono, 128-sample blocks, low-latency STFT, one
  thread (``scripts/mask_capacity_rtf.py``'s runner): RTF = CPU seconds of the calling thread per second of
  audio, every bundle timed round-robin on the same noise, best round each;
- quality: ``benchmarks/denoise.py``'s ablation scoring (the mask stage alone at 16 kHz, low-latency STFT,
  mask.reduction_db 30) on the first ``--n-val`` validation utterances x 4 SNRs: PESQ-WB, STOI, SI-SDR, DNSMOS
  OVRL, and each variant's mean per-file difference from the reference on the same files with its standard error.
Resculpt bundles (``--resculpt NAME=BUNDLE``): speed only (the graph's call, and ``benchmarks/resculpt_model.py``'s chain: 48 kHz mono,
10 ms blocks, default STFT, a published target), timed in the same round-robin.

Writes benchmarks/results/quantize.{md,json}.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "scripts"))
import denoise
from mask_capacity_rtf import stage_runner

METRICS = ("pesq_wb", "stoi", "si_sdr", "dnsmos_ovrl")
# A variant replaces the float bundle only if it is faster (stage RTF and model call) and costs at most this much
# on the same files (mean per-file difference): the size of the run-to-run noise of these metrics.
MAX_LOSS = {"pesq_wb": 0.02, "stoi": 0.005}


def verdict(ref: dict, r: dict) -> tuple[bool, str]:
    """(wins, reason) of mask variant ``r`` against the reference ``ref`` (entries of the results' "mask")."""
    why = []
    if not (r["rtf"] < ref["rtf"] and r["call_us"] < ref["call_us"]):
        why.append(f"not faster (stage RTF x{r['rtf'] / ref['rtf']:.2f}, model call x{r['call_us'] / ref['call_us']:.2f})")
    for m, lim in MAX_LOSS.items():
        if r["delta"][m][0] < -lim:
            why.append(f"{m} {r['delta'][m][0]:+.3f} (limit -{lim:g})")
    return not why, "; ".join(why) or (f"faster (stage RTF x{r['rtf'] / ref['rtf']:.2f}) within the quality limits")


def _pairs(specs):
    return {s.split("=", 1)[0]: Path(s.split("=", 1)[1]) for s in specs or ()}


def _describe(path: Path) -> dict:
    cfg = json.loads((path / "config.json").read_text())
    q = cfg.get("quantisation") or {}
    tr = cfg.get("training") or {}
    return {"path": str(path), "sha256": cfg["sha256"], "training_step": tr.get("step", tr.get("steps")), "precision": cfg.get("precision", "float32"),
            "prune": (q.get("prune") or {}).get("fraction", 0.0), "onnx_bytes": cfg["onnx_bytes"],
            "batched_graph": bool(cfg.get("seq_model")), "kernels": q.get("kernels"),
            "golden_max_dev_from_source": q.get("golden_max_dev_from_source")}


def resculpt_timer(bundle: Path):
    """x48 (n,) -> CPU seconds of the calling thread to run the resculpt stage over x48 in 10 ms blocks."""
    import resculpt_model

    tgt = resculpt_model.speed_target()

    def timed(x):
        ch = resculpt_model.model_chain(bundle, 48000, 480, tgt)
        y = np.array(x, np.float32)[None]  # processed in place: the caller's audio stays as it is
        t0 = time.thread_time()
        for i in range(0, y.shape[1] - 479, 480):
            ch.process(y[:, i : i + 480])
        return time.thread_time() - t0

    return timed


def call_timer(path: Path, calls: int = 2000):
    """() -> CPU seconds of the calling thread for ``calls`` one-frame calls of the bundle's ``model.onnx`` (zero
    inputs and state, session.run): the graph alone, without the stage's features and gain application."""
    from resculpt.models.mask.bundle import make_session

    sess = make_session(path / "model.onnx")
    feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in sess.get_inputs()}

    def timed():
        t0 = time.thread_time()
        for _ in range(calls):
            sess.run(None, feed)
        return time.thread_time() - t0

    return timed


def call_speed(paths: dict, rounds: int, calls: int = 2000) -> dict:
    """Microseconds of thread CPU per one-frame model call, round-robin over ``paths``, best round each."""
    timers = {k: call_timer(p, calls) for k, p in paths.items()}
    best = {k: float("inf") for k in timers}
    for _ in range(rounds):
        for k, t in timers.items():
            best[k] = min(best[k], t())
    return {k: 1e6 * v / calls for k, v in best.items()}


def speed(timers: dict, seconds: float, rounds: int) -> dict:
    """RTF of every timer on the same ``seconds`` of 48 kHz noise, round-robin, best round each."""
    x = (0.05 * np.random.default_rng(0).standard_normal(int(seconds * 48000))).astype(np.float32)
    for t in timers.values():
        t(x[:24000])  # warm-up
    best = {k: float("inf") for k in timers}
    for _ in range(rounds):
        for k, t in timers.items():
            best[k] = min(best[k], t(x))
    return {k: v / seconds for k, v in best.items()}


def quality(bundles: dict, items: list, cache: Path | None) -> dict:
    """{variant: [per-file scores]} on ``items`` (denoise.py's ablation scoring and cache)."""
    out = {}
    for name, path in bundles.items():
        fn = denoise.resculpt_bundle(path, params={"mask.reduction_db": 30.0})
        key = f"ablation-{_describe(path)['sha256'][:12]}-r30"  # the same key as denoise.py --ablation
        rows = []
        for it in items:
            def compute(it=it, fn=fn):
                return denoise.metrics(denoise.align(fn(it["noisy"]), it["clean"])[0], it["clean"])

            rec = denoise.cached_scores(cache, key, it, compute)[0]
            rows.append({k: rec[k] for k in METRICS})
        out[name] = rows
        print(name, {k: round(float(np.nanmean([r[k] for r in rows])), 4) for k in METRICS}, flush=True)
    return out


def table(res: dict, meta: dict) -> str:
    L = [(f"Measured {meta['time_utc']} UTC on {meta['cpu_count']} shared cores (load average {meta['load_avg'][0]:.1f}), "
         f"one thread; RTF = thread CPU seconds per second of audio, round-robin, best of {meta['rounds']} rounds on "
         f"{meta['seconds']:g} s; model call = thread CPU µs of one `model.onnx` call (one frame, session.run), best of "
         f"{meta['rounds']} rounds of 2000."), ""]
    mask = res.get("mask") or {}
    if mask:
        ref = next(iter(mask))
        L += [(f"Mask stage: RTF at 48 kHz mono, 128-sample blocks, low-latency STFT; quality on {meta['n_files']} "
              "validation mixtures (SNR 0/5/10/15 dB) at 16 kHz, mask.reduction_db 30; Δ = mean per-file difference "
              f"from `{ref}` on the same files ± its standard error."), "",
              ("| variant | precision | pruned | ONNX bytes | batched graph | model call µs | RTF | RTF / ref | PESQ-WB | STOI | "
              "SI-SDR dB | DNSMOS OVRL | Δ PESQ-WB | Δ STOI | Δ DNSMOS |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for k, r in mask.items():
            d, m, dl = r["bundle"], r["mean"], r["delta"]
            ds = " | ".join(f"{dl[x][0]:+.3f} ± {dl[x][1]:.3f}" for x in ("pesq_wb", "stoi", "dnsmos_ovrl"))
            L.append(f"| {k} | {d['precision']} | {d['prune']:g} | {d['onnx_bytes']} | {'yes' if d['batched_graph'] else 'no'} "
                     f"| {r['call_us']:.1f} | {r['rtf']:.4f} | {r['rtf'] / mask[ref]['rtf']:.2f} | {m['pesq_wb']:.3f} | {m['stoi']:.3f} | "
                     f"{m['si_sdr']:.2f} | {m['dnsmos_ovrl']:.3f} | {ds} |")
        L.append("")
        lims = ", ".join(f"{k} {-v:g}" for k, v in MAX_LOSS.items())
        L.append(f"Rule: a variant replaces `{ref}` only if it is faster (stage RTF and model call) and loses no more "
                 f"than {lims} (mean per-file difference).")
        L.append("")
        for k, r in list(mask.items())[1:]:
            L.append(f"- `{k}`: {'ships' if r['wins'] else 'not shipped'}: {r['why']}")
        L.append("")
    rs = res.get("resculpt") or {}
    if rs:
        ref = next(iter(rs))
        src = rs[ref]["bundle"]
        L += [(f"Resculpt stage: RTF at 48 kHz mono, 10 ms blocks, default STFT, a published target (speed only); "
              f"reference `{src['path']}` (training step {src['training_step']})."), "",
              "| variant | precision | pruned | ONNX bytes | model call µs | RTF | RTF / ref |", "|---|---|---|---|---|---|---|"]
        for k, r in rs.items():
            d = r["bundle"]
            L.append(f"| {k} | {d['precision']} | {d['prune']:g} | {d['onnx_bytes']} | {r['call_us']:.1f} | {r['rtf']:.4f} | "
                     f"{r['rtf'] / rs[ref]['rtf']:.2f} |")
        L.append("")
    for part in ("mask", "resculpt"):
        for k, r in (res.get(part) or {}).items():
            if r["bundle"]["kernels"]:
                kern = ", ".join(f"{o} x{n}" for o, n in r["bundle"]["kernels"].items())
                L.append(f"- {part} `{k}`: onnxruntime runs {kern}; golden outputs' largest "
                         "deviation from the float bundle "
                         + ", ".join(f"{o} {v:.3g}" for o, v in r["bundle"]["golden_max_dev_from_source"].items()))
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/quantize.py", description=__doc__.split("\n")[0])
    ap.add_argument("--mask", nargs="*", metavar="NAME=BUNDLE", help="mask bundles; the first is the reference")
    ap.add_argument("--resculpt", nargs="*", metavar="NAME=BUNDLE", help="resculpt bundles (speed only)")
    ap.add_argument("--n-val", type=int, default=8, help="validation utterances (x 4 SNRs) for the quality scores")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=15, help="round-robin timing rounds (best round each)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quantize"))
    ap.add_argument("--cache", default=str(REPO / "runs" / "bench-cache"), help="denoise.py's score cache ('' to disable)")
    a = ap.parse_args(argv)
    masks, rss = _pairs(a.mask), _pairs(a.resculpt)
    timers = {("mask", k): stage_runner(p) for k, p in masks.items()}
    timers.update({("resculpt", k): resculpt_timer(p) for k, p in rss.items()})
    rtf = speed(timers, a.seconds, a.rounds)
    us = call_speed({("mask", k): p for k, p in masks.items()} | {("resculpt", k): p for k, p in rss.items()}, a.rounds)
    res = {"mask": {}, "resculpt": {}}
    for (part, k), v in rtf.items():
        res[part][k] = {"bundle": _describe((masks if part == "mask" else rss)[k]), "rtf": v, "call_us": us[(part, k)]}
        print(f"{part} {k} RTF {v:.4f}, {us[(part, k)]:.1f} us per one-frame call", flush=True)
    n_files = 0
    if masks:
        items = denoise.load_sets(a.n_val, 0)["val"]
        n_files = len(items)
        scores = quality(masks, items, Path(a.cache) if a.cache else None)
        ref = next(iter(masks))
        for k, rows in scores.items():
            res["mask"][k]["mean"] = {m: float(np.nanmean([r[m] for r in rows])) for m in METRICS}
            res["mask"][k]["delta"] = {}
            for m in METRICS:
                d = np.array([r[m] - q[m] for r, q in zip(rows, scores[ref])], float)
                d = d[np.isfinite(d)]
                res["mask"][k]["delta"][m] = (float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0)
            res["mask"][k]["per_file"] = rows
        for k in list(masks)[1:]:
            res["mask"][k]["wins"], res["mask"][k]["why"] = verdict(res["mask"][ref], res["mask"][k])
    meta = {"time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "cpu_count": os.cpu_count(),
            "load_avg": os.getloadavg(), "seconds": a.seconds, "rounds": a.rounds, "n_files": n_files,
            "machine": os.uname().nodename}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".json").write_text(json.dumps({"meta": meta, "results": res}, indent=2))
    md = table(res, meta)
    Path(str(out) + ".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
