"""Helpers for the OSC/DAW/UI tests: a chain with a real-time feeder, a server on a free loopback
port, and a small UDP client that collects replies."""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager

from pythonosc.osc_packet import OscPacket
from resculpt.plugin_host.feeder import BlockFeeder
from resculpt.plugin_host.host import Chain
from resculpt.plugin_host.osc import OscServer, build_message


class Client:
    """A UDP OSC client bound to a free loopback port; replies are collected with recv/wait_for."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.inbox: list[tuple[str, list]] = []

    def send(self, address: str, *args) -> None:
        self.sock.sendto(build_message(address, args), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def _pump(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 1e-4))
        try:
            data, _ = self.sock.recvfrom(65536)
        except (TimeoutError, BlockingIOError):
            return
        for tm in OscPacket(data).messages:
            self.inbox.append((tm.message.address, list(tm.message.params)))

    def wait_for(self, address: str, timeout: float = 2.0, pred=None):
        """The first collected (and removed) message on ``address`` (matching pred(args)), or None."""
        end = time.monotonic() + timeout
        while True:
            for i, (a, args) in enumerate(self.inbox):
                if a == address and (pred is None or pred(args)):
                    return self.inbox.pop(i)[1]
            left = end - time.monotonic()
            if left <= 0:
                return None
            self._pump(min(left, 0.05))

    def drain(self, seconds: float = 0.05) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._pump(0.01)
        self.inbox.clear()

    def close(self) -> None:
        self.sock.close()


@contextmanager
def running_server(preset: str = "broadcast-voice", source=None, block: int = 256, feed: bool = True, **kw):
    """(chain, feeder, server) with the server on 127.0.0.1:<free port> and, if ``feed``, the
    feeder running in real time (silence or ``source``)."""
    chain = Chain.from_preset(preset, sample_rate=48000, channels=2, max_block=1024)
    feeder = BlockFeeder(chain, source, block=block)
    srv = OscServer(chain, port=0, **kw).start()
    if feed:
        feeder.start()
    try:
        yield chain, feeder, srv
    finally:
        feeder.stop()
        srv.stop()
