"""How consistent the targets that deltas make are: what an ideal static EQ of a delta's own band offsets does to
a file's profile, against the target ``dsp.profile.apply_delta`` makes for that file (docs/profiles.md, "Deltas").

For the files and targets of ``benchmarks/resculpt_model.py`` (val split, the first ``--files`` speech and music
files of at least ``--seconds`` s, 48 kHz mono; the descriptor targets ``common.EVAL_DESCRIPTORS`` and the
benchmark's seeded ``random_delta`` moves, 2 per file, the same seeds), each file x is

* fingerprinted (``p_in``) and moved by the delta (``target = apply_delta(p_in, delta)``);
* filtered by exactly the delta's band offsets: one zero-phase gain over the whole clip's FFT, the 32 offsets
  interpolated linearly on the ERB-rate axis between band centres (the triangular interpolation of
  ``BandMap.synthesis``, which the match-EQ uses), then scaled by one broadband gain that puts its integrated
  loudness on the target's, and fingerprinted again (``p_eq``).

An EQ that makes exactly the asked band shape is the best a static EQ can do for such a target; where the
target's centroid, roll-off or tilt disagree with what that shape does, no system can reach the target. Per target
kind and category, the mean absolute error against the target of the input and of the ideal EQ: centroid and
roll-off (% of the target), tilt (dB/oct), band shape (level-free RMS, dB), and the benchmark's profile error
ratio over the timbre dims (``error_ratio``) of the ideal EQ (0 = an EQ can land the target exactly).
``--vocab NAME ...``: for those ``dsp.descriptors.VOCAB`` entries, what their band shape alone does (the ideal EQ
of the shape, no loudness change), centroid and roll-off as ratios and tilt in dB/oct, mean (min..max) over the
files, beside the values the entry states.

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/delta_consistency.py [--files 4] [--seconds 4] \\
        [--vocab warm bright dark "clear highs"] [--out benchmarks/results/delta_consistency]
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
from resculpt_bench_io import REPO, bench

MOMENTS = ("centroid_hz", "rolloff_hz", "tilt_db_oct")


def ideal_eq(x: np.ndarray, sr: int, offsets_db) -> np.ndarray:
    """x (n,) through a zero-phase static gain: the band offsets (32,) dB (NaN = 0) interpolated linearly on the
    ERB-rate axis between band centres, flat beyond the first and last centre."""
    from resculpt.dsp.bands import band_centers_hz, erb_band_edges, hz_to_erb

    c = band_centers_hz(erb_band_edges())
    X = np.fft.rfft(np.asarray(x, np.float64))
    f = np.arange(X.size) * sr / x.size
    g = np.interp(hz_to_erb(f), hz_to_erb(c), np.nan_to_num(np.asarray(offsets_db, float)))
    return np.fft.irfft(X * 10.0 ** (g / 20.0), x.size).astype(np.float32)


def eq_to_target(x, sr, delta, target):
    """The ideal EQ of ``delta``'s offsets, at the target's integrated loudness; its fingerprint."""
    from resculpt.dsp.profile import fingerprint

    y = ideal_eq(x, sr, delta.env())
    p = fingerprint(y, sr)
    lt, ly = target.get("lufs_integrated"), p.get("lufs_integrated")
    if math.isfinite(lt) and math.isfinite(ly) and abs(lt - ly) > 0.01:
        p = fingerprint(y * np.float32(10.0 ** ((lt - ly) / 20.0)), sr)
    return p


def moment_errors(p, target) -> dict:
    """|p - target| per moment dim: centroid and roll-off in % of the target, tilt in dB/oct; band shape dB."""
    from resculpt.dsp.profile import band_distance_db

    out = {}
    for k in ("centroid_hz", "rolloff_hz"):
        a, b = p.get(k), target.get(k)
        out[k] = abs(a / b - 1.0) * 100.0 if a > 0 and b > 0 else float("nan")
    out["tilt_db_oct"] = abs(p.get("tilt_db_oct") - target.get("tilt_db_oct"))
    out["envelope_db"] = band_distance_db(p.band_env_db, target.band_env_db)
    return out


def moves(p, p0) -> dict:
    """What changed from p0 to p: centroid and roll-off ratios, tilt difference (dB/oct)."""
    return {"centroid_hz": p.get("centroid_hz") / p0.get("centroid_hz"),
            "rolloff_hz": p.get("rolloff_hz") / p0.get("rolloff_hz"),
            "tilt_db_oct": p.get("tilt_db_oct") - p0.get("tilt_db_oct")}


def main(argv=None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    ap = argparse.ArgumentParser(prog="scripts/delta_consistency.py")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--random", type=int, default=2, help="random targets per file (the benchmark's seeds)")
    ap.add_argument("--vocab", nargs="*", default=["warm", "bright", "dark", "clear highs"])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "delta_consistency"))
    a = ap.parse_args(argv)
    from resculpt.dsp.descriptors import VOCAB, describe
    from resculpt.dsp.profile import apply_delta, empty_delta, fingerprint
    from resculpt.models import data

    if not data.have_data():
        print("shared data not found (set RESCULPT_DATA)", file=sys.stderr)
        return 1
    B = bench()
    bench_args = argparse.Namespace(files=a.files, seconds=a.seconds, categories=["speech", "music"])
    clips = B.load_clips(bench_args, a.rate)
    sr = a.rate
    recs, vocab = [], []
    t0 = time.time()
    for k, (name, cat, x) in enumerate(clips):
        p_in = fingerprint(x, sr, name)
        deltas = [("descriptor", text, describe(text)) for text in B.DESCRIPTORS]
        rng = np.random.default_rng([B.SEED, k])
        deltas += [("random", f"random {r}", B.random_delta(rng)) for r in range(a.random)]
        for kind, tname, delta in deltas:
            target = apply_delta(p_in, delta)
            p_eq = eq_to_target(x, sr, delta, target)
            recs.append({"file": name, "category": cat, "kind": kind, "target": tname,
                         "err_in": moment_errors(p_in, target), "err_eq": moment_errors(p_eq, target),
                         "ratio_eq": B.error_ratio(p_eq, p_in, target, "timbre")})
            print(f"[{time.time() - t0:5.0f} s] {name[:24]:24s} {tname[:26]:26s} ratio_eq={recs[-1]['ratio_eq']:.3f} "
                  + " ".join(f"{d}={v:.2f}" for d, v in recs[-1]["err_eq"].items()), flush=True)
        for entry in a.vocab:
            d = empty_delta()
            d.band_env_db = list(VOCAB[entry][1])
            p = fingerprint(ideal_eq(x, sr, d.env()), sr)
            vocab.append({"file": name, "category": cat, "entry": entry, "moves": moves(p, p_in)})
    cmd = "scripts/delta_consistency.py " + " ".join(shlex.quote(v) for v in argv)
    meta = {"command": cmd, "time_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "files": [c[0] for c in clips], "rate": sr, "seconds": a.seconds}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".json").write_text(json.dumps({"meta": meta, "targets": recs, "vocab": vocab}, indent=1))
    md = report(meta, recs, vocab, VOCAB)
    Path(str(out) + ".md").write_text(md)
    print(md)
    return 0


def report(meta, recs, vocab, VOCAB) -> str:
    cmd = meta["command"]
    L = ["# Delta consistency: an ideal EQ of a delta's band shape against the target it makes", "",
         (f"Generated by `{cmd}` on {meta['time_utc']}. {len(meta['files'])} val files "
          f"({', '.join(meta['files'])}), first {meta['seconds']:g} s, {meta['rate']} Hz mono; the targets of "
          "`benchmarks/resculpt_model.py` (descriptors as `apply_delta(fingerprint(x), describe(text))`, the "
          "benchmark's seeded random moves). Ideal EQ: the delta's band offsets as a zero-phase static gain "
          "(ERB-linear interpolation), at the target's loudness."), "",
         ("Mean absolute error against the target, input -> ideal EQ (centroid and roll-off in % of the target, "
          "tilt dB/oct, band shape level-free RMS dB), and the ideal EQ's profile error ratio over the timbre dims "
          "(the benchmark's; 0 = an EQ lands the target)."), "",
         "| target | category | n | centroid % | roll-off % | tilt dB/oct | band shape dB | ideal-EQ ratio |",
         "|---|---|---|---|---|---|---|---|"]
    keys = ("centroid_hz", "rolloff_hz", "tilt_db_oct", "envelope_db")
    groups = list(dict.fromkeys((r["target"] if r["kind"] == "descriptor" else "random", r["category"]) for r in recs))
    for tname, cat in groups:
        sub = [r for r in recs if (r["target"] if r["kind"] == "descriptor" else "random") == tname
               and r["category"] == cat]
        cells = [f"{np.nanmean([r['err_in'][q] for r in sub]):.2f} -> {np.nanmean([r['err_eq'][q] for r in sub]):.2f}"
                 for q in keys]
        L.append(f"| {tname} | {cat} | {len(sub)} | " + " | ".join(cells)
                 + f" | {np.nanmean([r['ratio_eq'] for r in sub]):.2f} |")
    if vocab:
        L += ["", ("What a vocabulary entry's band shape alone does (its ideal EQ; mean (min..max) over the files) "
                   "beside what the entry states (`dsp.descriptors.VOCAB`; - = unset):"), "",
              "| entry | category | centroid ratio | stated | roll-off ratio | stated | tilt dB/oct | stated |",
              "|---|---|---|---|---|---|---|---|"]
        for entry in dict.fromkeys(v["entry"] for v in vocab):
            for cat in ("speech", "music"):
                sub = [v["moves"] for v in vocab if v["entry"] == entry and v["category"] == cat]
                if not sub:
                    continue
                st = VOCAB[entry][2]
                cells = []
                for q, fmt in (("centroid_hz", "{:.3f}"), ("rolloff_hz", "{:.3f}"), ("tilt_db_oct", "{:+.2f}")):
                    v = np.array([m[q] for m in sub])
                    cells.append(f"{fmt.format(v.mean())} ({fmt.format(v.min())}..{fmt.format(v.max())})")
                    cells.append(fmt.format(st[q]) if q in st else "-")
                L.append(f"| {entry} | {cat} | " + " | ".join(cells) + " |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
