"""LV2 plugin instances in one Ardour session (not a CI test): Ardour's DSP load on its dummy backend.

For each instance count (default 0, 1, 2, 4) it builds resculpt.lv2 into a temporary LV2_PATH, creates a
headless Ardour 7 session (ardour7-lua, dummy backend, 48 kHz, Ardour's default 1024-sample period) with
that many stereo tracks, each with Resculpt on --preset, lets it settle, then samples
AudioEngine:get_dsp_load() (percent of the period spent processing, Ardour's own meter) once a second for
--seconds. Writes benchmarks/results/lv2_ardour.md.

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


def measure(lv2_path: Path, n: int, preset: str, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "bench.lua").write_text(SCRIPT)
        env = {**os.environ, "LV2_PATH": str(lv2_path), "HOME": tmp}
        r = subprocess.run(["ardour7-lua", str(t / "bench.lua"), str(t / "s"), "s", str(n),
                            str(ports.PRESETS.index(preset)), str(seconds), ports.URI,
                            str(ports.PRESET_PORT - ports.LATENCY_PORT)],
                           env=env, capture_output=True, text=True, timeout=120 + 2 * seconds)
    out = r.stdout + r.stderr
    loads = [float(v) for v in re.findall(r"^LOAD ([\d.]+)", out, re.MULTILINE)]
    if r.returncode != 0 or not loads:
        raise RuntimeError(f"ardour7-lua failed ({r.returncode}):\n{out[-2000:]}")
    period = int(re.search(r"^PERIOD (\d+)", out, re.MULTILINE).group(1))
    return {"n": n, "period": period, "median": statistics.median(loads), "max": max(loads), "samples": len(loads)}


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
                  f"{m['period']}-sample period", flush=True)
    lines = [
        "# Resculpt LV2 instances in one Ardour session",
        "",
        f"`python benchmarks/lv2_ardour.py --preset {a.preset} --seconds {a.seconds}` on {platform.node()} "
        f"({os.cpu_count()} CPUs, shared; load average {os.getloadavg()[0]:.1f} at the end), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Ardour 7 headless "
        "(ardour7-lua), dummy backend, 48 kHz. DSP load: Ardour's meter, percent of the period spent "
        "processing (>= 100 % is an overrun), sampled once a second.",
        "",
        "| instances | period | DSP load median | DSP load max |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m['n']} | {m['period']} | {m['median']:.1f} % | {m['max']:.1f} % |" for m in rows]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
