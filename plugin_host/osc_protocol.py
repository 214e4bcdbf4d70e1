"""What travels over OSC between Resculpt and its clients: the address names, the tables that
document them (``resculpt osc-docs`` -> ``docs/osc.md``), message encoding and decoding, and the
argument checks every handler shares. The server (:mod:`.osc`), the DAW dialects
(:mod:`.daw.dialects`), the client (:mod:`.osc_client`) and the panel all name addresses from here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from resculpt.dsp.params import ParamTable

from . import catalog
from .daw import param_order

PREFIX = "/resculpt"
DEFAULT_PORT = 9010

# control (client -> server)
PING = PREFIX + "/ping"
BYPASS = PREFIX + "/bypass"
MIX = PREFIX + "/mix"
DUMP = PREFIX + "/dump"
PRESET_LOAD = PREFIX + "/preset/load"
PRESET_SAVE = PREFIX + "/preset/save"
PRESET_RENAME = PREFIX + "/preset/rename"
PRESET_LIST = PREFIX + "/preset/list"  # also the reply: every preset name
PROFILE_DESCRIBE = PREFIX + "/profile/describe"
PROFILE_REFERENCE = PREFIX + "/profile/reference"
PROFILE_LOAD = PREFIX + "/profile/load"
PROFILE_INPUT = PREFIX + "/profile/input"
CONTEXT = PREFIX + "/context"  # also the reply: the context now applied
CONTEXT_LIST = PREFIX + "/context/list"  # also the reply: every context name
SUBSCRIBE = PREFIX + "/subscribe"
UNSUBSCRIBE = PREFIX + "/unsubscribe"
AUTH = PREFIX + "/auth"  # also the reply: 1 when the sender is authorised
PARAM = PREFIX + "/param/"  # + <id> (native value), <id>/norm (0..1), <id>/get

# replies (server -> the sender)
PONG = PREFIX + "/pong"
ERROR = PREFIX + "/error"
SUBSCRIBED = PREFIX + "/subscribed"
PRESET_SAVED = PREFIX + "/preset/saved"
PRESET_RENAMED = PREFIX + "/preset/renamed"
PRESET_USER = PREFIX + "/preset/user"
PROFILE_APPLIED = PREFIX + "/profile/applied"

# feedback (server -> subscribers, and replies to /dump)
METERS = PREFIX + "/meters"
LATENCY = PREFIX + "/latency"
CPU = PREFIX + "/cpu"
LIVE = PREFIX + "/live"
SPECTRUM = PREFIX + "/spectrum"
MASK = PREFIX + "/mask"
PRESET_CURRENT = PREFIX + "/preset/current"
CHAIN = PREFIX + "/chain"

# DAW shapes (translated by daw.dialects)
ARDOUR_PARAMETER = "/strip/plugin/parameter"
REAPER_PREFIXES = ("/track/", "/fx/")


class Address(NamedTuple):
    """One row of the address tables: the address, its arguments, what it does."""

    address: str
    args: str
    doc: str


FIXED_ADDRESSES = (
    Address(PING, "", f"answers {PONG}"),
    Address(BYPASS, "f or i 0..1", f"crossfade to the latency-aligned dry signal (same as {PARAM}bypass)"),
    Address(MIX, "f 0..1", f"wet/dry mix (same as {PARAM}mix)"),
    Address(DUMP, "", f"replies every {PARAM}<id>, {PRESET_CURRENT}, {CHAIN} and {LATENCY}"),
    Address(PRESET_LOAD, "s name", f"load a shipped or user preset; replies {PRESET_CURRENT} <name>"),
    Address(PRESET_SAVE, "s name", f"save the current sound as a user preset; replies {PRESET_SAVED} <name> <path>"),
    Address(PRESET_RENAME, "s old, s new", f"rename a user preset; replies {PRESET_RENAMED} <old> <new>"),
    Address(PRESET_LIST, "", f"replies {PRESET_LIST} <names...> and {PRESET_USER} <user names...>"),
    Address(PROFILE_DESCRIBE, "s text",
            'apply a descriptor ("more bass, clearer highs") as the target; '
            f"replies {PROFILE_APPLIED} <text>"),
    Address(PROFILE_REFERENCE, "s path", f"match a reference clip; replies {PROFILE_APPLIED} <path>"),
    Address(PROFILE_LOAD, "s path", f"move toward a profile file (resculpt profile ... -o T.json, a shipped target); "
                                    f"replies {PROFILE_APPLIED} <path>"),
    Address(PROFILE_INPUT, "[s path]", "hold the target stages' estimate of the input at this fingerprint (a take "
                                       "of the same voice and microphone: a fixed move toward the target); no "
                                       f"argument learns the input again; replies {PROFILE_APPLIED} <path>"),
    Address(CONTEXT, "s name", f"switch listening context; replies {CONTEXT} <name>"),
    Address(CONTEXT_LIST, "", f"replies {CONTEXT_LIST} <names...>"),
    Address(SUBSCRIBE, "i port", "send feedback (~30 Hz) to the sender's address at <port> for 30 s; renew to keep it"),
    Address(UNSUBSCRIBE, "[i port]", "stop feedback to the sender (at <port>, or every port of the sender)"),
    Address(AUTH, "s secret", "authorise the sender's address (non-loopback binds with a secret)"),
)

FEEDBACK_ADDRESSES = (
    Address(METERS, "f in_peak_db, f in_rms_db, f out_peak_db, f out_rms_db", "levels since the last report, dBFS"),
    Address(LATENCY, "i samples, f ms [, i total_samples, f total_ms]",
            "chain latency (plus device buffering under `resculpt live`)"),
    Address(CPU, "f load, f peak", "chain time / block period, mean and peak since the last report"),
    Address(LIVE, "i xruns, i overruns, f cb_p99_ms, f load_p99, f cb_max_ms, i reconnects",
            "under `resculpt live` only: audio callback health (p99 over the last 4096 callbacks, max and counts "
            "since start; load = callback time / period)"),
    Address(SPECTRUM, "64 x f", "output spectrum, dBFS per log-spaced band (30 Hz .. 20 kHz)"),
    Address(MASK, "64 x f", "|processed| / |input| per band (1 = unchanged)"),
    Address(PARAM + "<id>", "f value, s unit, s display", "sent when a parameter changes (from any client)"),
    Address(PRESET_CURRENT, "s name", "sent when a preset is loaded"),
    Address(CHAIN, "s stage...", "the stages the chain runs, in processing order (pre, spectral, post); "
            "sent when they change"),
)


def param_address(pid: str) -> str:
    """The native-value address of parameter ``pid``."""
    return PARAM + pid


def param_id(address: str) -> str | None:
    """The parameter id of a ``/resculpt/param/<id>`` address (None for any other address)."""
    return address[len(PARAM):] if address.startswith(PARAM) else None


def address_space(table) -> list[Address]:
    """Every address the server handles: the fixed ones, then three per parameter of ``table``."""
    rows = list(FIXED_ADDRESSES)
    for s in table.specs:
        rng = f"{s.min:g}..{s.max:g} {s.unit}".strip()
        if s.choices:
            rng += " (" + ", ".join(f"{i}={c}" for i, c in enumerate(s.choices)) + ")"
        base = param_address(s.id)
        rows.append(Address(base, f"f {rng}", f"{s.doc} [{s.scale}, smoothed {s.smoothing_ms:g} ms]"))
        rows.append(Address(base + "/norm", "f 0..1", f"normalised ({'log' if s.scale == 'log' else 'linear'} map)"))
        rows.append(Address(base + "/get", "", f"replies {base} <value> <unit> <display>"))
    return rows


def osc_docs_markdown(table=None) -> str:
    """docs/osc.md: the whole address space (generated; `resculpt osc-docs > docs/osc.md`)."""
    if table is None:
        table = ParamTable(catalog.all_param_specs())
    lines = [
        "# OSC address space",
        "",
        "<!-- Generated by `resculpt osc-docs > docs/osc.md` from the parameter table; do not edit. -->",
        "",
        f"`resculpt serve` (and `resculpt live`) listen on UDP `127.0.0.1:{DEFAULT_PORT}` by default. "
        "Replies go to the sender's address and port. Any rejected message gets "
        f"`{ERROR} <message> <address>` back and changes nothing.",
        "",
        "Numbers may be sent as int or float. Values are in the parameter's native unit; out-of-range "
        "values and NaN are refused (use `/norm` for 0..1). Parameter changes reach the audio path at the "
        "next block and are smoothed over the parameter's ramp.",
        "",
        "## Control",
        "",
        "| address | arguments | what it does |",
        "|---|---|---|",
    ]
    for a, args, doc in FIXED_ADDRESSES:
        lines.append(f"| `{a}` | {args or '-'} | {doc} |")
    lines += ["", "## Parameters", "", "| address | arguments | what it does |", "|---|---|---|"]
    for a, args, doc in address_space(table)[len(FIXED_ADDRESSES):]:
        lines.append(f"| `{a}` | {args or '-'} | {doc} |")
    lines += [
        "",
        "## Feedback (to subscribers, ~30 Hz)",
        "",
        "| address | arguments | meaning |",
        "|---|---|---|",
    ]
    for a, args, doc in FEEDBACK_ADDRESSES:
        lines.append(f"| `{a}` | {args} | {doc} |")
    lines += [
        "",
        "## DAW shapes",
        "",
        "Also accepted (see `docs/daw/`): REAPER `/track/<t>/fx/<f>/fxparam/<k>/value <0..1>` and "
        "`/fx/<f>/fxparam/<k>/value <0..1>` (linear over the parameter range, as the generated JSFX "
        f"sliders), Ardour `{ARDOUR_PARAMETER} <ssid> <piid> <k> <value>` (native units); `k` is "
        "1-based in this order (append-only: `plugin_host/daw/order.py`):",
        "",
    ]
    for k, pid in enumerate(param_order(), 1):
        lines.append(f"{k}. `{pid}`")
    lines.append("")
    return "\n".join(lines)


# -- messages ---------------------------------------------------------------------------------------
class BadMessage(ValueError):
    """A message was rejected; the text is sent back on /resculpt/error."""


def build_message(address: str, args=()) -> bytes:
    """One OSC message datagram: bools and ints as ``i``, floats as ``f``, anything else as ``s``."""
    b = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(int(a), "i")
        elif isinstance(a, int):
            b.add_arg(a, "i")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        else:
            b.add_arg(str(a), "s")
    return b.build().dgram


def decode(data: bytes) -> list[tuple[str, list]]:
    """(address, arguments) of every message in a datagram (a message or a bundle); raises on garbage."""
    return [(tm.message.address, list(tm.message.params)) for tm in OscPacket(data).messages]


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def number_arg(args, addr: str, what: str = "a number") -> float:
    """The one finite number in ``args`` (a bool counts as 0/1); BadMessage otherwise."""
    if len(args) != 1:
        raise BadMessage(f"{addr}: expected 1 argument ({what}), got {len(args)}")
    v = args[0]
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if not is_number(v):
        raise BadMessage(f"{addr}: expected {what}, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise BadMessage(f"{addr}: value must be finite, got {v}")
    return v


def string_args(args, addr: str, what: str, n: int = 1) -> list[str]:
    """Exactly ``n`` non-empty strings, stripped; BadMessage otherwise."""
    if len(args) != n:
        raise BadMessage(f"{addr}: expected {n} string argument(s) ({what}), got {len(args)}")
    for a in args:
        if not isinstance(a, str):
            raise BadMessage(f"{addr}: expected a string ({what}), got {type(a).__name__}")
        if not a.strip():
            raise BadMessage(f"{addr}: {what} is empty")
    return [a.strip() for a in args]
