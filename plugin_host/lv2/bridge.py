"""The Python side of the LV2 plugin: one :class:`Bridge` per plugin instance, called by the C shell.

The shell (``resculpt_lv2.c``) owns three buffers and hands their addresses to :func:`create`; the bridge
views them as numpy arrays for its whole life:

- ``buf``: float32 (2, cap) audio, processed in place by ``Chain.process`` (the first ``io[0]`` columns);
- ``ctrl``: float32 (n_controls,) control inputs: enabled, preset, then every parameter in port order;
- ``io``: int32 (4,): samples in this call (shell -> bridge), latency in samples, status (0 ok).

Threads. ``run`` is called on the host's audio thread; ``activate`` on a host thread while ``run`` is
held off (LV2's instantiation class); ``state_restore`` the same way when a session opens, but Ardour
also calls it while running when the user loads an LV2 preset, so it leaves the audio buffers to ``run``;
``state_save`` on any other thread. A
change of the preset control while running is built on the bridge's own worker thread (files read, graph
built) and published by the chain's one reference swap; the audio thread then crossfades to it.

Control semantics. A control input acts when its value changes (and once at activation, for the values
that differ from the table's defaults): choosing a preset loads its layout and all its parameters, then a
parameter control moved since overrides the preset's value, as ``resculpt render --preset P --set ID=V``.
The LV2 presets of ``presets.ttl`` set the preset control and every parameter to the preset's values,
so a host's sliders show the sound. Whatever changed before the first ``run`` after activation applies at
once (no ramp from the defaults).

State (:func:`state_text`): the preset's name, every parameter, the control values taken up, and two
things no control can carry: a user preset (its JSON: layout and values) and a target profile (its JSON),
as ``resculpt render --preset USER.json --target T.json``. An LV2 preset written by ``resculpt plugin
preset`` carries them; a session saves them back. With a target, every preset's layout gets the stage of
the state's ``engine`` (``match`` for the match-EQ, the default and what a state without the key was saved
with; ``resculpt`` for the model) appended when it has none (as ``render --target`` does) and the target is
published through the chain's inboxes; choosing a shipped preset on the preset control replaces the user preset and keeps the
target.
"""

from __future__ import annotations

import ctypes
import json
import queue
import sys
import threading
import traceback

import numpy as np
from resculpt.dsp.profile import Profile
from resculpt.plugin_host.chain import Chain, resolve_engine
from resculpt.plugin_host.host import TARGET_SLOTS
from resculpt.plugin_host.presets import load_preset, validate

from .ports import (
    DEFAULT_PRESET,
    ENABLED_PORT,
    FIRST_PARAM_PORT,
    PRESET_PORT,
    PRESETS,
    USER_PRESET,
    n_controls,
    param_ports,
)

# Positions in the control array (port index - ENABLED_PORT).
C_ENABLED = 0
C_PRESET = PRESET_PORT - ENABLED_PORT
C_PARAM0 = FIRST_PARAM_PORT - ENABLED_PORT
STATE_VERSION = 2
STATE_READS = (1, 2)  # version 1: no user preset, no target


def state_text(preset: str, params: dict, seen, user_preset: dict | None = None, target: dict | None = None,
               engine: str = "match-eq") -> str:
    """The plugin's state, one JSON string: ``preset`` (the sound's name), ``params`` ({id: value}),
    ``seen`` (the control array's values the chain has taken up, float32-exact, length n_controls()),
    ``user_preset`` (a preset file's JSON, or None: the preset named is a shipped one), ``target`` (a
    profile file's JSON, or None) and ``engine`` (what follows the target: "match-eq" or "model"; a state
    without the key is read as "match-eq", the engine it was saved with)."""
    return json.dumps({"version": STATE_VERSION, "preset": preset, "user_preset": user_preset, "target": target,
                       "engine": engine, "params": params, "seen": [float(v) for v in seen]})


def _view(addr: int, n: int, ctype, shape=None) -> np.ndarray:
    a = np.ctypeslib.as_array((ctype * n).from_address(addr))
    return a.reshape(shape) if shape else a


class Bridge:
    """The chain of one plugin instance and the glue to the shell's buffers (see the module doc)."""

    def __init__(self, buf_addr: int, cap: int, ctrl_addr: int, n_ctrl: int, io_addr: int, sample_rate: float,
                 bundle: str):
        if n_ctrl != n_controls():
            raise RuntimeError(f"the plugin in {bundle} was built for {n_ctrl} controls and this resculpt has "
                               f"{n_controls()}: run `resculpt plugin install` again")
        self.buf = _view(buf_addr, 2 * cap, ctypes.c_float, (2, cap))
        self.ctrl = _view(ctrl_addr, n_ctrl, ctypes.c_float)
        self.io = _view(io_addr, 4, ctypes.c_int32)
        # One view per block length, made here so run() slices nothing.
        self._blocks = [self.buf[:, :m] for m in range(cap + 1)]
        ports = param_ports()
        self._ids = [None if p.retired else p.spec.id for p in ports]
        self._bypass_c = C_PARAM0 + self._ids.index("bypass")
        self.ctrl[:] = [1.0, float(PRESETS.index(DEFAULT_PRESET))] + [p.spec.default for p in ports]
        self.seen = self.ctrl.copy()  # the control values the chain has taken up
        self._changed = np.zeros(n_ctrl, bool)
        self.chain = Chain.from_preset(DEFAULT_PRESET, sample_rate=int(sample_rate), channels=2, max_block=cap)
        self.preset = DEFAULT_PRESET
        self.user_preset: dict | None = None  # the JSON of the user preset playing (state_restore), or None
        self.target: dict | None = None       # the JSON of the target profile published, or None
        self.engine = "match-eq"              # the stage that follows it (host.TARGET_SLOTS)
        self.overrides: dict[str, float] = {}  # parameters set from controls since the preset was chosen
        self._fresh = True
        # A restored state's control values, (what the controls held before, the state's), published by
        # state_restore in one reference store and taken up by _apply; then, until the host's port buffers
        # hold the state's values, what they held before (see _apply).
        self._restored_seen: tuple[np.ndarray, np.ndarray] | None = None
        self._restored = False
        self._stale = self.ctrl.copy()
        self._moved = np.zeros(n_ctrl, bool)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._work, name="resculpt-lv2-worker", daemon=True)
        self._worker.start()
        self.io[1] = self.chain.latency_samples

    # -- host threads ---------------------------------------------------------------------------
    def activate(self) -> None:
        """Take up the controls' values at once (a preset is built here, synchronously) and start clean."""
        self._apply(sync=True)
        self.chain.reset()
        self._fresh = True
        self.io[1] = self.chain.latency_samples

    def close(self) -> None:
        self._jobs.put(None)

    def state_save(self) -> str:
        """Everything that defines the sound, as :func:`state_text`."""
        r = self._restored_seen
        return state_text(self.preset, self.chain.params.targets(), self.seen if r is None else r[1],
                          self.user_preset, self.target, self.engine)

    def state_restore(self, text: str) -> None:
        """Rebuild the sound :meth:`state_save` described (validated before anything changes)."""
        d = json.loads(text)
        if d.get("version") not in STATE_READS:
            raise ValueError(f"state version {d.get('version')!r}; this resculpt reads {STATE_READS}")
        user, target_d = d.get("user_preset"), d.get("target")
        p = validate(user, "the state's user preset") if user is not None else load_preset(d["preset"])
        target = Profile.from_dict(target_d, "the state's target") if target_d is not None else None
        engine = resolve_engine(d.get("engine", "match-eq"), p.layout, target)
        params = {k: v for k, v in d["params"].items() if k in self.chain.params}
        self.chain.switch(self._layout(p.layout, target_d, engine), {**p.full_params(), **params}, p.name)
        self.chain.set_target(target, engine=engine)
        self.preset, self.user_preset, self.target, self.engine = p.name, user, target_d, engine
        seen = d.get("seen")
        if seen is not None and len(seen) == self.seen.size:
            # The controls the state describes: a control port the host has not connected yet (lv2file
            # connects them after restore and activate) keeps this value, so it does not count as moved.
            self._restored_seen = (self.ctrl.copy(), np.asarray(seen, dtype=np.float32))
            self.ctrl[:] = seen
        self.overrides = {}
        # No reset here: Ardour also restores while running (loading an LV2 preset from its menu), and only
        # the audio thread may touch the graph's buffers. A restore before the first run() after activation
        # (a session being opened) is taken up at once by that run()'s reset, so the session starts as it
        # was saved; one while running crossfades like a preset change.

    # -- audio thread ---------------------------------------------------------------------------
    def run(self) -> None:
        """Process ``io[0]`` samples of ``buf`` in place; write the latency to ``io[1]``. An exception
        sets ``io[2]`` (the shell then passes audio through) and prints its traceback to stderr."""
        try:
            if self._fresh:
                self._apply(sync=True)
                self.chain.reset()  # jump to the values just set instead of ramping from the old ones
                self._fresh = False
            else:
                self._apply(sync=False)
            self.chain.process(self._blocks[self.io[0]])
            self.io[1] = self.chain.latency_samples
        except BaseException:
            self.io[2] = 1
            traceback.print_exc(file=sys.stderr)

    def _apply(self, sync: bool) -> None:
        """Take up the control values that changed since the last call (allocates only when one did).

        After a state restore, a control still at the value it had before the restore has not moved: the
        host has not yet written the restored values into its port buffers (Ardour activates before it
        copies a loaded LV2 preset's values there, and one run() can fall between a restore while running
        and the host setting the ports). That holds until every control shows the state's values."""
        r = self._restored_seen
        if r is not None:
            self._restored_seen = None
            np.copyto(self._stale, r[0])
            np.copyto(self.seen, r[1])
            self._restored = True
        np.not_equal(self.ctrl, self.seen, out=self._changed)
        if self._restored:
            np.not_equal(self.ctrl, self._stale, out=self._moved)
            np.logical_and(self._changed, self._moved, out=self._changed)
            self._restored = bool(np.not_equal(self.ctrl, self.seen, out=self._moved).any())
        if not self._changed.any():
            return
        changed = np.flatnonzero(self._changed)
        np.copyto(self.seen, self.ctrl, where=self._changed)
        k = round(float(self.ctrl[C_PRESET]))
        # USER_PRESET on the control names the user preset of the state: nothing to build.
        if C_PRESET in changed and k != USER_PRESET:
            k = min(max(k, 0), len(PRESETS) - 1)
            self.overrides = {}
            # The name the sound is going to: a state saved while the worker builds it restores this preset.
            self.preset = PRESETS[k]
            self.user_preset = None
            if sync:
                self._load(PRESETS[k])
            else:
                self._jobs.put(PRESETS[k])
        params = self.chain.params
        for c in changed:
            pid = self._ids[c - C_PARAM0] if c >= C_PARAM0 else None
            if pid is not None and pid != "bypass" and pid in params:
                self.overrides[pid] = params.set(pid, float(self.ctrl[c]), notify=False)
        if C_ENABLED in changed or self._bypass_c in changed:
            self.overrides["bypass"] = params.set("bypass", self._bypass(), notify=False)

    def _bypass(self) -> float:
        """The chain's bypass: on when the host disables the plugin or the bypass control is on."""
        return 1.0 if self.ctrl[C_ENABLED] < 0.5 or self.ctrl[self._bypass_c] >= 0.5 else 0.0

    @staticmethod
    def _layout(layout, target, engine: str):
        """``layout``, with the stage of ``engine`` appended when a target is set and it has none."""
        return layout.with_spectral(TARGET_SLOTS[engine]) if target is not None else layout

    # -- worker thread ----------------------------------------------------------------------------
    def _load(self, name: str) -> None:
        """Build preset ``name`` with the controls moved since it was chosen on top, and publish it."""
        p = load_preset(name)
        own = p.target_profile()  # a preset with a target of its own follows it, with the engine of the moment
        if own is not None:
            self.engine, self.target = resolve_engine("auto", p.layout, own), own.to_dict()
        self.chain.switch(self._layout(p.layout, self.target, self.engine), {**p.full_params(), **self.overrides,
                                                                "bypass": self._bypass()}, p.name)
        if own is not None:
            self.chain.set_target(own, engine=self.engine)
        # A control moved while the graph was built went into the table the preset values then overwrote.
        self.chain.params.set_many(dict(self.overrides), notify=False)
        self.preset = name

    def _work(self) -> None:
        while True:
            name = self._jobs.get()
            if name is None:
                return
            try:
                self._load(name)
            except Exception:  # a broken preset keeps the current sound; the host keeps running
                self.preset = self.chain.preset_name
                print(f"resculpt: preset {name!r} could not be loaded; keeping {self.preset!r}", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)


def create(buf_addr, cap, ctrl_addr, n_ctrl, io_addr, sample_rate, bundle) -> Bridge:
    """Called by the shell's instantiate() (see :class:`Bridge` for the arguments)."""
    return Bridge(buf_addr, cap, ctrl_addr, n_ctrl, io_addr, sample_rate, bundle)


__all__ = ["STATE_VERSION", "Bridge", "create", "state_text"]
