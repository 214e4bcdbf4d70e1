"""Delta listen (``spectral.delta``, implemented once in dsp/stft.py:StreamingSTFT)."""

import numpy as np
import pytest
from stage_testlib import Rig, make_section, run, signal_for
from resculpt.dsp.stft import DELTA_XFADE_MS, SpectralStage, StreamingSTFT
from resculpt.plugin_host.chain import Chain

# A section that removes a lot: hard tilted gate, chopping LFO, blur.
SLOTS = ["sgate", "lfo", "blur"]
PARAMS = {"sgate.threshold_db": -30.0, "sgate.tilt_db_oct": 6.0, "sgate.range_db": 40.0,
          "lfo.rate_hz": 5.0, "lfo.depth": 0.8, "blur.time_ms": 80.0}


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [16000, 48000])
def test_delta_output_plus_normal_output_equals_dry(rate, channels):
    """Chain render with delta on + the same render with delta off == the input (latency-trimmed)
    to float32 rounding (max error < 1e-5 of a 0.3-peak signal): delta is exactly what was removed."""
    x = signal_for(rate, channels, seconds=0.6)
    ch = Chain({"spectral": SLOTS}, rate, channels, 1024, params=PARAMS)
    normal = ch(x)
    ch.params["spectral.delta"] = 1
    delta = ch(x)
    assert np.sqrt(np.mean(delta ** 2)) > 0.05 * np.sqrt(np.mean(x ** 2)), "the stages removed nothing"
    tail = ch.latency_samples  # the first window is the section's start-up
    np.testing.assert_allclose((normal + delta)[:, tail:], x[:, tail:], atol=1e-5)


class _Delay2(SpectralStage):
    """A look-ahead stage: outputs the spectrum of two frames ago (latency_frames = 2)."""

    name = "delay2"
    latency_frames = 2

    def prepare(self, ctx):
        super().prepare(ctx)
        self._ring = np.zeros((3, ctx.channels, ctx.n_bins), np.complex64)
        self._i = 0

    def reset(self):
        self._ring.fill(0)
        self._i = 0

    def process_frame(self, spec):
        self._ring[self._i] = spec
        self._i = (self._i + 1) % 3
        spec[:] = self._ring[self._i]


def test_delta_dry_copy_is_aligned_with_lookahead_stages():
    """A stage that only delays by its declared look-ahead removes nothing, so the delta output is
    silence: the dry copy is delayed by the same number of frames as the stages' output."""
    from resculpt.dsp.params import ParamTable
    from resculpt.plugin_host import catalog

    table = ParamTable(catalog.all_param_specs())
    table.set("spectral.delta", 1)
    table.prepare(48000)
    sec = StreamingSTFT("default", [_Delay2()], table=table)
    sec.prepare(48000, 4096, 2)
    assert sec.latency_samples == sec.n_fft - 1 + 2 * sec.hop
    x = signal_for(48000, 2)
    y = run(Rig(sec, table), x, 333)
    assert np.abs(y).max() < 1e-5


def test_delta_switch_crossfades_instead_of_clicking():
    """Turning delta on mid-stream ramps the amount linearly over DELTA_XFADE_MS, one step per
    frame, and the output's largest sample step around the switch is no bigger than the largest
    step of the steady normal and delta renders (no discontinuity)."""
    sr = 48000
    x = signal_for(sr, 1, seconds=0.5)
    t_on = int(0.25 * sr) + 77  # not on a hop boundary
    amounts = []
    rig = make_section(SLOTS, sr, 1, PARAMS)
    sec = rig.proc
    sec.stages.append(type("Probe", (SpectralStage,), {
        "process_frame": lambda self, spec: amounts.append(sec.delta_amount)})())
    y = run(rig, x, 128, [(t_on, {"spectral.delta": 1})])[0]
    a = np.array(amounts[1:]) - np.array(amounts[:-1])
    step = sec.hop / (DELTA_XFADE_MS * 1e-3 * sr)
    assert a.min() >= 0 and a.max() <= step + 1e-12
    assert amounts[-1] == 1.0 and 0.0 in amounts
    ramp_frames = sum(1 for v in amounts if 0.0 < v < 1.0)
    assert ramp_frames >= int(DELTA_XFADE_MS / 5.0) - 1
    rig = make_section(SLOTS, sr, 1, PARAMS)
    y_norm = run(rig, x, 128)[0]
    rig = make_section(SLOTS, sr, 1, {**PARAMS, "spectral.delta": 1})
    y_delta = run(rig, x, 128)[0]
    win = slice(t_on - 2000, t_on + 4000)
    steady = max(np.abs(np.diff(y_norm[win])).max(), np.abs(np.diff(y_delta[win])).max())
    assert np.abs(np.diff(y[win])).max() <= 1.05 * steady


def test_delta_without_a_spectral_section_changes_nothing():
    """A chain with no spectral stage ignores spectral.delta (documented: it lives in the section)."""
    x = signal_for(48000, 2)
    ch = Chain({"pre": ["hpf"]}, 48000, 2, 1024, params={"spectral.delta": 1})
    ch2 = Chain({"pre": ["hpf"]}, 48000, 2, 1024)
    np.testing.assert_array_equal(ch(x), ch2(x))
