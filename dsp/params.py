"""One parameter table: specs, validation, lock-free control -> audio handoff, smoothing.

Control threads (OSC, panel, CLI, preset loads) call :meth:`ParamTable.set`; it validates and
clamps, writes one float into a preallocated target array and bumps a version counter. A float
store into a numpy array and an int rebinding are each a single bytecode under the GIL, so the
audio thread never sees a torn value and needs no lock. The audio thread calls
:meth:`ParamTable.advance` at the start of every (sub-)block: it notices new targets by the
version counter and moves every value along a linear ramp of the parameter's ``smoothing_ms``
(linear in the parameter's own unit: dB for gains, so a fade is even in loudness).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import jit as _jit


class ParamError(ValueError):
    """A parameter id or value was rejected; the message names the id and the accepted range."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter.

    Attributes:
        id: stable identifier ("mask.reduction_db"); OSC addresses, widgets, presets and DAW maps use it.
        min, max, default: in ``unit``.
        unit: "dB", "Hz", "ms", "%", "x", "" ... (the id ends with it where it has one).
        scale: "linear", "log" (normalised 0..1 maps geometrically; min > 0), "bool", "choice".
        smoothing_ms: ramp length for a change; 0 = jump (bools, choices).
        doc: one line for humans.
        choices: names for scale == "choice" (value is the index).
    """

    id: str
    min: float
    max: float
    default: float
    unit: str = ""
    scale: str = "linear"
    smoothing_ms: float = 20.0
    doc: str = ""
    choices: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.scale not in ("linear", "log", "bool", "choice"):
            raise ValueError(f"{self.id}: unknown scale {self.scale!r}")
        if not (self.min <= self.default <= self.max):
            raise ValueError(f"{self.id}: default {self.default} outside [{self.min}, {self.max}]")
        if self.scale == "log" and self.min <= 0:
            raise ValueError(f"{self.id}: log scale needs min > 0")
        if self.scale == "choice" and len(self.choices) != int(self.max - self.min) + 1:
            raise ValueError(f"{self.id}: {len(self.choices)} choices for range {self.min}..{self.max}")

    @property
    def discrete(self) -> bool:
        return self.scale in ("bool", "choice")

    def clamp(self, value: float) -> float:
        v = min(max(float(value), self.min), self.max)
        return float(round(v)) if self.discrete else v

    def to_normalized(self, value: float) -> float:
        v = self.clamp(value)
        if self.max == self.min:
            return 0.0
        if self.scale == "log":
            return math.log(v / self.min) / math.log(self.max / self.min)
        return (v - self.min) / (self.max - self.min)

    def from_normalized(self, x: float) -> float:
        x = min(max(float(x), 0.0), 1.0)
        if self.scale == "log":
            return self.clamp(self.min * (self.max / self.min) ** x)
        return self.clamp(self.min + x * (self.max - self.min))

    def parse(self, value) -> float:
        """Turn a user value (number, numeric string, bool, choice name) into a float; raise ParamError."""
        if isinstance(value, str):
            s = value.strip()
            if self.scale == "choice" and s in self.choices:
                return float(self.choices.index(s))
            if self.scale == "bool" and s.lower() in ("on", "true", "yes", "off", "false", "no"):
                return 1.0 if s.lower() in ("on", "true", "yes") else 0.0
            try:
                value = float(s)
            except ValueError:
                hint = f" (or one of {', '.join(self.choices)})" if self.choices else ""
                raise ParamError(f"{self.id}: expected a number{hint}, got {value!r}") from None
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float, np.floating, np.integer)):
            raise ParamError(f"{self.id}: expected a number, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value):
            raise ParamError(f"{self.id}: value must be finite, got {value}")
        return value

    def coerce(self, value, *, strict: bool = False) -> float:
        """The one validation of a user value (API, CLI, OSC, preset files) into native units.

        :meth:`parse` first (numbers, numeric strings, bools, choice names; non-finite is an error),
        then either clamp into the range (``strict=False``: ``chain.params[...] = v``, normalised
        controls) or refuse what lies outside it (``strict=True``: preset files and OSC native
        values, where an out-of-range number is a mistake worth reporting, not a wish to clamp).
        Raises ParamError naming the id and the accepted range.
        """
        v = self.parse(value)
        if strict:
            tol = 1e-6 * (self.max - self.min)  # float32 rounding of an OSC argument or a unit conversion
            if v < self.min - tol or v > self.max + tol:
                raise ParamError(f"{self.id}: {v:g} is out of range [{self.min:g}, {self.max:g}] {self.unit}".rstrip())
            if self.discrete and v != round(v):
                raise ParamError(f"{self.id}: expected a whole number for a {self.scale} parameter, got {v:g}")
        return self.clamp(v)

    def display(self, value: float) -> str:
        if self.scale == "choice":
            return self.choices[int(self.clamp(value))]
        if self.scale == "bool":
            return "on" if value >= 0.5 else "off"
        if self.unit == "Hz" and value >= 1000:
            return f"{value / 1000:.2f} kHz"
        return f"{value:.3g} {self.unit}".strip()

    def as_dict(self) -> dict:
        d = {"id": self.id, "min": self.min, "max": self.max, "default": self.default, "unit": self.unit,
             "scale": self.scale, "smoothing_ms": self.smoothing_ms, "doc": self.doc}
        if self.choices:
            d["choices"] = list(self.choices)
        return d


class ParamTable:
    """Values of a list of :class:`ParamSpec`, shared by the control threads and the audio thread.

    Control side: ``set``, ``set_normalized``, ``get``, ``__getitem__``/``__setitem__``, ``index``.
    Audio side: ``prepare(sample_rate)``, ``advance(n)``, ``value`` (n_params,) float64 current
    smoothed values, ``prev`` (values at the start of the last advance), ``fill_ramp``, ``serial``
    (changes whenever ``value`` does).
    """

    def __init__(self, specs):
        self.specs = list(specs)
        ids = [s.id for s in self.specs]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"duplicate parameter ids: {dup}")
        self._index = {s.id: i for i, s in enumerate(self.specs)}
        n = len(self.specs)
        self._target = np.array([s.default for s in self.specs], dtype=np.float64)
        self._version = 0
        self.value = self._target.copy()
        self.prev = self._target.copy()
        self._goal = self._target.copy()      # where each value's current ramp ends
        self._step = np.zeros(n)              # per-sample increment of each ramp, native units
        self._remaining = np.zeros(n)         # samples left in each ramp
        self._smooth_ms = np.array([s.smoothing_ms for s in self.specs], dtype=np.float64)
        self._smooth_samples = np.zeros(n)    # ramp length per parameter at the prepared rate
        # Audio-thread scratch, so that advance() allocates nothing while values ramp: a snapshot of the
        # targets, a per-parameter float and bool, and the block length / zero as 0-d operands (a Python
        # scalar operand would be converted to a fresh 0-d array on every call).
        self._snap = np.zeros(n)
        self._tmp = np.zeros(n)
        self._tmp2 = np.zeros(n)
        self._mask = np.zeros(n, bool)
        self._n0d = np.zeros(())
        self._zero0d = np.zeros(())
        self._seen = 0
        self.ramping = False
        # Bumped whenever ``value`` changes (snap, or an advance that moved a value): a stage that
        # derives coefficients from ``value`` re-derives them only when this differs from what it saw.
        self.serial = 0
        self.listeners = []  # callables(id, value) run on the control thread after a set
        self.prepare(48000)

    # -- control side -------------------------------------------------------------------------
    def __contains__(self, pid: str) -> bool:
        return pid in self._index

    def __iter__(self):
        return iter(s.id for s in self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def index(self, pid: str) -> int:
        try:
            return self._index[pid]
        except KeyError:
            raise ParamError(self._unknown(pid)) from None

    def _unknown(self, pid) -> str:
        import difflib

        close = difflib.get_close_matches(str(pid), list(self._index), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `resculpt params` lists them"
        return f"unknown parameter {pid!r}{hint}"

    def spec(self, pid: str) -> ParamSpec:
        return self.specs[self.index(pid)]

    def set(self, pid: str, value, *, notify: bool = True) -> float:
        """Validate, clamp and publish a new target in native units. Returns the clamped value."""
        i = self.index(pid)
        v = self.specs[i].coerce(value)
        self._target[i] = v
        self._version += 1
        if notify:
            for fn in self.listeners:
                fn(pid, v)
        return v

    def set_normalized(self, pid: str, x, *, notify: bool = True) -> float:
        spec = self.spec(pid)
        x = ParamSpec("n", 0.0, 1.0, 0.0).parse(x)
        return self.set(pid, spec.from_normalized(x), notify=notify)

    def set_many(self, values: dict, *, notify: bool = True) -> None:
        """Validate every value first, then publish them all (nothing half-applied)."""
        parsed = {}
        for pid, v in values.items():
            parsed[pid] = self.spec(pid).coerce(v)
        for pid, v in parsed.items():
            self._target[self._index[pid]] = v
        self._version += 1
        if notify:
            for pid, v in parsed.items():
                for fn in self.listeners:
                    fn(pid, v)

    def get(self, pid: str) -> float:
        """The current target (what the control side last set)."""
        return float(self._target[self.index(pid)])

    __getitem__ = get

    def __setitem__(self, pid: str, value) -> None:
        self.set(pid, value)

    def targets(self) -> dict:
        return {s.id: float(self._target[i]) for i, s in enumerate(self.specs)}

    def reset_to_defaults(self) -> None:
        self.set_many({s.id: s.default for s in self.specs})

    # -- audio side ---------------------------------------------------------------------------
    def prepare(self, sample_rate: int, compiled: bool = False) -> None:
        """Ramp lengths at ``sample_rate``; values jump to their targets. ``compiled``: advance() moves the ramps in
        one compiled loop (:func:`_advance_ramps`, numba; the same float64 steps as its numpy code, bit for bit)
        instead of ~10 numpy calls over the whole table: the host asks for it, a table built for a CLI listing or a
        test does not import numba."""
        self._smooth_samples[:] = np.maximum(1.0, np.round(self._smooth_ms * 1e-3 * sample_rate))
        self._kern = bool(compiled and AVAILABLE and warm_up())
        self.snap()

    def snap(self) -> None:
        """Jump every value to its target (offline renders and reset)."""
        np.copyto(self.value, self._target)
        np.copyto(self.prev, self._target)
        np.copyto(self._goal, self._target)
        self._remaining.fill(0.0)
        self._step.fill(0.0)
        self._seen = self._version
        self.ramping = False
        self.serial += 1

    @property
    def pending(self) -> bool:
        """A control thread has set a target that :meth:`advance` has not taken up yet."""
        return self._seen != self._version

    def advance(self, n: int) -> bool:
        """Move values n samples along their ramps. Audio thread, start of a (sub-)block; allocates nothing.

        Returns True if any value moved (callers then re-apply coefficients).
        """
        np.copyto(self.prev, self.value)
        if self._seen != self._version:
            self._seen = self._version
            # One read of the targets: a concurrent set() lands whole in this snapshot or at the next advance.
            snap = self._snap
            np.copyto(snap, self._target)
            changed = self._mask
            np.not_equal(snap, self._goal, out=changed)
            if _any(changed):
                # A new ramp from the current value to the new target over the parameter's smoothing time.
                np.copyto(self._goal, snap, where=changed)
                np.subtract(snap, self.value, out=self._tmp)
                np.divide(self._tmp, self._smooth_samples, out=self._tmp)
                np.copyto(self._step, self._tmp, where=changed)
                np.copyto(self._remaining, self._smooth_samples, where=changed)
                self.ramping = True
        if not self.ramping or n == 0:
            return False
        if self._kern:
            self.ramping = advance_ramps(self.value, self._goal, self._step, self._remaining, float(n))
            self.serial += 1
            return True
        self._n0d.fill(n)
        np.minimum(self._remaining, self._n0d, out=self._tmp)
        np.multiply(self._step, self._tmp, out=self._tmp2)
        self.value += self._tmp2
        self._remaining -= self._tmp
        done = self._mask
        np.less_equal(self._remaining, self._zero0d, out=done)
        np.copyto(self.value, self._goal, where=done)  # land exactly on the target
        self.ramping = not _all(done)
        self.serial += 1
        return True

    def fill_ramp(self, i: int, n: int, out: np.ndarray) -> np.ndarray:
        """Per-sample values (n,) of parameter i over the last advance(n), linear from prev to value."""
        a, b = self.prev[i], self.value[i]
        if a == b:
            out[:n] = b
        else:
            np.multiply(_RAMP01[1 : n + 1] if n < _RAMP01.size else np.arange(1, n + 1), (b - a) / n, out=out[:n])
            out[:n] += a
        return out[:n]


def _advance_ramps(value, goal, step, remaining, n):
    """advance()'s ramp step for every parameter i, in float64 as its numpy code: t = min(remaining, n),
    value += step t, remaining -= t, and a ramp that has run out lands exactly on its goal. Returns whether any
    ramp is still running."""
    running = False
    for i in range(value.shape[0]):
        r = remaining[i]
        t = min(r, n)
        value[i] += step[i] * t
        r -= t
        remaining[i] = r
        if r <= 0.0:
            value[i] = goal[i]
        else:
            running = True
    return running


def warm_up() -> bool:
    """Compile :func:`_advance_ramps` (once per process; from numba's disk cache after the first time). False
    without numba (advance() runs its numpy code)."""
    return _jit.warm_module(globals(), _bind)


def _bind(jit):
    global advance_ramps
    from numba import types as t

    f64 = t.Array(t.float64, 1, "C")
    advance_ramps = jit(_advance_ramps, [t.boolean(f64, f64, f64, f64, t.float64)])


AVAILABLE = _jit.available("params")
_warm = False
advance_ramps = None

_RAMP01 = np.arange(0, 65537, dtype=np.float64)
# ndarray.any()/all() without their Python wrappers (advance() runs once per (sub-)block while values ramp).
_any, _all = np.logical_or.reduce, np.logical_and.reduce
