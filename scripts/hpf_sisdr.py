"""How much SI-SDR a preset's high-pass alone costs: the preset's ``hpf`` stage (its cutoff, its STFT section's
latency) applied to the CLEAN references of the denoise benchmark's validation mixtures, scored against the
unfiltered clean clip exactly as ``benchmarks/denoise.py`` scores a system (48 kHz in 10 ms blocks, back to 16 kHz,
aligned). It bounds what any preset that starts with this high-pass can reach on that metric.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/hpf_sisdr.py [--preset denoise-live] [--files 6]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import denoise as D  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="denoise-live")
    ap.add_argument("--files", type=int, default=6, help="validation mixtures (their clean references)")
    a = ap.parse_args(argv)
    from resculpt import Chain
    from resculpt.plugin_host.presets import load_preset

    p = load_preset(a.preset)
    params = {k: v for k, v in p.full_params().items() if k.startswith("hpf.")}
    sets = D.load_sets(max(1, (a.files + 3) // 4), 0)
    vals = []
    for it in sets["val"][: a.files]:
        c48 = D.rs(it["clean"], D.SR, D.HI)
        ch = Chain({"pre": ["hpf"], "spectral": [], "stft": p.layout.stft}, sample_rate=D.HI, channels=1,
                   max_block=480, params=params)
        lat = ch.latency_samples
        y = np.concatenate([c48[None], np.zeros((1, lat), np.float32)], axis=1)
        for i in range(0, y.shape[1], 480):
            ch.process(y[:, i : i + 480])
        ya, _ = D.align(D.rs(y[0, lat : lat + c48.size], D.HI, D.SR), it["clean"])
        vals.append(D.si_sdr(ya, it["clean"]))
        print(f"{it['name']}: SI-SDR of hpf(clean) vs clean {vals[-1]:.2f} dB", flush=True)
    print(f"{a.preset} hpf {params}: SI-SDR {min(vals):.2f} .. {max(vals):.2f} dB, mean {np.mean(vals):.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
