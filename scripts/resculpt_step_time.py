"""Time (and optionally profile) training steps of the resculpting generator on cached pairs.

    .venv/bin/python scripts/resculpt_step_time.py --pairs runs/resculpt-pairs [--steps 6] [--profile 25]
        [any `resculpt train resculpt` option: --batch 8 --segment-s 2 --off perc --adv-start 0 ...]

Builds a fresh run in a temporary folder (nothing is saved), runs one warm-up step, then ``--steps`` timed
steps from step 1 on with every term active from the first step (``--adv-start 0`` unless given). Prints per
step the wall time and this process's CPU time (``time.process_time``): on the shared 2-core machine the CPU
time is the figure that does not depend on what other processes take, and with one thread it is what the
step costs a quiet core. ``--profile N`` runs the timed steps under cProfile and prints the N functions with
the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time

import numpy as np


def main(argv=None) -> int:
    from resculpt.models.resculpt import train as rtrain

    ap = argparse.ArgumentParser(prog="scripts/resculpt_step_time.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--timed-steps", type=int, default=6, help="steps timed after one warm-up step")
    ap.add_argument("--profile", type=int, default=0, help="print the N heaviest functions (cProfile, cumulative)")
    own, rest = ap.parse_known_args(argv)
    if "--adv-start" not in rest:
        rest = [*rest, "--adv-start", "0"]
    with tempfile.TemporaryDirectory() as tmp:
        args = rtrain.add_args(argparse.ArgumentParser()).parse_args(
            [*rest, "--out", tmp, "--fresh", "--quiet", "--n-val", "0"])
        tr = rtrain.Trainer(args)
        tr.train_step()  # warm-up: first calls allocate and build caches
        prof = cProfile.Profile() if own.profile else None
        walls, cpus = [], []
        for _ in range(own.timed_steps):
            w0, c0 = time.perf_counter(), time.process_time()
            if prof:
                prof.enable()
            _, parts = tr.train_step()
            if prof:
                prof.disable()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            print(f"step {tr.step}: wall {walls[-1]:.2f} s, cpu {cpus[-1]:.2f} s  "
                  f"{ {k: round(v, 4) for k, v in parts.items()} }", flush=True)
    print(f"batch {args.batch} x {args.segment_s} s, threads {args.threads}, off {args.off or []}, "
          f"adv every {args.adv_every} step(s) on {args.disc_crop_s} s: "
          f"median wall {np.median(walls):.2f} s/step, median cpu {np.median(cpus):.2f} s/step, "
          f"mean cpu {np.mean(cpus):.2f} s/step over {len(cpus)} steps")
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(own.profile)
        print(s.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
