"""How far the voice match's streaming estimates of a speaker agree with the fingerprint's, on real speech.

The ``resculpt`` stage's voice match (dsp/voice/match.py) moves the input's median F0, F0 range and formant scale
onto a target profile's. The target's numbers come from ``dsp.profile.fingerprint`` (YIN median and p90 - p10,
:func:`band_formant_scale` of the 32-band long-term envelope); the input's from the stage's own trackers (the
anon stage's autocorrelation F0 and sign-step median, stochastic p10/p90, the long-term-envelope formant scale).
A bias between the two sides is an error the match makes on every input. Per val-split speech clip (one per
speaker), both sides on the same audio; printed per clip and summarised (mean difference = bias, its standard
deviation = scatter):

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/voice_match_estimators.py --files 8 --seconds 8
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np


def stream_estimates(x: np.ndarray, sr: int, target) -> dict:
    """The voice match's own estimates after streaming ``x`` (n,) float32 through it toward ``target`` (a
    Profile) at amount 0 (it measures, moves nothing)."""
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.dsp.voice.match import VoiceGoal, VoiceMatch

    vm = VoiceMatch()
    sec = StreamingSTFT("default", [vm])
    sec.prepare(sr, 4096, 1)
    vm.set_goal(VoiceGoal.from_profile(target), 0.0)
    for i in range(0, x.size, 4096):
        sec.process(np.ascontiguousarray(x[None, i : i + 4096]))
    return {"f0": vm.input_median_hz, "range": vm.range_st, "ratio": vm.fitted_ratio}


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
    clips = []
    for it in items:
        x, _ = data.load(it, sample_rate=a.rate)
        x = np.ascontiguousarray(x[: int(a.seconds * a.rate)], np.float32)
        clips.append((it.path.name, x, fingerprint(x, a.rate, it.path.name)))
    rows = []
    print("| input clip (target: the next clip) | median F0 Hz, fingerprint / stream | F0 range st, fingerprint / "
          "stream | formant ratio target / input: LPC F1..F3 / envelope fit (stream) |")
    print("|---|---|---|---|")
    for k, (name, x, fp) in enumerate(clips):
        tgt = clips[(k + 1) % len(clips)][2]
        s = stream_estimates(x, a.rate, tgt)
        lpc = 2.0 ** np.mean([math.log2(tgt.dims[f] / fp.dims[f]) for f in ("f1_hz", "f2_hz", "f3_hz")])
        rows.append((12 * math.log2(s["f0"] / fp.dims["f0_median_hz"]), s["range"] - fp.dims["f0_range_st"],
                     100 * (s["ratio"] / lpc - 1.0), 100 * abs(lpc - 1.0)))
        print(f"| {name} | {fp.dims['f0_median_hz']:.1f} / {s['f0']:.1f} | {fp.dims['f0_range_st']:.2f} / "
              f"{s['range']:.2f} | {lpc:.3f} / {s['ratio']:.3f} |")
    r = np.array(rows)
    print()
    print("| estimate, stream minus fingerprint | mean (bias) | std | largest |")
    print("|---|---|---|---|")
    for j, name in enumerate(("median F0, semitones", "F0 range p90 - p10, semitones",
                              "formant ratio, fit / LPC - 1, %", "(for scale) LPC ratio's own |ratio - 1|, %")):
        print(f"| {name} | {r[:, j].mean():+.2f} | {r[:, j].std():.2f} | {np.abs(r[:, j]).max():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
