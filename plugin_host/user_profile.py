"""The user's learned profile: a local log of their adjustments and what Resculpt learns from it.

Privacy: everything lives only on this device, in ``$XDG_DATA_HOME/resculpt/`` (default
``~/.local/share/resculpt/``): the folder is created mode 0700 and every file mode 0600 (readable
by the user alone). ``resculpt profile forget`` (:func:`forget`) deletes all of it.

Files: ``adjustments.jsonl`` (one JSON object a line: ``{"t": unix time, "id": param id,
"value": v}``) and ``user_profile.json`` (``{"schema_version": 1, "params": {id: learned value},
"delta": <delta Profile>, "updated": t}``).

API for the OSC server and the panel::

    log = AdjustmentLog()            # or AdjustmentLog(auto_learn=True)
    log.attach(chain)                # subscribes to chain.params.listeners
    ...                              # every control-side set is appended (coalesced, below)
    log.detach()

Update rule (:func:`learn`), per parameter:
  1. *Settled values*: sets of one parameter less than ``SETTLE_S`` (2 s) apart are one gesture
     (a fader drag); only its last value counts.
  2. *Preference*: the recency-weighted median of the settled values, weights ``0.5 ** (age /
     HALF_LIFE)`` with age counted in gestures of that parameter (half-life 10). A median
     ignores outliers: a single stray tweak among consistent ones cannot move it.
  3. Only parameters with at least ``MIN_SUPPORT`` (3) settled values are learned, and the
     learned value moves toward the preference by ``RATE`` (0.5) each time learn runs:
     ``learned <- learned + RATE * (preference - learned)`` (first time: the preference).
The learned EQ/level parameters are also summarised as a delta profile (band offsets of the
low/high shelf and presence gains, loudness from out.gain_db) so the model and the match-EQ can
use it. With ``auto_learn`` the log runs :func:`learn` after every ``AUTO_EVERY`` (5) gestures;
``AdjustmentLog()`` follows the user's setting, ``resculpt profile learn --auto on|off``
(``settings.json``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .paths import user_data_dir

SETTLE_S = 2.0
HALF_LIFE = 10.0
MIN_SUPPORT = 3
RATE = 0.5
AUTO_EVERY = 5
LOG_NAME = "adjustments.jsonl"
PROFILE_NAME = "user_profile.json"


def _ensure_dir() -> Path:
    d = user_data_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    return d


def _open_private(path: Path, mode: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC), 0o600)
    os.chmod(path, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8")


class AdjustmentLog:
    """Appends every control-side parameter change of an attached chain to the local log."""

    def __init__(self, auto_learn: bool | None = None, clock=time.time):
        # None: follow the user's setting (`resculpt profile learn --auto on|off`)
        self.auto_learn = auto_learn_setting() if auto_learn is None else bool(auto_learn)
        self.clock = clock
        self._table = None
        self._fn = None
        self._gestures = 0
        self._last = {}
        self._fh = None
        self.error = None  # set (and logging stops) if the log cannot be written

    def attach(self, chain) -> AdjustmentLog:
        self.detach()
        table = chain.params if hasattr(chain, "params") else chain
        self._table = table
        self._fn = self.record
        table.listeners.append(self._fn)
        return self

    def detach(self) -> None:
        if self._table is not None and self._fn in self._table.listeners:
            self._table.listeners.remove(self._fn)
        self._table = None
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None

    def record(self, pid: str, value: float, t: float | None = None) -> None:
        """Log one change (called by the parameter table's listeners, control thread).

        Never raises into the caller (a parameter set must not fail because the disk is full):
        on an I/O error logging stops and ``error`` holds the reason."""
        if self.error is not None:
            return
        t = self.clock() if t is None else t
        try:
            path = _ensure_dir() / LOG_NAME
            if self._fh is None or not path.exists():  # reopen after `profile forget`
                self.close()
                self._fh = _open_private(path, "a")
            self._fh.write(json.dumps({"t": round(float(t), 3), "id": pid, "value": float(value)}) + "\n")
            self._fh.flush()
        except OSError as e:
            self.error = f"adjustment log disabled: {e}"
            self.close()
            return
        prev = self._last.get(pid)
        self._last[pid] = t
        if prev is None or t - prev >= SETTLE_S:
            self._gestures += 1
            if self.auto_learn and self._gestures % AUTO_EVERY == 0:
                try:
                    learn()
                except (OSError, ValueError) as e:
                    self.error = f"automatic learning failed: {e}"


SETTINGS_NAME = "settings.json"


def auto_learn_setting() -> bool:
    """The user's choice for automatic learning (default off)."""
    p = user_data_dir() / SETTINGS_NAME
    try:
        return bool(json.loads(p.read_text(encoding="utf-8")).get("auto_learn", False))
    except (OSError, ValueError, AttributeError):
        return False


def set_auto_learn(on: bool) -> None:
    with _open_private(_ensure_dir() / SETTINGS_NAME, "w") as f:
        f.write(json.dumps({"auto_learn": bool(on)}) + "\n")


def read_log() -> list[dict]:
    p = user_data_dir() / LOG_NAME
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(line)
            if isinstance(d, dict) and {"t", "id", "value"} <= set(d):
                out.append(d)
        except json.JSONDecodeError:
            continue
    return out


def settled_values(entries: list[dict]) -> dict[str, list[float]]:
    """{param id: [settled value per gesture, oldest first]} (see the module doc)."""
    by: dict[str, list[tuple[float, float]]] = {}
    for e in sorted(entries, key=lambda e: e["t"]):
        by.setdefault(e["id"], []).append((float(e["t"]), float(e["value"])))
    out = {}
    for pid, seq in by.items():
        vals = []
        for i, (t, v) in enumerate(seq):
            if i + 1 < len(seq) and seq[i + 1][0] - t < SETTLE_S:
                continue  # not the end of its gesture
            vals.append(v)
        out[pid] = vals
    return out


def weighted_median(values, weights) -> float:
    o = np.argsort(values)
    v, w = np.asarray(values, float)[o], np.asarray(weights, float)[o]
    c = np.cumsum(w)
    return float(v[int(np.searchsorted(c, 0.5 * c[-1]))])


def preference(values: list[float]) -> float | None:
    if len(values) < MIN_SUPPORT:
        return None
    n = len(values)
    w = [0.5 ** ((n - 1 - i) / HALF_LIFE) for i in range(n)]
    return weighted_median(values, w)


def load_user_profile() -> dict:
    p = user_data_dir() / PROFILE_NAME
    if not p.is_file():
        return {"schema_version": 1, "params": {}, "delta": None, "updated": None}
    return json.loads(p.read_text(encoding="utf-8"))


def _delta_from_params(params: dict):
    """A delta Profile summarising learned EQ/level parameters (shelf/peak gains, out.gain_db)."""
    from resculpt.dsp.descriptors import high_shelf, low_shelf, peak
    from resculpt.dsp.profile import empty_delta

    d = empty_delta(source="learned from adjustments")
    env = np.zeros(len(d.band_env_db))
    if "low_shelf.gain_db" in params:
        env += low_shelf(params.get("low_shelf.cutoff_hz", 120.0), params["low_shelf.gain_db"])
    if "high_shelf.gain_db" in params:
        env += high_shelf(params.get("high_shelf.cutoff_hz", 8000.0), params["high_shelf.gain_db"])
    if "presence.gain_db" in params:
        env += peak(params.get("presence.cutoff_hz", 3500.0), params["presence.gain_db"], 1.0)
    d.band_env_db = list(env)
    if "out.gain_db" in params:
        d.dims["lufs_integrated"] = float(params["out.gain_db"])
    return d


def learn(now: float | None = None) -> dict:
    """Apply the update rule to the log; write and return the user profile (see module doc)."""
    prof = load_user_profile()
    learned = dict(prof.get("params") or {})
    for pid, vals in settled_values(read_log()).items():
        pref = preference(vals)
        if pref is None:
            continue
        old = learned.get(pid)
        learned[pid] = pref if old is None else old + RATE * (pref - old)
    prof = {"schema_version": 1, "params": {k: round(v, 4) for k, v in learned.items()},
            "delta": _delta_from_params(learned).to_dict(), "updated": time.time() if now is None else now}
    path = _ensure_dir() / PROFILE_NAME
    with _open_private(path, "w") as f:
        f.write(json.dumps(prof, indent=1) + "\n")
    return prof


def forget() -> list[str]:
    """Delete the log, the learned profile and the folder if empty; returns what was removed."""
    d = user_data_dir()
    gone = []
    for name in (LOG_NAME, PROFILE_NAME, SETTINGS_NAME):
        p = d / name
        if p.exists():
            p.unlink()
            gone.append(str(p))
    try:
        d.rmdir()
    except OSError:
        pass
    return gone


def apply_user_profile(chain, amount: float = 1.0) -> dict:
    """Set the learned parameters on ``chain`` (smoothed by the table); returns them."""
    params = {k: v for k, v in (load_user_profile().get("params") or {}).items() if k in chain.params}
    if amount != 1.0:
        params = {k: chain.params.get(k) + amount * (v - chain.params.get(k)) for k, v in params.items()}
    chain.params.set_many(params, notify=False)
    return params


__all__ = [
    "AdjustmentLog",
    "apply_user_profile",
    "forget",
    "learn",
    "load_user_profile",
    "preference",
    "read_log",
    "settled_values",
]
