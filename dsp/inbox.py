"""Non-scalar control state handed to the audio thread: a typed value published by one reference store.

Scalar controls go through the parameter table (:mod:`resculpt.dsp.params`). A stage that also needs a
value that is not one float (the match-EQ's target envelope, the mask-transfer sidechain's envelopes; a
profile vector or a pseudo-speaker) declares its type as ``inbox_type`` and reads ``self.inbox.value``.

Threads: a control thread builds the value (all analysis and allocation happen there), makes it
read-only and calls :meth:`Inbox.publish`, which is one attribute store: atomic under the GIL, so the
audio thread sees the old value or the new one, never a mix. The audio thread reads ``inbox.value``
once per frame and notices a new value by identity (``is not`` what it saw last). A published value is
never mutated afterwards, so a frame that still holds the old one finishes with consistent data.

The host owns one inbox per slot and hands the same one to every stage it builds for that slot, so a
published value survives preset and layout changes; a stage built on its own (tests, tools) makes its
own.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    """One value of type ``kind`` (or None: nothing published), written by control threads.

    Attributes:
        kind: the accepted type.
        value: the published value (read by the audio thread), or None.
    """

    __slots__ = ("kind", "value")

    def __init__(self, kind: type[T]):
        self.kind = kind
        self.value: T | None = None

    def publish(self, value: T | None) -> None:
        """Control thread: replace the value (None clears it). Raises TypeError for another type."""
        if value is not None and not isinstance(value, self.kind):
            raise TypeError(f"this inbox takes a {self.kind.__name__}, got {type(value).__name__}")
        self.value = value
