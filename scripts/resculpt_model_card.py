"""Write the resculpting generator's model card (BUNDLE/MODEL_CARD.md) from the bundle's config.json and the
training run it was exported from (train.args, summary.json, log.jsonl): every figure in the card comes from
one of those files.

    .venv/bin/python scripts/resculpt_model_card.py [--bundle models/resculpt/bundle]
        [--run models/training/resculpt-gen1]

The verdict against the identity reads the run's validation records (16 val-split pairs, ``train.evaluate``):
restore mode improves when the profile distance of the output to the clean clip's profile is below the
input's (ratio < 1); keep mode (target = the input's own profile) must leave the bands within 0.5 dB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEEP_GOAL_DB = 0.5  # the identity benchmark's goal: within 0.5 dB of the input on every band


def records(run: Path) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows) of RUN/log.jsonl; a step validated twice keeps its last record."""
    rows, vals = [], {}
    for line in (run / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "val" in r:
            vals[r["step"]] = r
        elif "loss" in r:
            rows.append(r)
    return rows, [vals[k] for k in sorted(vals)]


def val_table(vals: list[dict]) -> str:
    out = ["| step | wall h | restore: profile dist. out | in | out/in | multi-res STFT out | in | "
           "keep: band change per frame dB | keep: largest envelope change dB (mean) | (worst clip) | "
           "descriptor targets: profile dist. out/in | relative (description) targets: out/in | their loudness: out/in | "
           "relative rows' residual scales (gain, copy-up, deep filter) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def opt(v, k):
        return f"{v[k]:.3f}" if k in v else "-"

    for r in vals:
        v = r["val"]
        env = " | ".join(opt(v, k) for k in ("keep_env_max_db", "keep_env_worst_db", "descriptor_ratio",
                                               "descriptor_ratio_rel", "level_ratio_rel"))
        env += " | " + (", ".join(f"{x:.3f}" for x in r["rel_scale"]) if "rel_scale" in r else "-")
        wall = f"{r['wall_s'] / 3600:.2f}" if r.get("wall_s") is not None else "-"
        out.append(f"| {r['step']} | {wall} | {v['profile_dist_out']:.3f} | "
                   f"{v['profile_dist_in']:.3f} | {v['profile_ratio']:.3f} | {v['mrstft_out']:.3f} | "
                   f"{v['mrstft_in']:.3f} | {v['keep_band_change_db']:.3f} | {env} |")
    return "\n".join(out)


def loss_table(rows: list[dict], last_n: int = 20) -> str:
    """Mean of each loss term over the first and the last ``last_n`` logged rows (10 steps each; at most half
    the rows each, so the two never overlap)."""
    terms = [k for k in ("loss", "recon", "profile", "content", "identity", "perc", "adv", "fm", "disc")
             if any(k in r for r in rows)]
    out = ["| rows (10 steps each) | steps | " + " | ".join(terms) + " |", "|---|---|" + "---|" * len(terms)]
    n = min(last_n, len(rows) // 2)
    for name, sel in (("first", rows[:n]), ("last", rows[len(rows) - n :])):
        if not sel:
            continue
        cells = []
        for k in terms:
            v = [r[k] for r in sel if k in r]
            cells.append(f"{sum(v) / len(v):.3f}" if v else "-")
        out.append(f"| {name} {len(sel)} | {sel[0]['step']}-{sel[-1]['step']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def verdict(vals: list[dict]) -> str:
    if not vals:
        return "No validation record yet."
    first, last = vals[0]["val"], vals[-1]["val"]
    ratio, keep = last["profile_ratio"], last["keep_band_change_db"]
    lines = []
    if ratio < 1.0:
        lines.append(f"- Restore mode: the output's profile is closer to the clean clip's than the input's "
                     f"(distance ratio {ratio:.3f} < 1 at step {vals[-1]['step']}; {first['profile_ratio']:.3f} at "
                     f"step {vals[0]['step']}): it improves over the identity on this measure, by "
                     f"{(1 - ratio) * 100:.1f} % of the distance.")
    else:
        lines.append(f"- Restore mode: **no improvement over the identity yet**: distance ratio {ratio:.3f} "
                     f"(>= 1) at step {vals[-1]['step']} ({first['profile_ratio']:.3f} at step {vals[0]['step']}).")
    env = last.get("keep_env_max_db")
    kept = f"largest long-term band-envelope change {env:.3f} dB (mean over clips), " if env is not None else ""
    if env is not None and env <= KEEP_GOAL_DB:
        lines.append(f"- Keep mode (target = the input's own profile): {kept}within the identity goal of "
                     f"{KEEP_GOAL_DB} dB; per frame and band it moves {keep:.3f} dB on average.")
    else:
        lines.append(f"- Keep mode (target = the input's own profile): **it does not leave audio alone yet**: "
                     f"{kept}per frame and band {keep:.3f} dB on average (the fresh net, the identity up to its "
                     f"5 ms look-ahead framing: {first['keep_band_change_db']:.3f} dB); the identity goal is "
                     f"{KEEP_GOAL_DB} dB on every band.")
    lines.append(f"- Multi-resolution STFT loss to the clean clip: output {last['mrstft_out']:.3f}, input "
                 f"{last['mrstft_in']:.3f} ({'lower' if last['mrstft_out'] < last['mrstft_in'] else 'not lower'} "
                 f"than the input's).")
    return "\n".join(lines)


def limits_extra(vals: list[dict], cfg: dict | None = None) -> str:
    """Bullets for the card's limits that the log itself records: a keep mode that still changes audio (what a
    user of the engine hears with a target equal to the input's profile), notes attached to records, and what
    the identity gate (config) holds back."""
    out = []
    g = (cfg or {}).get("identity_gate")
    if g:
        out.append(f"- The identity gate returns the input for every target whose band shape lies within {g[0]:g} dB "
                   f"(RMS) of the running fingerprint, and within up to {g[0] + g[2]:g} dB while the first second of "
                   "input is heard: small descriptor moves (\"warmer\" is about 1.2 dB RMS) and targets that differ "
                   "only in loudness or dynamics (crest, LRA) pass unchanged (`--engine match-eq` makes such small envelope "
                   "moves).\n")
    if vals and vals[-1]["val"].get("keep_env_max_db", vals[-1]["val"]["keep_band_change_db"]) > KEEP_GOAL_DB:
        out.append("- **Not a neutral engine yet**: with the input's own profile as the target it still moves the "
                   "band envelope by several dB (table above); a stage that runs this bundle by default changes "
                   "audio that should pass unchanged.\n")
    for r in vals:
        if r.get("note"):
            out.append(f"- Validation record at step {r['step']}: {r['note']}.\n")
    return "".join(out)


def git_commit_of(path: Path, step: int) -> str:
    """The commit whose message records the checkpoint at ``step`` (train-continue.sh's message), or a note."""
    r = subprocess.run(["git", "-C", str(REPO), "log", "--format=%h %s", "--", str(path)], capture_output=True,
                       text=True)
    for line in r.stdout.splitlines():
        if f"checkpoint at step {step} " in line:
            return line.split()[0]
    return "(no commit records this step)"


def train_args_at(run: Path, commit: str) -> str:
    """RUN/train.args as committed with the checkpoint (``commit``, from :func:`git_commit_of`): the settings the
    exported step trained with, not later recipe changes; the working file when no commit records the step."""
    rel = run.resolve().relative_to(REPO) if run.resolve().is_relative_to(REPO) else None
    if rel is not None and not commit.startswith("("):
        r = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{rel.as_posix()}/train.args"], check=False,
                           capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout
    return (run / "train.args").read_text()


def gate_row(cfg: dict) -> str:
    g = cfg.get("identity_gate")
    if not g:
        return "none: every output comes from the net"
    return (f"outputs scaled by 1 - exp(-(relu(d - t) / {g[1]:g} dB)^2), d = RMS band-shape difference between target "
            f"and running fingerprint, t = {g[0]:g} dB + {g[2]:g} dB x exp(-n / {g[3]:g}), n = active frames heard "
            f"(exp-weighted): a target within t of what the input already is returns the input exactly")


def relative_row(cfg: dict) -> str:
    if not cfg.get("relative_prior"):
        return "the heads' outputs (no prior)"
    sc = cfg.get("residual_scale")
    tail = (f"; the residual gain, copy-up and deep-filter deltas x learned scales {', '.join(f'{v:.3f}' for v in sc)}"
            if sc else "; the residual from the relative rows' own heads" if cfg.get("relative_heads") else "")
    return "band gain = the delta's known gain (relative prior) + the learned residual" + tail


def absolute_row(cfg: dict) -> str:
    if not cfg.get("absolute_prior"):
        return "the heads' outputs under the identity gate (no prior)"
    return ("band gain = the level-free target-minus-running band shape (absolute prior: the match-EQ's curve, "
            "clipped to -24..+18 dB, under its warm-up gate) + the residual of heads of its own under the identity gate")


def benchmark_section(bundle: Path, cfg: dict) -> str:
    """The benchmark report the config's ``benchmark`` verdict names (benchmarks/resculpt_model.py compare), its
    title dropped, and what ``--engine auto`` makes of the bundle for each form of target (``bundle.auto_refusal``:
    a description, an absolute profile)."""
    from resculpt.models.resculpt.bundle import auto_refusal

    b = cfg.get("benchmark") or {}
    said = []
    for form, what in (("delta", "descriptions (delta targets)"), ("absolute", "absolute profiles (a reference clip, a "
                                                                               "profile file, a shipped target)")):
        why = auto_refusal(bundle, form)
        said.append(f"takes this bundle for {what}" if why is None else f"does not take it for {what} ({why})")
    auto = f"`--engine auto` {'; it '.join(said)}. `--engine model` runs it for any target."
    if not b.get("report") or not (REPO / b["report"]).is_file():
        return f"No benchmark report recorded in config.json. {auto}\n"
    body = (REPO / b["report"]).read_text().split("\n", 1)[1].replace("\n## ", "\n### ")
    return f"From `{b['report']}` (its command heads it; `{b['run']}` holds this bundle's run).\n{body}\n{auto}\n"


def arg_value(args_text: str, name: str, default: str = "") -> str:
    a = [x.strip() for x in args_text.splitlines() if x.strip() and not x.lstrip().startswith("#")]
    return a[a.index(name) + 1] if name in a[:-1] else default


def card(bundle: Path, run: Path) -> str:
    cfg = json.loads((bundle / "config.json").read_text())
    s = json.loads((run / "summary.json").read_text())
    s = cfg.get("training") or s  # the summary embedded at export: the run may have moved on since
    steps, wall_h = int(s["steps"]), float(s["wall_s"]) / 3600
    rows, vals = records(run)
    rows, vals = [r for r in rows if r["step"] <= steps], [r for r in vals if r["step"] <= steps]
    if s.get("exported_val"):  # the exported net differs from the run's at that step (a switch the export made)
        vals = vals + [{"step": steps, "val": s["exported_val"], "wall_s": s.get("wall_s"),
                        "note": s.get("exported_note", "the exported net")}]
    commit = git_commit_of(run / "ckpt.pt", steps)
    args = train_args_at(run, commit)
    arg_lines = " ".join(a for a in args.splitlines() if a.strip() and not a.lstrip().startswith("#"))
    sps = float(s["wall_s"]) / max(1, steps)
    w = s["loss_w"]
    adv_start = int(arg_value(args, "--adv-start", "2000"))
    rel_run = run.resolve().relative_to(REPO) if run.resolve().is_relative_to(REPO) else run
    rel_bundle = bundle.resolve().relative_to(REPO) if bundle.resolve().is_relative_to(REPO) else bundle
    return f"""# Model card: resculpting generator (`{rel_bundle}`)

Written by `scripts/resculpt_model_card.py` from `{rel_bundle}/config.json` and the training run
`{rel_run}` (train.args, summary.json, log.jsonl). Design: `docs/resculpt-model.md`.

| | |
|---|---|
| what | causal U-Net over 32 ERB bands with attention across bands and a GRU, FiLM-conditioned on the target profile and the input's running fingerprint (`models/resculpt/net.py`) |
| parameters | {cfg['params']:,} (ONNX core {cfg['onnx_bytes']:,} bytes, opset {cfg['onnx_opset']}) |
| model.onnx sha256 | `{cfg['sha256']}` |
| frame | {cfg['frame']['window_ms']} ms sqrt-Hann window, {cfg['frame']['hop_ms']} ms hop; look-ahead {cfg['lookahead_frames']} frame(s) |
| output form | band gain (real, smooth across frequency: keeps each bin's phase) x spectrum, a 3-tap complex deep filter on the 32 bins below 1550 Hz, a copy-up of the bins 4 kHz lower into bands a codec removed (`docs/resculpt-model.md`: why none of them smears phase on speech) |
| identity gate | {gate_row(cfg)} |
| relative targets | {relative_row(cfg)} |
| absolute targets | {absolute_row(cfg)} |
| export check | torch streaming vs whole sequence {cfg['export_check']['torch_stream_vs_full']:.1e}; onnxruntime vs torch {cfg['export_check']['ort_vs_torch']:.1e} |
| checkpoint | `{rel_run}/ckpt.pt` at step {steps}; commit {commit} |

## Data

Self-supervised pairs from real recordings only (`../shared/data`, train split: LibriSpeech/CMU Arctic speech,
music with p = 0.25), {s.get('n_pairs') or '?'} cached pairs of 3 s at {s['sample_rate']} Hz (`scripts/resculpt_cache.py`, seed 0):
a clean crop x and the same crop after random known changes (formant warp, EQ, tilt, compression/expansion,
reverb with measured RIRs, band-limiting, level, Opus 6-24 kbps / MP3 32-64 kbps through ffmpeg; no pitch shift).
Per row a mode: restore (changed -> clean, target = profile(x)), move (toward another row's profile), keep
(target = the input's own profile), nudge (the input's own profile moved by a random description in the
product's descriptor vocabulary; run from the step where train.args says the recipe changed). Validation: 16 pairs of the val split (seed 1234), never trained on.

## Training (this machine: 2 shared CPU cores, one thread, nice 19)

- Settings (`{rel_run}/train.args` at commit {commit}): `{arg_lines}`
- Steps: **{steps}** of a planned {s.get('schedule_steps', '?')} (cosine learning rate), batch {s['batch']} x {s['segment_s']} s;
  wall time **{wall_h:.2f} h** ({sps:.1f} s per step on the shared machine; the step costs 1.42 s of CPU on one
  thread: `scripts/resculpt_step_time.py`).
- Loss weights: {', '.join(f'{k} {v:g}' for k, v in w.items())}. The perceptual term is resemblyzer's frozen
  GE2E encoder (frame features + embedding cosine). Adversarial and feature-matching terms (multi-scale
  spectrogram + waveform discriminators on 0.5 s windows, every 2nd step) start at step {adv_start}:
  {'they are active from there.' if steps > adv_start else '**not reached yet**: this checkpoint was trained without them.'}

Training losses (means over logged rows):

{loss_table(rows)}

## Validation (from the training log)

{val_table(vals)}

Against the identity:

{verdict(vals)}

## Benchmark (held-back files, beside the identity and the match-EQ)

{benchmark_section(bundle, cfg)}
## Limits

{limits_extra(vals, cfg)}- Early checkpoint of a run planned for {s.get('schedule_steps', '?')} steps; the ablation table is not in this card.
- Codec repair is the `codec` DSP stage's job (the `codec-repair` preset), not this model's.
- Trained at 16 kHz: content above 7.3 kHz at 48 kHz is not learned.
- Conditioned only on the dims the differentiable profile covers (envelope shape, centroid, roll-off, tilt,
  loudness, crest); LRA needs crops longer than 3 s and is not trained on {s['segment_s']} s crops; F0, formants,
  HNR and pace slots stay unset (`--match voice` moves nothing beyond timbre).

## Continue, re-export, retrain

    RESCULPT_DATA=/work/shared/data RESCULPT_PERC_WEIGHTS=<resemblyzer pretrained.pt> \\
        setsid nohup bash scripts/train-continue.sh resculpt --minutes 120 --commit-every 20 > /tmp/rs.log 2>&1 &
    .venv/bin/python -m resculpt.models.resculpt.export --ckpt {rel_run}/ckpt.pt --out {rel_bundle}
    .venv/bin/python scripts/resculpt_model_card.py

From scratch: a new run folder with a copy of `train.args` (no ckpt.pt), or
`resculpt train resculpt --pairs runs/resculpt-pairs --out runs/x --fresh <the same settings>`.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/resculpt_model_card.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(REPO / "models" / "resculpt" / "bundle"))
    ap.add_argument("--run", default=str(REPO / "models" / "training" / "resculpt-gen1"))
    a = ap.parse_args(argv)
    text = card(Path(a.bundle), Path(a.run))
    (Path(a.bundle) / "MODEL_CARD.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
