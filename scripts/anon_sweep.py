"""Both attackers' EER for many preset variants, fast: the benchmark's speakers and attack without its STOI and DNSMOS.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_sweep.py --split train --skip-speakers 48 \
        --speakers 64 anon-neutral anon-neutral@anon.detail_pct=100 ... [--random VARIANT ...] [--out F.md] \
        [--split-weights runs/other_split.npz]

``benchmarks/anonymity.py`` spends most of its time on DNSMOS and STOI (about 4 minutes a system on 64 speakers
on one core); the speaker-verification part alone takes about 35 s a system. This runs that part for each
variant (``PRESET`` or ``PRESET@key=value,...``, as the benchmark's ``--preset``; ``--random`` ones with a new
``anon.seed`` per utterance, as its ``--random-preset``), with the same speakers, seeds, Resemblyzer embedding
and EER, so its EERs equal the benchmark's for the same system. Use it to choose which variants the full
benchmark should score; quality is not measured here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench  # noqa: E402


def main(argv=None) -> int:
    t0 = time.time()
    a, utts, sources, enc, orig = bench.variant_attack_setup(__doc__, argv, speakers=64, skip=48, split="train")
    rows = []
    for v, rand in [(v, False) for v in a.variants] + [(v, True) for v in a.random]:
        t1 = time.time()
        E = bench.embed_system(utts, bench.chain_system(v, random_seed=rand), enc)
        rows.append((v + (", new voice per utterance" if rand else ""), bench.attack(orig, E), bench.attack(E, E)))
        print(f"{rows[-1][0]}: ignorant {rows[-1][1]:.1f} %, lazy-informed {rows[-1][2]:.1f} % "
              f"({time.time() - t1:.0f} s)", flush=True)
    n_t = len(utts) * len(bench.TRIALS)
    cmd = bench.variant_cmd("scripts/anon_sweep.py", a)
    lines = ["# Anonymity sweep: both attackers' EER per variant", "",
             (f"`{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({time.time() - t0:.0f} s): "
              f"{len(utts)} {bench.speaker_set(a)} speakers ({', '.join(sources)}), {n_t} target and "
              f"{n_t * (len(utts) - 1)} non-target trials, as benchmarks/anonymity.py scores them (a target trial is "
              f"{100 / n_t:.1f} points of the false-rejection rate). Original: ignorant / lazy-informed "
              f"{bench.attack(orig, orig):.1f} %. No quality metric here: score the chosen variants with the "
              "benchmark."), "",
             "| variant | ignorant EER | lazy-informed EER |", "|---|---|---|"]
    lines += [f"| {n} | {i:.1f} % | {z:.1f} % |" for n, i, z in rows]
    bench.write_report(lines, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
