"""Build and install ``resculpt.lv2``: the C shell compiled against a Python's headers, plus the TTL files;
and write a user preset (with an optional target profile) as an LV2 preset bundle hosts list for it.

The shell opens that Python's shared libpython at run time and starts it with the Python's own path as
program name, so the interpreter is the venv (or install) Resculpt runs in, with its site-packages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .ports import USER_PRESET, n_controls, param_ports
from .ttl import BINARY, FILES, port_values, user_preset_files, user_preset_uri

SOURCE = Path(__file__).with_name("resculpt_lv2.c")
BUNDLE = "resculpt.lv2"
LV2_INCLUDE = Path("/usr/include/lv2/core/lv2.h")


class BuildError(RuntimeError):
    """The plugin cannot be built here; the message says what to install."""


_PROBE = """
import json, os, sys, sysconfig
v = sysconfig.get_config_var
names = [n for n in (v("INSTSONAME"), v("LDLIBRARY")) if n and ".so" in n]
dirs = [d for d in (v("LIBDIR"), v("LIBPL"), os.path.join(sys.base_prefix, "lib")) if d]
if v("MULTIARCH"):
    dirs.append(os.path.join("/usr/lib", v("MULTIARCH")))
libs = [os.path.join(d, n) for n in names for d in dirs if os.path.exists(os.path.join(d, n))]
print(json.dumps({"include": sysconfig.get_paths()["include"], "libs": libs, "version": sys.version.split()[0]}))
"""


def python_info(python: str | None = None) -> dict:
    """{include, libpython, python, version} of ``python`` (default: the running interpreter, not resolved:
    a venv's ``bin/python`` is what selects the venv)."""
    python = python or sys.executable
    try:
        out = subprocess.run([python, "-c", _PROBE], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError(f"cannot query {python}: {e}") from None
    info = json.loads(out)
    if not info["libs"]:
        raise BuildError(f"{python} ({info['version']}) has no shared libpython; install the matching "
                         "libpython3.x (Debian) or build Python with --enable-shared (pyenv: "
                         "PYTHON_CONFIGURE_OPTS=--enable-shared)")
    if not Path(info["include"], "Python.h").exists():
        raise BuildError(f"no Python.h in {info['include']}: install python3-dev (Debian) for {python}")
    return {"include": info["include"], "libpython": info["libs"][0], "python": python,
            "version": info["version"]}


def build(out_dir, python: str | None = None, cc: str | None = None, libpython: str | None = None) -> Path:
    """Write ``out_dir/resculpt.lv2`` (compiled shell + manifest.ttl, resculpt.ttl, presets.ttl); return it.
    The bundle is assembled next to its destination and moved into place whole. ``libpython``: the shared
    library to open instead of the one ``python`` reports (a Python whose sysconfig names another)."""
    if not LV2_INCLUDE.exists():
        raise BuildError(f"no LV2 headers ({LV2_INCLUDE}): install lv2-dev (Debian)")
    cc = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise BuildError("no C compiler: install gcc")
    info = python_info(python)
    if libpython:
        info["libpython"] = str(libpython)

    def compile_into(tmp: Path) -> None:
        cmd = [cc, "-shared", "-fPIC", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
               "-fvisibility=hidden", f"-I{info['include']}",
               f'-DRESCULPT_LIBPYTHON="{info["libpython"]}"', f'-DRESCULPT_PYTHON="{info["python"]}"',
               f"-DRESCULPT_N_CONTROLS={n_controls()}", str(SOURCE), "-o", str(tmp / BINARY), "-ldl", "-lpthread"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"compiling {SOURCE.name} failed:\n{r.stderr.strip()}")

    dest = Path(out_dir).expanduser() / BUNDLE
    _write_bundle(dest, {name: make() for name, make in FILES.items()}, compile_into)
    return dest


def default_lv2_path() -> Path:
    return Path.home() / ".lv2"


def install(lv2_path=None, python: str | None = None) -> Path:
    """Build ``resculpt.lv2`` into ``lv2_path`` (default ``~/.lv2``, on every LV2 host's search path)."""
    return build(lv2_path or default_lv2_path(), python)


def _write_bundle(dest: Path, files: dict[str, str], fill=None) -> None:
    """Write ``files`` ({name: text}) into a folder beside ``dest``, let ``fill(folder)`` add the rest, and
    move the folder into place whole."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".resculpt-lv2-", dir=dest.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if fill is not None:
            fill(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.chmod(0o755)  # mkdtemp makes it private; hosts of other users read it
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def user_preset_state(preset, target=None) -> tuple[str, list[tuple[str, float]], str]:
    """(the preset's name, the control values its LV2 preset sets, the plugin state it carries) for user
    preset file ``preset`` and target profile file ``target``.

    The controls: the preset control on USER_PRESET and every parameter control on the preset's value (so a
    host's sliders show the sound). The state: the preset's JSON, the target's JSON as written, and those
    control values as float32 (as hosts hold them), so they do not count as moved. Raises PresetError /
    ProfileError for a file that does not validate."""
    import numpy as np
    from resculpt.dsp.profile import load_profile
    from resculpt.plugin_host.presets import load_preset

    from .bridge import state_text

    p = load_preset(preset)
    target_d = None
    if target is not None:
        load_profile(target)  # validates
        target_d = json.loads(Path(target).read_text(encoding="utf-8"))
    full = p.full_params()
    # The control array from ENABLED_PORT on (enabled, preset, every parameter), as the host will hold it.
    seen = np.asarray([1.0, float(USER_PRESET)] + [full.get(q.spec.id, q.spec.default) for q in param_ports()],
                      dtype=np.float32)
    return p.name, port_values(USER_PRESET, full), state_text(p.name, full, seen, p.to_dict(), target_d)


def write_user_preset(preset, target=None, name: str | None = None, lv2_path=None) -> tuple[Path, str]:
    """Write user preset file ``preset`` (and target profile file ``target``) as the LV2 preset bundle
    ``lv2_path/resculpt-<name>.lv2`` (default folder ``~/.lv2``; ``name`` defaults to the preset's), with
    the controls and state of :func:`user_preset_state`; return (bundle, preset URI)."""
    pname, values, state = user_preset_state(preset, target)
    label = name or pname
    dest = Path(lv2_path or default_lv2_path()).expanduser() / f"resculpt-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}.lv2"
    _write_bundle(dest, user_preset_files(label, values, state))
    return dest, user_preset_uri(label)


__all__ = ["BUNDLE", "BuildError", "build", "default_lv2_path", "install", "python_info", "user_preset_state",
           "write_user_preset"]
