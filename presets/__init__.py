"""Shipped preset files (JSON, schema in resculpt.plugin_host.presets)."""
