"""Preset files: validation with clear errors, round trips, search order, migration."""

import json

import numpy as np
import pytest
from conftest import real_stereo

from resculpt.plugin_host.chain import Chain
from resculpt.plugin_host.presets import (
    PresetError,
    list_presets,
    load_preset,
    migrate,
    preset_from_chain,
    read_file,
    save_preset,
)

REQUIRED = {"clean", "broadcast-voice", "podcast-clean", "telephone", "spectral-dark"}


@pytest.fixture
def user_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    return tmp_path / "cfg" / "resculpt" / "presets"


def test_required_presets_are_shipped_and_valid():
    names = {n for n, _ in list_presets()}
    assert REQUIRED <= names
    for n, p in list_presets():
        assert read_file(p).name == n


def _band_db(y, sr):
    spec = np.abs(np.fft.rfft(y.mean(axis=0))) ** 2
    f = np.fft.rfftfreq(y.shape[1], 1 / sr)
    edges = [0, 150, 400, 1000, 2500, 5000, 10000, 24000]
    return np.array([10 * np.log10(spec[(f >= a) & (f < b)].sum() + 1e-12) for a, b in zip(edges[:-1], edges[1:])])


def _repairs(name) -> bool:
    """A repair preset (tag "repair") brings a damaged input back toward clean speech: on a clean clip it is
    meant to stay close to a plain voice chain, so it is judged on the damage it repairs instead."""
    return "repair" in read_file(dict(list_presets())[name]).tags


def test_shipped_presets_are_audibly_distinct_from_each_other_and_from_clean():
    """Every pair of shipped presets differs by >= 3 dB in at least one of 7 octave-ish bands or
    in overall level on a real clip, or on the same clip with white noise 10 dB below it (a real, audible chain,
    not a copy of another: a denoiser's job is to leave clean speech nearly alone, so it is told apart from
    `clean` by what it does to noise); repair presets are checked on the damage they repair (next test)."""
    x = real_stereo(48000, 2.0)
    noise = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    noisy = x + noise * np.sqrt(np.mean(x**2) / np.mean(noise**2)) * np.float32(10 ** (-10 / 20))
    prints = {}
    for n, _ in list_presets():
        if _repairs(n):
            continue
        pr = []
        for sig in (x, noisy):
            y = Chain.from_preset(n, 48000, 2, 4096)(sig)
            rms = 20 * np.log10(np.sqrt((y**2).mean()) + 1e-12)
            pr.append(np.append(_band_db(y, 48000) - _band_db(y, 48000).max(), rms))
        prints[n] = pr
    names = sorted(prints)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff = [float(np.abs(pa - pb).max()) for pa, pb in zip(prints[a], prints[b])]
            assert max(diff) >= 3.0, (a, b, diff)


def test_repair_presets_audibly_restore_a_band_limited_clip():
    """On a real clip low-passed at 3.5 kHz (what a 6-8 kbps codec leaves), every repair preset's output
    is >= 3 dB louder than the damaged input in the 5-10 kHz band, relative to the loudest band."""
    from scipy.signal import butter, sosfiltfilt

    x = real_stereo(48000, 2.0)
    damaged = sosfiltfilt(butter(8, 3500, fs=48000, output="sos"), x, axis=1).astype(np.float32)
    ref = _band_db(damaged, 48000) - _band_db(damaged, 48000).max()
    repairs = [n for n, _ in list_presets() if _repairs(n)]
    assert repairs
    for n in repairs:
        y = Chain.from_preset(n, 48000, 2, 4096)(damaged)
        shape = _band_db(y, 48000) - _band_db(y, 48000).max()
        assert shape[5] - ref[5] >= 3.0, (n, shape[5] - ref[5])


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["params"].update({"comp.ratoi": 3}), "params.comp.ratoi"),
    (lambda d: d["params"].update({"comp.ratio": "high"}), "params.comp.ratio: expected a number"),
    (lambda d: d["params"].update({"comp.ratio": True}), "params.comp.ratio: expected a number, got bool"),
    (lambda d: d["params"].update({"comp.ratio": 400}), "params.comp.ratio: 400 is out of range"),
    (lambda d: d.update({"schema_version": 99}), "schema_version 99 is newer"),
    (lambda d: d.update({"schema_version": "1"}), "schema_version: expected an integer"),
    (lambda d: d["chain"]["pre"].append("flanger"), "chain.pre[3]: unknown stage 'flanger'"),
    (lambda d: d["chain"]["pre"].append("hpf"), "chain.pre[3]: stage 'hpf' appears twice"),
    (lambda d: d["chain"]["spectral"].append("comp"), "chain.spectral[0]: 'comp' is a board stage"),
    (lambda d: d["chain"].update({"stft": "huge"}), "chain.stft"),
    (lambda d: d.update({"colour": "red"}), "unknown field"),
    (lambda d: d.update({"tags": "voice"}), "tags: expected a list"),
])
def test_invalid_preset_gives_one_error_naming_file_and_field(tmp_path, mutate, field):
    d = json.loads(load_preset("broadcast-voice").path.read_text())
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(PresetError) as e:
        read_file(p)
    assert str(p) in str(e.value) and field in str(e.value)


def test_malformed_json_error_names_line_and_column(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"schema_version": 1,\n "params": {"mix": }\n}')
    with pytest.raises(PresetError, match=r"broken.json: malformed JSON at line 2, column"):
        read_file(p)


def test_failed_load_leaves_the_running_chain_untouched(tmp_path):
    """Nothing is half-applied: a preset with one bad value changes no parameter and no layout."""
    c = Chain.from_preset("telephone", 48000, 2, 256)
    before, layout = c.params.targets(), c.layout
    d = json.loads(load_preset("spectral-dark").path.read_text())
    d["params"]["reverb.room_size"] = 7
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(PresetError):
        c.load_preset(p)
    assert c.params.targets() == before and c.layout == layout


def test_save_then_load_round_trips_exactly(user_home):
    c = Chain.from_preset("podcast-clean", 48000, 2, 256)
    c.params["comp.ratio"] = 2.718281828459045
    c.params["hpf.cutoff_hz"] = 123.456789
    path = save_preset(preset_from_chain(c, "my-voice", "mine", ["voice"]))
    assert path.parent == user_home
    p = load_preset("my-voice")
    assert p.layout == c.layout
    assert p.full_params() == c.params.targets()


def test_user_folder_is_searched_after_shipped_and_cannot_shadow_it(user_home):
    user_home.mkdir(parents=True)
    d = json.loads(load_preset("telephone").path.read_text())
    d["description"] = "user copy"
    (user_home / "telephone.json").write_text(json.dumps(d))
    assert load_preset("telephone").description != "user copy"
    d["name"] = "radio-phone"
    (user_home / "radio-phone.json").write_text(json.dumps(d))
    assert load_preset("radio-phone").description == "user copy"
    with pytest.raises(PresetError, match="shipped preset"):
        save_preset(load_preset("radio-phone").__class__("telephone", load_preset("telephone").layout))


def test_unknown_preset_name_suggests_close_names():
    with pytest.raises(PresetError, match="did you mean broadcast-voice"):
        load_preset("broadcast-vocie")


def test_version_0_files_are_migrated():
    """Schema 0 (flat params, unit-less names) upgrades to schema 1 with renamed ids."""
    d = migrate({"params": {"gain_db": -3}, "stages": ["sgate"]})
    assert d["schema_version"] == 1
    assert d["params"] == {"out.gain_db": -3}
    assert d["chain"] == {"spectral": ["sgate"]}
