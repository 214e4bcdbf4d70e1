"""Live-mode benchmark (not a CI test): callback timing and xruns on a real JACK server.

For each period size (default 128 and 256 samples at 48 kHz) it starts its own
`jackd -d dummy -r 48000 -p PERIOD`, runs a LiveSession with the full chain of the heaviest shipped
preset (picked by offline cost unless --preset), feeds it the bundled speech clip in a loop from a
player client in a separate process, and sends parameter changes at --rate-hz (default 50/s):
over OSC from the player process when the OSC server (resculpt.plugin_host.osc.OscServer) is in
this build, else from a control thread in the engine's process calling chain.params.set (what the
OSC handler thread would do, minus the UDP parsing). After a --settle period (connections, first
cycles; counters reset then) it records every callback time for --minutes per period size and
writes benchmarks/results/live.md: callback time median / p99 / p99.9 / max as a fraction of the
period, overruns (callback > period) and xruns (JACK server notifications), with the command, the host's
load average, the process's nice value and the scheduling policy of its JACK process thread.
``--channels 1`` runs a mono chain (a streamer's mic: in_1 -> chain -> both outputs), ``--channels 1 2``
both, one after the other. Several presets (``--preset A B``) run in turn for each period and channel count,
``--rounds N`` times over, so that they share the machine's load of the moment and compare in one table (e.g.
the `clean` preset beside a heavy one: what the server, the player and the machine cost with a chain that does
next to nothing). ``--server-floor`` adds, in every round, a row for the bare server: the same jackd with no
audio client, only a listener that counts xruns, i.e. what the machine gives with nothing of ours running.

    .venv/bin/python benchmarks/live.py                 # 10 minutes per period size
    .venv/bin/python benchmarks/live.py --minutes 2     # shorter run (say so when you report it)
    nice -n -5 .venv/bin/python benchmarks/live.py --preset denoise-live --periods 128 --channels 1
    nice -n -5 .venv/bin/python benchmarks/live.py --preset denoise-live clean --rounds 2 --minutes 2 --server-floor \
        --periods 128 --channels 1
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RATE = 48000
PARAM_CYCLE = [("out.gain_db", (-1.0, 0.0)), ("comp.threshold_db", (-26.0, -22.0)), ("mix", (0.9, 1.0)),
               ("presence.gain_db", (-3.0, -2.0)), ("sgate.threshold_db", (-74.0, -70.0)),
               ("limiter.threshold_db", (-1.5, -1.0))]


def _speech() -> np.ndarray:
    import soundfile as sf
    from scipy.signal import resample_poly

    x, sr = sf.read(str(REPO / "examples" / "speech_1081_librispeech.flac"), dtype="float32")
    y = resample_poly(x, RATE // 16000, 1).astype(np.float32) if sr == 16000 else x
    return np.stack([y, np.roll(y, int(0.007 * RATE)) * 0.8]).astype(np.float32)


def heaviest_preset(block: int = 256) -> tuple[str, dict]:
    """The shipped preset with the largest offline per-block cost (2 s of speech each)."""
    from resculpt.plugin_host.bench import bench_chain
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.paths import shipped_presets_dir
    from resculpt.plugin_host.presets import list_presets

    sig = _speech()
    costs = {}
    for name, path in list_presets():
        if path.parent != shipped_presets_dir():
            continue
        try:
            ch = Chain.from_preset(name, sample_rate=RATE, channels=2, max_block=block)
        except Exception:
            continue
        r = bench_chain(ch, seconds=2.0, block=block, signal=sig)
        costs[name] = r["per_block_us"]["median"]
    return max(costs, key=costs.get), costs


def start_jackd(name: str, period: int) -> subprocess.Popen:
    import jack

    p = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", str(RATE), "-p", str(period)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    jack.set_error_function(lambda m: None)
    try:
        for _ in range(100):
            try:
                jack.Client("bench-probe", no_start_server=True, servername=name).close()
                return p
            except jack.JackOpenError:
                time.sleep(0.1)
    finally:
        jack.set_error_function(None)
    p.kill()
    raise RuntimeError("jackd did not start")


def player_main(server: str, osc_port: int, rate_hz: float) -> int:
    """Child process: loop the speech clip into resculpt:in_1/in_2; send OSC parameter changes if a port is given."""
    import jack

    sig = _speech()
    n = sig.shape[1]
    c = jack.Client("bench_player", no_start_server=True, servername=server)
    outs = [c.outports.register(f"out_{k}") for k in (1, 2)]
    pos = [0]

    @c.set_process_callback
    def _(frames):
        p = pos[0]
        for k, port in enumerate(outs):
            a = port.get_array()
            m = min(frames, n - p)
            a[:m] = sig[k, p : p + m]
            if m < frames:
                a[m:] = sig[k, : frames - m]
        pos[0] = (p + frames) % n

    c.activate()
    for k in (0, 1):
        c.connect(outs[k], f"resculpt:in_{k + 1}")
    print("ready", flush=True)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
    if osc_port:
        from pythonosc.udp_client import SimpleUDPClient

        cl = SimpleUDPClient("127.0.0.1", osc_port)
        k, t = 0, time.monotonic()
        while not stop[0]:
            pid, (a, b) = PARAM_CYCLE[k % len(PARAM_CYCLE)]
            cl.send_message(f"/resculpt/param/{pid}", a if (k // len(PARAM_CYCLE)) % 2 else b)
            k += 1
            t += 1.0 / rate_hz
            time.sleep(max(0.0, t - time.monotonic()))
    else:
        while not stop[0]:
            time.sleep(0.1)
    c.deactivate()
    c.close()
    return 0


def _rt_threads() -> list[str]:
    """Threads of this process that run under a real-time policy ("tid FIFO prio N"): JACK's process thread
    gets SCHED_FIFO when the server runs real-time and the process may use it."""
    names = {os.SCHED_FIFO: "FIFO", os.SCHED_RR: "RR"}
    out = []
    for tid in sorted(int(t) for t in os.listdir("/proc/self/task")):
        try:
            pol = os.sched_getscheduler(tid)
            if pol in names:
                out.append(f"{tid} {names[pol]} prio {os.sched_getparam(tid).sched_priority}")
        except OSError:
            pass
    return out


def run_server_only(period: int, seconds: float, settle: float) -> dict:
    """The floor: the same jackd with no audio clients at all, only a listener that counts its xrun notifications
    (no process callback, no player, no OSC). What it counts is the server's own timing on this machine."""
    import jack

    name = f"rsx-floor-{os.getpid()}-{period}"
    jackd = start_jackd(name, period)
    try:
        c = jack.Client("floor_listener", no_start_server=True, servername=name)
        xruns = [0]
        c.set_xrun_callback(lambda delay_usecs: xruns.__setitem__(0, xruns[0] + 1))
        c.activate()
        time.sleep(settle)
        xruns[0] = 0
        load0 = os.getloadavg()
        t0 = time.monotonic()
        time.sleep(seconds)
        res = {"preset": "(server only)", "server_only": True, "period": period, "channels": 0,
               "seconds": time.monotonic() - t0, "xruns": xruns[0], "loadavg": (load0, os.getloadavg())}
        c.deactivate()
        c.close()
        return res
    finally:
        jackd.terminate()
        jackd.wait(5)


def run_period(preset: str, period: int, seconds: float, settle: float, rate_hz: float, channels: int = 2) -> dict:
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.live import JackBackend, LiveSession

    name = f"rsx-bench-{os.getpid()}-{period}"
    jackd = start_jackd(name, period)
    player = session = osc = None
    sent = [0]
    try:
        chain = Chain.from_preset(preset, sample_rate=RATE, channels=channels, max_block=period)
        n_cb = int((seconds + settle + 5) * RATE / period)
        session = LiveSession(chain, JackBackend("resculpt", name, outputs=["system:playback_1", "system:playback_2"]), ring_size=n_cb,
                         status_interval=0)
        session.start()
        try:
            from resculpt.plugin_host.osc import OscServer

            osc = OscServer(chain, host="127.0.0.1", port=0)
            osc.start()
            via = "OSC (UDP from the player process)"
        except ImportError:
            via = "chain.params.set from a control thread (OSC server not in this build)"
        player = subprocess.Popen([sys.executable, __file__, "--_player", name, str(osc.port if osc else 0),
                                   str(rate_hz)], stdout=subprocess.PIPE, text=True)
        assert player.stdout.readline().strip() == "ready"
        stop = threading.Event()
        ctl = None
        if osc is None:
            def control():
                k, t = 0, time.monotonic()
                while not stop.is_set():
                    pid, (a, b) = PARAM_CYCLE[k % len(PARAM_CYCLE)]
                    chain.params.set(pid, a if (k // len(PARAM_CYCLE)) % 2 else b)
                    sent[0] += 1
                    k += 1
                    t += 1.0 / rate_hz
                    stop.wait(max(0.0, t - time.monotonic()))
            ctl = threading.Thread(target=control, daemon=True)
            ctl.start()
        time.sleep(settle)
        session.stats.reset_timing()
        load0 = os.getloadavg()
        t0 = time.monotonic()
        time.sleep(seconds)
        dur = time.monotonic() - t0
        st = session.stats
        p = st.percentiles()
        res = {"preset": preset, "period": period, "channels": channels, "rt_threads": _rt_threads(), "nice": os.nice(0),
               "seconds": dur, "callbacks": st.callbacks, "xruns": st.xruns,
               "overruns": st.overruns, "errors": st.errors, "us": p["us"], "load": p["load"],
               "latency": st.latency.as_dict(), "via": via, "loadavg": (load0, os.getloadavg()),
               "param_msgs": sent[0] if osc is None else int(dur * rate_hz)}
        stop.set()
        if ctl is not None:
            ctl.join(2)
        return res
    finally:
        if player is not None:
            player.send_signal(signal.SIGTERM)
            try:
                player.wait(5)
            except subprocess.TimeoutExpired:
                player.kill()
        if osc is not None:
            osc.stop()
        if session is not None:
            session.stop()
        jackd.terminate()
        jackd.wait(5)


def write_md(path: Path, presets: list[str], costs: dict, results: list, minutes: float, settle: float,
             rate_hz: float, command: str = ""):
    lines = [
        "# Live mode benchmark (`benchmarks/live.py`)",
        "",
        *([f"Command: `{command}`", ""] if command else []),
        f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {platform.node()} "
        f"({os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}), "
        f"jackd dummy at {RATE} Hz. Measured {minutes:g} min per period size "
        f"(after {settle:g} s settling, whose counters are discarded).",
        "",
        (f"Chain: full `{presets[0]}` preset (the heaviest shipped preset by offline per-block cost: "
         + ", ".join(f"{k} {v:.0f} us" for k, v in sorted(costs.items(), key=lambda kv: -kv[1])) + " at 256)."
         if costs else f"Chain: the full {', '.join(f'`{p}`' for p in presets)} preset"
         f"{'s, run in turn (one row each)' if len(presets) > 1 else ''} (named with --preset); mono = in_1 -> "
         f"chain -> out_1 and out_2, stereo = in_k -> channel k -> out_k."),
        f"Input: the bundled speech clip looped from a JACK client in a separate process. Parameter changes: "
        f"{rate_hz:g}/s via {next(r['via'] for r in results if not r.get('server_only'))}.",
        "",
        "Callback time = our whole JACK process callback (port buffers -> chain -> ports), as a fraction of the period.",
        "",
        ("| preset | period | chain | callbacks | median | p99 | p99.9 | max | overruns | xruns | chain latency "
         "| load avg start / end |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per_ms = 1000 * r["period"] / RATE
        la = r["loadavg"]
        if r.get("server_only"):
            lines.append(f"| {r['preset']} | {r['period']} ({per_ms:.2f} ms) | — | — | — | — | — | — | — | "
                         f"{r['xruns']} | — | {la[0][0]:.2f} / {la[1][0]:.2f} |")
            continue
        f = r["load"]
        u = r["us"]
        lines.append(
            f"| {r['preset']} | {r['period']} ({per_ms:.2f} ms) | {'mono' if r.get('channels', 2) == 1 else 'stereo'} | {r['callbacks']} | "
            f"{100 * f['median']:.1f} % ({u['median']:.0f} us) | "
            f"{100 * f['p99']:.1f} % ({u['p99']:.0f} us) | {100 * f['p999']:.1f} % ({u['p999']:.0f} us) | "
            f"{100 * f['max']:.1f} % ({u['max']:.0f} us) | {r['overruns']} | {r['xruns']} | "
            f"{r['latency']['chain_samples']} samples ({r['latency']['chain_ms']:.2f} ms) | "
            f"{la[0][0]:.2f} / {la[1][0]:.2f} |")
    lines += ["", "Goal: 0 xruns and p99.9 <= 50 % of the period at 256.", ""]
    for r in (r for r in results if not r.get("server_only")):
        ok = r["xruns"] == 0 and r["load"]["p999"] <= 0.5
        la = r["loadavg"]
        lines.append(f"- {r['preset']}, period {r['period']}, {'mono' if r.get('channels', 2) == 1 else 'stereo'}: "
                     f"p99.9 {100 * r['load']['p999']:.1f} % of the period, {r['xruns']} xruns, "
                     f"{r['overruns']} overruns, {r['errors']} callback errors -> "
                     f"{'meets' if ok else 'does not meet'} the 256-sample goal's bar; host load average "
                     f"{la[0][0]:.2f} at start, {la[1][0]:.2f} at end (this machine is shared); process nice "
                     f"{r.get('nice', 0)}, real-time threads: {', '.join(r.get('rt_threads', [])) or 'none'}.")
    lines += ["", "xruns are the JACK server's notifications (any client in the graph, including the player); "
              "overruns are callbacks of ours that took longer than the period."]
    if any(r.get("server_only") for r in results):
        lines.append("`(server only)`: the same jackd with no audio client (no chain, no player, no OSC), only a "
                     "listener counting xrun notifications: the server's own floor on this machine.")
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--_player":
        return player_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="measured minutes per period size")
    ap.add_argument("--periods", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--preset", nargs="+", default=None,
                    help="default: the heaviest shipped preset; several run in turn (one row each)")
    ap.add_argument("--rounds", type=int, default=1, help="run every (period, channels, preset) this many times")
    ap.add_argument("--server-floor", action="store_true",
                    help="in every round and period, also run the bare server (no audio client) and count its xruns")
    ap.add_argument("--channels", type=int, nargs="+", default=[2], choices=[1, 2],
                    help="chain channels: 1 = mono (in_1 feeds it, both outputs get it), 2 = stereo")
    ap.add_argument("--rate-hz", type=float, default=50.0, help="parameter messages per second")
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "live.md"))
    a = ap.parse_args(argv)
    if shutil.which("jackd") is None:
        print("benchmarks/live.py: jackd not installed (apt install jackd2)", file=sys.stderr)
        return 1
    if a.preset:
        presets, costs = a.preset, {}
    else:
        heaviest, costs = heaviest_preset()
        presets = [heaviest]
    print(f"presets {presets} (offline per-block median at 256: {costs})", flush=True)
    cmd = " ".join([Path(sys.executable).relative_to(REPO).as_posix() if Path(sys.executable).is_relative_to(REPO)
                    else sys.executable, "benchmarks/live.py", *sys.argv[1:]])
    nice = os.nice(0)
    results = []

    def save():  # after every row, so that a run stopped part-way keeps the rows it measured
        if any(not r.get("server_only") for r in results):
            write_md(Path(a.out), presets, costs, results, a.minutes, a.settle, a.rate_hz,
                     (f"nice -n {nice} " if nice else "") + cmd)

    for _, per, ch, preset in [(k, per, ch, p) for k in range(a.rounds) for per in a.periods for ch in a.channels
                               for p in presets]:
        if a.server_floor and ch == a.channels[0] and preset == presets[0]:
            r = run_server_only(per, a.minutes * 60, a.settle)
            print(f"server only, period {per}: xruns {r['xruns']}", flush=True)
            results.append(r)
            save()
        r = run_period(preset, per, a.minutes * 60, a.settle, a.rate_hz, ch)
        print(f"{preset}, period {per}, {ch} ch: median {100 * r['load']['median']:.1f} %, p99 {100 * r['load']['p99']:.1f} %, "
              f"p99.9 {100 * r['load']['p999']:.1f} %, max {100 * r['load']['max']:.1f} % of the period; "
              f"xruns {r['xruns']}, overruns {r['overruns']}, callbacks {r['callbacks']}", flush=True)
        results.append(r)
        save()
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
