"""How far the streaming loudness follower (dsp/loudness_follow.py) lands from a target's integrated loudness, beside
the exact offline gain a whole-file (two-pass) render could apply, on val-split speech and music.

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/loudness_follow_eval.py --files 4 --seconds 4 16 \
        --out benchmarks/results/loudness_follow

The follower runs alone: the match stage with a target that compares no band (its EQ stays flat), so only the
broadband gain acts. Targets per clip: ``reference`` = the integrated loudness of the next clip of its category
(as benchmarks/resculpt_model.py's reference targets), ``identity`` = the clip's own. Columns: mean |output
loudness - target| (LU) for the input, the streaming follower and the two-pass gain (the whole file measured
first, then the one gain target - input loudness: exact up to the gate's 0.05 LU histogram), and for identity
the largest per-band deviation of the output's long-term band envelope from the input's (dB; the resculpting
benchmark's identity measure, goal <= 0.5 dB).
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


def follower_render(x: np.ndarray, lufs: float, prime: bool) -> np.ndarray:
    """(n,) float32 through the match stage with a flat EQ and the loudness goal ``lufs``; ``prime``: as an offline
    render runs it (the whole clip's loudness given first, ``render.prime_loudness``), else as a live stream."""
    from resculpt.dsp.match_eq import MatchTarget
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.layout import Layout
    from resculpt.plugin_host.render import _ArrayInput, prime_loudness

    c = Chain(Layout(spectral=("match",)), SR, 1, 4096)
    c.set_target(MatchTarget.make(np.full(32, np.nan), loudness=(lufs, math.nan)), engine="match-eq")
    if prime:
        prime_loudness(c, _ArrayInput(x[None]), 4096)
    return c(x[None])[0]


def max_band_dev(y, x) -> float:
    from resculpt.dsp.profile import compare_mask, limit_bandwidth, long_term_envelope

    a, b = limit_bandwidth(long_term_envelope(y, SR)), limit_bandwidth(long_term_envelope(x, SR))
    ok = np.isfinite(a) & np.isfinite(b) & compare_mask()
    return float(np.max(np.abs(a[ok] - b[ok])))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4, help="val clips per category")
    ap.add_argument("--seconds", type=float, nargs="+", default=[4.0, 16.0], help="clip lengths")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "loudness_follow"))
    a = ap.parse_args(argv)
    from resculpt.dsp.features.loudness import integrated_lufs
    from resculpt.models import data

    if not data.have_data():
        print("shared data not found (set RESCULPT_DATA)", file=sys.stderr)
        return 1
    cmd = "scripts/loudness_follow_eval.py " + " ".join(shlex.quote(v) for v in (argv or sys.argv[1:]))
    longest = max(a.seconds)
    recs = []
    for cat in ("speech", "music"):
        its = [it for it in data.select(cat, "val") if it.duration_s >= longest][: a.files]
        full = [np.ascontiguousarray(data.load(it, sample_rate=SR)[0], np.float32) for it in its]
        for sec in a.seconds:
            xs = [f[: int(sec * SR)] for f in full]
            lu = [integrated_lufs(x, SR) for x in xs]
            for i, x in enumerate(xs):
                for kind, t in (("reference", lu[(i + 1) % len(xs)]), ("identity", lu[i])):
                    y = follower_render(x, t, prime=False)
                    yp = follower_render(x, t, prime=True)
                    y2 = x * np.float32(10.0 ** ((t - lu[i]) / 20.0))
                    r = {"file": its[i].path.name, "category": cat, "seconds": sec, "kind": kind,
                         "err_in": abs(lu[i] - t), "err_stream": abs(integrated_lufs(y, SR) - t),
                         "err_primed": abs(integrated_lufs(yp, SR) - t), "err_two_pass": abs(integrated_lufs(y2, SR) - t)}
                    if kind == "identity":
                        r["max_band_dev_db"] = max_band_dev(y, x)
                        r["max_band_dev_primed_db"] = max_band_dev(yp, x)
                    recs.append(r)
                    print(json.dumps(r), flush=True)
    L = ["# Loudness follower: streaming vs a whole-file gain (val split)", "", f"Command: `{cmd}` "
         f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
         f"The first {a.files} val clips per category at least {longest:g} s long ("
         + "; ".join(f"{cat}: " + ", ".join(dict.fromkeys(r["file"] for r in recs if r["category"] == cat))
                     for cat in ("speech", "music")) + "), cut to each length, 48 kHz mono.",
         "", "Mean \\|output loudness - target\\| (LU); identity: largest band deviation (dB, mean / worst).", "",
         "| seconds | category | target | input | live (streaming) | render (primed) | one whole-file gain | "
         "identity live dB | identity render dB |", "|---|---|---|---|---|---|---|---|---|"]
    for sec in a.seconds:
        for cat in ("speech", "music"):
            for kind in ("reference", "identity"):
                sub = [r for r in recs if r["seconds"] == sec and r["category"] == cat and r["kind"] == kind]
                if not sub:
                    continue
                m = {k: float(np.mean([r[k] for r in sub])) for k in ("err_in", "err_stream", "err_primed", "err_two_pass")}

                def dev(k, sub=sub, kind=kind):
                    return ("—" if kind != "identity" else
                            f"{np.mean([r[k] for r in sub]):.3f} / {max(r[k] for r in sub):.3f}")

                L.append(f"| {sec:g} | {cat} | {kind} | {m['err_in']:.2f} | {m['err_stream']:.2f} | "
                         f"{m['err_primed']:.2f} | {m['err_two_pass']:.2f} | {dev('max_band_dev_db')} | "
                         f"{dev('max_band_dev_primed_db')} |")
    md = "\n".join(L) + "\n"
    Path(a.out + ".md").write_text(md)
    Path(a.out + ".json").write_text(json.dumps({"command": cmd, "records": recs}, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
