"""An inaudible-by-design, keyed band-energy watermark ("patchwork" on time-frequency tiles) and its detector.

Embedding (:class:`WatermarkStage`, a spectral stage in the shared STFT): the 300-5100 Hz range is cut
into ``N_BANDS`` = 24 bands of 200 Hz and time into tiles of ``TILE_FRAMES`` hops (8 x 5 ms = 40 ms); every
tile of every band gets a gain of 10^(±STRENGTH_DB/20), the sign from a fixed pseudo-random pattern of
``PERIOD_TILES`` tiles (2 s) that repeats, keyed by ``KEY``. Band edges are in Hz and the hop in ms, so
the mark is the same at every sample rate and survives resampling. The gain is real and non-negative
per bin (no phase change), with one-bin ramps between bands.

Detection (:func:`detect`, offline, any rate): log band energies of the suspect audio every 5 ms; per
trial alignment (8 sub-tile phases x ``PERIOD_TILES`` pattern shifts = 400 trials, which covers any
shift or crop of the file), tile means with the host's slow envelope removed (second differences in
time, then across bands), folded onto the pattern period and correlated with the pattern. The score of a
trial is that correlation divided by its standard deviation under "no mark" (the pattern's signs are
independent of the audio, so given the audio the correlation has variance sum(U^2)): about N(0, 1) for
unmarked audio. The reported score is the largest over the 400 trials; ``THRESHOLD`` = 5.5 bounds the
false-positive rate per file by 400 * P(N(0,1) > 5.5) = 7.6e-6 (Bonferroni); the measured distribution
on unmarked speech is in docs/anonymization.md (benchmarks/watermark.py).

What it is not: a secure mark. The key is public (this file), so anyone can detect it and anyone who
reads this can estimate and invert the ±STRENGTH_DB pattern; time-stretching, pitch-shifting or
re-recording through a room degrades or removes it. It labels honest output, it does not resist an attacker.
"""

from __future__ import annotations

import numpy as np

from .stft import SpectralStage

KEY = 0x5265736375          # "Resculpt" in ASCII, the pattern's seed
LOW_HZ, BAND_HZ, N_BANDS = 300.0, 200.0, 24
TILE_FRAMES = 8             # hops per tile (40 ms at the 5 ms hop)
PERIOD_TILES = 50           # tiles per pattern period (2 s)
STRENGTH_DB = 1.0           # gain of a tile: +STRENGTH_DB or -STRENGTH_DB
HOP_MS = 5.0                # the shared STFT's hop (both configs)
THRESHOLD = 5.5

def pattern() -> np.ndarray:
    """(PERIOD_TILES, N_BANDS) float64 of ±1: the keyed tile signs."""
    rng = np.random.default_rng(KEY)
    return rng.choice(np.array([-1.0, 1.0]), size=(PERIOD_TILES, N_BANDS))


def band_weights(freqs_hz: np.ndarray) -> np.ndarray:
    """(N_BANDS, n_bins) float64: each band's weight per bin, 1 inside, 0 outside, a linear ramp one bin
    spacing wide across each edge (adjacent bands' weights sum to 1 there)."""
    f = np.asarray(freqs_hz, np.float64)
    df = f[1] - f[0] if f.size > 1 else 1.0
    w = np.zeros((N_BANDS, f.size))
    for b in range(N_BANDS):
        lo, hi = LOW_HZ + b * BAND_HZ, LOW_HZ + (b + 1) * BAND_HZ
        w[b] = np.clip((f - lo) / df + 0.5, 0.0, 1.0) * np.clip((hi - f) / df + 0.5, 0.0, 1.0)
    return w


class WatermarkStage(SpectralStage):
    """process_frame(spec): spec (channels, n_bins) complex64 times the current tile's gain row.

    State: the frame counter (which tile of the pattern the next frame belongs to). The gain rows of the
    whole period are made in prepare (PERIOD_TILES x n_bins complex64)."""

    name = "watermark"

    def __init__(self, strength_db: float = STRENGTH_DB):
        self.strength_db = float(strength_db)

    def prepare(self, ctx):
        super().prepare(ctx)
        self._w = band_weights(ctx.freqs_hz)
        self._pat = pattern()
        db = self._pat @ self._w * self.strength_db               # (PERIOD_TILES, n_bins)
        # One full (channels, n_bins) row per tile: a broadcast operand would make numpy allocate.
        self._rows = np.repeat((10.0 ** (db / 20.0))[:, None, :], ctx.channels, axis=1).astype(np.complex64)
        self.reset()

    def reset(self):
        self.frame = 0

    def process_frame(self, spec):
        row = self._rows[(self.frame // TILE_FRAMES) % PERIOD_TILES]
        np.multiply(spec, row, out=spec)
        self.frame += 1


class Embedder:
    """Streaming embedding, latency-aligned: what :func:`embed` does to a whole array, done block by block
    with one block held (a render of any length marks its output as it writes it).

    ``process(x)`` takes (channels, k) float32 (any k; ``x`` is not modified) and returns the marked
    signal that is ready, (channels, k') float32, valid until the next call: k' = k once the section's
    start-up ``latency_samples`` (n_fft - 1 of the default STFT) have been dropped, fewer before.
    ``flush()`` yields the last ``latency_samples`` marked samples in blocks of at most ``max_block``
    (valid during each step). Concatenated, the outputs have the input's length and alignment and are
    bit-identical to :func:`embed` of the whole input (the STFT section is block-partition invariant)."""

    def __init__(self, sample_rate: int, channels: int, max_block: int = 4096, strength_db: float = STRENGTH_DB):
        from .stft import StreamingSTFT

        self.max_block = int(max_block)
        self._sec = StreamingSTFT("default", [WatermarkStage(strength_db)])
        self._sec.prepare(sample_rate, self.max_block, channels)
        self.latency_samples = self._sec.latency_samples
        self._buf = np.zeros((channels, self.max_block), np.float32)
        self._out = np.zeros((channels, self.max_block), np.float32)
        self.reset()

    def reset(self) -> None:
        self._sec.reset()
        self._skip = self.latency_samples

    def _run(self, k: int) -> np.ndarray:
        y = self._sec.process(self._buf[:, :k])
        d = min(self._skip, k)
        self._skip -= d
        return y[:, d:]

    def process(self, x: np.ndarray) -> np.ndarray:
        k = x.shape[1]
        if k <= self.max_block:
            self._buf[:, :k] = x
            return self._run(k)
        if self._out.shape[1] < k:  # a block longer than max_block: grows once to the longest seen
            self._out = np.zeros((self._out.shape[0], k), np.float32)
        done = 0
        for i in range(0, k, self.max_block):
            m = min(self.max_block, k - i)
            self._buf[:, :m] = x[:, i : i + m]
            y = self._run(m)
            self._out[:, done : done + y.shape[1]] = y
            done += y.shape[1]
        return self._out[:, :done]

    def flush(self):
        left = self.latency_samples
        while left > 0:
            m = min(left, self.max_block)
            self._buf[:, :m] = 0.0
            left -= m
            y = self._run(m)
            if y.shape[1]:
                yield y


def embed(x: np.ndarray, sample_rate: int, strength_db: float = STRENGTH_DB) -> np.ndarray:
    """Offline: ``x`` (channels, n) float32 with the mark, same length, latency-aligned (an
    :class:`Embedder`: a StreamingSTFT in the default config holding a :class:`WatermarkStage`)."""
    x = np.ascontiguousarray(x, np.float32)
    c, n = x.shape
    block = 1 << 16
    emb = Embedder(sample_rate, c, block, strength_db)
    out = np.empty_like(x)
    pos = 0
    for i in range(0, n, block):
        y = emb.process(x[:, i : i + block])
        out[:, pos : pos + y.shape[1]] = y
        pos += y.shape[1]
    for y in emb.flush():
        out[:, pos : pos + y.shape[1]] = y
        pos += y.shape[1]
    return out


def band_energies_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """(frames, N_BANDS) float64: 10·log10 band energy of the mono mix every 5 ms (20 ms Hann window),
    floored 80 dB under the loudest frame-band (codecs zero quiet bands: log(0) must not dominate)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    hop = int(round(HOP_MS * 1e-3 * sample_rate))
    n_fft = 4 * hop
    if x.size < n_fft:
        return np.zeros((0, N_BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    p = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    e = p @ band_weights(np.arange(n_fft // 2 + 1) * sample_rate / n_fft).T
    floor = max(float(e.max()), 1e-30) * 1e-8
    return 10.0 * np.log10(e + floor)


def detect(x: np.ndarray, sample_rate: int) -> dict:
    """Watermark detection score of ``x`` ((n,) or (channels, n), any rate).

    Returns {"score": largest z-score over the 400 alignments, "detected": score >= THRESHOLD,
    "threshold", "phase_frames", "shift_tiles", "tiles": tiles analysed}."""
    L = band_energies_db(x, sample_rate)
    pat = pattern()
    best = (-np.inf, 0, 0, 0)
    for phase in range(TILE_FRAMES):
        nt = (L.shape[0] - phase) // TILE_FRAMES
        if nt < 3:
            continue
        T = L[phase : phase + nt * TILE_FRAMES].reshape(nt, TILE_FRAMES, N_BANDS).mean(axis=1)
        # The host's envelope, slow against 40 ms tiles and 200 Hz bands, removed by second differences:
        # in time (tile j+1 of the grid minus its neighbours' mean), then across bands.
        Dt = T[1:-1] - 0.5 * (T[:-2] + T[2:])
        D = np.empty_like(Dt)
        D[:, 1:-1] = Dt[:, 1:-1] - 0.5 * (Dt[:, :-2] + Dt[:, 2:])
        D[:, 0], D[:, -1] = Dt[:, 0] - Dt[:, 1], Dt[:, -1] - Dt[:, -2]
        j = np.arange(1, nt - 1)
        U = np.zeros((PERIOD_TILES, N_BANDS))
        np.add.at(U, j % PERIOD_TILES, D)
        norm = np.sqrt((U * U).sum())
        if norm == 0:
            continue
        # score(q) = sum_k,b pat[(k - q) mod P, b] U[k, b], all q by FFT along k
        xc = np.fft.irfft(np.fft.rfft(U, axis=0) * np.conj(np.fft.rfft(pat, axis=0)), PERIOD_TILES, axis=0).sum(axis=1)
        q = int(np.argmax(xc))
        z = float(xc[q] / norm)
        if z > best[0]:
            best = (z, phase, q, nt)
    z, phase, q, nt = best
    if not np.isfinite(z):
        z = 0.0
    return {"score": z, "detected": bool(z >= THRESHOLD), "threshold": THRESHOLD,
            "phase_frames": phase, "shift_tiles": q, "tiles": nt}
