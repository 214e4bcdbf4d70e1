"""Offline rendering of files through a chain: streamed in blocks, latency trimmed, sample-exact.

The output has the input's sample rate, channel count and exact length: the chain's first
``latency_samples`` output samples (its start-up) are dropped and the same number of zeros is
pushed after the last input block to flush the tail.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from .audio_io import WRITE_EXT, AudioFileError, read_audio, write_audio
from .chain import Chain
from .host import process_whole
from .presets import PresetError
from .provenance import mark_render

MATCHERS = ("match-eq", "model")  # what moves audio toward a target profile (render --matcher)


class RenderError(Exception):
    """One file could not be rendered; the message names it."""


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal, or forced)."""

    def __init__(self, label: str, total: int, enabled: bool | None = None):
        self.label, self.total = label, max(1, total)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()
        self._last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        pct = int(100 * done / self.total)
        if pct == self._last:
            return
        self._last = pct
        bar = "#" * (pct // 4)
        el = time.perf_counter() - self.t0
        sys.stderr.write(f"\r{self.label[:40]:40s} [{bar:25s}] {pct:3d}% {el:5.1f}s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def with_match_stage(chain):
    """``chain`` if its layout has the ``match`` stage, else an equal chain with ``match`` appended
    to the spectral section (same parameters)."""
    if "match" in chain.layout.spectral:
        return chain
    return Chain(chain.layout.with_spectral("match"), chain.sample_rate, chain.channels, chain.max_block,
                 params=chain.params.targets(), preset_name=chain.preset_name)


def match_stage(chain):
    for st in chain.graph.stages:
        if st.name == "match":
            return st
    return None


def render_with_target(chain, x, sr, target, block: int, passes: int = 2, progress=None, prime: bool = True):
    """Render ``x`` through ``chain`` (which has a ``match`` stage) toward ``target`` (a Profile).

    Offline, the whole file is known: the stage's input estimate is primed with the file's own
    long-term envelope, and with ``passes`` > 1 each further pass adds the remaining level-free
    envelope error of the previous output to the stage's target (corrects analysis leakage and
    band blur). Returns (y, info).
    """
    from resculpt.dsp.profile import band_distance_db, band_shape_diff, long_term_envelope, target_envelope

    env_in = long_term_envelope(x, sr)
    if target.kind == "delta":
        from resculpt.dsp.profile import Profile

        cur = Profile("fingerprint", band_env_db=list(env_in))
        goal = target_envelope(target, cur)[0]
    else:
        goal = target.env()
    st = match_stage(chain)
    st.prime(env_in if prime else None)  # prime=False: what a live stream does (learns as it goes)
    eff = goal.copy()
    info = {"distance_before_db": band_distance_db(env_in, goal)}
    y = x
    for p in range(max(1, passes)):
        chain.set_target(eff)
        chain.reset()
        y = process_whole(chain, x, block, progress if p == passes - 1 else None)
        if p < passes - 1:
            r = np.nan_to_num(band_shape_diff(goal, long_term_envelope(y, sr)))
            eff = eff + r * chain.params.get("match.amount")
    info["distance_after_db"] = band_distance_db(long_term_envelope(y, sr), goal)
    return y, info


def _chain_for(preset, sr, c, block, sets, target, amount, context):
    """Build the chain for a render: preset, context (params + delta), match stage when a target
    applies, then --set overrides. Returns (chain, target Profile or None)."""
    from resculpt.dsp.profile import Profile, ProfileError, apply_delta, combine_deltas, load_profile

    try:
        if target is not None and not isinstance(target, Profile):
            target = load_profile(target)
        chain = Chain.from_preset(preset, sample_rate=sr, channels=c, max_block=block)
        if context:
            from .contexts import get_context

            ctx = get_context(context)
            chain.params.set_many({k: v for k, v in ctx.params.items() if k in chain.params})
            if ctx.delta is not None:
                target = ctx.delta if target is None else (
                    combine_deltas(target, ctx.delta) if target.kind == "delta" else apply_delta(target, ctx.delta))
        if target is not None:
            chain = with_match_stage(chain)
            if amount is not None:
                chain.params.set("match.amount", amount)
        for k, v in (sets or {}).items():
            chain.params.set(k, v)
    except (PresetError, ProfileError, ValueError) as e:
        raise RenderError(str(e)) from None
    chain.reset()
    return chain, target


def _render_file_whole(inp, out, preset, sets, block, progress, target, amount, context, passes) -> dict:
    """The --target/--context path: the whole file is read (the match-EQ primes on the file's own
    envelope and refines in a second pass), written to a temporary file and renamed on success."""
    try:
        x, sr = read_audio(inp)
    except AudioFileError as e:
        raise RenderError(str(e)) from None
    if x.shape[1] == 0:
        raise RenderError(f"{inp}: no audio frames")
    if x.shape[0] > 2:
        raise RenderError(f"{inp}: {x.shape[0]} channels; Resculpt renders mono or stereo")
    chain, target = _chain_for(preset, sr, x.shape[0], block, sets, target, amount, context)
    bar = Progress(inp.name, x.shape[1] + chain.latency_samples, progress)
    t0 = time.perf_counter()
    info = {}
    if target is not None:
        y, info = render_with_target(chain, x, sr, target, block, passes, bar)
    else:
        y = process_whole(chain, x, block, bar)
    el = time.perf_counter() - t0
    bar.close()
    tmp = out.with_name(f".{out.name}.partial{out.suffix}")
    try:
        write_audio(tmp, y, sr)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"input": str(inp), "output": str(out), "sample_rate": sr, "channels": x.shape[0],
            "frames": x.shape[1], "latency_samples": chain.latency_samples, "seconds": el,
            "rtf": el / (x.shape[1] / sr), "nonfinite_in": chain.stats.nonfinite_in, **info,
            **mark_render(out, chain, preset)}


def render_file(inp, out, preset="clean", sets=None, block: int = 4096, progress: bool | None = None,
                target=None, amount: float | None = None, context: str | None = None,
                matcher: str = "match-eq", passes: int = 2) -> dict:
    """Render one file, streaming it in blocks (memory stays flat for hour-long files).

    ``target``: a Profile or a path to a profile JSON, moved toward by ``matcher``: "match-eq" (the
    profile-matching EQ); "model" (the resculpting model) is not in this version and gives an error. ``amount``: match.amount 0..1.
    ``context``: a context rule name (presets/contexts.json or the user's), applied before ``sets``.
    With a target or context the file is read whole (see :func:`_render_file_whole`).

    The output is written to a temporary file beside ``out`` and renamed on success, so a file
    that fails half-way never leaves a truncated output. Raises RenderError with a clear message.
    """
    from pedalboard.io import AudioFile

    inp, out = Path(inp), Path(out)
    if not inp.exists():
        raise RenderError(f"{inp}: no such file")
    if inp.stat().st_size == 0:
        raise RenderError(f"{inp}: file is empty")
    if out.exists() and os.path.samefile(inp, out):
        raise RenderError(f"{out}: refusing to overwrite the input file")
    if out.suffix.lower() not in WRITE_EXT:
        raise RenderError(f"{out}: output must be .wav or .flac")
    if matcher not in MATCHERS:
        raise RenderError(f"--matcher must be one of {', '.join(MATCHERS)}, got {matcher!r}")
    if matcher == "model" and target is not None:
        raise RenderError("the resculpting model is not in this version of Resculpt; use --matcher match-eq")
    if target is not None or context:
        return _render_file_whole(inp, out, preset, sets, block, progress, target, amount, context, passes)
    try:
        src = AudioFile(str(inp))
    except Exception as e:
        raise RenderError(f"{inp}: cannot decode audio ({e})") from None
    tmp = out.with_name(f".{out.name}.partial{out.suffix}")
    try:
        with src:
            sr, c, frames = int(round(src.samplerate)), src.num_channels, src.frames
            if frames == 0:
                raise RenderError(f"{inp}: no audio frames")
            if c > 2:
                raise RenderError(f"{inp}: {c} channels; Resculpt renders mono or stereo")
            try:
                chain = Chain.from_preset(preset, sample_rate=sr, channels=c, max_block=block)
                for k, v in (sets or {}).items():
                    chain.params.set(k, v)
            except (PresetError, ValueError) as e:
                raise RenderError(str(e)) from None
            chain.reset()
            lat = chain.latency_samples
            bar = Progress(inp.name, frames + lat, progress)
            buf = np.zeros((c, block), np.float32)
            out.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            written, skip, done = 0, lat, 0
            with AudioFile(str(tmp), "w", sr, c, bit_depth=WRITE_EXT[out.suffix.lower()]) as dst:
                def emit(y, cap=None):
                    nonlocal skip, written
                    if skip:
                        k = min(skip, y.shape[1])
                        y, skip = y[:, k:], skip - k
                    if cap is not None:
                        y = y[:, : cap - written]
                    if y.shape[1]:
                        dst.write(y)
                        written += y.shape[1]

                while True:
                    try:
                        chunk = src.read(block)
                    except Exception as e:
                        raise RenderError(f"{inp}: decoding failed after {done} frames ({e})") from None
                    k = chunk.shape[1]
                    if k == 0:
                        break
                    buf[:, :k] = chunk
                    emit(chain.process(buf[:, :k]))
                    done += k
                    bar.update(done)
                # Compressed formats may announce an estimate: the output has what actually decoded.
                left = lat
                while left > 0:  # flush the chain's tail (its latency) with silence
                    k = min(left, block)
                    buf[:, :k] = 0.0
                    emit(chain.process(buf[:, :k]), cap=done)
                    left -= k
            el = time.perf_counter() - t0
            bar.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"input": str(inp), "output": str(out), "sample_rate": sr, "channels": c,
            "frames": written, "latency_samples": lat, "seconds": el,
            "rtf": el / max(written / sr, 1e-9), "nonfinite_in": chain.stats.nonfinite_in,
            **mark_render(out, chain, preset)}
