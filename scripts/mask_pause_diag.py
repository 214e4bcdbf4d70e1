"""Where a denoiser's DNSMOS OVRL comes from: DNSMOS P.835's speech (SIG) and background (BAK) scores beside OVRL,
and how deep the noise left in the speech pauses is, for the shipped systems and mask bundles side by side.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/mask_pause_diag.py \\
        --systems noisy resculpt-live rnnoise nsnet2 dfn3 --out benchmarks/results/mask_pause/diag

Each system runs as ``benchmarks/denoise.py`` runs it (``--bundle NAME=DIR``: the mask stage alone at 16 kHz,
as its ablation, with a 30 dB limit or ``--reduction-db``), on its validation mixtures and VoiceBank pairs,
aligned to the clean speech. DNSMOS is ``denoise.dnsmos_p835`` (speechmos's model and polynomials). The
pauses: 20 ms frames of a validation file whose clean speech is 45 dB or more under its 95th-percentile frame
(files with fewer than 5 such frames are skipped); there, the mixture's energy over the output's, in dB,
summed over each band's bins (0-1, 1-2, 2-4, 4-8 kHz; Hann-windowed frames) and as the mean over frames of
each frame's dB ratio (a system that zeroes some frames outright scores high on the second and not the first),
and the spread (std over frames) of that ratio."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import denoise as D
from resculpt_bench_io import generated_by, write_result

SR = D.SR
FRAME = 320  # 20 ms at 16 kHz
BELOW_DB = 45.0
BANDS_HZ = ((0, 1000), (1000, 2000), (2000, 4000), (4000, 8001))


def pause_depth(y: np.ndarray, noisy: np.ndarray, clean: np.ndarray) -> dict | None:
    """Depth of the noise left in the pauses of one file (all (n,) at 16 kHz, aligned): {"bands": (4,) dB of
    mixture over output energy per band, "frames": mean over pause frames of the frame's dB ratio, "spread": its
    std}; None when the file has fewer than 5 pause frames."""
    m = min(y.size, noisy.size, clean.size) // FRAME
    c, yo, xn = (z[: m * FRAME].reshape(m, FRAME) for z in (clean, y, noisy))
    ce = 10 * np.log10((c ** 2).mean(1) + 1e-12)
    pause = ce < np.percentile(ce, 95) - BELOW_DB
    if pause.sum() < 5:
        return None
    r = 10 * np.log10((xn[pause] ** 2).mean(1) + 1e-12) - 10 * np.log10((yo[pause] ** 2).mean(1) + 1e-12)
    w = np.hanning(FRAME)
    Y = np.abs(np.fft.rfft(yo[pause] * w, axis=1)) ** 2
    X = np.abs(np.fft.rfft(xn[pause] * w, axis=1)) ** 2
    f = np.fft.rfftfreq(FRAME, 1 / SR)
    bands = [10 * np.log10(X[:, (f >= lo) & (f < hi)].sum() / (Y[:, (f >= lo) & (f < hi)].sum() + 1e-12))
             for lo, hi in BANDS_HZ]
    return {"bands": np.array(bands), "frames": float(r.mean()), "spread": float(r.std())}


def main(argv=None) -> int:
    t0 = time.time()
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", nargs="*", default=["noisy", "resculpt-live", "rnnoise", "nsnet2", "dfn3"],
                    help="systems of benchmarks/denoise.py")
    ap.add_argument("--bundle", nargs="*", default=[], metavar="NAME=DIR", help="mask bundles (the stage alone)")
    ap.add_argument("--reduction-db", type=float, default=30.0, help="mask.reduction_db for --bundle rows")
    ap.add_argument("--n-val", type=int, default=12, help="validation utterances (x 4 SNRs)")
    ap.add_argument("--n-vb", type=int, default=6, help="VoiceBank pairs")
    ap.add_argument("--out", required=True, help="OUT.md and OUT.json")
    a = ap.parse_args(argv)
    sets = D.load_sets(a.n_val, a.n_vb)
    runs = {k: (rate, make) for k, (rate, make, _) in D.systems(a.systems).items()}
    for spec in a.bundle:
        name, path = spec.split("=", 1)
        runs[name] = (SR, lambda p=path: D.resculpt_bundle(p, params={"mask.reduction_db": a.reduction_db}))
    res = {}
    for name, (rate, make) in runs.items():
        fn = make()
        r = {}
        for setname, items in sets.items():
            mos, depth = [], []
            for it in items:
                x = it["noisy"] if rate == SR else D.rs(it["noisy"], SR, rate)
                y = fn(x)
                y = D.align(y if rate == SR else D.rs(y, rate, SR), it["clean"])[0]
                mos.append(D.dnsmos_p835(np.clip(y, -1, 1)))
                if setname == "val":
                    d = pause_depth(y, it["noisy"], it["clean"])
                    if d is not None:
                        depth.append(d)
            r[setname] = {k: float(np.mean([m[k] for m in mos])) for k in ("sig", "bak", "ovrl")}
            if depth:
                r[setname]["pause_bands_db"] = np.mean([d["bands"] for d in depth], 0).tolist()
                r[setname]["pause_frames_db"] = float(np.mean([d["frames"] for d in depth]))
                r[setname]["pause_spread_db"] = float(np.mean([d["spread"] for d in depth]))
                r[setname]["pause_files"] = len(depth)
        res[name] = r
        print(name, r, flush=True)
    cmd, gen = generated_by("scripts/mask_pause_diag.py", argv, t0)
    n_files = max((r["val"].get("pause_files", 0) for r in res.values()), default=0)
    L = ["# DNSMOS P.835 parts and the noise left in the pauses", "",
         (gen + f"{len(sets['val'])} validation mixtures (SNR 0/5/10/15 dB) and {len(sets['voicebank'])} "
          f"VoiceBank-DEMAND pairs; pause depth on the {n_files} validation files with pauses (frames 45 dB under "
          "the clean speech's 95th percentile)."), "",
         ("| system | val SIG | val BAK | val OVRL | VB SIG | VB BAK | VB OVRL | pause depth 0-1 / 1-2 / 2-4 / 4-8 kHz "
          "(dB) | mean frame depth (dB) | its spread (dB) |"),
         "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        v, b = r["val"], r.get("voicebank", {})
        bands = " / ".join(f"{x:.1f}" for x in v.get("pause_bands_db", []))
        L.append(f"| {name} | {v['sig']:.3f} | {v['bak']:.3f} | {v['ovrl']:.3f} | {b.get('sig', float('nan')):.3f} | "
                 f"{b.get('bak', float('nan')):.3f} | {b.get('ovrl', float('nan')):.3f} | {bands} | "
                 f"{v.get('pause_frames_db', float('nan')):.1f} | {v.get('pause_spread_db', float('nan')):.1f} |")
    write_result(a.out, L, {"command": cmd, "results": res})
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
