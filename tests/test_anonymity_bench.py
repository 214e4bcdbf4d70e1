"""The anonymity benchmark's scoring (benchmarks/anonymity.py): the EER and the attack every anon figure rests on."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anonymity as bench  # noqa: E402


def _embeddings(rng, centres, spread):
    return {s: [c + spread * rng.standard_normal(c.shape) for _ in range(bench.N_UTT)] for s, c in centres.items()}


def test_eer_is_zero_for_separated_scores_and_half_for_identical_ones():
    assert bench.eer(np.array([0.9, 0.8, 0.95]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    s = np.linspace(0.0, 1.0, 101)
    assert abs(bench.eer(s, s) - 50.0) < 1.0


def test_attack_scores_each_trial_against_its_own_speaker_as_target_and_every_other_as_non_target():
    """attack() equals the definition written out trial by trial (the models are the normalised means of the
    ENROL utterances; each TRIALS utterance is a target trial for its speaker and a non-target for the others),
    and score_matrix() holds exactly those scores."""
    rng = np.random.default_rng(3)
    centres = {f"s{k}": rng.standard_normal(16) for k in range(9)}
    enrol, trial = _embeddings(rng, centres, 0.8), _embeddings(rng, centres, 1.2)
    spk = list(enrol)
    tgt, non = [], []
    for j, s in enumerate(spk):
        for k in bench.TRIALS:
            e = trial[s][k] / np.linalg.norm(trial[s][k])
            for m, r in enumerate(spk):
                model = np.mean([enrol[r][u] for u in bench.ENROL], axis=0)
                sc = float(model @ e / np.linalg.norm(model))
                assert abs(bench.score_matrix(enrol, trial)[j, bench.TRIALS.index(k), m] - sc) < 1e-9
                (tgt if m == j else non).append(sc)
    assert len(tgt) == len(spk) * len(bench.TRIALS) and len(non) == len(tgt) * (len(spk) - 1)
    assert bench.attack(enrol, trial) == bench.eer(np.array(tgt), np.array(non))
    assert 0.0 < bench.attack(enrol, trial) < 50.0  # a linkable set: some errors, far from chance


def test_attack_is_at_chance_when_trials_carry_no_speaker():
    """Trials drawn independently of their speaker (every speaker's trials from one pool) give an EER near 50 %;
    trials equal to their own enrolment give 0."""
    rng = np.random.default_rng(4)
    centres = {f"s{k}": rng.standard_normal(32) for k in range(40)}
    enrol = _embeddings(rng, centres, 0.1)
    pool = {s: [rng.standard_normal(32) for _ in range(bench.N_UTT)] for s in centres}
    assert 35.0 < bench.attack(enrol, pool) < 65.0
    assert bench.attack(enrol, enrol) == 0.0


def _weights_file(path, arrays, w):
    """An export's file with the weights ``w`` in place of its own: sha256 and reference output made to match."""
    import json

    from resculpt.dsp.voice import level_split

    meta = dict(json.loads(str(arrays["meta_json"])), weights_sha256=level_split.weights_sha256(w))
    net = level_split.SplitNet(level_split.Weights(w, meta, meta["weights_sha256"]), 1)
    ref_out = np.zeros_like(arrays["ref_out"])
    for f, out in zip(arrays["ref_in"], ref_out):
        net.step(f, 0, out)
    np.savez(path, **dict(arrays, **w, meta_json=np.array(json.dumps(meta, sort_keys=True)), ref_out=ref_out))


def test_split_weights_option_runs_the_stage_on_that_file_checked_and_names_it_in_the_command(tmp_path):
    """A valid file with other weights changes what anon-neutral renders (and the shipped file, set back, renders
    as before); a file whose weights do not match its sha256 fails to load; the table's command names the file."""
    from resculpt.dsp.voice import level_split

    shipped = level_split.FILE
    with np.load(shipped) as z:
        arrays = {k: z[k] for k in z.files}
    w = {k: arrays[k].astype(np.float32) for k in level_split.NAMES}
    other, bad = tmp_path / "other.npz", tmp_path / "bad.npz"
    _weights_file(other, arrays, dict(w, out_w=1.5 * w["out_w"]))
    np.savez(bad, **dict(arrays, out_w=1.5 * w["out_w"]))      # the recorded sha256 is the shipped one's
    t = np.arange(int(2.0 * bench.SR)) / bench.SR
    voice = sum(np.sin(2 * np.pi * 120.0 * h * t) / h for h in range(1, 30)) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
    voice = (0.05 * voice).astype(np.float32)

    def render():
        return bench.chain_system("anon-neutral")(voice)

    try:
        y0 = render()
        assert bench.use_split_weights(other) == shipped
        y1 = render()
        assert np.max(np.abs(y1 - y0)) > 1e-3
        bench.use_split_weights(bad)
        try:
            render()
        except ValueError as e:
            assert "sha256" in str(e)
        else:
            raise AssertionError("a file whose weights do not match its sha256 loaded")
    finally:
        bench.use_split_weights(shipped)
    assert np.array_equal(render(), y0)

    class A:
        split, skip_speakers, speakers, variants, random = "train", 48, 64, ["anon-neutral"], []
        split_weights, no_asr = "runs/x.npz", True
    assert bench.variant_cmd("scripts/anon_sweep.py", A) == (
        "scripts/anon_sweep.py --split train --skip-speakers 48 --speakers 64 --split-weights runs/x.npz --no-asr "
        "anon-neutral")


def _toy_source(root: Path, speakers: dict) -> None:
    """A data root with one speech source "toy": ``speakers`` = {name: number of takes}; each take is the ten
    digits, file ``{digit}_{name}_{take}.wav``, 0.1 s at 16 kHz of the constant (take * 10 + digit + 1) / 1000."""
    import soundfile as sf

    rows = ["path,category,source,speaker,role,sample_rate,duration_s,split,license"]
    for name, takes in speakers.items():
        (root / "speech" / "toy" / name).mkdir(parents=True)
        for digit in range(10):
            for take in range(takes):
                rel = f"speech/toy/{name}/{digit}_{name}_{take}.wav"
                sf.write(root / rel, np.full(1600, (take * 10 + digit + 1) / 1000, np.float32), 16000,
                         subtype="FLOAT")
                rows.append(f"{rel},speech,toy,{name},,16000,0.1,train,test")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_source_utterances_join_a_speakers_recordings_take_by_take_with_gaps_and_drop_short_speakers(
        tmp_path, monkeypatch):
    """A --source speaker's chunks are its recordings joined in take order (take 0's ten digits, then take 1's),
    each followed by JOIN_GAP_S of silence, cut into N_UTT chunks of SEG_S; a speaker with less speech is left out."""
    _toy_source(tmp_path, {"ann": 8, "bob": 8, "cy": 6})  # 8 takes: 80 x 0.2 s = 16 s; 6 takes: 12 s < 14 s
    monkeypatch.setenv("RESCULPT_DATA", str(tmp_path))
    utts = bench.source_utterances("toy", max_speakers=10)
    assert sorted(utts) == ["toy:ann", "toy:bob"]
    n, rec, gap = int(bench.SEG_S * bench.SR), 1600, int(bench.JOIN_GAP_S * bench.SR)
    for xs in utts.values():
        assert len(xs) == bench.N_UTT and all(x.shape == (n,) and x.dtype == np.float32 for x in xs)
        x = np.concatenate(xs)
        assert len(x) // (rec + gap) > 10  # the chunks reach into take 1
        for k in range(len(x) // (rec + gap)):  # recording k of the joined stream: take k // 10, digit k % 10
            seg = x[k * (rec + gap): k * (rec + gap) + rec]
            np.testing.assert_allclose(seg, ((k // 10) * 10 + k % 10 + 1) / 1000, rtol=1e-6)
            assert not np.any(x[k * (rec + gap) + rec: (k + 1) * (rec + gap)])
    assert list(bench.source_utterances("toy", max_speakers=1)) == ["toy:ann"]
    assert list(bench.source_utterances("toy", max_speakers=10, skip=1)) == ["toy:bob"]
    assert bench.source_unseen("toy")  # 0.1 s recordings: no table builder's 2.8 s chunk fits in one


def test_narrowband_leaves_nothing_above_4_khz_and_keeps_the_speech_band():
    """--narrowband's resampling through 8 kHz: a 6 kHz tone is removed (< -40 dB), a 1 kHz tone kept within
    0.5 dB; lengths and dtype unchanged."""
    t = np.arange(int(bench.SEG_S * bench.SR)) / bench.SR
    lo, hi = np.sin(2 * np.pi * 1000 * t).astype(np.float32), np.sin(2 * np.pi * 6000 * t).astype(np.float32)
    out = bench.narrowband({"s": [lo, hi]})["s"]
    assert [y.shape for y in out] == [lo.shape, hi.shape] and all(y.dtype == np.float32 for y in out)
    mid = slice(1000, -1000)  # away from the resampling filters' edges

    def rms_db(y):
        return 20 * np.log10(np.sqrt(np.mean(y[mid].astype(np.float64) ** 2)) + 1e-12)

    assert abs(rms_db(out[0]) - rms_db(lo)) < 0.5
    assert rms_db(out[1]) - rms_db(hi) < -40.0


def test_lazy_by_side_splits_non_target_trials_by_the_speakers_side_and_keeps_the_pooled_eer():
    """scripts/anon_link_by_pitch.py --sides: with two voices (every low speaker's embedding near one point, every
    high one's near another), non-target trials across the sides are easy (EER 0) and those within a side hard,
    and the first column is the benchmark's own pooled EER."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import anon_link_by_pitch as lbp

    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(32), rng.standard_normal(32)
    centres = {f"s{k}": (a if k < 10 else b) + 0.15 * rng.standard_normal(32) for k in range(20)}
    E = _embeddings(rng, centres, 0.2)
    low = np.array([k < 10 for k in range(20)])
    cells = [float(c.strip(" %")) for c in lbp._lazy_by_side("v", bench.score_matrix(E, E), low).split("|")[2:5]]
    assert cells[0] == round(bench.attack(E, E), 1)
    assert cells[2] == 0.0 and cells[1] > cells[0] > 0.0
