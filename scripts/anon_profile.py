"""Where an anon chain's time goes: thread CPU per 5 ms frame of each section, on the bundled speech clip.

    taskset -c 0 .venv/bin/python scripts/anon_profile.py [--preset anon-high] [--block 480] [--seconds 10]
    RESCULPT_NO_KERNELS=1 ...   # the stage's numpy code instead of its compiled loops (dsp/voice/kernels.py)

48 kHz mono. Each listed method of the chain, the STFT section and the anon stage is wrapped with a thread-CPU
timer (the wrappers cost ~1 us per call, included); sections nest (the stage's _shift holds its _analyse and
_warped_envelope; the section's _analyse holds the stage's F0 search, _estimate). Then the same chain's floor:
the STFT section and the preset's limiter with no stage.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from resculpt.plugin_host.audio_io import read_audio
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.layout import Layout
from scipy.signal import resample_poly

CLIP = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"
STAGE = ("process_frames", "_shift", "_analyse", "_warped_envelope", "_estimate", "_set_warp", "_targets", "_vtln")
SECTION = ("process", "_analyse", "_flush")


def _stream(chain, x, block, seconds):
    """Thread CPU seconds of ``seconds`` of x through chain.process in blocks (after 1 s of warm-up)."""
    blk = np.zeros((1, block), np.float32)
    n = x.shape[1] // block * block
    pos = 0
    t = 0.0
    for k in range(int((1.0 + seconds) * 48000) // block):
        np.copyto(blk, x[:, pos : pos + block])
        if k == 48000 // block:
            t = time.thread_time()
        chain.process(blk)
        pos = (pos + block) % n
    return time.thread_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="anon-high")
    ap.add_argument("--block", type=int, default=480)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    x, sr = read_audio(CLIP)
    g = np.gcd(sr, 48000)
    x = np.ascontiguousarray(resample_poly(x[:1], 48000 // g, sr // g, axis=1), np.float32)
    chain = Chain.from_preset(a.preset, sample_rate=48000, channels=1, max_block=a.block)
    section = chain.graph.section
    stage = section.stages[0]
    acc: dict[str, float] = {}

    def wrap(obj, name, key):
        f = getattr(obj, name)

        def timed(*args):
            t = time.thread_time()
            r = f(*args)
            acc[key] = acc.get(key, 0.0) + time.thread_time() - t
            return r

        setattr(obj, name, timed)

    for m in STAGE:
        if hasattr(stage, m):
            wrap(stage, m, f"{stage.name}.{m}")
    for m in SECTION:
        wrap(section, m, f"stft.{m}")
    wrap(section._fft, "forward", "stft fft.forward")
    wrap(section._fft, "inverse", "stft fft.inverse")
    wrap(chain, "process", "chain.process")
    _stream(chain, x, a.block, 1.0)
    acc.clear()
    cpu = _stream(chain, x, a.block, a.seconds)
    frames = a.seconds * 200.0
    print(f"{a.preset}, 48 kHz mono, {a.block}-sample blocks, {a.seconds:g} s, compiled loops: "
          f"{getattr(stage, '_kern', False)}; load average {os.getloadavg()[0]:.2f}")
    print(f"chain RTF (with the timers) {cpu / a.seconds:.4f}")
    for k, v in sorted(acc.items(), key=lambda kv: -kv[1]):
        print(f"  {k:28s} {v / frames * 1e6:7.1f} us/frame  RTF {v / a.seconds:.4f}")
    lay = chain.layout
    floor = Chain(Layout(pre=lay.pre, post=lay.post, stft=lay.stft, force_stft=True), sample_rate=48000, channels=1,
                  max_block=a.block)
    print(f"floor (the chain's STFT section and boards, no stage): RTF "
          f"{_stream(floor, x, a.block, a.seconds) / a.seconds:.4f}")


if __name__ == "__main__":
    main()
