"""The shared streaming STFT: reconstruction, latency, block-size independence."""

import numpy as np
import pytest
from conftest import BLOCK_SIZES, real_stereo, stream
from resculpt.dsp.processor import SUPPORTED_RATES

from resculpt.dsp.stft import CONFIGS, SpectralStage, StreamingSTFT


@pytest.mark.parametrize("rate", SUPPORTED_RATES)
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("channels", [1, 2])
def test_identity_spectrum_reconstructs_input_after_reported_latency(rate, config, channels):
    """With no stage, output[t + latency] == input[t] to 1e-5 on a real clip, every rate and config."""
    s = StreamingSTFT(config)
    s.prepare(rate, 8193, channels)
    x = real_stereo(rate, 0.5)[:channels]
    y = stream(s, x, [8193])
    L = s.latency_samples
    assert L == s.n_fft - 1
    np.testing.assert_allclose(y[:, L:], x[:, :-L], atol=1e-5)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_streamed_output_equals_whole_signal_for_any_block_partition(config):
    """Blocks of 1, 63, 64, 65, 512, 8193, random sizes and zero-length blocks all give the
    whole-signal output to 1e-6, with a (non-identity) stage editing every frame."""

    class Tilt(SpectralStage):
        def prepare(self, ctx):
            super().prepare(ctx)
            self.g = np.linspace(1.0, 0.1, ctx.n_bins).astype(np.float32)

        def process_frame(self, spec):
            spec *= self.g

    x = real_stereo(48000, 0.6)
    s = StreamingSTFT(config, [Tilt()])
    s.prepare(48000, 8193, 2)
    whole = stream(s, x, [8193])
    for sizes in ([b] for b in BLOCK_SIZES):
        s.reset()
        np.testing.assert_allclose(stream(s, x, sizes), whole, atol=1e-6, err_msg=str(sizes))
    s.reset()
    np.testing.assert_allclose(stream(s, x, ["random", 0, 1, "random"], seed=5), whole, atol=1e-6)


def test_batched_frames_reach_stages_in_order_and_their_output_lands_where_frame_by_frame_puts_it():
    """The frames one block completes reach a stage together (process_frames, at most MAX_BATCH, time
    order), and each frame's output is written back at its own place: a stage whose gain depends on the
    frame's index gives bit-identical output whether the signal comes one sample at a time (one frame per
    call), in hop-sized blocks, or in blocks of 8193 (34 frames at 48 kHz: a full batch flushed mid-block)."""
    from resculpt.dsp.stft import MAX_BATCH

    class Counting(SpectralStage):
        def prepare(self, ctx):
            super().prepare(ctx)
            self.k, self.batches = 0, []

        def reset(self):
            self.k = 0

        def process_frames(self, specs, n):
            self.batches.append(n)
            super().process_frames(specs, n)

        def process_frame(self, spec):
            spec *= np.float32(1.0 + 0.5 * np.sin(0.37 * self.k))  # a gain only frame k has
            self.k += 1

    x = real_stereo(48000, 0.5)
    outs = {}
    for sizes in ([1], [240], [8193], ["random"]):
        st = Counting()
        s = StreamingSTFT("low-latency", [st])
        s.prepare(48000, 8193, 2)
        outs[str(sizes)] = stream(s, x, sizes, seed=2)
        assert max(st.batches) <= MAX_BATCH and sum(st.batches) == st.k
        if sizes == [8193]:
            assert MAX_BATCH in st.batches  # the mid-block flush ran
        if sizes == [1]:
            assert set(st.batches) == {1}
    ref = outs["[1]"]
    assert np.abs(ref).max() > 1e-3
    for k, y in outs.items():
        np.testing.assert_array_equal(y, ref, err_msg=k)


def test_latency_is_at_most_10_ms_low_latency_and_20_ms_default_at_48k():
    """Algorithmic latency at 48 kHz: low-latency <= 10 ms, default <= 20 ms."""
    for name, limit_ms in (("low-latency", 10.0), ("default", 20.0)):
        s = StreamingSTFT(name)
        s.prepare(48000, 512, 1)
        assert 1000.0 * s.latency_samples / 48000 <= limit_ms


def test_impulse_comes_out_exactly_latency_samples_later():
    """A unit impulse at sample 1000 peaks at 1000 + latency_samples in the output."""
    s = StreamingSTFT("default")
    s.prepare(44100, 64, 1)
    x = np.zeros((1, 6000), np.float32)
    x[0, 1000] = 1.0
    y = stream(s, x, [64])
    assert int(np.argmax(np.abs(y[0]))) == 1000 + s.latency_samples
    assert abs(y[0, 1000 + s.latency_samples] - 1.0) < 1e-5


def test_reset_then_rerun_gives_identical_output():
    """After reset(), the same input produces bit-identical output."""
    s = StreamingSTFT("low-latency")
    s.prepare(48000, 512, 2)
    x = real_stereo(48000, 0.3)
    a = stream(s, x, [512])
    s.reset()
    b = stream(s, x, [512])
    assert np.array_equal(a, b)


def test_zero_length_block_is_a_no_op():
    """process() on a (channels, 0) block returns it and changes no state."""
    s = StreamingSTFT("default")
    s.prepare(48000, 256, 2)
    x = real_stereo(48000, 0.2)
    ref = stream(s, x, [256])
    s.reset()
    out = x.copy()
    for i in range(0, x.shape[1], 256):
        s.process(np.zeros((2, 0), np.float32))
        s.process(out[:, i : i + 256])
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("n", [220, 441, 480, 960, 1411, 1536])
def test_real_fft_helper_gives_numpy_fft_results_bit_for_bit(n):
    """The section and the mask stage call numpy's FFT ufuncs directly (RealFFT) to skip np.fft's per-call
    argument handling; the numbers must stay exactly np.fft.rfft / irfft's, for even and odd lengths and
    both precisions, so nothing measured against np.fft elsewhere moves."""
    from resculpt.dsp.spectral_util import RealFFT

    rng = np.random.default_rng(n)
    f = RealFFT(n)
    for real, cplx in ((np.float64, np.complex128), (np.float32, np.complex64)):
        x = rng.standard_normal((2, n)).astype(real)
        X = np.zeros((2, n // 2 + 1), cplx)
        f.forward(x, X)
        ref = np.fft.rfft(x, axis=-1)
        assert X.dtype == ref.dtype and np.array_equal(X, ref)
        y = np.zeros((2, n), real)
        f.inverse(X, y)
        ref_y = np.fft.irfft(X, n=n, axis=-1)
        assert y.dtype == ref_y.dtype and np.array_equal(y, ref_y)
