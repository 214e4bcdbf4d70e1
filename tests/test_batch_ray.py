"""Batch rendering on Ray (``resculpt[ray]``): the same outputs, manifest, resume rules and per-file
failure isolation as local worker processes, on a private Ray instance on this machine (2 CPUs, no
dashboard, a 100 MiB object store)."""

from __future__ import annotations

import json

import pytest
from resculpt.plugin_host.batch import THREAD_ENV, init_local_ray, render_batch, worker_probe
from test_batch import PRESET, _outputs, _tree

from resculpt.cli import main

ray = pytest.importorskip("ray", reason="Ray is the optional extra resculpt[ray] (scripts/setup.sh installs it)")


@pytest.fixture
def library(tmp_path):
    src = tmp_path / "lib"
    _tree(src, n=4)
    (src / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    clean = tmp_path / "clean"
    s = render_batch([src], clean, PRESET, jobs=2)
    assert (s["rendered"], s["failed"]) == (4, 1)
    return src, _outputs(clean)


def test_ray_local_from_the_cli_renders_what_local_workers_render_and_isolates_a_failure(library, tmp_path, capsys):
    src, clean = library
    out = tmp_path / "out"
    rc = main(["render", str(src), "--out-dir", str(out), "--preset", PRESET, "--ray", "local", "--jobs", "2",
               "--json"])
    s = json.loads(capsys.readouterr().out)
    assert rc == 1 and (s["rendered"], s["failed"], s["ray"]) == (4, 1, "local")
    assert "corrupt.flac: cannot decode audio" in s["failures"][0]["error"]
    assert _outputs(out) == clean
    assert not ray.is_initialized()  # the instance it started is shut down


def test_ray_bytes_transfer_same_outputs_and_resume_and_workers_pinned_to_one_thread(library, tmp_path):
    src, clean = library
    init_local_ray(2)
    try:
        probe = ray.get(ray.remote(num_cpus=1)(worker_probe).remote())
        assert {k: probe[k] for k in THREAD_ENV} == THREAD_ENV and probe["openblas_threads"] in (1, None)
        out = tmp_path / "out"
        s = render_batch([src], out, PRESET, ray="local", ray_transfer="bytes")
        assert (s["rendered"], s["failed"]) == (4, 1)
        err = s["failures"][0]["error"]
        assert err.startswith(str(src / "corrupt.flac")) and "resculpt-batch-" not in err  # no worker temp path
        assert _outputs(out) == clean
        s = render_batch([src], out, PRESET, ray="local")  # the manifest is the same whatever ran the files
        assert (s["skipped"], s["rendered"]) == (4, 0)
        assert render_batch([src], out, PRESET, jobs=1)["skipped"] == 4
        assert ray.is_initialized()  # a Ray the caller started is left running
    finally:
        ray.shutdown()
