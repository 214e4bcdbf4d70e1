"""Docs that are generated from code stay current."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_readme_parameter_table_matches_the_catalog():
    """README's parameter table is exactly what `resculpt params --markdown` prints."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "update_readme.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_readme_starts_with_the_two_commands_ci_runs():
    """The README opens with the setup and test commands, and .ci/run runs exactly those."""
    lines = (REPO / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].startswith("bash scripts/setup.sh") and block[1].startswith("bash scripts/test.sh")
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh" in ci and "bash scripts/test.sh" in ci
