"""The average speaker's band-level statistics of the anon stage's level dynamics (dsp/voice/dynamics.py).

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/build_anon_dynamics.py [--speakers 48]

Speakers: the first ``--speakers`` LibriSpeech speakers (by speaker id) of the TRAIN split with at least 10 s of
speech (never a val speaker), as for the anon codebook. Each recording runs at 16 kHz through the ``anon`` stage
in the default STFT section (its settings do not matter: the stage's input frames are read, before any step),
and the band levels of dynamics.py (``band_weights``, dB) of every input frame the stage calls speech (its pause
test's complement, ``AnonVoice.speech``) are kept. Per speaker: each band's mean and variance over those frames.
Printed: POP_DB, the mean over speakers of each speaker's band means less their mean over the bands (the shape;
the level is the speaker's), and POP_STD_DB, the square root of the mean over speakers of the band variances
(the spread within one speaker, which the stage's running variance estimates), to paste into dynamics.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_anon_codebook import table_speakers  # noqa: E402  (one home for the tables' speakers)

SR = 16000


def band_levels(x: np.ndarray) -> np.ndarray:
    """(n, BANDS) band levels (dB) of the stage's input frames that it calls speech, x (n,) at 16 kHz."""
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.dsp.voice import anon, dynamics
    from resculpt.plugin_host import catalog

    table = ParamTable(catalog.all_param_specs())
    table.prepare(SR)
    table.snap()
    out = []

    class Recorder(anon.AnonVoice):
        def prepare(self, ctx):
            super().prepare(ctx)
            self.w = dynamics.band_weights(ctx.freqs_hz)

        def process_frame(self, spec):
            p = self.w @ (np.abs(spec[0]) ** 2)
            super().process_frame(spec)
            if self.speech:
                out.append(10.0 * np.log10(p + 1e-20))

    st = Recorder(table)
    sec = StreamingSTFT("default", [st], True, table=table)
    sec.prepare(SR, 4096, 1)
    y = x[None].astype(np.float32).copy()
    for i in range(0, y.shape[1], 4096):
        sec.process(y[:, i:i + 4096])
    return np.stack(out) if out else np.zeros((0, dynamics.BANDS))


def main(argv=None) -> int:
    from resculpt.models import data

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speakers", type=int, default=48)
    a = ap.parse_args(argv)
    items = table_speakers(a.speakers)
    if len(items) < 8:
        print(f"only {len(items)} train speakers", file=sys.stderr)
        return 1
    means, variances = [], []
    for it in items:
        x, _ = data.load(it, sample_rate=SR)
        L = band_levels(x)
        m = L.mean(0)
        means.append(m - m.mean())
        variances.append(L.var(0))
        print(f"speaker {it.speaker}: {len(L)} speech frames", file=sys.stderr, flush=True)
    pop = np.mean(means, 0)
    std = np.sqrt(np.mean(variances, 0))
    print(f"# {len(items)} speakers: " + " ".join(it.speaker for it in items))
    print("POP_DB = (" + ", ".join(f"{v:.1f}" for v in pop) + ")")
    print("POP_STD_DB = (" + ", ".join(f"{v:.2f}" for v in std) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
