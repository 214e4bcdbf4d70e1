"""Versioned presets: {schema_version, name, description, tags, chain, params}.

Loading validates everything before anything is applied and raises :class:`PresetError` naming
the file and the field. Shipped presets (the package's presets/ folder) are searched first, then
the user folder ($XDG_CONFIG_HOME/resculpt/presets, default ~/.config/resculpt/presets).
Older schema versions are upgraded by :func:`migrate`, one version step at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from resculpt.dsp.params import ParamError

from . import catalog
from .layout import Layout
from .paths import shipped_presets_dir, user_presets_dir

SCHEMA_VERSION = 1


class PresetError(ValueError):
    """A preset could not be loaded or saved; the message names the file and the field."""


@dataclass
class Preset:
    """A validated preset. ``params`` holds only the values the file sets (by id)."""

    name: str
    layout: Layout
    params: dict = field(default_factory=dict)
    description: str = ""
    tags: tuple = ()
    path: Path | None = None
    target: dict | None = None  # {"describe": text} or {"profile": name or path} (plugin_host/targets.py)

    def full_params(self) -> dict:
        """Every built-in parameter: the preset's values over the catalog defaults.

        A preset fully defines the sound, so a parameter it leaves out goes back to its default.
        """
        out = {s.id: s.default for s in catalog.all_param_specs()}
        out.update(self.params)
        return out

    def to_dict(self) -> dict:
        d = {"schema_version": SCHEMA_VERSION, "name": self.name, "description": self.description,
             "tags": list(self.tags), "chain": self.layout.to_dict(), "params": dict(self.params)}
        if self.target is not None:
            d["target"] = dict(self.target)
        return d

    def target_profile(self):
        """The Profile this preset moves toward, or None (``plugin_host/targets.py``)."""
        from .targets import preset_target

        return preset_target(self.target, f"{self.name}: target")


# -- migration -----------------------------------------------------------------------------------
def _v0_to_v1(d: dict) -> dict:
    """Version 0 (pre-release, hand-written files): a flat {"params": {...}} with an optional
    "stages" list of spectral stages and "mask.reduction" without its unit suffix."""
    out = {k: v for k, v in d.items() if k not in ("stages",)}
    params = dict(d.get("params", {}))
    renames = {"mask.reduction": "mask.reduction_db", "gain_db": "out.gain_db"}
    for old, new in renames.items():
        if old in params:
            params[new] = params.pop(old)
    out["params"] = params
    out.setdefault("chain", {"spectral": list(d.get("stages", []))})
    out["schema_version"] = 1
    return out


MIGRATIONS = {0: _v0_to_v1}


def migrate(d: dict, where: str = "preset") -> dict:
    v = d.get("schema_version", 0)
    if not isinstance(v, int) or isinstance(v, bool):
        raise PresetError(f"{where}: schema_version: expected an integer, got {v!r}")
    if v > SCHEMA_VERSION:
        raise PresetError(f"{where}: schema_version {v} is newer than this Resculpt ({SCHEMA_VERSION}); upgrade")
    if v < 0:
        raise PresetError(f"{where}: schema_version {v} is invalid")
    while v < SCHEMA_VERSION:
        d = MIGRATIONS[v](d)
        v = d["schema_version"]
    return d


# -- validation ----------------------------------------------------------------------------------
def validate(d, where: str = "preset", name_hint: str | None = None) -> Preset:
    """Validate a decoded preset object; return a Preset or raise PresetError naming the field."""
    if not isinstance(d, dict):
        raise PresetError(f"{where}: expected a JSON object at top level")
    d = migrate(d, where)
    allowed = {"schema_version", "name", "description", "tags", "chain", "params", "target"}
    extra = set(d) - allowed
    if extra:
        raise PresetError(f"{where}: unknown field(s) {sorted(extra)}")
    name = d.get("name", name_hint)
    if not isinstance(name, str) or not name:
        raise PresetError(f"{where}: name: expected a non-empty string")
    desc = d.get("description", "")
    if not isinstance(desc, str):
        raise PresetError(f"{where}: description: expected a string")
    tags = d.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise PresetError(f"{where}: tags: expected a list of strings")
    try:
        layout = Layout.from_dict(d.get("chain", {}), "chain")
    except ValueError as e:
        raise PresetError(f"{where}: {e}") from None
    params = d.get("params", {})
    if not isinstance(params, dict):
        raise PresetError(f"{where}: params: expected an object of id: value")
    specs = {s.id: s for s in catalog.all_param_specs()}
    plugin_slots = {e.slot for e in layout.plugin_entries()}
    clean = {}
    for pid, v in params.items():
        f = f"params.{pid}"
        if pid.split(".", 1)[0] in plugin_slots:
            # VST3 parameters are checked against the plugin when the chain is built.
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise PresetError(f"{where}: {f}: expected a number")
            clean[pid] = float(v)
            continue
        spec = specs.get(pid)
        if spec is None:
            import difflib

            close = difflib.get_close_matches(pid, list(specs), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise PresetError(f"{where}: {f}: unknown parameter{hint}")
        if (not isinstance(v, (int, float, str)) or (isinstance(v, str) and spec.scale != "choice")
                or (isinstance(v, bool) and spec.scale != "bool")):
            raise PresetError(f"{where}: {f}: expected a number, got {type(v).__name__}")
        try:
            v = spec.coerce(v, strict=True)
        except ParamError as e:
            raise PresetError(f"{where}: params.{e}") from None
        clean[pid] = v
    target = d.get("target")
    if target is not None:
        from .targets import preset_target

        try:
            preset_target(target, f"{where}: target")
        except ValueError as e:
            raise PresetError(str(e)) from None
        target = dict(target)
    return Preset(name, layout, clean, desc, tuple(tags), target=target)


def read_file(path: str | Path) -> Preset:
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PresetError(f"{where}: cannot read: {e}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise PresetError(f"{where}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    p = validate(d, where, name_hint=path.stem)
    p.path = path
    return p


def search_dirs() -> list[Path]:
    return [shipped_presets_dir(), user_presets_dir()]


def find(name: str) -> Path:
    """Path of preset ``name``: shipped first, then the user folder."""
    for d in search_dirs() if name not in NOT_PRESETS else ():
        p = d / f"{name}.json"
        if p.is_file():
            return p
    known = list_presets()
    import difflib

    close = difflib.get_close_matches(name, [k for k, _ in known], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise PresetError(f"preset {name!r} not found{hint}; `resculpt presets list` shows them")


def load_preset(name_or_path) -> Preset:
    """Load by name (shipped, then user folder) or by a path to a .json file."""
    s = str(name_or_path)
    if s.endswith(".json") or os.sep in s or Path(s).is_file():
        return read_file(s)
    return read_file(find(s))


# JSON files in the preset folders that are not presets (context rules: plugin_host/contexts.py).
NOT_PRESETS = {"contexts"}


def list_presets() -> list[tuple[str, Path]]:
    """(name, path) of every preset; a user preset with a shipped name is shadowed and not listed."""
    seen, out = set(NOT_PRESETS), []
    for d in search_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.json")):
            if p.stem not in seen:
                seen.add(p.stem)
                out.append((p.stem, p))
    return out


def save_preset(preset: Preset, path: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write ``preset``. Without a path, into the user folder as <name>.json (never over a shipped one)."""
    if path is None:
        if not preset.name or any(c in preset.name for c in "/\\") or preset.name.startswith("."):
            raise PresetError(f"invalid preset name {preset.name!r}")
        if (shipped_presets_dir() / f"{preset.name}.json").exists():
            raise PresetError(f"{preset.name!r} is a shipped preset; save under another name")
        path = user_presets_dir() / f"{preset.name}.json"
    path = Path(path)
    if path.exists() and not overwrite:
        raise PresetError(f"{path}: exists (pass overwrite=True to replace it)")
    validate(json.loads(json.dumps(preset.to_dict())), str(path))  # what we write must load
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(preset.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def preset_from_chain(chain, name: str, description: str = "", tags=()) -> Preset:
    """Snapshot a chain's layout and every parameter target into a Preset."""
    return Preset(name, chain.layout, chain.params.targets(), description, tuple(tags))


def rename_preset(old: str, new: str) -> Path:
    """Rename user preset ``old`` to ``new`` (its file and its ``name``); returns the new path.

    PresetError when ``old`` is a shipped preset or no user preset, or when ``new`` is a shipped
    name or already exists (the old file is kept then)."""
    src = user_presets_dir() / f"{old}.json"
    if not src.is_file():
        if (shipped_presets_dir() / f"{old}.json").is_file():
            raise PresetError(f"{old!r} is a shipped preset; save it under a new name instead")
        raise PresetError(f"user preset {old!r} not found")
    p = read_file(src)
    p.name = new
    path = save_preset(p)
    os.remove(src)
    return path


ANON_RANDOM_HELP = ("a random pseudo-speaker for this session (anon-* presets): draws anon.seed and turns the "
                    "level-dynamics step off (anon.dynamics_pct 0, unless set); docs/anonymization.md says what it costs")

# What a new voice per session sets besides the seed. The level-dynamics step (with its learned split) is what
# keeps a fixed pseudo-speaker from being linked to itself across utterances; with a new voice per session the
# voices already differ, and the step costs words and naturalness for little: on the 17 val speakers
# anon-neutral's new voices read 37 % Whisper WER and DNSMOS 2.91 without it against 78 % and 2.78 with it, and
# the three presets' new voices keep a lazy-informed EER of 31-33 % without it (docs/anonymization.md, "Words").
ANON_RANDOM_SETS = {"anon.dynamics_pct": 0.0}


def anon_random_params(quiet: bool = False) -> dict:
    """``--anon-random`` of render/live/serve: {parameter id: value}, a fresh ``anon.seed`` for this session (a
    pseudo-speaker of its own) and ``ANON_RANDOM_SETS``; said on stderr so the same voice can be had again with
    ``--set``. A caller applies the seed always and the others only where the user set nothing."""
    import sys

    from resculpt.dsp.voice.anon import session_seed

    out = {"anon.seed": session_seed(), **ANON_RANDOM_SETS}
    if not quiet:
        again = " ".join(f"--set {k}={v:g}" for k, v in out.items())
        print(f"resculpt: anon.seed={out['anon.seed']} (this session's random pseudo-speaker; {again} gives this "
              "voice again)", file=sys.stderr)
    return out
