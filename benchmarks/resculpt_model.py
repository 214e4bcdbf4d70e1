"""Resculpting benchmark: identity, the match-EQ and the resculpting model side by side, one run, on held-back
real speech and music (``resculpt.models.data``, split ``val``).

    .venv/bin/python benchmarks/resculpt_model.py --export-fresh /tmp/rs-fresh      # once: an untrained bundle (needs onnx)
    nice .venv-bench/bin/python benchmarks/resculpt_model.py --bundle /tmp/rs-fresh/bundle [--files N] [--seconds S]
    # -> benchmarks/results/resculpt.{md,json}; without --bundle a fresh bundle is exported into a temp folder
    #    by ./.venv/bin/python (the bench venv has no onnx exporter)
    .venv-bench/bin/python benchmarks/resculpt_model.py compare A=RUN_A.json B=RUN_B.json --out SIDE_BY_SIDE.md \
        [--verdict-into A=BUNDLE_A]     # the model rows of several runs side by side; A's verdict against the
                                        # match-EQ into its bundle's config.json (what --engine auto reads)

Every clip is loaded at ``--rate`` (48 kHz: speech is 16 kHz LibriSpeech upsampled, music 44.1 kHz resampled),
mono, cut to ``--seconds``. Systems: ``identity`` (the input), ``match-eq`` (the match stage in an otherwise
empty chain, ``render_with_target``: primed, 2 offline passes; it moves the level-free band envelope only) and
``model`` (:func:`model_render`, the one function through which the model is driven: ``render_with_target`` too, primed,
2 offline passes).

1. Profile error: ``distance(profile(out), target) / distance(profile(in), target)`` (``dsp.profile.distance``,
   weights of dims outside the match mode set to 0; the band-envelope shape always counts). Targets per input:
   ``reference`` = the fingerprint of the next file of its category (another speaker, ``--match voice``, or
   another track, ``timbre``); ``descriptor`` = the input's fingerprint moved by ``describe(text)`` for each
   ``--descriptors`` text (``timbre``), the systems being given the description itself, a delta, as the product
   gives it (``render --target "warmer"``: the model in relative form, the match-EQ resolving it against the
   file's envelope; ``--descriptor-form absolute`` gives them the moved fingerprint instead); ``random`` = the input's fingerprint moved by a seeded random band shape
   (low shelf, high shelf and one peak of +-6 dB each) and a loudness change of +-6 LU (``timbre``). Per
   dimension, the mean absolute error before (input) and after (output) against the target: F0 (semitones,
   median F0), formants (mean |ratio - 1| of F1..F3, %), envelope (``band_distance_db``, dB), loudness (LU).
2. Content kept: STOI(output, input) at 16 kHz on speech with timbre-only targets (descriptor, random);
   DNSMOS OVRL (speechmos P.835, one thread, 16 kHz) of every speech output beside its input's.
3. Identity: target = the input's own fingerprint (``timbre``); the largest per-band deviation (dB) of the
   output's long-term band envelope from the input's, over the compared bands both define (absolute levels, not
   level-free; goal <= 0.5 dB).
4. Codec repair: speech through ffmpeg (``degrade.codec_roundtrip``: Opus 6/8/12 kbps, MP3 32 kbps, decoded to
   ``--rate`` and delay-aligned), then each system toward the codec-repair target (``--codec-target``, default:
   the mean fingerprint of ``--codec-ref-files`` clean train-split speech clips moved by ``--codec-describe``,
   default "clearer highs"), the shipped ``codec-repair`` preset as a user runs it, and (Opus rows) the same Opus
   stream decoded by libopus 1.5 with NoLACE (``libopus-nolace``: node and npm's WebAssembly build, see OPUS_ML;
   left out with a log line where they are missing); PESQ-WB, STOI and DNSMOS OVRL at 16 kHz against the
   uncompressed original. ``--skip profile speed --categories speech`` runs this
   section alone.
5. Speed: the model stage's RTF on one thread, 48 kHz mono, 10 ms blocks, round-robin with RNNoise
   (``pyrnnoise``) on the same audio (``denoise.rtf_interleaved``), and its latency against the STFT
   configuration's n_fft - 1 plus the declared look-ahead.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
import math
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from resculpt.models.resculpt.common import EVAL_DESCRIPTORS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _denoise():
    """benchmarks/denoise.py (the shared metric, peer and timing helpers), loaded by path."""
    import importlib.util

    if "denoise" not in sys.modules:
        spec = importlib.util.spec_from_file_location("denoise", HERE / "denoise.py")
        sys.modules["denoise"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["denoise"])
    return sys.modules["denoise"]


_dn = _denoise()
SR, align, dnsmos_ovrl, metrics, rnnoise, rs, rtf_interleaved = (
    _dn.SR, _dn.align, _dn.dnsmos_ovrl, _dn.metrics, _dn.rnnoise, _dn.rs, _dn.rtf_interleaved)

CODECS = (("opus", 6), ("opus", 8), ("opus", 12), ("mp3", 32))
SYSTEMS = ("identity", "match-eq", "model")
# The codec table adds the shipped preset as a user runs it (Chain.from_preset: whatever its layout holds).
CODEC_SYSTEMS = (*SYSTEMS, "codec-repair", "libopus-nolace")
# libopus 1.5's own deep speech enhancement (NoLACE, the decoder at complexity 7) on the same Opus stream: the
# npm build @wasm-audio-decoders/opus-ml run by node (benchmarks/peers/opus_ml_decode.mjs; scripts/bench-venv.sh).
OPUS_ML = Path(__file__).resolve().parent / "peers" / "opus_ml_decode.mjs"
DESCRIPTORS = EVAL_DESCRIPTORS
KINDS = ("reference", "descriptor", "random", "identity")
SEED = 20261130
RTF_BLOCK_S = 0.01


# -- the model ----------------------------------------------------------------------------------------------
def fresh_bundle(folder: Path) -> Path:
    """Export an untrained generator (default size, look-ahead 1) to ``folder/bundle``: a speed reference of the
    trained one's size. Its output heads are drawn at random (N(0, 0.1)): freshly initialised, the net returns its
    input and the export refuses a bundle whose reference inputs leave it at the identity. Needs torch and onnx
    (the product venv)."""
    import torch
    from resculpt.models.resculpt import export
    from resculpt.models.resculpt.net import ResculptNet

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = ResculptNet(lookahead=1).randomise_heads()
    torch.save({"net": net.state_dict(), "net_kwargs": {"lookahead": 1}, "step": 0,
                "sample_rate": 16000}, folder / "ckpt.pt")
    export.export(folder / "ckpt.pt", folder / "bundle")
    return folder / "bundle"


def export_fresh_elsewhere(folder: Path) -> Path:
    """:func:`fresh_bundle` run by the repository's ``.venv`` (this one may lack the ONNX exporter)."""
    try:
        import onnx  # noqa: F401

        return fresh_bundle(folder)
    except ImportError:
        py = REPO / ".venv" / "bin" / "python"
        subprocess.run([str(py), str(Path(__file__).resolve()), "--export-fresh", str(folder)], check=True)
        return folder / "bundle"


def model_chain(bundle, sr: int, block: int, target=None, match: str = "timbre"):
    """The product's chain with only the ``resculpt`` stage, running the bundle in folder ``bundle`` (through
    the loader's ``RESCULPT_GENERATOR_BUNDLE``), its target published with ``Chain.set_target(engine="model")``
    and ``resculpt.match`` set: what ``render --engine model`` runs, minus the preset's other stages."""
    from resculpt.models.resculpt.bundle import BUNDLE_ENV
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.layout import Layout

    os.environ[BUNDLE_ENV] = str(bundle)
    ch = Chain(Layout(spectral=("resculpt",)), sr, 1, block)
    ch.params["resculpt.match"] = match
    if target is not None:
        ch.set_target(target, engine="model")
    return ch


def model_render(x: np.ndarray, sr: int, target, match: str, bundle: str, block: int = 4096,
                 prime: bool = True, passes: int = 2, input_fp=None) -> np.ndarray:
    """The model moving ``x`` (n,) float32 at ``sr`` toward ``target`` (a Profile: absolute or a delta) over the dims of
    ``match``; returns (n,) aligned with ``x`` (latency trimmed). Every figure of the model goes through here. As
    ``render`` runs it (``render_with_target``, 2 passes): the stage is first given the whole clip's long-term envelope
    and loudness, and the second pass corrects the target by what the first pass's output measured. ``prime`` False:
    one pass as a live stream runs it (the speed figures: the sweeps before the stream are not the model's cost
    per second); ``passes``: render's passes when primed (1: no correction); ``input_fp``: the chain's input
    profile (``Chain.set_input_profile``: a live stream that knows its input beforehand), None: none."""
    from resculpt.plugin_host.render import render_with_target

    ch = model_chain(bundle, sr, block, target, match)
    if input_fp is not None:
        ch.set_input_profile(input_fp)
    xx = np.asarray(x, np.float32)[None]
    if prime and target is not None:
        return render_with_target(ch, xx, sr, target, block, passes=passes)[0][0]
    return ch(xx)[0]


def preset_render(x: np.ndarray, sr: int, preset: str, bundle) -> np.ndarray:
    """A shipped preset over ``x`` (n,) with the bundle in folder ``bundle`` installed (its target, if any, takes
    the `auto` engine: the model); (n,) aligned with ``x``."""
    from resculpt.models.resculpt.bundle import BUNDLE_ENV
    from resculpt.plugin_host.chain import Chain

    os.environ[BUNDLE_ENV] = str(bundle)
    return Chain.from_preset(preset, sr, 1, 4096)(np.asarray(x, np.float32)[None])[0]


def model_latency(bundle: str, sr: int = 48000) -> dict:
    """Measured latency of the model's section vs the STFT configuration's n_fft - 1 plus the look-ahead."""
    from resculpt.models.resculpt.bundle import load_bundle
    from resculpt.models.resculpt.common import frame_sizes

    ch = model_chain(bundle, sr, 480)
    n_fft, hop = frame_sizes(sr)
    bound = n_fft - 1 + hop * load_bundle(bundle).lookahead_frames
    return {"samples": ch.latency_samples, "bound_samples": bound, "ms": 1000.0 * ch.latency_samples / sr}


def match_eq_render(x: np.ndarray, sr: int, target, live: bool = False, passes: int = 2,
                    input_fp=None) -> np.ndarray:
    """The match-EQ over ``x`` (n,) as ``render`` runs it (primed, ``passes`` passes), or with ``live`` as a live
    stream runs it (one pass, learning the input's envelope as it goes, or held at ``input_fp``, the chain's input
    profile)."""
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.layout import Layout
    from resculpt.plugin_host.render import render_with_target, with_match_stage

    ch = with_match_stage(Chain(Layout(), sr, 1, 4096))
    if input_fp is not None:
        ch.set_input_profile(input_fp)
    y, _ = render_with_target(ch, x[None], sr, target, 4096, passes=1 if live else passes, prime=not live)
    return y[0]


def run_system(name: str, x: np.ndarray, sr: int, target, match: str, bundle: str, prior: str = "none",
               live: bool = False, passes: int = 2, trim: str = "none", input_fp=None) -> np.ndarray:
    """``name``'s output for ``x`` (n,); ``prior`` "match-eq": the model hears the match-EQ's render, not the input;
    ``trim`` "match-eq": the match-EQ's render of the model's output toward the same target is the model row (the
    EQ trims what the model left of the long-term envelope); ``live``: both engines run as a live stream does (no
    priming, one pass), not as ``render`` does; ``passes``: the offline renders' passes (render runs 2); ``input_fp``:
    live, the chains' input profile (None: none)."""
    if name == "identity":
        return x
    if name == "match-eq":
        return match_eq_render(x, sr, target, live, passes, input_fp)
    if prior == "match-eq":
        x = match_eq_render(x, sr, target, live, passes, input_fp)
    y = model_render(x, sr, target, match, bundle, prime=not live, passes=passes, input_fp=input_fp)
    if trim == "match-eq":
        y = match_eq_render(y, sr, target, live, passes)
    return y


# -- targets and metrics ------------------------------------------------------------------------------------
def matched_weights(match: str) -> dict:
    """``distance`` weights: every scalar dim outside the match mode at 0 (the band shape keeps its weight)."""
    from resculpt.dsp.profile import DIMS
    from resculpt.models.resculpt.common import MATCH

    return {d.name: 0.0 for d in DIMS if d.name not in MATCH[match]}


def error_ratio(p_out, p_in, target, match: str) -> float:
    """distance(out, target) / distance(in, target) over the matched dims (NaN when the input is on target)."""
    from resculpt.dsp.profile import distance

    w = matched_weights(match)
    d0 = distance(p_in, target, w)
    return distance(p_out, target, w) / d0 if d0 > 1e-9 else float("nan")


def distance_parts(p, target, match: str) -> dict:
    """``distance_terms`` of profile ``p`` against ``target`` over the dims of ``match`` (see :func:`error_ratio`):
    {"terms": {dim: weighted squared normalised difference}, "den": the weight sum}."""
    from resculpt.dsp.profile import distance_terms

    terms, den = distance_terms(p, target, matched_weights(match))
    return {"terms": terms, "den": den}


# What the remaining distance is made of: the dims of dsp.profile in groups a reader can act on.
TERM_GROUPS = (("F0 level", ("f0_median_hz",)), ("F0 range", ("f0_range_st",)), ("voicing", ("voiced_fraction",)),
               ("formants", ("f1_hz", "f2_hz", "f3_hz")), ("brightness", ("centroid_hz", "rolloff_hz", "tilt_db_oct")),
               ("HNR", ("hnr_db",)), ("loudness", ("lufs_integrated",)), ("dynamics", ("lra_lu", "crest_db")),
               ("envelope", ("band_env_db",)), ("pace", ("onset_rate_hz",)))


def term_table(rows) -> list[str]:
    """Markdown rows: per (target kind, system), each group's mean share of the output's summed distance terms and
    the mean ratio with that group landed exactly (its terms removed from the output's distance)."""
    out = []
    for kind in ("reference", "descriptor", "random"):
        for s in ("match-eq", "model"):
            sub = [r for r in rows if r["kind"] == kind and r["system"] == s and "parts_out" in r]
            if not sub:
                continue
            cells = []
            for _, dims in TERM_GROUPS:
                share, landed = [], []
                for r in sub:
                    ti, to = r["parts_in"], r["parts_out"]
                    s_in, s_out = sum(ti["terms"].values()), sum(to["terms"].values())
                    g = sum(to["terms"].get(d, 0.0) for d in dims)
                    if s_in > 0 and s_out > 0 and ti["den"] > 0 and to["den"] > 0:
                        share.append(g / s_out)
                        landed.append(math.sqrt(max(s_out - g, 0.0) / to["den"]) / math.sqrt(s_in / ti["den"]))
                cells.append(f"{100 * _nanmean(share):.0f} % ({_nanmean(landed):.2f})" if share else "—")
            out.append(f"| {kind} | {s} | " + " | ".join(cells) + " |")
    return out


def dim_errors(p, target) -> dict:
    """Absolute error of profile ``p`` against ``target`` per dimension group, in physical units:
    f0 (semitones), formants (mean |ratio - 1| of F1..F3, %), envelope (level-free band RMS, dB), loudness (LU)."""
    from resculpt.dsp.profile import band_distance_db

    def g(q, k):
        return float(q.dims[k])

    f0 = abs(12.0 * math.log2(g(p, "f0_median_hz") / g(target, "f0_median_hz"))) if (
        g(p, "f0_median_hz") > 0 and g(target, "f0_median_hz") > 0) else float("nan")
    fm = [abs(g(p, k) / g(target, k) - 1.0) * 100.0 for k in ("f1_hz", "f2_hz", "f3_hz")
          if g(p, k) > 0 and g(target, k) > 0]
    rg = abs(g(p, "f0_range_st") - g(target, "f0_range_st"))
    return {"f0_st": f0, "f0_range_st": rg, "formants_pct": float(np.mean(fm)) if fm else float("nan"),
            "envelope_db": band_distance_db(p.band_env_db, target.band_env_db),
            "loudness_lu": abs(g(p, "lufs_integrated") - g(target, "lufs_integrated"))}


def max_band_deviation_db(y: np.ndarray, x: np.ndarray, sr: int) -> float:
    """Largest |long-term band level of y - that of x| (dB) over the compared bands both define."""
    from resculpt.dsp.profile import compare_mask, limit_bandwidth, long_term_envelope

    a, b = limit_bandwidth(long_term_envelope(y, sr)), limit_bandwidth(long_term_envelope(x, sr))
    ok = np.isfinite(a) & np.isfinite(b) & compare_mask()
    return float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else float("nan")


def random_delta(rng: np.random.Generator):
    """A seeded random move: low shelf, high shelf and one peak (+-6 dB each) on the band shape, +-6 LU."""
    from resculpt.dsp.descriptors import high_shelf, low_shelf, peak
    from resculpt.dsp.profile import empty_delta

    d = empty_delta(source="random")
    d.band_env_db = list(low_shelf(rng.uniform(100, 400), rng.uniform(-6, 6))
                         + high_shelf(rng.uniform(2000, 8000), rng.uniform(-6, 6))
                         + peak(rng.uniform(300, 4000), rng.uniform(-6, 6), rng.uniform(1.0, 2.0)))
    d.dims["lufs_integrated"] = float(rng.uniform(-6, 6))
    return d


def mean_profile(profiles):
    """The mean of fingerprints (dims and band levels, NaN-aware) as a target Profile."""
    from resculpt.dsp.profile import DIMS, Profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a dim no clip defines stays NaN
        dims = {d.name: float(np.nanmean([p.dims[d.name] for p in profiles])) for d in DIMS}
        env = np.nanmean(np.stack([p.env() for p in profiles]), axis=0)
    return Profile("target", dims, list(env), meta={"source": "mean of " + ", ".join(p.meta.get("source", "?")
                                                                                    for p in profiles)})


def codec_target(a, sr: int):
    """The codec-repair target: ``--codec-target`` (a profile JSON) or the mean fingerprint of clean train-split
    speech; then moved by ``--codec-describe``."""
    from resculpt.dsp.descriptors import describe
    from resculpt.dsp.profile import apply_delta, fingerprint, load_profile
    from resculpt.models import data

    if a.codec_target != "train-speech":
        base = load_profile(a.codec_target)
    else:
        its = [it for it in data.select("speech", "train") if it.duration_s >= a.seconds][: a.codec_ref_files]
        base = mean_profile([fingerprint(_clip(it, sr, a.seconds), sr, it.path.name) for it in its])
    return apply_delta(base, describe(a.codec_describe)) if a.codec_describe else base


def _clip(it, sr: int, seconds: float) -> np.ndarray:
    from resculpt.models import data

    x, _ = data.load(it, sample_rate=sr)
    return np.ascontiguousarray(x[: int(seconds * sr)], np.float32)


def rest_fingerprint(name: str, cat: str, sr: int, seconds: float):
    """The fingerprint of the same val file's next ``seconds`` after its clip (another take of the same voice or
    track, through the same chain of recording), or None when under 3 s of it is left."""
    from resculpt.dsp.profile import fingerprint
    from resculpt.models import data

    it = next(i for i in data.select(cat, "val") if i.path.name == name)
    x, _ = data.load(it, sample_rate=sr)
    rest = np.ascontiguousarray(x[int(seconds * sr) : int(2 * seconds * sr)], np.float32)
    return fingerprint(rest, sr, f"{name} after {seconds:g} s") if rest.size >= 3 * sr else None


def _nanmean(v):
    v = [x for x in v if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


# -- the run ------------------------------------------------------------------------------------------------
def profile_section(a, clips, sr, bundle, log):
    """Sections 1-3: one record per (file, target, system). A target is measured against as an absolute
    profile; a descriptor's systems are given the delta itself unless ``--descriptor-form absolute``."""
    from pystoi import stoi
    from resculpt.dsp.descriptors import describe
    from resculpt.dsp.profile import apply_delta, fingerprint

    recs = []
    fps = {name: fingerprint(x, sr, name) for name, _, x in clips}
    for k, (name, cat, x) in enumerate(clips):
        same = [c for c in clips if c[1] == cat]
        i = [c[0] for c in same].index(name)
        targets = []
        if len(same) > 1 and "reference" in a.kinds:
            ref = same[(i + 1) % len(same)][0]
            targets.append(("reference", ref, fps[ref], "voice" if cat == "speech" else "timbre", fps[ref]))
        for text in (a.descriptors if "descriptor" in a.kinds else ()):
            moved = apply_delta(fps[name], describe(text))
            targets.append(("descriptor", text, moved, "timbre",
                            describe(text) if a.descriptor_form == "delta" else moved))
        rng = np.random.default_rng([SEED, k])
        for r in range(a.random if "random" in a.kinds else 0):
            moved = apply_delta(fps[name], random_delta(rng))
            targets.append(("random", f"random {r}", moved, "timbre", moved))
        if "identity" in a.kinds:
            targets.append(("identity", "own profile", fps[name], "timbre", fps[name]))
        x16 = rs(x, sr, SR)
        in_ovrl = dnsmos_ovrl(x16) if cat == "speech" else float("nan")
        ifp = rest_fingerprint(name, cat, sr, a.seconds) if a.live and a.input_profile == "rest" else None
        for kind, tname, tgt, match, given in targets:
            for sysname in SYSTEMS:
                y = run_system(sysname, x, sr, given, match, bundle, a.model_prior, a.live, a.passes, a.model_trim,
                               ifp)
                rec = {"file": name, "category": cat, "kind": kind, "target": tname, "match": match,
                       "system": sysname}
                if kind == "identity":
                    rec["max_band_dev_db"] = max_band_deviation_db(y, x, sr)
                else:
                    po = fps[name] if sysname == "identity" else fingerprint(y, sr, name)
                    rec["ratio"] = error_ratio(po, fps[name], tgt, match)
                    rec["parts_in"] = distance_parts(fps[name], tgt, match)
                    rec["parts_out"] = distance_parts(po, tgt, match)
                    rec["err_in"] = dim_errors(fps[name], tgt)
                    rec["err_out"] = dim_errors(po, tgt)
                if cat == "speech":
                    y16 = rs(y, sr, SR)
                    rec["stoi_vs_input"] = float(stoi(x16, y16, SR, extended=False))
                    rec["ovrl"] = in_ovrl if sysname == "identity" else dnsmos_ovrl(np.clip(y16, -1, 1))
                    rec["ovrl_input"] = in_ovrl
                recs.append(rec)
                log(f"{name[:24]:24s} {kind:10s} {tname[:26]:26s} {sysname:9s} "
                    + " ".join(f"{k2}={v:.3f}" for k2, v in rec.items() if isinstance(v, float)))
    return recs


def codec_section(a, clips, sr, bundle, log):
    from resculpt.models.resculpt.degrade import codec_roundtrip, have_codecs

    why = have_codecs()
    if why:
        return [], why
    tgt = codec_target(a, sr)
    systems = list(a.codec_systems)
    if "libopus-nolace" in systems and (ml_why := opus_ml_missing()):
        log(f"libopus-nolace left out: {ml_why} (scripts/bench-venv.sh installs node's package)")
        systems.remove("libopus-nolace")
    recs = []
    for name, cat, x in clips:
        if cat != "speech":
            continue
        ref16 = rs(x, sr, SR)
        # The uncompressed original itself: its DNSMOS OVRL is the most a faithful repair can reach.
        orig = {"pesq_wb": float("nan"), "stoi": 1.0, "dnsmos_ovrl": dnsmos_ovrl(np.clip(ref16, -1, 1))}
        for codec, kbps in CODECS:
            recs.append({"file": name, "codec": f"{codec} {kbps} kbps", "system": "original", **orig})
            dec, _ = codec_roundtrip(x, sr, codec, kbps)
            for sysname in systems:
                if sysname == "libopus-nolace":
                    if codec != "opus":
                        continue
                    y = opus_ml_decode(x, sr, kbps, "nolace")
                elif sysname == "codec-repair":
                    y = preset_render(dec, sr, a.codec_preset, bundle)
                else:
                    y = run_system(sysname, dec, sr, tgt, "timbre", bundle)
                m = metrics(align(rs(y, sr, SR), ref16)[0], ref16)
                recs.append({"file": name, "codec": f"{codec} {kbps} kbps", "system": sysname, **m})
                log(f"{name[:24]:24s} {codec} {kbps:>2} kbps {sysname:9s} PESQ {m['pesq_wb']:.3f} STOI {m['stoi']:.3f} "
                    f"OVRL {m['dnsmos_ovrl']:.3f}")
    return recs, None


def opus_ml_decode(x, sr: int, kbps: float, mode: str):
    """``x`` (float32 mono at ``sr``) encoded as the codec table encodes it (``degrade.codec_encode``, the same
    bytes) and decoded by libopus 1.5 with its deep speech enhancement ``mode`` (none, lace, nolace) at 48 kHz,
    back at ``sr`` and aligned to ``x`` as ffmpeg's decode is (``degrade.aligned``)."""
    from resculpt.models.resculpt.degrade import aligned, codec_encode

    out = subprocess.run(["node", str(OPUS_ML), mode], input=codec_encode(x, sr, "opus", kbps),
                         capture_output=True, check=True)
    dec = np.frombuffer(out.stdout, np.float32)
    return aligned(x, rs(dec, 48000, sr).astype(np.float32) if sr != 48000 else dec.copy())[0]


def opus_ml_missing() -> str | None:
    """Why the libopus-nolace row cannot run here (node or the npm package missing), or None."""
    try:
        r = subprocess.run(["node", str(OPUS_ML), "none"], input=b"", capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"node not runnable ({e})"
    err = r.stderr.decode(errors="replace")
    return None if "not an Ogg Opus stream" in err else (err.strip().splitlines() or ["no output"])[-1]


def speed_target():
    """The fixed target of the speed figures (a mid-bright voice shape; the model's cost does not depend on it)."""
    from resculpt.dsp.profile import Profile

    return Profile("target", {"centroid_hz": 1500.0}, band_env_db=list(-30.0 - 1.5 * np.arange(32)))


def speed_section(a, bundle):
    tgt = speed_target()
    blk = int(RTF_BLOCK_S * 48000)
    t = np.arange(2 * SR) / SR
    ph = 2 * np.pi * np.cumsum(130 + 25 * np.sin(2 * np.pi * 1.3 * t)) / SR
    sig16 = (0.05 * sum(np.sin(h * ph) / h for h in range(1, 25)) * (np.sin(2 * np.pi * 2.5 * t) > -0.2)).astype(np.float32)
    r = rtf_interleaved({"model": (lambda x48: model_render(x48, 48000, tgt, "timbre", bundle, block=blk, prime=False), 48000),
                         "rnnoise": (rnnoise(), 48000),
                         # what `render --target` runs offline (sweeps, priming, 2 passes, 4096-sample blocks)
                         "render_model": (lambda x48: model_render(x48, 48000, tgt, "timbre", bundle), 48000),
                         "render_match_eq": (lambda x48: match_eq_render(x48, 48000, tgt), 48000)},
                        a.rtf_seconds, sig16, a.rtf_rounds)
    return {**r, "ratio_to_rnnoise": r["model"] / r["rnnoise"], "latency": model_latency(bundle),
            "load_avg": os.getloadavg()}


def load_clips(a, sr):
    from resculpt.models import data

    sp = [it for it in data.select("speech", "val") if it.duration_s >= a.seconds][: a.files]
    mu = [it for it in data.select("music", "val") if it.duration_s >= a.seconds][: a.files]
    sp, mu = (sp if "speech" in a.categories else []), (mu if "music" in a.categories else [])
    return [(it.path.name, cat, _clip(it, sr, a.seconds)) for cat, its in (("speech", sp), ("music", mu)) for it in its]


def bundle_training(bundle: str) -> dict:
    return json.loads((Path(bundle) / "config.json").read_text()).get("training") or {}


def main(argv=None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    ap = argparse.ArgumentParser(prog="benchmarks/resculpt_model.py")
    ap.add_argument("--bundle", help="resculpt model bundle folder (default: export an untrained one to a temp dir)")
    ap.add_argument("--export-fresh", metavar="DIR", help="export an untrained generator to DIR/bundle and stop")
    ap.add_argument("--files", type=int, default=6, help="val files per category (speech, music)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each clip")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--descriptors", nargs="*", default=list(DESCRIPTORS))
    ap.add_argument("--descriptor-form", choices=("delta", "absolute"), default="delta",
                    help="what the systems are given for a descriptor target: the description (a delta, as the "
                         "product gives it) or the input's fingerprint moved by it")
    ap.add_argument("--random", type=int, default=2, help="random targets per file")
    ap.add_argument("--codec-target", default="train-speech",
                    help="profile JSON of the codec-repair target, or 'train-speech' (mean of clean train speech)")
    ap.add_argument("--codec-describe", default="clearer highs", help="descriptor applied to the codec target ('' for none)")
    ap.add_argument("--codec-ref-files", type=int, default=4)
    ap.add_argument("--codec-systems", nargs="*", default=list(CODEC_SYSTEMS), choices=list(CODEC_SYSTEMS),
                    help="the systems of the codec table (identity is the reference of its deltas: keep it)")
    ap.add_argument("--codec-preset", default="codec-repair",
                    help="the preset of the codec table's `codec-repair` row: a shipped name or a preset file (e.g. "
                         "an earlier version, `git show REV:presets/codec-repair.json`)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["profile", "codec", "speed"])
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS),
                    help="target kinds of the profile section")
    ap.add_argument("--categories", nargs="*", default=["speech", "music"], choices=["speech", "music"])
    ap.add_argument("--model-prior", choices=("none", "match-eq"), default="none",
                    help="what the profile section's model row hears: the input (none), or the match-EQ's 2-pass "
                         "render of it (the model then moves what an EQ left)")
    ap.add_argument("--model-trim", choices=("none", "match-eq"), default="none",
                    help="what follows the profile section's model row: nothing, or the match-EQ toward the same "
                         "target (its 2-pass render of the model's output: an EQ trims what the model left)")
    ap.add_argument("--voice-excite", type=float, default=None, metavar="PCT",
                    help="the voice match's synthesized excitation share (dsp.voice.match.EXCITE_PCT, 0-100; the "
                         "product's is 0): measures the excitation on voice-mode targets")
    ap.add_argument("--voice-harmonic", choices=("on", "off"), default="on",
                    help="off: the voice match shifts every frame with the peak-locked phase vocoder, as before the "
                         "harmonic shift of low voices (dsp.voice.anon.AnonVoice.harmonic; the product's is on)")
    ap.add_argument("--live", action="store_true",
                    help="the profile section's engines run as a live stream does (no priming with the whole input, "
                         "one pass: the first seconds learn the input's envelope), not as render does")
    ap.add_argument("--input-profile", choices=("none", "rest"), default="none",
                    help="with --live: 'rest' gives both engines' chains the fingerprint of the same file's next "
                         "--seconds as their input profile (Chain.set_input_profile: a live stream that knows its "
                         "input from an earlier take; files with under 3 s left learn as they go)")
    ap.add_argument("--passes", type=int, default=2,
                    help="passes of both engines' offline renders (render runs 2: the second corrects the envelope "
                         "and loudness by what the first measured)")
    ap.add_argument("--rtf-seconds", type=float, default=10.0)
    ap.add_argument("--rtf-rounds", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "resculpt"))
    a = ap.parse_args(argv)
    if a.input_profile != "none" and not a.live:
        ap.error("--input-profile is a live stream's: give --live too (an offline render measures its input)")
    if a.export_fresh:
        print(fresh_bundle(Path(a.export_fresh)))
        return 0
    from resculpt.models import data

    if not data.have_data():
        print("shared data not found (set RESCULPT_DATA)", file=sys.stderr)
        return 1
    cmd = "benchmarks/resculpt_model.py " + " ".join(shlex.quote(v) for v in argv)
    if a.voice_harmonic == "off":
        from resculpt.dsp.voice import anon

        anon.AnonVoice.harmonic = False
    if a.voice_excite is not None:
        from resculpt.dsp.voice import match

        match.EXCITE_PCT = min(max(float(a.voice_excite), 0.0), 100.0)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = a.bundle or str(export_fresh_elsewhere(Path(tmp)))
        training = bundle_training(bundle)

        def log(s):
            print(f"[{time.time() - t0:6.0f} s] {s}", flush=True)

        clips = load_clips(a, a.rate)
        res = {"profile": [], "codec": [], "codec_skipped": None, "speed": None}
        if "profile" not in a.skip:
            res["profile"] = profile_section(a, clips, a.rate, bundle, log)
        if "codec" not in a.skip:
            res["codec"], res["codec_skipped"] = codec_section(a, clips, a.rate, bundle, log)
        if "speed" not in a.skip:
            res["speed"] = speed_section(a, bundle)
            log(json.dumps(res["speed"]))
    meta = {"command": cmd, "time_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_s": time.time() - t0,
            "files": [c[0] for c in clips], "rate": a.rate, "seconds": a.seconds, "bundle": str(a.bundle or "fresh export"),
            "bundle_training": training, "untrained": not (training.get("steps") or training.get("step")), "load_avg": os.getloadavg(),
            "cpu_count": os.cpu_count(), "codec_target": a.codec_target, "codec_describe": a.codec_describe,
            "descriptor_form": a.descriptor_form, "live": a.live, "input_profile": a.input_profile,
            "passes": a.passes, "model_trim": a.model_trim,
            "codec_preset": a.codec_preset, "voice_excite": a.voice_excite, "voice_harmonic": a.voice_harmonic,
            "lace": LACE_NOTE}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".json").write_text(json.dumps({"meta": meta, **res}, indent=1, default=float))
    md = report(meta, res)
    Path(str(out) + ".md").write_text(md)
    print(md)
    return 0


LACE_NOTE = ("Debian 12's libopus0 is 1.3.1 and PyPI's `opuscodec` 0.1.3 (libopus 1.6.1) is built without OSCE; "
             "npm's `@wasm-audio-decoders/opus-ml` 0.0.3 is libopus 1.5 with it, run here by node on the same Opus "
             "stream as the `libopus-nolace` row (decoder complexity 7: NoLACE). Checked by hand on one speech clip, not by "
             "this benchmark: NoLACE left its 6 and 8 kbps decodes unchanged sample for sample (libopus codes them with nothing above 6 kHz, "
             "narrow- or medium-band SILK, which this build's LACE/NoLACE leave as they are) and changes the 12 kbps "
             "one.")


# -- the report ---------------------------------------------------------------------------------------------
def _f(v, fmt="{:.2f}"):
    return "—" if v is None or not np.isfinite(v) else fmt.format(v)


def _training_line(t: dict) -> str:
    """The bundle's training record in one line: steps, wall time, validation figures."""
    if not t:
        return "none recorded"
    steps = t.get("steps", t.get("step", 0))
    # an export that switched the net (scripts/resculpt_export_switched.py) carries the switched net's own validation
    v = t.get("exported_val") or t.get("val") or {}
    val = ", ".join(f"{k} {x:.3g}" for k, x in v.items() if isinstance(x, (int, float)))
    wall = f", {t['wall_s'] / 3600:.2f} h" if "wall_s" in t else ""
    note = f" ({t['exported_note']})" if t.get("exported_val") and t.get("exported_note") else ""
    return f"step {steps}{wall}{note}; validation: {val or 'none'}"


_DESCRIPTOR_FORMS = {"delta": "the description itself (a delta: the model's relative form), as the product gives them",
                     "absolute": "the input's fingerprint moved by the description (an absolute target)"}


def report(meta, res) -> str:
    cmd = f"`{meta['command']}`"
    L = []
    if meta["untrained"]:
        L += ["# Resculpting model benchmark — SMOKE RUN with an UNTRAINED bundle (not results)", "",
              ("**The model rows come from a freshly initialised generator (step 0: it returns its input within "
              "-60 dB), so they show only that the benchmark runs end to end; they say nothing about the model.**"), ""]
    else:
        L += ["# Resculpting model benchmark (held-back real speech and music)", ""]
    L += [(f"Generated by {cmd} on {meta['time_utc']} ({meta['wall_s']:.0f} s, {meta['cpu_count']} shared cores, load "
          f"average {meta['load_avg'][0]:.1f}). Bundle: {meta['bundle']} (training: {_training_line(meta['bundle_training'])}). "
          f"{len(meta['files'])} val files ({', '.join(meta['files'])}), first {meta['seconds']:g} s, {meta['rate']} Hz mono. "
          f"Descriptor targets given to the systems as {_DESCRIPTOR_FORMS[meta.get('descriptor_form', 'absolute')]}. "
          + ("Both engines run as a live stream runs them (`--live`: no priming with the whole input, one pass). "
             if meta.get("live") else "")
          + ("Their chains hold the fingerprint of the same file's next seconds as their input profile "
             "(`--input-profile rest`). " if meta.get("input_profile") == "rest" else "")
          + (f"Offline renders in {meta['passes']} pass(es) (`--passes`; render runs 2). "
             if meta.get("passes", 2) != 2 else "")
          + ("The model rows are the model's output trimmed by the match-EQ toward the same target (`--model-trim "
             "match-eq`). " if meta.get("model_trim", "none") != "none" else "")
          + (f"The voice match synthesizes {meta['voice_excite']:g} % of its voiced frames' excitation "
             "(`--voice-excite`; the product's share is 0). " if meta.get("voice_excite") is not None else "")
          + ("The voice match shifts every frame with the peak-locked vocoder (`--voice-harmonic off`; the product "
             "shifts a low voice's voiced frames with the harmonic model). " if meta.get("voice_harmonic") == "off"
             else "")
          + "Every row below comes from this one command."), ""]
    P = res["profile"]
    if P:
        L += [("## 1. Profile error ratio (distance(out, target) / distance(in, target), matched dims; lower is better; "
              "goal <= 0.3 on reference targets and below the match-EQ's everywhere)"), "",
              f"Command: {cmd}", "", "| target kind | category | match | n | identity | match-eq | model (mean) | model (median) |",
              "|---|---|---|---|---|---|---|---|"]
        for kind in ("reference", "descriptor", "random"):
            for cat in ("speech", "music"):
                sub = [r for r in P if r["kind"] == kind and r["category"] == cat]
                if not sub:
                    continue
                by = {s: [r["ratio"] for r in sub if r["system"] == s] for s in SYSTEMS}
                L.append(f"| {kind} | {cat} | {sub[0]['match']} | {len(by['model'])} | {_f(_nanmean(by['identity']))} | "
                         f"{_f(_nanmean(by['match-eq']))} | {_f(_nanmean(by['model']))} | "
                         f"{_f(float(np.nanmedian(by['model'])) if by['model'] else float('nan'))} |")
        L += ["", ("Per dimension: mean absolute error against the target, input -> output (F0 in semitones, formants "
              "mean |ratio - 1| of F1..F3 in %, F0 range |p90 - p10 difference| in semitones, envelope level-free band RMS in dB, loudness in LU)."), "",
              f"Command: {cmd}", "", "| target kind | system | F0 st | F0 range st | formants % | envelope dB | loudness LU |",
              "|---|---|---|---|---|---|---|"]
        for kind in ("reference", "descriptor", "random"):
            for s in ("match-eq", "model"):
                sub = [r for r in P if r["kind"] == kind and r["system"] == s]
                if not sub:
                    continue
                cells = [f"{_f(_nanmean([r['err_in'][k] for r in sub]))} -> {_f(_nanmean([r['err_out'][k] for r in sub]))}"
                         for k in ("f0_st", "f0_range_st", "formants_pct", "envelope_db", "loudness_lu")]
                L.append(f"| {kind} | {s} | " + " | ".join(cells) + " |")
        tt = term_table(P)
        if tt:
            L += ["", ("What the remaining distance is made of: each group's mean share of the output's summed distance "
                  "terms (weight x squared normalised difference, the matched dims of `dsp.profile.distance`), and in "
                  "brackets the mean ratio if that group alone landed exactly (the ratio's goal is 0.3)."), "",
                  f"Command: {cmd}", "", "| target kind | system | " + " | ".join(g for g, _ in TERM_GROUPS) + " |",
                  "|---|---|" + "---|" * len(TERM_GROUPS)] + tt
        sp = [r for r in P if r["category"] == "speech" and r["kind"] != "identity"]
        L += ["", "## 2. Content kept (speech)", "", ("STOI(output, input) on timbre-only targets (descriptor, random; goal "
              ">= 0.9) and DNSMOS OVRL of the outputs beside the inputs' (goal >= input - 0.1), all speech targets."), "",
              f"Command: {cmd}", "", "| system | STOI vs input | DNSMOS OVRL output | DNSMOS OVRL input | output - input |",
              "|---|---|---|---|---|"]
        for s in SYSTEMS:
            st = [r["stoi_vs_input"] for r in sp if r["system"] == s and r["kind"] in ("descriptor", "random")]
            ov = [r["ovrl"] for r in sp if r["system"] == s]
            oi = [r["ovrl_input"] for r in sp if r["system"] == s]
            L.append(f"| {s} | {_f(_nanmean(st), '{:.3f}')} | {_f(_nanmean(ov))} | {_f(_nanmean(oi))} | "
                     f"{_f(_nanmean(ov) - _nanmean(oi), '{:+.2f}')} |")
        ids = [r for r in P if r["kind"] == "identity"]
        L += ["", ("## 3. Identity (target = the input's own profile): largest per-band deviation of the output's long-term "
              "band envelope from the input's, dB (goal <= 0.5 dB)"), "", f"Command: {cmd}", "",
              "| system | mean over files | worst file |", "|---|---|---|"]
        for s in SYSTEMS:
            v = [r["max_band_dev_db"] for r in ids if r["system"] == s]
            L.append(f"| {s} | {_f(_nanmean(v), '{:.3f}')} | {_f(max(v) if v else float('nan'), '{:.3f}')} |")
    C = res["codec"]
    L += ["", ("## 4. Codec repair (speech; PESQ-WB, STOI, DNSMOS OVRL at 16 kHz against the uncompressed original; goal "
          "+0.3 PESQ-WB and +0.3 DNSMOS over the decoded input at 6-8 kbps)"), ""]
    if res.get("codec_skipped"):
        L.append(f"Not run: {res['codec_skipped']}.")
    elif C:
        L += [(f"Target: {meta['codec_target']} moved by \"{meta['codec_describe']}\". Systems run on the decoded "
              f"audio; `identity` is the decoded input; `codec-repair` is the preset `{meta.get('codec_preset', 'codec-repair')}` "
              "as a user runs it (its own layout and target, if any; `auto` engine); `original` is the uncompressed "
              "recording itself (PESQ-WB against itself not computed): its ΔOVRL is the most a repair that restores "
              "the original can gain."), "", f"Command: {cmd}", "",
              "| codec | system | n | PESQ-WB | STOI | DNSMOS OVRL | ΔPESQ vs decoded | ΔOVRL vs decoded |",
              "|---|---|---|---|---|---|---|---|"]
        for codec in dict.fromkeys(r["codec"] for r in C):
            base = {k: _nanmean([r[k] for r in C if r["codec"] == codec and r["system"] == "identity"])
                    for k in ("pesq_wb", "dnsmos_ovrl")}
            for s in ("original", *CODEC_SYSTEMS):
                sub = [r for r in C if r["codec"] == codec and r["system"] == s]
                if not sub:  # left out by --codec-systems (or a run from before the original's row)
                    continue
                m = {k: _nanmean([r[k] for r in sub]) for k in ("pesq_wb", "stoi", "dnsmos_ovrl")}
                L.append(f"| {codec} | {s} | {len(sub)} | {_f(m['pesq_wb'], '{:.3f}')} | {_f(m['stoi'], '{:.3f}')} | "
                         f"{_f(m['dnsmos_ovrl'])} | {_f(m['pesq_wb'] - base['pesq_wb'], '{:+.3f}')} | "
                         f"{_f(m['dnsmos_ovrl'] - base['dnsmos_ovrl'], '{:+.2f}')} |")
    L += ["", "Opus with LACE/NoLACE: " + meta["lace"]]
    S = res["speed"]
    if S:
        lat = S["latency"]
        L += ["", ("## 5. Speed (one thread, 48 kHz mono, 10 ms blocks, round-robin on the same audio, best round; goal: "
              "model RTF <= 2x RNNoise's)"), "", f"Command: {cmd}", "",
              "| system | RTF | latency |", "|---|---|---|",
              (f"| model stage (STFT section) | {S['model']:.3f} | {lat['samples']} samples = {lat['ms']:.2f} ms (bound: "
              f"n_fft - 1 + look-ahead = {lat['bound_samples']} samples) |"),
              f"| RNNoise (pyrnnoise) | {S['rnnoise']:.3f} | — |", "",
              (f"**Ratio model / RNNoise: {S['ratio_to_rnnoise']:.2f}** (load average during timing "
              f"{S['load_avg'][0]:.1f}: absolute RTFs on this shared machine are upper bounds).")]
        if "render_model" in S:
            L += ["", ("Offline, as `render --target` runs each engine (a sweep for the input's envelope and one for its "
                       "loudness, then 2 passes; 4096-sample blocks; wall time per second of audio, same rounds): "
                       f"model engine {S['render_model']:.3f}, match-EQ {S['render_match_eq']:.3f}.")]
    return "\n".join(L) + "\n"


# -- several runs side by side, and the auto engine's verdict ---------------------------------------------------
PROFILE_KINDS = ("reference", "descriptor", "random")
DIMS_SHOWN = ("f0_st", "f0_range_st", "formants_pct", "envelope_db", "loudness_lu")


def _cells(rows) -> list[tuple[str, str]]:
    """(kind, category) of the profile section's ratio table that ``rows`` (a run's profile records) fill."""
    return [(k, c) for k in PROFILE_KINDS for c in ("speech", "music")
            if any(r["kind"] == k and r["category"] == c for r in rows)]


def _mean_ratio(rows, kind: str, cat: str, system: str) -> float:
    return _nanmean([r["ratio"] for r in rows if r["kind"] == kind and r["category"] == cat and r["system"] == system])


def match_eq_verdict(rows) -> dict:
    """The auto engine's benchmark verdict on one run's profile records: ``worse_than_match_eq`` lists the
    "kind category" cells of the ratio table (reference, descriptor, random x speech, music) where the model's mean
    profile error ratio is not below the match-EQ's, and "identity" when the model's mean largest band deviation
    with the input's own profile as target is above the match-EQ's (the identity target kind: leaving audio alone);
    ``beats_match_eq_everywhere`` is true when none is listed (and the run has cells); ``cells`` lists the "kind
    category" cells the run measured (``bundle.auto_refusal`` reads a target form's kinds from them)."""
    worse = [f"{k} {c}" for k, c in _cells(rows)
             if not _mean_ratio(rows, k, c, "model") < _mean_ratio(rows, k, c, "match-eq")]
    ident = {s: _nanmean([r["max_band_dev_db"] for r in rows if r["kind"] == "identity" and r["system"] == s])
             for s in ("model", "match-eq")}
    if not ident["model"] <= ident["match-eq"] and not (math.isnan(ident["model"]) and math.isnan(ident["match-eq"])):
        worse.append("identity")
    return {"worse_than_match_eq": worse, "beats_match_eq_everywhere": bool(_cells(rows)) and not worse,
            "cells": [f"{k} {c}" for k, c in _cells(rows)]}


def compare_report(runs: dict, cmd: str) -> str:
    """Markdown: the model rows of several runs of this benchmark (``{label: report json}``, the same files,
    seconds and targets) side by side with identity and the match-EQ (taken from the first run; the match-EQ does
    not depend on the bundle)."""
    labels = list(runs)
    first = runs[labels[0]]
    for lab, r in runs.items():
        if (r["meta"]["files"], r["meta"]["seconds"], r["meta"]["rate"]) != (
                first["meta"]["files"], first["meta"]["seconds"], first["meta"]["rate"]):
            raise ValueError(f"{lab}: another set of files, length or rate than {labels[0]}")
    P0 = first["profile"]
    me = {lab: [r["ratio"] for r in runs[lab]["profile"] if r["system"] == "match-eq" and "ratio" in r] for lab in labels}
    me_dev = max((abs(u - v) for lab in labels for u, v in zip(me[lab], me[labels[0]])), default=0.0)
    L = ["# Resculpting model benchmark: bundles side by side (held-back real speech and music)", "",
         f"Generated by `{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from these runs of "
         "`benchmarks/resculpt_model.py` (one per bundle, the same files and targets; identity and match-EQ columns "
         f"from `{labels[0]}`'s run):", ""]
    for lab, r in runs.items():
        m = r["meta"]
        L.append(f"- **{lab}**: `{m['command']}` ({m['time_utc']}, {m['wall_s']:.0f} s, load average "
                 f"{m['load_avg'][0]:.1f}); bundle {m['bundle']} (training: {_training_line(m['bundle_training'])})")
    m = first["meta"]
    L += ["", f"{len(m['files'])} val files ({', '.join(m['files'])}), first {m['seconds']:g} s, {m['rate']} Hz mono. "
          f"Descriptor targets given as {_DESCRIPTOR_FORMS[m.get('descriptor_form', 'absolute')]}. The match-EQ's "
          f"ratios differ between the runs by at most {me_dev:.2g}.", "",
          "## Profile error ratio (distance(out, target) / distance(in, target), matched dims; lower is better; model "
          "columns: mean over the cell's targets)", "",
          "| target kind | category | match | n | identity | match-eq | " + " | ".join(labels) + " |",
          "|---|---|---|---|---|---|" + "---|" * len(labels)]
    for k, c in _cells(P0):
        sub = [r for r in P0 if r["kind"] == k and r["category"] == c]
        n = sum(r["system"] == "model" for r in sub)
        L.append(f"| {k} | {c} | {sub[0]['match']} | {n} | {_f(_mean_ratio(P0, k, c, 'identity'))} | "
                 f"{_f(_mean_ratio(P0, k, c, 'match-eq'))} | "
                 + " | ".join(_f(_mean_ratio(runs[lab]["profile"], k, c, "model")) for lab in labels) + " |")
    cm = {s: _nanmean([_mean_ratio(P0, k, c, s) for k, c in _cells(P0)]) for s in ("identity", "match-eq")}
    L.append(f"| mean of the cells | | | | {_f(cm['identity'])} | {_f(cm['match-eq'])} | " + " | ".join(
        _f(_nanmean([_mean_ratio(runs[lab]["profile"], k, c, "model") for k, c in _cells(P0)])) for lab in labels) + " |")
    L += ["", "Per dimension: mean absolute error against the target, input -> output (F0 st, F0 range st, formants %, "
          "envelope level-free band RMS dB, loudness LU).", "",
          "| target kind | system | F0 st | F0 range st | formants % | envelope dB | loudness LU |", "|---|---|---|---|---|---|---|"]
    for k in PROFILE_KINDS:
        for lab, rows, s in [("match-eq", P0, "match-eq"), *((lab, runs[lab]["profile"], "model") for lab in labels)]:
            sub = [r for r in rows if r["kind"] == k and r["system"] == s]
            if sub:
                L.append(f"| {k} | {lab} | " + " | ".join(
                    f"{_f(_nanmean([r['err_in'][d] for r in sub]))} -> {_f(_nanmean([r['err_out'][d] for r in sub]))}"
                    for d in DIMS_SHOWN) + " |")
    L += ["", "## Content kept (speech: STOI vs input on timbre-only targets; DNSMOS OVRL output - input) and identity "
          "(target = the input's own profile: largest per-band envelope deviation, dB; goal <= 0.5)", "",
          "| system | STOI vs input | DNSMOS OVRL out - in | identity mean dB | identity worst dB |", "|---|---|---|---|---|"]
    for lab, rows, s in [("identity", P0, "identity"), ("match-eq", P0, "match-eq"),
                         *((lab, runs[lab]["profile"], "model") for lab in labels)]:
        sp = [r for r in rows if r["system"] == s and r["category"] == "speech" and r["kind"] != "identity"]
        ids = [r["max_band_dev_db"] for r in rows if r["system"] == s and r["kind"] == "identity"]
        L.append(f"| {lab} | {_f(_nanmean([r['stoi_vs_input'] for r in sp if r['kind'] in ('descriptor', 'random')]), '{:.3f}')} | "
                 f"{_f(_nanmean([r['ovrl'] for r in sp]) - _nanmean([r['ovrl_input'] for r in sp]), '{:+.2f}')} | "
                 f"{_f(_nanmean(ids), '{:.3f}')} | {_f(max(ids) if ids else float('nan'), '{:.3f}')} |")
    L += ["", "## Against the match-EQ (what `--engine auto` asks of a bundle besides the identity gate)", ""]
    for lab in labels:
        v = match_eq_verdict(runs[lab]["profile"])
        L.append(f"- {lab}: " + ("below the match-EQ's ratio in every cell, identity no further from the input" if
                                 v["beats_match_eq_everywhere"] else
                                 "not below the match-EQ in: " + ", ".join(v["worse_than_match_eq"])))
    return "\n".join(L) + "\n"


def write_verdict(bundle: Path, run_json: Path, report_md: Path) -> dict:
    """Record :func:`match_eq_verdict` of ``run_json`` (this benchmark's report of that bundle) in the bundle's
    config.json as ``benchmark`` (with the two report files), which ``bundle.auto_refusal`` reads."""
    rows = json.loads(run_json.read_text())["profile"]
    cfg_p = bundle / "config.json"
    cfg = json.loads(cfg_p.read_text())
    rel = [str(p.resolve().relative_to(REPO)) if p.resolve().is_relative_to(REPO) else str(p) for p in (run_json, report_md)]
    cfg["benchmark"] = {"run": rel[0], "report": rel[1], **match_eq_verdict(rows)}
    cfg_p.write_text(json.dumps(cfg, indent=2, default=list) + "\n")
    return cfg["benchmark"]


def compare_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/resculpt_model.py compare",
                                 description="several runs' reports side by side; optionally record a bundle's verdict")
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN.json", help="reports of this benchmark, one per bundle")
    ap.add_argument("--out", required=True, help="markdown file to write")
    ap.add_argument("--verdict-into", metavar="LABEL=BUNDLE",
                    help="write LABEL's verdict against the match-EQ into BUNDLE/config.json (``benchmark``)")
    a = ap.parse_args(argv)
    runs = {}
    for spec in a.runs:
        lab, _, f = spec.partition("=")
        runs[lab] = json.loads(Path(f).read_text())
    cmd = "benchmarks/resculpt_model.py compare " + " ".join(shlex.quote(v) for v in argv)
    md = compare_report(runs, cmd)
    Path(a.out).write_text(md)
    print(md)
    if a.verdict_into:
        lab, _, bdir = a.verdict_into.partition("=")
        f = dict(s.partition("=")[::2] for s in a.runs)[lab]
        print(json.dumps(write_verdict(Path(bdir), Path(f), Path(a.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
