"""Resculpt as an LV2 plugin: the C shell (resculpt_lv2.c), its Python bridge, the TTL and the build."""
