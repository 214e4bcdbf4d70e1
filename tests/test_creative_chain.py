"""All creative stages together, in both STFT configs, and creative presets swapped live."""

import numpy as np
import pytest
from stage_testlib import at_samples, make_section, run, signal_for
from resculpt.plugin_host.chain import Chain

ALL = ["freeze", "sgate", "blur", "xmask", "lfo"]
PARAMS = {"freeze.mix": 0.5, "freeze.crossfade_ms": 20.0, "sgate.threshold_db": -50.0, "blur.time_ms": 60.0,
          "xmask.depth": 0.5, "lfo.depth": 0.5, "lfo.spread_cycles": -1.0}
EVENTS = [(0.05, {"freeze.hold": 1}), (0.15, {"spectral.delta": 1}), (0.22, {"freeze.hold": 0})]


@pytest.mark.parametrize("stft", ["default", "low-latency"])
@pytest.mark.parametrize("block", [1, 65, "random"])
def test_all_creative_stages_in_one_section_stream_like_offline(stft, block):
    """Five creative stages chained in one STFT (either config), hold and delta toggled mid-stream:
    any block partition gives the one-call render bit for bit."""
    events = at_samples(EVENTS, 48000)
    x = signal_for(48000, 2)
    rig = make_section(ALL, 48000, 2, PARAMS, stft=stft)
    init = rig.table.targets()
    ref = run(rig, x, "whole", events)
    rig.restart(init)
    np.testing.assert_array_equal(run(rig, x, block, events), ref)
    assert np.isfinite(ref).all()


def test_creative_presets_swap_live_without_errors_or_nonfinite_output():
    """Loading each creative preset in turn while streaming (engines built off the audio path and
    crossfaded) keeps the output finite and the chain running."""
    names = ["spectral-freeze", "spectral-blur", "spectral-gate-tilt", "mask-transfer", "rhythmic-mask",
             "gate-residue"]
    ch = Chain.from_preset("clean", 48000, 2, 256)
    x = signal_for(48000, 2, seconds=2.0)
    out = np.zeros_like(x)
    k = 0
    for i in range(0, x.shape[1], 256):
        if i % (256 * 30) == 0 and k < len(names):
            ch.load_preset(names[k])
            k += 1
        blk = x[:, i : i + 256].copy()
        ch.process(blk)
        out[:, i : i + 256] = blk
    assert k == len(names) and ch.stats.swaps >= len(names)
    assert np.isfinite(out).all() and np.abs(out).max() < 4.0
