"""The learned content/speaker split of the band levels (the anon stage's ``anon.split_pct``), in NumPy.

The level-dynamics step (dynamics.py) normalises each band's long-term level and spread onto the average
speaker's; what is left of the speaker there is in how the 32 band levels move together over time. This net
re-renders that movement in the average speaker's voice, per channel and 5 ms frame, causally:

- input f (34,): each band's level as a z-score against the step's running mean and spread (clipped to
  +-``ZCLIP``; 0 until the step has heard speech), the speech flag, and the frame's mean level against the
  running mean's in units of 10 dB (clipped to +-4);
- encoder: tanh(Linear 34 -> 64), GRU 64, content code tanh(Linear 64 -> C), C = 6 numbers per frame, trained
  with noise and against a speaker adversary (gradient reversal) so that it carries the words' movement and
  little of the speaker;
- decoder: tanh(Linear [code, speech flag] -> 96) with the average speaker's embedding folded into its bias,
  GRU 96, Linear 96 -> 32: the z-scores the average speaker would have given that content.

Training, export (torch; it calls :func:`check` on what it writes) and the measurements are in
scripts/anon_learned_levels.py and docs/anonymization.md. The
weights (``anon_levels.npz`` beside this module, with their model card ``anon_levels.md``) are read once per
process by :func:`load` on the control thread (the stage's prepare), which checks their sha256 and runs the
file's reference input through :class:`SplitNet` against its reference output; :meth:`SplitNet.step`
allocates nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = Path(__file__).resolve().parent / "anon_levels.npz"
ZCLIP = 4.0
BANDS_IN = 32
N_IN = 34
N_OUT = 32
FORMAT = 1
# the order the weights are hashed in (and stored under)
NAMES = ("inp_w", "inp_b", "enc_wi", "enc_wh", "enc_bi", "enc_bh", "code_w", "code_b",
         "dinp_w", "dinp_b", "dec_wi", "dec_wh", "dec_bi", "dec_bh", "out_w", "out_b")


_VMIN = np.float32(1e-6)
_ZLO, _ZHI = np.float32(-ZCLIP), np.float32(ZCLIP)


def weights_sha256(w: dict) -> str:
    h = hashlib.sha256()
    for k in NAMES:
        h.update(np.ascontiguousarray(w[k], np.float32).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Weights:
    """Read-only float32 arrays by ``NAMES`` (torch's layouts: Linear (out, in), GRU (3H, in) in r, z, n
    order), the model's metadata and the weights' sha256."""

    w: dict
    meta: dict
    sha256: str


def _read(path: Path) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    with np.load(path) as z:
        w = {k: np.ascontiguousarray(z[k], np.float32) for k in NAMES}
        meta = json.loads(str(z["meta_json"]))
        return w, meta, np.asarray(z["ref_in"], np.float32), np.asarray(z["ref_out"], np.float32)


def check(path: Path) -> Weights:
    """The file's weights after its checks: format, sha256 of the weights, and the reference input
    (T, 34) through :class:`SplitNet` within 1e-4 of the reference output (T, 32) the exporter's torch gave.
    Raises ValueError naming what failed."""
    w, meta, ref_in, ref_out = _read(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')}, this code reads {FORMAT}")
    sha = weights_sha256(w)
    if sha != meta.get("weights_sha256"):
        raise ValueError(f"{path}: weights sha256 {sha[:12]} is not the recorded {str(meta.get('weights_sha256'))[:12]}")
    for a in w.values():
        a.setflags(write=False)
    wt = Weights(w, meta, sha)
    net = SplitNet(wt, 1)
    out = np.zeros(N_OUT, np.float32)
    err = 0.0
    for f, want in zip(ref_in, ref_out):
        net.step(f, 0, out)
        err = max(err, float(np.max(np.abs(out - want))))
    if not err <= 1e-4:
        raise ValueError(f"{path}: reference output off by {err:.2e} (> 1e-4)")
    return wt


@functools.lru_cache(maxsize=1)
def load() -> Weights:
    """The shipped weights (control thread; cached: every stage shares the same read-only arrays)."""
    return check(FILE)


def features(L: np.ndarray, m: np.ndarray, v: np.ndarray, valid: bool, speech: bool, out: np.ndarray,
             tmp: np.ndarray) -> None:
    """The net's input (34,) into ``out`` from the frame's band levels L (32,) dB, the running mean m (32,) dB
    and variance v (32,) dB^2; ``tmp`` (32,) float32 scratch. Allocates nothing."""
    if not valid:
        out.fill(0.0)
        out[32] = 1.0 if speech else 0.0
        return
    z = out[:32]
    np.maximum(v, _VMIN, out=tmp)
    np.sqrt(tmp, out=tmp)
    np.subtract(L, m, out=z)
    lvl = float(z.sum()) / (10.0 * BANDS_IN)      # mean(L) - mean(m), in units of 10 dB
    np.divide(z, tmp, out=z)
    np.minimum(z, _ZHI, out=z)                    # ufuncs: np.clip's wrapper costs more than the 32 values
    np.maximum(z, _ZLO, out=z)
    out[32] = 1.0 if speech else 0.0
    out[33] = min(max(lvl, -4.0), 4.0)


class SplitNet:
    """Per-channel state of the net; step(f (34,), ch, out (32,)) advances channel ch by one frame."""

    def __init__(self, weights: Weights, channels: int):
        w = weights.w
        self._w = w
        self.code = w["code_w"].shape[0]
        self._he = np.zeros((channels, w["enc_wh"].shape[1]), np.float32)
        self._hd = np.zeros((channels, w["dec_wh"].shape[1]), np.float32)
        # The decoder's input layer takes [code, speech flag] (the embedding is in its bias)
        self._x1 = np.zeros(w["inp_w"].shape[0], np.float32)
        self._c = np.zeros(self.code + 1, np.float32)
        self._x2 = np.zeros(w["dinp_w"].shape[0], np.float32)
        self._gi = np.zeros(3 * max(self._he.shape[1], self._hd.shape[1]), np.float32)
        self._gh = np.zeros_like(self._gi)
        self._t = np.zeros(max(self._he.shape[1], self._hd.shape[1]), np.float32)

    def reset(self) -> None:
        self._he.fill(0.0)
        self._hd.fill(0.0)

    def _gru(self, x: np.ndarray, h: np.ndarray, wi, wh, bi, bh) -> None:
        """h (H,) <- GRU(x, h) in place (torch's equations)."""
        H = h.shape[0]
        gi, gh, t = self._gi[: 3 * H], self._gh[: 3 * H], self._t[:H]
        np.dot(wi, x, out=gi)
        gi += bi
        np.dot(wh, h, out=gh)
        gh += bh
        rz = gi[: 2 * H]
        rz += gh[: 2 * H]                   # r, z pre-activations
        np.negative(rz, out=rz)
        np.exp(rz, out=rz)
        rz += np.float32(1.0)
        np.reciprocal(rz, out=rz)           # sigmoid
        n = gi[2 * H:]
        np.multiply(rz[:H], gh[2 * H:], out=t)
        n += t
        np.tanh(n, out=n)                   # n
        np.subtract(h, n, out=t)
        t *= rz[H: 2 * H]
        np.add(n, t, out=h)                 # h' = n + z (h - n)

    def step(self, f: np.ndarray, ch: int, out: np.ndarray) -> None:
        w = self._w
        np.dot(w["inp_w"], f, out=self._x1)
        self._x1 += w["inp_b"]
        np.tanh(self._x1, out=self._x1)
        he = self._he[ch]
        self._gru(self._x1, he, w["enc_wi"], w["enc_wh"], w["enc_bi"], w["enc_bh"])
        c = self._c[: self.code]
        np.dot(w["code_w"], he, out=c)
        c += w["code_b"]
        np.tanh(c, out=c)
        self._c[self.code] = f[32]
        np.dot(w["dinp_w"], self._c, out=self._x2)
        self._x2 += w["dinp_b"]
        np.tanh(self._x2, out=self._x2)
        hd = self._hd[ch]
        self._gru(self._x2, hd, w["dec_wi"], w["dec_wh"], w["dec_bi"], w["dec_bh"])
        np.dot(w["out_w"], hd, out=out)
        out += w["out_b"]

