"""How much of the speaker is left in each band's long-term level after a system, and when in an utterance.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_band_means.py \
        [--speakers 64 --skip-speakers 48] [--system anon-neutral ...] [--out benchmarks/results/anon_band_means.md]

For the benchmark's train-split speakers (by default the 64 after the first 48: none of them trained a learned
stage), each system's output goes through Resemblyzer's own front end (volume normalisation, VAD trimming,
40-band mel power, 25 ms / 10 ms; scripts/anon_mel_probe.py's Embedder) and each chunk's mean log-mel level per
band is taken over a stretch of the chunk: its first 0.7 s, the rest, the whole. Per band, the F-ratio is the
variance of those means between speakers over their variance within a speaker (between chunks); averaged over
the 40 bands. An F-ratio near 1/(chunks per speaker) says a band's long-term level no longer tells speakers apart;
the attacker's "long-term" oracle edit (anon_mel_probe.py) removes exactly this.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench
from anon_mel_probe import Embedder

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "anon_band_means.md"
STRETCHES = (("first 0.7 s", 0, 70), ("after 0.7 s", 70, None), ("whole", 0, None))  # mel frames of 10 ms


def stage_levels(x):
    """(frames, 32) log power in the anon stage's level-dynamics bands (dsp/voice/dynamics.py) at its 5 ms hop
    (20 ms Hann window, 16 kHz), only the frames within 30 dB of the chunk's 95th percentile frame (speech),
    and the stretches' frame indices rescaled to 5 ms frames (x2)."""
    from resculpt.dsp.voice import dynamics

    n, hop = 320, 80
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (n // 2, n // 2)), n)[::hop] * np.hanning(n)
    P = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    W = dynamics.band_weights(np.fft.rfftfreq(n, 1.0 / bench.SR))
    B = P @ W.T + 1e-10
    lev = 10 * np.log10(B.sum(1))
    keep = lev >= np.percentile(lev, 95) - 30.0
    return np.log(B), keep


def f_ratio(M):
    """M (speakers, chunks, bands) -> mean over bands of between-speaker / within-speaker variance (a chunk
    with no frame in a stretch, NaN, is left out)."""
    between = np.nanmean(M, 1).var(0, ddof=1)
    within = np.nanmean(np.nanvar(M, 1, ddof=1), 0)
    return float((between / np.maximum(within, 1e-9)).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speakers", type=int, default=64)
    ap.add_argument("--skip-speakers", type=int, default=48)
    ap.add_argument("--system", action="append", default=[], help="preset or PRESET@key=value (the original always runs)")
    ap.add_argument("--view", choices=("attacker", "stage", "split"), default="attacker",
                    help="attacker: Resemblyzer's 40 mel bands at 25 ms / 10 ms (every frame it keeps); stage: the "
                         "anon stage's 32 level bands at 20 ms / 5 ms, speech frames only (within 30 dB of the "
                         "chunk's 95th percentile), where its level-dynamics step sets each band's mean and spread; "
                         "split: the learned split's z-scores on the stage's speech frames, as the step uses them "
                         "(after any standardisation), their 32 bands in place of levels")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    bench.one_thread()
    t0 = time.time()
    utts = bench.utterances(a.speakers, a.skip_speakers, "train")[0]
    emb = Embedder()
    systems = {} if a.view == "split" else {"original": lambda x, rng=None: x}
    for p in a.system:
        systems[p] = bench.chain_system(p)
    zrec: list = []
    if a.view == "split":
        from resculpt.dsp.voice import dynamics

        step = dynamics.BandDynamics._split_step

        def recording(self, split, ch, valid, speech, center=0.0, spread=0.0):
            step(self, split, ch, valid, speech, center, spread)
            zrec.append(self._zh.copy() if (split > 0.0 and valid and speech) else np.full(32, np.nan))
        dynamics.BandDynamics._split_step = recording
    rows, zavg = [], {}
    stats = [f"{s} {k}" for s, _, _ in STRETCHES for k in ("mean", "spread")]
    for name, fn in systems.items():
        M = {s: [] for s in stats}
        for chunks in utts.values():
            per = {s: [] for s in stats}
            for x in chunks:
                zrec.clear()
                y = fn(x)
                if a.view == "stage":
                    L, keep = stage_levels(y)
                    scale = 2
                elif a.view == "split":
                    L = np.array(zrec) if zrec else np.full((1, 32), np.nan)
                    keep, scale = np.isfinite(L).all(1), 2
                else:
                    L = np.log(emb.mel_of(y)[0] + 1e-10)
                    keep, scale = np.ones(len(L), bool), 1
                for s, i0, i1 in STRETCHES:
                    sl = slice(i0 * scale, None if i1 is None else i1 * scale)
                    Ls = L[sl][keep[sl]]
                    nan = np.full(L.shape[1], np.nan)
                    per[f"{s} mean"].append(Ls.mean(0) if len(Ls) else nan)
                    per[f"{s} spread"].append(Ls.std(0) if len(Ls) else nan)
            for s, v in per.items():
                M[s].append(v)
        r = {s: f_ratio(np.array(M[s])) for s in M}
        if a.view == "split":
            W = np.array(M["after 0.7 s mean"])
            Sd = np.array(M["after 0.7 s spread"])
            zavg[name] = (float(np.nanmean(np.nanstd(W.reshape(-1, 32), 0))), float(np.nanmean(Sd)))
        rows.append((name, r))
        print(name, {k: round(v, 3) for k, v in r.items()}, f"{time.time() - t0:.0f} s", flush=True)
    cmd = (f"scripts/anon_band_means.py --speakers {a.speakers} --skip-speakers {a.skip_speakers} --view {a.view}"
           + "".join(f" --system {p}" for p in a.system))
    head = (f"`{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({time.time() - t0:.0f} s): "
            f"{len(utts)} train-split speakers x {bench.N_UTT} chunks of {bench.SEG_S} s. Each cell: the mean over "
            + {"attacker": "Resemblyzer's 40 mel bands of the between-speaker variance of the chunks' mean (or "
                           "spread) of log level",
               "stage": "the anon stage's 32 level bands (speech frames, 5 ms) of the between-speaker variance of "
                        "the chunks' mean (or spread) of log level",
               "split": "the learned split's 32 bands (the stage's speech frames, 5 ms) of the between-speaker "
                        "variance of the chunks' mean (or spread) of the z-scores the step uses"}[a.view]
            + " over the "
            f"within-speaker variance (F-ratio; 1/{bench.N_UTT} = {1 / bench.N_UTT:.2f} when a band tells "
            "nobody apart).")
    if zavg:
        head += (" Below the table, for the split's z-scores after 0.7 s: the spread of a chunk's mean across every "
                 "chunk (in units of the z-scores: times the average speaker's spread, 12-16 dB, in dB) and the "
                 "mean of a chunk's spread (1 if the decoder rendered the average speaker's spread).")
    lines = ["# Speaker left in each band's long-term level, by stretch of the utterance", "", head, "",
             "| system | " + " | ".join(stats) + " |",
             "|---|" + "---|" * len(stats)]
    for name, r in rows:
        lines.append(f"| {name} | " + " | ".join(f"{r[s]:.2f}" for s in stats) + " |")
    if zavg:
        lines += ["", "| system | chunk means' spread | chunks' mean spread |", "|---|---|---|"]
        lines += [f"| {n} | {u:.2f} | {w:.2f} |" for n, (u, w) in zavg.items()]
    bench.write_report(lines, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
