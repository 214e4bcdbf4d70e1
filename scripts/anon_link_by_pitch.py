"""Which speakers a preset leaves linkable, by the speaker's own median pitch: the ignorant attacker's scores per
speaker, grouped by the original's median F0.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_link_by_pitch.py --split train \
        --skip-speakers 48 --speakers 64 anon-low anon-high ... [--out F.md]

For each variant (``PRESET`` or ``PRESET@key=value,...``, as ``benchmarks/anonymity.py --preset``), with the
benchmark's speakers, trials and Resemblyzer embedding: a speaker's **link** is the mean score of its anonymized
trials against its own original enrolment less their mean score against every other speaker's, and its **rank**
the mean number of other speakers' enrolments that score above its own (0: always its own first; chance is half
the other speakers). Speakers are grouped by the median F0 of their original utterances (librosa pYIN, voiced
frames, 60-400 Hz).

``--sides HZ`` adds the lazy-informed attacker (enrolment through the same variant) split by where its
non-target trials fall: all of them (the benchmark's EER), only those between two speakers on the same side of
HZ (by that median F0), only those across it. A preset that gives the two sides different voices (``anon-far``)
hands the attacker the side for free: its cross-side trials are easy rejections.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench  # noqa: E402

GROUPS_HZ = ((0.0, 140.0), (140.0, 180.0), (180.0, 1000.0))


def main(argv=None) -> int:
    import librosa

    sides_opt = {"--sides": dict(type=float, default=0.0, help="also split the lazy-informed EER by this pitch (Hz)")}
    a, utts, sources, enc, orig = bench.variant_attack_setup(__doc__, argv, speakers=64, skip=48, split="train",
                                                             extra=sides_opt)
    sides = a.sides
    spk = list(utts)
    f0 = []
    for s in spk:
        f, v, _ = librosa.pyin(np.concatenate(utts[s]), fmin=60, fmax=400, sr=bench.SR, frame_length=1024)
        f0.append(float(np.nanmedian(f[v])))
    f0 = np.array(f0)
    groups = [(lo, hi, (f0 >= lo) & (f0 < hi)) for lo, hi in GROUPS_HZ]
    head = " | ".join(f"{lo:.0f}–{hi:.0f} Hz: link / rank" if hi < 1000 else f"over {lo:.0f} Hz: link / rank"
                      for lo, hi, _ in groups)
    lines = ["# Linkability by the speaker's pitch", "",
             (f"`{bench.variant_cmd('scripts/anon_link_by_pitch.py', a)}{f' --sides {sides:g}' if sides else ''}` on "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {len(spk)} {bench.speaker_set(a)} speakers "
              f"({', '.join(sources)}; " + ", ".join(f"{int(m.sum())} with a median F0 of {lo:.0f}–{hi:.0f} Hz"
                                                     if hi < 1000 else f"{int(m.sum())} over {lo:.0f} Hz"
                                                     for lo, hi, m in groups)
              + f"). Ignorant attacker (original enrolment). Link: own-speaker score less the mean other-speaker "
              f"score; rank: other speakers scoring above the own one, of {len(spk) - 1} (chance "
              f"{(len(spk) - 1) / 2:.1f})."), "",
             f"| variant | ignorant EER | corr(link, log F0) | {head} |", "|---" * (3 + len(groups)) + "|"]
    lazy_rows = []
    for var in a.variants:
        E = bench.embed_system(utts, bench.chain_system(var), enc)
        if sides:
            lazy_rows.append(_lazy_by_side(var, bench.score_matrix(E, E), f0 < sides))
        S = bench.score_matrix(orig, E)  # (speaker, trial, enrolled speaker)
        n = len(spk)
        own = np.array([S[i, :, i].mean() for i in range(n)])
        other = np.array([np.delete(S[i], i, axis=1).mean() for i in range(n)])
        rank = np.array([np.mean([(S[i, t] > S[i, t, i]).sum() for t in range(S.shape[1])]) for i in range(n)])
        link = own - other
        cells = " | ".join(f"{link[m].mean():.3f} / {rank[m].mean():.1f}" for _, _, m in groups)
        lines.append(f"| {var} | {bench.attack(orig, E):.1f} % | {np.corrcoef(link, np.log(f0))[0, 1]:+.2f} | "
                     f"{cells} |")
        print(lines[-1], flush=True)
    if sides:
        low = int((f0 < sides).sum())
        lines += ["", f"Lazy-informed attacker (enrolment through the same variant), non-target trials split by the side "
                  f"of {sides:.0f} Hz ({low} speakers under it, {len(spk) - low} over): EER with all of them, with "
                  "only those between speakers on the same side, with only those across.", "",
                  "| variant | lazy-informed EER | same side only | across only |", "|---|---|---|---|", *lazy_rows]
    bench.write_report(lines, a.out)
    return 0


def _lazy_by_side(var: str, S: np.ndarray, low: np.ndarray) -> str:
    """A table row: lazy-informed EERs of the (speaker, trial, enrolled speaker) scores ``S`` with every non-target
    trial, with the same-side ones only and with the cross-side ones only (``low``: (S,) bool, the speaker's side)."""
    own = bench.target_mask(S)
    same = (low[:, None] == low[None, :])[:, None, :].repeat(S.shape[1], axis=1)
    cells = [bench.eer(S[own], S[~own])]
    cells += [bench.eer(S[own], S[~own & m]) if (~own & m).any() else float("nan") for m in (same, ~same)]
    return f"| {var} | " + " | ".join(f"{c:.1f} %" for c in cells) + " |"


if __name__ == "__main__":
    sys.exit(main())
