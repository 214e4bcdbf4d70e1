"""A small OSC client of `resculpt serve` / `live`: a UDP socket on a free loopback port that sends
to one server and decodes what comes back. The panel (:mod:`resculpt.ui.panel`) and the tests use it."""

from __future__ import annotations

import socket
import time

from .osc_protocol import build_message, decode


class OscClient:
    """Sends to ``(host, port)``; replies and feedback arrive on :attr:`port` (the server replies to
    the sender's address). :meth:`receive` reads what arrived; :meth:`wait_for` keeps what it read
    but did not want in :attr:`inbox` for later calls."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.target = (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.inbox: list[tuple[str, list]] = []

    def send(self, address: str, *args) -> None:
        self.sock.sendto(build_message(address, args), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def receive(self, timeout: float) -> list[tuple[str, list]]:
        """(address, args) of every message that arrives within ``timeout`` seconds of waiting for
        the first datagram, plus whatever is already queued behind it; malformed datagrams are skipped."""
        out: list[tuple[str, list]] = []
        self.sock.settimeout(max(timeout, 1e-4))
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except OSError:  # timeout, or the socket was closed
                return out
            try:
                out += decode(data)
            except Exception:
                pass
            self.sock.settimeout(1e-4)

    def wait_for(self, address: str, timeout: float = 2.0, pred=None):
        """The arguments of the first message on ``address`` (matching ``pred(args)``), removed from
        the inbox; None after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while True:
            for i, (a, args) in enumerate(self.inbox):
                if a == address and (pred is None or pred(args)):
                    return self.inbox.pop(i)[1]
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.inbox += self.receive(min(left, 0.05))

    def drain(self, seconds: float = 0.05) -> None:
        """Read for ``seconds`` and forget everything received."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.receive(0.01)
        self.inbox.clear()

    def close(self) -> None:
        self.sock.close()
