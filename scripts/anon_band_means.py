"""How much of the speaker is left in each band's long-term level after a system, and when in an utterance.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_band_means.py \
        [--speakers 64 --skip-speakers 48] [--system anon-neutral ...] [--out benchmarks/results/anon_band_means.md]

For the benchmark's train-split speakers (by default the 64 after the first 48: none of them trained a learned
stage), each system's output goes through Resemblyzer's own front end (volume normalisation, VAD trimming,
40-band mel power, 25 ms / 10 ms; scripts/anon_mel_probe.py's Embedder) and each chunk's mean log-mel level per
band is taken over a stretch of the chunk: its first 0.7 s, the rest, the whole. Per band, the F-ratio is the
variance of those means between speakers over their variance within a speaker (between chunks); averaged over
the 40 bands. An F-ratio near 1/(chunks per speaker) says a band's long-term level no longer tells speakers apart;
the attacker's "long-term" oracle edit (anon_mel_probe.py) removes exactly this.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench
from anon_mel_probe import Embedder

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "anon_band_means.md"
STRETCHES = (("first 0.7 s", 0, 70), ("after 0.7 s", 70, None), ("whole", 0, None))  # mel frames of 10 ms


def f_ratio(M):
    """M (speakers, chunks, bands) -> mean over bands of between-speaker / within-speaker variance."""
    between = M.mean(1).var(0, ddof=1)
    within = M.var(1, ddof=1).mean(0)
    return float((between / np.maximum(within, 1e-9)).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speakers", type=int, default=64)
    ap.add_argument("--skip-speakers", type=int, default=48)
    ap.add_argument("--system", action="append", default=[], help="preset or PRESET@key=value (the original always runs)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    bench.one_thread()
    t0 = time.time()
    utts = bench.utterances(a.speakers, a.skip_speakers, "train")[0]
    emb = Embedder()
    systems = {"original": lambda x, rng=None: x}
    for p in a.system:
        systems[p] = bench.chain_system(p)
    rows = []
    for name, fn in systems.items():
        M = {s: [] for s, _, _ in STRETCHES}
        for chunks in utts.values():
            per = {s: [] for s, _, _ in STRETCHES}
            for x in chunks:
                L = np.log(emb.mel_of(fn(x))[0] + 1e-10)
                for s, i0, i1 in STRETCHES:
                    per[s].append(L[i0:i1].mean(0))
            for s, v in per.items():
                M[s].append(v)
        r = {s: f_ratio(np.array(M[s])) for s in M}
        rows.append((name, r))
        print(name, {k: round(v, 3) for k, v in r.items()}, f"{time.time() - t0:.0f} s", flush=True)
    cmd = (f"scripts/anon_band_means.py --speakers {a.speakers} --skip-speakers {a.skip_speakers}"
           + "".join(f" --system {p}" for p in a.system))
    head = (f"`{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({time.time() - t0:.0f} s): "
            f"{len(utts)} train-split speakers x {bench.N_UTT} chunks of {bench.SEG_S} s. Each cell: the mean over "
            "Resemblyzer's 40 mel bands of the between-speaker variance of the chunks' mean log level over the "
            f"within-speaker variance (F-ratio; 1/{bench.N_UTT} = {1 / bench.N_UTT:.2f} when a band tells "
            "nobody apart).")
    lines = ["# Speaker left in each band's long-term level, by stretch of the utterance", "", head, "",
             "| system | " + " | ".join(s for s, _, _ in STRETCHES) + " |",
             "|---|" + "---|" * len(STRETCHES)]
    for name, r in rows:
        lines.append(f"| {name} | " + " | ".join(f"{r[s]:.2f}" for s, _, _ in STRETCHES) + " |")
    bench.write_report(lines, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
