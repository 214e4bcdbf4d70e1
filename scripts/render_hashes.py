"""sha256 of what every shipped preset renders, through the CLI and the Python API, as JSON on stdout.

Used by ``scripts/render-compare.sh REV`` to show that a change leaves every render bit-identical. It only
calls interfaces that every revision since the house cleanup has (``resculpt.cli.main``, ``Chain.from_preset``,
``chain.params``, ``chain.process``, ``chain.load_preset``, ``list_presets``), so it runs against old and new
code alike. Cases per preset:

- ``cli16k``: ``resculpt render`` of the bundled clip (16 kHz mono);
- ``cli48k``: the same clip at 48 kHz stereo (resampled here, right channel delayed and scaled);
- ``api``: 48 kHz stereo streamed in 128-sample blocks while mix, bypass, in/out gain and two
  slot parameters move (ramps), then a preset swap (crossfade) mid-stream;

plus ``--target`` (a descriptor delta) and ``--context call`` renders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "examples" / "speech_1081_librispeech.flac"


def _sha(path_or_array) -> str:
    if isinstance(path_or_array, np.ndarray):
        data = np.ascontiguousarray(path_or_array, np.float32).tobytes()
    else:
        data, _ = sf.read(str(path_or_array), dtype="float32", always_2d=True)
        data = np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _cli(args) -> None:
    from resculpt.cli import main

    with contextlib.redirect_stdout(sys.stderr):  # the CLI's report lines; stdout carries the JSON
        rc = main([str(a) for a in args])
    if rc not in (0, None):
        raise SystemExit(f"render failed ({rc}): {args}")


def _api(preset: str, x48: np.ndarray, other: str) -> str:
    import resculpt

    chain = resculpt.Chain.from_preset(preset, sample_rate=48000, channels=2, max_block=128)
    ids = [p for p in ("comp.ratio", "hpf.cutoff_hz", "mask.reduction_db", "sgate.threshold_db",
                       "blur.mix", "lfo.depth", "limiter.threshold_db") if p in chain.params]
    events = {
        40: {"mix": 0.5}, 80: {"in.gain_db": -6.0, "out.gain_db": 3.0},
        120: {ids[0]: chain.params.spec(ids[0]).min} if ids else {},
        160: {"bypass": 1.0}, 200: {"bypass": 0.0, "mix": 1.0},
        240: {ids[-1]: chain.params.spec(ids[-1]).max} if ids else {},
    }
    y = x48.copy()
    n = y.shape[1]
    for k, i in enumerate(range(0, n, 128)):
        for pid, v in events.get(k, {}).items():
            chain.params[pid] = v
        if k == 300:
            chain.load_preset(other)
        chain.process(y[:, i : i + 128])
    return _sha(y)


def main() -> int:
    from resculpt import list_presets

    presets = [name for name, _ in list_presets() if (ROOT / "presets" / f"{name}.json").is_file()]
    x, sr = sf.read(str(CLIP), dtype="float32", always_2d=True)
    x = x.T
    mono48 = resample_poly(x[0].astype(np.float64), 3, 1).astype(np.float32)
    right = 0.7 * np.concatenate([np.zeros(37, np.float32), mono48[:-37]])
    x48 = np.stack([mono48, right]).astype(np.float32)
    out = {}
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        src48 = td / "clip48.wav"
        sf.write(str(src48), x48.T, 48000, subtype="FLOAT")
        for i, p in enumerate(presets):
            o16, o48 = td / f"{p}-16.wav", td / f"{p}-48.wav"
            _cli(["render", CLIP, "-o", o16, "--preset", p])
            _cli(["render", src48, "-o", o48, "--preset", p])
            out[f"{p}/cli16k"] = _sha(o16)
            out[f"{p}/cli48k"] = _sha(o48)
            out[f"{p}/api"] = _api(p, x48, presets[(i + 1) % len(presets)])
            print(p, file=sys.stderr)
        target = td / "t.json"
        _cli(["profile", "describe", "more bass, clearer highs", "-o", target])
        for p in ("clean", "podcast-clean"):
            o = td / f"{p}-target.wav"
            _cli(["render", src48, "-o", o, "--preset", p, "--target", target])
            out[f"{p}/target"] = _sha(o)
            o = td / f"{p}-context.wav"
            _cli(["render", src48, "-o", o, "--preset", p, "--context", "call"])
            out[f"{p}/context"] = _sha(o)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
