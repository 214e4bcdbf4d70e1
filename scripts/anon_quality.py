"""Naturalness and intelligibility of many preset variants, with DNSMOS's three scores and the WER: no attacker.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_quality.py [--split val] [--speakers 17] \
        [--no-asr] anon-strong anon-strong@anon.pause_cut_db=12 ... [--random VARIANT ...] [--out F.md] \
        [--split-weights runs/other_split.npz]

``benchmarks/anonymity.py`` reports DNSMOS OVRL only; where a variant loses naturalness, the P.835 model's two
other scores say whether it is the voice (SIG) or what surrounds it (BAK: noise, residue between words). This
scores each variant (``PRESET`` or ``PRESET@key=value,...``, as the benchmark's ``--preset``; ``--random`` ones
with a new ``anon.seed`` per utterance) on the benchmark's speakers and trial utterances, rendered and joined as
the benchmark renders and joins them, so its OVRL equals the benchmark's for the same system (its STOI averages
the trial utterances only, the benchmark's all five, so the two differ by a few thousandths); its WER is the
benchmark's (Whisper tiny.en over each speaker's five utterances joined, against its transcript of the
original). About 80 s a system on the 17 val speakers (50 s with ``--no-asr``), 3-4 minutes on 64, on one
core. Use it with scripts/anon_sweep.py (the EERs) to choose what the benchmark should score.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench  # noqa: E402


def score(utts: dict, fn, dnsmos, stoi, asr, ref: dict) -> tuple[float, float, float, float, float | None]:
    """(SIG, BAK, OVRL, STOI, WER %) means: DNSMOS per speaker of its trial utterances joined, STOI per utterance,
    the benchmark's WER (Whisper over the five utterances joined, against ``ref``, the original's transcripts, which
    an empty ``ref`` is filled with; None there)."""
    rng = np.random.default_rng(bench.SEED)
    mos, st, edits, words = [], [], 0, 0
    for spk, xs in utts.items():
        # every utterance rendered, in the benchmark's order, so a random system draws the benchmark's voices
        ys = [fn(x, rng) for x in xs]
        r = dnsmos.run(np.clip(np.concatenate([ys[k] for k in bench.TRIALS]), -1, 1), bench.SR)
        mos.append((r["sig_mos"], r["bak_mos"], r["ovrl_mos"]))
        for k in bench.TRIALS:
            n = min(len(xs[k]), len(ys[k]))
            st.append(stoi(xs[k][:n], ys[k][:n], bench.SR, extended=False))
        if asr is not None:
            text = asr(np.concatenate(ys))
            if spk not in ref:
                ref[spk] = text
            else:
                e, w = bench.wer(ref[spk], text)
                edits, words = edits + e, words + w
    m = np.mean(mos, axis=0)
    w = 100.0 * edits / max(words, 1) if words else None
    return float(m[0]), float(m[1]), float(m[2]), float(np.mean(st)), w


def _pct(w: float | None) -> str:
    return "-" if w is None else f"{w:.1f} %"


def main(argv=None) -> int:
    a = bench.variant_args(__doc__, argv, speakers=17, skip=0, split="val", asr=True)
    from pystoi import stoi
    from speechmos import dnsmos

    asr = None if a.no_asr else bench.ASR()
    ref: dict = {}
    t0 = time.time()
    utts, sources = bench.utterances(a.speakers, a.skip_speakers, a.split, a.source)
    if a.narrowband:
        utts = bench.narrowband(utts)
    rows = []
    systems = [("original", lambda x, rng=None: x)]
    systems += [(v, bench.chain_system(v)) for v in a.variants]
    systems += [(v + ", new voice per utterance", bench.chain_system(v, random_seed=True)) for v in a.random]
    for name, fn in systems:
        t1 = time.time()
        rows.append((name, *score(utts, fn, dnsmos, stoi, asr, ref)))
        print(f"{name}: SIG {rows[-1][1]:.2f} BAK {rows[-1][2]:.2f} OVRL {rows[-1][3]:.2f} STOI {rows[-1][4]:.3f} "
              f"WER {_pct(rows[-1][5])} ({time.time() - t1:.0f} s)", flush=True)
    cmd = bench.variant_cmd("scripts/anon_quality.py", a)
    lines = ["# Anonymity variants: DNSMOS SIG / BAK / OVRL, STOI and WER", "",
             (f"`{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({time.time() - t0:.0f} s): "
              f"{len(utts)} {bench.speaker_set(a)} speakers ({', '.join(sources)}), each speaker's trial utterances "
              "joined for DNSMOS (P.835: SIG the speech, BAK the background, OVRL overall) as "
              "benchmarks/anonymity.py scores them, and STOI per trial utterance against the original (the "
              "benchmark's STOI averages all five utterances), and the benchmark's WER (Whisper tiny.en's transcript "
              "of each speaker's five utterances joined against its transcript of the original; "
              f"{sum(len(t.split()) for t in ref.values())} words there). No attacker here: "
              "scripts/anon_sweep.py gives the EERs."), "",
             "| system | SIG | BAK | OVRL | STOI | WER |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {s:.2f} | {b:.2f} | {o:.2f} | {t:.3f} | {_pct(w)} |" for n, s, b, o, t, w in rows]
    bench.write_report(lines, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
