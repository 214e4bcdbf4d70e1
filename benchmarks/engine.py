"""Engine benchmark: host overhead per block and chain RTF at 48 kHz, blocks 64/128/256/512.

    .venv/bin/python benchmarks/engine.py [--seconds 10] [--repeats 3]

Writes benchmarks/results/engine.{md,json}. One thread (the host is single-threaded; numpy's FFT
is single-threaded; OMP/MKL pinned to 1). Each figure is the median over --repeats runs, so a
background process on the machine moves it less. Target: the identity chain (pre-board,
default 20 ms STFT with no stage, post-board) <= 2 % of one core at 128-sample blocks.
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    a = ap.parse_args(argv)
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
