"""LV2 plugin instances in one Ardour session (not a CI test): Ardour's DSP load on its dummy backend.

For each instance count (default 0, 1, 2, 4) it builds resculpt.lv2 into a temporary LV2_PATH, creates a
headless Ardour 7 session (ardour7-lua, dummy backend, 48 kHz, Ardour's default 1024-sample period) with
that many stereo tracks, each with Resculpt on --preset, lets it settle, then samples
AudioEngine:get_dsp_load() (percent of the period spent processing, Ardour's own meter) once a second for
--seconds. Inside the plugin it also times every Bridge.run call (wall clock and the calling thread's CPU
time, through a sitecustomize module on the embedded interpreter's PYTHONPATH): wall time above CPU time is
time the audio thread spent waiting (preempted by other processes, or for the GIL held by another
instance). Writes benchmarks/results/lv2_ardour.md.

Ardour 7.3's Lua exposes no xrun counter, so xruns are not counted here; a DSP load at or above 100 %
means the period was overrun. The machine's other load shows in the figures: report them with it.

    .venv/bin/python benchmarks/lv2_ardour.py
    .venv/bin/python benchmarks/lv2_ardour.py --instances 1 2 --seconds 10 --preset broadcast-voice
"""

from __future__ import annotations

import argparse
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

SCRIPT = """
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
for s = 1, seconds do
  ARDOUR.LuaAPI.usleep(1000000)
  print("LOAD " .. AudioEngine:get_dsp_load())
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


def measure(lv2_path: Path, n: int, preset: str, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "bench.lua").write_text(SCRIPT)
        (t / "hook").mkdir()
        (t / "hook" / "sitecustomize.py").write_text(TIMER)
        times = t / "times.txt"
        times.touch()
        env = {**os.environ, "LV2_PATH": str(lv2_path), "HOME": tmp, "PYTHONPATH": str(t / "hook"),
               "RESCULPT_BENCH_TIMES": str(times)}
        r = subprocess.run(["ardour7-lua", str(t / "bench.lua"), str(t / "s"), "s", str(n),
                            str(ports.PRESETS.index(preset)), str(seconds), ports.URI,
                            str(ports.PRESET_PORT - ports.LATENCY_PORT)],
                           env=env, capture_output=True, text=True, timeout=120 + 2 * seconds)
        calls = [tuple(map(float, line.split())) for line in times.read_text().splitlines() if line.strip()]
    out = r.stdout + r.stderr
    loads = [float(v) for v in re.findall(r"^LOAD ([\d.]+)", out, re.MULTILINE)]
    if r.returncode != 0 or not loads:
        raise RuntimeError(f"ardour7-lua failed ({r.returncode}):\n{out[-2000:]}")
    period = int(re.search(r"^PERIOD (\d+)", out, re.MULTILINE).group(1))
    m = {"n": n, "period": period, "median": statistics.median(loads), "max": max(loads), "calls": len(calls)}
    if calls:
        wall, cpu = [c[0] * 1e3 for c in calls], [c[1] * 1e3 for c in calls]
        m.update(wall_med=_pct(wall, 0.5), wall_p99=_pct(wall, 0.99), cpu_med=_pct(cpu, 0.5), cpu_p99=_pct(cpu, 0.99))
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, nargs="+", default=[0, 1, 2, 4])
    ap.add_argument("--preset", default="denoise-live", choices=ports.PRESETS)
    ap.add_argument("--seconds", type=int, default=20)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as lv2:
        build(lv2)
        rows = []
        for n in a.instances:
            m = measure(Path(lv2), n, a.preset, a.seconds)
            rows.append(m)
            print(f"{n} instance(s): DSP load median {m['median']:.1f} %, max {m['max']:.1f} % of a "
                  f"{m['period']}-sample period" + (f"; per run() wall {m['wall_med']:.2f}/{m['wall_p99']:.2f} ms, "
                  f"CPU {m['cpu_med']:.2f}/{m['cpu_p99']:.2f} ms (median/p99)" if m["calls"] else ""), flush=True)
    lines = [
        "# Resculpt LV2 instances in one Ardour session",
        "",
        f"`python benchmarks/lv2_ardour.py --preset {a.preset} --seconds {a.seconds}` on {platform.node()} "
        f"({os.cpu_count()} CPUs, shared; load average {os.getloadavg()[0]:.1f} at the end), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Ardour 7 headless "
        "(ardour7-lua), dummy backend, 48 kHz. DSP load: Ardour's meter, percent of the period spent "
        "processing (>= 100 % is an overrun), sampled once a second.",
        "",
        "Per run(): one instance's call into Python for one period, wall clock and that thread's CPU time, "
        f"median / p99 over every call of every instance after the first 5 s; the period is "
        f"{rows[0]['period'] / 48:.1f} ms.",
        "",
        "| instances | period | DSP load median | DSP load max | run() wall median / p99 | run() CPU median / p99 |",
        "|---|---|---|---|---|---|",
    ]
    for m in rows:
        per_run = (f"{m['wall_med']:.2f} / {m['wall_p99']:.2f} ms | {m['cpu_med']:.2f} / {m['cpu_p99']:.2f} ms"
                   if m["calls"] else "- | -")
        lines.append(f"| {m['n']} | {m['period']} | {m['median']:.1f} % | {m['max']:.1f} % | {per_run} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
