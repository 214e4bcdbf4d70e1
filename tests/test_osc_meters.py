"""Meters: allocation-free audio side, correct levels, spectrum and mask from the STFT tap or FFT."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.meters import Meters


def _sine(freq, amp, n, sr=48000, ch=2):
    t = np.arange(n) / sr
    return np.tile(amp * np.sin(2 * np.pi * freq * t), (ch, 1)).astype(np.float32)


def test_meters_audio_side_allocates_nothing():
    """block_in, frame_in, frame_out, block_out on 1024-sample stereo blocks: no net traced memory
    over 2000 calls, and no call allocates anything near an array (peak < 2 KB; a block is 8 KB)."""
    m = Meters()
    m.prepare(48000, 1024, 2)
    b = _sine(1000, 0.5, 1024)
    spec = np.zeros((2, 481), np.complex64)

    def one_block():
        m.block_in(b)
        m.frame_in(spec)
        m.frame_out(spec)
        m.block_out(b, 0.001)

    for _ in range(10):
        one_block()
    m.snapshot()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        a0, _ = tracemalloc.get_traced_memory()
        for _ in range(2000):
            one_block()
        a1, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert a1 - a0 < 1024, f"net {a1 - a0} bytes"
    assert peak - a0 < 2048, f"peak {peak - a0} bytes"


def test_metered_chain_allocates_no_more_than_unmetered():
    """A metered chain with an STFT processes 500 blocks with the same (near-zero) net allocation
    as the unmetered chain."""
    x = _sine(440, 0.3, 512)

    def net(chain):
        for _ in range(20):
            chain.process(x.copy())
        y = x.copy()
        tracemalloc.start()
        tracemalloc.reset_peak()
        a0, _ = tracemalloc.get_traced_memory()
        for _ in range(500):
            np.copyto(y, x)
            chain.process(y)
        a1, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return a1 - a0, peak - a0

    plain = Chain.from_preset("spectral-dark", 48000, 2, 512)
    metered = Chain.from_preset("spectral-dark", 48000, 2, 512)
    metered.attach_meters(Meters())
    (_, p0), (n1, p1) = net(plain), net(metered)
    assert n1 < 2048, f"metered chain net {n1} bytes"
    assert p1 < p0 + 2048, f"meters raised the per-block peak from {p0} to {p1}"


@pytest.mark.parametrize("preset,source", [("spectral-dark", "stft"), ("broadcast-voice", "fft")])
def test_levels_spectrum_and_mask_of_a_sine(preset, source):
    """A 0.5-amplitude 1 kHz sine reads -6 dBFS peak / -9 dBFS RMS at the input, its band is the
    loudest in the spectrum (from the STFT tap, or from an FFT of the output when the chain has no
    STFT), and mask values are finite and non-negative."""
    chain = Chain.from_preset(preset, 48000, 2, 512)
    m = Meters()
    chain.attach_meters(m)
    x = _sine(1000, 0.5, 512 * 40)
    for i in range(40):
        chain.process(x[:, 512 * i : 512 * (i + 1)].copy())
    s = m.snapshot()
    assert s["spectrum_source"] == source
    assert s["in_peak_db"] == pytest.approx(-6.02, abs=0.05)
    assert s["in_rms_db"] == pytest.approx(-9.03, abs=0.1)
    assert s["cpu_load"] > 0
    band = int(np.argmax(s["spectrum_db"]))
    centers = m.centers_hz()
    assert 900 < centers[band] < 1100, centers[band]
    assert -9.0 < s["spectrum_db"][band] < -4.0  # the sine's level (its lobe may straddle two bands)
    assert np.all(np.isfinite(s["mask"])) and np.all(s["mask"] >= 0)


def test_identity_stft_mask_is_one():
    """With an STFT and no stage editing frames, the mask |out|/|in| is 1 in every band."""
    chain = Chain({"spectral": [], "force_stft": True}, 48000, 2, 512)
    m = Meters()
    chain.attach_meters(m)
    rng = np.random.default_rng(0)
    for _ in range(20):
        chain.process((0.1 * rng.standard_normal((2, 512))).astype(np.float32))
    s = m.snapshot()
    assert s["spectrum_source"] == "stft"
    np.testing.assert_allclose(s["mask"], 1.0, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 2])
def test_levels_equal_the_signals_own_peak_and_rms_and_allocate_no_array(channels):
    """Mono and stereo, 128-sample blocks of two different signals (in and out): the per-channel peak and the
    RMS that snapshot() reports equal numpy's over the same samples (to float32 rounding), and no audio-side
    call allocates a numpy array (numpy's own allocator hook, tests/numpy_allocs.py)."""
    from numpy_allocs import counting

    rng = np.random.default_rng(3)
    n, blk = 128 * 50, 128
    x = (rng.standard_normal((channels, n)) * np.array([0.2, 0.05][:channels])[:, None]).astype(np.float32)
    y = (0.5 * x[:, ::-1]).copy()
    m = Meters()
    m.prepare(48000, blk, channels)
    spec = np.zeros((channels, 241), np.complex64)
    found = []
    for i in range(0, n, blk):
        with counting() as log:
            m.block_in(x[:, i : i + blk])
            m.frame_in(spec)
            m.frame_out(spec)
            m.block_out(y[:, i : i + blk], 1e-4)
        found += log.arrays()
    assert not found, f"arrays allocated: {found[:5]}"
    s = m.snapshot()
    for name, sig in (("in", x), ("out", y)):
        peaks = np.abs(sig).max(axis=1)
        assert s[f"{name}_peak_db_ch"] == pytest.approx([20 * np.log10(p) for p in peaks], abs=1e-4)
        rms = np.sqrt(np.mean(sig.astype(np.float64) ** 2))
        assert s[f"{name}_rms_db"] == pytest.approx(20 * np.log10(rms), abs=1e-4)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_compiled_meter_pass_reports_what_the_numpy_code_does(channels):
    """With numba the audio side's levels and spectrum ring are one compiled pass per block: the peaks and the ring
    (the spectrum's source without an STFT) equal the numpy code's bit for bit and the RMS agrees to 1e-6 dB, over
    blocks of 1 to 5000 samples (longer than the ring) and strided blocks."""
    from resculpt.plugin_host import meters as meters_mod

    if not meters_mod.AVAILABLE:
        pytest.skip("numba not installed (extra 'fast') or RESCULPT_NO_KERNELS set")
    rng = np.random.default_rng(channels)
    wide = (rng.standard_normal((channels, 40000)) * 0.1).astype(np.float32)
    ms = []
    for compiled in (True, False):
        m = Meters()
        m.use_kernels = compiled
        m.kernel_max_block = 5000  # the loop at this block size too (meters take it up to 2048 samples)
        m.prepare(48000, 5000, channels)
        assert m._kern is compiled
        i = 0
        for blk in [1, 128, 5000, 77, 4097, 2]:
            b = wide[:, i : i + 2 * blk : 2]  # strided view
            m.block_in(b)
            m.block_out(0.5 * np.ascontiguousarray(b), 1e-4)
            i += 2 * blk
        ms.append(m)
    a, b = ms
    np.testing.assert_array_equal(a._peak, b._peak)
    np.testing.assert_array_equal(a._ring_in, b._ring_in)
    np.testing.assert_array_equal(a._ring_out, b._ring_out)
    assert a._rpos == b._rpos and a._count == b._count
    sa, sb = a.snapshot(), b.snapshot()
    for k in ("in_rms_db", "out_rms_db"):
        assert sa[k] == pytest.approx(sb[k], abs=1e-6)
    np.testing.assert_array_equal(sa["spectrum_db"], sb["spectrum_db"])
