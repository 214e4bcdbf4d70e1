"""`resculpt live` and `resculpt devices` (registered in cli.build_parser; heavy imports stay inside).

Output: human status on stderr (a refreshing line on a terminal, a line every --status-interval
seconds otherwise); with --json, JSON lines on stdout: {"event": "ready", ...} once audio runs,
"status" every interval, "reconnecting"/"reconnected", "latency" when a preset changes it, and
"stopped" with the final stats. Exit codes: 0 stopped normally (Ctrl-C, SIGTERM, --duration),
1 runtime error (no server, device not found, unsupported rate/block), 2 usage error.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time


def _die(msg: str, code: int = 1) -> int:
    print(f"resculpt: error: {msg}", file=sys.stderr)
    return code


def _split(v):
    if not v:
        return []
    out = []
    for item in v:
        out += [s.strip() for s in item.split(",") if s.strip()]
    return out


def add_live_parser(sub) -> None:
    lv = sub.add_parser(
        "live", help="run a preset on live audio (JACK or PortAudio) with a status line and OSC control",
        description="Process live audio through a preset. JACK: client 'resculpt' with ports in_1 in_2 out_1 "
                    "out_2 (connect them from OBS, a DAW, qpwgraph, or with --input/--output/--auto-connect). "
                    "PortAudio: --input/--output are device names or indices (`resculpt devices`).")
    lv.add_argument("--preset", default="broadcast-voice", help="shipped/user preset name or a .json path")
    from resculpt.plugin_host.presets import ANON_RANDOM_HELP

    lv.add_argument("--anon-random", action="store_true", help=ANON_RANDOM_HELP)
    lv.add_argument("--backend", choices=["jack", "portaudio"], default="jack")
    lv.add_argument("--input", action="append", metavar="DEV",
                    help="JACK: source port(s) to connect to in_1/in_2 (name or regex, comma-separated or repeated); "
                         "PortAudio: input device name/index")
    lv.add_argument("--output", action="append", metavar="DEV",
                    help="JACK: sink port(s) fed by out_1/out_2; PortAudio: output device name/index")
    lv.add_argument("--auto-connect", action="store_true",
                    help="JACK: connect system capture -> in_* and out_* -> system playback")
    lv.add_argument("--rate", type=int, default=None,
                    help="sample rate (PortAudio default 48000; JACK: must match the server, default: the server's)")
    lv.add_argument("--block", type=int, default=None,
                    help="block size in samples (PortAudio default 128; JACK: must match the server's period)")
    lv.add_argument("--server", default=None, help="JACK server name (default $JACK_DEFAULT_SERVER or 'default')")
    lv.add_argument("--client-name", default="resculpt", help="JACK client name (ports <name>:in_1 ...)")
    lv.add_argument("--mono", action="store_true", help="mono chain: in_1 -> chain -> out_1 and out_2 (half the CPU)")
    lv.add_argument("--set", action="append", metavar="ID=VALUE", help="override a parameter (repeatable)")
    lv.add_argument("--input-profile", metavar="PROFILE.json",
                    help="a fingerprint of this input recorded beforehand (same voice, microphone and room: "
                         "`resculpt profile fingerprint take.wav -o me.json`): the target stages start from it, so "
                         "the move toward a target is fixed from the first block instead of following a running "
                         "estimate of the input")
    lv.add_argument("--osc-port", type=int, default=9010, help="OSC control port (0 = any free port)")
    lv.add_argument("--osc-host", default="127.0.0.1")
    lv.add_argument("--no-osc", action="store_true", help="do not start the OSC server")
    lv.add_argument("--secret", help="OSC: shared secret non-loopback senders send with /resculpt/auth")
    lv.add_argument("--allow", action="append", metavar="ADDR[/BITS]",
                    help="OSC: sender address or network accepted without a secret (repeatable)")
    lv.add_argument("--insecure", action="store_true", help="OSC: bind beyond loopback with no secret or allow-list")
    lv.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    lv.add_argument("--status-interval", type=float, default=None,
                    help="seconds between status updates (default 0.5 on a terminal, 10 otherwise, 1 with --json)")
    lv.add_argument("--json", action="store_true", help="JSON-lines events on stdout (ready/status/stopped)")
    lv.add_argument("--no-reconnect", action="store_true", help="exit when the server/device goes away")
    lv.set_defaults(fn=cmd_live)

    dv = sub.add_parser("devices", help="list JACK ports and PortAudio devices for `resculpt live`")
    dv.add_argument("--backend", choices=["jack", "portaudio", "all"], default="all")
    dv.add_argument("--server", default=None, help="JACK server name")
    dv.add_argument("--json", action="store_true")
    dv.set_defaults(fn=cmd_devices)


def cmd_devices(a) -> int:
    from .live import LiveError, default_server, list_jack, list_portaudio

    result, rc = {}, 0
    if a.backend in ("jack", "all"):
        try:
            info, *ports = list_jack(a.server)
            result["jack"] = {**info, "ports": ports}
            if not a.json:
                print(f"JACK server {a.server or default_server() or 'default'!r}: {info['sample_rate']} Hz, {info['block']}-sample periods")
                for p in ports:
                    phys = " physical" if p["physical"] else ""
                    lat = f"  latency {p['latency']}" if "latency" in p else ""
                    print(f"  {p['direction']:6s} {p['name']}{phys}{lat}")
        except LiveError as e:
            result["jack"] = {"error": str(e)}
            if not a.json:
                print(f"JACK: {e}")
            rc = 1 if a.backend == "jack" else rc
    if a.backend in ("portaudio", "all"):
        try:
            devs = list_portaudio()
            result["portaudio"] = devs
            if not a.json:
                print("PortAudio devices:" if devs else
                      "PortAudio: no devices found (no sound card, or no ALSA/PulseAudio/JACK device is reachable)")
                for d in devs:
                    print(f"  {d['index']:3d} {d['name']:40s} {d['hostapi']:28s} in {d['inputs']} out {d['outputs']} "
                          f"({d['default_rate']:.0f} Hz)")
            if not devs and a.backend == "portaudio":
                rc = 1
        except LiveError as e:
            result["portaudio"] = {"error": str(e)}
            if not a.json:
                print(f"PortAudio: {e}")
            rc = 1 if a.backend == "portaudio" else rc
    if a.json:
        print(json.dumps(result, indent=2))
    return rc


def _start_osc(chain, a):
    """Start resculpt.plugin_host.osc.OscServer when it exists (it is optional); returns it or None."""
    if a.no_osc:
        return None, "OSC off (--no-osc)"
    try:
        from .osc import OscServer
    except ImportError:
        return None, "OSC server not available in this build"
    try:
        srv = OscServer(chain, host=a.osc_host, port=a.osc_port, secret=a.secret, allow=a.allow or None,
                        allow_insecure=a.insecure)
        srv.start()
    except OSError as e:  # OscError is an OSError: port in use, refused non-loopback bind, ...
        return None, f"OSC server could not start on {a.osc_host}:{a.osc_port} ({e}); continuing without it"
    return srv, f"OSC on udp://{a.osc_host}:{srv.port} (/resculpt/param/<id> <value>; feedback: /resculpt/subscribe)"


def cmd_live(a) -> int:
    from .chain import Chain
    from .live import (
        MAX_BLOCK,
        MIN_BLOCK,
        RATES,
        JackBackend,
        LiveSession,
        LiveError,
        PortAudioBackend,
        status_line,
    )
    from .presets import PresetError

    if a.block is not None and not (MIN_BLOCK <= a.block <= MAX_BLOCK):
        return _die(f"unsupported block size {a.block}: live mode takes {MIN_BLOCK}..{MAX_BLOCK} samples", 2)
    if a.rate is not None and a.rate not in RATES:
        return _die(f"unsupported rate {a.rate} Hz: live mode takes one of {', '.join(map(str, RATES))}", 2)
    sets = {}
    for it in a.set or []:
        if "=" not in it:
            return _die(f"--set expects ID=VALUE, got {it!r}", 2)
        k, v = it.split("=", 1)
        sets[k.strip()] = v.strip()
    ins, outs = _split(a.input), _split(a.output)
    if a.backend == "jack":
        backend = JackBackend(a.client_name, a.server, ins, outs, a.auto_connect, a.rate, a.block)
        rate, block = a.rate or 48000, a.block or 256
    else:
        if len(ins) > 1 or len(outs) > 1:
            return _die("PortAudio takes one --input and one --output device", 2)
        rate, block = a.rate or 48000, a.block or 128
        backend = PortAudioBackend(ins[0] if ins else None, outs[0] if outs else None, rate, block)
    try:
        chain = Chain.from_preset(a.preset, sample_rate=rate, channels=1 if a.mono else 2, max_block=block)
        for k, v in sets.items():
            chain.params.set(k, v)
        if a.anon_random:
            from resculpt.plugin_host.presets import anon_random_params

            for k, v in anon_random_params().items():
                if k == "anon.seed" or k not in sets:
                    chain.params.set(k, v)
        if a.input_profile:
            from resculpt.dsp.profile import load_profile

            chain.set_input_profile(load_profile(a.input_profile))
            chain.reset()  # before the stream starts: the primed graph from the first block
    except (PresetError, ValueError, OSError) as e:
        return _die(str(e))

    tty = sys.stderr.isatty()
    interval = a.status_interval or (1.0 if a.json else 0.5 if tty else 10.0)
    out_lock = threading.Lock()

    def emit_json(obj):
        with out_lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    def on_event(event, info):
        if a.json:
            emit_json({"event": event, **info})
        if event == "status":
            line = status_line(session.stats)
            if tty:
                sys.stderr.write("\r" + line[:160].ljust(160))
            elif not a.json:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
        elif event == "reconnecting":
            print(f"\nresculpt: the audio {'server' if a.backend == 'jack' else 'device'} went away; "
                  f"reconnecting every second (audio resumes when it is back)", file=sys.stderr)
        elif event == "reconnect_failed":
            print(f"\nresculpt: not back yet: {info['error']}", file=sys.stderr)
        elif event == "reconnected":
            print(f"\nresculpt: reconnected: {info['where']}", file=sys.stderr)
            if session.stats.latency:
                print("resculpt: " + session.stats.latency.describe(), file=sys.stderr)
        elif event == "latency":
            print("\nresculpt: preset changed the " + session.stats.latency.describe(), file=sys.stderr)

    session = LiveSession(chain, backend, status_interval=interval, reconnect=not a.no_reconnect, on_event=on_event)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        session.start()
    except LiveError as e:
        return _die(str(e))
    osc, osc_msg = _start_osc(chain, a)
    print(f"resculpt live: preset {chain.preset_name!r} ({'mono' if a.mono else 'stereo'}) on {backend.describe()}",
          file=sys.stderr)
    print("resculpt: " + session.stats.latency.describe(), file=sys.stderr)
    print(f"resculpt: {osc_msg}; Ctrl-C stops", file=sys.stderr)
    if a.json and osc is not None:
        emit_json({"event": "osc", "host": a.osc_host, "port": osc.port})
    t_end = None if a.duration is None else time.monotonic() + a.duration
    try:
        while not stop.is_set():
            if t_end is not None and time.monotonic() >= t_end:
                break
            if session.stats.state == "stopped":  # --no-reconnect and the backend went away
                break
            stop.wait(0.1)
    finally:
        if osc is not None:
            try:
                osc.stop()
            except Exception:
                pass
        lost = session.stats.state == "stopped"
        session.stop()
        for s, h in old.items():
            signal.signal(s, h)
    snap = session.stats.snapshot(last=None)
    if a.json:
        emit_json({"event": "stopped", **snap, "latency": session.stats.latency.as_dict()})
    if tty:
        sys.stderr.write("\n")
    print(f"resculpt live stopped: {snap['callbacks']} callbacks, xruns {snap['xruns']}, overruns {snap['overruns']}, "
          f"callback median {snap['cb_median_us']:.0f} us, p99 {snap['cb_p99_us']:.0f} us, max {snap['cb_max_us']:.0f} us "
          f"of a {snap['period_us']:.0f} us period", file=sys.stderr)
    rc = 0
    if lost and a.no_reconnect:
        rc = _die("the audio server/device went away (--no-reconnect)")
    if backend.abandoned:
        # PortAudio is stuck inside the vanished stream; its atexit Pa_Terminate would hang too.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc
