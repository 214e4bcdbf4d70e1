"""Could a gentle broadband compressor / expander move crest and LRA toward a reference target? A probe, not a stage:
how far a frame-rate (5 ms) broadband gain law moves the fingerprint's ``crest_db`` and ``lra_lu`` on the
resculpting benchmark's clips, beside how far apart the benchmark's reference pairs are.

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/dynamics_probe.py --files 4 --seconds 4 \
        --out benchmarks/results/dynamics_probe

Gain law: per 5 ms hop, the RMS envelope smoothed with a 10 ms time constant, e; over active hops (within 40 dB
of the loudest) the gain (e / e_rms)^(r - 1) (r < 1 compresses toward the clip's RMS level, r > 1 expands;
within -24..+12 dB; inactive hops 0 dB). Columns: the fingerprint's crest and LRA after each ratio, and, for the
reference pairs (the next clip of the category, as benchmarks/resculpt_model.py), the target's crest and LRA
and the profile error ratio over crest + LRA alone (weights 0.3 each, scales 2 dB / 2 LU) with the best ratio
of the list chosen for each pair (an oracle: a stage would have to choose it from running estimates).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SR = 48000
HOP = 240
RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5)


def dynamics(x: np.ndarray, r: float, tau_s: float = 0.01) -> np.ndarray:
    """(n,) float64 through the gain law above at ratio ``r``."""
    from scipy.signal import lfilter

    n = len(x) // HOP * HOP
    e2 = np.mean(x[:n].reshape(-1, HOP) ** 2, axis=1) + 1e-12
    a = math.exp(-HOP / SR / tau_s)
    e = np.sqrt(lfilter([1 - a], [1, -a], e2))
    act = e > e.max() * 10 ** (-40 / 20)
    ref = math.sqrt(float(np.mean(e[act] ** 2)))
    g = np.clip((e / ref) ** (r - 1.0), 10 ** (-24 / 20), 10 ** (12 / 20))
    g[~act] = 1.0
    y = x.copy()
    y[:n] *= np.repeat(g, HOP)
    return y


def dyn_distance(p, t) -> float:
    """The profile distance over crest and LRA alone (dsp.profile.distance with every other weight 0)."""
    from resculpt.dsp.profile import DIMS, distance

    w = {d.name: 0.0 for d in DIMS if d.name not in ("crest_db", "lra_lu")} | {"band_env_db": 0.0}
    return distance(p, t, w)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dynamics_probe"))
    a = ap.parse_args(argv)
    from resculpt.dsp.profile import fingerprint
    from resculpt.models import data

    if not data.have_data():
        print("shared data not found (set RESCULPT_DATA)", file=sys.stderr)
        return 1
    cmd = "scripts/dynamics_probe.py " + " ".join(shlex.quote(v) for v in (argv or sys.argv[1:]))
    recs = []
    for cat in ("speech", "music"):
        its = [it for it in data.select(cat, "val") if it.duration_s >= a.seconds][: a.files]
        xs = [np.asarray(data.load(it, sample_rate=SR)[0][: int(a.seconds * SR)], np.float64) for it in its]
        fps = [fingerprint(x.astype(np.float32), SR) for x in xs]
        for i, x in enumerate(xs):
            t = fps[(i + 1) % len(xs)]
            outs = {r: fingerprint(dynamics(x, r).astype(np.float32), SR) for r in RATIOS}
            d0 = dyn_distance(fps[i], t)
            rec = {"file": its[i].path.name, "category": cat, "crest_in": fps[i].dims["crest_db"],
                   "lra_in": fps[i].dims["lra_lu"], "crest_target": t.dims["crest_db"], "lra_target": t.dims["lra_lu"],
                   "crest": {str(r): p.dims["crest_db"] for r, p in outs.items()},
                   "lra": {str(r): p.dims["lra_lu"] for r, p in outs.items()},
                   "best_ratio": min(RATIOS, key=lambda r: dyn_distance(outs[r], t)),
                   "dyn_ratio_best": min(dyn_distance(p, t) for p in outs.values()) / d0 if d0 > 1e-9 else math.nan}
            recs.append(rec)
            print(json.dumps(rec), flush=True)
    L = ["# Dynamics probe: a broadband compressor / expander against the reference pairs' crest and LRA", "",
         f"Command: `{cmd}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); {a.files} speech + {a.files} music "
         f"val clips x {a.seconds:g} s, 48 kHz.", "",
         "| clip | crest in -> target dB | crest at r = " + " / ".join(f"{r:g}" for r in RATIOS) + " | LRA in -> target LU "
         "| LRA at r = " + " / ".join(f"{r:g}" for r in RATIOS) + " | best r | crest+LRA error ratio at best r |",
         "|---|---|---|---|---|---|---|"]
    for r in recs:
        L.append(f"| {r['file'][:28]} | {r['crest_in']:.1f} -> {r['crest_target']:.1f} | "
                 + " / ".join(f"{r['crest'][str(q)]:.1f}" for q in RATIOS)
                 + f" | {r['lra_in']:.1f} -> {r['lra_target']:.1f} | "
                 + " / ".join(f"{r['lra'][str(q)]:.1f}" for q in RATIOS)
                 + f" | {r['best_ratio']:g} | {r['dyn_ratio_best']:.2f} |")
    gaps = [abs(r["crest_target"] - r["crest_in"]) for r in recs]
    moves = [max(abs(r["crest"][str(q)] - r["crest_in"]) for q in RATIOS) for r in recs]
    L += ["", f"Mean |crest gap| of the pairs {np.mean(gaps):.2f} dB; mean largest crest move over the ratios "
          f"{np.mean(moves):.2f} dB; mean crest+LRA error ratio at the best ratio "
          f"{np.nanmean([r['dyn_ratio_best'] for r in recs]):.2f}."]
    md = "\n".join(L) + "\n"
    Path(a.out + ".md").write_text(md)
    Path(a.out + ".json").write_text(json.dumps({"command": cmd, "records": recs}, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
