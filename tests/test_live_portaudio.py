"""The PortAudio backend under LiveSession against a simulated `sounddevice` (no sound card here):
a device that vanishes and comes back is reopened by its spec, as a vanished JACK server is."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.live import LiveSession, PortAudioBackend

RATE, BLOCK = 48000, 256


class FakeHardware:
    """What is plugged in, and a `sounddevice` module that sees it the way PortAudio does: the
    device list is a snapshot taken at initialisation (``_initialize``), and a stream opens the
    physical device behind a snapshot index (gone if it was unplugged, even if it came back)."""

    def __init__(self):
        self.plugged = [(1, "Built-in Audio"), (2, "USB Mic")]  # (physical id, name)
        self.next_id = 3
        self.loss = "finish"  # how a stream reacts to an unplug: "finish" (finished callback) or "stall"
        self.streams: list = []
        self.snapshot = list(self.plugged)
        self.module = self._module()

    def unplug(self, name: str) -> None:
        self.plugged = [d for d in self.plugged if d[1] != name]

    def replug_first(self, name: str) -> None:
        """The device returns with a new physical id, enumerated before the others (a new index)."""
        self.plugged.insert(0, (self.next_id, name))
        self.next_id += 1

    def _module(self):
        hw = self
        sd = types.ModuleType("sounddevice")

        def query_devices():
            return [{"name": n, "hostapi": 0, "max_input_channels": 2, "max_output_channels": 2,
                     "default_samplerate": float(RATE)} for _, n in hw.snapshot]

        class CallbackFlags:
            def __init__(self, flags=0):
                self._flags = flags

        class Stream:
            def __init__(self, device, samplerate, blocksize, dtype, channels, latency, callback, finished_callback):
                ids = [hw.snapshot[i][0] for i in device]
                if not all(i in [p for p, _ in hw.plugged] for i in ids):
                    raise RuntimeError("Invalid device [PaErrorCode -9996]")
                self.ids, self.device, self.channels, self.block = ids, device, channels, blocksize
                self.callback, self.finished_callback = callback, finished_callback
                self.active = False
                self.latency = (0.005, 0.010)
                self._abort = threading.Event()
                self._thread = threading.Thread(target=self._run, daemon=True)
                hw.streams.append(self)

            def start(self):
                self.active = True
                self._thread.start()

            def _run(self):
                ins = np.zeros((self.block, self.channels[0]), np.float32)
                outs = np.zeros((self.block, self.channels[1]), np.float32)
                ok = CallbackFlags(0)
                while not self._abort.is_set():
                    if not all(i in [p for p, _ in hw.plugged] for i in self.ids):
                        if hw.loss == "finish":
                            self.active = False
                            self.finished_callback()
                            return
                        self._abort.wait()  # "stall": the driver just stops calling back
                        return
                    self.callback(ins, outs, self.block, None, ok)
                    time.sleep(self.block / RATE)

            def abort(self):
                self._abort.set()
                if self._thread.is_alive():
                    self._thread.join(1.0)
                if self.active:
                    self.active = False
                    self.finished_callback()

            def close(self):
                pass

        def _initialize():
            hw.snapshot = list(hw.plugged)

        sd.query_devices = query_devices
        sd.query_hostapis = lambda: [{"name": "ALSA"}]
        sd.default = types.SimpleNamespace(device=[0, 0])
        sd.check_input_settings = sd.check_output_settings = lambda **kw: None
        sd.CallbackFlags = CallbackFlags
        sd.Stream = Stream
        sd._initialize = _initialize
        sd._terminate = lambda: None
        return sd


def _wait(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


@pytest.mark.parametrize("loss", ["finish", "stall"])
def test_portaudio_device_loss_reopens_the_same_device_spec_when_it_returns(monkeypatch, loss):
    """Unplug the USB mic while running (the stream finishes, or the driver stops calling back):
    the session reports `reconnecting`, fails while the device is absent, and once it is plugged
    back (a new physical device at another index) reopens it by name, counts one reconnect, emits
    `reconnected` and audio callbacks resume on a stream opened on the new index."""
    hw = FakeHardware()
    hw.loss = loss
    monkeypatch.setitem(sys.modules, "sounddevice", hw.module)
    events: list[tuple[str, dict]] = []
    chain = Chain.from_preset("clean", sample_rate=RATE, channels=2, max_block=BLOCK)
    backend = PortAudioBackend(input="USB Mic", output="USB Mic", rate=RATE, block=BLOCK)
    session = LiveSession(chain, backend, warmup_blocks=2, status_interval=0, reconnect_interval=0.05,
                          stall_timeout=0.3, on_event=lambda e, info: events.append((e, info)))
    names = lambda: [e for e, _ in events]  # noqa: E731
    session.start()
    try:
        assert _wait(lambda: session.stats.callbacks > 10, 2.0)
        assert hw.streams[-1].device == (1, 1)
        hw.unplug("USB Mic")
        assert _wait(lambda: "reconnect_failed" in names(), 3.0), names()
        assert session.stats.state == "reconnecting"
        failed = dict(events)["reconnect_failed"]["error"]
        assert "device not found" in failed and "USB Mic" in failed
        hw.replug_first("USB Mic")
        assert _wait(lambda: "reconnected" in names(), 3.0), names()
        n = session.stats.callbacks
        assert _wait(lambda: session.stats.callbacks > n + 10, 2.0)
        assert names().index("reconnecting") < names().index("reconnect_failed") < names().index("reconnected")
        assert session.stats.reconnects == 1 and session.stats.state == "running"
        assert hw.streams[-1].device == (0, 0) and hw.streams[-1].active
        assert session.stats.errors == 0
    finally:
        session.stop()
    assert session.stats.state == "stopped" and not hw.streams[-1].active
