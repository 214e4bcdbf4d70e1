"""LV2 plugin instances in one Ardour session (not a CI test): Ardour's DSP load and xruns, and run() time.

For each instance count (default 0, 1, 2, 4) it builds resculpt.lv2 into a temporary LV2_PATH, starts a
private JACK server on JACK's dummy driver (`jackd -n <name> -d dummy -r 48000 -p --period`, 1024 samples
by default), creates a headless Ardour 7 session (ardour7-lua) on Ardour's JACK backend with that many
stereo tracks, each with Resculpt on --preset, lets it settle, then samples once a second for --seconds
AudioEngine:get_dsp_load() (percent of the period spent processing, Ardour's own meter) and
Session:get_xrun_count(). Ardour counts an xrun each time its audio backend reports one; JACK reports one
when a client has not finished its period by the deadline. Ardour's own dummy backend reports none (its
process loop has no deadline: an overlong cycle only delays the next one), hence JACK's dummy driver.

Inside the plugin it also times every Bridge.run call (wall clock and the calling thread's CPU time,
through a sitecustomize module on the embedded interpreter's PYTHONPATH): wall time above CPU time is time
the audio thread spent waiting (preempted by other processes, or for the GIL held by another instance).

Sanity check first: one instance on a --check-period too short for it (64 samples = 1.33 ms; the periods in
which the plugin computes spectral frames take longer) must produce xruns, or the counter does not count and
the benchmark stops. Writes
benchmarks/results/lv2_ardour.md. The machine's other load shows in the figures: report them with it.

    .venv/bin/python benchmarks/lv2_ardour.py
    .venv/bin/python benchmarks/lv2_ardour.py --instances 1 2 --seconds 10 --preset broadcast-voice
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import statistics
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from resculpt.plugin_host.lv2 import ports
from resculpt.plugin_host.lv2.build import build

RESULTS = Path(__file__).resolve().parent / "results" / "lv2_ardour.md"
_SESSIONS = itertools.count()

SCRIPT = """
assert(AudioEngine:set_backend("JACK", "", ""))  -- the server named by $JACK_DEFAULT_SERVER
create_session(arg[1], arg[2], 48000)
local n, preset, seconds = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
for i = 1, n do
  local tr = Session:new_audio_track(2, 2, nil, 1, "t" .. i, ARDOUR.PresentationInfo.max_order,
                                     ARDOUR.TrackMode.Normal, true):front()
  local proc = ARDOUR.LuaAPI.new_plugin(Session, arg[6], ARDOUR.PluginType.LV2, "")
  assert(not proc:isnil(), "plugin not found")
  assert(tr:add_processor_by_index(proc, 0, nil, true) == 0)
  assert(ARDOUR.LuaAPI.set_processor_param(proc, arg[7], preset))
end
ARDOUR.LuaAPI.usleep(5000000)  -- presets built, first cycles done
print("PERIOD " .. Session:get_block_size())
print("XRUNS " .. Session:get_xrun_count())
for s = 1, seconds do
  ARDOUR.LuaAPI.usleep(1000000)
  print("LOAD " .. AudioEngine:get_dsp_load())
  print("XRUNS " .. Session:get_xrun_count())
end
close_session()
"""


# Loaded by the plugin's interpreter (sitecustomize on PYTHONPATH): times Bridge.run after the first
# 5 s of calls (start-up, preset builds) and appends "wall cpu" lines per call to $RESCULPT_BENCH_TIMES
# (line-buffered: the embedded interpreter is never finalised, so nothing is flushed at exit).
TIMER = """
import os, time
from resculpt.plugin_host.lv2 import bridge
_run, _out, _t_start = bridge.Bridge.run, open(os.environ["RESCULPT_BENCH_TIMES"], "a", buffering=1), time.monotonic()
def run(self):
    t0, c0 = time.perf_counter(), time.thread_time()
    _run(self)
    if time.monotonic() - _t_start > 5.0:
        _out.write(f"{time.perf_counter() - t0:.6f} {time.thread_time() - c0:.6f}\\n")
bridge.Bridge.run = run
"""


def _pct(v: list[float], q: float) -> float:
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def measure(lv2_path: Path, n: int, preset: str, seconds: int, period: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "bench.lua").write_text(SCRIPT)
        (t / "hook").mkdir()
        (t / "hook" / "sitecustomize.py").write_text(TIMER)
        times = t / "times.txt"
        times.touch()
        server = f"resculpt-bench-{os.getpid()}-{n}-{period}-{next(_SESSIONS)}"
        env = {**os.environ, "LV2_PATH": str(lv2_path), "HOME": tmp, "PYTHONPATH": str(t / "hook"),
               "RESCULPT_BENCH_TIMES": str(times), "JACK_DEFAULT_SERVER": server}
        jack_log = (t / "jackd.log").open("w")
        jackd = subprocess.Popen(["jackd", "-n", server, "-d", "dummy", "-r", "48000", "-p", str(period)],
                                 env=env, stdout=jack_log, stderr=subprocess.STDOUT)
        try:
            subprocess.run(["jack_wait", "-s", server, "-w", "-t", "10"], env=env, check=True,
                           capture_output=True, timeout=15)
            r = subprocess.run(["ardour7-lua", str(t / "bench.lua"), str(t / "s"), "s", str(n),
                                str(ports.PRESETS.index(preset)), str(seconds), ports.URI,
                                str(ports.PRESET_PORT - ports.LATENCY_PORT)],
                               env=env, capture_output=True, text=True, timeout=120 + 2 * seconds, check=False)
        finally:
            jackd_rc = jackd.poll()  # not None: the server exited on its own during the session
            jackd.terminate()
            jackd.wait(timeout=10)
            jack_log.close()
        out_jack = (t / "jackd.log").read_text()
        calls = [tuple(map(float, line.split())) for line in times.read_text().splitlines() if line.strip()]
    out = r.stdout + r.stderr
    loads = [float(v) for v in re.findall(r"^LOAD ([\d.]+)", out, re.MULTILINE)]
    xruns = [int(v) for v in re.findall(r"^XRUNS (\d+)", out, re.MULTILINE)]
    log = f"{out}\n--- jackd (exit status {jackd_rc} before the end of the session):\n{out_jack}"
    if jackd_rc is not None:  # the server went away under Ardour: nothing of this session is a measurement
        return {"n": n, "halted": True, "log": log}
    if r.returncode != 0 or not loads or len(xruns) != len(loads) + 1:
        raise RuntimeError(f"ardour7-lua failed ({r.returncode}):\n{out[-2000:]}")
    m = {"n": n, "period": int(re.search(r"^PERIOD (\d+)", out, re.MULTILINE).group(1)),
         "median": statistics.median(loads), "max": max(loads), "calls": len(calls),
         # counted over the sampled seconds only: start-up and preset builds are not in the window
         "xruns": xruns[-1] - xruns[0], "xruns_startup": xruns[0],
         # Ardour's engine not running (it logs "JACK HALTED"): the meter reads 0 and no run() is called
         "halted": "JACK HALTED" in out or max(loads) == 0.0 or (n > 0 and not calls),
         "log": log}
    if calls:
        wall, cpu = [c[0] * 1e3 for c in calls], [c[1] * 1e3 for c in calls]
        m.update(wall_med=_pct(wall, 0.5), wall_p99=_pct(wall, 0.99), cpu_med=_pct(cpu, 0.5), cpu_p99=_pct(cpu, 0.99))
    return m


def _measure_running(lv2_path: Path, n: int, preset: str, seconds: int, period: int, tries: int = 3) -> dict:
    """measure(), repeated while Ardour's engine did not run; m["halts"] counts the discarded sessions."""
    for halts in range(tries):
        try:
            m = measure(lv2_path, n, preset, seconds, period)
        except RuntimeError as e:  # Ardour could not register its ports with the server: also a lost server
            if "JACK" not in str(e) and "register port" not in str(e):
                raise
            m = {"halted": True, "log": str(e)}
        if not m["halted"]:
            return {**m, "halts": halts}
        print(f"{n} instance(s), {period}-sample period: Ardour's engine stopped running; Ardour's and jackd's "
              "output end:\n" + "\n".join(m["log"].splitlines()[-25:]), flush=True)
    raise RuntimeError(f"Ardour's engine stopped in {tries} sessions of {n} instance(s) on a {period}-sample period")


def _describe(m: dict, seconds: int) -> str:
    return (f"{m['n']} instance(s), {m['period']}-sample period: {m['xruns']} xruns in {seconds} s "
            f"({m['xruns_startup']} during start-up; {m['halts']} halted sessions discarded), DSP load median {m['median']:.1f} %, max {m['max']:.1f} %"
            + (f"; per run() wall {m['wall_med']:.2f}/{m['wall_p99']:.2f} ms, "
               f"CPU {m['cpu_med']:.2f}/{m['cpu_p99']:.2f} ms (median/p99)" if m["calls"] else ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, nargs="+", default=[0, 1, 2, 4])
    ap.add_argument("--preset", default="denoise-live", choices=ports.PRESETS)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--period", type=int, nargs="+", default=[1024], help="JACK periods in samples at 48 kHz")
    ap.add_argument("--check-period", type=int, default=64,
                    help="period for the sanity check: short enough that one instance overruns it")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as lv2:
        build(lv2)
        check = _measure_running(Path(lv2), 1, a.preset, a.seconds, a.check_period)
        print("check: " + _describe(check, a.seconds), flush=True)
        if check["xruns"] == 0:
            raise RuntimeError(f"no xrun counted with one instance on a {a.check_period}-sample period: "
                               "the xrun count is not counting")
        rows = []
        for period in a.period:
            for n in a.instances:
                m = _measure_running(Path(lv2), n, a.preset, a.seconds, period)
                rows.append(m)
                print(_describe(m, a.seconds), flush=True)
    periods = ", ".join(f"{p} samples = {p / 48:.2f} ms" for p in a.period)
    lines = [
        "# Resculpt LV2 instances in one Ardour session",
        "",
        (f"`python benchmarks/lv2_ardour.py --preset {a.preset} --seconds {a.seconds} --period {' '.join(map(str, a.period))}` on "
         f"{platform.node()} ({os.cpu_count()} CPUs, shared with other jobs; load average "
         f"{os.getloadavg()[0]:.1f} at the end), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Ardour 7 headless "
         "(ardour7-lua) on its JACK backend, a private `jackd -d dummy -r 48000` server. DSP load: Ardour's "
         "meter, percent of the period spent processing (>= 100 % is an overrun), sampled once a second. "
         f"xruns: Ardour's Session:get_xrun_count() over the {a.seconds} sampled seconds (JACK reports one "
         "when a client misses the period's deadline); start-up (session creation, preset builds, 5 s of "
         "settling) is not counted."),
        "",
        ("Per run(): one instance's call into Python for one period, wall clock and that thread's CPU time, "
         f"median / p99 over every call of every instance after the first 5 s; periods: {periods}."),
        "",
        (f"Sanity check of the counter: 1 instance on a {check['period']}-sample period "
         f"({check['period'] / 48:.2f} ms; run() CPU median / p99 {check['cpu_med']:.2f} / {check['cpu_p99']:.2f} ms): "
         f"{check['xruns']} xruns in {a.seconds} s."),
        "",
        ("Halted: sessions discarded and rerun because Ardour's engine stopped (Ardour logged \"JACK HALTED: "
         "JACK server has been closed\", or the private jackd exited during the session; the meter then reads 0 "
         "and no run() is called)."),
        "",
        ("| instances | period | xruns | halted | DSP load median | DSP load max | run() wall median / p99 | "
         "run() CPU median / p99 |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        per_run = (f"{m['wall_med']:.2f} / {m['wall_p99']:.2f} ms | {m['cpu_med']:.2f} / {m['cpu_p99']:.2f} ms"
                   if m["calls"] else "- | -")
        lines.append(f"| {m['n']} | {m['period']} | {m['xruns']} | {m['halts']} | {m['median']:.1f} % | {m['max']:.1f} % | "
                     f"{per_run} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
