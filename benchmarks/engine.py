"""Engine benchmark: host overhead per block and chain RTF at 48 kHz, blocks 64/128/256/512.

    .venv/bin/python benchmarks/engine.py [--seconds 10] [--repeats 3]
    .venv/bin/python benchmarks/engine.py --voice-cost [--base REV] [--rounds 5] [--block 480 --block 128]

Writes benchmarks/results/engine.{md,json}. One thread (the host is single-threaded; numpy's FFT
is single-threaded; OMP/MKL pinned to 1). Each figure is the median over --repeats runs, so a
background process on the machine moves it less. Target: the identity chain (pre-board,
default 20 ms STFT with no stage, post-board) <= 2 % of one core at 128-sample blocks.

``--voice-cost``: the voice chains (``VOICE_PRESETS``: the ``anon-*`` pseudo-speakers and ``deep-voice``)
at 48 kHz mono in blocks of ``--block`` samples (repeatable; 128 if none), timed with the thread's CPU clock
(as ``resculpt bench --cpu-time``), on the bundled speech clip, in rounds of 5 s; writes
benchmarks/results/voice_cost.{md,json} (best and median round, the machine's load average, and whether the
anon stage ran its compiled loops, dsp/voice/kernels.py). With ``--base REV`` revision REV's code (built into
a temporary folder, as scripts/bench-compare.sh does) runs in a second process, and the two take turns every
100 blocks (of 128 samples; as much audio at other sizes), so a loaded machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from resculpt.plugin_host.bench import bench_chain  # noqa: E402
from resculpt.plugin_host.chain import Chain  # noqa: E402
from resculpt.plugin_host.layout import Layout  # noqa: E402
from resculpt.plugin_host.presets import list_presets  # noqa: E402

BLOCKS = (64, 128, 256, 512)
RENDER_BLOCK = 4096  # plugin_host.render's default block
# Identity chain: a 0 dB gain on the pre-board, the default STFT with no stage, a 20 Hz DC/subsonic
# high-pass on the post-board (transparent in the audio band).
IDENTITY = Layout(pre=("trim",), post=("hpf",), force_stft=True)


def run(chain, block, seconds, repeats):
    rs = [bench_chain(chain, seconds=seconds, block=block) for _ in range(repeats)]
    rtf = statistics.median(r["rtf"] for r in rs)
    best = min(rs, key=lambda r: abs(r["rtf"] - rtf))
    return best


VOICE_PRESETS = ("anon-low", "anon-high", "anon-neutral", "anon-strong", "anon-far", "deep-voice")


# A worker process (one per side, with whichever resculpt its PYTHONPATH gives): the preset's chain at 48 kHz
# mono, blocks of B samples, fed the bundled clip (passed explicitly: an installed build has no examples/
# folder next to it, and `resculpt bench` would fall back to white noise, on which the anon stage finds no
# voice and never shifts). Its first line says whether the stage runs compiled loops; then each line "k" on
# stdin runs the next k blocks and answers [chain, stage] thread CPU seconds (stage: the spectral stage's
# process_frames, as bench_chain wraps it).
_WORKER = """
import json, sys, time
import numpy as np
from scipy.signal import resample_poly
from resculpt.plugin_host.audio_io import read_audio
from resculpt.plugin_host.chain import Chain
preset, clip, B = sys.argv[1], sys.argv[2], int(sys.argv[3])
x, sr = read_audio(clip)
g = np.gcd(sr, 48000)
x = np.ascontiguousarray(resample_poly(x[:1], 48000 // g, sr // g, axis=1), np.float32)
chain = Chain.from_preset(preset, sample_rate=48000, channels=1, max_block=B)
st = chain.graph.stages[0]
print(json.dumps(bool(getattr(st, "_kern", False))), flush=True)
acc = [0.0]
run = st.process_frames
def timed(*a):
    t = time.thread_time()
    run(*a)
    acc[0] += time.thread_time() - t
st.process_frames = timed
blk = np.zeros((1, B), np.float32)
pos, n = 0, x.shape[1] // B * B
for line in sys.stdin:
    acc[0] = 0.0
    t = time.thread_time()
    for _ in range(int(line)):
        np.copyto(blk, x[:, pos : pos + B])
        chain.process(blk)
        pos = (pos + B) % n
    print(json.dumps([time.thread_time() - t, acc[0]]), flush=True)
"""
CLIP = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"
CHUNK = 100  # blocks of 128 samples (0.27 s of audio) per turn: the sides alternate this often, so both meet the same load


def _worker(preset: str, pythonpath: str | None, cwd: str, block: int):
    """(process, whether its stage runs compiled loops)."""
    import subprocess

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    # Run from a folder outside the repository: from its root Python would import its resculpt/ folder first.
    w = subprocess.Popen([sys.executable, "-c", _WORKER, preset, str(CLIP), str(block)], cwd=cwd, env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return w, json.loads(w.stdout.readline())


def _turn(w, k: int) -> list[float]:
    w.stdin.write(f"{k}\n")
    w.stdin.flush()
    return json.loads(w.stdout.readline())


def voice_cost(base: str | None, rounds: int, seconds: float, out: Path, block_sizes=(128,),
               presets=VOICE_PRESETS) -> None:
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parent.parent
    voice = tuple(presets) == VOICE_PRESETS  # the default set, named as such even if the base lacks one of them
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        sides = [("this checkout", None)]
        if base:
            src, pkg = Path(tmp) / "src", Path(tmp) / "pkg"
            subprocess.run(["git", "-C", str(root), "worktree", "add", "-f", "-q", str(src), base], check=True)
            missing = [p for p in presets if not (src / "presets" / f"{p}.json").is_file()]
            if missing:  # a preset newer than the base has nothing to compare with
                print(f"not in {base}, not timed: {', '.join(missing)}", flush=True)
                presets = tuple(p for p in presets if p not in missing)
            try:
                subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                                "--target", str(pkg), str(src)], check=True, capture_output=True)
            finally:
                subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(src)], check=False)
            check = subprocess.run([sys.executable, "-c", "import resculpt.dsp.stft as m; print(m.__file__)"],
                                   cwd=tmp, env={**os.environ, "PYTHONPATH": str(pkg)}, capture_output=True,
                                   text=True, check=True).stdout
            if not check.strip().startswith(str(pkg)):
                raise SystemExit(f"base build not imported: {check}")
            sides = [(base, str(pkg)), ("this checkout", None)]
        # res[(preset, side, block)]: one (chain RTF, stage RTF) per round of `seconds` of audio;
        # compiled[(preset, side)]: whether that side's stage ran compiled loops.
        res, compiled = {}, {}
        for B in block_sizes:
            blocks = int(seconds * 48000) // B
            chunk = max(1, CHUNK * 128 // B)
            for p in presets:
                workers = {}
                try:
                    for name, path in sides:
                        workers[name], compiled[(p, name)] = _worker(p, path, tmp, B)
                    for w in workers.values():
                        _turn(w, 200 * 128 // B)  # warm-up
                    for k in range(rounds):
                        tot = {name: [0.0, 0.0] for name, _ in sides}
                        for c, i in enumerate(range(0, blocks, chunk)):
                            order = sides if c % 2 == 0 else sides[::-1]
                            for name, _ in order:
                                ch, stg = _turn(workers[name], min(chunk, blocks - i))
                                tot[name][0] += ch
                                tot[name][1] += stg
                        dur = blocks * B / 48000
                        for name, _ in sides:
                            res.setdefault((p, name, B), []).append({"chain": tot[name][0] / dur,
                                                                      "stage": tot[name][1] / dur})
                    print(f"{p} ({B}-sample blocks): chain RTF per round " + "; ".join(
                        f"{name} " + " ".join(f"{r['chain']:.3f}" for r in res[(p, name, B)]) for name, _ in sides),
                        flush=True)
                finally:
                    for w in workers.values():
                        w.stdin.close()
                        w.wait()
    load1 = os.getloadavg()
    names = [n for n, _ in sides]

    def stat(p, n, B, key):
        v = [r[key] for r in res[(p, n, B)]]
        return min(v), statistics.median(v)

    def kern(n):
        return "compiled loops" if any(compiled[(p, n)] for p in presets) else "numpy"

    sizes = " and ".join(f"{B}-sample ({1000 * B / 48000:.3g} ms)" for B in block_sizes)
    blocks_arg = "".join(f" --block {B}" for B in block_sizes)
    title = "Voice chains" if voice else "Chains " + ", ".join(presets)
    preset_arg = "" if voice else "".join(f" --preset {p}" for p in presets)
    md = [f"# {title}: CPU per audio second (48 kHz mono, {sizes} blocks, one thread)", "",
          f"`python benchmarks/engine.py --voice-cost{' --base ' + base if base else ''} --rounds {rounds}"
          f"{blocks_arg}{preset_arg}`: the bundled speech clip streamed through each preset's chain, thread CPU time, "
          f"{rounds} rounds of {seconds:g} s" + (f", {base} and this checkout each in its own process, taking "
                                                 f"turns every {CHUNK * 128 / 48000:.2f} s of audio, so both meet "
                                                 "the same load" if base else "")
          + "; best round and median round. Stage: the chain's first spectral stage's process_frames (the `anon` "
          "or `voice` stage in the voice chains; the `anon` stage's F0 search runs in the STFT section's analysis "
          "and is counted in the chain only). "
          f"Anon stage: {'; '.join(f'{n}: {kern(n)}' for n in names)} (dsp/voice/kernels.py). "
          f"Machine: {os.cpu_count()} CPUs, load average (1 min) {load0[0]:.2f} at the start, {load1[0]:.2f} at "
          "the end.", ""]
    for B in block_sizes:
        md += [f"{B}-sample blocks:", "",
               "| preset | side | chain RTF best | chain RTF median | stage RTF best | stage RTF median |",
               "|---|---|---:|---:|---:|---:|"]
        for p in presets:
            for n in names:
                cb, cm = stat(p, n, B, "chain")
                sb, sm = stat(p, n, B, "stage")
                md.append(f"| {p} | {n} | {cb:.4f} | {cm:.4f} | {sb:.4f} | {sm:.4f} |")
        if base:
            md += ["", f"| preset | chain, this checkout / {base}: best | median | stage: best | median |",
                   "|---|---:|---:|---:|---:|"]
            for p in presets:
                r = [stat(p, "this checkout", B, key)[j] / stat(p, base, B, key)[j]
                     for key in ("chain", "stage") for j in (0, 1)]
                md.append(f"| {p} | {r[0]:.2f} | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.2f} |")
        md.append("")
    text = "\n".join(md)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    stem = "voice_cost" if voice else "cost_" + "_".join(presets)
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(
        {"base": base, "rounds": rounds, "seconds": seconds, "chunk_blocks_128": CHUNK, "cpus": os.cpu_count(),
         "loadavg_start": load0, "loadavg_end": load1, "blocks": list(block_sizes),
         "compiled": {f"{p}|{n}": v for (p, n), v in compiled.items()},
         "runs": {f"{p}|{n}|{B}": v for (p, n, B), v in res.items()}}, indent=2))
    print(f"wrote {out / (stem + '.md')}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--voice-cost", action="store_true", help="the voice chains' CPU, mono, thread CPU time")
    ap.add_argument("--base", help="with --voice-cost: also time this git revision, alternating")
    ap.add_argument("--rounds", type=int, default=5, help="with --voice-cost: rounds per preset and side")
    ap.add_argument("--block", type=int, action="append",
                    help="with --voice-cost: block size in samples (repeatable; default 128)")
    ap.add_argument("--preset", action="append",
                    help="with --voice-cost: time these presets instead of the voice chains (repeatable; written to "
                         "cost_<presets>.md); the timed stage is the chain's first spectral stage")
    a = ap.parse_args(argv)
    if a.voice_cost:
        voice_cost(a.base, a.rounds, 5.0, Path(a.out), tuple(a.block or (128,)), tuple(a.preset or VOICE_PRESETS))
        return
    rows = []
    for block in BLOCKS:
        empty = run(Chain(Layout(), 48000, 2, block), block, a.seconds, a.repeats)
        ident = run(Chain(IDENTITY, 48000, 2, block, params={"hpf.cutoff_hz": 20.0}), block, a.seconds, a.repeats)
        rows.append({"block": block, "period_us": empty["period_us"],
                     "host_overhead_us": empty["per_block_us"]["median"],
                     "identity_rtf": ident["rtf"], "identity_block_us": ident["per_block_us"]["median"],
                     "identity_p99_us": ident["per_block_us"]["p99"], "latency_samples": ident["latency_samples"],
                     "stages": ident["stages"]})
        print(f"block {block:4d}: host overhead {rows[-1]['host_overhead_us']:.1f} us/block, identity chain "
              f"RTF {100 * ident['rtf']:.2f} %", flush=True)
    presets = []
    for name, _ in list_presets():
        r = run(Chain.from_preset(name, 48000, 2, 128), 128, a.seconds, a.repeats)
        # Offline renders stream 4096-sample blocks (`resculpt render`): the spectral stages then get the
        # ~17 frames of a block as one batch.
        rr = run(Chain.from_preset(name, 48000, 2, RENDER_BLOCK), RENDER_BLOCK, a.seconds, a.repeats)
        presets.append({"preset": name, "rtf": r["rtf"], "render_rtf": rr["rtf"], "latency_samples": r["latency_samples"],
                        "latency_ms": r["latency_ms"], "p99_us": r["per_block_us"]["p99"]})
        print(f"preset {name:18s} RTF {100 * r['rtf']:.2f} % (render blocks {100 * rr['rtf']:.2f} %)  "
              f"latency {r['latency_ms']:.2f} ms", flush=True)
    info = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
            "seconds": a.seconds, "repeats": a.repeats}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine.json").write_text(json.dumps({"info": info, "blocks": rows, "presets": presets}, indent=2))
    md = ["# Engine benchmark (48 kHz, stereo, one thread)", "",
          f"`python benchmarks/engine.py --seconds {a.seconds:g} --repeats {a.repeats}`; median of repeats; "
          f"{info['cpus']} CPUs, Python {info['python']}.", "",
          "| block | period | host overhead / block | identity chain RTF | identity chain / block (median, p99) |",
          "|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['block']} | {r['period_us']:.0f} us | {r['host_overhead_us']:.1f} us | "
                  f"{100 * r['identity_rtf']:.2f} % | {r['identity_block_us']:.1f} us, {r['identity_p99_us']:.1f} us |")
    md += ["", "Identity chain = pre-board Gain 0 dB, default STFT (20 ms window, latency 959 samples) with no "
           "stage, post-board 20 Hz high-pass. Target: <= 2 % at 128-sample blocks.", "",
           f"| preset | RTF, 128-sample blocks (live) | RTF, {RENDER_BLOCK}-sample blocks (render) | latency | "
           "p99 block time (128) |", "|---|---:|---:|---:|---:|"]
    for p in presets:
        md.append(f"| {p['preset']} | {100 * p['rtf']:.2f} % | {100 * p['render_rtf']:.2f} % | "
                  f"{p['latency_samples']} samples = {p['latency_ms']:.2f} ms | {p['p99_us']:.0f} us |")
    (out / "engine.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / 'engine.md'}")


if __name__ == "__main__":
    main()
