"""What the resculpt diagnostic scripts share: ``benchmarks/resculpt_model.py`` loaded by path (its clips, targets,
render paths and error ratio, so a diagnostic scores exactly what the benchmark scores) and the writing of a
result as ``OUT.md`` + ``OUT.json``. Imported by its siblings (``python scripts/X.py`` puts scripts/ on the path)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bench():
    """benchmarks/resculpt_model.py as a module (registered as ``resculpt_model``, the name its helpers import)."""
    if "resculpt_model" in sys.modules:
        return sys.modules["resculpt_model"]
    spec = importlib.util.spec_from_file_location("resculpt_model", REPO / "benchmarks" / "resculpt_model.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["resculpt_model"] = mod
    spec.loader.exec_module(mod)
    return mod


def write_result(out, lines: list[str], data: dict) -> Path:
    """``lines`` (markdown) to OUT.md and ``data`` to OUT.json; returns the .md path (folders made as needed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out.with_suffix('.md')}")
    return out.with_suffix(".md")
