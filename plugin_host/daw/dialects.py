"""DAW OSC dialects: what REAPER's and Ardour's control surfaces send, translated to a parameter
id and value. Indices are 1-based in :func:`~resculpt.plugin_host.daw.param_order` (the order of
the generated JSFX sliders and Ardour controls)."""

from __future__ import annotations

import re

from resculpt.plugin_host.osc_protocol import BadMessage, is_number, number_arg, string_args

from . import param_order

REAPER_TRAILING = 3  # REAPER appends its own JSFX parameters (bypass, wet, delta) after ours


class ReaperSurface:
    """REAPER's OSC surface: FX_NAME ``s/track/@/fx/@/name``, FX_PARAM_VALUE ``n/track/@/fx/@/fxparam/@/value``.

    The value is normalised linearly over the slider's range. Once REAPER has reported FX names,
    only the FX whose name contains "resculpt" is followed (``fx_names``: (track, fx) -> name).
    """

    PATTERN = re.compile(r"^(?:/track/(\d+))?/fx/(\d+)/(?:fxparam/(\d+)/value|name)$")

    def __init__(self):
        self.fx_names: dict[tuple[str, str], str] = {}

    def translate(self, address: str, args, params) -> tuple[str, float] | None:
        """(parameter id, native value) to set on ``params`` (a ParamTable), or None when the
        message sets nothing (a name report, another plugin, REAPER's own trailing parameters, a
        retired index); BadMessage for a malformed one."""
        m = self.PATTERN.match(address)
        if not m:
            raise BadMessage(f"unknown address {address}")
        track, fx, k = m.group(1), m.group(2), m.group(3)
        key = (track or "", fx)
        if k is None:
            (name,) = string_args(args, address, "FX name") if args else ("",)
            self.fx_names[key] = name
            return None
        if self.fx_names and "resculpt" not in self.fx_names.get(key, "").lower():
            return None
        order = param_order()
        k = int(k)
        if not 1 <= k <= len(order):
            if k <= len(order) + REAPER_TRAILING:
                return None
            raise BadMessage(f"{address}: parameter index {k} out of range 1..{len(order)}")
        x = number_arg(args, address, "a normalised value 0..1")
        if x < -1e-6 or x > 1 + 1e-6:
            raise BadMessage(f"{address}: {x:g} is outside 0..1")
        if order[k - 1] not in params:
            return None  # a retired index (see daw/order.py)
        spec = params.spec(order[k - 1])
        return spec.id, spec.clamp(spec.min + min(max(x, 0.0), 1.0) * (spec.max - spec.min))


def ardour_parameter(address: str, args, params) -> tuple[str, float] | None:
    """Ardour's ``/strip/plugin/parameter <ssid> <piid> <param> <value>`` (param 1-based, value in
    native units): (parameter id, the value as sent) for the server to validate and set, or None for
    a retired index; BadMessage for a malformed message."""
    if len(args) != 4 or not all(is_number(a) for a in args):
        raise BadMessage(f"{address}: expected ssid, piid, param (int) and value (float), got {args!r}")
    order = param_order()
    k = int(args[2])
    if not 1 <= k <= len(order):
        raise BadMessage(f"{address}: parameter {k} out of range 1..{len(order)}")
    if order[k - 1] not in params:
        return None  # a retired index (see daw/order.py)
    return order[k - 1], args[3]
