"""Pitch-shift candidates on held-back real speech: pitch accuracy, formant preservation, naturalness,
cost and latency; the measurement behind the choice of the ``voice`` stage (docs/voice.md).

    nice .venv-bench/bin/python benchmarks/voice_shift.py           # writes benchmarks/results/voice_shift.md/.json
    .venv-bench/bin/python benchmarks/voice_shift.py --table   # rewrites the .md from the saved .json
    nice .venv-bench/bin/python benchmarks/voice_shift.py --only voice   # reruns one candidate's rows (and
                                                           # the original's), keeps the others from the .json
    nice .venv-bench/bin/python benchmarks/voice_shift.py --only voice --dither 1e-6   # the same on the clips
        # plus Gaussian noise of that RMS (-120 dBFS): how far the metrics move when nothing audible changes
        # (a phase vocoder's peaks and phases follow any change of the input); prints rows, writes nothing

Runs in the bench venv (``bash /work/mkbench.sh NAME``; DNSMOS from ``speechmos``, LPC from ``librosa``;
pyo installed there with ``.venv-bench/bin/python -m pip install --no-deps pyo``).

Material: the first ``N_UTT`` speakers of the speech ``val`` split (one utterance each, first ``SECONDS`` s),
loaded at 48 kHz (resampled from 16 kHz), mono.

Candidates, each streamed in 256-sample blocks at 48 kHz unless marked offline:
  * ``voice`` -- the shipped stage: peak-locked phase vocoder on the cepstrally whitened spectrum, in the
    ``default`` section (20 ms window, 5 ms hop);
  * ``voice-ll`` -- the same stage in the ``low-latency`` section (10 ms window);
  * ``pv-unlocked`` -- the same stage with every bin its own peak (plain per-bin phase vocoder, formants
    kept by the same envelope);
  * ``pyo-pv`` -- pyo 1.1's PVAnal (1024 points, 4 overlaps) / PVTranspose / PVSynth through a manual-mode
    Server (formants move with the pitch). pyo's ``Harmonizer`` outputs NaN on this build (manual and
    offline servers alike), so it is not measured;
  * ``pedalboard`` -- pedalboard's PitchShift (Rubber Band) on the whole file, offline: a quality reference
    only (streamed, it outputs silence);
  * ``voice-match`` -- the resculpt stage's voice match alone (AnonVoice's machinery: its F0 search, and for a
    speaker whose median F0 is under 150 Hz the harmonic shift of the voiced frames) given a relative goal of the
    shift: the F0 it tracks moved by the shift, the contour kept; ``voice-match-voc`` -- the same with every
    frame through the peak-locked shift (``AnonVoice.harmonic`` False), as before the harmonic shift;
    ``voice-match-ll`` / ``voice-match-ll-voc`` -- the same two in the ``low-latency`` section (10 ms window, 100 Hz
    bins: the harmonic shift takes voices under 300 Hz, and the F0 search finds none under 143 Hz).

Metrics (output aligned by the candidate's delay, measured by cross-correlation at shift 0, then resampled
to 16 kHz):
  * F0 error: YIN (``resculpt.dsp.features.Pitch``, fmin 40 Hz) on input and output, frames voiced in
    both: median |1200 log2(f_out / f_in) - 100 st| in cents, and the share of frames off by more than
    50 cents ("gross");
  * envelope distance: LPC (order 16, 25 ms Hamming frames on the 5 ms grid) envelopes of input and
    output, 300 Hz - 5 kHz, each frame's mean removed, RMS difference in dB, median over the voiced frames
    within 30 dB of the loudest (0 = formants exactly kept; a formant shift raises it by design);
  * DNSMOS P.835 OVRL (``speechmos``), mean over utterances: naturalness, where phasiness shows;
  * RTF: CPU time of the processing (process_time) / audio time at 48 kHz, mono, one thread;
  * latency: the candidate's algorithmic delay in ms.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import ctypes  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.signal import resample_poly  # noqa: E402

from resculpt.dsp.features import Pitch, analyze  # noqa: E402
from resculpt.dsp.params import ParamTable  # noqa: E402
from resculpt.dsp.stft import StreamingSTFT  # noqa: E402
from resculpt.dsp.voice.shift import VoiceShift  # noqa: E402
from resculpt.models import data  # noqa: E402
from resculpt.plugin_host import catalog  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "voice_shift"
SR = 48000
BLOCK = 256
N_UTT = 8
SECONDS = 6.0
SHIFTS = (-12.0, -5.0, 5.0, 12.0)
HOP16 = 80  # the 5 ms analysis grid at 16 kHz


# -- candidates: (x (n,) float32 at SR, semitones, formant ratio) -> (y (n,), seconds of processing) -----
def _stream(sec, x):
    """x (n,) through the prepared section ``sec`` in BLOCK-sample blocks, then its latency of zeros: (the output
    (n + latency,), the CPU seconds the blocks took)."""
    buf = np.zeros((1, x.size + sec.latency_samples), np.float32)
    buf[0, : x.size] = x
    t0 = time.process_time()
    for i in range(0, buf.shape[1], BLOCK):
        sec.process(buf[:, i : i + BLOCK])
    return buf[0], time.process_time() - t0


def _voice(cfg: str, lock: bool):
    def render(x, st, fr=1.0):
        table = ParamTable(catalog.all_param_specs())
        table.set_many({"voice.pitch_st": st, "voice.formant_ratio": fr}, notify=False)
        table.prepare(SR)
        table.snap()
        sec = StreamingSTFT(cfg, [VoiceShift(table, phase_lock=lock)], table=table)
        sec.prepare(SR, BLOCK, 1)
        return _stream(sec, x)
    return render


def _voice_match(harmonic: bool, cfg: str = "default"):
    """The resculpt stage's voice match alone (dsp/voice/match.py) given a relative goal of ``st`` semitones (and
    formant ratio ``fr``): a shift relative to the F0 it tracks, the contour kept; ``harmonic`` False: every frame
    through the peak-locked shift, as before the harmonic shift of low voices."""
    def render(x, st, fr=1.0):
        from resculpt.dsp.voice import anon
        from resculpt.dsp.voice.match import VoiceGoal, VoiceMatch

        keep = anon.AnonVoice.harmonic
        anon.AnonVoice.harmonic = harmonic
        try:
            vm = VoiceMatch()
            sec = StreamingSTFT(cfg, [vm])
            sec.prepare(SR, BLOCK, 1)
        finally:
            anon.AnonVoice.harmonic = keep
        vm.set_goal(VoiceGoal(f0_oct=st / 12.0, formant_oct=math.log2(fr) if fr != 1.0 else math.nan,
                              relative=True) if (st or fr != 1.0) else None, 1.0)
        return _stream(sec, x)
    return render


def _pyo_pv(x, st, fr=1.0):
    import pyo

    s = pyo.Server(sr=SR, nchnls=1, ichnls=1, buffersize=BLOCK, duplex=1, audio="manual").boot()
    try:
        inp = pyo.Input(0)
        pv = pyo.PVAnal(inp, size=1024, overlaps=4)
        out = pyo.PVSynth(pyo.PVTranspose(pv, transpo=2.0 ** (st / 12.0)))
        out.out()
        s.start()
        # pyo hands out its buffers' addresses as hex strings; MYFLT is float32 in this build.
        iv = np.ctypeslib.as_array(ctypes.cast(int(s.getInputAddr(), 16), ctypes.POINTER(ctypes.c_float)),
                                   shape=(BLOCK,))
        ov = np.ctypeslib.as_array(ctypes.cast(int(s.getOutputAddr(), 16), ctypes.POINTER(ctypes.c_float)),
                                   shape=(BLOCK,))
        n = -(-(x.size + 4096) // BLOCK) * BLOCK
        buf = np.zeros(n, np.float32)
        buf[: x.size] = x
        y = np.zeros(n, np.float32)
        t0 = time.process_time()
        for i in range(0, n, BLOCK):
            iv[:] = buf[i : i + BLOCK]
            s.process()
            y[i : i + BLOCK] = ov
        dt = time.process_time() - t0
        s.stop()
    finally:
        s.shutdown()
    return y, dt


def _pedalboard(x, st, fr=1.0):
    import pedalboard as pb

    t0 = time.process_time()
    y = pb.Pedalboard([pb.PitchShift(semitones=st)])(x[None].astype(np.float32), SR)[0]
    return y, time.process_time() - t0


CANDIDATES = {
    "voice": (_voice("default", True), "yes"),
    "voice-ll": (_voice("low-latency", True), "yes"),
    "pv-unlocked": (_voice("default", False), "yes"),
    "pyo-pv": (_pyo_pv, "yes (own FFT)"),
    "pedalboard": (_pedalboard, "no (offline only)"),
    "voice-match": (_voice_match(True), "yes"),
    "voice-match-voc": (_voice_match(False), "yes"),
    "voice-match-ll": (_voice_match(True, "low-latency"), "yes"),
    "voice-match-ll-voc": (_voice_match(False, "low-latency"), "yes"),
}


def delay_of(render, x) -> int:
    """The render's delay in samples: cross-correlation peak of its shift-0 output with the input."""
    y, _ = render(x, 0.0)
    n = x.size
    spec = np.fft.rfft(y[: 2 * n], 2 * n) * np.conj(np.fft.rfft(x, 2 * n))
    xc = np.fft.irfft(spec, 2 * n)[: SR // 10]
    return int(np.argmax(xc))


# -- metrics --------------------------------------------------------------------------------------------
def to16(y):
    return resample_poly(y, 1, 3).astype(np.float32)


def f0_track(y16):
    return analyze(Pitch(fmin_hz=40.0), y16[None], 16000)[:, 0]


def lpc_env_db(y16, n_frames):
    """(n_frames, bins 300 Hz - 5 kHz) LPC envelopes in dB, frame t ending at sample (t + 1) * HOP16."""
    import librosa

    win, nfft = 400, 512
    pad = np.concatenate([np.zeros(win, np.float32), y16])
    idx = (np.arange(n_frames) + 1) * HOP16 + np.arange(win)[:, None]  # (win, F): frame t ends at pad[(t + 1) * HOP16 + win]
    idx = np.minimum(idx, pad.size - 1)
    fr = (pad[idx].T * np.hamming(win)).astype(np.float64)
    fr += 1e-6 * np.random.default_rng(0).standard_normal(fr.shape)  # keeps LPC defined on silence
    a = librosa.lpc(fr, order=16, axis=-1)
    h = np.abs(np.fft.rfft(a, nfft, axis=-1))
    f = np.arange(nfft // 2 + 1) * 16000 / nfft
    band = (f >= 300) & (f <= 5000)
    env = -20 * np.log10(np.maximum(h[:, band], 1e-9))
    energy = 10 * np.log10(np.mean(fr**2, axis=-1) + 1e-12)
    return env - env.mean(axis=1, keepdims=True), energy


def metrics(x16, y16, st):
    fi, fo = f0_track(x16), f0_track(y16)
    n = min(fi.size, fo.size)
    fi, fo = fi[:n], fo[:n]
    both = np.isfinite(fi) & np.isfinite(fo)
    err = np.abs(1200 * np.log2(fo[both] / fi[both]) - 100 * st)
    ei, en = lpc_env_db(x16, n)
    eo, _ = lpc_env_db(y16, n)
    sel = np.isfinite(fi) & (en > en.max() - 30)
    dist = np.sqrt(np.mean((eo[sel] - ei[sel]) ** 2, axis=1))
    return {"f0_err_cents": float(np.median(err)) if err.size else float("nan"),
            "gross": float(np.mean(err > 50)) if err.size else float("nan"),
            "voiced_frames": int(both.sum()), "env_dist_db": float(np.median(dist))}


def dnsmos(y16) -> float:
    from speechmos import dnsmos as dm

    peak = float(np.abs(y16).max())
    y = y16 / peak * 0.9 if peak > 0.9 else y16
    return float(dm.run(y.astype(np.float64), 16000)["ovrl_mos"])


def main() -> int:
    if "--table" in sys.argv:
        rows = json.loads(OUT.with_suffix(".json").read_text())
        for r in rows:  # the labels as the candidates define them now
            if r["candidate"] in CANDIDATES:
                r["streams"] = CANDIDATES[r["candidate"]][1]
        write(rows, N_UTT)
        return 0
    if not data.have_data():
        print("shared data not found", file=sys.stderr)
        return 1
    items = data.select("speech", "val")[:N_UTT]
    clips = []
    for it in items:
        x, _ = data.load(it, sample_rate=SR)
        clips.append(np.asarray(x[: int(SECONDS * SR)], np.float32))
    dither = float(sys.argv[sys.argv.index("--dither") + 1]) if "--dither" in sys.argv else 0.0
    if dither:
        rng = np.random.default_rng(0)
        clips = [(c + dither * rng.standard_normal(c.size)).astype(np.float32) for c in clips]
    audio_s = sum(c.size for c in clips) / SR
    rows = [{"candidate": "original", "shift_st": 0.0, "formant_ratio": 1.0,
             "dnsmos_ovrl": float(np.mean([dnsmos(to16(c)) for c in clips]))}]
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    if only is not None and only not in CANDIDATES:
        print(f"--only: one of {', '.join(CANDIDATES)}", file=sys.stderr)
        return 2
    names = [only] if only else list(CANDIDATES)
    runs = [(name, st, 1.0) for name in names for st in SHIFTS]
    runs += [r for r in (("voice", 0.0, 1.0), ("voice", 0.0, 0.8), ("voice", 0.0, 1.25), ("voice", 5.0, 0.85),
                         ("voice", -5.0, 1.15)) if r[0] in names]
    delays = {name: delay_of(CANDIDATES[name][0], clips[0]) for name in names}
    for name, st, fr in runs:
        render, streams = CANDIDATES[name]
        ms, secs = [], 0.0
        for x in clips:
            y, dt = render(x, st, fr)
            secs += dt
            d = delays[name]
            y = y[d : d + x.size]
            x16, y16 = to16(x), to16(y)
            m = metrics(x16, y16, st)
            m["dnsmos_ovrl"] = dnsmos(y16)
            ms.append(m)
        row = {"candidate": name, "shift_st": st, "formant_ratio": fr, "streams": streams,
               "latency_ms": 1000.0 * delays[name] / SR, "rtf": secs / audio_s}
        for k in ("f0_err_cents", "gross", "env_dist_db", "dnsmos_ovrl"):
            row[k] = float(np.nanmean([m[k] for m in ms]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    if dither:
        return 0
    if only:  # the other candidates' rows as saved, in their places
        fresh = {(r["candidate"], r["shift_st"], r["formant_ratio"]): r for r in rows}
        saved = json.loads(OUT.with_suffix(".json").read_text())
        rows = [fresh.pop((r["candidate"], r["shift_st"], r["formant_ratio"]), r)
                if r["candidate"] in (only, "original") else r for r in saved] + list(fresh.values())
    write(rows, len(items))
    return 0


def write(rows, n_items: int) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# Pitch / formant shift candidates on held-back speech", "",
             f"Generated by `benchmarks/voice_shift.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
             f"{n_items} val speakers (LibriSpeech, one utterance each, first {SECONDS:.0f} s), 48 kHz, mono. "
             "F0 error: median |cents| off the requested shift (frames voiced in input and output); gross: share "
             "of frames > 50 cents off; envelope distance: LPC envelopes 300 Hz - 5 kHz, level-free, RMS dB "
             "(0 = formants kept); DNSMOS P.835 OVRL; RTF: CPU seconds per audio second, one thread, 48 kHz, on the shared 2-core box "
             "(upper bound); latency measured (cross-correlation).", "",
             "| candidate | pitch st | formant x | streams | latency ms | F0 err cents | gross | env dist dB "
             "| DNSMOS OVRL | RTF |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, fmt):
        return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)

    for r in rows:
        lines.append(f"| {r['candidate']} | {r['shift_st']:+.0f} | {r['formant_ratio']:.2f} | {r.get('streams', '')} "
                     f"| {f(r.get('latency_ms'), '.1f')} | {f(r.get('f0_err_cents'), '.1f')} "
                     f"| {f(r.get('gross'), '.0%')} | {f(r.get('env_dist_db'), '.2f')} "
                     f"| {f(r.get('dnsmos_ovrl'), '.2f')} | {f(r.get('rtf'), '.3f')} |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
