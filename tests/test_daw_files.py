"""DAW integration: generated files are current, and the message shapes hosts send move parameters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from osc_testlib import Client, running_server
from resculpt.plugin_host.daw import GENERATORS, generate, param_order

DOCS = Path(__file__).resolve().parent.parent / "docs" / "daw"


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_committed_daw_files_are_current(kind):
    """docs/daw/ holds exactly what `resculpt daw <kind> --out docs/daw` writes."""
    for name, text in generate(kind).items():
        p = DOCS / name
        assert p.is_file(), f"missing {p}: resculpt daw {kind} --out docs/daw"
        assert p.read_text() == text, f"{p} is stale: resculpt daw {kind} --out docs/daw"


def test_jsfx_sliders_mirror_the_parameter_table_in_order():
    """One slider per parameter, numbered in param_order(), with its range and default."""
    from resculpt.plugin_host.catalog import all_param_specs
    from resculpt.plugin_host.daw import order_specs

    text = generate("reaper")["resculpt_remote.jsfx"]
    sliders = re.findall(r"^slider(\d+):([-\d.e]+)<([-\d.e]+),([-\d.e]+),[^>]*>(\S+)", text, re.MULTILINE)
    specs = order_specs()
    assert len(sliders) == len(specs) == len(param_order()) == len(all_param_specs())
    for (k, d, lo, hi, label), s in zip(sliders, specs):
        assert label == s.id and float(lo) == s.min and float(hi) == s.max
        assert float(d) == pytest.approx(s.default, rel=1e-5)


@pytest.fixture
def served():
    with running_server("broadcast-voice", feed=False) as (chain, feeder, srv):
        c = Client(srv.port)
        yield chain, srv, c
        c.close()


def _sync(c):
    c.send("/resculpt/ping")
    assert c.wait_for("/resculpt/pong") is not None


def test_reaper_fx_param_value_moves_the_parameter(served):
    """REAPER's FX_NAME then FX_PARAM_VALUE (/track/1/fx/2/fxparam/k/value <0..1>, linear over the
    slider range) sets parameter k; another FX's parameters are ignored once names are known."""
    chain, srv, c = served
    order = param_order()
    k = order.index("comp.threshold_db") + 1
    c.send("/track/1/fx/1/name", "ReaEQ (Cockos)")
    c.send("/track/1/fx/2/name", "JS: Resculpt Remote (automation lanes that drive Resculpt over OSC)")
    c.send(f"/track/1/fx/2/fxparam/{k}/value", 0.25)
    _sync(c)
    assert chain.params.get("comp.threshold_db") == pytest.approx(-45.0, abs=1e-4)
    c.send(f"/track/1/fx/1/fxparam/{k}/value", 0.9)  # ReaEQ's parameter: not ours
    _sync(c)
    assert chain.params.get("comp.threshold_db") == pytest.approx(-45.0, abs=1e-4)
    kb = order.index("bypass") + 1
    c.send(f"/fx/2/fxparam/{kb}/value", 1.0)  # the device-FX form without a track
    srv._reaper.fx_names[("", "2")] = "JS: Resculpt Remote"
    c.send(f"/fx/2/fxparam/{kb}/value", 1.0)
    _sync(c)
    assert chain.params.get("bypass") == 1.0


def test_ardour_strip_plugin_parameter_moves_the_parameter(served):
    """Ardour's /strip/plugin/parameter <ssid> <piid> <k> <value> (native units) sets parameter k;
    an out-of-range index answers /resculpt/error."""
    chain, srv, c = served
    k = param_order().index("hpf.cutoff_hz") + 1
    c.send("/strip/plugin/parameter", 1, 1, k, 150.0)
    _sync(c)
    assert chain.params.get("hpf.cutoff_hz") == pytest.approx(150.0)
    c.send("/strip/plugin/parameter", 1, 1, 999, 1.0)
    assert "out of range" in c.wait_for("/resculpt/error")[0]


def test_touchosc_layout_addresses_all_work(served):
    """Every control of the TouchOSC-style layout sends a value the server accepts: faders 0..1 on
    /norm (and their /z touch messages), toggles and radios on the native address."""
    chain, srv, c = served
    layout = json.loads(generate("touchosc")["resculpt-touchosc.json"])
    n = 0
    for page in layout["pages"]:
        for ctl in page["controls"]:
            if ctl["type"] == "fader":
                c.send(ctl["address"] + "/z", 1)
                c.send(ctl["address"], 0.75)
            elif ctl["type"] in ("toggle", "radio"):
                c.send(ctl["address"], ctl["values"][-1])
            else:
                continue
            n += 1
    _sync(c)
    assert c.wait_for("/resculpt/error", 0.2) is None
    assert n == len(param_order())
    spec = chain.params.spec("comp.ratio")
    assert chain.params.get("comp.ratio") == pytest.approx(spec.from_normalized(0.75), rel=1e-5)


def test_daw_indices_are_append_only_and_cover_every_parameter():
    """plugin_host/daw/order.py lists every catalog parameter once; the generated files use exactly
    that order, so adding a parameter never shifts the indices saved in DAW projects (append it)."""
    from resculpt.plugin_host.catalog import all_param_specs
    from resculpt.plugin_host.daw.order import ORDER

    missing = [s.id for s in all_param_specs() if s.id not in ORDER]
    assert not missing, (
        f"append {missing} to plugin_host/daw/order.py (never insert: DAW indices would shift)"
    )
    assert len(set(ORDER)) == len(ORDER)
    assert param_order() == list(ORDER)


def test_a_retired_index_is_ignored_and_later_indices_keep_their_meaning(served, monkeypatch):
    """An id removed from the catalog keeps its index: messages to it do nothing, and the index of
    every parameter after it is unchanged."""
    from resculpt.plugin_host.daw import order

    chain, srv, c = served
    monkeypatch.setattr(order, "ORDER", ("old.gone_db",) + tuple(order.ORDER))
    text = generate("reaper")["resculpt_remote.jsfx"]
    assert "slider1:0<0,1,0>-old.gone_db (retired)" in text
    c.send("/strip/plugin/parameter", 1, 1, 1, 0.5)
    k = param_order().index("comp.ratio") + 1
    c.send("/strip/plugin/parameter", 1, 1, k, 5.0)
    _sync(c)
    assert c.wait_for("/resculpt/error", 0.1) is None
    assert chain.params.get("comp.ratio") == 5.0
