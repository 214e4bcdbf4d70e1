"""What a non-editable install ships: every Python package folder of the card's layout and every model bundle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP = ("dsp", "plugin_host", "models", "ui", "presets", "resculpt")


def test_an_installed_package_has_every_subpackage_and_every_model_bundle_and_loads_them(tmp_path):
    """pip install --target (no dependencies) of this checkout holds every folder with an __init__.py under the
    card's top-level folders and every file of every bundle under models/weights/ (the folders whose names are not
    Python identifiers too), and the installed mask, high-quality mask and codec loaders verify their bundles."""
    pkg = tmp_path / "pkg"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(pkg), str(REPO)], check=True, capture_output=True)
    root = pkg / "resculpt"
    for top in TOP:
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top)
            dest = (root if top == "resculpt" else root / top) / rel  # resculpt/ is the import name's own folder
            assert (dest / "__init__.py").is_file(), f"{top}/{rel} not installed"
    for bundle in (REPO / "models" / "weights").iterdir():
        if bundle.is_dir():
            for f in bundle.iterdir():
                if f.is_file():
                    assert (root / "models" / "weights" / bundle.name / f.name).is_file(), f"{bundle.name}/{f.name}"
    code = ("from resculpt.models.mask.bundle import load_bundle, HQ_BUNDLE_DIR, BUNDLE_DIR; "
            "from resculpt.models.codec.bundle import load_bundle as lc, BUNDLE_DIR as CB; "
            "import resculpt.plugin_host.live; "
            f"assert str(HQ_BUNDLE_DIR).startswith({str(pkg)!r}); load_bundle(BUNDLE_DIR); load_bundle(HQ_BUNDLE_DIR); lc(CB)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env={"PYTHONPATH": str(pkg), "PATH": "/usr/bin:/bin"})
