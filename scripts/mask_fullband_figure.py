"""Figure: fullband content above 8 kHz survives the mask (music in enhance mode, 48 kHz speech in denoise
mode, and a noisy 48 kHz speech mixture for contrast). Needs matplotlib (in .venv-bench):

    .venv-bench/bin/python scripts/mask_fullband_figure.py   # -> docs/figures/mask-fullband.png (+ .json)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
from resculpt.models import data
from resculpt.plugin_host.chain import Chain

# The same recordings as tests/test_mask_fullband.py.
MUSIC = "music/librosa_data/Karissa_Hobbs_-_Lets_Go_Fishin.flac"
DRUMS = "music/mirdata_test_excerpts/jtd__trio_drums.flac"
SPEECH = "speech/freesound_misc/davidbain/xmas_136777.flac"


def band_db(x, sr, lo, hi):
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / sr)
    return float(10 * np.log10(p[(f >= lo) & (f < hi)].sum() + 1e-20))


def ltas(x, sr, n=4096):
    fr = x[: (x.size // n) * n].reshape(-1, n) * np.hanning(n)
    return np.fft.rfftfreq(n, 1 / sr), 10 * np.log10((np.abs(np.fft.rfft(fr, axis=-1)) ** 2).mean(0) + 1e-20)


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sr = 48000
    cases = []
    for title, rel, mode, secs in (("music (val), enhance", MUSIC, "enhance", 6.0),
                                   ("drums (val), enhance", DRUMS, "enhance", 5.0),
                                   ("48 kHz speech, denoise", SPEECH, "denoise", 2.5)):
        x, _ = data.load(data.data_root() / rel, sr)
        x = x[: int(secs * sr)]
        cases.append((title, x, mode))
    # Contrast: the same speech with steady fullband hiss at 10 dB SNR.
    sp = cases[2][1]
    hiss = np.random.default_rng(0).standard_normal(sp.size).astype(np.float32)
    hiss *= np.sqrt(np.mean(sp**2)) / np.sqrt(np.mean(hiss**2)) * 10 ** (-10 / 20)
    cases.append(("48 kHz speech + white hiss (10 dB), denoise", sp + hiss, "denoise"))
    fig, axes = plt.subplots(len(cases), 1, figsize=(8, 2.6 * len(cases)))
    summary = {}
    for ax, (title, x, mode) in zip(axes, cases):
        ch = Chain({"spectral": ["mask"], "stft": "default"}, sample_rate=sr, channels=1,
                   params={"mask.mode": mode, "mask.reduction_db": 40.0})
        y = ch(x[None].copy())[0]
        f, a = ltas(x, sr)
        _, b = ltas(y, sr)
        d_hf = band_db(y, sr, 8000, 20000) - band_db(x, sr, 8000, 20000)
        d_lf = band_db(y, sr, 50, 8000) - band_db(x, sr, 50, 8000)
        summary[title] = {"hf_8_20k_db": round(d_hf, 2), "lf_50_8k_db": round(d_lf, 2)}
        ax.semilogx(f[1:], a[1:], label="input", lw=1)
        ax.semilogx(f[1:], b[1:], label="mask output", lw=1)
        ax.axvline(8000, color="k", ls="--", lw=0.8)
        ax.set_xlim(50, 24000)
        ax.set_title(f"{title}: 8-20 kHz {d_hf:+.1f} dB, 50 Hz-8 kHz {d_lf:+.1f} dB", fontsize=9)
        ax.set_ylabel("dB")
        ax.legend(fontsize=7, loc="lower left")
    axes[-1].set_xlabel("Hz (dashed: 8 kHz, the top of the 16 kHz training speech)")
    fig.tight_layout()
    out = REPO / "docs" / "figures" / "mask-fullband.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
