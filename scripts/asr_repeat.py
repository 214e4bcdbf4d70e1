"""Does the anonymity benchmark's Whisper give the same words for the same audio whatever it transcribed before?

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/asr_repeat.py [--preset anon-strong] [--speakers 6]

Renders each of the first val speakers' five utterances through the preset (joined, as the benchmark's WER reads
them), then transcribes them three times in one process, in order, reversed and in order again, two ways: with
``benchmarks/anonymity.py``'s ASR (seed and a fresh model per call) and with one model for every call, seeded
before each. Prints, per way, how many speakers got different words across the three passes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench  # noqa: E402


class OneModel(bench.ASR):
    """The benchmark's ASR with one model for every call, seeded before each."""

    def __init__(self):
        super().__init__()
        self.one = super().model()

    def model(self):
        import ctranslate2

        ctranslate2.set_random_seed(0)
        return self.one


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="anon-strong")
    ap.add_argument("--speakers", type=int, default=6)
    a = ap.parse_args(argv)
    bench.one_thread()
    utts, _ = bench.utterances(a.speakers, 0, "val")
    fn = bench.chain_system(a.preset)
    audio = {s: np.concatenate([fn(x, None) for x in xs]) for s, xs in utts.items()}
    order = list(audio)
    for name, asr in (("the benchmark's ASR (a fresh model per call)", bench.ASR()), ("one model, seeded per call", OneModel())):
        passes = [{s: asr(audio[s]) for s in seq} for seq in (order, order[::-1], order)]
        differ = sum(len({p[s] for p in passes}) > 1 for s in order)
        print(f"{name}: {differ} of {len(order)} speakers got different words across three passes ({a.preset})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
