"""The PortAudio backend (sounddevice): one duplex stream on any PortAudio device (ALSA, PulseAudio
via its ALSA plugin, CoreAudio, WASAPI, or JACK's host API); xruns counted from the callback status
flags; the stream's input + output latency reported (PortAudio cannot publish the chain latency).

Device loss: the stream's finished callback (or, for drivers that just stop calling back, the
session's stall watchdog) marks the stream gone; the session then closes it and reopens the same
``input``/``output`` spec until the device is back. PortAudio lists devices once per
``Pa_Initialize``, so every reopen after a loss re-initialises PortAudio first: a USB device that
returns, possibly under another index, is found by its name.
"""

from __future__ import annotations

import threading
import time

from .backend import MAX_BLOCK, MIN_BLOCK, LiveError
from .bridge import PortBridge
from .stats import LiveStats

def _import_sd():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise LiveError(f"the PortAudio backend needs sounddevice and libportaudio2 (apt install libportaudio2): {e}") \
            from None
    return sd


def _pa_find(sd, spec, kind: str) -> int:
    """Resolve a device by index, exact name or case-insensitive substring; LiveError lists the devices."""
    devs = sd.query_devices()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    if spec is None or spec == "":
        idx = sd.default.device[0 if kind == "input" else 1]
        if idx is None or idx < 0:
            raise LiveError(f"device not found: no default {kind} device (no sound card?); "
                            f"`resculpt devices` lists what PortAudio sees")
        return int(idx)
    if isinstance(spec, int) or str(spec).isdigit():
        i = int(spec)
        if 0 <= i < len(devs) and devs[i][key] > 0:
            return i
    else:
        s = str(spec).lower()
        exact = [i for i, d in enumerate(devs) if d[key] > 0 and d["name"].lower() == s]
        part = [i for i, d in enumerate(devs) if d[key] > 0 and s in d["name"].lower()]
        if exact or part:
            return (exact or part)[0]
    names = [f"{i}: {d['name']}" for i, d in enumerate(devs) if d[key] > 0]
    raise LiveError(f"device not found: no PortAudio {kind} device {spec!r}; {kind} devices: "
                    f"{'; '.join(names) or '(none)'}")


class PortAudioBackend:
    """PortAudio via sounddevice: one duplex stream on ``input``/``output`` (index or name)."""

    kind = "portaudio"
    watchdog = True  # some drivers stop calling back on a device loss instead of finishing the stream
    compensated = False
    client_name = None

    def __init__(self, input=None, output=None, rate: int = 48000, block: int = 128, latency="low"):
        self.input, self.output = input, output
        self.want_rate, self.want_block = int(rate or 48000), int(block or 128)
        self.latency_hint = latency
        self.stream = None
        self._gone = False  # the stream finished or stalled without close() asking for it
        self._closing = False  # close() is stopping the stream: its finished callback is no loss
        self._lost = False  # a stream was lost: the next open() re-reads PortAudio's device list
        self.abandoned = False  # PortAudio hung inside a vanished stream: no reopen in this process

    def open(self):
        if self.abandoned:
            raise LiveError("PortAudio did not release the vanished device (it hangs inside the old stream; "
                            "seen with its JACK host API when the JACK server dies): restart `resculpt live`, or "
                            "use --backend jack, which reconnects on its own")
        sd = _import_sd()
        self._sd = sd
        if self._lost:
            self._rescan(sd)
        self._gone = False
        if not (MIN_BLOCK <= self.want_block <= MAX_BLOCK):
            raise LiveError(f"unsupported block size {self.want_block} (live mode takes {MIN_BLOCK}..{MAX_BLOCK})")
        di = _pa_find(sd, self.input, "input")
        do = _pa_find(sd, self.output, "output")
        devs = sd.query_devices()
        self.cin = min(2, int(devs[di]["max_input_channels"]))
        self.cout = min(2, int(devs[do]["max_output_channels"]))
        self.devices = (di, do)
        self.names = (devs[di]["name"], devs[do]["name"])
        try:
            sd.check_input_settings(device=di, channels=self.cin, dtype="float32", samplerate=self.want_rate)
            sd.check_output_settings(device=do, channels=self.cout, dtype="float32", samplerate=self.want_rate)
        except Exception as e:
            rates = sorted({int(devs[di]["default_samplerate"]), int(devs[do]["default_samplerate"])})
            raise LiveError(f"unsupported rate: {self.names[0]!r}/{self.names[1]!r} cannot run at "
                            f"{self.want_rate} Hz ({e}); the devices' default rate: "
                            f"{' / '.join(f'{r} Hz' for r in rates)}") from None
        self.sample_rate, self.block = self.want_rate, self.want_block
        return self.sample_rate, self.block

    @staticmethod
    def _rescan(sd) -> None:
        """Re-initialise PortAudio so its device list is current (it is read once per Pa_Initialize)."""
        try:
            sd._terminate()
            sd._initialize()
        except Exception as e:
            raise LiveError(f"PortAudio could not rescan its devices: {e}") from None

    def bind(self, bridge: PortBridge, stats: LiveStats) -> None:
        sd = self._sd
        cin, cout = self.cin, self.cout
        ins = [None] * cin
        outs = [None] * cout
        perf = time.perf_counter
        bad = int(sd.CallbackFlags(0x1 | 0x2 | 0x4 | 0x8)._flags) if hasattr(sd.CallbackFlags(), "_flags") else 0xF

        def callback(indata, outdata, frames, t, status):
            t0 = perf()
            if status._flags & bad:
                stats.xruns += 1
            for k in range(cin):
                ins[k] = indata[:, k]
            for k in range(cout):
                outs[k] = outdata[:, k]
            try:
                bridge.run(ins, outs, frames)
            except Exception:
                stats.errors += 1
                outdata.fill(0.0)
            stats.record(perf() - t0, frames)

        def finished():
            if not self._closing:
                self._gone = True

        try:
            self.stream = sd.Stream(device=self.devices, samplerate=self.sample_rate, blocksize=self.block,
                                    dtype="float32", channels=(self.cin, self.cout), latency=self.latency_hint,
                                    callback=callback, finished_callback=finished)
        except Exception as e:
            raise LiveError(f"cannot open {self.names[0]!r} -> {self.names[1]!r} at {self.sample_rate} Hz, "
                            f"{self.block}-sample blocks: {e}") from None
        self.compensated = False

    def connect(self) -> None:
        pass

    def mark_gone(self) -> None:
        self._gone = True
        self._lost = True

    def remember_connections(self) -> None:
        pass

    def recompute_latency(self) -> None:
        pass

    def activate(self) -> None:
        self.stream.start()
        self._lost = False  # audio runs again: later opens need no rescan

    def alive(self) -> bool:
        return self.stream is not None and not self._gone and self.stream.active

    def latency(self) -> tuple[int, int]:
        if self.stream is None:
            return 0, 0
        li, lo = self.stream.latency
        return int(round(li * self.sample_rate)), int(round(lo * self.sample_rate))

    def describe(self) -> str:
        return f"PortAudio {self.names[0]!r} -> {self.names[1]!r} ({self.cin} in, {self.cout} out)"

    def close(self) -> None:
        s, self.stream = self.stream, None
        if s is None:
            return

        def _close():
            try:
                s.abort()
                s.close()
            except Exception:
                pass

        self._closing = True
        try:
            if not self._gone:
                _close()
                return
            self._lost = True
            # The device vanished. PortAudio can hang in abort/close here (seen with its JACK host API
            # when the JACK server dies), so close on a helper thread and give up on the stream after 2 s.
            t = threading.Thread(target=_close, name="resculpt-pa-close", daemon=True)
            t.start()
            t.join(2.0)
            if t.is_alive():
                self.abandoned = True
        finally:
            self._closing = False



def list_portaudio() -> list[dict]:
    sd = _import_sd()
    apis = sd.query_hostapis()
    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append({"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
                    "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
                    "default_rate": d["default_samplerate"]})
    return out

