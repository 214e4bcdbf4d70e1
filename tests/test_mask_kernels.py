"""The mask stage's compiled loops (models/mask/kernels.py, numba, extra "fast") against its numpy code.

The stage takes the loops when numba is installed; the numpy code is the fallback and stays the reference: both
must give the same output, to float32 rounding, on real speech, at every rate, channel layout, control setting and
bundle kind (taps, look-ahead). Streaming == offline, reset, NaN, allocation and latency of whichever path the
environment runs are the conformance suite's (tests/test_stage_conformance.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from resculpt.dsp.stft import StreamingSTFT
from resculpt.models.mask import kernels
from resculpt.models.mask import stage as mstage
from stage_testlib import make_section, run, speech_clip
from test_mask_stage import _table

needs_numba = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed (extra 'fast') or RESCULPT_NO_KERNELS set")


def _speech(sr: int, channels: int, seconds: float = 3.0) -> np.ndarray:
    return speech_clip(sr, channels, seconds)


def _error_db(y: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(np.mean((y - ref) ** 2) / np.mean(ref**2) + 1e-30))


CASES = [  # slot, rate, channels, STFT, linked, controls
    ("mask", 48000, 1, "low-latency", True, {"mask.reduction_db": 50.0, "mask.release_ms": 5.0}),  # the live preset
    ("mask", 48000, 2, "low-latency", False, {"mask.reduction_db": 30.0, "mask.mix": 0.7, "mask.contrast": 1.5,
                                              "mask.low_hz": 200.0, "mask.high_hz": 8000.0}),
    ("mask", 48000, 2, "low-latency", True, {"mask.mode": "enhance", "mask.attack_ms": 20.0}),
    ("mask", 16000, 1, "low-latency", True, {"mask.mode": "creative"}),
    ("mask", 44100, 1, "default", True, {}),  # fine grid off the FFT bins: the fine features stay in numpy
    ("mask_hq", 48000, 2, "default", True, {"mask_hq.reduction_db": 40.0}),  # two frames of look-ahead
]


@needs_numba
@pytest.mark.parametrize("slot,sr,channels,stft,linked,params", CASES)
def test_mask_compiled_loops_give_the_numpy_codes_output_to_float32_rounding(slot, sr, channels, stft, linked, params,
                                                                              monkeypatch):
    """Live and high-quality tiers, 16/44.1/48 kHz, mono, linked and unlinked stereo, every mode, mix, contrast and
    band limits: the output with the loops is within -120 dB (error power re signal power) of the numpy code's, in
    480-sample blocks (one model call per 10 ms block's two frames) on real speech."""
    ys = []
    for compiled in (True, False):
        monkeypatch.setattr(mstage.MaskStage, "use_kernels", compiled)
        rig = make_section([slot], sr, channels, params, stft=stft, linked=linked)
        assert rig.proc.stages[0]._kern is compiled
        ys.append(run(rig, _speech(sr, channels), 480))
    assert np.abs(ys[1]).max() > 1e-3
    assert _error_db(*ys) < -120.0


@needs_numba
@pytest.mark.parametrize("stft", ["low-latency", "default"])
def test_mask_compiled_loops_hold_the_hf_floor_through_digital_silence_as_the_numpy_code(stft, monkeypatch):
    """Unlinked stereo speech with a silent lead-in on both channels and a 50 ms dropout on one (so one row is
    silent while the other is not), enhance mode, where the HF floor decides the most: the same output to -120 dB."""
    sr = 48000
    x = _speech(sr, 2)
    x[:, : sr // 4] = 0.0
    x[0, sr : sr + sr // 20] = 0.0
    ys = []
    for compiled in (True, False):
        monkeypatch.setattr(mstage.MaskStage, "use_kernels", compiled)
        rig = make_section(["mask"], sr, 2, {"mask.mode": "enhance"}, stft=stft, linked=False)
        ys.append(run(rig, x, 480))
    assert np.abs(ys[1]).max() > 1e-3
    assert _error_db(*ys) < -120.0


@needs_numba
@pytest.mark.parametrize("ch,linked", [(1, True), (2, False)])
def test_mask_compiled_loops_run_the_deep_filter_with_look_ahead_as_the_numpy_code(df_mask_bundle, ch, linked,
                                                                                     monkeypatch):
    """A bundle with taps and two frames of look-ahead (the taps' history takes the newest spectrum, the gains the
    one two frames back): the same output to -120 dB, frame by frame and in blocks of frames, and the taps act (the
    output without them differs by far more)."""
    sr = 48000
    x = _speech(sr, ch, 1.0)

    def render(compiled, block, df=True):
        monkeypatch.setattr(mstage.MaskStage, "use_kernels", compiled)
        st = mstage.HighQualityMask(_table(**{"mask_hq.reduction_db": 30.0}), df_mask_bundle)
        s = StreamingSTFT("low-latency", [st], linked=linked)
        s.prepare(sr, 2048, ch)
        assert st._kern is compiled and st._df_on
        if not df:
            st._df_on = False
        y = np.zeros_like(x)
        for i in range(0, x.shape[1], block):
            y[:, i : i + block] = s.process(x[:, i : i + block].copy())
        return y

    for block in (240, 2048):
        ref = render(False, block)
        assert _error_db(render(True, block), ref) < -120.0
    assert _error_db(render(True, 240, df=False), ref) > -60.0


def test_mask_stage_runs_the_numpy_code_without_numba(monkeypatch):
    """Without numba (or with RESCULPT_NO_KERNELS=1) the stage runs its numpy code and still processes."""
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    rig = make_section(["mask"], 48000, 1, {"mask.reduction_db": 30.0}, stft="low-latency")
    st = rig.proc.stages[0]
    assert not st._kern
    y = run(rig, _speech(48000, 1, 0.5), 128)
    assert np.isfinite(y).all() and np.abs(y).max() > 1e-3


def test_sparse_pairs_names_each_bins_two_bands_and_refuses_three():
    """The analysis/synthesis matrices of the 32-band layout have at most two bands per bin, read back exactly;
    a matrix with three on a bin gets None (the stage then keeps its numpy code)."""
    from resculpt.dsp.bands import BandMap

    bm = BandMap(48000, 480)
    for mat in (bm.synthesis, bm.analysis.T):
        j0, j1, w0, w1 = kernels.sparse_pairs(mat)
        back = np.zeros_like(mat)
        np.add.at(back, (np.arange(mat.shape[0]), j0), w0)
        np.add.at(back, (np.arange(mat.shape[0]), j1), w1)
        np.testing.assert_array_equal(back, mat)
    three = np.zeros((2, 4), np.float32)
    three[1, :3] = 1.0
    assert kernels.sparse_pairs(three) is None
