"""Several resculpt checkpoints scored by the training's validation (``train.evaluate``) on the same pairs, side by
side: to see which validation record tracks the benchmark (``benchmarks/resculpt_model.py``) before choosing a
checkpoint by it.

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/resculpt_val_compare.py \\
        LABEL=REV[:SWITCH][@RUN] ... [--n-val 16] [--out benchmarks/results/resculpt_val_compare]

REV: a commit whose ``models/training/RUN/ckpt.pt`` is read (``git show``; RUN default ``resculpt-gen1``);
``:absolute_prior`` switches the absolute prior on at load, as ``scripts/resculpt_export_switched.py`` does for the
shipped bundle. Every row also has the restore, held restore and held move ratios without the loudness term
(``*_excl``: ``train.evaluate`` with ``lufs_integrated`` at weight 0, what ``--profile-exclude lufs_integrated``
trains). The pairs
are the run's validation pairs (val split, seed 1234, 3 s at 16 kHz, ``degrade.DEFAULT_OPS``).
"""

from __future__ import annotations

import argparse
import io
import shlex
import subprocess
import sys
import time

import torch
from resculpt.models.resculpt import degrade
from resculpt.models.resculpt import profile_torch as pt
from resculpt.models.resculpt.net import ResculptNet, Resculptor
from resculpt.models.resculpt.train import evaluate
from resculpt_bench_io import REPO, bench, write_result

CKPT = "models/training/{run}/ckpt.pt"
NO_LOUDNESS = {"lufs_integrated": 0.0}
SHOWN = ("profile_ratio", "profile_ratio_held", "move_ratio_held", "profile_ratio_held_excl", "move_ratio_held_excl",
         "move_ratio_held_fingerprint",
         "move_same_kind_speech", "move_same_kind_music", "move_same_kind_speech_no_loudness",
         "move_same_kind_music_no_loudness", "descriptor_ratio_rel", "level_ratio_rel",
         "keep_env_max_db", "keep_env_max_db_held")


def load(rev: str, switch: str | None, run: str = "resculpt-gen1"):
    raw = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{CKPT.format(run=run)}"], check=True,
                         capture_output=True).stdout
    ck = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    kw = dict(ck["net_kwargs"], **({switch: True} if switch else {}))
    net = ResculptNet(**kw)
    net.load_state_dict(ck["net"])
    return net, int(ck["step"]), int(ck.get("sample_rate", 16000))


def move_ratios_fingerprint(model, val, match: str = "timbre") -> dict:
    """Held move rows scored as the benchmark scores them (``dsp.profile``'s fingerprint, the benchmark's
    ``error_ratio`` over the ``match`` dims; mean over clips), the target given as the torch profile's conditioning:
    ``move_ratio_held_fingerprint``: each clean clip toward the next clip's profile (``move_ratio_held``'s rows);
    ``move_same_kind_<kind>``: toward the next clip of the same kind (speech / music), as the benchmark pairs its
    reference targets, also without the loudness term (``_no_loudness``: the stage's loudness follower moves it)."""
    import numpy as np
    from resculpt.dsp.profile import distance, fingerprint

    bm = bench()
    sr = model.fio.sr
    x = torch.tensor(np.stack([v["x"] for v in val]))
    kinds = [v["clip"]["kind"] for v in val]
    P_x = pt.TorchProfiler(sr)(x)
    fp_in = [fingerprint(v.numpy(), sr) for v in x]
    B = x.shape[0]
    same = []
    for i, k in enumerate(kinds):
        js = [j for j in range(B) if kinds[j] == k]
        same.append(js[(js.index(i) + 1) % len(js)])
    out = {}
    for key, nxt in (("move_ratio_held_fingerprint", torch.roll(torch.arange(B), -1)), ("same", torch.tensor(same))):
        P_n = {k: v[nxt] for k, v in P_x.items()}
        with torch.no_grad():
            y = model(x, pt.cond_vector(P_n, sr, match), held=torch.ones(B, dtype=torch.bool))
        fp_out = [fingerprint(o.numpy(), sr) for o in y]
        r = [bm.error_ratio(fp_out[i], fp_in[i], fp_in[int(nxt[i])], match) if int(nxt[i]) != i else float("nan")
             for i in range(B)]
        if key == "same":
            # without the loudness term: the product's loudness follower, which torch does not run, moves it
            w = bm.matched_weights(match) | {"lufs_integrated": 0.0}
            rq = [distance(fp_out[i], fp_in[int(nxt[i])], w) / distance(fp_in[i], fp_in[int(nxt[i])], w)
                  if int(nxt[i]) != i else float("nan") for i in range(B)]
            for k in sorted(set(kinds)):
                out[f"move_same_kind_{k}"] = float(np.nanmean([r[i] for i in range(B) if kinds[i] == k]))
                out[f"move_same_kind_{k}_no_loudness"] = float(np.nanmean([rq[i] for i in range(B) if kinds[i] == k]))
        else:
            out[key] = float(np.nanmean(r))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/resculpt_val_compare.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=REV[:SWITCH][@RUN]")
    ap.add_argument("--n-val", type=int, default=16)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "resculpt_val_compare"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, rows, src = time.time(), [], {}
    for spec in a.runs:
        label, _, rest = spec.partition("=")
        rest, _, run = rest.partition("@")
        rev, _, switch = rest.partition(":")
        net, step, sr = load(rev, switch or None, run or "resculpt-gen1")
        if sr not in src:
            vs = degrade.Source.load("val", sr)
            src[sr] = [degrade.make_pair(vs, 1234, i, 3.0, list(degrade.DEFAULT_OPS)) for i in range(a.n_val)]
        model = Resculptor(net, sr)
        with torch.no_grad():
            v = evaluate(model, pt.TorchProfiler(sr), src[sr], weights=NO_LOUDNESS)
        v.update(move_ratios_fingerprint(model, src[sr]))
        rows.append({"label": label, "rev": rev, "run": run or "resculpt-gen1", "switch": switch or None, "step": step,
                     "val": v})
        print(label, step, {k: round(v[k], 3) for k in SHOWN}, flush=True)
    cmd = "scripts/resculpt_val_compare.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    L = ["# Resculpt checkpoints on the training's validation pairs, side by side", "",
         f"Generated by `{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({time.time() - t0:.0f} s): "
         f"`train.evaluate` on {a.n_val} val-split pairs (seed 1234, 3 s at 16 kHz). Ratios: profile distance of the "
         "output to the target / of the input (lower is closer); keep: largest long-term band change with the "
         "input's own profile as target, dB (mean over clips); `move_ratio_held_fingerprint`: the held move rows "
         "scored as the benchmark scores (the fingerprint, `error_ratio` over the timbre dims); `move_same_kind_*`: "
         "the same, each clip toward the next clip of its own kind, as the benchmark pairs reference targets "
         "(`_no_loudness`: without the loudness term, which the product's loudness follower moves and torch does not "
         "run; `*_excl`: the restore and move ratios without it).", "",
         "| label | checkpoint | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN)]
    for r in rows:
        what = (f"{r.get('run', 'resculpt-gen1')} step {r['step']} "
                f"({r['rev']}{', ' + r['switch'] + ' on' if r['switch'] else ''})")
        L.append(f"| {r['label']} | {what} | " + " | ".join(f"{r['val'][k]:.3f}" for k in SHOWN) + " |")
    write_result(a.out, L, {"command": cmd, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
