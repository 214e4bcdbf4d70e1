"""Write the fixture of the resculpting generator's first conditioning layout (124 floats, no relative-target
slots): small seeded nets with every weight random (so FiLM, heads and the identity gate all act), their
state dicts and their outputs on the export's reference inputs.

    .venv/bin/python scripts/resculpt_v1_fixture.py --out tests/data/resculpt_v1_fixture.npz

It was run at commit f5da920 (the last code with that layout); ``tests/test_resculpt_net.py`` loads the stored
state dicts into the current ``ResculptNet`` and checks that, with the relative-target flag at 0, the outputs
are those the old code computed. Run at a later commit it writes the current code's outputs instead, which
is why the file is committed, not regenerated.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

NETS = {"plain": None, "gated": (2.0, 1.0, 25.0, 120.0)}
KW = {"ch": (4, 6, 8), "hidden": 16, "lookahead": 1}
T = 64


def main(argv=None) -> int:
    from resculpt.models.resculpt import common as C
    from resculpt.models.resculpt.export import reference_inputs
    from resculpt.models.resculpt.net import ResculptNet

    ap = argparse.ArgumentParser(prog="scripts/resculpt_v1_fixture.py")
    ap.add_argument("--out", default="tests/data/resculpt_v1_fixture.npz")
    a = ap.parse_args(argv)
    out = {}
    for name, gate in NETS.items():
        torch.manual_seed(3)
        net = ResculptNet(**KW, gate=gate)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p) * 0.05)
        net.eval()
        feat, low, cond = reference_inputs(net, 16000, T)
        # a second target near the input's own shape: the gate's threshold region
        near = cond.copy()
        near[2 * C.N_DIMS : 2 * C.N_DIMS + C.N_BANDS] *= 0.05
        for p_name, v in net.state_dict().items():
            out[f"{name}/sd/{p_name}"] = v.numpy()
        for c_name, c in (("far", cond), ("near", near)):
            with torch.no_grad():
                g, e, d = net(torch.tensor(feat)[None], torch.tensor(low)[None], torch.tensor(c)[None])
            out[f"{name}/{c_name}/cond"] = c
            out[f"{name}/{c_name}/gain_db"] = g[0].numpy()
            out[f"{name}/{c_name}/copy"] = e[0].numpy()
            out[f"{name}/{c_name}/df"] = d[0].numpy()
        out["feat"], out["low"] = feat, low
    np.savez_compressed(a.out, **out)
    print(f"wrote {a.out} ({len(out)} arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
