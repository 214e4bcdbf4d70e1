"""The codec slot's learned envelope (resculpt.models.codec): features, the blend with the slope rule, the
bounded kept-band correction, the bundle's checks, and a smoke run of pairs -> training -> export -> stage."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import resample

from resculpt.dsp import codec_repair
from resculpt.dsp.params import ParamTable
from resculpt.dsp.stft import StreamingSTFT
from resculpt.models.codec import common
from resculpt.models.codec import stage as codec_stage
from resculpt.models.codec.bundle import BUNDLE_DIR, load_bundle
from resculpt.models.mask.bundle import BundleError

SR = 48000


def _lowpassed_speech(speech_clip, cut_hz=4000.0, seconds=2.0):
    """The bundled speech at 48 kHz with nothing above ``cut_hz`` (what Opus at 6-8 kbps leaves)."""
    x, sr = speech_clip
    x = resample(x[: int(seconds * sr)], sr, SR)
    X = np.fft.rfft(x)
    X[np.fft.rfftfreq(x.size, 1 / SR) > cut_hz] = 0
    return np.fft.irfft(X, x.size).astype(np.float32)


def _render(stage_cls, x, params, **kw):
    table = ParamTable(codec_stage.PARAMS)
    for k, v in params.items():
        table.set(k, v)
    table.prepare(SR)
    st = stage_cls(table, **kw) if kw else stage_cls(table)
    sec = StreamingSTFT("default", [st], table=table)
    sec.prepare(SR, 480, 1)
    out = np.concatenate([sec.process(x[None, i : i + 480].copy()) for i in range(0, x.size, 480)], axis=1)
    return out[0], st


def test_features_read_every_band_against_the_kept_band_level():
    """A flat power spectrum gives band features of 0 (every band at the kept band's level), the kept row of
    the edge, the edge in units of 8 kHz, and r = the power in dB."""
    fx = common.Features(SR, 960)
    pm = np.full(481, 1e-3, np.float32)
    out = np.zeros(common.N_FEAT, np.float32)
    fc = 80  # 4 kHz
    r = fx.compute(pm, fc, out)
    assert r == pytest.approx(-30.0, abs=1e-3)
    np.testing.assert_allclose(out[:32], 0.0, atol=1e-4)
    kept = out[32:64]
    assert set(np.unique(kept)) == {0.0, 1.0}
    np.testing.assert_array_equal(kept, (fx.centers_hz < 4000.0).astype(np.float32))
    assert out[64] == pytest.approx(0.5)
    fx.compute(pm, 0, out)  # no edge: no kept row, edge 0
    assert not out[32:65].any()


def test_model_off_is_the_slope_rule_bit_for_bit(speech_clip):
    """codec.model = 0 renders exactly what the DSP stage's slope/level rule renders."""
    x = _lowpassed_speech(speech_clip)
    p = {"codec.max_hz": 8000.0, "codec.valley_db": 6.0}
    ours, _ = _render(codec_stage.LearnedCodecRepair, x, p)
    table = ParamTable(codec_repair.PARAMS)
    for k, v in p.items():
        table.set(k, v)
    table.prepare(SR)
    sec = StreamingSTFT("default", [codec_repair.CodecRepair(table)], table=table)
    sec.prepare(SR, 480, 1)
    rule = np.concatenate([sec.process(x[None, i : i + 480].copy()) for i in range(0, x.size, 480)], axis=1)[0]
    np.testing.assert_array_equal(ours, rule)


class _Spy(codec_stage.LearnedCodecRepair):
    """Records, per frame with an edge, the rule's and the final wanted band powers of the rebuilt range."""

    def prepare(self, ctx):
        super().prepare(ctx)
        self.rows = []

    def _rebuilt_want(self, fc):
        rule = self._want.copy()
        super()._rebuilt_want(fc)
        self.rows.append((rule, self._want.copy(), self._net_db + self.table.value[self._i_level], self._jn))


@pytest.mark.parametrize("amount", [1.0, 0.5])
def test_rebuilt_band_takes_the_blend_of_rule_and_net_in_db(speech_clip, amount):
    """With codec.model = a, every rebuilt band at or below 8 kHz is asked for (1 - a) * rule + a * (net +
    codec.level_db) in dB; bands above 8 kHz keep the rule."""
    x = _lowpassed_speech(speech_clip)
    _, st = _render(_Spy, x, {"codec.max_hz": 12000.0, "codec.model": amount, "codec.level_db": -6.0})
    assert len(st.rows) > 100
    for rule, want, net, jn in st.rows[50::25]:
        exp = (1 - amount) * 10 * np.log10(rule[:jn] + 1e-30) + amount * net[:jn]
        np.testing.assert_allclose(10 * np.log10(want[:jn]), exp, atol=2e-3)
        np.testing.assert_array_equal(want[jn:], rule[jn:])


def test_learned_envelope_changes_the_rebuilt_band_and_keeps_the_kept_band(speech_clip):
    """With the net on and no kept-band correction, the band below the edge is the rule's output bin for bin
    (the copy and its scaling touch only edge .. max_hz) while the rebuilt band differs from the rule's."""
    x = _lowpassed_speech(speech_clip)
    rule, _ = _render(codec_stage.LearnedCodecRepair, x, {})
    net, _ = _render(codec_stage.LearnedCodecRepair, x, {"codec.model": 1.0})
    f = np.fft.rfftfreq(x.size, 1 / SR)
    R, N = np.fft.rfft(rule), np.fft.rfft(net)
    lo, hi = f < 3500, (f > 4500) & (f < 7500)
    np.testing.assert_allclose(np.abs(N[lo]), np.abs(R[lo]), rtol=1e-3, atol=1e-3 * np.abs(R[lo]).max())
    e_rule, e_net = np.sum(np.abs(R[hi]) ** 2), np.sum(np.abs(N[hi]) ** 2)
    assert e_net > 0 and abs(10 * np.log10(e_net / e_rule)) > 0.5


def test_kept_band_correction_is_bounded_by_its_parameter(speech_clip):
    """codec.model_kept_db = 3 moves the band below the edge, by at most 3 dB per frame and bin."""
    x = _lowpassed_speech(speech_clip)
    table = ParamTable(codec_stage.PARAMS)
    ratios = []

    class _KeptSpy(codec_stage.LearnedCodecRepair):
        def _observe(self, spec, fc):
            before = spec[:, : max(fc, 0)].copy()
            super()._observe(spec, fc)
            if fc > 10 and np.abs(before).max() > 0:
                m = np.abs(before) > 1e-6 * np.abs(before).max()
                ratios.append(np.abs(spec[:, :fc])[m] / np.abs(before)[m])

    table.set("codec.model", 1.0)
    table.set("codec.model_kept_db", 3.0)
    table.prepare(SR)
    st = _KeptSpy(table)
    sec = StreamingSTFT("default", [st], table=table)
    sec.prepare(SR, 480, 1)
    for i in range(0, x.size, 480):
        sec.process(x[None, i : i + 480].copy())
    r = 20 * np.log10(np.concatenate(ratios))
    assert r.size > 1000
    assert r.max() <= 3.0 + 1e-3 and r.min() >= -3.0 - 1e-3
    assert np.abs(r).mean() > 0.1  # it does move the band


def _copy_bundle(tmp_path):
    d = tmp_path / "b"
    shutil.copytree(BUNDLE_DIR, d)
    return d


def test_bundle_refuses_an_altered_model(tmp_path):
    d = _copy_bundle(tmp_path)
    with open(d / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(d)


def test_bundle_refuses_another_config_version_and_other_features(tmp_path):
    d = _copy_bundle(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "version": 99}))
    with pytest.raises(BundleError, match="version"):
        load_bundle(d)
    (d / "config.json").write_text(json.dumps({**cfg, "max_hz": 12000.0}))
    with pytest.raises(BundleError, match="max_hz"):
        load_bundle(d)


def test_bundle_refuses_golden_levels_it_does_not_reproduce(tmp_path):
    d = _copy_bundle(tmp_path)
    g = dict(np.load(d / "golden.npz"))
    g["levels"] = g["levels"] + 0.01
    np.savez(d / "golden.npz", **g)
    with pytest.raises(BundleError, match="golden"):
        load_bundle(d)


def test_bundle_refuses_a_missing_file(tmp_path):
    d = _copy_bundle(tmp_path)
    (d / "golden.npz").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(d)


def test_shipped_bundle_loads_and_its_config_records_training():
    b = load_bundle()
    assert b.config["step"] > 0 and b.config["validation"]["rebuilt_db"] > 0


def test_stage_refuses_a_section_at_another_hop():
    from resculpt.dsp.stft import SpectralContext

    table = ParamTable(codec_stage.PARAMS)
    st = codec_stage.LearnedCodecRepair(table)
    ctx = SpectralContext(sample_rate=SR, n_fft=960, hop=480, n_bins=481, channels=1, linked=True,
                          freqs_hz=np.arange(481) * 50.0)
    with pytest.raises(ValueError, match="hop"):
        st.prepare(ctx)


def test_pairs_train_and_export_to_a_bundle_the_stage_runs(speech_clip, tmp_path):
    """The whole path on the bundled clip: pairs through a real codec and a band limit, a few training steps (stopped early and
    resumed once),
    export (ORT == torch is asserted inside), and the stage running the exported bundle."""
    pytest.importorskip("torch")
    from resculpt.models.codec import data as cdata
    from resculpt.models.codec import export as cexport
    from resculpt.models.codec import train as ctrain
    from resculpt.models.resculpt.degrade import have_codecs

    if have_codecs() is not None:
        pytest.skip(have_codecs())
    x, sr = speech_clip
    x48 = resample(x[: 4 * sr], sr, SR)
    for split, seed, bl in (("train", 0, False), ("train_bandlimit", 1, True), ("val", 2, False)):
        (tmp_path / "pairs" / split).mkdir(parents=True, exist_ok=True)
        pr = cdata.make_pair(x48, np.random.default_rng(seed), bl)
        assert pr["feat"].shape[1] == common.N_FEAT and pr["weight"].sum() > 0
        np.savez(tmp_path / "pairs" / split / f"{seed:05d}.npz", **pr)
    args = ["--pairs", str(tmp_path / "pairs"), "--run", str(tmp_path / "run"), "--batch", "2", "--seq", "50",
            "--hidden", "8", "--val-every", "2"]
    assert ctrain.main([*args, "--steps", "4", "--stop-at", "2"]) == 0
    assert ctrain.main([*args, "--steps", "4"]) == 0  # resumes at step 2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    cfg = cexport.export(tmp_path / "run" / "ckpt.pt", tmp_path / "bundle")
    assert cfg["step"] == 4 and cfg["hidden"] == 8
    b = load_bundle(tmp_path / "bundle")
    y, _ = _render(codec_stage.LearnedCodecRepair, _lowpassed_speech(speech_clip, seconds=0.5),
                   {"codec.model": 1.0}, bundle=b)
    assert np.isfinite(y).all()


def test_telephone_pairs_keep_the_voice_band_aligned_and_remove_the_high_band():
    """The G.711 line of the band-limited pairs passes a 1 kHz tone in level and phase (sample-aligned with the
    clean signal, so frame targets line up) and removes a 6 kHz tone."""
    from resculpt.models.codec.data import mulaw_phone

    t = np.arange(SR) / SR
    lo, hi = 0.3 * np.sin(2 * np.pi * 1000 * t), 0.3 * np.sin(2 * np.pi * 6000 * t)
    y = mulaw_phone((lo + hi).astype(np.float32), SR)
    mid = slice(SR // 4, 3 * SR // 4)
    err = y[mid] - lo[mid]
    assert 20 * np.log10(np.std(err) / np.std(lo[mid])) < -25  # mu-law's 8 bits leave ~-35 dB of noise
    Y = np.abs(np.fft.rfft(y[mid]))
    f = np.fft.rfftfreq(y[mid].size, 1 / SR)
    assert 20 * np.log10(Y[np.argmin(np.abs(f - 6000))] / Y[np.argmin(np.abs(f - 1000))]) < -40
