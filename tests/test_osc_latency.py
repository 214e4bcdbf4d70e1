"""Send -> applied delay of parameter messages at 100 messages/s (goal: <= 2 audio blocks)."""

from __future__ import annotations

import time

import numpy as np
from osc_testlib import Client, running_server


def test_param_messages_reach_the_audio_path_within_two_blocks_at_100_per_second():
    """At 100 msg/s to /resculpt/param/out.gain_db with a real-time feeder (256-sample blocks at
    48 kHz = 5.33 ms), the audio thread picks each value up (its smoothing ramp starts) within
    2 blocks of the send: median and 90th percentile <= 2 blocks (the figures are printed)."""
    with running_server("broadcast-voice", block=256) as (chain, feeder, srv):
        table = chain.params
        i = table.index("out.gain_db")
        period = feeder.period_s
        pending: dict[float, float] = {}
        applied: dict[float, float] = {}

        def on_block(f, out):
            g = float(table._goal[i])  # what the audio thread has taken (ramp target)
            if g in pending and g not in applied:
                applied[g] = time.perf_counter()

        feeder.on_block.append(on_block)
        c = Client(srv.port)
        time.sleep(0.2)
        t_next = time.perf_counter()
        values = [-20.0 + 0.25 * k for k in range(150)]  # exactly representable in float32
        for v in values:
            t_next += 0.01
            while time.perf_counter() < t_next:
                time.sleep(0.0005)
            pending[v] = time.perf_counter()
            c.send("/resculpt/param/out.gain_db", v)
        time.sleep(0.2)
        c.close()
        delays = np.array([(applied[v] - pending[v]) / period for v in values if v in applied])
        lost = len(values) - delays.size
        med, p90, mx = np.median(delays), np.percentile(delays, 90), delays.max()
        print(
            f"\nsend->applied at 100 msg/s, 256-sample blocks ({1e3 * period:.2f} ms): "
            f"median {med:.2f} blocks ({med * period * 1e3:.2f} ms), p90 {p90:.2f}, max {mx:.2f}, "
            f"{lost} not observed"
        )
        assert lost <= 3
        assert med <= 2.0 and p90 <= 2.0
