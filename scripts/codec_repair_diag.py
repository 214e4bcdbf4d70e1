"""Codec-repair diagnosis: where decoded low-bitrate speech loses PESQ-WB / DNSMOS against the uncompressed
original, and what each kind of repair gains or costs.

    RESCULPT_DATA=/work/shared/data .venv-bench/bin/python scripts/codec_repair_diag.py --files 3 --seconds 4 \
        --ckpt models/training/resculpt-gen1/ckpt.pt [--codecs opus:6 opus:8] [--out /tmp/codec_diag]

Val-split speech (``benchmarks/resculpt_model.py``'s clips, encoders and metrics, imported, not copied), decoded at
48 kHz, metrics at 16 kHz against the original. Systems (each on the decoded audio):

- ``identity``; the band loss of the codec (long-term band level of decoded minus original, dB) is printed too;
- ``eq:<target>``: the match-EQ (2 offline passes) toward ``bench`` (the benchmark's target: mean train speech
  moved by "clearer highs"), ``oracle`` (the fingerprint of the uncompressed original), ``own`` (the decoded
  input's own fingerprint), ``wideband`` (the shipped ``wideband-speech`` target);
- ``model:<target>[:nocopy|:gain]``: the torch generator of ``--ckpt`` at 16 kHz (``net.Resculptor``) toward the
  same targets; ``nocopy`` zeroes its copy-up (band replication) output, ``gain`` also its deep filter;
- ``oracle-G``: per frame and ERB band, the gain that puts the decoded band energy on the original's (the
  model's band-gain output form with perfect gains, +-30 dB); ``oracle-G+E``: that plus copy-up (the bins 4 kHz
  lower) scaled to the original's band energy where the codec removed the band (> 10 dB down): the model's
  whole output form with perfect outputs, an upper bound of what training toward the original can reach;
  ``oracle-G:cut`` / ``oracle-G:boost``: only its gains below / above 0 dB (a mask can only cut);
- ``codec-repair>oracle-cut<4k``: the ``codec-repair`` preset's output, then ``oracle-G:cut``'s gains below 4 kHz
  (the band Opus keeps at 6-8 kbps): what removing the codec's per-frame band errors under the edge would add to
  the repair; ``...:speech`` / ``...:pause`` only on the frames within / more than 25 dB under the clip's loudest
  decoded frame, ``...:static`` each band's mean cut over the clip (a fixed EQ);
- ``mask:DIR>codec-repair``: the mask stage with the bundle in DIR (``--mask-bundle``) on the decode, then the
  ``codec-repair`` preset; ``codec-repair>denoise-gentle|denoise-live``: the repair, then that shipped mask preset;
  ``original``: the uncompressed original itself (the most any repair can reach);
- ``preset:<name>``: a shipped preset through ``Chain.from_preset`` at 48 kHz (the learned mask presets, and
  ``codec-repair``; ``mask`` is the mask stage alone at its defaults);
- ``pf:lpc-mild|lpc``: an LPC formant postfilter ``A(z/g1)/A(z/g2)`` per 20 ms frame as a spectral gain (energy
  kept);
- ``preset:codec-repair+<id>=<v>,...``: the codec-repair preset with those parameters set (``--preset-setting``;
  e.g. ``codec.model=1`` for the learned envelope of the rebuilt band);
- ``codec:<slope>,<level>,<valley>``: the ``codec`` stage (dsp/codec_repair.py) alone at 48 kHz with
  ``codec.slope_db_oct``, ``codec.level_db``, ``codec.valley_db`` (``--codec-setting``; level -60: no band
  replication, the valley postfilter alone).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _bench():
    """benchmarks/resculpt_model.py (clips, targets, metrics, renders), loaded by path."""
    if "resculpt_model" not in sys.modules:
        spec = importlib.util.spec_from_file_location("resculpt_model", REPO / "benchmarks" / "resculpt_model.py")
        sys.modules["resculpt_model"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["resculpt_model"])
    return sys.modules["resculpt_model"]


B = _bench()
SR = B.SR  # 16 kHz metrics


# -- the torch generator at 16 kHz, with its outputs ablated -----------------------------------------------
class _Ablated:
    """Wraps a ResculptNet: the same (gain_db, copy, df) with copy and/or the deep filter's deltas zeroed."""

    def __new__(cls, net, copy: bool, df: bool):
        import torch

        class Wrap(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner, self.lookahead, self.df_order = net, net.lookahead, net.df_order

            def forward(self, feat, low, cond):
                g, e, d = self.inner(feat, low, cond)
                return g, e * float(copy), d * float(df)

        return Wrap()


def model16(net, x16: np.ndarray, target, variant: str = "full") -> np.ndarray:
    """The generator over ``x16`` (n,) at 16 kHz toward ``target`` (absolute Profile, timbre match)."""
    import torch
    from resculpt.models.resculpt import common as C
    from resculpt.models.resculpt.net import Resculptor

    core = net if variant == "full" else _Ablated(net, copy=False, df=(variant == "nocopy"))
    r = Resculptor(core, SR)
    cond = torch.tensor(C.cond_from_profile(target, SR, "timbre"))[None]
    with torch.no_grad():
        return r(torch.tensor(x16, dtype=torch.float32)[None], cond)[0].numpy()


# -- oracle output forms and DSP postfilters (16 kHz, the model's frame) -------------------------------------
def _fio():
    from resculpt.models.resculpt.net import FrameIO

    return FrameIO(SR)


PAUSE_DB = 25.0  # frames this far under the clip's loudest decoded frame count as pauses (``frames``)


def oracle_form(dec16: np.ndarray, ref16: np.ndarray, copy: bool, sign: str = "", below_hz: float = 0.0,
                frames: str = "") -> np.ndarray:
    """The model's output form with perfect per-frame outputs: band gains (and copy-up) that put each ERB band's
    energy of the decoded frame on the original's; ``sign`` "cut" keeps only the gains below 0 dB (what a mask
    can do), "boost" only those above; ``below_hz`` > 0: bins from there up keep their level (the gains act on
    the band the codec kept). ``frames`` (without copy-up): "speech" / "pause" applies the gains only on frames
    within / more than PAUSE_DB under the clip's loudest decoded frame, "static" replaces them by each band's
    mean gain in dB over the clip (what a fixed EQ could do)."""
    import torch
    from resculpt.models.resculpt import common as C

    f = _fio()
    X = f.stft(torch.tensor(dec16)[None])
    R = f.stft(torch.tensor(ref16)[None])
    pw = lambda S: (S.real ** 2 + S.imag ** 2) @ f.ana.t() + 1e-10  # (B, T, 32)
    pd, pr = pw(X), pw(R)
    gmax = 10 ** (C.GAIN_MAX_DB / 10)
    g = torch.clamp(pr / pd, 1 / gmax, gmax)
    if sign:
        g = torch.clamp(g, max=1.0) if sign == "cut" else torch.clamp(g, min=1.0)
    S = f.shift
    E = torch.zeros_like(g)
    if copy:
        Xs = torch.nn.functional.pad(X[..., : f.nb - S], (S, 0))
        ps = pw(Xs)
        cut = (pd < pr * 0.1) & (f.valid > 0)  # the codec removed this band in this frame (> 10 dB down)
        E = torch.where(cut, torch.sqrt(torch.clamp(pr / ps, 0, gmax)), torch.zeros_like(g))
        g = torch.where(cut, torch.ones_like(g), g)
        Y = torch.sqrt(g) @ f.syn.t() * X + E @ f.syn.t() * Xs
    else:
        if frames in ("speech", "pause"):
            lvl = 10 * torch.log10(pd.sum(-1, keepdim=True))  # (B, T, 1) decoded frame level, dB
            on = (lvl >= lvl.max() - PAUSE_DB) if frames == "speech" else (lvl < lvl.max() - PAUSE_DB)
            g = torch.where(on, g, torch.ones_like(g))
        elif frames == "static":
            g = 10 ** (torch.log10(g).mean(1, keepdim=True)) * torch.ones_like(g)
        elif frames:
            raise ValueError(f"frames: {frames!r}")
        gb = torch.sqrt(g) @ f.syn.t()
        if below_hz > 0.0:
            gb[..., int(math.ceil(below_hz * 2 * (f.nb - 1) / SR)) :] = 1.0
        Y = gb * X
    return f.istft(Y, dec16.size)[0].numpy()


def _lpc(frame: np.ndarray, order: int) -> np.ndarray:
    r = np.correlate(frame, frame, "full")[frame.size - 1 : frame.size + order]
    r[0] *= 1.0001
    r[0] += 1e-9
    a = np.zeros(order + 1)
    a[0], e = 1.0, r[0]
    for i in range(1, order + 1):
        k = -(r[i] + np.dot(a[1:i], r[i - 1 : 0 : -1])) / e
        a[1 : i + 1] = a[1 : i + 1] + k * a[i - 1 :: -1][: i]
        e *= 1 - k * k
    return a


def postfilter(dec16: np.ndarray, kind: str) -> np.ndarray:
    """LPC formant postfilter (``lpc``: g1 0.5, g2 0.8; ``lpc-mild``: 0.7, 0.8) as a spectral gain on the model's
    frame, each frame's energy kept."""
    import torch

    f = _fio()
    X = f.stft(torch.tensor(dec16)[None])[0].numpy()
    P = np.abs(X) ** 2
    nb = X.shape[1]
    g1, g2 = (0.5, 0.8) if kind == "lpc" else (0.7, 0.8)
    xw = np.pad(dec16, (f.n_fft, f.n_fft))
    w = np.hanning(f.n_fft)
    G = np.ones_like(P)
    for t in range(X.shape[0]):
        seg = xw[t * f.hop + f.n_fft // 2 : t * f.hop + f.n_fft // 2 + f.n_fft] * w
        if np.sum(seg ** 2) < 1e-9:
            continue
        a = _lpc(seg, 16)
        k = np.arange(17)
        num = np.abs(np.fft.rfft(a * g1 ** k, f.n_fft)) ** 2
        den = np.abs(np.fft.rfft(a * g2 ** k, f.n_fft)) ** 2
        G[t] = num / np.maximum(den, 1e-12)
    G *= (P.sum(1, keepdims=True) + 1e-12) / ((G * P).sum(1, keepdims=True) + 1e-12)
    Y = X * np.sqrt(G)[:, :nb]
    return f.istft(torch.tensor(Y)[None], dec16.size)[0].numpy()


def preset48(x48: np.ndarray, name: str, params: dict | None = None) -> np.ndarray:
    """A shipped preset, or (``mask``, ``codec``) that stage alone with ``params``, over ``x48`` at 48 kHz."""
    from resculpt.plugin_host.chain import Chain
    from resculpt.plugin_host.layout import Layout

    ch = (Chain(Layout(spectral=(name,)), 48000, 1, 4096) if name in ("mask", "codec")
          else Chain.from_preset(name, 48000, 1, 4096))
    for k, v in (params or {}).items():
        ch.params[k] = v
    return ch(np.asarray(x48, np.float32)[None])[0]


def mask48(x48: np.ndarray, bundle: str) -> np.ndarray:
    """The mask stage at its defaults with the bundle in folder ``bundle``, over ``x48`` at 48 kHz (the ``default``
    STFT; its latency trimmed)."""
    from resculpt.dsp.params import ParamTable
    from resculpt.dsp.stft import StreamingSTFT
    from resculpt.models.mask import stage as mask_stage

    table = ParamTable(mask_stage.PARAMS)
    sec = StreamingSTFT("default", [mask_stage.MaskStage(table, bundle)], table=table)
    sec.prepare(48000, 4800, 1)
    lat = sec.latency_samples
    y = np.concatenate([np.asarray(x48, np.float32), np.zeros(lat, np.float32)])[None].copy()
    for i in range(0, y.shape[1], 4800):
        sec.process(y[:, i : i + 4800])  # in place
    return y[0, lat:]


def band_loss_db(dec: np.ndarray, ref: np.ndarray, sr: int) -> np.ndarray:
    from resculpt.dsp.profile import long_term_envelope

    return long_term_envelope(dec, sr) - long_term_envelope(ref, sr)


def _systems(a, net, dec, dec16, ref16, tg) -> dict:
    """{name: () -> (n,) float32 output at 16 kHz} for one decoded clip (``dec`` at 48 kHz, ``dec16``), its
    original ``ref16`` and the targets ``tg``."""
    sr = 48000
    systems = {"identity": lambda: dec16}
    for k, t in tg.items():
        systems[f"eq:{k}"] = lambda t=t: B.rs(B.match_eq_render(dec, sr, t), sr, SR)
    if net is not None:
        for k in ("bench", "oracle", "own", "wideband"):
            systems[f"model:{k}"] = lambda k=k: model16(net, dec16, tg[k])
        for v in ("nocopy", "gain"):
            systems[f"model:oracle:{v}"] = lambda v=v: model16(net, dec16, tg["oracle"], v)
    systems["oracle-G"] = lambda: oracle_form(dec16, ref16, False)
    systems["oracle-G+E"] = lambda: oracle_form(dec16, ref16, True)
    systems["oracle-G:cut"] = lambda: oracle_form(dec16, ref16, False, "cut")
    systems["oracle-G:boost"] = lambda: oracle_form(dec16, ref16, False, "boost")
    for cs in a.codec_settings:
        sl, lv, vd = (float(v) for v in cs.split(","))
        systems[f"codec:{cs}"] = lambda sl=sl, lv=lv, vd=vd: B.rs(preset48(dec, "codec", {
            "codec.slope_db_oct": sl, "codec.level_db": lv, "codec.valley_db": vd,
            "codec.max_hz": 8000.0 if lv > -60 else 0.0}), sr, SR)
    for p in ("denoise-gentle", "mask", "codec-repair"):
        systems[f"preset:{p}"] = lambda p=p: B.rs(preset48(dec, p), sr, SR)
    for ps in a.preset_settings or ():
        kv = {k: float(v) for k, v in (item.split("=") for item in ps.split(","))}
        systems[f"preset:codec-repair+{ps}"] = lambda kv=kv: B.rs(preset48(dec, "codec-repair", kv), sr, SR)
    for k in ("lpc-mild", "lpc"):
        systems[f"pf:{k}"] = lambda k=k: postfilter(dec16, k)
    # What a per-frame band cut below the codec's edge (4 kHz at Opus 6-8 kbps) would add on top of the repair: the
    # oracle-G:cut gains toward the original, on the codec-repair preset's output, band above 4 kHz left as rebuilt.
    rep16 = {}

    def repaired16():  # the codec-repair preset's output at 16 kHz, rendered once for the systems built on it
        if "y" not in rep16:
            rep16["y"] = np.asarray(B.rs(preset48(dec, "codec-repair"), sr, SR), np.float32)
        return rep16["y"]

    systems["codec-repair>oracle-cut<4k"] = lambda: oracle_form(repaired16(), ref16, False, "cut", 4000.0)
    for fr in ("speech", "pause", "static"):  # where in time the oracle's cuts pay
        systems[f"codec-repair>oracle-cut<4k:{fr}"] = lambda fr=fr: oracle_form(
            repaired16(), ref16, False, "cut", 4000.0, fr)
    for mb in a.mask_bundles or ():  # a mask bundle (e.g. one fine-tuned on codec pairs) on the decode, then the repair
        systems[f"mask:{mb}>codec-repair"] = lambda mb=mb: B.rs(preset48(mask48(dec, mb), "codec-repair"), sr, SR)
    for p in ("denoise-gentle", "denoise-live"):  # the learned denoising mask on the repair's output
        systems[f"codec-repair>{p}"] = lambda p=p: B.rs(preset48(preset48(dec, "codec-repair"), p), sr, SR)
    systems["original"] = lambda: ref16
    return systems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/codec_repair_diag.py")
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--skip-files", type=int, default=0, help="start after this many val files (a fresh set)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--codecs", nargs="*", default=["opus:6", "opus:8"])
    ap.add_argument("--ckpt", default=str(REPO / "models" / "training" / "resculpt-gen1" / "ckpt.pt"))
    ap.add_argument("--systems", nargs="*", default=None, help="only these systems (names as in the table)")
    ap.add_argument("--codec-setting", action="append", dest="codec_settings", metavar="SLOPE,LEVEL,VALLEY",
                    help="a codec stage system: slope_db_oct,level_db,valley_db (level -60: no replication); "
                         "repeat as --codec-setting=-24,-12,6 (the '=' keeps the leading minus a value)")
    ap.add_argument("--preset-setting", action="append", dest="preset_settings", metavar="ID=V[,ID=V...]",
                    help="a system: the codec-repair preset with these parameters set (e.g. codec.model=1); "
                         "named preset:codec-repair+ID=V,...")
    ap.add_argument("--mask-bundle", action="append", dest="mask_bundles", metavar="DIR",
                    help="a system: the mask stage with the bundle in DIR on the decode, then the codec-repair preset; "
                         "named mask:DIR>codec-repair")
    ap.add_argument("--out", default="/tmp/codec_diag")
    a = ap.parse_args(argv)
    a.codec_settings = a.codec_settings or ["-12,0,0", "-24,-12,0", "-24,-9,0", "-30,-12,0", "-24,-60,6",
                                            "-24,-12,6", "-24,-12,9"]
    from resculpt.dsp.bands import BandMap
    from resculpt.dsp.profile import fingerprint
    from resculpt.models.resculpt.degrade import codec_roundtrip
    from resculpt.models.resculpt.export import load_net
    from resculpt.plugin_host.targets import resolve_target

    sr = 48000
    t0 = time.time()
    ns = argparse.Namespace(files=a.files + a.skip_files, seconds=a.seconds, categories=["speech"],
                            codec_target="train-speech", codec_describe="clearer highs", codec_ref_files=2)
    clips = B.load_clips(ns, sr)[a.skip_files :]
    bench_t, wide_t = B.codec_target(ns, sr), resolve_target("wideband-speech")
    net = load_net(Path(a.ckpt))[0] if a.ckpt else None
    recs, losses = [], {}
    for name, _, x in clips:
        ref16 = B.rs(x, sr, SR)
        oracle_t = fingerprint(x, sr, "oracle")
        for spec in a.codecs:
            codec, kbps = spec.split(":")
            dec, _ = codec_roundtrip(x, sr, codec, float(kbps))
            dec16 = B.rs(dec, sr, SR)
            tg = {"bench": bench_t, "oracle": oracle_t, "own": fingerprint(dec, sr, "own"), "wideband": wide_t}
            losses.setdefault(spec, []).append(band_loss_db(dec, x, sr))
            systems = _systems(a, net, dec, dec16, ref16, tg)
            for sname, fn in systems.items():
                if a.systems and sname not in a.systems and sname != "identity":
                    continue
                y16 = np.asarray(fn(), np.float32)
                m = B.metrics(B.align(y16, ref16)[0], ref16)
                recs.append({"file": name, "codec": spec, "system": sname, **m})
                print(f"[{time.time() - t0:5.0f} s] {name[:20]:20s} {spec:7s} {sname:22s} PESQ {m['pesq_wb']:.3f} "
                      f"STOI {m['stoi']:.3f} OVRL {m['dnsmos_ovrl']:.2f}", flush=True)
    # table: mean per codec and system, deltas against identity
    L = [(f"Command: `scripts/codec_repair_diag.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
          f"({len(clips)} val files x {a.seconds:g} s, {time.time() - t0:.0f} s)"), "",
         "| codec | system | PESQ-WB | ΔPESQ | STOI | DNSMOS OVRL | ΔOVRL |", "|---|---|---|---|---|---|---|"]
    for spec in a.codecs:
        base = {k: np.mean([r[k] for r in recs if r["codec"] == spec and r["system"] == "identity"])
                for k in ("pesq_wb", "dnsmos_ovrl")}
        for sname in dict.fromkeys(r["system"] for r in recs):
            sub = [r for r in recs if r["codec"] == spec and r["system"] == sname]
            if not sub:
                continue
            m = {k: float(np.nanmean([r[k] for r in sub])) for k in ("pesq_wb", "stoi", "dnsmos_ovrl")}
            L.append(f"| {spec} | {sname} | {m['pesq_wb']:.3f} | {m['pesq_wb'] - base['pesq_wb']:+.3f} | "
                     f"{m['stoi']:.3f} | {m['dnsmos_ovrl']:.2f} | {m['dnsmos_ovrl'] - base['dnsmos_ovrl']:+.2f} |")
    bm = BandMap(sr, 960, 32)
    L += ["", "Codec band loss (long-term band level, decoded minus original, dB; mean over files):", "",
          "| codec | " + " | ".join(f"{c:.0f}" for c in bm.centers_hz[::3]) + " |",
          "|---|" + "---|" * len(bm.centers_hz[::3])]
    for spec, v in losses.items():
        L.append(f"| {spec} | " + " | ".join(f"{d:+.1f}" for d in np.nanmean(v, 0)[::3]) + " |")
    md = "\n".join(L) + "\n"
    Path(a.out + ".md").write_text(md)
    Path(a.out + ".json").write_text(json.dumps(recs, indent=1, default=float))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
