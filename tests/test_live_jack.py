"""Live mode on a real JACK server (jackd -d dummy, started and stopped by these tests).

See tests/live_rig.py for how the comparison with the offline render is aligned.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from live_rig import JACKD, JackServer, Rig, RigProcess, first_match_error, speech_48k
from resculpt.plugin_host.chain import Chain

pytestmark = [pytest.mark.live]
if JACKD is None:
    pytestmark.append(pytest.mark.skip(reason="jackd not installed (apt install jackd2; scripts/setup.sh does it)"))

REPO = Path(__file__).resolve().parent.parent
RESCULPT = [sys.executable, "-m", "resculpt.cli"]
RATE, PERIOD = 48000, 256
TOL = 1e-4
ATTEMPTS = 5  # a run is retried only when JACK reported an xrun while the clip played


@pytest.fixture(scope="module")
def jack_server():
    srv = JackServer(RATE, PERIOD).start()
    yield srv
    srv.stop()


class LiveProc:
    """`resculpt live ... --json` as a subprocess; events parsed from its stdout."""

    def __init__(self, args, env):
        self.events = []
        self.proc = subprocess.Popen(RESCULPT + ["live", "--json", "--status-interval", "0.5", *args], env=env,
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass

    def wait_event(self, name, timeout=30.0, after=0):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            for e in self.events[after:]:
                if e.get("event") == name:
                    return e
            if self.proc.poll() is not None:
                self._t.join(2)
                for e in self.events[after:]:
                    if e.get("event") == name:
                        return e
                raise AssertionError(f"resculpt live exited ({self.proc.returncode}) before {name!r}: "
                                     f"{self.proc.stderr.read()}")
            time.sleep(0.02)
        raise AssertionError(f"no {name!r} event from resculpt live within {timeout} s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._t.join(5)
        self.stderr = self.proc.stderr.read()
        return self.proc.returncode


def _run_live(server, preset, sig, tail):
    """Play ``sig`` through `resculpt live --preset` on ``server``; return (recording, ready, stopped, rig)."""
    rig = Rig(server.name, sig, sig.shape[1] + tail + 4 * PERIOD)
    live = LiveProc(["--preset", preset, "--no-osc", "--input", ",".join(rig.sources),
                     "--output", ",".join(rig.sinks)], server.env())
    try:
        ready = live.wait_event("ready")
        time.sleep(0.3)  # let the connections settle before the first sample plays
        rig.play_and_wait(tail, RATE)
    finally:
        rc = live.stop()
        rig.close()
    assert rc == 0, live.stderr
    stopped = [e for e in live.events if e.get("event") == "stopped"]
    assert stopped, live.stderr
    return rig, ready, stopped[0]


def _graph_delay(server) -> int:
    """Samples the JACK graph adds between the player and the recorder around `resculpt live`, measured
    with an impulse through the exact pass-through preset `clean`."""
    imp = np.zeros((2, 4 * PERIOD), np.float32)
    imp[:, 10] = 0.5
    rig, ready, stopped = _run_live(server, "clean", imp, 4 * PERIOD)
    assert ready["latency"]["chain_samples"] == 0
    peaks = np.argmax(np.abs(rig.rec), axis=1)
    assert peaks[0] == peaks[1] and rig.rec[0, peaks[0]] == 0.5, "the impulse did not come back intact"
    return int(peaks[0]) - 10


def _render(tmp_path, tag, preset, clip, prefix):
    """`resculpt render` (the real CLI) of zeros(prefix) + clip, with the prefix cut off again."""
    import soundfile as sf

    src, dst = tmp_path / f"in{tag}.wav", tmp_path / f"ref{tag}.wav"
    sf.write(src, np.concatenate([np.zeros((2, prefix), np.float32), clip], axis=1).T, RATE, subtype="FLOAT")
    r = subprocess.run(RESCULPT + ["render", str(src), "-o", str(dst), "--preset", preset, "-q"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return sf.read(dst, dtype="float32", always_2d=True)[0].T[:, prefix:]


def test_live_output_equals_offline_render_after_reported_latency(jack_server, tmp_path):
    """`resculpt live --preset podcast-clean` on jackd (48 kHz, 256-sample periods), fed a real speech clip
    from a JACK client, outputs what `resculpt render` of the same input gives, delayed by exactly the
    reported chain latency plus the measured JACK graph delay, within 1e-4."""
    delay = _graph_delay(jack_server)
    assert delay in (0, PERIOD, 2 * PERIOD), f"unexpected graph delay {delay}"
    d_in = PERIOD if delay == 2 * PERIOD else 0  # player -> resculpt part (0 in the acyclic graph we build)
    clip = speech_48k(2.0)
    n = clip.shape[1]
    preset = "podcast-clean"
    report = []
    for attempt in range(ATTEMPTS):
        rig, ready, stopped = _run_live(jack_server, preset, clip, 4800)
        lat = ready["latency"]["chain_samples"]
        assert lat == stopped["chain_latency_samples"] == 959  # 20 ms STFT window - 1 at 48 kHz
        # Silent lead-in the chain processed before the clip: frames since its first cycle, less whole
        # periods if an xrun made JACK skip resculpt's cycle while it was silent (searched, k = 0..8).
        lead = ((rig.f_play - ready["first_frame"]) & 0xFFFFFFFF) + d_in
        y = rig.rec[:, delay + lat : delay + lat + n]
        best = None
        for k in range(9):  # in-process search (same code as the CLI), then the CLI confirms
            prefix = lead - k * PERIOD
            if prefix < 0:
                break
            x = np.concatenate([np.zeros((2, prefix), np.float32), clip], axis=1)
            ref = Chain.from_preset(preset, sample_rate=RATE, channels=2, max_block=4096)(x)[:, prefix:]
            err, bad = first_match_error(y, ref, TOL)
            if best is None or (bad < 0) or (best[1] >= 0 and bad > best[1]):
                best = (err, bad, k)
            if bad < 0:
                break
        k = best[2]
        ref = _render(tmp_path, attempt, preset, clip, lead - k * PERIOD)
        err, bad = first_match_error(y, ref, TOL)
        report.append((attempt, err, bad, k, rig.xruns_after_play(), stopped["xruns"]))
        print(f"live vs render: attempt {attempt}, graph delay {delay}, chain latency {lat}, lead-in {lead} - {k} "
              f"periods, max |error| {err:.3g}, first bad {bad}, xruns while playing {rig.xruns_after_play()}, "
              f"resculpt xruns {stopped['xruns']} overruns {stopped['overruns']} max cb {stopped['cb_max_us']:.0f} us")
        if bad < 0:
            assert np.abs(ref).max() > 0.05  # the comparison saw real audio
            assert err <= TOL
            return
        if rig.xruns_after_play() == 0:
            break  # a mismatch without an xrun is a real failure: do not retry it away
    pytest.fail(f"live output differs from the offline render (attempt, max err, first bad sample, xruns while "
                f"playing, xruns reported by resculpt): {report}")


def test_live_cli_reports_and_publishes_latency_on_jack_ports(jack_server):
    """With --auto-connect to the (dummy) system ports, `resculpt live` reports chain + capture + playback
    latency, and publishes the chain latency on its ports so JACK hosts compensate it:
    out_* capture latency = upstream + chain, in_* playback latency = downstream + chain."""
    def port_latency(port, kind):
        out = subprocess.run(["jack_lsp", "-l", port], env=jack_server.env(), capture_output=True, text=True).stdout
        m = re.search(rf"port {kind} latency = \[ (\d+) (\d+) \]", out)
        assert m, out
        return int(m.group(2))

    cap = port_latency("system:capture_1", "capture")  # dummy driver: 1 period
    play = port_latency("system:playback_1", "playback")  # 1 period with -S, 2 in asynchronous mode
    assert cap == PERIOD and play in (PERIOD, 2 * PERIOD)
    live = LiveProc(["--preset", "podcast-clean", "--no-osc", "--auto-connect"], jack_server.env())
    try:
        ready = live.wait_event("ready")
        lat = ready["latency"]
        assert lat["chain_samples"] == 959 and lat["compensated"] is True
        assert lat["input_samples"] == cap and lat["output_samples"] == play
        assert lat["total_samples"] == 959 + cap + play
        assert abs(lat["total_ms"] - 1000 * (959 + cap + play) / RATE) < 1e-9
        assert port_latency("resculpt:out_1", "capture") == cap + 959
        assert port_latency("resculpt:in_1", "playback") == play + 959
    finally:
        live.stop()


def test_live_survives_jack_server_restart_and_reconnects():
    """When the JACK server dies mid-run, `resculpt live` keeps running, says it is reconnecting, and
    comes back on the restarted server with its ports and connections restored."""
    srv = JackServer(RATE, PERIOD).start()
    live = None
    try:
        live = LiveProc(["--preset", "broadcast-voice", "--no-osc", "--auto-connect"], srv.env())
        live.wait_event("ready")
        time.sleep(1.5)  # the supervisor notes the connections once a second
        srv.stop()
        live.wait_event("reconnecting", timeout=15)
        assert live.proc.poll() is None, "resculpt live died with the server"
        time.sleep(1.0)
        srv.start()
        ev = live.wait_event("reconnected", timeout=20)
        assert ev["client"] == "resculpt"
        time.sleep(1.0)
        out = subprocess.run(["jack_lsp", "-c", "resculpt:out_1"], env=srv.env(), capture_output=True, text=True)
        assert "system:playback_1" in out.stdout, out.stdout
        n0 = live.events[-1].get("callbacks", 0)
        time.sleep(1.2)
        assert live.events[-1].get("callbacks", 0) > n0, "audio did not resume"
        assert live.stop() == 0
    finally:
        if live is not None and live.proc.poll() is None:
            live.stop()
        srv.stop()


def test_live_cli_clear_errors_for_rate_block_and_missing_ports(jack_server):
    """A rate or block size the server does not run, and a port that does not exist, end with a clear
    message and exit code 1 (not a traceback)."""
    env = jack_server.env()
    cases = [(["--rate", "44100"], "unsupported rate"), (["--block", "128"], "unsupported block size"),
             (["--input", "nosuch:port"], "no JACK output (source) port matches 'nosuch:port'")]
    for extra, msg in cases:
        r = subprocess.run(RESCULPT + ["live", "--no-osc", "--duration", "1", *extra], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (extra, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_devices_lists_jack_ports_of_the_running_server(jack_server):
    """`resculpt devices --backend jack` names the server's ports with their direction and latency."""
    r = subprocess.run(RESCULPT + ["devices", "--backend", "jack"], env=jack_server.env(), cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "48000 Hz, 256-sample periods" in r.stdout
    assert "source system:capture_1 physical  latency 256" in r.stdout
    assert re.search(r"sink   system:playback_2 physical  latency (256|512)\n", r.stdout), r.stdout


def _osc_server_class():
    try:
        from resculpt.plugin_host.osc import OscServer
    except ImportError:
        return None
    return OscServer


def test_live_parameter_change_mid_stream_takes_effect(jack_server, tmp_path):
    """A parameter changed from the control side while audio runs (over OSC when the OSC server is in this
    build, else `chain.params.set` from a separate control thread) takes effect within a few periods and
    exactly as specified: out.gain_db 0 -> -12 dB on the `clean` chain; before the change the output is
    the input, after its 20 ms ramp it is the input x 10^(-12/20), within 1e-4; the callback never fails.
    The engine runs in this process (so a control thread can reach its chain); the player/recorder run
    in a child process so their JACK callbacks do not compete with it for the GIL. (The `clean` chain
    keeps the check independent of how many silent samples a stateful chain saw before the clip; output
    equality of a stateful chain is test_live_output_equals_offline_render_after_reported_latency.)"""
    import threading

    from resculpt.plugin_host.live import JackBackend, LiveSession

    clip = speech_48k(2.5)
    n = clip.shape[1]
    preset, gain_db, mark = "clean", -12.0, int(1.2 * RATE)
    OscServer = _osc_server_class()
    report = []
    for attempt in range(ATTEMPTS):
        chain = Chain.from_preset(preset, sample_rate=RATE, channels=2, max_block=PERIOD)
        rig = RigProcess(jack_server.name, clip, n + 9600, tmp_path, mark=mark)
        be = JackBackend("resculpt", jack_server.name, rig.sources, rig.sinks)
        session = LiveSession(chain, be, status_interval=0)
        osc = None
        try:
            session.start()
            if OscServer is not None:
                from pythonosc.udp_client import SimpleUDPClient

                osc = OscServer(chain, host="127.0.0.1", port=0)
                osc.start()
                client = SimpleUDPClient("127.0.0.1", osc.port)

                def send():
                    client.send_message("/resculpt/param/out.gain_db", gain_db)
                how = "OSC"
            else:
                def send():
                    th = threading.Thread(target=chain.params.set, args=("out.gain_db", gain_db))
                    th.start()
                    th.join()
                how = "control thread (OSC server not in this build)"
            time.sleep(0.3)
            rig.arm()
            rig.wait_mark()
            send()
            res = rig.wait_done()
        finally:
            if osc is not None:
                osc.stop()
            session.stop()
            rig.close()
        assert session.stats.errors == 0
        assert chain.latency_samples == 0
        y = res["rec"][:, :n]
        err, change = first_match_error(y, clip, TOL)
        g = np.float32(10 ** (gain_db / 20))
        after = change + int(0.02 * RATE) + PERIOD  # ramp + one period
        err_after = float(np.abs(y[:, after:] - g * clip[:, after:]).max()) if change > 0 else float("inf")
        report.append((attempt, how, change, mark, err_after, res["xruns"]))
        print(f"param change via {how}: sent when the player passed clip sample {mark}, took effect at "
              f"clip sample {change}, max |error| after the ramp vs input*{g:.4f}: {err_after:.3g}, "
              f"xruns while playing {res['xruns']}")
        if mark <= change < mark + int(0.1 * RATE) and err_after <= TOL:
            assert np.abs(clip[:, after:]).max() > 0.05
            return
        if res["xruns"] == 0:
            break
    pytest.fail(f"parameter change did not take effect as expected (attempt, via, change, sent at, err after, "
                f"xruns): {report}")


@pytest.mark.parametrize("device", ["system", "jack"])
def test_live_portaudio_backend_runs_on_jack_host_api_and_alsa_jack_device(jack_server, device):
    """`--backend portaudio` opens a PortAudio duplex stream (device 'system' = PortAudio's JACK host API,
    'jack' = the ALSA jack plugin: the ALSA path), processes callbacks and reports its latency."""
    pytest.importorskip("sounddevice")
    live = LiveProc(["--backend", "portaudio", "--input", device, "--output", device, "--block", "256",
                     "--preset", "broadcast-voice", "--no-osc"], jack_server.env())
    try:
        ready = live.wait_event("ready")
        assert ready["backend"] == "portaudio" and ready["sample_rate"] == RATE and ready["block"] == 256
        lat = ready["latency"]
        assert lat["compensated"] is False and lat["total_samples"] == lat["input_samples"] + lat["output_samples"]
        st = live.wait_event("status", timeout=10)
        time.sleep(1.0)
        last = [e for e in live.events if e.get("event") == "status"][-1]
        assert last["callbacks"] > st["callbacks"] > 0 and last["errors"] == 0
    finally:
        assert live.stop() == 0, live.stderr


def test_live_cli_starts_the_osc_server_and_sends_callback_health_as_feedback(jack_server):
    """`resculpt live --osc-port 0` starts the OSC server next to the audio: a parameter set over OSC reaches
    the running chain (echoed back), and subscribers get /resculpt/live (xruns, overruns, callback p99...)
    and the total latency in /resculpt/latency."""
    if _osc_server_class() is None:
        pytest.skip("OSC server not in this build")
    from osc_testlib import Client

    live = LiveProc(["--preset", "podcast-clean", "--osc-port", "0", "--auto-connect"], jack_server.env())
    try:
        ready = live.wait_event("ready")
        port = live.wait_event("osc")["port"]
        c = Client(port)
        c.send("/resculpt/subscribe", c.port)
        health = c.wait_for("/resculpt/live", timeout=5)
        assert health is not None and len(health) == 6
        xruns, overruns, p99_ms, load, max_ms, reconnects = health
        assert p99_ms > 0 and max_ms >= p99_ms and reconnects == 0  # timing itself depends on machine load
        assert load == pytest.approx(p99_ms / (1000 * PERIOD / RATE), rel=1e-3)
        lat = c.wait_for("/resculpt/latency", timeout=5)
        assert lat[0] == 959 and lat[2] == ready["latency"]["total_samples"] > 959
        c.send("/resculpt/param/comp.ratio", 3.0)
        echo = c.wait_for("/resculpt/param/comp.ratio", timeout=5, pred=lambda a: abs(a[0] - 3.0) < 1e-6)
        assert echo is not None and echo[0] == pytest.approx(3.0)
        c.close()
    finally:
        assert live.stop() == 0, live.stderr


def test_live_portaudio_keeps_running_and_says_so_when_its_device_vanishes():
    """PortAudio backend (on PortAudio's JACK host API): when the device vanishes (its JACK server dies),
    `resculpt live` does not die or hang: it reports the loss, keeps retrying with a clear message, and
    Ctrl-C still ends it promptly with exit code 0. (PortAudio hangs inside the old stream in this
    case, so it cannot reopen in-process; the message says so and points to --backend jack.)"""
    pytest.importorskip("sounddevice")
    srv = JackServer(RATE, PERIOD).start()
    live = None
    try:
        live = LiveProc(["--backend", "portaudio", "--input", "system", "--output", "system", "--block", "256",
                         "--no-osc"], srv.env())
        live.wait_event("ready")
        srv.stop()
        live.wait_event("reconnecting", timeout=15)
        ev = live.wait_event("reconnect_failed", timeout=15)
        assert "--backend jack" in ev["error"]
        assert live.proc.poll() is None
        t0 = time.monotonic()
        assert live.stop() == 0
        assert time.monotonic() - t0 < 10
        assert "went away" in live.stderr and "Traceback" not in live.stderr
    finally:
        if live is not None and live.proc.poll() is None:
            live.proc.kill()
        srv.stop()
