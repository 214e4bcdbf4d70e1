"""Offline rendering of files through a chain: streamed in blocks, latency trimmed, sample-exact.

The output has the input's sample rate, channel count and exact length: the chain's first
``latency_samples`` output samples (its start-up) are dropped and the same number of zeros is
pushed after the last input block to flush the tail.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .audio_io import WRITE_EXT, channel_mask, set_channel_mask
from .chain import ENGINES, Chain, EngineError, resolve_engine
from .host import MAX_CHANNELS
from .presets import PresetError
from .provenance import render_mark

MATCHERS = ENGINES  # what moves audio toward a target profile (render --engine; --matcher is its other name)


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
    return with_stage(chain, "match")


def with_stage(chain, slot: str):
    """``chain`` if its layout has the spectral stage ``slot``, else an equal chain (same parameters and
    engine) with ``slot`` appended to the spectral section."""
    if slot in chain.layout.spectral:
        return chain
    out = Chain(chain.layout.with_spectral(slot), chain.sample_rate, chain.channels, chain.max_block,
                params=chain.params.targets(), preset_name=chain.preset_name)
    out.engine = chain.engine
    return out


def _stage_named(chain, name: str):
    """``chain``'s spectral stage of that slot name, or None."""
    return next((st for st in chain.graph.stages if st.name == name), None)


def match_stage(chain):
    return _stage_named(chain, "match")


class _ArrayInput:
    """An in-memory signal ``x`` (channels, n) float32 offered in sweeps, like a file."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.channels, self.frames = x.shape

    def sweep(self, block: int):
        for i in range(0, self.frames, block):
            yield self.x[:, i : i + block]


class _FileInput:
    """An audio file read in sweeps of blocks: each sweep reopens it, so nothing but one block is held.

    The file's size and modification time are taken when it is opened and checked after every sweep,
    and every sweep must decode the same number of frames: a file that changes while it is read
    (a recording still being written, a copy in progress) gives a RenderError instead of a render
    made of two different files.
    """

    def __init__(self, path: Path):
        from pedalboard.io import AudioFile

        self.path = path
        try:
            with open(path, "rb"):  # the OS's reason (permission, a folder, ...) before the decoder's
                pass
            st = os.stat(path)
        except OSError as e:
            raise RenderError(f"{path}: cannot read: {os_cause(e)}") from None
        if st.st_size == 0:
            raise RenderError(f"{path}: file is empty")
        self._stamp = (st.st_size, st.st_mtime_ns)
        try:
            with AudioFile(str(path)) as f:
                self.sample_rate, self.channels, self.frames = int(round(f.samplerate)), f.num_channels, f.frames
        except Exception as e:
            raise RenderError(f"{path}: cannot decode audio ({e})") from None
        if self.frames == 0:
            raise RenderError(f"{path}: no audio frames")
        self._decoded = None  # frames the first sweep decoded (compressed formats announce an estimate)

    def sweep(self, block: int):
        from pedalboard.io import AudioFile

        done = 0
        try:
            f = AudioFile(str(self.path))
        except Exception as e:
            self._check_unchanged(None)  # a file deleted, moved away or replaced says so
            raise RenderError(f"{self.path}: cannot reopen for another pass ({e})") from None
        with f:
            while True:
                try:
                    chunk = f.read(block)
                except Exception as e:
                    raise RenderError(f"{self.path}: decoding failed after {done} frames ({e})") from None
                if chunk.shape[1] == 0:
                    break
                done += chunk.shape[1]
                yield chunk
        self._check_unchanged(done)

    def _check_unchanged(self, done: int | None) -> None:
        """RenderError if the file is gone or its size or modification time moved, or if a sweep
        decoded ``done`` frames where the first decoded another number (None: not a sweep's end)."""
        try:
            st = os.stat(self.path)
            now = (st.st_size, st.st_mtime_ns)
        except OSError as e:
            raise RenderError(f"{self.path}: the input disappeared while it was read ({os_cause(e)})") from None
        if now != self._stamp or (self._decoded is not None and done != self._decoded):
            raise RenderError(f"{self.path}: the input changed while it was read (size or modification time "
                              "moved); render it again once it is complete")
        if done is not None:
            self._decoded = done


def _sweep(chain, chunks, block: int, emit, progress=None, joined: bool = True) -> int:
    """Stream the input ``chunks`` (float32 (channels, k) arrays, k <= block) through ``chain``, then
    ``chain.latency_samples`` zeros to flush it; ``emit(y)`` receives the output in order with the
    start-up latency dropped (as many samples as the input had; ``y`` is valid during the call).

    ``joined``: cut the input and the zeros into blocks of ``block`` samples across chunk boundaries,
    exactly as :func:`~resculpt.plugin_host.host.process_whole` cuts the whole signal (the target and
    context renders); else each chunk is one block and the zeros follow in blocks of their own (the
    plain render). Returns the number of input samples."""
    c = chain.channels
    lat = chain.latency_samples
    buf = np.zeros((c, block), np.float32)
    skip, fill, n = lat, 0, 0

    def run(k):
        nonlocal skip
        y = chain.process(buf[:, :k])
        if skip:
            d = min(skip, k)
            y, skip = y[:, d:], skip - d
        if y.shape[1]:
            emit(y)

    for chunk in chunks:
        k = chunk.shape[1]
        if not joined:
            buf[:, :k] = chunk
            run(k)
            n += k
        else:
            pos = 0
            while pos < k:
                m = min(k - pos, block - fill)
                buf[:, fill : fill + m] = chunk[:, pos : pos + m]
                fill, pos = fill + m, pos + m
                if fill == block:
                    run(block)
                    fill = 0
            n += k
        if progress:
            progress.update(n)
    left = lat
    while fill + left > 0:
        m = min(left, block - fill)
        buf[:, fill : fill + m] = 0.0
        left -= m
        run(fill + m)
        fill = 0
        if progress:
            progress.update(n + lat - left)
    return n


@dataclasses.dataclass(frozen=True)
class InputLoudness:
    """The whole input's loudness as an offline render measured it before rendering (:func:`prime_loudness`).

    lufs: integrated loudness (input gain added); lra: loudness range, LU (EBU Tech 3342); shortterm: (n,) the
    trailing 3 s short-term loudness every ``dsp.loudness_follow.RANGE_STEP_S`` (the first 3 s over the samples
    there are); momentary: (n,) the trailing 400 ms momentary loudness at the same steps (likewise)."""

    lufs: float
    lra: float
    shortterm: np.ndarray
    momentary: np.ndarray


def prime_loudness(chain, src, block: int) -> InputLoudness | None:
    """Offline: give the target stage's loudness follower (``dsp.loudness_follow``) the whole input's integrated
    loudness, measured in one sweep of ``src`` (cheap: a K-weighted meter, no stage runs), so it moves the level
    by the exact amount from the first frame instead of following a running estimate. Only when the stage hears
    the input as it is: the first spectral stage, nothing in ``pre`` (the input gain is added). Returns what it
    measured (the short-term trace and range too, for :func:`prime_range`), or None (live behaviour kept)."""
    from resculpt.dsp.features.loudness import Loudness

    stages = chain.graph.stages
    if chain.layout.pre or not stages or not hasattr(stages[0], "prime_loudness"):
        return None
    m = _loudness_meter(chain, block, history=True)
    i_st = Loudness.columns.index("lufs_shortterm")
    i_mo = Loudness.columns.index("lufs_momentary")
    step = Loudness.STEP_HOPS
    st, mo = [], []
    done = 0
    for blk in src.sweep(block):
        m.process(np.asarray(blk, np.float64))
        rows = m.read()
        # every STEP_HOPS-th hop is a step of EBU's short-term series; the meter's 3 s (400 ms) window counts the
        # hops before the start as silence, which the first 3 s (400 ms) are corrected for
        for r in range((-done - 1) % step, rows.shape[0], step):
            d = done + r + 1
            st.append(rows[r, i_st] + 10.0 * math.log10(Loudness.S_HOPS / min(d, Loudness.S_HOPS)))
            mo.append(rows[r, i_mo] + 10.0 * math.log10(Loudness.M_HOPS / min(d, Loudness.M_HOPS)))
        done += rows.shape[0]
    last = m.latest()
    g = float(chain.params.get("in.gain_db"))
    lufs = last["lufs_integrated"] + g
    if not math.isfinite(lufs):
        return None
    stages[0].prime_loudness(lufs)
    return InputLoudness(lufs, last["lra_lu"], np.asarray(st, np.float64) + g, np.asarray(mo, np.float64) + g)


def range_goal(target, measured: InputLoudness | None) -> float:
    """The loudness range (LU) a render toward ``target`` (a Profile) aims at: an absolute target's ``lra_lu``, a
    delta's move added to the input's; NaN when there is none to aim at (no figure, no move, live)."""
    if measured is None:
        return math.nan
    v = float(target.dims.get("lra_lu", math.nan))
    if not math.isfinite(v):
        return math.nan
    return measured.lra + v if target.kind == "delta" else v


def prime_range(chain, measured: InputLoudness | None, goal_lu: float) -> bool:
    """Offline: prime the first stage's loudness follower with the range gain trace toward ``goal_lu``
    (``dsp.loudness_follow.range_trace``; where :func:`prime_loudness` primed its loudness). Returns whether a
    trace was primed (False: nothing to move, or the stage is not where the input is measured)."""
    from resculpt.dsp.loudness_follow import range_trace

    stages = chain.graph.stages
    if measured is None or not stages or not hasattr(stages[0], "prime_range"):
        return False
    tr = range_trace(measured.shortterm, measured.lufs, measured.lra, goal_lu, measured.momentary)
    stages[0].prime_range(tr)
    return tr is not None


def next_range_goal(goal_lu: float, lra_in: float, lra_out: float, a: float, aim_lu: float) -> float:
    """The range goal of a render's next pass: the trace toward ``goal_lu`` scaled the input's range ``lra_in`` by
    ``1 + a (k - 1)`` (k = goal / input, ``a`` the stage's amount x range_follow) and the output read ``lra_out``;
    the next goal asks the scale that would have put it on ``aim_lu`` (the amount's share of the way to the
    target's range), assuming the output's range scales with it. NaN in, or nothing to correct: ``goal_lu``."""
    if not all(math.isfinite(v) for v in (goal_lu, lra_in, lra_out, aim_lu)) or a <= 0 or lra_in <= 0 or lra_out <= 0:
        return goal_lu
    k_eff = 1.0 + a * (goal_lu / lra_in - 1.0)
    k_next = k_eff * aim_lu / lra_out
    return lra_in * (1.0 + (k_next - 1.0) / a)


def render_with_target(chain, x, sr, target, block: int, passes: int = 2, progress=None, prime: bool = True):
    """Render ``x`` (channels, n) through ``chain`` (which has a target stage, :func:`target_stage`) toward
    ``target`` (a Profile). Returns (y, info); see :func:`stream_with_target` for what the passes do."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.empty_like(x)
    pos = 0

    def keep(blk):
        nonlocal pos
        y[:, pos : pos + blk.shape[1]] = blk
        pos += blk.shape[1]

    info = stream_with_target(chain, _ArrayInput(x), sr, target, block, keep, passes, progress, prime)
    return y, info


def target_stage(chain):
    """The stage that follows ``chain``'s target: the model's (``resculpt``) with the model engine, else the
    match-EQ (``match``); None when the chain has neither."""
    names = ("resculpt", "match") if getattr(chain, "engine", None) == "model" else ("match", "resculpt")
    for name in names:
        st = _stage_named(chain, name)
        if st is not None:
            return st
    return None


def _corrected(target, band, lufs):
    """``target`` (a Profile) with ``band`` (32,) dB added to its band envelope (a delta: to its offsets) where it
    defines one, and ``lufs`` LU to its loudness (a delta: to its loudness move)."""
    out = target.copy()
    env = target.env()
    out.band_env_db = [float(v + b) if math.isfinite(v) else v for v, b in zip(env, band)]
    v = out.dims.get("lufs_integrated", math.nan)
    if lufs != 0.0 and math.isfinite(v):
        out.dims["lufs_integrated"] = v + lufs
    elif lufs != 0.0 and target.kind == "delta":  # a delta without a loudness move: this is its move
        out.dims["lufs_integrated"] = lufs
    return out


def stream_with_target(chain, src, sr, target, block: int, emit, passes: int = 2, progress=None,
                       prime: bool = True, store=None) -> dict:
    """Render ``src`` (an object whose ``sweep(block)`` yields its (channels, k) float32 blocks, the
    same ones at every call) through ``chain`` toward ``target`` (a Profile) with its target stage
    (:func:`target_stage`: the match-EQ, or the model with the model engine); the final pass's output goes to
    ``emit(y)``. Returns info (band distances, dB).

    Offline, the whole input is known: a first sweep measures its long-term envelope, with which the
    stage's input estimate is primed (the match-EQ's long-term estimate, the model's running fingerprint; and a
    second its loudness, :func:`prime_loudness`); with ``passes`` > 1 each further pass adds the remaining
    level-free envelope error of the previous pass's output to the stage's target (corrects analysis
    leakage, band blur and what the estimate drifts while it follows the input) and moves the loudness goal by
    what the output measured. The error is taken against where the stage's amount puts the output (that share of
    the way from the input to the target, plus the model's band overrides) and divided by the amount. ``1 +
    passes`` sweeps of the input (and one for the loudness), one block held at a time; ``store()`` makes the row store for each envelope measurement (see
    :class:`~resculpt.dsp.profile.EnvelopeAccumulator`; None: in memory).
    """
    from resculpt.dsp.features.spectral import Brightness
    from resculpt.dsp.loudness_follow import goal_of
    from resculpt.dsp.match_eq import MatchTarget
    from resculpt.dsp.profile import (BRIGHT_DIMS, EnvelopeAccumulator, FormantAccumulator, Profile,
                                      band_distance_db, band_shape_diff, brightness_tilt, target_envelope,
                                      tilt_shape, warp_band_envelope)
    from resculpt.dsp.voice.match import absolute_formant_oct

    c = chain.channels

    def envelope_acc():
        return EnvelopeAccumulator(sr, c, None if store is None else store())

    st = target_stage(chain)
    slot = st.name
    model = slot == "resculpt"
    # An absolute target's formants (voice / all mode): the voice match warps the envelope by the ratio of the
    # target's median formants to the whole input's, measured in the same sweep as its envelope.
    formants = (model and prime and target.kind != "delta" and st.moves_formants(chain.params, target)
                and any(math.isfinite(target.dims.get(k, math.nan)) for k in ("f1_hz", "f2_hz", "f3_hz")))
    acc = envelope_acc()
    facc = FormantAccumulator(sr, c, block) if formants else None
    for blk in src.sweep(block):
        acc.add(blk)
        if facc is not None:
            facc.add(blk)
    env_in = acc.result()
    live_env = getattr(chain, "input_env", None)
    if target.kind == "delta":
        goal = target_envelope(target, Profile("fingerprint", band_env_db=list(env_in)))[0]
    else:
        goal = target.env()
    info = {}
    if model:
        # the model's band overrides move the output's envelope off the target's on purpose: aim at both
        goal = goal + st.override_band_db(chain.params)
        fo = absolute_formant_oct(facc.result(acc.levels()), target) if facc is not None else math.nan
        st.prime_formants(fo)
        env_model = env_in
        if math.isfinite(fo):
            info["formant_ratio"] = 2.0 ** fo
            # the model hears the warped voice: its held fingerprint is the input's envelope warped the same way
            env_model = warp_band_envelope(env_in, 2.0 ** (fo * chain.params.get("resculpt.amount")))
        # its running fingerprint is held at the whole input's (ResculptStage.prime); prime=False: what a live
        # stream does, learning the input as it goes unless the chain has an input profile (set_input_profile)
        st.prime(env_model if prime else live_env, hold=True)
    else:
        st.prime(env_in if prime else live_env, hold=not prime)
    st.prime_loudness(None)
    st.prime_range(None)
    measured = prime_loudness(chain, src, block) if prime else None
    lin = measured.lufs if measured is not None else None
    # The loudness range moves only where the input's whole short-term series is known (offline) and the stage
    # hears the input as it is (prime_loudness's condition); each further pass corrects the goal by the output's.
    lra_aim = lra_goal = range_goal(target, measured)
    # The loudness follower meters the stage's frames; after a large EQ move the overlap-added output can read
    # several LU away from them (leakage the EQ raised in the frames cancels in the synthesis), so, like the
    # envelope, each further pass corrects the goal by what the previous pass's output measured. Only where the
    # chain's output is the stage's (nothing after it): a later stage's level change is not the follower's to undo.
    alone = lin is not None and not chain.layout.post and len(chain.graph.stages) == 1
    corr = np.zeros(len(goal))  # dB added to the target's bands (the match-EQ: to its goal envelope)
    # The model's formant moves (its formant override; a delta's formant ratios in voice / all mode) warp the
    # output's envelope away from the target's on purpose: correcting the envelope by the output's would undo them,
    # so then only the loudness is corrected.
    warped = model and st.warps_envelope(chain.params, target)
    info["distance_before_db"] = band_distance_db(env_in, goal)
    if warped:  # the distances then measure how far the formant move took the envelope from the target's shape
        info["formants_moved"] = True
    n_pass = max(1, passes)
    env_out = None
    loud = goal_of(target)  # the loudness goal stays the target's own (a delta's: the input's loudness + its move)
    shift = 0.0  # LU added to the loudness goal
    want = loud[0] if math.isfinite(loud[0]) else (lin + loud[1] if lin is not None else math.nan)
    want += chain.params.get(f"{slot}.loudness_db")  # the stage adds the same offset to whichever goal it follows
    # The typical frame's brightness (the fingerprint's medians of centroid, roll-off and tilt) is not the long-term
    # envelope's: after the model's first pass toward an absolute target, the correction pass aims at the envelope
    # plus the tilt that brings the whole of brightness and envelope nearest the target's
    # (dsp.profile.brightness_tilt). The match-EQ stays a long-term spectrum match: its own profile as target then
    # moves nothing.
    aim = goal
    # Not with the model's band overrides (bass, brightness, tilt): they set the balance on purpose, and a tilt
    # chosen against the target's brightness would take part of them back.
    tilt_search = (model and target.kind != "delta" and not warped and n_pass > 1
                   and not np.any(st.override_band_db(chain.params) != 0.0)
                   and any(math.isfinite(target.dims.get(k, math.nan)) for k in BRIGHT_DIMS))
    for p in range(n_pass):
        ranged = prime_range(chain, measured, lra_goal) if math.isfinite(lra_goal) else False
        if model:
            chain.set_target(_corrected(target, corr, shift), engine="model")
        else:
            lg = (loud[0] + shift, loud[1]) if math.isfinite(loud[0]) else (loud[0], loud[1] + shift)
            chain.set_target(MatchTarget.make(goal + corr, delta=False, loudness=lg))
        chain.reset()
        last = p == n_pass - 1
        acc = envelope_acc()
        meter = _loudness_meter(chain, block)
        amt = chain.params.get(f"{slot}.amount")
        bright = _analyser(Brightness, chain, block) if tilt_search and p == 0 and amt >= 1.0 else None
        bright_rows = []

        def out(y, acc=acc, last=last, meter=meter, bright=bright):
            acc.add(y)
            meter.process(np.asarray(y, np.float64))
            if bright is not None:
                bright.process(y)
                bright_rows.append(bright.read())
            if last:
                emit(y)

        _sweep(chain, src.sweep(block), block, out, progress if last else None)
        env_out = acc.result()
        got = meter.latest()["lufs_integrated"]
        if bright is not None:
            # on top of the envelope correction the next pass makes anyway (amount 1: toward the goal)
            tilt = brightness_tilt(*_every_kth_frame(np.concatenate(bright_rows), acc.store), env_out, target,
                                   band_shape_diff(goal, env_out), sr)
            info["brightness_tilt_db_oct"] = tilt
            aim = goal + tilt_shape(tilt)
        if not last:
            if not warped and amt >= 0.01:
                # The stage moves amt of the way to (target + corr), so the output belongs at amt of the way from
                # the input to the goal (and the brightness tilt), and a miss of e there takes e / amt more in the
                # target.
                want_env = aim if amt >= 1.0 else env_in + amt * (goal - env_in)
                corr = corr + np.nan_to_num(band_shape_diff(want_env, env_out)) / amt
            a = amt * chain.params.get(f"{slot}.loudness_follow")
            if alone and a > 0 and math.isfinite(want) and math.isfinite(got):
                shift += (lin + a * (want - lin) - got) / a  # the goal move that puts this output where it belongs
            ar = amt * chain.params.get(f"{slot}.range_follow")
            if alone and ranged:
                lra_want = measured.lra + ar * (lra_aim - measured.lra)
                lra_goal = next_range_goal(lra_goal, measured.lra, meter.latest()["lra_lu"], ar, lra_want)
    info["distance_after_db"] = band_distance_db(env_out, goal)
    info["loudness_after_lufs"] = got
    info["lra_after_lu"] = meter.latest()["lra_lu"]
    return info


TILT_MAX_FRAMES = 20000  # frames the brightness tilt reads (100 s at the 5 ms hop; a longer render reads every k-th)


def _every_kth_frame(bright, store):
    """(bright rows, band rows) of every k-th frame, k the smallest that leaves at most ``TILT_MAX_FRAMES``:
    ``bright`` (F, 4) an output's brightness rows, ``store`` its EnvelopeAccumulator row store (iterated chunk by
    chunk, so an hour's band rows are never all in memory)."""
    k = max(1, -(-len(bright) // TILT_MAX_FRAMES))
    rows, start = [], 0
    for chunk in store:
        first = (-start) % k
        rows.append(np.asarray(chunk)[first::k])
        start += len(chunk)
    env = np.concatenate(rows) if rows else np.zeros((0, 32))
    return bright[::k], env


def _analyser(cls, chain, block: int, history: bool = True):
    """A streaming analyser of ``dsp.features`` (``cls``: ``Loudness``, the BS.1770 meter; ``Brightness``, the
    fingerprint's centroid, roll-off, tilt and level per frame) for ``chain``'s rate and channels; feed it
    (channels, k) blocks. ``history``: room for every row of a block (``read()`` after each), else the newest row
    only (``latest()``)."""
    from resculpt.dsp.features.base import hop_size

    m = cls()
    m.prepare(chain.sample_rate, block, chain.channels,
              history_frames=block // hop_size(chain.sample_rate) + 2 if history else 1)
    return m


def _loudness_meter(chain, block: int, history: bool = False):
    """The BS.1770 meter (:func:`_analyser` of ``Loudness``); feed it float64 blocks, read
    ``latest()["lufs_integrated"]``."""
    from resculpt.dsp.features.loudness import Loudness

    return _analyser(Loudness, chain, block, history)


def followed_target(p, target, context):
    """The target a render of preset ``p`` (a Preset) follows: ``target`` (a Profile or None), else the preset's own,
    with the delta of ``context`` (a context name or None) combined into it (a delta's moves add; an absolute
    target is moved by it) or, without a target, that delta alone. None: the render follows no target."""
    from resculpt.dsp.profile import apply_delta, combine_deltas

    if target is None:
        target = p.target_profile()  # the preset's own target, followed like --target
    if context:
        from .contexts import get_context

        delta = get_context(context).delta
        if delta is not None:
            target = delta if target is None else (
                combine_deltas(target, delta) if target.kind == "delta" else apply_delta(target, delta))
    return target


def _chain_for(preset, sr, c, block, sets, target, amount, context, linked=None, engine="match-eq", match=None):
    """Build the chain for a render: preset, context (params + delta), the target stage of ``engine``
    (resolved: :func:`~resculpt.plugin_host.chain.resolve_engine`, kept as ``chain.engine``) when a target
    applies, with ``amount`` and (model) the ``match`` mode, then --set overrides; ``linked`` (None: the preset's
    ``chain.linked``) overrides whether the spectral analysis is linked across channels. Returns (chain, target
    Profile or None)."""
    from resculpt.dsp.profile import Profile, ProfileError

    try:
        from .presets import Preset, load_preset
        from .targets import resolve_target

        if target is not None and not isinstance(target, Profile):
            target = resolve_target(target)
        p = preset if isinstance(preset, Preset) else load_preset(preset)
        target = followed_target(p, target, context)
        chain = Chain.from_preset(dataclasses.replace(p, target=None), sample_rate=sr, channels=c, max_block=block)
        if linked is not None and linked != chain.layout.linked:
            chain = Chain(dataclasses.replace(chain.layout, linked=linked), sr, c, block,
                          params=chain.params.targets(), preset_name=chain.preset_name)
        if context:
            from .contexts import get_context

            chain.params.set_many({k: v for k, v in get_context(context).params.items() if k in chain.params})
        if target is not None:
            from resculpt.plugin_host.host import TARGET_SLOTS

            chain.engine = resolve_engine(engine, chain.layout, target)
            if match not in (None, "timbre") and chain.engine != "model":
                raise EngineError(f"match {match!r} moves F0 and formants: that needs the model engine; the match-EQ "
                                  "moves the band envelope only (timbre)")
            slot = TARGET_SLOTS[chain.engine]
            chain = with_stage(chain, slot)
            if amount is not None:
                chain.params.set(f"{slot}.amount", amount)
            if chain.engine == "model" and match is not None:
                chain.params.set("resculpt.match", match)
        for k, v in (sets or {}).items():
            chain.params.set(k, v)
    except (PresetError, ProfileError, ValueError) as e:
        raise RenderError(str(e)) from None
    chain.reset()
    return chain, target


class _RowSpill:
    """A row store for :class:`~resculpt.dsp.profile.EnvelopeAccumulator` on disk: an unnamed temporary
    file beside the output (256 bytes per 5 ms frame, 184 MB per hour of audio), gone when closed."""

    CHUNK_ROWS = 8192

    def __init__(self, folder: Path, out: Path):
        import tempfile

        self.out = out
        try:
            self.f = tempfile.TemporaryFile(dir=folder)
        except OSError as e:
            raise RenderError(f"{out}: cannot create temporary analysis data in {folder}: {os_cause(e)}") from None
        self.rows = 0

    def append(self, rows: np.ndarray) -> None:
        try:
            self.f.write(np.ascontiguousarray(rows, np.float64).tobytes())
        except OSError as e:
            raise RenderError(f"{self.out}: cannot write temporary analysis data: {os_cause(e)}") from None
        self.rows += len(rows)

    def __iter__(self):
        from resculpt.dsp.bands import N_BANDS

        self.f.flush()
        self.f.seek(0)
        left = self.rows
        while left:
            k = min(left, self.CHUNK_ROWS)
            yield np.frombuffer(self.f.read(k * N_BANDS * 8), np.float64).reshape(k, N_BANDS)
            left -= k
        self.f.seek(0, os.SEEK_END)

    def close(self) -> None:
        self.f.close()


_CAUSES = {
    errno.ENOSPC: "disk full (no space left on the device)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "path too long",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder",
    errno.EFBIG: "file too large for the file system",
    errno.EIO: "input/output error (failing disk or lost network share)",
}


def os_cause(e: OSError) -> str:
    """The cause of an OSError in words (disk full, permission denied, ...)."""
    return _CAUSES.get(e.errno, e.strerror or str(e))


class _Output:
    """The output file, written to a temporary file beside it and renamed over it by :meth:`commit`;
    on any failure the temporary file is removed, so nothing half-written is left. Write errors
    name the output file and the cause (through a Python file object, the OS error reaches us
    with its errno)."""

    def __init__(self, out: Path, sample_rate: int, channels: int, channel_mask: int | None = None,
                 stage: str = "partial"):
        self.out, self.sr, self.c, self.mask = out, sample_rate, channels, channel_mask
        self.tmp = out.with_name(f".{out.name}.{stage}{out.suffix}")
        self._fh = self._af = None
        self.written = 0

    def _fail(self, what: str, e: OSError):
        raise RenderError(f"{self.out}: {what}: {os_cause(e)}") from None

    def __enter__(self):
        try:
            self._open()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _open(self) -> None:
        from pedalboard.io import AudioFile

        folder = self.out.parent
        if folder.exists() and not folder.is_dir():
            raise RenderError(f"{self.out}: the output folder {folder} is a file")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RenderError(f"{self.out}: cannot create the output folder {folder}: a part of it is a file") from None
        except OSError as e:
            self._fail(f"cannot create the output folder {folder}", e)
        if self.out.is_dir():
            raise RenderError(f"{self.out}: is a folder; give a file name ending in .wav or .flac")
        try:
            self._fh = open(self.tmp, "w+b")
        except OSError as e:
            self._fail("cannot write", e)
        ext = self.out.suffix.lower()
        try:
            self._af = AudioFile(self._fh, "w", self.sr, self.c, bit_depth=WRITE_EXT[ext], format=ext[1:])
        except OSError as e:
            self._fail("cannot write", e)
        except Exception as e:  # the encoder refuses the format (a rate FLAC cannot hold, ...)
            raise RenderError(f"{self.out}: cannot write ({e})") from None

    def write(self, y: np.ndarray) -> None:
        try:
            self._af.write(y)
        except OSError as e:
            self._fail("cannot write", e)
        self.written += y.shape[1]

    def finish(self) -> None:
        """Close the temporary file (complete, speaker mask recorded) without publishing it: a delivery pass
        (:func:`deliver`) reads it next."""
        try:
            self._af.close()
            self._af = None
            if self.mask is not None:
                set_channel_mask(self._fh, self.mask, self.out.suffix.lower())
            self._fh.close()
            self._fh = None
        except OSError as e:
            self._fail("cannot write", e)

    def commit(self) -> None:
        if self._af is not None:
            self.finish()
        try:
            os.replace(self.tmp, self.out)
        except OSError as e:
            self._fail(f"cannot rename {self.tmp.name} to it", e)

    def __exit__(self, *exc):
        for h in (self._af, self._fh):
            if h is not None:
                try:
                    h.close()
                except Exception:  # closing after a failure: the first error is the one reported
                    pass
        if self.tmp.exists():
            self.tmp.unlink()
        return False


# -- delivery: integrated loudness and a true-peak ceiling ------------------------------------------------------
DELIVERY_BLOCK = 8192
DELIVERY_PASSES = 6      # passes of gain and limiter at most (each measures its output; see deliver)
DELIVERY_TOL_LU = 0.1    # how close to the loudness goal a pass must land to be the last one
DELIVERY_MAX_PUSH_DB = 6.0  # gain added at most to make up what the limiter takes off (see deliver)


class TruePeakMeter:
    """Streaming true-peak meter: the peak of the signal 4x oversampled (a 96-tap windowed-sinc interpolator, cut at
    0.9 x the input's Nyquist, state kept across blocks), in dBTP. Feed (channels, n) blocks to :meth:`process`."""

    UP = 4

    def __init__(self, channels: int):
        from scipy.signal import firwin

        self.h = (self.UP * firwin(24 * self.UP, 0.9 / self.UP)).astype(np.float64)
        self.zi = np.zeros((channels, self.h.size - 1))
        self.peak = 0.0

    def process(self, x: np.ndarray) -> None:
        from scipy.signal import lfilter

        if x.shape[1] == 0:
            return
        up = np.zeros((x.shape[0], x.shape[1] * self.UP))
        up[:, :: self.UP] = x
        y, self.zi = lfilter(self.h, 1.0, up, axis=1, zi=self.zi)
        self.peak = max(self.peak, float(np.abs(y).max()), float(np.abs(x).max()))

    def flush(self) -> None:
        """The interpolator's tail after the last sample (a peak right at the end shows there)."""
        self.process(np.zeros((self.zi.shape[0], self.h.size // self.UP + 1)))

    @property
    def dbtp(self) -> float:
        return 20.0 * math.log10(self.peak) if self.peak > 0 else -math.inf


def _measure(path: Path, block: int) -> tuple[float, float]:
    """(integrated loudness LUFS (BS.1770, gated), true peak dBTP) of an audio file, in one sweep."""
    src = _FileInput(path)
    meter = _analyser_for(src.sample_rate, src.channels, block)
    tp = TruePeakMeter(src.channels)
    for blk in src.sweep(block):
        meter.process(np.asarray(blk, np.float64))
        tp.process(blk)
    tp.flush()
    return float(meter.latest()["lufs_integrated"]), tp.dbtp


def _analyser_for(sample_rate: int, channels: int, block: int):
    """The BS.1770 meter for a signal of this rate and channel count (newest row only)."""
    from resculpt.dsp.features.loudness import Loudness

    m = Loudness()
    m.prepare(sample_rate, block, channels, history_frames=1)
    return m


def check_delivery(loudness_lufs: float | None, true_peak_db: float | None) -> None:
    """RenderError unless the delivery settings are None or finite and in range (loudness -70..0 LUFS, the
    ceiling in the `brickwall` slot's range)."""
    from resculpt.plugin_host import catalog

    if loudness_lufs is not None and not (math.isfinite(loudness_lufs) and -70.0 <= loudness_lufs <= 0.0):
        raise RenderError(f"loudness must be a number of LUFS in -70 .. 0, got {loudness_lufs!r}")
    spec = next(p for p in catalog.slot("brickwall").params if p.id == "brickwall.ceiling_db")
    if true_peak_db is not None and not (math.isfinite(true_peak_db) and spec.min <= true_peak_db <= spec.max):
        raise RenderError(f"true peak ceiling must be in {spec.min:g} .. {spec.max:g} dBTP, got {true_peak_db!r}")


def deliver(src_path: Path, out: Path, loudness_lufs: float | None, true_peak_db: float | None,
            channel_mask: int | None = None, block: int = DELIVERY_BLOCK) -> dict:
    """Write ``src_path`` (a finished render) to ``out`` ready for delivery: one static gain that brings its integrated
    loudness (BS.1770, gated, as the `Loudness` meter measures it) to ``loudness_lufs`` (None: no gain), then, when
    ``true_peak_db`` is set, a true-peak brick-wall limiter at that ceiling (the `brickwall` slot's plugin, its
    look-ahead trimmed: the output keeps the input's length and timing sample for sample). The limiter's own
    detection lets inter-sample peaks pass its ceiling by up to a few tenths of a dB and it takes loudness off where
    it works, so each pass measures its output: while the true peak is over ``true_peak_db`` or the loudness off the
    goal by more than ``DELIVERY_TOL_LU``, the limiter's ceiling is lowered by the excess and the gain raised by what
    is missing (at most ``DELIVERY_MAX_PUSH_DB`` over the first estimate), and the pass runs again (at most
    ``DELIVERY_PASSES``; the result says where the last one landed: a goal too loud for the ceiling ends short).
    The output goes through its own temporary file, renamed over ``out`` when complete.

    Returns {"loudness_goal_lufs", "true_peak_goal_dbtp" (the settings), "loudness_in_lufs", "gain_db",
    "loudness_lufs", "true_peak_in_dbtp", "true_peak_dbtp", "limiter_ceiling_db", "passes"}: before and after, both
    measured on the files."""
    from resculpt.plugin_host import catalog
    from resculpt.plugin_host.boards import Board

    lufs_in, tp_in = _measure(src_path, block)
    if loudness_lufs is not None and not math.isfinite(lufs_in):
        raise RenderError(f"{out}: the render is silent (no gated loudness): it cannot be brought to "
                          f"{loudness_lufs:g} LUFS")
    gain_db = 0.0 if loudness_lufs is None else loudness_lufs - lufs_in
    ceiling = true_peak_db
    gain0 = gain_db
    src = _FileInput(src_path)
    sr, c = src.sample_rate, src.channels
    for k in range(1, DELIVERY_PASSES + 1):
        board = None
        if true_peak_db is not None:
            plugins = catalog.slot("brickwall").build()
            plugins[0].ceiling_db = float(ceiling)
            board = Board(plugins, "brickwall")
            board.prepare(sr, block, c)
        skip = board.latency_samples if board is not None else 0
        g = np.float32(10.0 ** (gain_db / 20.0))
        meter, tp = _analyser_for(sr, c, block), TruePeakMeter(c)
        buf = np.zeros((c, block), np.float32)
        with _Output(out, sr, c, channel_mask, stage="delivered") as dst:

            def emit(y, meter=meter, tp=tp):  # this pass's meters (bound now: the closure outlives no pass)
                nonlocal skip
                if skip:
                    cut = min(skip, y.shape[1])
                    y, skip = y[:, cut:], skip - cut
                if y.shape[1]:
                    dst.write(y)
                    meter.process(np.asarray(y, np.float64))
                    tp.process(y)

            for blk in src.sweep(block):
                n = blk.shape[1]
                np.multiply(blk, g, out=buf[:, :n])
                emit(board.process(buf[:, :n]) if board is not None else buf[:, :n])
            left = board.latency_samples if board is not None else 0
            while left > 0:  # the look-ahead's tail: the last input samples, pushed out by silence
                n = min(left, block)
                buf[:, :n] = 0.0
                emit(board.process(buf[:, :n]))
                left -= n
            tp.flush()
            lufs_out = float(meter.latest()["lufs_integrated"])
            short = 0.0 if loudness_lufs is None else loudness_lufs - lufs_out
            over = 0.0 if true_peak_db is None else max(0.0, tp.dbtp - true_peak_db)
            if k == DELIVERY_PASSES or (abs(short) <= DELIVERY_TOL_LU and over == 0.0):
                dst.commit()
                return {"loudness_goal_lufs": loudness_lufs, "true_peak_goal_dbtp": true_peak_db,
                        "loudness_in_lufs": lufs_in, "gain_db": gain_db, "loudness_lufs": lufs_out,
                        "true_peak_in_dbtp": tp_in, "true_peak_dbtp": tp.dbtp, "limiter_ceiling_db": ceiling,
                        "passes": k}
        # Raised by what is missing (1 dB out per dB in: a limiter gives less, so this approaches from below and
        # never overshoots into heavy limiting), at most DELIVERY_MAX_PUSH_DB over the gain the unlimited file
        # needed: past that the goal costs more limiting than a delivery should add, and the result says how far
        # it landed.
        gain_db = min(gain_db + short, gain0 + DELIVERY_MAX_PUSH_DB)
        if over > 0.0:
            ceiling -= over + 0.02  # 0.02 dB under what would just touch: the next pass's peaks move a little
    raise AssertionError("unreachable")


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a path the OS cannot look up (too long, ...) is a RenderError naming it."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    except OSError as e:
        raise RenderError(f"{path}: {os_cause(e)}") from None
    return True


def render_file(inp, out, preset="clean", sets=None, block: int = 4096, progress: bool | None = None,
                target=None, amount: float | None = None, context: str | None = None,
                engine: str = "auto", passes: int = 2, linked: bool | None = None, match: str | None = None,
                matcher: str | None = None, loudness_lufs: float | None = None,
                true_peak_db: float | None = None) -> dict:
    """Render one file, streaming it in blocks: memory stays flat however long the file is.

    Files of 1 to 8 channels (mono to 7.1 stems, first-order ambisonics): every stage runs on every
    channel; the spectral analysis is linked across channels (one gain curve for all, so the image
    stays put) unless ``linked`` is False (None: the preset's ``chain.linked``). The input's speaker
    mask (a WAV's WAVE_FORMAT_EXTENSIBLE mask or a FLAC's ``WAVEFORMATEXTENSIBLE_CHANNEL_MASK``
    comment) is kept: in a WAV output of more than two channels (a mono or stereo WAV is written
    plain, its channels the default speakers) and in a FLAC output as that comment.

    ``target``: a Profile or a path to a profile JSON, moved toward by ``engine`` (``matcher``: its other
    name): "match-eq" (the profile-matching EQ), "model" (the resculpting model; an error when its bundle is not
    installed), "auto" (the model whenever its bundle is installed, the preset's STFT is its window and the
    bundle's benchmark verdict covers the target's form, a description or an absolute profile; else the
    match-EQ: :func:`~resculpt.plugin_host.chain.resolve_engine`). ``match``: the model's match mode (timbre (default), voice, all; ``resculpt.match``).
    ``amount``: the engine's ``<slot>.amount`` 0..1. ``context``: a context rule name (presets/contexts.json or
    the user's), applied before ``sets``. With a target (either engine) the file is read ``2 + passes`` times
    (see :func:`stream_with_target`: the input's envelope and loudness prime the stage, each pass but the last
    measures what is left to correct); the band-envelope rows of each measurement go to a temporary file beside
    ``out``. The result names the engine used (``engine``).

    ``loudness_lufs`` / ``true_peak_db``: delivery (:func:`deliver`): the finished render is brought to this
    integrated loudness by one static gain and held under this true-peak ceiling (dBTP) by a look-ahead
    brick-wall limiter, length and timing kept; the result's ``delivery`` gives both measured before and after.

    The output is written to a temporary file beside ``out`` and renamed on success, so a file
    that fails half-way never leaves a truncated output. Raises RenderError with a message that
    names the file and the cause.
    """
    inp, out = Path(inp), Path(out)
    if not _exists(inp):
        raise RenderError(f"{inp}: no such file")
    if _exists(out) and os.path.samefile(inp, out):
        raise RenderError(f"{out}: refusing to overwrite the input file")
    if out.suffix.lower() not in WRITE_EXT:
        raise RenderError(f"{out}: output must be .wav or .flac")
    engine = matcher or engine
    if engine not in ENGINES:
        raise RenderError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    check_delivery(loudness_lufs, true_peak_db)
    src = _FileInput(inp)
    sr, c = src.sample_rate, src.channels
    if c > MAX_CHANNELS:
        raise RenderError(f"{inp}: {c} channels; Resculpt renders up to {MAX_CHANNELS}")
    chain, target = _chain_for(preset, sr, c, block, sets, target, amount, context, linked, engine, match)
    lat = chain.latency_samples
    mark = render_mark(chain, preset, block)  # None unless the chain transforms a voice
    bar = Progress(inp.name, src.frames + lat, progress)
    info = {}
    t0 = time.perf_counter()
    mask_in = channel_mask(inp)
    with _Output(out, sr, c, mask_in) as dst:
        # A voice render is watermarked block by block on its way into the file.
        write = dst.write if mark is None else mark.writer(dst.write)
        if target is not None and chain.engine == "model":
            try:
                chain.set_target(target)
            except ValueError as e:
                raise RenderError(str(e)) from None
        if target is not None:
            info = {"engine": "model" if chain.engine == "model" else "match-eq"}
            spills = []

            def store():
                spills.append(_RowSpill(out.parent, out))
                return spills[-1]

            try:
                info.update(stream_with_target(chain, src, sr, target, block, write, passes, bar, store=store))
            finally:
                for s in spills:
                    s.close()
        else:
            # A context keeps the cut of the whole-signal render it has always had (process_whole's).
            _sweep(chain, src.sweep(block), block, write, bar, joined=bool(context))
        if mark is not None:
            mark.finish(dst.write)
        el = time.perf_counter() - t0
        if loudness_lufs is None and true_peak_db is None:
            dst.commit()
        else:
            dst.finish()
            t1 = time.perf_counter()
            info["delivery"] = deliver(dst.tmp, out, loudness_lufs, true_peak_db, mask_in)
            info["delivery"]["seconds"] = time.perf_counter() - t1
    bar.close()
    n = dst.written
    return {"input": str(inp), "output": str(out), "sample_rate": sr, "channels": c,
            "frames": n, "latency_samples": lat, "seconds": el,
            "rtf": el / max(n / sr, 1e-9), "nonfinite_in": chain.stats.nonfinite_in, **info,
            **({} if mark is None else mark.tag(out))}
