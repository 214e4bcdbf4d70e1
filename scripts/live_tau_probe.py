"""Probe: the resculpting model's live running fingerprint with another time constant than the bundle's.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/live_tau_probe.py --tau 10 -- \
        --bundle models/resculpt/bundle --files 6 --seconds 8 --kinds identity reference --live --skip codec speed \
        --out benchmarks/results/resculpt_live_tau10

The graph's running fingerprint is an exponential mean with the bundle's time constant (``common.RUN_TAU_S``,
3 s), baked into the exported graph. After every call the stage hands the graph's new state (``run_num``,
``run_den``) to the next one; multiplying it by (a_probe / a)^n (a = exp(-hop / tau), n the frames of the call)
turns the decay the next call applies into the probe's, so the estimate becomes an exponential mean with time
constant ``--tau`` (the frames of one call are weighted with the bundle's decay among themselves: 10 ms blocks,
2 frames). Everything after ``--`` is ``benchmarks/resculpt_model.py``'s command line, run with the patched stage;
the result files get a first line naming this probe. A probe, not the product: the stage's state handling is
patched from outside.
"""

from __future__ import annotations

import argparse
import math
import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    ap = argparse.ArgumentParser(prog="scripts/live_tau_probe.py")
    ap.add_argument("--tau", type=float, required=True, help="the probe's time constant, seconds")
    a = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)

    from resculpt.models.resculpt import common as C
    from resculpt.models.resculpt import stage as S

    r = math.exp(-C.HOP_MS / (1000.0 * a.tau)) / math.exp(-C.HOP_MS / (1000.0 * C.RUN_TAU_S))
    call = S.ResculptStage._call

    def _call(self, n: int) -> None:
        call(self, n)
        if not self._hold:  # an offline render's held fingerprint is left alone
            st = self._states[self._phase]  # the state the next call reads
            st["run_num"] *= r ** n
            st["run_den"] *= r ** n

    S.ResculptStage._call = _call
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.argv = ["benchmarks/resculpt_model.py", *rest]
    try:
        runpy.run_path(str(REPO / "benchmarks" / "resculpt_model.py"), run_name="__main__")
    except SystemExit as e:
        if e.code:
            raise
    out = rest[rest.index("--out") + 1] if "--out" in rest else None
    if out:
        p = Path(out + ".md")
        p.write_text(f"Run through `scripts/live_tau_probe.py --tau {a.tau:g} -- {' '.join(rest)}`: the live running "
                     f"fingerprint's time constant {a.tau:g} s instead of the bundle's {C.RUN_TAU_S:g} s.\n\n"
                     + p.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
