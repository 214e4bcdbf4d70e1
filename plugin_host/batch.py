"""Batch rendering: files, folders and globs through one preset on every core, resumable, or on Ray.

:func:`render_batch` expands the inputs (folders recursively, by the audio extensions of
``audio_io.READ_EXT``; hidden files and folders are left out), mirrors each input's tree under
``out_dir`` and renders every file with :func:`resculpt.plugin_host.render.render_file` in worker
processes (or Ray tasks). Each worker pins BLAS/OpenMP to one thread; ONNX Runtime sessions are built
with one intra-op and one inter-op thread (``models/mask/bundle.make_session``), so N workers use N
cores.

Resume and crash safety. ``out_dir/.resculpt-batch.sqlite`` (SQLite; every change is one
transaction, written by the driver only) holds one row per output: the job key (preset content hash,
parameter overrides, target profile hash, context/amount/engine/passes/block settings, Resculpt
version) and the source's size, mtime and sha256. A re-run skips an output whose row has the current
job key and whose source still has the recorded size and mtime (or, with a new mtime, the recorded
sha256), and whose file is still there with the recorded size; everything else is rendered again.

A worker renders to a hidden staged file beside the output, ``.NAME.TAG.staged.EXT``, where TAG hashes
the job key and the source's identity; :func:`render_file` writes it through its own temporary file
and an atomic rename, so a staged file that exists is complete. The driver then records the row (one
transaction) and renames the staged file onto the output. A SIGKILL at any moment leaves either
nothing, a partial temporary (swept on the next run), a complete staged file (adopted on the next run
without rendering again), or a recorded row whose staged file is still to be renamed (the same). A
lock file keeps two batches from writing into one ``out_dir`` at once, and workers die with their
driver (Linux ``PR_SET_PDEATHSIG``), so a killed run leaves no process writing behind the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .audio_io import READ_EXT
from .render import RenderError, render_file

# Set in every worker's environment before it imports numpy or onnxruntime: one thread per worker.
THREAD_ENV = {
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "BLIS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
}
MANIFEST_NAME = ".resculpt-batch.sqlite"
LOCK_NAME = ".resculpt-batch.lock"
MANIFEST_SCHEMA = 1
FORMATS = ("wav", "flac")
EXIT_MAX_FAILED = 125  # the CLI's exit status is min(failed, 125); 126+ mean other things to shells
_STAGED_RE = re.compile(r"^\.+(?P<name>.+)\.(?P<tag>[0-9a-f]{12})\.staged")


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- inputs --------------------------------------------------------------------------------------
@dataclass
class Item:
    """One input file and its output path relative to the output folder (or why it cannot render)."""

    src: Path
    rel: Path
    error: str | None = None


def _is_audio(p: Path) -> bool:
    return p.suffix.lower() in READ_EXT and not p.name.startswith(".")


def _walk(root: Path, skip: Path):
    """Audio files under ``root`` (recursive, sorted), leaving out hidden entries and ``skip``."""
    for d, dirs, files in os.walk(root):
        dp = Path(d)
        dirs[:] = sorted(x for x in dirs if not x.startswith(".") and (dp / x).resolve() != skip)
        for f in sorted(files):
            p = dp / f
            if _is_audio(p) and p.is_file():
                yield p


def _glob_root(pattern: str) -> Path:
    """The leading components of ``pattern`` that hold no wildcard (the tree the matches mirror)."""
    parts = Path(pattern).parts
    keep = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        keep.append(part)
    return Path(*keep) if keep else Path(".")


def expand_inputs(inputs, out_dir, fmt: str = "wav") -> list[Item]:
    """Files, folders (recursive) and glob patterns -> Items, each with its output path under ``out_dir``.

    A file maps to its name, a folder's files to their path inside the folder, a glob's matches to
    their path below the pattern's first wildcard. Inputs that map to one output keep their source
    extension in the name (``take.mp3`` -> ``take_mp3.wav``); any collision left is an error item.
    """
    out_abs = Path(out_dir).resolve()
    found: list[Item] = []
    for s in inputs:
        s = str(s)
        p = Path(s)
        if p.is_dir():
            root = p.resolve()
            found += [Item(f, f.relative_to(p)) for f in _walk(p, out_abs if out_abs != root else None)]
        elif p.exists():
            found.append(Item(p, Path(p.name)))
        elif any(c in s for c in "*?["):
            root = _glob_root(s)
            n0 = len(found)
            for m in sorted(glob.glob(s, recursive=True)):
                mp = Path(m)
                if mp.is_dir():
                    found += [Item(f, f.relative_to(root)) for f in _walk(mp, out_abs)]
                elif _is_audio(mp) and mp.resolve().parent != out_abs and out_abs not in mp.resolve().parents:
                    found.append(Item(mp, mp.relative_to(root)))
            if len(found) == n0:
                found.append(Item(p, Path("-"), f"{s}: no audio file matches"))
        else:
            found.append(Item(p, Path(p.name), f"{s}: no such file"))
    seen, items = set(), []
    for it in found:  # the same source named twice renders once
        key = it.src.resolve() if it.error is None else ("err", str(it.src))
        if key not in seen:
            seen.add(key)
            items.append(it)
    for it in items:
        if it.error is None:
            it.rel = it.rel.with_name(it.rel.stem + "." + fmt)
    groups: dict[Path, list[Item]] = {}
    for it in items:
        if it.error is None:
            groups.setdefault(it.rel, []).append(it)
    for rel, group in groups.items():
        if len(group) > 1:
            for it in group:
                it.rel = rel.with_name(it.src.name.replace(".", "_") + "." + fmt)
    owner: dict[Path, Item] = {}
    for it in items:
        if it.error is not None:
            continue
        if it.rel in owner:
            it.error = f"{it.src}: output {it.rel} is also the output of {owner[it.rel].src}"
            continue
        owner[it.rel] = it
        out = out_abs / it.rel
        if out.exists() and os.path.samefile(it.src, out):
            it.error = f"{out}: refusing to overwrite the input file"
    return items


# -- the job's identity --------------------------------------------------------------------------
@dataclass
class Job:
    """What every file of a batch is rendered with, resolved once in the driver, and its hashes."""

    preset: object  # Preset
    sets: dict
    target: object  # Profile or None
    context: str | None
    amount: float | None
    engine: str  # resolved: "match-eq" or "model" (what moves the audio toward a target)
    passes: int
    block: int
    linked: bool | None
    identity: dict  # the manifest's record of all of the above
    key: str  # sha256 of identity
    match: str | None = None  # the model's match mode (None: its default)
    delivery: dict | None = None  # {"loudness_lufs", "true_peak_db"} for render_file's delivery pass, or None


def _resculpt_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("resculpt")
    except PackageNotFoundError:
        return "unknown"


def _norm_sets(sets) -> dict:
    out = {}
    for k, v in (sets or {}).items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            out[str(k)] = str(v)
    return out


def resolve_job(preset="clean", sets=None, target=None, context=None, amount=None, engine="auto",
                passes: int = 2, block: int = 4096, linked: bool | None = None, match: str | None = None,
                loudness_lufs: float | None = None, true_peak_db: float | None = None) -> Job:
    """Load and check the preset, overrides, target, context and delivery settings once; raise RenderError if any
    is bad."""
    from resculpt.dsp.profile import Profile, ProfileError

    from .chain import Chain, resolve_engine
    from .contexts import ContextError, get_context
    from .presets import Preset, PresetError, load_preset
    from .render import followed_target

    try:
        p = preset if isinstance(preset, Preset) else load_preset(preset)
        if target is not None and not isinstance(target, Profile):
            from .targets import resolve_target

            target = resolve_target(target)
        ctx_hash = None
        if context:
            c = get_context(context)
            ctx_hash = _sha(_canon({"name": c.name, "params": c.params,
                                    "delta": c.delta.to_dict() if c.delta is not None else None}))
        # Overrides are checked on a real chain (VST3 parameter ids exist only there).
        chain = Chain.from_preset(p, sample_rate=48000, channels=1, max_block=block)
        for k, v in (sets or {}).items():
            chain.params.set(k, v)
        # The engine as every worker will run it (auto decided once here, in the record as what ran), for the target
        # the render follows (its form counts for auto).
        follows = followed_target(p, target, context)
        engine = ("match-eq" if target is None and not context and not p.target
                  else resolve_engine(engine, p.layout, follows))
    except (PresetError, ProfileError, ContextError, ValueError) as e:
        raise RenderError(str(e)) from None
    from .render import check_delivery

    check_delivery(loudness_lufs, true_peak_db)
    delivery = (None if loudness_lufs is None and true_peak_db is None
                else {"loudness_lufs": loudness_lufs, "true_peak_db": true_peak_db})
    identity = {
        "preset_hash": _sha(_canon({"chain": p.layout.to_dict(), "params": p.full_params()})),
        "sets": _canon(_norm_sets(sets)),
        "target_hash": _sha(target.to_json()) if target is not None else None,
        "settings": _canon({"context": context or None, "context_hash": ctx_hash, "amount": amount,
                            "matcher": engine, **({} if match is None else {"match": match}),
                            "passes": passes, "block": block,
                            # absent when the preset decides, so manifests of preset-linked jobs keep their key
                            **({} if linked is None else {"linked": bool(linked)}),
                            # absent without delivery, for the same reason
                            **({} if delivery is None else {"delivery": delivery})}),
        "version": _resculpt_version(),
    }
    return Job(p, dict(sets or {}), target, context, amount, engine, passes, block, linked, identity,
               _sha(_canon(identity)), match, delivery)


# -- the manifest --------------------------------------------------------------------------------
class ManifestError(RenderError):
    """The manifest cannot be opened or is of another schema."""


class Manifest:
    """``out_dir/.resculpt-batch.sqlite``: one row per output (path relative to ``out_dir``).

    Written by the driver only; every write is one SQLite transaction, so a kill leaves the last
    committed state.
    """

    COLS = ("output", "source", "src_size", "src_mtime_ns", "src_sha256", "job_key", "preset_hash", "sets",
            "target_hash", "settings", "version", "out_size", "frames", "sample_rate", "channels",
            "render_seconds", "rendered_at")

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / MANIFEST_NAME
        try:
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA synchronous=FULL")
            with self.db:
                self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                self.db.execute(
                    "CREATE TABLE IF NOT EXISTS outputs (output TEXT PRIMARY KEY, source TEXT, src_size INTEGER, "
                    "src_mtime_ns INTEGER, src_sha256 TEXT, job_key TEXT, preset_hash TEXT, sets TEXT, "
                    "target_hash TEXT, settings TEXT, version TEXT, out_size INTEGER, frames INTEGER, "
                    "sample_rate INTEGER, channels INTEGER, render_seconds REAL, rendered_at REAL)")
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(MANIFEST_SCHEMA),))
            v = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise ManifestError(f"{self.path}: cannot read the batch manifest ({e}); delete it to render "
                                f"everything again") from None
        if v != str(MANIFEST_SCHEMA):
            raise ManifestError(f"{self.path}: manifest schema {v}, this Resculpt reads {MANIFEST_SCHEMA}")

    def get(self, output: str) -> dict | None:
        r = self.db.execute(f"SELECT {','.join(self.COLS)} FROM outputs WHERE output=?", (output,)).fetchone()
        return dict(zip(self.COLS, r)) if r else None

    def put(self, row: dict) -> None:
        with self.db:
            self.db.execute(f"INSERT OR REPLACE INTO outputs ({','.join(self.COLS)}) VALUES "
                            f"({','.join('?' * len(self.COLS))})", [row.get(c) for c in self.COLS])

    def rows(self) -> list[dict]:
        return [dict(zip(self.COLS, r)) for r in self.db.execute(f"SELECT {','.join(self.COLS)} FROM outputs")]

    def close(self) -> None:
        self.db.close()


@contextlib.contextmanager
def _out_dir_lock(out_dir: Path):
    import fcntl

    with open(out_dir / LOCK_NAME, "a") as f:  # the lock lasts while the file is open
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RenderError(f"{out_dir}: another batch is writing into this folder") from None
        yield


# -- one file (runs in a worker process or a Ray task) ---------------------------------------------
def _staged_path(out: Path, job_key: str, src: Path, st) -> Path:
    tag = _sha(_canon([job_key, str(src.resolve()), st.st_size, st.st_mtime_ns]))[:12]
    return out.with_name(f".{out.name}.{tag}.staged{out.suffix}")


def _render_kwargs(task: dict) -> dict:
    kw = {k: task[k] for k in ("preset", "sets", "block", "target", "amount", "context", "passes", "linked")}
    # the engine under either of its names (a task written as render_file's ``matcher`` keeps working)
    kw["engine"] = task.get("engine", task.get("matcher", "auto"))
    kw["match"] = task.get("match")
    for k, v in (task.get("delivery") or {}).items():
        kw[k] = v
    return kw


# What a rendered file's record keeps of render_file's result.
_RESULT_KEYS = ("frames", "sample_rate", "channels", "latency_samples", "rtf", "nonfinite_in", "distance_before_db",
                "distance_after_db", "delivery")


def render_task(task: dict) -> dict:
    """Render one file of a batch to its staged path; never raises (an error becomes ``{"ok": False}``).

    ``task``: ``src``, ``staged``, ``index`` and the :func:`render_file` arguments; with ``data`` (the
    source's bytes, when workers share no folder with the driver) the file is rendered in a private
    temporary folder and the output's bytes come back as ``data``.
    """
    from resculpt.models.mask.bundle import file_sha256

    t0 = time.perf_counter()
    src = Path(task["src"])
    names = {task["staged"]: task["out"]}  # paths an error message may hold -> the paths the user knows
    try:
        if "data" in task:
            with tempfile.TemporaryDirectory(prefix="resculpt-batch-") as td:
                local = Path(td) / ("in" + src.suffix)
                out = Path(td) / ("out" + Path(task["staged"]).suffix)
                names.update({str(local): str(src), str(out): task["out"]})
                local.write_bytes(task["data"])
                r = render_file(local, out, progress=False, **_render_kwargs(task))
                res = {"data": out.read_bytes(), "src_sha256": hashlib.sha256(task["data"]).hexdigest(),
                       "src_size": task["src_size"], "src_mtime_ns": task["src_mtime_ns"]}
        else:
            st = src.stat()
            res = {"src_size": st.st_size, "src_mtime_ns": st.st_mtime_ns, "src_sha256": file_sha256(src)}
            r = render_file(src, task["staged"], progress=False, **_render_kwargs(task))
    except Exception as e:  # one bad file never stops the batch
        msg = str(e) or type(e).__name__
        for k, v in names.items():
            msg = msg.replace(k, v)
        return {"ok": False, "index": task["index"], "error": msg if str(src) in msg else f"{src}: {msg}",
                "wall_seconds": time.perf_counter() - t0}
    res.update(ok=True, index=task["index"], render_seconds=r["seconds"], wall_seconds=time.perf_counter() - t0,
               **{k: r[k] for k in _RESULT_KEYS if k in r})
    return res


# -- local worker processes ----------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the driver dies, so no orphan keeps writing after a kill."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main() -> None:
    """A worker process's loop: pickled tasks on stdin, pickled results on the stdout it started with.

    Started by :class:`LocalPool` as ``python -c``, with :data:`THREAD_ENV` in its environment, so
    BLAS and OpenMP read their one-thread settings before numpy is first imported. Anything a library
    prints goes to stderr: file descriptor 1 is pointed there and the result stream keeps its own.
    """
    import pickle

    _die_with_parent()
    if os.getppid() == 1:  # the driver died before prctl took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what Ctrl-C stops
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    tasks = sys.stdin.buffer
    while True:
        try:
            task = pickle.load(tasks)
        except EOFError:
            return
        if task is None:
            return
        pickle.dump(worker_probe() if task == "probe" else render_task(task), results,
                    protocol=pickle.HIGHEST_PROTOCOL)
        results.flush()


def worker_probe() -> dict:
    """What a worker runs with: its thread environment and the thread count of numpy's OpenBLAS
    (None where numpy links another BLAS)."""
    import glob as _glob

    import numpy as np

    info = {k: os.environ.get(k) for k in THREAD_ENV}
    info["openblas_threads"] = None
    for lib in _glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")):
        for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            f = getattr(ctypes.CDLL(lib), sym, None)
            if f is not None:
                info["openblas_threads"] = int(f())
                break
    return info


class LocalPool:
    """``jobs`` worker processes (fresh interpreters, :func:`worker_main`) fed one task at a time.

    A worker that dies mid-file (a crash in a decoder, the OOM killer) fails only that file: the
    driver knows which task each worker holds and starts a replacement.
    """

    def __init__(self, jobs: int):
        self.jobs = max(1, int(jobs))
        self.workers: list = []

    @staticmethod
    def start_worker():
        import subprocess

        env = dict(os.environ, **THREAD_ENV)
        return subprocess.Popen(
            [sys.executable, "-c", "from resculpt.plugin_host.batch import worker_main; worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def _start(self) -> dict:
        return {"proc": self.start_worker(), "task": None}

    @staticmethod
    def _send(w, obj) -> None:
        import pickle

        pickle.dump(obj, w["proc"].stdin, protocol=pickle.HIGHEST_PROTOCOL)
        w["proc"].stdin.flush()

    def run(self, tasks, on_result) -> None:
        """Run ``tasks`` (dicts for :func:`render_task`) and call ``on_result(task, result)`` as each ends."""
        import pickle
        import select

        pending = list(reversed(tasks))
        self.workers = [self._start() for _ in range(min(self.jobs, len(tasks)))]
        try:
            for w in self.workers:
                self._feed(w, pending)
            while True:
                busy = [w for w in self.workers if w["task"] is not None]
                if not busy:
                    break
                ready, _, _ = select.select([w["proc"].stdout for w in busy], [], [])
                for w in busy:
                    if w["proc"].stdout not in ready:
                        continue
                    task = w["task"]
                    try:
                        res = pickle.load(w["proc"].stdout)
                    except (EOFError, pickle.UnpicklingError, OSError):
                        code = w["proc"].wait()
                        why = f"signal {-code}" if code < 0 else f"exit code {code}"
                        res = {"ok": False, "index": task["index"], "wall_seconds": 0.0,
                               "error": f"{task['src']}: the worker process died ({why})"}
                        self._stop(w)
                        w.update(self._start())
                    w["task"] = None
                    on_result(task, res)
                    self._feed(w, pending)
        except BaseException:  # Ctrl-C, or an error in the driver: the files in flight are abandoned
            self.close(kill=True)
            raise
        self.close()

    def _feed(self, w, pending) -> None:
        if pending:
            w["task"] = pending.pop()
            self._send(w, w["task"])

    def _stop(self, w, kill: bool = False) -> None:
        p = w["proc"]
        if kill:
            p.kill()
        with contextlib.suppress(OSError):
            if p.poll() is None:
                self._send(w, None)
            p.stdin.close()
        try:
            p.wait(timeout=30)
        except Exception:  # stuck
            p.kill()
            p.wait()
        p.stdout.close()

    def close(self, kill: bool = False) -> None:
        """Stop the workers: idle ones exit on their own, ``kill`` stops busy ones too."""
        for w in self.workers:
            self._stop(w, kill)
        self.workers = []


# -- Ray -----------------------------------------------------------------------------------------
_RAY_INIT = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}


def init_local_ray(num_cpus: int) -> None:
    """Start a private Ray instance on this machine: ``num_cpus`` CPUs, no dashboard, a 100 MiB
    object store, workers with :data:`THREAD_ENV`.

    The raylet and the workers it starts inherit the driver's environment at init (a runtime_env
    would start a second set of workers, seconds each on a busy machine).
    """
    import ray

    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update(THREAD_ENV)
    try:
        ray.init(num_cpus=num_cpus, object_store_memory=100 * 2**20, **_RAY_INIT)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_on_ray(tasks, on_result, address: str, jobs: int | None, transfer: str) -> None:
    """Run ``tasks`` as Ray tasks (one CPU each). ``address``: ``local`` starts a private instance
    here (``jobs`` CPUs, no dashboard, a small object store), ``auto`` or ``HOST:PORT`` (or
    ``ray://HOST:PORT``) joins a cluster; a Ray already initialised in this process is used as it is.
    ``transfer``: ``shared`` (workers read and write the paths) or ``bytes`` (sources go out and
    outputs come back through Ray's object store). The driver keeps ``2 x CPUs`` tasks in flight.
    Workers get :data:`THREAD_ENV` (a Ray initialised by the caller keeps its own settings; Ray sets
    ``OMP_NUM_THREADS=1`` for one-CPU tasks itself, which OpenBLAS also reads)."""
    try:
        import ray
    except ImportError:
        raise RenderError("--ray needs Ray: pip install 'resculpt[ray]'") from None
    started = False
    if not ray.is_initialized():
        try:
            if address == "local":
                init_local_ray(jobs or default_jobs())
            else:
                ray.init(address=address, runtime_env={"env_vars": dict(THREAD_ENV)}, **_RAY_INIT)
        except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError ...
            raise RenderError(f"cannot start or join Ray at {address!r}: {e}") from None
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(render_task)
        cap = max(4, 2 * int(ray.cluster_resources().get("CPU", 1)))
        queue = list(reversed(tasks))
        inflight = {}
        while queue or inflight:
            while queue and len(inflight) < cap:
                t = queue.pop()
                arg = t
                if transfer == "bytes":
                    try:
                        st = Path(t["src"]).stat()
                        arg = dict(t, data=Path(t["src"]).read_bytes(), src_size=st.st_size,
                                   src_mtime_ns=st.st_mtime_ns)
                    except OSError as e:
                        on_result(t, {"ok": False, "index": t["index"], "wall_seconds": 0.0,
                                      "error": f"{t['src']}: {e.strerror or e}"})
                        continue
                inflight[remote.remote(arg)] = t
                del arg
            if not inflight:
                continue
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                t = inflight.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as e:  # the worker died, the node went away ...
                    res = {"ok": False, "index": t["index"], "wall_seconds": 0.0,
                           "error": f"{t['src']}: Ray task failed ({type(e).__name__}: {str(e).splitlines()[0]})"}
                on_result(t, res)
    finally:
        if started:
            ray.shutdown()


# -- progress ------------------------------------------------------------------------------------
class BatchProgress:
    """One status line on stderr across all workers: files, audio-seconds, speed and ETA.

    On when stderr is a terminal (or ``enabled=True``). The ETA scales the elapsed time by the source
    bytes still to render (known before any file is decoded).
    """

    def __init__(self, n_files: int, total_bytes: int, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.n, self.total_bytes = n_files, max(1, total_bytes)
        self.done = self.failed = self.bytes_done = 0
        self.audio_s = 0.0
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._shown = False

    def advance(self, ok: bool, audio_s: float, nbytes: int) -> None:
        self.done += 1
        self.failed += not ok
        self.audio_s += audio_s
        self.bytes_done += nbytes
        self.draw()

    def line(self) -> str:
        el = time.perf_counter() - self.t0
        frac = min(1.0, self.bytes_done / self.total_bytes)
        bar = "#" * int(20 * frac)
        speed = self.audio_s / el if el > 0 else 0.0
        if self.bytes_done and self.done < self.n:
            eta = el * (self.total_bytes - self.bytes_done) / self.bytes_done
            eta_s = f"ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        else:
            eta_s = f"{el:.0f} s" if self.done >= self.n else "ETA --:--"
        fail = f", {self.failed} failed" if self.failed else ""
        return (f"[{bar:20s}] {self.done}/{self.n} files{fail} | {self.audio_s:.0f} s audio, "
                f"{speed:.1f}x real time | {eta_s}")

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.2 and self.done < self.n:
            return
        self._last = now
        self.stream.write("\r" + self.line() + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


# -- the batch -----------------------------------------------------------------------------------
def _sweep(out_dirs, names_by_dir) -> int:
    """Delete leftover staged and temporary files of this batch's outputs (a killed run's)."""
    n = 0
    for d in out_dirs:
        if not d.is_dir():
            continue
        names = names_by_dir.get(d, set())
        for e in os.listdir(d):
            m = _STAGED_RE.match(e) if e.startswith(".") else None
            if m and m.group("name") in names:
                with contextlib.suppress(FileNotFoundError):
                    (d / e).unlink()
                    n += 1
    return n


def _out_header(path: Path) -> tuple[int, int, int]:
    from pedalboard.io import AudioFile

    with AudioFile(str(path)) as f:
        return f.frames, int(round(f.samplerate)), f.num_channels


def render_batch(inputs, out_dir, preset="clean", jobs: int | None = None, ray: str | None = None,
                 sets: dict | None = None, target=None, progress: bool | None = None, *, fmt: str = "wav",
                 block: int = 4096, amount: float | None = None, context: str | None = None,
                 engine: str = "auto", passes: int = 2, linked: bool | None = None, force: bool = False,
                 ray_transfer: str = "shared", on_file=None, match: str | None = None,
                 matcher: str | None = None, loudness_lufs: float | None = None,
                 true_peak_db: float | None = None) -> dict:
    """Render files, folders (recursive) and globs into ``out_dir``, mirroring the input trees.

    ``jobs``: worker processes (default: every core this process may use). ``ray``: ``None`` (local
    processes), ``"local"``, ``"auto"`` or ``"HOST:PORT"`` (see :func:`run_on_ray`); ``ray_transfer``:
    ``"shared"`` or ``"bytes"``. ``sets``: parameter overrides {id: value}; ``target``: a profile (path or
    Profile); ``context``, ``amount``, ``engine`` (``matcher``: its other name), ``match``, ``passes``,
    ``block``, ``linked``, ``loudness_lufs``, ``true_peak_db``: as :func:`render_file`.
    ``fmt``: ``"wav"`` or ``"flac"``. ``force``: render everything, even what the manifest says is current.
    ``progress``: the status line (default: when stderr is a terminal). ``on_file(record)`` is called in
    the driver for every file as it is rendered, skipped or fails.

    Returns a summary dict: counts (``files``, ``rendered``, ``skipped``, ``adopted``, ``failed``),
    ``failures`` [{input, output, error}], ``audio_seconds`` rendered, ``wall_seconds``,
    ``throughput`` (audio-seconds per wall-second), ``jobs``, ``ray``, ``manifest`` and ``files_detail``
    (one record per file: input, output, status, and for a rendered file what :func:`render_file` returns
    (frames, sample_rate, channels, latency_samples, rtf, ...), ``seconds`` (its processing time),
    ``task_seconds`` (the worker's whole time on the file: hashing, chain construction, decoding set-up
    included) and ``audio_seconds``; for a failed file ``error``).
    Raises RenderError for a problem with the whole job (bad preset, overrides, target, context or
    output folder, another batch writing into it).
    """
    t_start = time.perf_counter()
    if fmt not in FORMATS:
        raise RenderError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if ray_transfer not in ("shared", "bytes"):
        raise RenderError(f"ray_transfer must be 'shared' or 'bytes', got {ray_transfer!r}")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out_dir = Path(out_dir)
    job = resolve_job(preset, sets, target, context, amount, matcher or engine, passes, block, linked, match,
                      loudness_lufs, true_peak_db)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RenderError(f"{out_dir}: cannot create the output folder ({e})") from None
    items = expand_inputs(inputs, out_dir, fmt)
    jobs = max(1, int(jobs)) if jobs else default_jobs()
    records: list[dict] = [None] * len(items)
    counts = {"rendered": 0, "skipped": 0, "adopted": 0, "failed": 0}

    def finish(i: int, status: str, **extra) -> None:
        it = items[i]
        rec = {"input": str(it.src), "output": None if it.error else str(out_dir / it.rel), "status": status,
               **extra}
        records[i] = rec
        counts[status] += 1
        if on_file is not None:
            bar.clear()
            on_file(rec)
            bar.draw(force=True)

    bar = BatchProgress(0, 0, enabled=False)
    with _out_dir_lock(out_dir):
        man = Manifest(out_dir)
        try:
            tasks, sizes = [], {}
            for i, it in enumerate(items):
                if it.error is not None:
                    finish(i, "failed", error=it.error)
                    continue
                out = out_dir / it.rel
                try:
                    st = it.src.stat()
                except OSError as e:
                    finish(i, "failed", error=f"{it.src}: {e.strerror or e}")
                    continue
                staged = _staged_path(out, job.key, it.src, st)
                row = man.get(it.rel.as_posix())
                if staged.is_file() and not force:
                    try:
                        _commit(man, job, it, out, staged, _adopt_result(it.src, st, staged))
                        finish(i, "adopted")
                        continue
                    except Exception:  # unreadable after all (a damaged disk): render the file again
                        staged.unlink(missing_ok=True)
                if row and not force and row["job_key"] == job.key and out.is_file() \
                        and out.stat().st_size == row["out_size"] and row["src_size"] == st.st_size:
                    if row["src_mtime_ns"] == st.st_mtime_ns:
                        finish(i, "skipped")
                        continue
                    from resculpt.models.mask.bundle import file_sha256

                    if file_sha256(it.src) == row["src_sha256"]:  # touched, not changed
                        man.put(dict(row, src_mtime_ns=st.st_mtime_ns))
                        finish(i, "skipped")
                        continue
                sizes[i] = st.st_size
                tasks.append({"index": i, "src": str(it.src), "out": str(out), "staged": str(staged),
                              "preset": job.preset, "sets": job.sets, "block": job.block, "target": job.target,
                              "amount": job.amount, "context": job.context, "engine": job.engine, "match": job.match,
                              "passes": job.passes, "linked": job.linked, "delivery": job.delivery})
            by_dir: dict[Path, set] = {}
            for it in items:
                if it.error is None:
                    o = out_dir / it.rel
                    by_dir.setdefault(o.parent, set()).add(o.name)
            _sweep(list(by_dir), by_dir)
            for t in tasks:
                Path(t["staged"]).parent.mkdir(parents=True, exist_ok=True)

            bar = BatchProgress(len(tasks), sum(sizes.values()), progress)
            audio_s = 0.0

            def on_result(task, res):
                nonlocal audio_s
                i = task["index"]
                it = items[i]
                sec = res["frames"] / res["sample_rate"] if res.get("ok") else 0.0
                if res.get("ok"):
                    out, staged = out_dir / it.rel, Path(task["staged"])
                    try:
                        if "data" in res:
                            tmp = staged.with_name(staged.name + ".partial")
                            tmp.write_bytes(res.pop("data"))
                            os.replace(tmp, staged)
                        _commit(man, job, it, out, staged, res)
                    except OSError as e:
                        res = {"ok": False, "error": f"{out}: cannot write ({e})"}
                if res.get("ok"):
                    audio_s += sec
                    finish(i, "rendered", seconds=res["render_seconds"], task_seconds=res["wall_seconds"],
                           audio_seconds=sec,
                           **{k: res[k] for k in _RESULT_KEYS if k in res})
                else:
                    finish(i, "failed", error=res["error"])
                bar.advance(res.get("ok", False), sec, sizes[i])

            if tasks:
                if ray:
                    run_on_ray(tasks, on_result, ray, jobs if ray == "local" else None, ray_transfer)
                else:
                    LocalPool(jobs).run(tasks, on_result)
            bar.close()
        finally:
            man.close()
    wall = time.perf_counter() - t_start
    failures = [{"input": r["input"], "output": r["output"], "error": r["error"]} for r in records
                if r and r["status"] == "failed"]
    return {"files": len(items), **counts, "failures": failures, "audio_seconds": audio_s,
            "wall_seconds": wall, "throughput": (audio_s / wall) if wall > 0 else 0.0, "jobs": jobs,
            "ray": ray, "manifest": str(out_dir / MANIFEST_NAME), "job": job.identity, "files_detail": records}


def _adopt_result(src: Path, st, staged: Path) -> dict:
    """The record of a staged output a killed run finished but did not rename (rendered, not redone)."""
    from resculpt.models.mask.bundle import file_sha256

    frames, sr, c = _out_header(staged)
    return {"src_size": st.st_size, "src_mtime_ns": st.st_mtime_ns, "src_sha256": file_sha256(src),
            "frames": frames, "sample_rate": sr, "channels": c, "render_seconds": None}


def _commit(man: Manifest, job: Job, it: Item, out: Path, staged: Path, res: dict) -> None:
    """Record the output in the manifest (one transaction), then rename the staged file onto it."""
    man.put({"output": it.rel.as_posix(), "source": str(it.src.resolve()), "src_size": res["src_size"],
             "src_mtime_ns": res["src_mtime_ns"], "src_sha256": res["src_sha256"], "job_key": job.key,
             **job.identity, "out_size": staged.stat().st_size, "frames": res["frames"],
             "sample_rate": res["sample_rate"], "channels": res["channels"],
             "render_seconds": res.get("render_seconds"), "rendered_at": time.time()})
    os.replace(staged, out)


__all__ = [
    "EXIT_MAX_FAILED",
    "MANIFEST_NAME",
    "THREAD_ENV",
    "BatchProgress",
    "LocalPool",
    "Manifest",
    "default_jobs",
    "expand_inputs",
    "render_batch",
    "render_task",
    "resolve_job",
    "run_on_ray",
]
