"""`resculpt` command line. Every command has --help; errors go to stderr with exit code 1 (bad
input) or 2 (usage). Heavy imports happen inside the command that needs them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "speech_1081_librispeech.flac"


def _die(msg: str, code: int = 1):
    print(f"resculpt: error: {msg}", file=sys.stderr)
    return code


def _anon_random_help() -> str:
    from resculpt.plugin_host.presets import ANON_RANDOM_HELP

    return ANON_RANDOM_HELP


def _parse_sets(items) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ValueError(f"--set expects ID=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out




# -- render ----------------------------------------------------------------------------------------
def cmd_render(a) -> int:
    """One file with -o; files, folders and globs with --out-dir through render_batch (exit status:
    0, or the number of files that failed, at most 125)."""
    from resculpt.plugin_host.audio_io import READ_EXT
    from resculpt.plugin_host.render import RenderError, render_file

    if not a.output and not a.out_dir:
        return _die("give -o OUT or --out-dir DIR", 2)
    if a.output and (len(a.inputs) > 1 or Path(a.inputs[0]).is_dir()):
        return _die("-o takes one input file; use --out-dir for several files or a folder", 2)
    try:
        sets = _parse_sets(a.set)
    except ValueError as e:
        return _die(str(e), 2)
    if a.anon_random:
        from resculpt.plugin_host.presets import anon_random_params

        for k, v in anon_random_params(quiet=a.quiet or a.json).items():
            if k == "anon.seed" or k not in sets:
                sets[k] = str(v)
    if a.block < 1 or a.block > 1 << 16:
        return _die("--block must be between 1 and 65536", 2)
    if a.amount is not None and not 0.0 <= a.amount <= 1.0:
        return _die("--amount must be between 0 and 1", 2)
    if a.amount is not None and a.target is None and a.context is None:
        return _die("--amount needs --target (or --context)", 2)
    if a.jobs is not None and a.jobs < 1:
        return _die("--jobs must be at least 1", 2)
    true_peak = a.true_peak if a.true_peak is not None else (-1.0 if a.loudness is not None else None)
    try:
        from resculpt.plugin_host.render import check_delivery

        check_delivery(a.loudness, true_peak)
    except RenderError as e:
        return _die(f"--loudness / --true-peak: {e}", 2)
    for inp in a.inputs:
        p = Path(inp)
        if p.is_file() and p.suffix.lower() not in READ_EXT:
            print(f"resculpt: warning: {inp}: unusual extension, trying to decode anyway", file=sys.stderr)

    def line(r):
        if a.quiet or a.json:
            return
        if "distance_before_db" in r:
            eng = "model" if r.get("engine") == "model" else "match-EQ"
            print(f"  {eng}: band-envelope distance to target {r['distance_before_db']:.2f} dB -> "
                  f"{r['distance_after_db']:.2f} dB"
                  + (" (formants moved on purpose: the envelope leaves the target's shape)"
                     if r.get("formants_moved") else ""))
            if r.get("formant_ratio"):
                print(f"  voice match: the target's formants are x{r['formant_ratio']:.3f} the input's (the median of "
                      "F1..F3's ratios); the voice is warped by that ratio to the power of the amount")
        print(f"{r['input']} -> {r['output']}  ({r['frames'] / r['sample_rate']:.2f} s at {r['sample_rate']} Hz, "
              f"{r['channels']} ch, latency {r['latency_samples']} samples trimmed, RTF {r['rtf']:.3f})")
        d = r.get("delivery")
        if d:
            print(f"  delivered: {d['loudness_in_lufs']:.1f} -> {d['loudness_lufs']:.1f} LUFS (gain "
                  f"{d['gain_db']:+.2f} dB), true peak {d['true_peak_in_dbtp']:+.2f} -> {d['true_peak_dbtp']:+.2f} "
                  f"dBTP, {d['passes']} pass(es)")
            goal = d.get("loudness_goal_lufs")
            if goal is not None and abs(d["loudness_lufs"] - goal) > 0.1:
                print(f"resculpt: warning: {r['output']}: delivered at {d['loudness_lufs']:.1f} LUFS, not {goal:g}: "
                      "reaching it would take more gain into the limiter than a delivery adds (6 dB over the first "
                      "estimate)", file=sys.stderr)

    if a.output:
        try:
            r = render_file(Path(a.inputs[0]), Path(a.output), a.preset, sets, a.block, progress=a.progress or None,
                            target=a.target, amount=a.amount, context=a.context, engine=a.engine,
                            passes=a.passes, linked=False if a.unlinked else None, match=a.match,
                            loudness_lufs=a.loudness, true_peak_db=true_peak)
        except Exception as e:  # the message names the file
            return _die(str(e) or type(e).__name__, 1)
        if a.json:
            print(json.dumps(r, indent=1, default=str))
        line(r)
        return 0

    from resculpt.plugin_host.batch import EXIT_MAX_FAILED, render_batch

    def on_file(rec):
        if rec["status"] == "failed":
            print(f"resculpt: error: {rec['error']}", file=sys.stderr)
        elif rec["status"] == "rendered":
            line(rec)

    try:
        s = render_batch(a.inputs, a.out_dir, a.preset, jobs=a.jobs, ray=a.ray, sets=sets, target=a.target,
                         progress=a.progress or None, fmt=a.format, block=a.block, amount=a.amount,
                         context=a.context, engine=a.engine, match=a.match, passes=a.passes,
                         linked=False if a.unlinked else None, force=a.force,
                         ray_transfer=a.ray_transfer, on_file=on_file, loudness_lufs=a.loudness,
                         true_peak_db=true_peak)
    except RenderError as e:
        return _die(str(e), 1)
    if a.json:
        print(json.dumps(s, indent=1))
    elif not a.quiet:
        print(f"resculpt: {s['files']} file(s): {s['rendered']} rendered, {s['skipped']} already current, "
              f"{s['adopted']} finished from an interrupted run, {s['failed']} failed; {s['audio_seconds']:.1f} s "
              f"of audio in {s['wall_seconds']:.1f} s ({s['throughput']:.1f}x real time)", file=sys.stderr)
    if s["failed"]:
        print(f"resculpt: {s['failed']} of {s['files']} file(s) failed", file=sys.stderr)
    return min(s["failed"], EXIT_MAX_FAILED)


# -- presets / params ---------------------------------------------------------------------------
def cmd_presets(a) -> int:
    from resculpt.plugin_host.presets import PresetError, list_presets, load_preset, read_file

    if a.action == "list":
        for name, path in list_presets():
            try:
                p = read_file(path)
                print(f"{name:20s} {', '.join(p.tags):28s} {p.description}")
            except PresetError as e:
                print(f"{name:20s} (invalid: {e})")
        return 0
    if not a.name:
        return _die("presets show NAME", 2)
    try:
        p = load_preset(a.name)
    except PresetError as e:
        return _die(str(e))
    print(json.dumps({**p.to_dict(), "path": str(p.path)}, indent=2))
    return 0


def params_markdown() -> str:
    """The parameter table as Markdown (the README embeds it; a test keeps it current)."""
    from resculpt.plugin_host.catalog import all_param_specs

    rows = ["| id | range | default | unit | scale | smoothing | what it does |", "|---|---|---|---|---|---|---|"]
    for s in all_param_specs():
        rng = " / ".join(s.choices) if s.choices else f"{s.min:g} .. {s.max:g}"
        dflt = s.choices[int(s.default)] if s.choices else f"{s.default:g}"
        rows.append(f"| `{s.id}` | {rng} | {dflt} | {s.unit} | {s.scale} | {s.smoothing_ms:g} ms | {s.doc} |")
    return "\n".join(rows)


def cmd_params(a) -> int:
    from resculpt.plugin_host.catalog import SLOTS, all_param_specs

    specs = all_param_specs()
    if a.json:
        print(json.dumps([s.as_dict() for s in specs], indent=2))
        return 0
    if a.markdown:
        print(params_markdown())
        return 0
    print(f"{'id':28s} {'min':>9s} {'max':>9s} {'default':>9s} {'unit':7s} {'scale':7s} {'smooth':>7s}  doc")
    for s in specs:
        print(f"{s.id:28s} {s.min:9.4g} {s.max:9.4g} {s.default:9.4g} {s.unit:7s} {s.scale:7s} "
              f"{s.smoothing_ms:6.0f}ms  {s.doc}{' (' + '|'.join(s.choices) + ')' if s.choices else ''}")
    print(f"\n{len(specs)} parameters in {len(SLOTS)} stage slots + globals")
    return 0


# -- bench -----------------------------------------------------------------------------------------
def cmd_bench(a) -> int:
    from resculpt.plugin_host.bench import bench_chain
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.presets import PresetError

    try:
        chain = Chain.from_preset(a.preset, sample_rate=a.rate, channels=a.channels, max_block=a.block)
    except (PresetError, ValueError) as e:
        return _die(str(e))
    sig = None
    if EXAMPLE.exists():
        import numpy as np

        from resculpt.plugin_host.audio_io import read_audio

        x, sr = read_audio(EXAMPLE)
        if sr != a.rate:
            from scipy.signal import resample_poly

            g = np.gcd(sr, a.rate)
            x = resample_poly(x, a.rate // g, sr // g, axis=1).astype("float32")
        sig = np.repeat(x, a.channels, axis=0) if x.shape[0] == 1 else x[: a.channels]
    r = bench_chain(chain, seconds=a.seconds, block=a.block, signal=sig, cpu_time=a.cpu_time)
    if a.json:
        print(json.dumps(r))
        return 0
    print(f"preset {a.preset} at {a.rate} Hz, {a.channels} ch, {a.block}-sample blocks, {a.seconds:g} s, one thread, "
          f"{'thread CPU time' if a.cpu_time else 'wall clock'}")
    print(f"latency: {r['latency_samples']} samples = {r['latency_ms']:.2f} ms")
    print(f"chain RTF {r['rtf']:.4f} ({100 * r['rtf']:.2f} % of one core); per block median "
          f"{r['per_block_us']['median']:.1f} us, p99 {r['per_block_us']['p99']:.1f} us of a {r['period_us']:.0f} us period")
    for s in r["stages"]:
        print(f"  {s['name']:22s} RTF {s['rtf']:.5f}  latency {s['latency_samples']} samples")
    return 0


# -- demo ------------------------------------------------------------------------------------------
DEMO_PICTURE_S = 60.0  # spectrograms show at most the first minute (one column per 256 samples)


def cmd_demo(a) -> int:
    from resculpt.plugin_host.presets import list_presets
    from resculpt.plugin_host.audio_io import AudioFileError, audio_info, read_audio
    from resculpt.plugin_host.render import render_file
    from resculpt.plugin_host.spectrogram import spectrogram_png

    src = Path(a.input) if a.input else EXAMPLE
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        sr, _, frames = audio_info(src)
        # Renders stream the file; the pictures read only its first DEMO_PICTURE_S seconds.
        x, sr = read_audio(src, max_seconds=DEMO_PICTURE_S)
    except AudioFileError as e:
        return _die(str(e))
    part = f" (first {DEMO_PICTURE_S:g} s)" if x.shape[1] < frames else ""
    spectrogram_png(out / "input.png", x, sr, title=f"before: {src.name}{part}")
    del x
    print(f"demo: {src.name} ({frames / sr:.1f} s, {sr} Hz) through every shipped preset")
    rc = 0
    for name, _ in list_presets():
        dst = out / f"{name}.wav"
        try:
            r = render_file(src, dst, name, block=a.block, progress=False)
        except Exception as e:
            print(f"  {name:18s} FAILED: {e}", file=sys.stderr)
            rc = 1
            continue
        y, _ = read_audio(dst, max_seconds=DEMO_PICTURE_S)
        spectrogram_png(out / f"{name}.png", y, sr, title=f"after: {name}{part}")
        print(f"  {name:18s} -> {dst}  (+ {name}.png)  latency {r['latency_samples']} samples, RTF {r['rtf']:.3f}")
    print(f"demo output: {out.resolve()}  (input.png is the unprocessed spectrogram)")
    return rc


# -- serve / osc-docs / daw / ui (control surface) -----------------------------------------------
def start_control_surface(a, chain, feeder=None):
    """Start the OSC server for ``chain`` from the serve/live arguments (shared with `resculpt live`)."""
    from resculpt.plugin_host.osc import OscServer

    srv = OscServer(chain, host=a.host, port=a.port, secret=a.secret, allow=a.allow or None,
                    allow_insecure=a.insecure)
    return srv.start()


def add_control_surface_args(p) -> None:
    """--host/--port/--secret/--allow/--insecure (used by `serve` and `live`)."""
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless told otherwise)")
    p.add_argument("--port", type=int, default=9010, help="UDP port (0 picks a free one and prints it)")
    p.add_argument("--secret", help="shared secret non-loopback senders send with /resculpt/auth")
    p.add_argument("--allow", action="append", metavar="ADDR[/BITS]",
                   help="sender address or network accepted without a secret (repeatable)")
    p.add_argument("--insecure", action="store_true", help="bind beyond loopback with no secret or allow-list")


def cmd_serve(a) -> int:
    import logging
    import signal
    import threading

    from resculpt.plugin_host.feeder import BlockFeeder
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.osc import OscError
    from resculpt.plugin_host.presets import PresetError

    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    try:
        chain = Chain.from_preset(a.preset, sample_rate=a.rate, channels=a.channels, max_block=max(a.block, 1024))
        if a.anon_random:
            from resculpt.plugin_host.presets import anon_random_params

            for k, v in anon_random_params().items():
                chain.params.set(k, v)
        feeder = BlockFeeder(chain, a.input, block=a.block)
    except (PresetError, ValueError, OSError) as e:
        return _die(str(e))
    try:
        srv = start_control_surface(a, chain)
    except OscError as e:
        return _die(str(e))
    feeder.start()
    src = a.input or "silence"
    print(f"resculpt serve: OSC on udp://{srv.address[0]}:{srv.port}, preset {chain.preset_name}, "
          f"{a.rate} Hz, {a.channels} ch, {a.block}-sample blocks, fed from {src}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait(a.seconds if a.seconds else None)
    feeder.stop()
    srv.stop()
    return 0


def cmd_osc_docs(a) -> int:
    from resculpt.plugin_host.osc import osc_docs_markdown

    sys.stdout.write(osc_docs_markdown())
    return 0


def cmd_daw(a) -> int:
    from resculpt.plugin_host.daw import generate, write

    if a.out:
        for p in write(a.kind, a.out):
            print(p)
        return 0
    for name, text in generate(a.kind).items():
        print(f"===== {name} =====")
        sys.stdout.write(text)
    return 0


def cmd_ui(a) -> int:
    try:
        from resculpt.ui.panel import run_panel
    except ImportError as e:
        return _die(f"the panel needs Dear PyGui: {e}")
    return run_panel(a)


# -- plugin ----------------------------------------------------------------------------------------
def cmd_plugin(a) -> int:
    from resculpt.plugin_host.lv2.build import BuildError, install
    from resculpt.plugin_host.lv2.ports import URI

    if a.action == "preset":
        return _plugin_preset(a)
    if a.args:
        return _die("plugin install takes no file arguments", 2)
    try:
        bundle = install(a.lv2_path, a.python)
    except BuildError as e:
        return _die(str(e))
    print(f"installed {bundle} (LV2 plugin {URI}, running {a.python or sys.executable}); "
          "rescan plugins in your host")
    if a.lv2_path:
        print(f"hosts find it when {Path(a.lv2_path).expanduser()} is on LV2_PATH")
    return 0


def _plugin_preset(a) -> int:
    from resculpt.dsp.profile import ProfileError
    from resculpt.plugin_host.lv2.build import write_user_preset
    from resculpt.plugin_host.presets import PresetError

    if len(a.args) != 1:
        return _die("plugin preset takes one user preset file: resculpt plugin preset USER.json [--target T.json]", 2)
    try:
        bundle, uri = write_user_preset(a.args[0], a.target, a.name, a.lv2_path)
    except (PresetError, ProfileError, OSError) as e:
        return _die(str(e))
    print(f"wrote {bundle} (LV2 preset {uri}); hosts list it in the Resculpt plugin's preset menu after a rescan")
    return 0


# -- profile ---------------------------------------------------------------------------------------
def cmd_profile(a) -> int:
    from resculpt.dsp.profile import ProfileError

    try:
        return _profile(a)
    except ProfileError as e:
        return _die(str(e))
    except ValueError as e:  # DescriptorError, ContextError, RenderError-like input problems
        return _die(str(e))


def _read_mono_or_stereo(path):
    from resculpt.plugin_host.audio_io import AudioFileError, read_audio

    try:
        x, sr = read_audio(path)
    except AudioFileError as e:
        raise ValueError(str(e)) from None
    if x.shape[0] > 2:
        x = x[:2]
    return x, sr


def _profile(a) -> int:
    from resculpt.dsp import profile

    from resculpt.plugin_host import user_profile

    act = a.action
    if act in ("describe", "from-reference", "fingerprint") and not a.output:
        return _die(f"profile {act} needs -o OUT.json", 2)
    if act == "describe":
        from resculpt.dsp.descriptors import describe, parse

        if not a.args:
            return _die('profile describe "more bass, clearer highs" [--base IN.wav] -o target.json', 2)
        text = " ".join(a.args)
        delta = describe(text)
        prof = delta
        if a.base:
            x, sr = _read_mono_or_stereo(a.base)
            prof = profile.apply_delta(profile.fingerprint(x, sr, source=a.base), delta)
        prof.save(a.output)
        print(f"{', '.join(f'{k} x{s:+g}' for k, s in parse(text))} -> {a.output} ({prof.kind})")
        return 0
    if act in ("from-reference", "fingerprint"):
        if len(a.args) != 1:
            return _die(f"profile {act} REF.wav -o OUT.json", 2)
        x, sr = _read_mono_or_stereo(a.args[0])
        prof = profile.from_reference(x, sr, a.args[0]) if act == "from-reference" else profile.fingerprint(x, sr, a.args[0])
        prof.save(a.output)
        d = prof.dims
        print(f"{a.args[0]}: F0 {d['f0_median_hz']:.0f} Hz, centroid {d['centroid_hz']:.0f} Hz, "
              f"tilt {d['tilt_db_oct']:.1f} dB/oct, {d['lufs_integrated']:.1f} LUFS -> {a.output}")
        return 0
    if act == "show":
        if a.args:
            print(profile.load_profile(a.args[0]).to_json())
        else:
            print(json.dumps({"folder": str(user_profile.user_data_dir()), "adjustments": len(user_profile.read_log()),
                              "profile": user_profile.load_user_profile()}, indent=1))
        return 0
    if act == "learn":
        if a.auto:
            user_profile.set_auto_learn(a.auto == "on")
            print(f"automatic learning {a.auto} (stored in {user_profile.user_data_dir() / user_profile.SETTINGS_NAME})")
            return 0
        prof = user_profile.learn()
        print(f"learned {len(prof['params'])} parameter preference(s) from {len(user_profile.read_log())} logged "
              f"adjustment(s) -> {user_profile.user_data_dir() / user_profile.PROFILE_NAME}")
        for k, v in prof["params"].items():
            print(f"  {k} = {v:g}")
        return 0
    if act == "forget":
        gone = user_profile.forget()
        print(f"erased {len(gone)} file(s) from {user_profile.user_data_dir()}" if gone else "nothing stored; nothing to erase")
        return 0
    if act == "contexts":
        from resculpt.plugin_host.contexts import load_contexts

        for k, c in sorted(load_contexts().items()):
            print(f"{k:12s} {c.get('description', '')}")
        return 0
    return _die(f"unknown profile action {act!r}", 2)


# -- train -----------------------------------------------------------------------------------------
def cmd_train(a) -> int:
    if a.model == "mask":
        from resculpt.models.mask import train as mask_train  # torch: training extra only

        return mask_train.main(a.rest)
    if a.model == "resculpt":
        from resculpt.models.resculpt import train as resculpt_train  # torch: training extra only

        return resculpt_train.main(a.rest)
    return _die(f"unknown model {a.model!r}", 2)


# -- verify ----------------------------------------------------------------------------------------
def cmd_verify(a) -> int:
    """Report each file's provenance tag and watermark score; exit 1 if a file cannot be read."""
    from resculpt.plugin_host.provenance import ProvenanceError, verify

    failed = 0
    results = []
    for f in a.files:
        try:
            r = verify(f)
        except ProvenanceError as e:
            _die(str(e))
            failed += 1
            continue
        results.append(r)
        if a.json:
            continue
        tag = r["tag"]
        wm = r["watermark"]
        t = "none" if tag is None else (f"{tag['provenance']} (preset {tag.get('preset') or '-'}, "
                                        f"stages {','.join(tag.get('stages', [])) or '-'})")
        verdict = "detected" if wm["detected"] else "not detected"
        print(f"{f}: tag: {t}; watermark: {verdict} (score {wm['score']:.1f}, threshold {wm['threshold']:.1f}, "
              f"{wm['tiles']} tiles of 40 ms)")
    if a.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="resculpt", description="Real-time audio effect with learned spectral stages.")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("render", help="render audio files through a preset (offline, latency trimmed)",
                       description="Render files, folders (recursive) and globs. With --out-dir the input trees "
                                   "are mirrored under DIR on --jobs worker processes (or Ray tasks), and a "
                                   "manifest in DIR lets a re-run skip what is current and finish an "
                                   "interrupted run (docs/batch.md). Exit status: 0, 2 for a usage error, "
                                   "otherwise the number of files that failed (at most 125).")
    r.add_argument("inputs", nargs="+", metavar="IN",
                   help="WAV/FLAC/OGG/MP3/AIFF file(s), folder(s) (recursive) or quoted glob(s) such as 'lib/**/*.wav'")
    g = r.add_mutually_exclusive_group()
    g.add_argument("-o", "--output", help="output file for one input (.wav float32 or .flac 24-bit)")
    g.add_argument("--out-dir", help="output folder: mirrors the input trees, resumable (a manifest inside)")
    r.add_argument("--format", choices=["wav", "flac"], default="wav", help="format with --out-dir")
    r.add_argument("--preset", default="clean", help="shipped/user preset name or a .json path")
    r.add_argument("--set", action="append", metavar="ID=VALUE", help="override a parameter (repeatable)")
    r.add_argument("--anon-random", action="store_true", help=_anon_random_help())
    r.add_argument("--block", type=int, default=4096, help="processing block size in samples")
    r.add_argument("--target", metavar="TARGET.json", help="target profile to move toward (see --engine)")
    r.add_argument("--amount", type=float, help="how far toward the target, 0..1 (the engine's match.amount or "
                                               "resculpt.amount)")
    r.add_argument("--context", help="context rule (formal, casual, stream, call, ...; `resculpt profile contexts`)")
    from resculpt.models.resculpt.stage import MATCH_MODES
    from resculpt.plugin_host.chain import ENGINES

    r.add_argument("--engine", "--matcher", dest="engine", choices=ENGINES, default="auto",
                   help="what moves the audio toward --target: model (the resculpting model; an error when its "
                        "bundle is not installed), match-eq (the profile-matching EQ), auto (the model when its "
                        "bundle is installed and its benchmark beats the match-EQ on targets of this form, a "
                        "description or an absolute profile; else the match-EQ). --matcher is another name for it")
    r.add_argument("--match", choices=MATCH_MODES,
                   help="which target dimensions the model moves: timbre (default: envelope, tilt, brightness, "
                        "dynamics), voice (timbre plus F0 and formants), all (voice plus pace)")
    r.add_argument("--passes", type=int, default=2,
                   help="offline passes of a target render, either engine: each after the first corrects the band "
                        "envelope and loudness by what the previous output measured (1 = one primed pass)")
    r.add_argument("--loudness", type=float, metavar="LUFS",
                   help="deliver at this integrated loudness (BS.1770, e.g. -16 for podcasts, -14 for streaming "
                        "services): one static gain on the finished render, then the true-peak ceiling")
    r.add_argument("--true-peak", type=float, metavar="DBTP",
                   help="true-peak ceiling of the delivered file, held by a look-ahead brick-wall limiter (default "
                        "-1 with --loudness; alone: the limiter without a gain)")
    r.add_argument("--jobs", type=int, metavar="N", help="worker processes with --out-dir (default: every core)")
    r.add_argument("--ray", metavar="ADDRESS",
                   help="run the files as Ray tasks: local (a Ray instance on this machine), auto or HOST:PORT "
                        "(an existing cluster); needs pip install 'resculpt[ray]'")
    r.add_argument("--ray-transfer", choices=["shared", "bytes"], default="shared",
                   help="with --ray: workers read and write the paths (shared), or files travel through Ray (bytes)")
    r.add_argument("--force", action="store_true", help="with --out-dir: render everything again")
    r.add_argument("--json", action="store_true",
                   help="print a JSON summary on stdout: the render's record with -o, the batch's with --out-dir")
    r.add_argument("--unlinked", action="store_true",
                   help="analyse each channel on its own (default: the preset's chain.linked, one gain curve for "
                        "all channels so the image stays put)")
    r.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(fn=cmd_render)

    p = sub.add_parser("presets", help="list or show presets")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("name", nargs="?")
    p.set_defaults(fn=cmd_presets)

    pa = sub.add_parser("params", help="print the parameter table")
    pa.add_argument("--json", action="store_true")
    pa.add_argument("--markdown", action="store_true", help="the table as Markdown (as in the README)")
    pa.set_defaults(fn=cmd_params)

    b = sub.add_parser("bench", help="real-time factor per stage and for the chain (one thread)")
    b.add_argument("--preset", default="broadcast-voice")
    b.add_argument("--rate", type=int, default=48000)
    b.add_argument("--block", type=int, default=128)
    b.add_argument("--channels", type=int, default=2, choices=[1, 2])
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--cpu-time", action="store_true",
                   help="time with the thread's CPU clock instead of the wall clock (steady on a shared machine)")
    b.set_defaults(fn=cmd_bench)

    d = sub.add_parser("demo", help="render the bundled clip through every shipped preset, with spectrograms")
    d.add_argument("--out-dir", default="demo-output")
    d.add_argument("--input", help="another clip instead of the bundled one")
    d.add_argument("--block", type=int, default=4096)
    d.set_defaults(fn=cmd_demo)

    sv = sub.add_parser("serve", help="OSC control server next to a processor fed from a file or silence")
    sv.add_argument("--preset", default="broadcast-voice")
    sv.add_argument("--anon-random", action="store_true", help=_anon_random_help())
    add_control_surface_args(sv)
    sv.add_argument("--input", help="audio file to loop through the chain (default: silence)")
    sv.add_argument("--rate", type=int, default=48000)
    sv.add_argument("--channels", type=int, default=2, choices=[1, 2])
    sv.add_argument("--block", type=int, default=256)
    sv.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = until Ctrl-C)")
    sv.add_argument("-v", "--verbose", action="store_true", help="log every rejected message (rate-limited)")
    sv.set_defaults(fn=cmd_serve)

    od = sub.add_parser("osc-docs", help="print the OSC address space as Markdown (docs/osc.md)")
    od.set_defaults(fn=cmd_osc_docs)

    dw = sub.add_parser("daw", help="generate DAW integration files (REAPER, Ardour, TouchOSC-style)")
    dw.add_argument("kind", choices=["reaper", "ardour", "touchosc"])
    dw.add_argument("--out", help="write the files into this folder (default: print them)")
    dw.set_defaults(fn=cmd_daw)

    ui = sub.add_parser("ui", help="Dear PyGui control panel (an OSC client of resculpt serve/live)")
    ui.add_argument("--host", default="127.0.0.1", help="address of the resculpt serve/live OSC server")
    ui.add_argument("--port", type=int, default=9010, help="its OSC port")
    ui.add_argument("--start-server", action="store_true", help="start a `resculpt serve` in-process")
    ui.add_argument("--preset", default="broadcast-voice", help="preset for --start-server")
    ui.add_argument("--input", help="audio file for --start-server (default: the bundled example)")
    ui.add_argument("--screenshot", metavar="PNG", help="render a few frames, write a PNG and exit")
    ui.add_argument("--frames", type=int, default=90, help="frames to render before --screenshot")
    ui.set_defaults(fn=cmd_ui)

    pl = sub.add_parser("plugin", help="build and install the LV2 plugin (Ardour, REAPER, Bitwig, Carla, ...)",
                        description="install: compile resculpt.lv2 against this Python and copy it into an LV2 "
                                    "folder (needs a C compiler, lv2-dev and this Python's headers). "
                                    "preset USER.json [--target T.json]: write the user preset (and target "
                                    "profile) as an LV2 preset of the plugin, listed in the host's preset menu")
    pl.add_argument("action", choices=["install", "preset"])
    pl.add_argument("args", nargs="*", metavar="USER_PRESET.json", help="preset: the user preset file")
    pl.add_argument("--target", metavar="TARGET.json", help="preset: target profile the plugin moves toward "
                    "(match-EQ, appended to the preset's layout when it has none)")
    pl.add_argument("--name", help="preset: the LV2 preset's label (default: the preset's name)")
    pl.add_argument("--lv2-path", metavar="DIR", help="LV2 folder to install into (default ~/.lv2)")
    pl.add_argument("--python", metavar="PY", help="the Python the plugin runs (default: this one, "
                    f"{sys.executable})")
    pl.set_defaults(fn=cmd_plugin)

    pr = sub.add_parser("profile", help="sonic fingerprints and target profiles",
                        description="describe TEXT | from-reference REF | fingerprint IN (-o OUT.json); "
                                    "show [FILE] | learn | forget | contexts")
    pr.add_argument("action", choices=["describe", "from-reference", "fingerprint", "show", "learn", "forget",
                                       "contexts"])
    pr.add_argument("args", nargs="*", help="descriptor text, or an audio/profile file")
    pr.add_argument("-o", "--output", help="output profile JSON")
    pr.add_argument("--base", help="describe: apply the descriptors to this clip's fingerprint")
    pr.add_argument("--auto", choices=["on", "off"], help="learn: switch automatic learning on or off")
    pr.set_defaults(fn=cmd_profile)

    t = sub.add_parser("train", help="train a learned stage (needs the [train] extra: torch)",
                       description="resculpt train mask|resculpt [--out DIR] [--steps N] [--smoke] ...; "
                                   "`resculpt train mask --help` lists the options")
    t.add_argument("model", choices=["mask", "resculpt"])
    t.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the trainer")
    t.set_defaults(fn=cmd_train)

    vf = sub.add_parser("verify", help="report the voice-transformed tag and watermark score of audio files",
                        description="Reads the provenance tag Resculpt writes into anonymized renders (WAV INFO, "
                                    "FLAC Vorbis comment; other containers through ffprobe) and runs the watermark "
                                    "detector (score >= threshold: marked). See docs/anonymization.md for the limits.")
    vf.add_argument("files", nargs="+", metavar="FILE")
    vf.add_argument("--json", action="store_true", help="print one JSON list")
    vf.set_defaults(fn=cmd_verify)

    from resculpt.plugin_host.live_cli import add_live_parser  # live + devices (imports nothing heavy)

    add_live_parser(sub)

    return ap


def main(argv=None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        return int(a.fn(a) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
