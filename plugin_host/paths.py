"""Where Resculpt's files live: the shipped folders and the user's XDG folders, in one place.

Shipped (read-only, inside the installed package): ``presets/`` (presets and ``contexts.json``).
User (created on first write): ``$XDG_CONFIG_HOME/resculpt/`` (default ``~/.config/resculpt``) for
presets and contexts the user writes; ``$XDG_DATA_HOME/resculpt/`` (default ``~/.local/share/resculpt``)
for what Resculpt learns on this device (the adjustment log and learned profile). Each function reads
the environment when called, so tests and users can point them elsewhere at any time.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, *default: str) -> Path:
    return Path(os.environ.get(var) or os.path.join(os.path.expanduser("~"), *default)) / "resculpt"


def user_config_dir() -> Path:
    """$XDG_CONFIG_HOME/resculpt: the user's presets and contexts."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def user_data_dir() -> Path:
    """$XDG_DATA_HOME/resculpt: what Resculpt learns on this device (never sent anywhere)."""
    return _xdg("XDG_DATA_HOME", ".local", "share")


def user_presets_dir() -> Path:
    return user_config_dir() / "presets"


def shipped_presets_dir() -> Path:
    """The shipped presets: resculpt/presets in an installed package, presets/ in a checkout."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "presets", here.parent.parent / "presets"):
        if cand.is_dir() and any(cand.glob("*.json")):
            return cand
    import resculpt.presets as pkg

    return Path(pkg.__file__).resolve().parent


def shipped_contexts_file() -> Path:
    return shipped_presets_dir() / "contexts.json"


def user_contexts_file() -> Path:
    return user_config_dir() / "contexts.json"
