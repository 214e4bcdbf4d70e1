"""The processor lifecycle every stage in Resculpt follows.

Threads:
    prepare()  -- control thread (or the host before audio starts). Allocates everything.
    process()  -- audio thread. Any block length 0..max_block, float32 (channels, n), in place.
                  No allocation of arrays, no locks, no logging, no blocking calls.
    reset()    -- audio thread or control thread while audio is stopped. Zero-fills state only.
"""

from __future__ import annotations

import numpy as np

# Every sample rate the product accepts (render, live, the API): each stage is tested at each of them.
SUPPORTED_RATES = (16000, 22050, 32000, 44100, 48000, 88200, 96000)


class ProcessorError(ValueError):
    """A processor was used outside its lifecycle (e.g. process() before prepare())."""


class Processor:
    """Base class for block processors.

    Attributes:
        latency_samples: delay (in samples at the prepared rate) this processor adds; set in prepare().
        sample_rate, max_block, channels: the values passed to prepare().
    """

    name = "processor"

    def __init__(self) -> None:
        self.latency_samples = 0
        self.sample_rate = 0
        self.max_block = 0
        self.channels = 0
        self.prepared = False

    def prepare(self, sample_rate: int, max_block: int, channels: int) -> None:
        """Allocate buffers for blocks up to ``max_block`` samples of ``channels`` channels.

        Subclasses call ``super().prepare(...)`` first, then allocate.
        """
        if sample_rate <= 0 or max_block <= 0 or channels <= 0:
            raise ProcessorError(
                f"{self.name}: prepare() needs positive sample_rate, max_block and channels, "
                f"got {sample_rate}, {max_block}, {channels}"
            )
        self.sample_rate = int(sample_rate)
        self.max_block = int(max_block)
        self.channels = int(channels)
        self.prepared = True

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process ``block`` (float32, shape (channels, n), 0 <= n <= max_block) in place and return it."""
        raise NotImplementedError

    def reset(self) -> None:
        """Zero all state, as if freshly prepared. Allocates nothing."""

    def check_block(self, block: np.ndarray) -> None:
        """Validate a block's shape outside the hot path (used by the public API, not by process())."""
        if not self.prepared:
            raise ProcessorError(f"{self.name}: process() called before prepare()")
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ProcessorError(
                f"{self.name}: expected a block of shape ({self.channels}, n), got {block.shape}"
            )
        if block.shape[1] > self.max_block:
            raise ProcessorError(
                f"{self.name}: block of {block.shape[1]} samples exceeds max_block={self.max_block}"
            )
        if block.dtype != np.float32:
            raise ProcessorError(f"{self.name}: expected float32 samples, got {block.dtype}")
