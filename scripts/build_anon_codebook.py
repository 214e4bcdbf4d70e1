"""Build the ``anon`` stage's pseudo-speaker codebook (dsp/voice/anon_codebook.npz, docs/anonymization.md).

    RESCULPT_DATA=/work/shared/data .venv/bin/python scripts/build_anon_codebook.py [--speakers 48] [--k 512]

Speakers: the first ``--speakers`` LibriSpeech speakers (by speaker id) of the TRAIN split
(``resculpt.models.data.select("speech", "train")``, recordings of at least 10 s), never a val speaker.
Each recording runs at 16 kHz through the ``anon`` stage set to normalise only (no pitch-range change, the
speaker's measured formant scale divided out, pseudo-speaker scale 1, no McAdams warp, no timbre, detail or
codebook share), in the default STFT section; from every voiced frame after the first ``SKIP_S`` seconds
(the formant-scale estimate and the long-term mean settling), the feature of dsp/voice/codebook.py is kept:
the warped envelope minus its long-term mean at the codebook grid, its grid mean removed. At most
``PER_SPEAKER`` frames per speaker (a random subset), so no speaker dominates. K-means (Lloyd, seeded,
``ITERS`` iterations, float64) over the pooled frames gives ``--k`` centroids: each the mean of frames of
many speakers. Stored as float16 dB with the grid and a provenance note; prints the file's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SR = 16000
SKIP_S = 2.0
PER_SPEAKER = 1500
ITERS = 30
SEED = 20261130


def frames_of(x: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, float]:
    """(n, B) features of the voiced frames of x (n,) at 16 kHz after SKIP_S, and the speaker's median F0."""
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.dsp.voice import anon, codebook
    from resculpt.plugin_host import catalog

    dummy = codebook.Codebook(grid, np.zeros((4, grid.shape[0]), np.float32), "")
    table = ParamTable(catalog.all_param_specs())
    table.set_many({"anon.f0_hz": 140.0, "anon.pitch_range": 1.0, "anon.formant_ratio": 1.0,
                    "anon.formant_follow": 0.0, "anon.warp_alpha": 1.0, "anon.timbre_pct": 0.0,
                    "anon.detail_pct": 0.0, "anon.vtln_pct": 100.0, "anon.codebook_pct": 0.0}, notify=False)
    table.prepare(SR)
    table.snap()
    out = []

    class Recorder(anon.AnonVoice):
        def _warped_envelope(self):
            super()._warped_envelope()
            if self._voiced and self._ch == 0 and self.frames >= SKIP_S * 200:
                k = self._knn
                np.subtract(self._envw, self._mean[0], out=k._d)
                f = np.interp(grid, np.arange(k._d.shape[0]) * self._spacing, k._d)
                out.append((f - f.mean()).astype(np.float32))

        def process_frame(self, spec):
            super().process_frame(spec)
            self.frames += 1

    real_load = codebook.load
    codebook.load = lambda: dummy
    try:
        st = Recorder(table)
        st.frames = 0
        sec = StreamingSTFT("default", [st], True, table=table)
        sec.prepare(SR, 4096, 1)
        y = x[None].astype(np.float32).copy()
        for i in range(0, y.shape[1], 4096):
            sec.process(y[:, i : i + 4096])
    finally:
        codebook.load = real_load
    return (np.stack(out) if out else np.zeros((0, grid.shape[0]), np.float32)), st.median_hz


def table_speakers(n: int) -> list:
    """The train speakers the anon stage's tables are built from (this codebook, dsp/voice/dynamics.py's
    statistics): the first ``n`` LibriSpeech train-clean-100 speakers by id with at least 10 s of speech."""
    from resculpt.models import data

    items = [it for it in data.select("speech", "train", source="librispeech_train-clean-100_resemblyzer")
             if it.duration_s >= 10.0]
    return sorted(items, key=lambda it: int(it.speaker))[:n]


def kmeans(X: np.ndarray, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (k, B), cluster sizes (k,)) by Lloyd's algorithm from k distinct random frames."""
    C = X[rng.choice(len(X), k, replace=False)].astype(np.float64)
    X = X.astype(np.float64)
    x2 = (X * X).sum(1)
    for it in range(ITERS):
        d = x2[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None]
        lab = d.argmin(1)
        cnt = np.bincount(lab, minlength=k)
        S = np.zeros_like(C)
        np.add.at(S, lab, X)
        empty = cnt == 0
        C[~empty] = S[~empty] / cnt[~empty, None]
        if empty.any():  # re-seed an empty cluster on the frame farthest from its centroid
            far = np.argsort(d[np.arange(len(X)), lab])[::-1][: int(empty.sum())]
            C[empty] = X[far]
        print(f"  k-means {it + 1}/{ITERS}: mean distance {float(d[np.arange(len(X)), lab].mean()):.4f}",
              file=sys.stderr, flush=True)
    return C, cnt


def save_npz(path, **arrays) -> None:
    """np.savez_compressed with fixed zip timestamps, so the same arrays give the same file (and sha256)."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())


def main(argv=None) -> int:
    from resculpt.dsp.voice import codebook
    from resculpt.models import data

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speakers", type=int, default=48)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--out", default=str(codebook.FILE))
    a = ap.parse_args(argv)
    rng = np.random.default_rng(SEED)
    items = table_speakers(a.speakers)
    if len(items) < 8:
        print(f"only {len(items)} train speakers", file=sys.stderr)
        return 1
    grid = codebook.grid_hz()
    feats, medians = [], []
    for it in items:
        x, _ = data.load(it, sample_rate=SR)
        f, med = frames_of(x, grid)
        if len(f) > PER_SPEAKER:
            f = f[rng.choice(len(f), PER_SPEAKER, replace=False)]
        feats.append(f)
        medians.append(med)
        print(f"speaker {it.speaker}: {len(f)} frames, median F0 {med:.0f} Hz", file=sys.stderr, flush=True)
    X = np.concatenate(feats)
    C, cnt = kmeans(X * (20.0 / np.log(10.0)), a.k, rng)  # in dB
    spk = [it.speaker for it in items]
    note = (f"anon codebook: k-means ({a.k} centroids, {ITERS} Lloyd iterations, seed {SEED}) of {len(X)} voiced "
            f"frames of {len(items)} LibriSpeech train-clean-100 speakers ({sum(m < 165 for m in medians)} with "
            f"median F0 < 165 Hz): {' '.join(spk)}. LibriSpeech: CC BY 4.0 (openslr.org/12), derived data. "
            f"Built by scripts/build_anon_codebook.py --speakers {a.speakers} --k {a.k}.")
    save_npz(a.out, grid_hz=grid, entries_db=C.astype(np.float16), counts=cnt.astype(np.int32),
             note=np.array(note))
    sha = hashlib.sha256(Path(a.out).read_bytes()).hexdigest()
    print(note)
    print(f"{a.out}: {Path(a.out).stat().st_size} bytes, sha256 {sha}; smallest cluster {cnt.min()} frames, "
          f"median {int(np.median(cnt))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
