"""Live-mode pieces that need no audio server: the port bridge, stats, latency report, CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.live import LatencyReport, LiveStats, PortBridge, status_line

REPO = Path(__file__).resolve().parent.parent
RESCULPT = [sys.executable, "-m", "resculpt.cli"]


def _core(preset="clean", channels=2, block=256):
    ch = Chain.from_preset(preset, sample_rate=48000, channels=channels, max_block=block)
    core = PortBridge(ch)
    core.prepare(block)
    return ch, core


def test_live_core_streams_exactly_like_the_offline_chain_for_any_callback_size():
    """Port buffers copied through the live core in callbacks of the period size, of odd sizes and of
    sizes above the chain's max_block (chunked) give the offline chain output exactly."""
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal((2, 48000))).astype(np.float32)
    ref = Chain.from_preset("podcast-clean", sample_rate=48000, channels=2, max_block=4096)
    lat = ref.latency_samples
    want = ref(np.concatenate([x, np.zeros((2, lat), np.float32)], axis=1))
    ch, core = _core("podcast-clean", block=256)
    out = np.zeros((2, x.shape[1] + lat), np.float32)
    xin = np.concatenate([x, np.zeros((2, lat), np.float32)], axis=1)
    sizes = [256, 256, 100, 1000, 256, 3, 700]
    i, k = 0, 0
    while i < xin.shape[1]:
        n = min(sizes[k % len(sizes)], xin.shape[1] - i)
        k += 1
        core.run([xin[0, i : i + n], xin[1, i : i + n]], [out[0, i : i + n], out[1, i : i + n]], n)
        i += n
    np.testing.assert_array_equal(out[:, lat:], want[:, : x.shape[1]])


def test_live_core_mono_chain_feeds_both_outputs_and_one_input_feeds_a_stereo_chain():
    """Mono chain: in_1 -> chain -> out_1 and out_2. Stereo chain with one input buffer: both channels."""
    x = np.linspace(-0.5, 0.5, 128, dtype=np.float32)
    ch, core = _core("clean", channels=1, block=128)
    o = [np.zeros(128, np.float32), np.zeros(128, np.float32)]
    core.run([x, np.zeros(128, np.float32)], o, 128)
    np.testing.assert_array_equal(o[0], x)
    np.testing.assert_array_equal(o[1], x)
    ch, core = _core("clean", channels=2, block=128)
    o = [np.zeros(128, np.float32), np.zeros(128, np.float32)]
    core.run([x], o, 128)
    np.testing.assert_array_equal(o[1], x)


def test_live_callback_path_allocates_no_audio_buffers():
    """The live layer (port copy in, chain, copy out, timing record) allocates no block-sized array: over
    2000 callbacks of 1024 stereo samples (8 KB of audio each) the traced peak stays under 2 KB and
    nothing accumulates. Measured on the `clean` chain so only the live layer and host are counted."""
    ch, core = _core("clean", block=1024)
    st = LiveStats(1 << 12)
    st.period_s = 1024 / 48000
    ins = [np.full(1024, 0.1, np.float32), np.full(1024, -0.1, np.float32)]
    outs = [np.zeros(1024, np.float32), np.zeros(1024, np.float32)]
    for _ in range(100):
        core.run(ins, outs, 1024)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(2000):
            core.run(ins, outs, 1024)
            st.record(1e-4, 1024)
        cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 2048, f"peak {peak - base} bytes above baseline"
    assert cur - base < 1024, f"{cur - base} bytes accumulated"


def test_live_stats_percentiles_and_counters_from_the_preallocated_ring():
    """Percentiles come from the ring (the last n when it wrapped), overruns count callbacks longer than
    the period, and snapshot() carries the documented keys for OSC feedback."""
    st = LiveStats(ring_size=1000)  # rounded up to 1024
    assert st.cb_time.size == 1024
    st.period_s = 1e-3
    for k in range(3000):
        st.record(2e-3 if k == 2999 else 1e-4 * (1 + k % 10), 64)
    assert st.callbacks == 3000 and st.frames == 3000 * 64 and st.overruns == 1
    p = st.percentiles()
    assert p["n"] == 1024 and abs(p["us"]["median"] - 550) < 60 and p["us"]["max"] == pytest.approx(2000)
    assert p["load"]["max"] == pytest.approx(2.0)
    assert st.percentiles(last=1)["us"]["median"] == pytest.approx(2000)
    st.latency = LatencyReport(48000, 256, 959, 256, 512, "jack", True)
    snap = st.snapshot()
    for key in ("callbacks", "xruns", "overruns", "reconnects", "errors", "cb_median_us", "cb_p99_us", "cb_p999_us",
                "cb_max_us", "load_p99", "latency_samples", "latency_ms", "chain_latency_samples", "state"):
        assert key in snap
    assert snap["latency_samples"] == 959 + 768
    assert "xruns 0" in status_line(st) and "latency 1727 smp" in status_line(st)


def test_latency_report_states_samples_and_ms():
    """The latency report adds chain + input + output buffering and gives ms at the rate."""
    r = LatencyReport(48000, 128, 959, 128, 256, "jack", True)
    d = r.as_dict()
    assert d["total_samples"] == 1343 and d["total_ms"] == pytest.approx(1343 / 48)
    assert "1343 samples (27.98 ms)" in r.describe() and "hosts compensate" in r.describe()


def _run(args, env=None):
    return subprocess.run(RESCULPT + args, cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_live_cli_says_clearly_when_no_jack_server_runs():
    """No JACK server: exit 1 with a message that says so and how to start one, no traceback."""
    r = _run(["live", "--no-osc", "--duration", "1"], env={"JACK_DEFAULT_SERVER": f"rsx-none-{os.getpid()}"})
    assert r.returncode == 1
    assert "no JACK server running" in r.stderr and "jackd" in r.stderr and "Traceback" not in r.stderr
    r = _run(["devices", "--backend", "jack"], env={"JACK_DEFAULT_SERVER": f"rsx-none-{os.getpid()}"})
    assert r.returncode == 1 and "no JACK server running" in r.stdout


def test_live_cli_rejects_unsupported_block_sizes_and_rates_before_opening_anything():
    """--block outside 16..8192 or a rate live mode does not run is a usage error (exit 2), with the range."""
    r = _run(["live", "--block", "100000"])
    assert r.returncode == 2 and "unsupported block size 100000" in r.stderr
    r = _run(["live", "--rate", "12345"])
    assert r.returncode == 2 and "unsupported rate 12345" in r.stderr


def test_live_cli_refuses_a_missing_or_delta_input_profile_before_opening_audio(tmp_path):
    """--input-profile that does not exist, or a delta (a description), ends with one clear message and exit 1
    before any audio backend is touched (no JACK server runs here)."""
    from resculpt.dsp.descriptors import describe

    env = {"JACK_DEFAULT_SERVER": f"rsx-none-{os.getpid()}"}
    r = _run(["live", "--no-osc", "--duration", "1", "--input-profile", str(tmp_path / "nope.json")], env=env)
    assert r.returncode == 1 and "nope.json: file not found" in r.stderr and "Traceback" not in r.stderr
    describe("more bass").save(tmp_path / "delta.json")
    r = _run(["live", "--no-osc", "--duration", "1", "--input-profile", str(tmp_path / "delta.json")], env=env)
    assert r.returncode == 1 and "not a delta" in r.stderr and "JACK" not in r.stderr, r.stderr


def test_live_cli_portaudio_device_not_found_lists_the_devices():
    """PortAudio with a device name that does not exist: exit 1, 'device not found' and the list."""
    pytest.importorskip("sounddevice")
    r = _run(["live", "--backend", "portaudio", "--input", "no-such-mic-xyz", "--no-osc", "--duration", "1"])
    assert r.returncode == 1, r.stderr
    assert "device not found" in r.stderr and "no-such-mic-xyz" in r.stderr and "Traceback" not in r.stderr


def test_osc_feedback_carries_live_callback_health_under_live():
    """With LiveStats registered as chain.stats.extra["live"] (what LiveSession does), OSC subscribers get
    /resculpt/live (xruns, overruns, callback p99 ms, p99 load, max ms, reconnects) and /resculpt/latency
    carries the total latency; without it no /resculpt/live is sent."""
    from osc_testlib import Client, running_server

    st = LiveStats(1 << 10)
    st.period_s = 256 / 48000
    for k in range(500):
        st.record(5e-4 if k % 20 else 1e-3, 256)  # 5 % slow: p99 = 1 ms
    st.xruns, st.reconnects = 3, 1
    with running_server("broadcast-voice", feed=False) as (chain, feeder, srv):
        st.latency = LatencyReport(48000, 256, int(chain.latency_samples), 256, 512, "jack", True)
        chain.stats.extra["live"] = st
        c = Client(srv.port)
        c.send("/resculpt/subscribe", c.port)
        live = c.wait_for("/resculpt/live")
        assert live is not None
        xr, ov, p99_ms, load, max_ms, rc = live
        assert (xr, ov, rc) == (3, 0, 1)
        assert p99_ms == pytest.approx(1.0, rel=1e-3) and max_ms == pytest.approx(1.0, rel=1e-3)
        assert load == pytest.approx(1e-3 / st.period_s, rel=1e-3)
        lat = c.wait_for("/resculpt/latency")
        assert lat[2] == chain.latency_samples + 768
        c.close()
