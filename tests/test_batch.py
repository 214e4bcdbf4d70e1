"""Batch rendering (plugin_host/batch.py, `resculpt render --out-dir`): input trees mirrored, outputs
equal to one-file renders, resume by manifest, crash safety under SIGKILL, per-file failure isolation,
one-thread workers, the progress line."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import real_stereo
from resculpt.plugin_host.audio_io import write_audio
from resculpt.plugin_host.batch import (
    MANIFEST_NAME,
    THREAD_ENV,
    BatchProgress,
    LocalPool,
    _out_dir_lock,
    expand_inputs,
    render_batch,
)
from resculpt.plugin_host.render import RenderError, render_file

from resculpt.cli import main

PRESET = "podcast-clean"  # pedalboard boards + a spectral stage: exercises the whole chain


def _tree(root: Path, n: int = 5, seconds: float = 0.6) -> list[Path]:
    """``n`` real clips at mixed rates and channel counts in a two-level tree, plus files a batch skips."""
    rates = (16000, 44100, 48000)
    paths = []
    for i in range(n):
        sr = rates[i % 3]
        x = real_stereo(sr, seconds + 0.1 * i, offset_s=1.0 + 0.3 * i)
        if i % 2:
            x = x[:1]
        p = root / ("" if i < 2 else f"sub{i % 2}") / f"clip{i}.{'flac' if i == 3 else 'wav'}"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_audio(p, x, sr)
        paths.append(p)
    (root / "notes.txt").write_text("not audio")
    (root / ".hidden.wav").write_bytes(b"not even audio")
    return paths


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_folder_input_mirrors_its_tree_and_each_output_equals_a_one_file_render(tmp_path):
    src = tmp_path / "lib"
    paths = _tree(src)
    out = tmp_path / "out"
    s = render_batch([src], out, PRESET, jobs=2)
    assert (s["files"], s["rendered"], s["failed"]) == (5, 5, 0)
    got = _outputs(out)
    assert sorted(got) == sorted(p.relative_to(src).with_suffix(".wav").as_posix() for p in paths)
    for p in paths:
        ref = tmp_path / "ref" / p.relative_to(src).with_suffix(".wav")
        ref.parent.mkdir(parents=True, exist_ok=True)
        render_file(p, ref, PRESET)
        assert got[p.relative_to(src).with_suffix(".wav").as_posix()] == ref.read_bytes(), p
    assert s["audio_seconds"] == pytest.approx(sum(r["audio_seconds"] for r in s["files_detail"]))


def test_globs_mirror_below_the_first_wildcard_and_name_collisions_keep_the_extension(tmp_path):
    src = tmp_path / "lib"
    _tree(src)
    write_audio(src / "clip0.flac", real_stereo(16000, 0.3), 16000)  # same stem as clip0.wav
    out = tmp_path / "out"
    items = expand_inputs([str(src / "**" / "*.wav"), str(src / "*.flac")], out)
    rels = sorted(it.rel.as_posix() for it in items)
    assert rels == ["clip0_flac.wav", "clip0_wav.wav", "clip1.wav", "sub0/clip2.wav", "sub0/clip4.wav"]
    assert all(it.error is None for it in items)
    bad = expand_inputs([str(tmp_path / "none" / "*.wav"), str(tmp_path / "missing.wav")], out)
    assert [it.error for it in bad] == [f"{tmp_path / 'none' / '*.wav'}: no audio file matches",
                                        f"{tmp_path / 'missing.wav'}: no such file"]


def test_an_output_folder_inside_the_input_folder_is_never_read_as_input(tmp_path):
    src = tmp_path / "lib"
    _tree(src, n=2)
    out = src / "rendered"
    assert render_batch([src], out, jobs=1)["rendered"] == 2
    assert [it.rel.as_posix() for it in expand_inputs([src], out)] == ["clip0.wav", "clip1.wav"]


def test_rerun_skips_what_is_current_and_renders_again_what_changed(tmp_path):
    src = tmp_path / "lib"
    paths = _tree(src, n=4)
    out = tmp_path / "out"
    assert render_batch([src], out, PRESET, jobs=2)["rendered"] == 4
    s = render_batch([src], out, PRESET, jobs=2)
    assert (s["rendered"], s["skipped"]) == (0, 4)

    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same bytes: still current
    x = real_stereo(44100, 0.5)
    write_audio(paths[1], x[:1], 44100)  # changed
    (out / paths[2].relative_to(src).with_suffix(".wav")).unlink()  # output deleted
    s = render_batch([src], out, PRESET, jobs=2)
    assert (s["rendered"], s["skipped"]) == (2, 2)
    done = {Path(r["input"]).name for r in s["files_detail"] if r["status"] == "rendered"}
    assert done == {paths[1].name, paths[2].name}
    assert render_batch([src], out, PRESET, jobs=2)["skipped"] == 4  # the touch was recorded

    for changed in ({"sets": {"out.gain_db": -3}}, {"preset": "clean"}, {"block": 1024}):
        kw = {"preset": PRESET, "jobs": 2} | changed
        assert render_batch([src], out, **kw)["rendered"] == 4, changed
    assert render_batch([src], out, PRESET, jobs=2, force=True, block=1024)["rendered"] == 4


def test_a_target_profile_is_part_of_what_makes_an_output_current(tmp_path):
    from resculpt.dsp.descriptors import describe

    src = tmp_path / "lib"
    _tree(src, n=1, seconds=3.2)
    out = tmp_path / "out"
    t1, t2 = tmp_path / "t1.json", tmp_path / "t2.json"
    describe("more bass").save(t1)
    describe("brighter").save(t2)
    assert render_batch([src], out, target=t1, jobs=1)["rendered"] == 1
    assert render_batch([src], out, target=t1, jobs=1)["skipped"] == 1
    s = render_batch([src], out, target=t2, jobs=1)
    assert s["rendered"] == 1 and s["files_detail"][0]["distance_after_db"] < s["files_detail"][0]["distance_before_db"]


def test_failing_files_are_reported_with_their_reason_the_others_render_and_the_exit_code_counts_them(
        tmp_path, capsys):
    src = tmp_path / "lib"
    _tree(src, n=2)
    (src / "empty.wav").write_bytes(b"")
    (src / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    out = tmp_path / "out"
    rc = main(["render", str(src), str(tmp_path / "missing.wav"), "--out-dir", str(out), "--jobs", "2", "--json"])
    cap = capsys.readouterr()
    assert rc == 3
    s = json.loads(cap.out)
    assert (s["files"], s["rendered"], s["failed"]) == (5, 2, 3)
    reasons = sorted(f["error"] for f in s["failures"])
    assert "corrupt.flac: cannot decode audio" in reasons[0]
    assert reasons[1].endswith("empty.wav: file is empty")
    assert reasons[2].endswith("missing.wav: no such file")
    for r in reasons:
        assert f"resculpt: error: {r}" in cap.err
    assert "3 of 5 file(s) failed" in cap.err
    assert sorted(_outputs(out)) == ["clip0.wav", "clip1.wav"]
    # the failures are not recorded as done: a re-run tries them again and skips the rest
    s = render_batch([src], out, jobs=2)
    assert (s["skipped"], s["failed"]) == (2, 2)


def test_job_level_errors_stop_before_any_file_with_one_message(tmp_path, capsys):
    src = tmp_path / "lib"
    _tree(src, n=1)
    out = tmp_path / "out"
    assert main(["render", str(src), "--out-dir", str(out), "--preset", "nope"]) == 1
    assert "preset 'nope' not found" in capsys.readouterr().err
    assert main(["render", str(src), "--out-dir", str(out), "--set", "mixx=1"]) == 1
    assert "did you mean mix" in capsys.readouterr().err
    assert main(["render", str(src), "-o", str(tmp_path / "x.wav")]) == 2
    assert not out.exists()
    out.mkdir()
    with _out_dir_lock(out), pytest.raises(RenderError, match="another batch is writing into this folder"):
        render_batch([src], out)
    (out / MANIFEST_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(RenderError, match="cannot read the batch manifest"):
        render_batch([src], out)


def test_workers_run_with_one_blas_thread_and_one_thread_onnx_sessions():
    p = LocalPool.start_worker()
    try:
        pickle.dump("probe", p.stdin)
        p.stdin.flush()
        info = pickle.load(p.stdout)
    finally:
        p.stdin.close()
        p.wait(timeout=30)
        p.stdout.close()
    assert {k: info[k] for k in THREAD_ENV} == THREAD_ENV
    assert info["openblas_threads"] in (1, None)  # None: numpy built against another BLAS
    from resculpt.models.mask.bundle import BUNDLE_DIR, make_session

    so = make_session(BUNDLE_DIR / "model.onnx").get_session_options()
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (1, 1)


class _ExitOnUnpickle:
    """Unpickling this in a worker ends the worker process (stands in for a crash inside a decoder)."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_a_worker_that_dies_fails_only_its_file_and_is_replaced(tmp_path):
    src = tmp_path / "lib"
    paths = _tree(src, n=3)
    common = {"preset": "clean", "sets": {}, "block": 4096, "target": None, "amount": None, "context": None,
              "matcher": "match-eq", "passes": 2, "linked": None}
    tasks = [dict(common, index=i, src=str(p), out=str(tmp_path / f"o{i}.wav"), staged=str(tmp_path / f"o{i}.wav"))
             for i, p in enumerate(paths)]
    tasks[1]["preset"] = _ExitOnUnpickle()
    results = {}
    LocalPool(2).run(tasks, lambda t, r: results.__setitem__(t["index"], r))
    assert results[1] == {"ok": False, "index": 1, "wall_seconds": 0.0,
                          "error": f"{paths[1]}: the worker process died (exit code 3)"}
    assert results[0]["ok"] and results[2]["ok"]
    assert (tmp_path / "o0.wav").exists() and (tmp_path / "o2.wav").exists()


def _children(pid: int) -> list[int]:
    out = []
    for t in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (t / "children").read_text().split()]
    return out


def _done_rows(out: Path) -> dict:
    db = sqlite3.connect(f"file:{out / MANIFEST_NAME}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0]: r[1] for r in db.execute("SELECT output, rendered_at FROM outputs")}
    except sqlite3.OperationalError:  # the table is not created yet
        return {}
    finally:
        db.close()


def test_sigkill_mid_batch_leaves_no_partial_output_and_the_rerun_finishes_without_redoing_finished_files(
        tmp_path):
    """The driver is SIGKILLed twice mid-run (its workers die with it); after each kill every visible
    output is complete and recorded, the manifest is intact, and the final re-run renders only what
    was not finished. The result equals a clean, uninterrupted run byte for byte."""
    src = tmp_path / "lib"
    _tree(src, n=10, seconds=1.5)
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert render_batch([src], clean, PRESET, jobs=2)["rendered"] == 10
    cmd = [sys.executable, "-m", "resculpt.cli", "render", str(src), "--out-dir", str(out), "--preset", PRESET,
           "--jobs", "2", "-q"]
    finished = {}
    for kill_after in (2, 5):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while len(_done_rows(out) if (out / MANIFEST_NAME).exists() else {}) < kill_after:
            assert p.poll() is None, p.stderr.read().decode()
            assert time.time() - t0 < 240
            time.sleep(0.05)
        kids = _children(p.pid)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stderr.close()
        for k in kids:  # the workers die with their driver
            for _ in range(100):
                if not Path(f"/proc/{k}").exists() or "State:\tZ" in Path(f"/proc/{k}/status").read_text():
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"worker {k} outlived its driver")
        assert sqlite3.connect(out / MANIFEST_NAME).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = _done_rows(out)
        visible = _outputs(out)
        clean_out = _outputs(clean)
        for rel, data in visible.items():  # every visible output is complete: equal to the clean run's
            assert data == clean_out[rel], rel
        assert set(visible) <= set(rows)  # an output appears only after its row is committed
        finished = {rel: (out / rel).stat().st_mtime_ns for rel in rows if (out / rel).exists()}
    s = render_batch([src], out, PRESET, jobs=2)
    assert s["failed"] == 0
    assert s["skipped"] == len(finished)
    assert s["rendered"] + s["adopted"] == 10 - len(finished)
    for rel, mt in finished.items():  # nothing finished before the kill was rendered again
        assert (out / rel).stat().st_mtime_ns == mt, rel
    assert _outputs(out) == _outputs(clean)
    leftovers = [p.name for p in out.rglob(".*") if p.name not in (MANIFEST_NAME, ".resculpt-batch.lock")]
    assert leftovers == []


def test_progress_line_counts_files_audio_and_eta_and_stays_quiet_off_a_terminal():
    buf = io.StringIO()
    bar = BatchProgress(10, 1000, enabled=True, stream=buf)
    bar.t0 -= 2.0
    bar.advance(True, 30.0, 250)
    bar.advance(False, 0.0, 250)
    line = bar.line()
    assert "2/10 files, 1 failed" in line and "30 s audio" in line and "x real time" in line
    assert "ETA 0:0" in line  # half the bytes in ~2 s: about 2 s left
    assert buf.getvalue().startswith("\r[")
    quiet = io.StringIO()
    bar = BatchProgress(10, 1000, stream=quiet)  # StringIO is not a terminal
    bar.advance(True, 1.0, 100)
    bar.close()
    assert quiet.getvalue() == ""


def test_cli_prints_one_line_per_rendered_file_and_a_summary(tmp_path, capsys):
    src = tmp_path / "lib"
    _tree(src, n=2)
    out = tmp_path / "out"
    assert main(["render", str(src), "--out-dir", str(out), "--format", "flac", "--jobs", "1"]) == 0
    cap = capsys.readouterr()
    assert cap.out.count(" -> ") == 2 and "latency" in cap.out
    assert "2 file(s): 2 rendered, 0 already current" in cap.err
    assert sorted(_outputs(out)) == ["clip0.flac", "clip1.flac"]
    assert main(["render", str(src), "--out-dir", str(out), "--format", "flac", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 2


def test_a_staged_output_left_by_a_killed_run_is_adopted_without_rendering_it_again(tmp_path):
    """A kill after a worker finished a file but before the driver recorded it leaves the complete
    staged file: the next run records and renames it instead of rendering it again."""
    import shutil

    from resculpt.plugin_host.batch import _staged_path, resolve_job

    src = tmp_path / "lib"
    paths = _tree(src, n=2)
    clean, out = tmp_path / "clean", tmp_path / "out"
    render_batch([src], clean, PRESET, jobs=1)
    key = resolve_job(PRESET).key
    staged = _staged_path(out / "clip0.wav", key, paths[0], paths[0].stat())
    out.mkdir()
    shutil.copy(clean / "clip0.wav", staged)
    s = render_batch([src], out, PRESET, jobs=1)
    assert (s["adopted"], s["rendered"]) == (1, 1)
    assert _outputs(out) == _outputs(clean) and not staged.exists()
    assert render_batch([src], out, PRESET, jobs=1)["skipped"] == 2


def test_ctrl_c_stops_the_workers_at_once_keeps_what_is_finished_and_exits_130(tmp_path):
    src = tmp_path / "lib"
    # 6 s files: on an idle machine 1.5 s files render in well under 0.1 s each, and the whole batch could end
    # between the first finished row and the signal, which would test nothing.
    _tree(src, n=6, seconds=6.0)
    out = tmp_path / "out"
    # SIGINT at its default in the child, as in a terminal: a suite started as a background job of a
    # non-interactive shell runs with it ignored, and the child would inherit that and finish the batch (exit 0)
    p = subprocess.Popen([sys.executable, "-m", "resculpt.cli", "render", str(src), "--out-dir", str(out),
                          "--preset", PRESET, "--jobs", "2", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while len(_done_rows(out) if (out / MANIFEST_NAME).exists() else {}) < 1:
        assert p.poll() is None, p.stderr.read().decode()
        assert time.time() - t0 < 240
        time.sleep(0.05)
    kids = _children(p.pid)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=30) == 130
    p.stderr.close()
    assert not [k for k in kids if Path(f"/proc/{k}").exists()]
    finished = len(_done_rows(out))
    s = render_batch([src], out, PRESET, jobs=2)
    assert s["failed"] == 0 and s["skipped"] == finished and s["rendered"] + s["adopted"] == 6 - finished
