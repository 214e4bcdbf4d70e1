"""Mask transfer (dsp/mask_transfer.py, slot ``xmask``) and Chain.set_sidechain."""

import numpy as np
import pytest
from stage_testlib import make_section, run
from resculpt.dsp import mask_transfer as mt

SLOTS = ["xmask"]


def test_builtin_references_are_deterministic():
    """The built-in sources are generated, not loaded, and identical on every generation."""
    for kind in ("beat", "vowels"):
        a = mt.analyse_reference(mt.synthetic_reference(kind), 48000)
        assert np.array_equal(a, mt.builtin_mask(kind))
        assert a.shape[1] == mt.N_BANDS and (a <= 0).all() and (a >= mt.MIN_DB).all()


def _alternating_reference(sr, seconds=1.0, period_s=0.5):
    """Noise low-passed under 500 Hz in each period's first half, high-passed over 3 kHz in its second."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(7)
    n = int(seconds * sr)
    lo = sosfilt(butter(6, 500, "low", fs=sr, output="sos"), rng.standard_normal(n))
    hi = sosfilt(butter(6, 3000, "high", fs=sr, output="sos"), rng.standard_normal(n))
    first = (np.arange(n) / sr) % period_s < period_s / 2
    return np.where(first, lo, hi), first


def _band_env_db(y, sr, lo_hz, hi_hz):
    n, h = int(0.02 * sr), int(0.005 * sr)
    idx = np.arange(n)[None, :] + h * np.arange((y.size - n) // h)[:, None]
    p = np.abs(np.fft.rfft(y[idx] * np.hanning(n), axis=-1)) ** 2
    f = np.fft.rfftfreq(n, 1 / sr)
    return 10 * np.log10(p[:, (f >= lo_hz) & (f < hi_hz)].mean(axis=1) + 1e-12)


@pytest.mark.parametrize("rate", [22050, 48000])
def test_xmask_output_envelope_follows_the_reference(rate):
    """White noise through xmask with an alternating low/high reference (loaded at 48 kHz,
    played at ``rate``): the output's low-band and high-band envelopes correlate > 0.9 with the
    reference's on/off pattern, and each band swings by more than 25 dB (floor -40 dB, depth 1)."""
    ref, _ = _alternating_reference(48000)
    sr = rate
    x = (0.1 * np.random.default_rng(1).standard_normal(int(2.0 * sr))).astype(np.float32)[None, :]
    rig = make_section(SLOTS, sr, 1, {"xmask.source": 2, "xmask.floor_db": -40.0, "xmask.depth": 1.0})
    rig.proc.stages[0].inbox.publish(mt.SidechainEnvelopes.from_audio(ref, 48000))
    y = run(rig, x, 256)[0]
    # What the reference does: the low band is on in each 0.5 s period's first half, the high band
    # in its second half (frame times of the measurement: centre of a 20 ms window every 5 ms).
    eo_lo = _band_env_db(y, sr, 100, 400)
    t = 0.01 + 0.005 * np.arange(eo_lo.size)
    on_lo = ((t % 0.5) < 0.25).astype(float)
    for (lo_hz, hi_hz), er in (((100, 400), on_lo), ((4000, 8000), 1.0 - on_lo)):
        eo = _band_env_db(y, sr, lo_hz, hi_hz)
        eo, er = eo[20:], er[20:]
        assert np.corrcoef(eo, er)[0, 1] > 0.9, (lo_hz, np.corrcoef(eo, er)[0, 1])
        assert np.percentile(eo, 90) - np.percentile(eo, 10) > 25.0


def test_xmask_rate_sets_the_loop_speed():
    """rate_x 2 plays the reference loop twice as fast: the output's low-band envelope period
    halves (0.5 s -> 0.25 s, measured by autocorrelation)."""
    sr = 48000
    ref, _ = _alternating_reference(sr)
    x = (0.1 * np.random.default_rng(2).standard_normal(int(2.0 * sr))).astype(np.float32)[None, :]

    def period(rate_x):
        rig = make_section(SLOTS, sr, 1, {"xmask.source": 2, "xmask.rate_x": rate_x})
        rig.proc.stages[0].inbox.publish(mt.SidechainEnvelopes.from_audio(ref, sr))
        e = _band_env_db(run(rig, x, 512)[0], sr, 100, 400)[20:]
        e = e - e.mean()
        ac = np.correlate(e, e, "full")[e.size - 1 :]
        lag = 20 + int(np.argmax(ac[20:150]))  # frames of 5 ms; skip the zero-lag lobe
        return lag * 0.005

    assert abs(period(1.0) - 0.5) < 0.02
    assert abs(period(2.0) - 0.25) < 0.02


def test_xmask_sidechain_source_passes_audio_until_a_clip_is_loaded():
    """Source ``sidechain`` with nothing loaded is the identity (latency-aligned)."""
    sr = 48000
    x = (0.1 * np.random.default_rng(3).standard_normal(sr // 2)).astype(np.float32)[None, :]
    rig = make_section(SLOTS, sr, 1, {"xmask.source": 2})
    y = run(rig, x, 256)
    np.testing.assert_allclose(y, x, atol=1e-5)


def test_chain_set_sidechain_loads_a_file_and_survives_a_layout_change(tmp_path):
    """Chain.set_sidechain(path) analyses the file off the audio thread and publishes it to the xmask
    slot's inbox: the running stage and the stages of graphs built later (preset/layout changes) read the
    same value; a clip shorter than one window is refused, and None clears it."""
    import soundfile as sf
    from resculpt.plugin_host.chain import Chain

    ref, _ = _alternating_reference(44100)
    path = tmp_path / "ref.wav"
    sf.write(path, ref.astype(np.float32) * 0.5, 44100)
    ch = Chain({"spectral": ["xmask"]}, 48000, 1, 512, params={"xmask.source": 2})
    ch.set_sidechain(str(path))
    st = ch.graph.stages[0]
    side = st.inbox.value
    assert isinstance(side, mt.SidechainEnvelopes) and side.db.shape[1] == mt.N_BANDS
    assert not side.db.flags.writeable
    ch.set_layout({"spectral": ["lfo", "xmask"]})
    x = np.zeros((1, 512), np.float32)
    ch.process(x)  # the audio thread picks up the new graph
    assert ch.graph.stages[1] is not st and ch.graph.stages[1].inbox.value is side
    with pytest.raises(ValueError):
        ch.set_sidechain(np.zeros(10), 48000)  # shorter than one window
    ch.set_sidechain(None)
    assert ch.graph.stages[1].inbox.value is None
