"""Context rules: names (formal, casual, stream, call, ...) mapped to profile deltas and parameters.

Files: the shipped ``presets/contexts.json`` then the user's ``$XDG_CONFIG_HOME/resculpt/contexts.json``
(a user context of the same name replaces the shipped one). Format::

    {"schema_version": 1, "contexts": {NAME: {"description": str,
        "describe": "descriptor text"       (optional: a delta from resculpt.dsp.descriptors)
        "delta": {<delta profile JSON>}      (optional, instead of describe)
        "params": {param id: value}}}}        (optional)

:func:`apply_context` (OSC ``/resculpt/context NAME``; ``render --context`` applies the same rule
offline) switches with a crossfade: parameter changes ramp through the parameter table's smoothing, and the new
target reaches the match stage by one reference swap and fades in over its attack/release times
(if the layout has no match stage, one is added with the host's engine crossfade).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .paths import shipped_contexts_file, user_contexts_file


class ContextError(ValueError):
    pass


@dataclass
class Context:
    name: str
    description: str
    params: dict
    delta: object  # Profile (kind delta) or None


def _read(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ContextError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(d, dict) or d.get("schema_version") != 1 or not isinstance(d.get("contexts"), dict):
        raise ContextError(f"{path}: expected {{\"schema_version\": 1, \"contexts\": {{...}}}}")
    return d["contexts"]


def load_contexts() -> dict[str, dict]:
    out = {}
    for p in (shipped_contexts_file(), user_contexts_file()):
        if p.is_file():
            out.update(_read(p))
    return out


def get_context(name: str) -> Context:
    from resculpt.dsp.descriptors import describe
    from resculpt.dsp.profile import Profile

    ctxs = load_contexts()
    if name not in ctxs:
        import difflib

        close = difflib.get_close_matches(name, list(ctxs), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ContextError(f"unknown context {name!r}{hint}; known: {', '.join(sorted(ctxs))}")
    c = ctxs[name]
    delta = None
    if "delta" in c:
        delta = Profile.from_dict(c["delta"], f"context {name}.delta")
    elif c.get("describe"):
        delta = describe(c["describe"])
    params = dict(c.get("params", {}))
    return Context(name, str(c.get("description", "")), params, delta)


def apply_context(chain, name: str) -> Context:
    """Switch ``chain`` to context ``name`` (control thread), crossfaded (see the module doc)."""
    ctx = get_context(name)
    chain.params.set_many({k: v for k, v in ctx.params.items() if k in chain.params})
    chain.set_target(ctx.delta, add_stage=ctx.delta is not None)
    return ctx
