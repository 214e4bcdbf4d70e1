"""The package's import graph: no cycles, imports run one way between layers, and the audio host
depends on nothing that touches the disk.

The graph is built from the installed package's source files (every ``import`` and ``from ... import``
of a ``resculpt`` module, at module level or inside a function: an import inside a function still
ties the modules together, it only hides the tie until the function runs).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import resculpt

# Layers, lowest first: a module may import from its own layer and the layers before it.
LAYERS = ("dsp", "models", "plugin_host", "ui")
# Packages that hold data files only (the shipped presets); any layer may locate them.
DATA_PACKAGES = ("presets",)
# Modules that read or write files or resolve names to paths. The audio host hands them nothing and
# imports none of them: presets, audio and user data reach it as plain data from the layer above.
DISK_MODULES = {
    "resculpt.plugin_host.audio_io", "resculpt.plugin_host.batch", "resculpt.plugin_host.chain", "resculpt.plugin_host.contexts",
    "resculpt.plugin_host.paths", "resculpt.plugin_host.presets", "resculpt.plugin_host.render",
    "resculpt.plugin_host.user_profile",
}


def _modules() -> dict[str, Path]:
    """Every module of the installed package: name -> source file."""
    out = {"resculpt": Path(resculpt.__file__)}
    # The layers are walked one by one: an editable install maps each to its own folder, so the top
    # package's __path__ does not lead to them.
    roots = [(resculpt.__path__, "resculpt.")]
    for layer in LAYERS + DATA_PACKAGES:
        pkg = importlib.import_module(f"resculpt.{layer}")
        out[pkg.__name__] = Path(pkg.__file__)
        roots.append((pkg.__path__, f"{pkg.__name__}."))
    for path, prefix in roots:
        for info in pkgutil.walk_packages(path, prefix):
            spec = importlib.util.find_spec(info.name)
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                out[info.name] = Path(spec.origin)
    return out


def _graph() -> dict[str, set[str]]:
    """Module -> the resculpt modules it imports (anywhere in its source)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:  # `import resculpt.dsp.stft as s` names a module; strip attributes
                    t = t.rpartition(".")[0]
                if t.startswith("resculpt") and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def _closure(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for d in graph[m]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_the_import_graph_covers_the_whole_package():
    """The walk finds every layer and the modules this file's other checks name."""
    graph = _graph()
    assert {"resculpt.dsp.stft", "resculpt.models.mask.stage", "resculpt.plugin_host.host",
            "resculpt.ui.panel", "resculpt.cli"} <= set(graph)
    assert DISK_MODULES <= set(graph)
    assert sum(len(d) for d in graph.values()) > 100


def test_the_package_has_no_import_cycle():
    """No two modules import each other, directly or through others, at module level or in functions."""
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_imports_run_one_way_dsp_models_plugin_host_ui():
    """dsp imports no other layer, models only dsp, plugin_host not ui; nothing below imports the
    top-level facade or the CLI (resculpt, resculpt.cli)."""
    bad = []
    for mod, deps in _graph().items():
        lm = _layer(mod)
        if lm is None:
            continue
        for d in deps:
            ld = _layer(d)
            if d.count(".") >= 1 and d.split(".")[1] in DATA_PACKAGES:
                continue
            if ld is None or ld > lm:
                bad.append(f"{mod} -> {d}")
    assert not bad, "imports against the layer order: " + "; ".join(sorted(bad))


def test_the_audio_host_depends_on_nothing_that_touches_the_disk():
    """resculpt.plugin_host.host and everything it imports, transitively, include no module that reads
    presets, audio files, paths or user data."""
    graph = _graph()
    reached = _closure(graph, "resculpt.plugin_host.host")
    assert not reached & DISK_MODULES, f"the host reaches {sorted(reached & DISK_MODULES)}"
    assert {"resculpt.plugin_host.graph", "resculpt.plugin_host.catalog", "resculpt.dsp.stft"} <= reached
