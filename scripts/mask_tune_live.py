"""Tune the `denoise-live` mask smoothing on *training-split* mixtures (train speakers x train noises, seed 99;
never the validation split the benchmark reports): the mask stage alone at 48 kHz, 10 ms window, 30 dB limit,
PESQ-WB / STOI at 16 kHz for a few release/attack times.

    .venv-bench/bin/python scripts/mask_tune_live.py    # -> benchmarks/results/mask_tune_live.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from pesq import pesq
from pystoi import stoi

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from denoise import align, rs  # noqa: E402
from resculpt.dsp.params import ParamTable  # noqa: E402
from resculpt.dsp.stft import StreamingSTFT  # noqa: E402
from resculpt.models.mask import mixing as M  # noqa: E402
from resculpt.models.mask.stage import MaskStage, load_bundle  # noqa: E402
from resculpt.plugin_host import catalog  # noqa: E402

GRID = ((15.0, 1.0), (5.0, 1.0), (30.0, 1.0), (15.0, 5.0))  # (release_ms, attack_ms)


def main():
    val = M.validation_set(n_utts=6, pools=M.load_pools("train"), seed=99)
    b = load_bundle()
    rows = []
    for rel, att in GRID:
        ps, ss = [], []
        for it in val:
            x = rs(it["noisy"], 16000, 48000)
            t = ParamTable(catalog.all_param_specs())
            t.set_many({"mask.reduction_db": 30.0, "mask.release_ms": rel, "mask.attack_ms": att})
            t.snap()
            s = StreamingSTFT("low-latency", [MaskStage(t, b)])
            s.prepare(48000, 1 << 18, 1)
            y = np.concatenate([x, np.zeros(s.latency_samples, np.float32)])[None].copy()
            s.process(y)
            y, _ = align(rs(y[0, s.latency_samples :], 48000, 16000), it["clean"])
            ps.append(pesq(16000, it["clean"], y, "wb"))
            ss.append(stoi(it["clean"], y, 16000))
        rows.append((rel, att, float(np.mean(ps)), float(np.mean(ss))))
        print(rows[-1], flush=True)
    L = [f"`denoise-live` smoothing on {len(val)} training-split mixtures (`scripts/mask_tune_live.py`, bundle "
         f"{b.config['sha256'][:12]}):", "", "| release ms | attack ms | PESQ-WB | STOI |", "|---|---|---|---|"]
    L += [f"| {r:g} | {a:g} | {p:.3f} | {s:.3f} |" for r, a, p, s in rows]
    (REPO / "benchmarks" / "results" / "mask_tune_live.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
