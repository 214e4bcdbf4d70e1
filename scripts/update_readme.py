"""Regenerate the README's generated sections (parameter table) from the catalog.

    .venv/bin/python scripts/update_readme.py          # rewrite in place
    .venv/bin/python scripts/update_readme.py --check  # exit 1 if stale (used by a test)
"""

import re
import sys
from pathlib import Path

from resculpt.cli import params_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def render(text: str) -> str:
    block = "<!-- params:start -->\n" + params_markdown() + "\n<!-- params:end -->"
    return re.sub(r"<!-- params:start -->.*?<!-- params:end -->", lambda m: block, text, flags=re.S)


def main() -> int:
    text = README.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README parameter table is stale: run .venv/bin/python scripts/update_readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
