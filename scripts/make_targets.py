"""Write the shipped target profiles (presets/targets/*.json) from recordings in the repository.

    .venv/bin/python scripts/make_targets.py

wideband-speech: the fingerprint of the bundled clean speech example (LibriSpeech speaker 1081, held out of
training; 16 kHz, so its band envelope reaches 7.2 kHz: wideband speech in the telephony sense), a target for
`render --target wideband-speech`, OSC `/profile/load` and the panel.
"""

from __future__ import annotations

from pathlib import Path

from resculpt.dsp.profile import from_reference
from resculpt.models import data

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    out = REPO / "presets" / "targets"
    out.mkdir(parents=True, exist_ok=True)
    x, sr = data.load(REPO / "examples" / "speech_1081_librispeech.flac")
    p = from_reference(x, sr, "wideband-speech")
    p.meta["source"] = "examples/speech_1081_librispeech.flac (LibriSpeech 1081, CC BY 4.0)"
    p.meta["made_by"] = "scripts/make_targets.py"
    print(p.save(out / "wideband-speech.json"))


if __name__ == "__main__":
    main()
