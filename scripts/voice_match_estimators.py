"""How far the voice match's streaming estimates of a speaker's median F0 and F0 range agree with the fingerprint's,
on real speech.

The ``resculpt`` stage's voice match (dsp/voice/match.py) moves the input's median F0 onto a target profile's.
The target's median comes from ``dsp.profile.fingerprint`` (YIN), the input's from the voice match's own tracker
(the anon stage's autocorrelation F0 held to a stricter voicing, a slow sign-step median). A bias between the
two is an error the match makes on every input. The same for the F0 range (p90 - p10 in semitones: the range
match scales the input's by target / input). Per val-split speech clip (one per speaker), both on the same
audio; printed per clip and summarised (mean difference = bias, its standard deviation = scatter), beside the
anon stage's own median tracker:

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/voice_match_estimators.py --files 8 --seconds 8
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np


def stream_estimates(x: np.ndarray, sr: int) -> dict:
    """The voice match's and the anon stage's median F0 (Hz) after streaming ``x`` (n,) float32, moving nothing."""
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.dsp.voice.match import VoiceMatch

    vm = VoiceMatch()
    sec = StreamingSTFT("default", [vm])
    sec.prepare(sr, 4096, 1)
    for i in range(0, x.size, 4096):
        sec.process(np.ascontiguousarray(x[None, i : i + 4096]))
    return {"f0": vm.input_median_hz, "anon": vm.median_hz, "range": vm.range_st}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/voice_match_estimators.py")
    ap.add_argument("--files", type=int, default=8, help="val speech clips (one per speaker)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=int, default=48000)
    a = ap.parse_args(argv)
    from resculpt.dsp.profile import fingerprint
    from resculpt.models import data

    if not data.have_data():
        print("shared data not found (set RESCULPT_DATA)", file=sys.stderr)
        return 1
    seen, items = set(), []
    for it in data.select("speech", "val"):
        spk = it.speaker or it.path.parent.name
        if it.duration_s >= a.seconds and spk not in seen:
            seen.add(spk)
            items.append(it)
        if len(items) == a.files:
            break
    rows = []
    print("| clip | median F0 Hz: fingerprint (YIN) | voice match | AnonVoice's fast median (same voicing) "
          "| F0 range st: fingerprint | voice match |")
    print("|---|---|---|---|---|---|")
    for it in items:
        x, _ = data.load(it, sample_rate=a.rate)
        x = np.ascontiguousarray(x[: int(a.seconds * a.rate)], np.float32)
        fp = fingerprint(x, a.rate, it.path.name).dims
        ref, rref = fp["f0_median_hz"], fp["f0_range_st"]
        s = stream_estimates(x, a.rate)
        rows.append((12 * math.log2(s["f0"] / ref), 12 * math.log2(s["anon"] / ref), s["range"] - rref))
        print(f"| {it.path.name} | {ref:.1f} | {s['f0']:.1f} | {s['anon']:.1f} | {rref:.2f} | {s['range']:.2f} |")
    r = np.array(rows)
    print()
    print("| estimate minus the fingerprint's, semitones | mean (bias) | std | largest |")
    print("|---|---|---|---|")
    for j, name in enumerate(("median F0: voice match", "median F0: AnonVoice's fast median", "F0 range: voice match")):
        print(f"| {name} | {r[:, j].mean():+.2f} | {r[:, j].std():.2f} | {np.abs(r[:, j]).max():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
