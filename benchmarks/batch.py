"""Batch rendering throughput: 1 and 2 worker processes and Ray local, per-file overhead, resume cost.

    RESCULPT_DATA=/path/to/data .venv/bin/python benchmarks/batch.py [--files 200] [--preset podcast-clean]

Generates ``--files`` inputs (default 200) into a temporary folder from the shared speech recordings
(``resculpt.models.data``): lengths drawn uniformly from 1-20 s (speech clips joined end to end),
rates cycling 16 / 44.1 / 48 kHz, every fourth file stereo, half FLAC and half WAV, in 10 sub-folders.
Then renders the folder with ``render_batch`` once per configuration, each into a fresh output
folder, and finally times a resume pass over a finished folder (every file current).

Figures: throughput = audio-seconds rendered per wall-second (wall time of the whole call, worker
start-up and Ray start-up included); scaling efficiency = throughput / (workers x the 1-worker
throughput); per-file overhead = (wall time x workers - the render time render_file reports) / files,
the cost of everything around the signal processing (process start, decoding set-up, chain
construction, hashing, manifest, renames). Writes benchmarks/results/batch.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from resculpt.models import data
from resculpt.plugin_host.audio_io import write_audio
from resculpt.plugin_host.batch import render_batch

RATES = (16000, 44100, 48000)


def make_inputs(folder: Path, n: int, seed: int = 0) -> tuple[float, dict]:
    """Write ``n`` speech files of 1-20 s at mixed rates; returns (total audio seconds, counts)."""
    items = data.select("speech")
    if not items:
        raise SystemExit("no speech in the data folder (set RESCULPT_DATA)")
    rng = np.random.default_rng(seed)
    cache: dict = {}
    total, per_rate = 0.0, {r: 0 for r in RATES}
    for i in range(n):
        sr = RATES[i % len(RATES)]
        target = int(rng.uniform(1.0, 20.0) * sr)
        parts, have = [], 0
        while have < target:
            it = items[int(rng.integers(len(items)))]
            key = (it.path, sr)
            if key not in cache:
                cache[key] = data.load(it, sample_rate=sr)[0]
            parts.append(cache[key])
            have += len(cache[key])
        x = np.concatenate(parts)[:target]
        x = np.stack([x, np.roll(x, sr // 100)]) if i % 4 == 3 else x[None]
        ext = "flac" if i % 2 else "wav"
        write_audio(folder / f"part{i % 10}" / f"clip{i:04d}.{ext}", x, sr)
        total += target / sr
        per_rate[sr] += 1
    return total, per_rate


def run(name: str, workers: int, ray, src: Path, out: Path, preset: str) -> dict:
    """One configuration into a fresh folder: throughput, CPU time of the worker processes (children
    of this process; Ray's workers are not, so None there), load average around the run."""
    shutil.rmtree(out, ignore_errors=True)
    load0 = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = render_batch([src], out, preset, jobs=workers, ray=ray, progress=False)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    done = [r for r in s["files_detail"] if r["status"] == "rendered"]
    render_s = sum(r["seconds"] for r in done)
    task_s = sum(r["task_seconds"] for r in done)
    n = max(1, len(done))
    return {"config": name, "workers": workers, "files": s["files"], "rendered": s["rendered"],
            "failed": s["failed"], "audio_s": s["audio_seconds"], "wall_s": s["wall_seconds"],
            "throughput": s["throughput"], "render_s": render_s, "task_s": task_s,
            "overhead_ms_per_file": 1000 * (s["wall_seconds"] * workers - render_s) / n,
            "worker_overhead_ms_per_file": 1000 * (task_s - render_s) / n,
            "cpu_s_per_audio_s": cpu / s["audio_seconds"] if ray is None else None,
            "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--preset", default="podcast-clean")
    ap.add_argument("--no-ray", action="store_true", help="leave out the Ray local run")
    ap.add_argument("--repeats", type=int, default=2, help="runs per configuration (the fastest is reported)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "batch"))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="resculpt-batch-bench-"))
    try:
        src = tmp / "in"
        t0 = time.perf_counter()
        total, per_rate = make_inputs(src, a.files)
        print(f"{a.files} files, {total:.0f} s of audio, generated in {time.perf_counter() - t0:.0f} s", flush=True)
        configs = [("1 worker", 1, None), ("2 workers", 2, None)] + ([] if a.no_ray else [("Ray local", 2, "local")])
        runs = {name: [] for name, _, _ in configs}
        for rep in range(a.repeats):  # configurations alternate, so a burst of load hits each alike
            for name, jobs, ray in configs:
                r = run(name, jobs, ray, src, tmp / f"out-{jobs}-{ray}", a.preset)
                r["repeat"] = rep
                runs[name].append(r)
                print(json.dumps(r), flush=True)
        rows = [max(runs[name], key=lambda r: r["throughput"]) for name, _, _ in configs]
        s = render_batch([src], tmp / "out-2-None", a.preset, jobs=2, progress=False)
        resume = {"files": s["files"], "skipped": s["skipped"], "wall_s": s["wall_seconds"],
                  "ms_per_file": 1000 * s["wall_seconds"] / max(1, s["files"])}
        print(json.dumps(resume), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]["throughput"]
    for r in rows:
        r["efficiency"] = r["throughput"] / (r["workers"] * base)
    res = {"preset": a.preset, "files": a.files, "audio_s": total, "files_per_rate": per_rate, "rows": rows,
           "all_runs": runs, "repeats": a.repeats,
           "resume": resume, "cpus": os.cpu_count(), "python": platform.python_version(),
           "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    head = (f"`benchmarks/batch.py --files {a.files} --preset {a.preset}`, measured {res['measured']} on "
            f"{os.cpu_count()} cores. Files: 1-20 s, {per_rate[16000]} at 16 kHz, {per_rate[44100]} at 44.1 kHz, "
            f"{per_rate[48000]} at 48 kHz, every fourth stereo, half FLAC and half WAV. Wall time includes worker "
            f"(and Ray) start-up. The fastest of {a.repeats} alternating runs per configuration. The machine is "
            "shared with other work (the 1-minute load average before and after each reported run is in the "
            "table; above 2 the cores were oversubscribed), so the throughputs and the scaling efficiency are "
            "lower bounds. CPU-s per audio-s (the worker processes' CPU time) does not depend on that load: "
            "equal figures for 1 and 2 workers mean two workers do not slow each other beyond sharing the cores.")
    lines = [f"# Batch rendering throughput ({a.files} files, {total:.0f} s of speech, preset `{a.preset}`)", "",
             head, "", ("| configuration | workers | throughput (audio-s / wall-s) | scaling efficiency | wall | "
                        "per-file overhead (wall) | per-file overhead (in worker) | CPU-s per audio-s | load avg |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cpu = f"{r['cpu_s_per_audio_s']:.4f}" if r["cpu_s_per_audio_s"] is not None else "n/a"
        lines.append(f"| {r['config']} | {r['workers']} | {r['throughput']:.1f} | {100 * r['efficiency']:.0f} % | "
                     f"{r['wall_s']:.1f} s | {r['overhead_ms_per_file']:.0f} ms | "
                     f"{r['worker_overhead_ms_per_file']:.0f} ms | {cpu} | "
                     f"{r['load_1min'][0]:.1f} → {r['load_1min'][1]:.1f} |")
    lines += ["", ("Per-file overhead (wall) = (wall time × workers − processing time) / files: everything "
                   "around the signal processing, worker and Ray start-up included. In worker = the worker's time "
                   "on a file minus its processing time (hashing, decoder and chain set-up).")]
    resume_line = (f"Resume pass over the finished folder (all {resume['files']} files current): "
                   f"{resume['wall_s']:.2f} s, {resume['ms_per_file']:.1f} ms per file.")
    lines += ["", resume_line, ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
