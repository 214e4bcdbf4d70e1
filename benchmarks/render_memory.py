"""Peak memory and wall time of `resculpt render` against file length, channels and render kind.

    nice .venv/bin/python benchmarks/render_memory.py                     # 1 and 10 minutes
    nice .venv/bin/python benchmarks/render_memory.py --minutes 1 10 60   # and one hour
    nice .venv/bin/python benchmarks/render_memory.py --minutes 1 --channels 2 --kinds target

Each case renders a 48 kHz WAV (the bundled speech clip tiled to the length, each repetition with its
own gain, every channel offset by 37 ms; written as 16-bit PCM block by block) in a child process,
``python -m resculpt.cli render IN -o OUT.wav --preset P [--target T]`` run by ``/usr/bin/time -f %M``,
and reads that child's peak resident memory (its ``ru_maxrss``: the process's high-water mark) and
its wall time. Kinds: ``plain`` (preset podcast-clean: boards and the spectral gate), ``mask``
(denoise-gentle: the learned mask) and ``target`` (podcast-clean with ``--target``: a target profile
JSON, the default two refinement passes). Inputs and outputs live in a temporary folder (``--tmp``)
and are deleted after each case. Writes benchmarks/results/render_memory.md (``--out``) after every
case, keeping the rows of earlier runs for the cases this run does not measure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "examples" / "speech_1081_librispeech.flac"
OUT = ROOT / "benchmarks" / "results" / "render_memory.md"
SR = 48000
KINDS = {"plain": ("podcast-clean", False), "mask": ("denoise-gentle", False), "target": ("podcast-clean", True)}


def make_input(path: Path, minutes: float, channels: int) -> None:
    """The bundled clip at 48 kHz tiled to ``minutes``, written block by block (flat memory)."""
    from pedalboard.io import AudioFile
    from resculpt.plugin_host.audio_io import read_audio
    from scipy.signal import resample_poly

    x, sr = read_audio(CLIP)
    x = resample_poly(x[0].astype(np.float64), SR // 16000, 1).astype(np.float32) if sr == 16000 else x[0]
    d = int(0.037 * SR)
    tile = np.stack([np.roll(x, k * d) for k in range(channels)])
    n = int(minutes * 60 * SR)
    rng = np.random.default_rng(0)
    with AudioFile(str(path), "w", SR, channels, bit_depth=16) as f:
        done = 0
        while done < n:
            k = min(tile.shape[1], n - done)
            f.write(tile[:, :k] * np.float32(rng.uniform(0.3, 0.9)))
            done += k


def make_target(path: Path) -> None:
    """A target profile: the clip's fingerprint with a darker band envelope (-1 dB per band upward)."""
    from resculpt.dsp.profile import Profile, long_term_envelope
    from resculpt.plugin_host.audio_io import read_audio

    x, sr = read_audio(CLIP)
    env = long_term_envelope(x, sr) - np.arange(32) * 1.0
    Profile(band_env_db=list(env)).save(path)


def run_case(inp: Path, out: Path, preset: str, target: Path | None) -> tuple[float, float, int]:
    """(peak RSS MiB, wall s, exit status) of one render in a child process.

    The child is started by ``/usr/bin/time``, whose own few MiB are all a child inherits in its
    high-water mark: a child forked straight from this process would count this process's memory at
    the fork in its ``ru_maxrss`` (Linux carries the old high-water mark across exec)."""
    cmd = [sys.executable, "-m", "resculpt.cli", "render", str(inp), "-o", str(out), "--preset", preset, "-q"]
    if target is not None:
        cmd += ["--target", str(target)]
    rss = out.with_suffix(".rss")
    t0 = time.perf_counter()
    rc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss), *cmd], cwd=str(out.parent), check=False).returncode
    wall = time.perf_counter() - t0
    kib = int(rss.read_text().split()[-1])
    rss.unlink()
    return kib / 1024.0, wall, rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    ap.add_argument("--channels", type=int, nargs="+", default=[2, 6])
    ap.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    ap.add_argument("--tmp", help="folder for the inputs and outputs (default: a temporary folder)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    cmd = " ".join(["nice", ".venv/bin/python", "benchmarks/render_memory.py", *(argv if argv is not None else sys.argv[1:])])
    out_md = Path(a.out)
    rows = read_rows(out_md)  # earlier runs' rows stay unless this run measures the same case again
    failed = False
    with tempfile.TemporaryDirectory(dir=a.tmp) as td:
        td = Path(td)
        tgt = td / "target.json"
        make_target(tgt)
        for minutes in a.minutes:
            for ch in a.channels:
                inp = td / f"in_{minutes:g}min_{ch}ch.wav"
                make_input(inp, minutes, ch)
                for kind in a.kinds:
                    preset, with_target = KINDS[kind]
                    out = td / "out.wav"
                    mib, wall, rc = run_case(inp, out, preset, tgt if with_target else None)
                    out.unlink(missing_ok=True)
                    failed |= rc != 0
                    rows[(float(minutes), ch, kind)] = (
                        f"| {minutes:g} | {ch} | {kind} | {preset} | {mib:.1f} | {wall:.1f} | "
                        f"{wall / (minutes * 60):.3f} | {rc} | `{cmd}` |")
                    print(f"{minutes:g} min {ch} ch {kind:6s} ({preset}): peak {mib:7.1f} MiB, {wall:7.1f} s, "
                          f"RTF {wall / (minutes * 60):.3f}, exit {rc}", flush=True)
                    write_table(out_md, rows)  # after every case: a long run stopped early keeps its rows
                inp.unlink()
    print(f"wrote {out_md}")
    return 1 if failed else 0


HEADER = [
    "# Render peak memory and wall time against file length",
    "",
    "`benchmarks/render_memory.py` (each row names the command that measured it; machine: "
    f"{os.cpu_count()} cores shared with other jobs, so wall times vary with the load). 48 kHz 16-bit WAV in, "
    "32-bit float WAV out; peak = the render process's resident-memory high-water mark (ru_maxrss).",
    "",
    "| minutes | channels | kind | preset | peak MiB | wall s | RTF | exit | command |",
    "|---:|---:|---|---|---:|---:|---:|---:|---|",
]


def read_rows(path: Path) -> dict:
    """{(minutes, channels, kind): table line} from an existing table."""
    rows = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            f = [c.strip() for c in line.strip("|").split("|")]
            if len(f) == 9 and f[0].replace(".", "").isdigit():
                rows[(float(f[0]), int(f[1]), f[2])] = line
    return rows


def write_table(path: Path, rows: dict) -> None:
    order = {k: i for i, k in enumerate(KINDS)}
    lines = HEADER + [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1], order[k[2]]))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
