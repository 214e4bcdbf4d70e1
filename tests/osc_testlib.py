"""Helpers for the OSC/DAW/UI tests: a chain with a real-time feeder and a server on a free loopback
port; ``Client`` is the shipped OSC client (plugin_host/osc_client.py)."""

from __future__ import annotations

from contextlib import contextmanager

from resculpt.plugin_host.feeder import BlockFeeder
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.osc import OscServer
from resculpt.plugin_host.osc_client import OscClient as Client

__all__ = ["Client", "running_server"]


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
