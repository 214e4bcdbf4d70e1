"""Target profiles by name: the shipped targets (``presets/targets/<name>.json``) and a preset's ``target``.

A preset's ``target`` is ``{"describe": "warmer, radio voice"}`` (a descriptor text: a delta from the input,
:mod:`resculpt.dsp.descriptors`) or ``{"profile": NAME_OR_PATH}`` (a shipped target's name, or a profile
file). Loading a preset with a target publishes it (``Chain.set_target``) and puts the engine's stage in its
layout, as ``render --target`` does; ``render --target`` given explicitly replaces the preset's.
"""

from __future__ import annotations

from pathlib import Path

from resculpt.dsp.profile import Profile, ProfileError, load_profile

from .paths import shipped_presets_dir

TARGET_KEYS = ("describe", "profile")


def shipped_targets_dir() -> Path:
    return shipped_presets_dir() / "targets"


def list_targets() -> list[str]:
    """The shipped targets' names."""
    d = shipped_targets_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def resolve_target(spec) -> Profile:
    """A Profile from ``spec``: a Profile (as is), a profile file's path, or a shipped target's name.
    Raises ProfileError (the file's own error, or an unknown name with the known ones)."""
    if isinstance(spec, Profile):
        return spec
    p = Path(spec).expanduser()
    if p.suffix == ".json" or p.exists() or len(p.parts) > 1:
        return load_profile(p)
    shipped = shipped_targets_dir() / f"{spec}.json"
    if shipped.is_file():
        return load_profile(shipped)
    import difflib

    known = list_targets()
    close = difflib.get_close_matches(str(spec), known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ProfileError(f"{spec}: no such profile file or shipped target{hint}; shipped: {', '.join(known) or 'none'}")


def preset_target(d: dict | None, where: str = "target") -> Profile | None:
    """The Profile a preset's ``target`` object names (None for None). Raises ProfileError (a ValueError;
    a DescriptorError for a bad descriptor text)."""
    if d is None:
        return None
    if not isinstance(d, dict) or len(d) != 1 or next(iter(d)) not in TARGET_KEYS:
        raise ProfileError(f"{where}: expected {{\"describe\": TEXT}} or {{\"profile\": NAME_OR_PATH}}, got {d!r}")
    (k, v), = d.items()
    if not isinstance(v, str) or not v.strip():
        raise ProfileError(f"{where}.{k}: expected a non-empty string")
    if k == "describe":
        from resculpt.dsp.descriptors import describe

        return describe(v)
    return resolve_target(v)
