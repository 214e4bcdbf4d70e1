"""What a live audio backend is: the calls :class:`~.session.LiveSession` makes on it, the block
sizes live mode accepts and the error it raises for the user."""

from __future__ import annotations

from typing import Protocol

from .bridge import PortBridge
from .stats import LiveStats

MIN_BLOCK, MAX_BLOCK = 16, 8192  # samples per period live mode accepts


class LiveError(Exception):
    """A live-mode problem with a message meant for the user (no server, device not found, ...)."""


class AudioBackend(Protocol):
    """One audio connection (a JACK client, a PortAudio duplex stream) the session drives.

    Control-side calls, in the order :meth:`LiveSession._open` makes them: ``open`` (find the
    server/device; returns (sample_rate, block)), ``bind`` (install the audio callback that runs
    ``bridge.run`` and records into ``stats``), ``activate`` (audio starts), ``connect`` (route ports;
    JACK), ``recompute_latency``. While running the supervisor polls ``alive`` (False once the
    server/device vanished), calls ``remember_connections`` about once a second (so a reconnect
    restores them) and ``latency``; on a loss it calls ``mark_gone`` then ``close`` and ``open``
    again with the same device spec until that succeeds. ``close`` is idempotent and must return even
    when the device vanished under it.
    """

    kind: str  # "jack" or "portaudio": the LatencyReport's backend and the session's info
    watchdog: bool  # the backend may stop calling back without reporting: treat a stall as a loss
    compensated: bool  # the chain latency is published to downstream hosts (JACK port latency)
    client_name: str | None  # the JACK client's name as the server knows it; None elsewhere
    abandoned: bool  # the backend hung inside a vanished device: reopening in this process is futile

    def open(self) -> tuple[int, int]: ...

    def bind(self, bridge: PortBridge, stats: LiveStats) -> None: ...

    def activate(self) -> None: ...

    def connect(self) -> None: ...

    def alive(self) -> bool: ...

    def mark_gone(self) -> None: ...

    def remember_connections(self) -> None: ...

    def recompute_latency(self) -> None: ...

    def latency(self) -> tuple[int, int]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...
