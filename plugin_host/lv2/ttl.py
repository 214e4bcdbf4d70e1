"""The plugin's Turtle files, generated from the parameter table: manifest.ttl, resculpt.ttl (ports),
presets.ttl (one LV2 preset per shipped preset: the preset control and every parameter's value, so a
host's preset menu shows the preset's sound on the sliders too), and the bundle of one user preset
(:func:`user_preset_files`: port values plus the plugin's state, which carries the preset's layout and a
target profile)."""

from __future__ import annotations

from .ports import (
    AUDIO_PORTS,
    DEFAULT_PRESET,
    ENABLED_PORT,
    LATENCY_PORT,
    PRESET_PORT,
    PRESETS,
    URI,
    USER_PRESET,
    USER_PRESET_LABEL,
    param_ports,
)

BINARY = "resculpt_lv2.so"

PREFIXES = """@prefix atom:   <http://lv2plug.in/ns/ext/atom#> .
@prefix doap:   <http://usefulinc.com/ns/doap#> .
@prefix log:    <http://lv2plug.in/ns/ext/log#> .
@prefix lv2:    <http://lv2plug.in/ns/lv2core#> .
@prefix pprops: <http://lv2plug.in/ns/ext/port-props#> .
@prefix pset:   <http://lv2plug.in/ns/ext/presets#> .
@prefix rdf:    <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs:   <http://www.w3.org/2000/01/rdf-schema#> .
@prefix state:  <http://lv2plug.in/ns/ext/state#> .
@prefix units:  <http://lv2plug.in/ns/extensions/units#> .
@prefix urid:   <http://lv2plug.in/ns/ext/urid#> .
"""

# Table units with an LV2 units: term; the others are declared inline (label, symbol, render format).
LV2_UNITS = {"dB": "units:db", "Hz": "units:hz", "ms": "units:ms", "s": "units:s", "bpm": "units:bpm"}


def _str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(x: float) -> str:
    """A Turtle decimal (never an integer literal: port ranges are xsd:float-like in every host)."""
    s = repr(float(x))
    return s if ("." in s or "e" in s) else s + ".0"


def preset_uri(name: str) -> str:
    return f"{URI}#preset-{name}"


def manifest_ttl() -> str:
    lines = [PREFIXES, f"<{URI}>", "    a lv2:Plugin ;", f"    lv2:binary <{BINARY}> ;",
             "    rdfs:seeAlso <resculpt.ttl> .", ""]
    for name in PRESETS:
        lines += [f"<{preset_uri(name)}>", "    a pset:Preset ;", f"    lv2:appliesTo <{URI}> ;",
                  f"    rdfs:label {_str(name)} ;", "    rdfs:seeAlso <presets.ttl> .", ""]
    return "\n".join(lines)


def _unit(spec) -> list[str]:
    if not spec.unit or spec.scale in ("bool", "choice"):
        return []
    if spec.unit in LV2_UNITS:
        return [f"units:unit {LV2_UNITS[spec.unit]}"]
    return [f"units:unit [ a units:Unit ; rdfs:label {_str(spec.unit)} ; units:symbol {_str(spec.unit)} ; "
            f"units:render {_str('%f ' + spec.unit)} ]"]


def _port(index: int, kind: str, sym: str, name: str, props: list[str]) -> str:
    body = [f"a lv2:{kind}", f"lv2:index {index}", f"lv2:symbol {_str(sym)}", f"lv2:name {_str(name)}"] + props
    return "[\n        " + " ;\n        ".join(body) + "\n    ]"


def _scale_points(labels, extra=()) -> list[str]:
    """Scale points ``labels[i]`` = i, plus ``extra`` (value, label) pairs."""
    points = [*enumerate(labels), *extra]
    return ["lv2:scalePoint " + " , ".join(f"[ rdfs:label {_str(l)} ; rdf:value {_num(i)} ]" for i, l in points)]


def plugin_ttl() -> str:
    ports = []
    for i, (sym, name) in enumerate(AUDIO_PORTS):
        kind = "InputPort" if i < 2 else "OutputPort"
        ports.append(_port(i, f"AudioPort , lv2:{kind}", sym, name, []))
    ports.append(_port(LATENCY_PORT, "ControlPort , lv2:OutputPort", "latency", "Latency",
                       ["lv2:designation lv2:latency", "lv2:portProperty lv2:reportsLatency , lv2:integer , "
                        "pprops:notOnGUI", "lv2:minimum 0.0", "lv2:maximum 192000.0", "units:unit units:frame"]))
    ports.append(_port(ENABLED_PORT, "ControlPort , lv2:InputPort", "enabled", "Enabled",
                       ["lv2:designation lv2:enabled", "lv2:portProperty lv2:toggled , lv2:integer",
                        "lv2:default 1.0", "lv2:minimum 0.0", "lv2:maximum 1.0"]))
    ports.append(_port(PRESET_PORT, "ControlPort , lv2:InputPort", "preset", "Preset",
                       ["lv2:portProperty lv2:integer , lv2:enumeration , pprops:expensive",
                        f"lv2:default {_num(PRESETS.index(DEFAULT_PRESET))}", f"lv2:minimum {_num(USER_PRESET)}",
                        f"lv2:maximum {_num(len(PRESETS) - 1)}"]
                       + _scale_points(PRESETS, [(USER_PRESET, USER_PRESET_LABEL)])))
    for p in param_ports():
        s = p.spec
        props = [f"lv2:default {_num(s.default)}", f"lv2:minimum {_num(s.min)}", f"lv2:maximum {_num(s.max)}"]
        if p.retired:
            props.append("lv2:portProperty pprops:notOnGUI")
        elif s.scale == "bool":
            props.append("lv2:portProperty lv2:toggled , lv2:integer")
        elif s.scale == "choice":
            props += ["lv2:portProperty lv2:integer , lv2:enumeration"] + _scale_points(s.choices)
        elif s.scale == "log":
            props.append("lv2:portProperty pprops:logarithmic")
        if s.doc and not p.retired:
            props.append(f"rdfs:comment {_str(s.doc)}")
        name = f"(retired) {s.id}" if p.retired else s.id
        ports.append(_port(p.index, "ControlPort , lv2:InputPort", p.symbol, name, props + _unit(s)))
    return "\n".join([
        PREFIXES,
        f"<{URI}>",
        "    a lv2:Plugin , lv2:UtilityPlugin ;",
        '    doap:name "Resculpt" ;',
        '    doap:license <https://spdx.org/licenses/MIT> ;',
        "    lv2:optionalFeature urid:map , log:log ;",
        "    lv2:extensionData state:interface ;",
        "    lv2:port " + " , ".join(ports) + " .",
        "",
    ])


def port_values(preset_value: float, full_params: dict) -> list[tuple[str, float]]:
    """(symbol, value) of the preset control and of every parameter control ``full_params`` sets."""
    return [("preset", float(preset_value))] + [(p.symbol, float(full_params[p.spec.id])) for p in param_ports()
                                                if p.spec.id in full_params]


def _preset_block(uri: str, label: str, values, state: str | None = None) -> list[str]:
    body = " ,\n        ".join(f"[ lv2:symbol {_str(sym)} ; pset:value {_num(v)} ]" for sym, v in values)
    lines = [f"<{uri}>", "    a pset:Preset ;", f"    lv2:appliesTo <{URI}> ;", f"    rdfs:label {_str(label)} ;"]
    if state is None:
        return lines + [f"    lv2:port {body} .", ""]
    return lines + [f"    lv2:port {body} ;", f"    state:state [ <{STATE_KEY}> {_str(state)} ] .", ""]


def presets_ttl() -> str:
    """Each shipped preset as an LV2 preset: the preset control plus every parameter's value."""
    from resculpt.plugin_host.presets import load_preset

    out = [PREFIXES]
    for name in PRESETS:
        out += _preset_block(preset_uri(name), name, port_values(PRESETS.index(name), load_preset(name).full_params()))
    return "\n".join(out)


# The plugin's one state key (resculpt_lv2.c STATE_KEY): its value is the bridge's state JSON, an atom:String.
STATE_KEY = URI + "#state"
USER_PRESET_TTL = "preset.ttl"


def user_preset_uri(label: str) -> str:
    return f"{URI}#user-{label}"


def user_preset_files(label: str, values, state: str) -> dict[str, str]:
    """{file name: text} of an LV2 preset bundle: preset ``label`` (URI :func:`user_preset_uri`) sets the
    controls to ``values`` ((symbol, value) pairs) and restores the plugin's ``state`` (the bridge's JSON)."""
    uri = user_preset_uri(label)
    manifest = [PREFIXES, f"<{uri}>", "    a pset:Preset ;", f"    lv2:appliesTo <{URI}> ;",
                f"    rdfs:seeAlso <{USER_PRESET_TTL}> .", ""]
    return {"manifest.ttl": "\n".join(manifest),
            USER_PRESET_TTL: "\n".join([PREFIXES, *_preset_block(uri, label, values, state)])}


FILES = {"manifest.ttl": manifest_ttl, "resculpt.ttl": plugin_ttl, "presets.ttl": presets_ttl}

__all__ = ["BINARY", "FILES", "STATE_KEY", "manifest_ttl", "plugin_ttl", "port_values", "preset_uri", "presets_ttl",
           "user_preset_files", "user_preset_uri"]
