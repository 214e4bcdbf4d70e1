"""Where does Resemblyzer find the speaker after an anon preset? Oracle edits of its input, measured.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/anon_mel_probe.py \
        [--speakers 64] [--system original --system anon-neutral ...] [--out benchmarks/results/anon_mel_probe.md]

Resemblyzer reads a 40-band mel *power* spectrogram (25 ms window, 10 ms hop, 16 kHz; not a log) of the
volume-normalised, VAD-trimmed signal, in partials of 160 frames. This script renders the *train* split's
speakers (never a val speaker: the probe is a diagnosis, the benchmark's val speakers stay unseen) through
each system, then edits the mel spectrogram the network is given, one property at a time, and reports the
lazy-informed EER (enrolment and trials through the same system and the same edit) and the ignorant EER
(enrolment on the unedited original). An edit that raises the lazy-informed EER far removes what the
attacker links on; one that leaves it unchanged removes something it does not need. The edits are oracles
(they use the whole utterance and statistics pooled over every speaker), not processors: they say where to
aim a stage, not what a stage would reach.

Edits (L = log mel power per frame t and band b; G = the mean of L over every frame of every speaker after
the same system; "shape" = a frame's L minus its mean over the bands in question):
- none: as the benchmark embeds it.
- long-term: each utterance's mean L per band replaced by G (the long-term spectrum: channel and timbre).
- long-term+var: also each band's standard deviation over time set to the pooled one.
- level: every frame's mean L set to the utterance's (the frame energy contour flattened).
- shuffle: frames in random order (every temporal pattern gone; the set of frames kept).
- shuffle-100ms: blocks of 10 frames in random order (local dynamics kept, rhythm and order gone).
- bands LO-HI: in the mel bands between LO and HI Hz every frame's shape replaced by G's (its energy there kept).
- voiced / unvoiced: the frames of that kind (power below 1 kHz over power above 2 kHz, 10 dB threshold)
  get G's shape for their kind (their level kept).
- smooth-low: bands under 1 kHz smoothed across 3 bands (the harmonics' resolution there removed).
- volume: the whole utterance moved by one gain so its mean power is the pooled mean (each recording's level
  the same; Resemblyzer's own volume normalisation only raises quiet input).
- pauses dropped: the pause frames (band-summed power more than PAUSE_DB under the utterance's 95th percentile
  frame) removed, so the attacker reads speech frames only.
- pauses pooled: each pause frame replaced by the pooled pause spectrum (G over every pause frame), set at the
  pooled depth under the utterance's 95th percentile frame (the room tone and its depth of every speaker the same).
- A + B: edit A, then edit B.
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

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "anon_mel_probe.md"
BANDS = [(0, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 8000)]


def train_speakers(n: int):
    """{speaker: [N_UTT arrays]} of the first n train-split speakers with N_UTT x SEG_S s of speech."""
    from resculpt.models import data

    out = {}
    m = int(bench.SEG_S * bench.SR)
    for it in data.select("speech", "train"):
        if len(out) >= n or it.duration_s < bench.N_UTT * bench.SEG_S:
            continue
        x, _ = data.load(it, sample_rate=bench.SR)
        out[f"{it.source}:{it.speaker}"] = [x[k * m:(k + 1) * m].copy() for k in range(bench.N_UTT)]
    return out


class Embedder:
    """Resemblyzer's embed_utterance, split at the mel spectrogram so an edit can go between."""

    def __init__(self):
        import librosa
        from resemblyzer import VoiceEncoder, preprocess_wav
        from resemblyzer.audio import wav_to_mel_spectrogram

        self.enc = VoiceEncoder(device="cpu", verbose=False)
        self.pre, self.mel = preprocess_wav, wav_to_mel_spectrogram
        self.fc = librosa.mel_frequencies(42, fmin=0.0, fmax=bench.SR / 2)[1:-1]  # (40,) band centres, Hz

    def mel_of(self, x):
        """(frames, 40) mel power and the slices the encoder averages over."""
        wav = self.pre(x, source_sr=bench.SR)
        wav_slices, mel_slices = self.enc.compute_partial_slices(len(wav), 1.3, 0.75)
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        return self.mel(wav), mel_slices

    def embed(self, mel, mel_slices):
        import torch

        if mel_slices[-1].stop > len(mel):  # an edit that drops frames: the partials of the shorter input
            _, mel_slices = self.enc.compute_partial_slices(len(mel) * 160, 1.3, 0.75)
            if mel_slices[-1].stop > len(mel):
                mel = np.pad(mel, ((0, mel_slices[-1].stop - len(mel)), (0, 0)), mode="wrap")
        mels = np.array([mel[s] for s in mel_slices], np.float32)
        with torch.no_grad():
            e = self.enc(torch.from_numpy(mels)).numpy().mean(axis=0)
        return e / np.linalg.norm(e)


def voiced(L, fc):
    """(frames,) bool: power below 1 kHz over power above 2 kHz more than 10 dB, L (frames, 40) log mel power."""
    p = np.exp(L)
    return 10 * np.log10(p[:, fc < 1000.0].sum(1) / (p[:, fc > 2000.0].sum(1) + 1e-20)) > 10.0


PAUSE_DB = 30.0


def pauses(L):
    """(frames,) bool: band-summed power more than PAUSE_DB under the 95th percentile frame, L (frames, 40)."""
    lev = 10 * np.log10(np.exp(L).sum(1) + 1e-20)
    return lev < np.percentile(lev, 95) - PAUSE_DB


def edits(fc):
    """{name: f(L (frames, 40), pooled) -> L'} on log mel power; pooled holds the system's statistics."""
    lo = fc < 1000.0

    def long_term(L, P):
        return L - L.mean(0) + P["G"]

    def long_term_var(L, P):
        s = L.std(0) + 1e-6
        return (L - L.mean(0)) / s * P["S"] + P["G"]

    def level(L, P):
        return L - L.mean(1, keepdims=True) + L.mean()

    def shuffle(L, P):
        return L[P["rng"].permutation(len(L))]

    def shuffle_blocks(L, P):
        n = len(L) // 10 * 10
        blocks = L[:n].reshape(-1, 10, L.shape[1])[P["rng"].permutation(n // 10)].reshape(n, -1)
        return np.concatenate([blocks, L[n:]])

    def band(f0, f1):
        sel = (fc >= f0) & (fc < f1)

        def f(L, P):
            out = L.copy()
            g = P["G"][sel]
            out[:, sel] = L[:, sel].mean(1, keepdims=True) + (g - g.mean())
            return out
        return f

    def kind(want_voiced):
        def f(L, P):
            out = L.copy()
            v = voiced(L, fc) == want_voiced
            g = P["Gv"] if want_voiced else P["Gu"]
            out[v] = L[v].mean(1, keepdims=True) + (g - g.mean())
            return out
        return f

    def smooth_low(L, P):
        out = L.copy()
        idx = np.flatnonzero(lo)
        for b in idx:
            out[:, b] = L[:, max(b - 1, 0):b + 2].mean(1)
        return out

    def pauses_dropped(L, P):
        q = pauses(L)
        return L[~q] if (~q).sum() >= 160 else L

    def pauses_pooled(L, P):
        q = pauses(L)
        out = L.copy()
        top = np.log(np.percentile(np.exp(L).sum(1), 95))
        out[q] = P["Gp"] + top
        return out

    def volume(L, P):
        return L - np.log(np.exp(L).mean()) + P["V"]

    e = {"none": lambda L, P: L, "long-term": long_term, "long-term+var": long_term_var, "level": level,
         "shuffle": shuffle, "shuffle-100ms": shuffle_blocks}
    for f0, f1 in BANDS:
        e[f"bands {f0}-{f1} Hz"] = band(f0, f1)
    e["voiced"] = kind(True)
    e["unvoiced"] = kind(False)
    e["smooth-low"] = smooth_low
    e["volume"] = volume
    e["pauses dropped"] = pauses_dropped
    e["pauses pooled"] = pauses_pooled
    for a_, b_ in [("long-term+var", "level"), ("bands 0-500 Hz", "level"), ("bands 0-500 Hz", "long-term+var")]:
        e[f"{a_} + {b_}"] = (lambda f, g: lambda L, P: g(f(L, P), P))(e[a_], e[b_])
    return e


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speakers", type=int, default=64)
    ap.add_argument("--system", action="append", default=[],
                    help="preset name or PRESET@key=value (repeatable; the original always runs)")
    ap.add_argument("--skip-speakers", type=int, default=0,
                    help="the benchmark's train-split speakers instead (benchmarks/anonymity.py --split train "
                         "--skip-speakers K): the 64 after the first 48 are the ones no learned stage trained on")
    ap.add_argument("--edit", action="append", default=[], help="only these edits (and none); default: all")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    bench.one_thread()
    t0 = time.time()
    utts = bench.utterances(a.speakers, a.skip_speakers, "train")[0] if a.skip_speakers else train_speakers(a.speakers)
    emb = Embedder()
    ed = edits(emb.fc)
    if a.edit:
        ed = {k: v for k, v in ed.items() if k == "none" or k in a.edit}
    systems = {"original": lambda x, rng=None: x}
    for p in a.system:
        systems[p] = bench.chain_system(p)
    eps = 1e-10
    table, orig = {}, {}
    for name, fn in systems.items():
        rng = np.random.default_rng(bench.SEED)
        mels = {s: [emb.mel_of(fn(x, rng)) for x in xs] for s, xs in utts.items()}
        allL = np.concatenate([np.log(m + eps) for v in mels.values() for m, _ in v])
        v = voiced(allL, emb.fc)
        Gp = [np.log(m + eps)[pauses(np.log(m + eps))] - np.log(np.percentile(m.sum(1), 95))
              for vv in mels.values() for m, _ in vv]
        Gp = np.concatenate(Gp)
        P = {"V": float(np.mean([np.log((m + eps).mean()) for vv in mels.values() for m, _ in vv])),
             "Gp": Gp.mean(0) if len(Gp) else np.full(allL.shape[1], -20.0), "G": allL.mean(0), "S": np.concatenate([np.log(m + eps) - np.log(m + eps).mean(0)
                                                     for vv in mels.values() for m, _ in vv]).std(0),
             "Gv": allL[v].mean(0), "Gu": allL[~v].mean(0)}
        row = {}
        for en, f in ed.items():
            P["rng"] = np.random.default_rng(bench.SEED + 7)
            E = {s: [emb.embed(np.exp(f(np.log(m + eps), P)).astype(np.float32), sl) for m, sl in vv]
                 for s, vv in mels.items()}
            if name == "original" and en == "none":
                orig = E
            row[en] = (bench.attack(orig, E), bench.attack(E, E))
        table[name] = row
        print(name, {k: tuple(round(x, 1) for x in v) for k, v in row.items()},
              f"voiced share {v.mean():.2f}", f"pause share {len(Gp) / len(allL):.2f}", f"{time.time() - t0:.0f} s", flush=True)

    n_t = len(utts) * len(bench.TRIALS)
    edit_args = "".join(f' --edit "{e}"' for e in a.edit)
    lines = ["# Where Resemblyzer finds the speaker: oracle edits of its mel input", "",
             f"`scripts/anon_mel_probe.py --speakers {a.speakers}"
             f"{f' --skip-speakers {a.skip_speakers}' if a.skip_speakers else ''}{''.join(' --system ' + s for s in a.system)}{edit_args}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({time.time() - t0:.0f} s): {len(utts)} "
             f"train-split speakers x {bench.N_UTT} chunks of {bench.SEG_S} s, {n_t} target and "
             f"{n_t * (len(utts) - 1)} non-target trials. Each cell: ignorant EER (enrolment on the unedited "
             "original) / lazy-informed EER (enrolment through the same system and edit). The edits are described "
             "in the script's docstring.", "",
             "| edit | " + " | ".join(table) + " |", "|---" * (len(table) + 1) + "|"]
    for en in ed:
        lines.append(f"| {en} | " + " | ".join(f"{table[s][en][0]:.1f} / {table[s][en][1]:.1f} %" for s in table)
                     + " |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
