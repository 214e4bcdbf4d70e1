"""Console entry point (`resculpt`); the commands live in resculpt.plugin_host.cli."""

from resculpt.plugin_host.cli import main

__all__ = ["main"]
