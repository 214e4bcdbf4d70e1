"""Which trials carry the attackers' power after an anon preset: same- vs cross-gender, and which speakers.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_trial_split.py --split train \
        --skip-speakers 48 --speakers 64 anon-neutral anon-low [--out benchmarks/results/anon_trial_split.md]

The benchmark's speakers, systems, embedding and trials (``benchmarks/anonymity.py``), scored three ways: every
non-target trial (the benchmark's EER), only those whose enrolment speaker is of the trial speaker's apparent
gender, and only the others. Gender is read from the original enrolment utterances' median F0 (librosa's YIN,
60-400 Hz, frames above the median RMS): above ``--f0-split`` Hz counts as female. If a preset left gender cues the
attacker links on, the same-gender EER would sit well above the cross-gender one. Per speaker, the "gap" is the mean
score of its trials against its own enrolment less their mean against every other enrolment (the margin an
ignorant attacker has on that speaker); the script reports its quartiles and its correlation with the speaker's
median F0 (a preset protects the speakers far from its pseudo-speaker better when that correlation is large).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench  # noqa: E402


def split_eers(S: np.ndarray, female: np.ndarray) -> tuple[float, float, float]:
    """EER (%) against every non-target trial, same-gender ones only, cross-gender ones only."""
    n = len(female)
    tgt = np.concatenate([S[j, :, j] for j in range(n)])
    same, cross = [], []
    for j in range(n):
        for m in range(n):
            if m != j:
                (same if female[j] == female[m] else cross).append(S[j, :, m])
    same, cross = np.concatenate(same), np.concatenate(cross)
    return bench.eer(tgt, np.concatenate([same, cross])), bench.eer(tgt, same), bench.eer(tgt, cross)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("systems", nargs="+", help="PRESET or PRESET@key=value,... (as the benchmark's --preset)")
    ap.add_argument("--speakers", type=int, default=64)
    ap.add_argument("--skip-speakers", type=int, default=48)
    ap.add_argument("--split", choices=("val", "train"), default="train")
    ap.add_argument("--f0-split", type=float, default=165.0, help="median F0 (Hz) above which a speaker counts as female")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    bench.one_thread()
    import librosa
    from resemblyzer import VoiceEncoder

    t0 = time.time()
    utts, sources = bench.utterances(a.speakers, a.skip_speakers, a.split)
    spk = list(utts)
    enc = VoiceEncoder(device="cpu", verbose=False)
    f0 = []
    for s in spk:
        x = np.concatenate([utts[s][k] for k in bench.ENROL])
        f = librosa.yin(x, fmin=60, fmax=400, sr=bench.SR, frame_length=1024)
        rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0]
        n = min(len(f), len(rms))  # both hop 256 and centred; equal in practice
        f0.append(float(np.median(f[:n][rms[:n] > np.median(rms[:n])])))
    f0 = np.array(f0)
    female = f0 > a.f0_split

    orig = bench.embed_system(utts, lambda x, rng=None: x, enc)
    rows = []
    for name in ["original", *a.systems]:
        E = orig if name == "original" else bench.embed_system(utts, bench.chain_system(name), enc)
        for kind, enrol in (("ignorant", orig), ("lazy-informed", E)):
            if name == "original" and kind == "lazy-informed":
                continue
            S = bench.score_matrix(enrol, E)
            gap = np.array([S[j, :, j].mean() - np.delete(S[j], j, axis=1).mean() for j in range(len(spk))])
            q = np.percentile(gap, [10, 25, 50, 75, 90])
            rows.append((name, kind, *split_eers(S, female), q, float(np.corrcoef(gap, f0)[0, 1])))
            print(rows[-1][:5], f"{time.time() - t0:.0f} s", flush=True)
    n_t = len(spk) * len(bench.TRIALS)
    lines = ["# Which trials carry the attackers' power", "",
             (f"`scripts/anon_trial_split.py --split {a.split} --skip-speakers {a.skip_speakers} --speakers "
              f"{a.speakers} {' '.join(a.systems)}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
              f"({time.time() - t0:.0f} s): {len(spk)} speakers ({', '.join(sources)}), {int(female.sum())} with a "
              f"median F0 above {a.f0_split:.0f} Hz (female) and {int((~female).sum())} below; {n_t} target trials. "
              "EER against every non-target trial (the benchmark's), against same-gender ones only and against "
              "cross-gender ones only; the per-speaker gap (own-enrolment mean score less the mean against the "
              "others) as 10/25/50/75/90th percentiles and its correlation with the speaker's median F0."), "",
             "| system | attacker | EER, all | same gender | cross gender | gap percentiles | corr(gap, F0) |",
             "|---|---|---|---|---|---|---|"]
    for name, kind, e_all, e_same, e_cross, q, r in rows:
        lines.append(f"| {name} | {kind} | {e_all:.1f} % | {e_same:.1f} % | {e_cross:.1f} % | "
                     f"{' / '.join(f'{v:+.3f}' for v in q)} | {r:+.2f} |")
    bench.write_report(lines, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
