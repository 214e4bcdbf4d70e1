"""Helpers for the live-mode tests: a private jackd dummy server (synchronous mode, -S) and a player/recorder pair.

Alignment (why the comparison is deterministic): every sample is stamped with the JACK frame
counter of the cycle it was written/read in. The player writes clip sample i in the cycle whose
frame time is F_p + i; the recorder stores what it reads in the cycle at frame time T at index
T - F_p. The player, `resculpt` and the recorder are three clients connected
player -> resculpt -> recorder (acyclic), so JACK runs them in that order within one cycle and the
graph adds no delay; we do not assume that, we measure it: `graph_delay` is found by playing an
impulse through `resculpt live --preset clean` (an exact pass-through) and reading where it lands.
The live chain's state when the clip arrives depends on how many (silent) samples it processed
before: `resculpt live` reports the frame time of its first cycle (first_frame), so that prefix is
P = F_p - first_frame (+ the player->resculpt part of the graph delay, 0 in an acyclic graph), and
the reference is `resculpt render` of zeros(P) + clip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import numpy as np

JACKD = shutil.which("jackd")


class JackServer:
    """`jackd -n NAME -d dummy -r RATE -p PERIOD`, a unique name per instance; stop() kills it."""

    def __init__(self, rate: int = 48000, period: int = 256, name: str | None = None, sync: bool = True):
        self.rate, self.period = rate, period
        # -S (synchronous mode): the server waits for the graph each cycle, so a client delayed by CPU
        # contention on a shared CI machine makes that cycle late instead of dropping it (an xrun).
        # Real-time behaviour under load is measured by benchmarks/live.py, not asserted here.
        self.server_opts = ["-S"] if sync else []
        self.name = name or f"rsx-test-{os.getpid()}-{time.monotonic_ns() % 10**8}"
        self.proc = None

    def start(self, timeout: float = 10.0) -> JackServer:
        import jack

        self.log = open(f"/tmp/{self.name}.log", "w")
        self.proc = subprocess.Popen([JACKD, *self.server_opts, "-n", self.name, "-d", "dummy", "-r", str(self.rate), "-p",
                                      str(self.period)], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        t_end = time.monotonic() + timeout
        jack.set_error_function(lambda m: None)
        try:
            while time.monotonic() < t_end:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"jackd exited with {self.proc.returncode}; see /tmp/{self.name}.log")
                try:
                    c = jack.Client("rsx-probe", no_start_server=True, servername=self.name)
                    c.close()
                    return self
                except jack.JackOpenError:
                    time.sleep(0.1)
        finally:
            jack.set_error_function(None)
        self.stop()
        raise RuntimeError(f"jackd {self.name} did not come up in {timeout} s")

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # jackd leaves its shm/socket names behind when killed; they are per-name and harmless.

    def env(self) -> dict:
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name}


class Rig:
    """Two JACK clients: `rsx_player` (out_1, out_2) plays a signal when armed; `rsx_rec` (in_1, in_2)
    records by frame time relative to the player's first playing cycle."""

    def __init__(self, server: str, signal_: np.ndarray, record_len: int):
        import jack

        self.jack = jack
        self.sig = np.ascontiguousarray(signal_, dtype=np.float32)
        self.n = self.sig.shape[1]
        self.rec = np.zeros((2, record_len), np.float32)
        self.armed = False
        self.done = False
        self.pos = 0
        self.f_play = None
        self.xruns_armed = 0  # xrun notifications (any client of the server) while the signal plays
        self.player = jack.Client("rsx_player", no_start_server=True, servername=server)
        self.recorder = jack.Client("rsx_rec", no_start_server=True, servername=server)
        self.pout = [self.player.outports.register(f"out_{k}") for k in (1, 2)]
        self.rin = [self.recorder.inports.register(f"in_{k}") for k in (1, 2)]
        self.player.set_process_callback(self._play)
        self.recorder.set_process_callback(self._record)
        self.recorder.set_xrun_callback(self._xrun)
        self.player.activate()
        self.recorder.activate()

    def _xrun(self, delay):
        if self.armed and not self.done:
            self.xruns_armed += 1

    @property
    def sources(self):
        return [p.name for p in self.pout]

    @property
    def sinks(self):
        return [p.name for p in self.rin]

    def _play(self, n):
        if not self.armed:
            for p in self.pout:
                p.get_array().fill(0.0)
            return
        if self.f_play is None:
            self.f_play = self.player.last_frame_time
        p0 = self.pos
        m = max(0, min(n, self.n - p0))
        for k, port in enumerate(self.pout):
            a = port.get_array()
            a.fill(0.0)
            if m:
                a[:m] = self.sig[k, p0 : p0 + m]
        self.pos = p0 + n

    def _record(self, n):
        f0 = self.f_play
        if f0 is None:
            return
        t = (self.recorder.last_frame_time - f0) & 0xFFFFFFFF
        if t + n <= self.rec.shape[1]:
            for k, port in enumerate(self.rin):
                self.rec[k, t : t + n] = port.get_array()

    def play_and_wait(self, tail: int, rate: int, timeout: float = 60.0) -> None:
        """Arm the player and return once the recorder has captured the signal plus ``tail`` samples."""
        self.armed = True
        need = (self.n + tail) / rate
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.f_play is not None and (self.recorder.frame_time - self.f_play) & 0xFFFFFFFF > self.n + tail + 256:
                time.sleep(0.3)  # xrun notifications arrive on another thread, a little later
                self.done = True
                return
            time.sleep(min(0.05, need))
        raise TimeoutError("the JACK cycle did not advance (server stalled?)")

    def xruns_after_play(self) -> int:
        return self.xruns_armed

    def close(self) -> None:
        for c in (self.player, self.recorder):
            try:
                c.deactivate()
                c.close()
            except Exception:
                pass


def speech_48k(seconds: float, offset_s: float = 1.0) -> np.ndarray:
    """The bundled real speech clip, resampled to 48 kHz: (2, n) with the right channel 7 ms later, 0.8x."""
    from pathlib import Path

    import soundfile as sf
    from scipy.signal import resample_poly

    path = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"
    x, sr = sf.read(str(path), dtype="float32", always_2d=False)
    y = resample_poly(x, 3, 1).astype(np.float32) if sr == 16000 else x
    a, n, d = int(offset_s * 48000), int(seconds * 48000), int(0.007 * 48000)
    return np.stack([y[a : a + n], 0.8 * y[a - d : a - d + n]]).astype(np.float32)


def first_match_error(y: np.ndarray, ref: np.ndarray, tol: float) -> tuple[float, int]:
    """(max abs error, index of the first sample over ``tol`` or -1)."""
    e = np.abs(y - ref).max(axis=0)
    bad = np.flatnonzero(e > tol)
    return float(e.max()) if e.size else 0.0, int(bad[0]) if bad.size else -1


class RigProcess:
    """The same Rig in a child process, so its JACK callbacks do not share a GIL with an in-process
    LiveSession. Protocol on its stdin/stdout: 'ready' -> (parent connects) 'arm' -> 'mark' when the
    player passed ``mark`` samples -> 'done' once recorded; results in an .npz file."""

    def __init__(self, server: str, signal_: np.ndarray, record_len: int, workdir, mark: int = 0):
        import sys

        self.sig_path = str(workdir / "rig_in.npy")
        self.out_path = str(workdir / "rig_out.npz")
        np.save(self.sig_path, signal_)
        self.proc = subprocess.Popen([sys.executable, __file__, server, self.sig_path, self.out_path,
                                      str(record_len), str(mark)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self._expect("ready")
        self.sources = ["rsx_player:out_1", "rsx_player:out_2"]
        self.sinks = ["rsx_rec:in_1", "rsx_rec:in_2"]

    def _expect(self, word: str, timeout: float = 60.0):
        line = self.proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"rig process said {line!r}, expected {word!r}")

    def arm(self):
        self.proc.stdin.write("arm\n")
        self.proc.stdin.flush()

    def wait_mark(self):
        self._expect("mark")

    def wait_done(self) -> dict:
        self._expect("done")
        self.proc.wait(10)
        r = np.load(self.out_path)
        return {"rec": r["rec"], "f_play": int(r["f_play"]), "xruns": int(r["xruns"])}

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _rig_main(argv):
    server, sig_path, out_path, record_len, mark = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    rig = Rig(server, np.load(sig_path), record_len)
    import sys

    print("ready", flush=True)
    if sys.stdin.readline().strip() != "arm":
        return 1
    rig.armed = True
    if mark:
        while rig.pos < mark:
            time.sleep(0.002)
        print("mark", flush=True)
    rig.play_and_wait(record_len - rig.n - 4 * 256, rig.player.samplerate)
    np.savez(out_path, rec=rig.rec, f_play=rig.f_play, xruns=rig.xruns_after_play())
    rig.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_rig_main(sys.argv[1:]))
