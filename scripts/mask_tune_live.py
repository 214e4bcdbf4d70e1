"""Tune the `denoise-live` mask smoothing, limit and contrast on *training-split* mixtures (train speakers x
train noises, seed 99; never the validation split the benchmark reports): the mask stage alone at 48 kHz,
10 ms window, PESQ-WB / STOI / DNSMOS OVRL at 16 kHz for a few release/attack times, attenuation limits and
contrast exponents (two rows at a time, one per core). Rule: the
highest PESQ-WB; a row within 0.01 of it with a higher DNSMOS OVRL wins instead (PESQ differences that small
are within the spread of these 24 files, DNSMOS is where the model trails its peers most).

    .venv-bench/bin/python scripts/mask_tune_live.py    # -> benchmarks/results/mask_tune_live.md
    .venv-bench/bin/python scripts/mask_tune_live.py --bundle models/weights/mask-hq --preset denoise-hq \
        --out benchmarks/results/mask_tune_hq.md        # the high-quality tier's bundle, the same grid and rule
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np
from pesq import pesq
from pystoi import stoi

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from denoise import align, dnsmos_ovrl, rs  # noqa: E402
from resculpt.dsp.params import ParamTable  # noqa: E402
from resculpt.dsp.stft import StreamingSTFT  # noqa: E402
from resculpt.models.mask import mixing  # noqa: E402
from resculpt.models.mask.bundle import load_bundle  # noqa: E402
from resculpt.models.mask.stage import MaskStage  # noqa: E402
from resculpt.plugin_host import catalog  # noqa: E402

# (release_ms, attack_ms, reduction_db, contrast)
GRID = ((15.0, 1.0, 30.0, 1.0), (5.0, 1.0, 30.0, 1.0), (30.0, 1.0, 30.0, 1.0), (15.0, 5.0, 30.0, 1.0),
        (2.0, 1.0, 30.0, 1.0), (5.0, 1.0, 40.0, 1.0), (5.0, 1.0, 20.0, 1.0), (5.0, 1.0, 50.0, 1.0),
        (5.0, 1.0, 40.0, 1.3), (5.0, 1.0, 40.0, 1.6), (5.0, 1.0, 50.0, 1.3))
_VAL, _B = None, None  # set in main(), inherited by the forked workers


def score(row):
    rel, att, red, con = row
    ps, ss, ds = [], [], []
    for it in _VAL:
        x = rs(it["noisy"], 16000, 48000)
        t = ParamTable(catalog.all_param_specs())
        t.set_many({"mask.reduction_db": red, "mask.release_ms": rel, "mask.attack_ms": att, "mask.contrast": con})
        t.snap()
        s = StreamingSTFT("low-latency", [MaskStage(t, _B)])
        s.prepare(48000, 1 << 18, 1)
        y = np.concatenate([x, np.zeros(s.latency_samples, np.float32)])[None].copy()
        s.process(y)
        y, _ = align(rs(y[0, s.latency_samples :], 48000, 16000), it["clean"])
        ps.append(pesq(16000, it["clean"], y, "wb"))
        ss.append(stoi(it["clean"], y, 16000))
        ds.append(dnsmos_ovrl(np.clip(y, -1, 1)))
    r = (rel, att, red, con, float(np.mean(ps)), float(np.mean(ss)), float(np.mean(ds)))
    print(r, flush=True)
    return r


def main(argv=None):
    global _VAL, _B
    ap = argparse.ArgumentParser(prog="scripts/mask_tune_live.py")
    ap.add_argument("--bundle", help="mask bundle folder (default: the shipped live-tier bundle)")
    ap.add_argument("--preset", default="denoise-live", help="the preset the picked row is for (table title)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mask_tune_live.md"),
                    help="the table (Markdown)")
    ap.add_argument("--jobs", type=int, default=2, help="rows scored at once (one per core)")
    a = ap.parse_args(argv)
    _VAL = mixing.validation_set(n_utts=6, pools=mixing.load_pools("train"), seed=99)
    _B = b = load_bundle(a.bundle)
    val = _VAL
    with mp.get_context("fork").Pool(a.jobs) as pool:  # each row is deterministic
        rows = pool.map(score, GRID, chunksize=1)
    top = max(r[4] for r in rows)
    pick = max((r for r in rows if r[4] >= top - 0.01), key=lambda r: r[6])
    default_out = str(REPO / "benchmarks" / "results" / "mask_tune_live.md")
    cmd = "scripts/mask_tune_live.py" + "".join(
        f" {k} {v}" for k, v, d in (("--bundle", a.bundle, None), ("--preset", a.preset, "denoise-live"),
                                    ("--out", a.out, default_out)) if v and v != d)
    L = [f"`{a.preset}` smoothing, limit and contrast on {len(val)} training-split mixtures "
         f"(`{cmd}`, bundle {b.config['sha256'][:12]}, look-ahead {b.lookahead_frames} frames):", "",
         "| release ms | attack ms | limit dB | contrast | PESQ-WB | STOI | DNSMOS OVRL |", "|---|---|---|---|---|---|---|"]
    L += [f"| {r:g} | {a:g} | {d:g} | {c:g} | {p:.3f} | {s:.3f} | {o:.3f} |{' picked' if (r, a, d, c) == pick[:4] else ''}"
          for r, a, d, c, p, s, o in rows]
    Path(a.out).write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
