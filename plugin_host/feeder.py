"""Drive a chain in real time without an audio device: a file (looped) or silence.

``resculpt serve`` uses this so the OSC surface, meters and panel work on a machine with no sound
card; ``resculpt live`` replaces it with a real audio callback. The thread paces blocks against
``time.perf_counter`` deadlines (it sleeps until the next block is due; if it falls behind by
more than a few blocks it drops the backlog instead of bursting).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("resculpt.feeder")


def load_source(path, sample_rate: int, channels: int) -> np.ndarray:
    """Read ``path`` as float32 (channels, n) at ``sample_rate`` (resampled, channels matched)."""
    from .audio_io import read_audio

    x, sr = read_audio(Path(path))
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = int(np.gcd(sr, sample_rate))
        x = resample_poly(x, sample_rate // g, sr // g, axis=1).astype(np.float32)
    if x.shape[0] == 1 and channels == 2:
        x = np.repeat(x, 2, axis=0)
    elif x.shape[0] > channels:
        x = x[:channels] if channels == 2 else x.mean(axis=0, keepdims=True)
    if x.shape[1] == 0:
        raise ValueError(f"{path}: no audio")
    return np.ascontiguousarray(x, dtype=np.float32)


class BlockFeeder:
    """Run ``chain.process`` on blocks of ``source`` (looped) or silence, paced in real time.

    Args:
        chain: a prepared Chain (its sample_rate and channels are used).
        source: float32 (channels, n) audio, a file path, or None for silence.
        block: samples per block (<= chain.max_block).
        on_block: optional callables ``fn(feeder, out_block)`` run on the feeder thread after each
            block (tests use it to observe when a parameter reached the audio path).
    """

    def __init__(self, chain, source=None, block: int = 256, on_block=()):
        self.chain = chain
        if block < 1 or block > chain.max_block:
            raise ValueError(f"block must be in 1..{chain.max_block}")
        self.block = int(block)
        if source is not None and not isinstance(source, np.ndarray):
            source = load_source(source, chain.sample_rate, chain.channels)
        self.source = source
        self.on_block = list(on_block)
        self.period_s = self.block / chain.sample_rate
        self.blocks = 0
        self.late = 0
        self.nonfinite_out = 0
        self.last_out_finite = True
        self._buf = np.zeros((chain.channels, self.block), np.float32)  # the next block handed to the chain
        self._pos = 0  # read position in the looped source (samples)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _fill(self) -> None:
        buf, n = self._buf, self.block
        src = self.source
        if src is None:
            buf.fill(0.0)
            return
        total = src.shape[1]
        k = 0
        while k < n:
            m = min(n - k, total - self._pos)
            buf[:, k : k + m] = src[:, self._pos : self._pos + m]
            k += m
            self._pos = (self._pos + m) % total

    def step(self) -> np.ndarray:
        """Process one block (on the calling thread) and return it."""
        self._fill()
        out = self.chain.process(self._buf)
        finite = bool(np.isfinite(out).all())
        self.last_out_finite = finite
        if not finite:
            self.nonfinite_out += 1
        self.blocks += 1
        for fn in self.on_block:
            fn(self, out)
        return out

    def _run(self) -> None:
        nxt = time.perf_counter()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # keep the "audio" running whatever a callback did
                log.exception("feeder: block failed")
            nxt += self.period_s
            now = time.perf_counter()
            if now - nxt > 4 * self.period_s:
                self.late += 1
                nxt = now
            delay = nxt - now
            if delay > 0:
                time.sleep(delay)

    def start(self) -> BlockFeeder:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="resculpt-feeder", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


__all__ = ["BlockFeeder", "load_source"]
