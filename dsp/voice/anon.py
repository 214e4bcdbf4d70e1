"""Pseudo-speaker stage: the speaker's pitch, formant scale and long-term timbre normalised onto fixed targets.

A :class:`~resculpt.dsp.voice.shift.VoiceShift` (same envelope, peak-locked pitch shift and envelope warp,
docs/voice.md) whose pitch ratio and envelope warp are not fixed shifts of the input but follow from what
the stage measures of the speaker, so that different speakers come out closer to one voice (the
pseudo-speaker's) instead of each being moved by the same amount. Per 5 ms frame:

1. **F0.** The section's input frame (n_fft samples, channels summed), decimated to ~8 kHz by sums of D
   samples; its normalised cross-correlation with itself, r(τ) / sqrt(E[0, n-τ) E[τ, n)), over periods of
   1/400 s .. min(1/70 s, 0.7 of the frame) (so down to 71 Hz in the 20 ms section, 143 Hz in the 10 ms
   one), from one zero-padded FFT of twice the decimated frame. Lags before the correlation first drops
   below ``VOICED`` are the lag-0 lobe and skipped; the best remaining lag, with a penalty of
   ``OCTAVE_COST`` per octave of lag against period doubling, is the F0 when its correlation exceeds
   ``VOICED``. Computed in observe_input on every other frame (100 per second), queued per frame.
2. **The speaker's median F0** m, in octaves, is tracked over voiced frames by a sign step (the stochastic
   median: m += step · sign(log2 f0 - m)); the step starts at 1/8 octave and decays to ``MEDIAN_STEP``
   (1/100 octave per voiced frame), so it settles within about half a second of voiced speech and an
   octave error of a few frames moves it by a few hundredths of an octave only. Until ``MIN_VOICED``
   voiced frames have been seen (50 ms) nothing is shifted: a few falsely voiced frames of noise do not
   set a pitch.
3. **Pitch.** The output pitch is target · (f0 / median)^range: the median moves onto ``anon.f0_hz`` and
   the contour around it is scaled by ``anon.pitch_range`` (1 keeps the intonation, 0.5 halves its
   excursions in octaves). Unvoiced frames, and frames whose estimate is more than 0.8 octave from the
   median (likely an octave error), take the median's shift; pauses take none (unvoiced frames more than
   ``PAUSE_DB`` below the speaker's median voiced level: their hum and room tone stay as recorded). The shift
   in semitones is smoothed by a one-pole of ``ST_TAU_S`` (15 ms), so an estimation error is a glide, not a
   click.
   **Low voices** (the speaker's median F0 under ``HARMONIC_BELOW_BINS`` bins: 150 Hz in the 20 ms section, where
   the window's main lobe spans two harmonics) take a harmonic shift on their voiced frames instead of the
   peak-locked one (:func:`~resculpt.dsp.voice.kernels.harmonic_frame`, compiled only: without numba they keep
   the peak-locked shift). The peak-locked shift moves each local maximum's region rigidly, and where a region
   holds two harmonics it keeps their spacing: an octave up, the output still beats at the input's F0, which
   YIN reads as the pitch (tests/test_anon_voice.py). The harmonic shift fits the frame's harmonics (the F0
   refined within +-2 %, up to ``HARMONIC_MAX_HZ``) by least squares, as the analysis window's transform at
   each, and resynthesizes them at the output F0: harmonic h' takes input harmonic h''s excitation on the
   (warped) envelope and, relative to the input's pulse phase, the phase the input has at the same frequency,
   on a running output fundamental phase; the residual (noise, breath, everything above the limit) keeps its
   bins on the envelope's gain. So each period keeps its waveform and the formants stay. The choice follows the
   median with a semitone of hysteresis, so a speaker stays on one path.
4. **Formants.** The envelope is read at src(k): k divided by the formant scale, then the inverse of the
   McAdams warp φ -> φ^α (φ in radians at 16 kHz, the VoicePrivacy baseline's frequency map applied to
   the envelope instead of to LPC poles: a formant at φ lands at a · φ^α). The scale is
   ``anon.formant_ratio`` · (target / median)^``anon.formant_follow`` / w^(``anon.vtln_pct`` / 100), w the
   speaker's measured formant scale (7.): a speaker whose pitch goes up by a factor ρ also gets formants
   ρ^follow higher (vocal tract length goes roughly with the pitch across speakers), and a speaker whose
   formants sit w times the average speaker's has that divided out, so inputs of any voice land nearer the
   pseudo-speaker's formants. The map is rebuilt when the scale moves by 1/128 octave.
5. **Timbre.** The long-term mean of the warped envelope over voiced frames, M(k) (cumulative mean for the
   first ``TIMBRE_FRAMES`` voiced frames, then an exponential mean over as many), is replaced, by the share
   ``anon.timbre_pct``, by the pseudo-speaker's: T(k) = the average speaker's (``POP_DB``), tilted by
   ``anon.tilt_db_oct`` dB per octave above 500 Hz. The correction (T - M) has its 100 Hz .. 8 kHz mean
   removed (the level stays), is limited to +-12 dB, and above 8 kHz is the one at 8 kHz.
6. **Detail.** In voiced frames, the share ``anon.detail_pct`` of the envelope above 2-3 kHz (a linear
   crossover) is replaced by its long-term mean M before the correction: the third and higher formants and
   their movement, which vary more between speakers than between vowels, are flattened; the first two,
   which carry the vowels, are left alone.
7. **Formant scale measured.** Every ``VTLN_EVERY`` voiced frames, the long-term mean of the unwarped
   envelope E is read at k·w for 25 scales w = 0.84 .. 1.19 and correlated with the average speaker's
   envelope over 300 Hz .. 3.5 kHz, both as slopes (first differences, so a tilt is not taken for a
   scale); the best w (the speaker's formants sit w times the average's) moves the
   speaker's estimated scale 30 % of the way, and the share ``anon.vtln_pct`` of it is divided out of the
   formant scale: a vocal-tract-length normalisation from the long-term spectrum.

8. **Envelope shapes from a codebook** (``anon.codebook_pct``, dsp/voice/codebook.py). In voiced frames,
   before the detail flattening, the share ``anon.codebook_pct`` of the envelope's shape re its long-term
   mean (the frame's level kept) is replaced by the mean of the ``codebook.KNN_K`` nearest entries of a
   fixed pseudo-speaker codebook (voiced-frame shapes pooled over many train speakers, speaker-normalised),
   warped onto the pseudo-speaker's formant scale and McAdams warp: the formant trajectories come from the
   codebook, not from the speaker (a DSP analogue of kNN-VC). The codebook is read in prepare().

9. **Synthesized excitation** (``anon.excite_pct``). In voiced frames whose F0 the pitch follows (not an
   outlier), after the envelope steps above, the share ``anon.excite_pct`` (power-complementary blend) of the
   output frame is a source-filter resynthesis: harmonics of the output F0 (the input's F0 times the applied
   pitch ratio), each a windowed sinusoid (the section's analysis window's transform, read from a table) with
   its own running phase advanced by the hop (phase-continuous over the overlap-add), on the output
   envelope and its minimum phase (from its real cepstrum averaged over ``EXCITE_PHASE_TAU_S``), level
   sqrt(v) of it; plus noise of random phases (a 32-bit LCG restarted at reset()) on the same envelope at
   the power per Hz of harmonics of that level, sqrt(1 - v) of it. v is the input's periodicity per band
   (``EXCITE_BANDS_HZ``): the band-passed frame's autocorrelation at the period (best of ``EXCITE_LAGS``
   periods around the estimate) over the window's own, mapped from ``EXCITE_V0`` .. ``EXCITE_V1`` onto
   0 .. 1 and smoothed by ``EXCITE_TAU_S``. The synthesized frame is
   scaled to the output frame's power. So the harmonics' amplitude pattern within the envelope's 500 Hz
   resolution, and the jitter and shimmer inside a frame, are the pseudo-speaker's (none: a flat source
   on the envelope, whose long-term tilt is the timbre step's), not the speaker's; the voicing per band, the
   F0 contour (scaled by the pitch range), the envelope and the unvoiced frames stay the input's.

10. **Level dynamics** (``anon.dynamics_pct``, dsp/voice/dynamics.py). Last, per channel: in 32 mel bands
   50 Hz .. 8 kHz, each band's level is moved toward the average speaker's long-term shape (tilted by the
   pseudo-speaker's tilt, at the speaker's level) and its swing over time scaled to the average speaker's
   spread, from running statistics over speech frames (the pause test's complement); pauses take the cuts of the
   long-term part only, less ``anon.pause_cut_db``; each band's correction is limited to
   +-``anon.dynamics_range_db``. With ``anon.split_pct``, that
   share of the speech frames' swing is not the input's, scaled, but the learned content/speaker split's
   rendering of it in the average speaker's voice (dsp/voice/level_split.py); ``anon.split_center_pct`` and
   ``anon.split_spread_pct`` standardise that rendering's running mean and spread per band (the offset and
   the too-small spread the decoder leaves over an utterance). ``anon.floor_sub_db`` subtracts each band's
   tracked noise floor and ``anon.lift_snr_db`` keeps a band that is noise in a frame from being lifted
   (dynamics.py).

``anon.seed`` = 0 uses the parameters as set (a preset's fixed voice). Any other value draws the targets
from it, once per new seed value: at ``anon.seed_spread_pct`` 100, F0 within +-12 semitones, formant scale
within +-20 % (and following the drawn pitch by a quarter, as real voices do), warp α within -0.15 .. +0.05,
tilt within +-6 dB/oct (every range scaled by the spread), all clamped to the parameters' ranges. A session that sets a fresh seed (``resculpt render/live/serve
--anon-random``) gets a voice of its own (docs/anonymization.md: what that buys and costs).

``anon.far_hz`` > 0, the far side: once the median is trusted, a speaker whose median lies on the same side of
that pitch as the pseudo-speaker's (after a seed's draw) gets the pseudo-speaker mirrored across it: pitch
far^2 / f0 (as many octaves from far on the other side), formant ratio 1 / ratio or ``anon.far_formant_ratio``
where set (lower formants on a low mirrored voice read more natural and keep fewer words: docs/anonymization.md),
tilt -tilt (the warp and every other setting as set). The side is decided with ``FAR_HYST_ST`` of hysteresis and the mirror glides in
over ``FAR_TAU_S``. So low voices get a high pseudo-speaker and high voices a low one: a fixed pseudo-speaker
leaves the speakers whose voices lie nearest it the most linkable (docs/anonymization.md).

Every tracker starts afresh on reset(). Latency: the section's (no look-ahead). Stereo: F0 from the summed
input of all channels and the formant scale from the first channel's envelope, so one pitch ratio and
warp for all; the timbre mean per channel.
"""

from __future__ import annotations

import math

import numpy as np

from ..params import ParamSpec
from ..spectral_util import RealFFT
from ..stft import MAX_BATCH, sqrt_hann_pair
from . import codebook, dynamics, kernels, level_split
from .shift import VoiceShift

PARAMS = (
    ParamSpec("anon.f0_hz", 70.0, 300.0, 140.0, "Hz", scale="log", smoothing_ms=50.0,
              doc="pseudo-speaker's median pitch: the speaker's own median F0 (tracked) is moved here"),
    ParamSpec("anon.pitch_range", 0.2, 1.0, 0.7, "x", smoothing_ms=50.0,
              doc="pitch excursions around the median, in octaves, scaled by this: 1 keeps the intonation"),
    ParamSpec("anon.formant_ratio", 0.7, 1.4, 1.0, "x", scale="log", smoothing_ms=50.0,
              doc="pseudo-speaker's formant scale (on top of the pitch-following part)"),
    ParamSpec("anon.formant_follow", 0.0, 0.5, 0.25, "", smoothing_ms=50.0,
              doc="formants also move by (target F0 / speaker's median F0)^follow: 0 leaves them to formant_ratio"),
    ParamSpec("anon.warp_alpha", 0.6, 1.0, 0.85, "", smoothing_ms=50.0,
              doc="McAdams warp of the envelope's frequency axis, phi -> phi^alpha (radians at 16 kHz); 1 = none"),
    ParamSpec("anon.timbre_pct", 0.0, 100.0, 70.0, "%", smoothing_ms=50.0,
              doc="share of the speaker's long-term spectral envelope replaced by the pseudo-speaker's"),
    ParamSpec("anon.tilt_db_oct", -6.0, 6.0, 0.0, "dB/oct", smoothing_ms=50.0,
              doc="pseudo-speaker's long-term envelope: the average speaker's, tilted by this above 500 Hz"),
    ParamSpec("anon.seed", 0.0, 999999.0, 0.0, "", smoothing_ms=0.0,
              doc="0: the pseudo-speaker as set; any other value draws pitch/formant/warp/tilt targets from it"),
    ParamSpec("anon.detail_pct", 0.0, 100.0, 0.0, "%", smoothing_ms=50.0,
              doc="share of voiced frames' envelope detail above ~2.5 kHz (F3 and up) replaced by its long-term mean"),
    ParamSpec("anon.vtln_pct", 0.0, 100.0, 0.0, "%", smoothing_ms=50.0,
              doc="share of the speaker's measured formant scale (long-term envelope against the average speaker's) removed"),
    ParamSpec("anon.codebook_pct", 0.0, 100.0, 0.0, "%", smoothing_ms=50.0,
              doc="share of voiced frames' envelope shape taken from the pseudo-speaker's codebook (nearest entries)"),
    ParamSpec("anon.excite_pct", 0.0, 100.0, 0.0, "%", smoothing_ms=50.0,
              doc="share of voiced frames' fine structure replaced by a synthesized excitation at the output F0"),
    ParamSpec("anon.dynamics_pct", 0.0, 100.0, 0.0, "%", smoothing_ms=50.0,
              doc="share of each band's level swing and long-term level normalised onto the average speaker's"),
    ParamSpec("anon.split_pct", 0.0, 100.0, 0.0, "%", smoothing_ms=50.0,
              doc="share of the level-dynamics step's speech movement decoded by the learned content/speaker split "
                  "in the average speaker's voice (acts within anon.dynamics_pct)"),
    ParamSpec("anon.split_mid_pct", 0.0, 100.0, 100.0, "%", smoothing_ms=50.0,
              doc="share of anon.split_pct's movement in the bands centred at 1-4 kHz (F2, F3, most consonant cues) "
                  "that the learned split renders; the rest keeps the speaker's own movement there (more words)"),
    ParamSpec("anon.dynamics_range_db", 6.0, 36.0, 12.0, "dB", smoothing_ms=0.0,
              doc="largest correction the level-dynamics step applies to a band, either way"),
    ParamSpec("anon.split_center_pct", 0.0, 100.0, 0.0, "%", smoothing_ms=50.0,
              doc="share of the learned split's running mean removed from its band movement over speech (the "
                  "long-term band offsets the decoder leaves; acts within anon.split_pct)"),
    ParamSpec("anon.split_spread_pct", 0.0, 100.0, 0.0, "%", smoothing_ms=50.0,
              doc="share of the learned split's band movement scaled to unit running spread over speech (the "
                  "decoder renders about 0.8 of it; livelier, less natural; acts within anon.split_pct)"),
    ParamSpec("anon.pause_cut_db", 0.0, 24.0, 0.0, "dB", smoothing_ms=0.0,
              doc="extra cut of the pauses between phrases (room tone and the transformation's residue) in the "
                  "level-dynamics step, after 100 ms of pause; closes over 20 ms, opens at once on speech (acts within "
                  "anon.dynamics_pct)"),
    ParamSpec("anon.lift_snr_db", 0.0, 40.0, 0.0, "dB", smoothing_ms=0.0,
              doc="the level-dynamics step lifts a band by at most its excess over this many dB above its noise "
                  "floor (a band that is noise in a frame is not lifted with the voice's weak bands); 0: off"),
    ParamSpec("anon.floor_sub_db", 0.0, 20.0, 0.0, "dB", smoothing_ms=0.0,
              doc="power subtraction of each band's noise floor, over-estimated by this, in the level-dynamics step; 0: off"),
    ParamSpec("anon.seed_spread_pct", 0.0, 100.0, 100.0, "%", smoothing_ms=0.0,
              doc="how far a seed's pseudo-speaker may lie from the preset's (100: F0 +-12 st, formants +-20 %)"),
    ParamSpec("anon.far_hz", 0.0, 300.0, 0.0, "Hz", smoothing_ms=0.0,
              doc="a speaker whose median pitch lies on the pseudo-speaker's side of this pitch gets the "
                  "pseudo-speaker mirrored across it (pitch far^2 / f0, formant ratio inverted or "
                  "anon.far_formant_ratio, tilt negated), so low voices come out high and high voices low; 0: off"),
    ParamSpec("anon.far_formant_ratio", 0.0, 1.4, 0.0, "x", smoothing_ms=0.0,
              doc="formant ratio of the mirrored pseudo-speaker on the far side (a seed's draw moves it as it moves "
                  "anon.formant_ratio; values under 0.7 count as 0.7); 0: the reciprocal of anon.formant_ratio"),
)

F0_MIN, F0_MAX = 70.0, 400.0   # Hz: the F0 search range
F0_EVERY = 2                   # frames: the F0 search runs on every other frame (100 per second)
DC_FRAMES = 20.0               # searches (200 ms): the time constant of the search input's DC estimate
F0_RATE = 8000.0               # Hz: the F0 search runs on the input decimated to about this rate
VOICED = 0.5                   # normalised autocorrelation peak above which a frame is voiced
OCTAVE_COST = 0.05             # score penalty per octave of lag (against period doubling)
MEDIAN_STEP = 0.01             # octaves per voiced frame, once settled
MEDIAN_STEP0 = 0.125           # octaves per voiced frame at the start
MIN_VOICED = 10                # voiced frames (50 ms) before the median is trusted: no shift until then
OUTLIER_OCT = 0.8              # a frame this far from the median takes the median's shift
ST_TAU_S = 0.015               # one-pole smoothing of the applied shift
DC_BINS = 4                    # an offset's leakage through the sqrt-Hann window: -10, -24, -30 dB in bins 1-3
ST_STEPS = 384                 # shift steps of 1/32 semitone from 0 to 12 st
TIMBRE_FRAMES = 200            # voiced frames in the timbre mean (1 s of voiced speech)
CORR_MAX = 12.0 * math.log(10.0) / 20.0  # +-12 dB in nepers
REF_RATE = 16000.0             # the McAdams warp's angles are radians at this rate
# The far side (anon.far_hz): the side is decided on the tracked median with FAR_HYST_ST semitones of
# hysteresis either way (a speaker on the dividing pitch would otherwise flip as the median dithers), and a
# change of side glides over FAR_TAU_S (a one-pole on the mirror's share: the pitch target moves by up to an
# octave, which in one frame would be a jump in pitch and formants).
FAR_HYST_ST = 1.0
FAR_TAU_S = 0.1
# A seed's pseudo-speaker around the preset's, at anon.seed_spread_pct 100: F0 within +-DRAW_ST semitones,
# formant scale following a quarter of it (as across real voices) and within +-DRAW_FORMANT, alpha within
# DRAW_ALPHA of the preset's, tilt within +-DRAW_TILT dB/oct; every range scaled by the spread, and clamped
# to the parameters' ranges (F0 70-300 Hz, formant scale 0.7-1.4, alpha 0.6-1, tilt +-6 dB/oct).
DRAW_ST, DRAW_FORMANT, DRAW_ALPHA, DRAW_TILT = 12.0, 0.2, (-0.15, 0.05), 6.0
# The average speaker's long-term envelope (dB, level arbitrary) at POP_HZ: the mean over 16 LibriSpeech
# train speakers (8 female, 8 male by median F0) of this stage's tracked mean envelope, each with its
# 100 Hz .. 8 kHz mean removed; speakers differ from it by 3-7 dB (standard deviation per frequency).
# The data stops at 8 kHz; above it the correction is the one at 8 kHz.
POP_HZ = (0.0, 250.0, 400.0, 500.0, 700.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0)
POP_DB = (30.3, 29.5, 26.6, 23.5, 17.0, 11.0, 8.7, 6.1, 4.4, -1.6, -7.2, -8.5, -17.9)
TIMBRE_TOP_HZ = 8000.0
DETAIL_LO_HZ, DETAIL_HI_HZ = 2000.0, 3000.0  # anon.detail_pct's crossover: none below, all above
VTLN_LO_HZ, VTLN_HI_HZ = 300.0, 3500.0   # band in which the speaker's envelope is compared with POP_DB
VTLN_STEPS = 12                          # candidate scales 2^(j/48), j = -12 .. 12 (0.84 .. 1.19)
VTLN_EVERY = 20                          # voiced frames between two estimates
VTLN_RATE = 0.3                          # each estimate moves the speaker's scale this share of the way
# Synthesized excitation (anon.excite_pct): bands in which the input's periodicity is measured (upper edges,
# Hz; the last band runs to Nyquist), the one-pole smoothing of that measure, the reach of a harmonic's
# window lobe (bins each side: the sqrt-Hann lobe is 30 dB down 4 bins out) and the lobe table's resolution.
EXCITE_BANDS_HZ = (1000.0, 2000.0, 3000.0, 4500.0, 6000.0, 8000.0)
EXCITE_TAU_S = 0.02
EXCITE_HALF = 4
EXCITE_STEPS = 32
# A band's periodicity (kernels.band_voicing) mapped linearly from these onto 0 .. 1. Single 20 ms frames
# (scripts/anon_voicing_check.py): white noise reads 0.0 .. 0.3 on average, a harmonic tone 0.9 .. 1.1, for
# F0 >= 120 Hz; at 80 Hz (a period of 0.6 window) both spread by +-0.3 .. 1 and cannot be told apart. The
# bundled speech clip's voiced frames read 0.98 (median) below 1 kHz and 0.36 .. 0.53 above, spread widely.
EXCITE_V0, EXCITE_V1 = 0.3, 0.6
EXCITE_LAGS = 5         # periods tried around the F0 estimate's, 0.4 % apart (kernels.band_voicing)
EXCITE_SEED = 0x5EED     # the noise generator's start state after reset()
# The harmonics' phase: the output envelope's minimum phase, from its real cepstrum averaged by a one-pole over
# this many seconds of excited frames. Frame by frame, the phase of a moving formant turned each harmonic's
# phase between overlapping frames, a roughness DNSMOS marked down in scratch runs (docs/anonymization.md).
EXCITE_PHASE_TAU_S = 0.3
# Harmonic shift (kernels.harmonic_frame, step 3): for a speaker whose median F0 lies under HARMONIC_BELOW_BINS
# bins (a semitone of hysteresis either way, HARMONIC_HYST_ST), voiced frames are shifted by a harmonic model
# fitted up to HARMONIC_MAX_HZ (above it, and in the residual, the bins keep their place on the envelope's
# gain); the F0 refined within +-HARMONIC_REF_STEPS steps of HARMONIC_REF_STEP (relative); the pulse phase on a
# grid of HARMONIC_PHI, pulled toward its prediction by HARMONIC_PULL; HARMONIC_ITERS least-squares sweeps (two
# neighbouring harmonics' lobes correlate at -13 dB at the search's 70 Hz floor, 1.4 bins apart, and at -34 dB
# 1.9 bins apart: the sweeps converge fast). Above 3 bins the peak-locked shift resolves the harmonics, and on
# real speech moved down an octave it kept more of the voice's periodicity than the harmonic model.
HARMONIC_MAX_HZ = 5000.0
HARMONIC_BELOW_BINS = 3.0
HARMONIC_HYST_ST = 1.0
HARMONIC_REF_STEPS, HARMONIC_REF_STEP = 4, 0.005
HARMONIC_PHI, HARMONIC_PULL, HARMONIC_ITERS = 64, 0.5, 3
# Pauses. The envelope's 2 ms lifter cannot follow a pause's spectrum (mains hum and rumble far above
# everything over 100 Hz): shifted down, the pause's noise lands on the smeared hump of that envelope and comes
# out louder at 100-700 Hz, and its hum leaves its bin (tests/test_resculpt_voice_match.py, hum 30 dB over the
# noise). An unvoiced frame PAUSE_DB below the speaker's median voiced level (power over 100 Hz; a sign-step
# median in LEVEL_STEP_DB steps) takes no pitch shift; fricatives are noise, which a shift leaves alike.
PAUSE_DB = 12.0
LEVEL_STEP_DB, LEVEL_STEP0_DB = 0.5, 6.0


def _unit(seed: int, i: int) -> float:
    """A deterministic number in [-1, 1) from (seed, i): an integer hash, no allocation, no global state."""
    h = (seed * 0x9E3779B1 + (i + 1) * 0x85EBCA77) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    h = (h * 0x297A2D39) & 0xFFFFFFFF
    h ^= h >> 15
    return h / 2147483648.0 - 1.0


def sign_step_median(med: float, x: float, n: int, step: float, step0: float) -> float:
    """One update of a running median by a sign step: ``x`` itself for the first value (``n`` = 0 values so
    far), else ``med`` moved toward ``x`` by max(step, step0 / (1 + 0.1 n)) (a large step while few values are
    in, so it settles fast, then ``step``: the estimate dithers around the median by that much)."""
    if n == 0:
        return x
    s = max(step, step0 / (1.0 + 0.1 * n))
    return med + (s if x > med else -s)


def side_with_hysteresis(side: int, d: float, hyst: float) -> int:
    """A two-way choice on the tracked median: 1 (on) or -1 (off) from ``side`` (0: not decided yet) and ``d``,
    how far the median lies on the "on" side of the limit (octaves, < 0: the other side). Decided by the sign of
    d the first time; after that it changes only once d is past the limit by more than ``hyst`` octaves, so a
    voice on the limit does not switch back and forth as its median dithers."""
    if side == 0:
        return 1 if d > 0.0 else -1
    if side == 1 and d < -hyst:
        return -1
    if side == -1 and d > hyst:
        return 1
    return side


def session_seed() -> int:
    """A fresh ``anon.seed`` (1 .. 999999) from the operating system's random source: a voice of its own for
    one session (``--anon-random``)."""
    import secrets

    return 1 + secrets.randbelow(999999)


def draw(seed: int, f0_hz: float, formant_ratio: float, alpha: float, tilt: float,
         spread: float = 1.0) -> tuple[float, float, float, float]:
    """The pseudo-speaker of ``seed`` (> 0) around the given targets: (f0_hz, formant_ratio, alpha, tilt), each
    range scaled by ``spread`` (0..1: ``anon.seed_spread_pct`` / 100)."""
    st = spread * DRAW_ST * _unit(seed, 0)
    f0 = min(max(f0_hz * 2.0 ** (st / 12.0), 70.0), 300.0)
    fr = formant_ratio * 2.0 ** (0.25 * st / 12.0) * (1.0 + spread * DRAW_FORMANT * _unit(seed, 1))
    fr = min(max(fr, 0.7), 1.4)
    lo, hi = spread * DRAW_ALPHA[0], spread * DRAW_ALPHA[1]
    al = min(max(alpha + 0.5 * (hi - lo) * (_unit(seed, 2) + 1.0) + lo, 0.6), 1.0)
    ti = min(max(tilt + spread * DRAW_TILT * _unit(seed, 3), -6.0), 6.0)
    return f0, fr, al, ti


class AnonVoice(VoiceShift):
    """process_frame(spec): spec (channels, n_bins) complex64, edited in place (audio thread)."""

    name = "anon"
    use_kernels = True
    # Voiced frames shifted by the harmonic model (kernels.harmonic_frame) where numba is installed, whatever
    # use_kernels says; False: every frame takes the peak-locked shift.
    harmonic = True
    # Unvoiced frames more than this many dB below the speaker's median voiced level are background and are
    # not pitch-shifted (None: every frame takes the speaker's shift). See PAUSE_DB.
    pause_db: float | None = PAUSE_DB

    def __init__(self, table):
        self.table = table
        self.phase_lock = True
        # this frame is voice although its F0 pick was refused (a subclass's stricter voicing, see _pick): no pause
        self._weak = False
        self._weak_last = False
        ix = table.index
        self._i = {k: ix("anon." + k) for k in ("f0_hz", "pitch_range", "formant_ratio", "formant_follow",
                                                "warp_alpha", "timbre_pct", "tilt_db_oct", "seed", "detail_pct",
                                                "vtln_pct", "codebook_pct", "excite_pct", "dynamics_pct",
                                                "seed_spread_pct", "far_hz", "split_pct", "dynamics_range_db",
                                                "split_center_pct", "split_spread_pct", "pause_cut_db",
                                                "lift_snr_db", "floor_sub_db", "split_mid_pct",
                                                "far_formant_ratio")}

    def prepare(self, ctx):
        super().prepare(ctx)
        nb, n = ctx.n_bins, ctx.n_fft
        spacing = ctx.sample_rate / n
        f = np.arange(nb) * spacing
        # F0: the normalised cross-correlation of the section's input frame (rectangular, n samples) with
        # itself at lags lo .. hi, from one zero-padded FFT of length 2n (a linear, not circular,
        # autocorrelation) and the frame's running energy.
        # Above 8 kHz the frame is first decimated by D (sums of D consecutive samples: a boxcar whose
        # nulls fall on the multiples of the decimated rate), so the search costs the same at every rate.
        D = max(1, int(round(ctx.sample_rate / F0_RATE)))
        m = n // D
        self._D, self._m, self._fs0 = D, m, ctx.sample_rate / D
        lo = max(2, int(math.floor(self._fs0 / F0_MAX)))
        hi = min(int(0.7 * m), int(math.ceil(self._fs0 / F0_MIN)))
        self._lo, self._hi = lo, hi
        self._x = np.zeros(2 * m, np.float64)
        self._x32 = np.zeros(m, np.float32)  # the decimated sum, in the input's dtype (no mixed-dtype ufunc)
        self._X = np.zeros(m + 1, np.complex128)
        self._Xa = np.zeros(m + 1, np.float64)
        self._ac = np.zeros(2 * m, np.float64)
        self._fft = RealFFT(2 * m)
        self._cs = np.zeros(m, np.float64)
        self._dc = np.zeros(2, np.float64)  # the F0 search input's running DC estimate, and 1 once it has one
        w = np.fft.rfft(sqrt_hann_pair(ctx.n_fft, ctx.hop)[0].astype(np.float64))[:DC_BINS]
        self._wdc = (w / w[0].real).astype(np.complex64)  # a constant's spectrum per unit of its bin 0
        self._dctmp = np.zeros(DC_BINS, np.complex64)
        self._cs_head = self._cs[m - hi - 1 : m - lo][::-1]   # energy of x[0 : m - lag], lag = lo .. hi
        self._cs_tail = self._cs[lo - 1 : hi]                # e minus it: energy of x[lag : m]
        self._eh = np.zeros(hi - lo + 1, np.float64)
        self._et = np.zeros(hi - lo + 1, np.float64)
        lags = np.arange(lo, hi + 1, dtype=np.float64)
        self._cost = -OCTAVE_COST * np.log2(lags / lo)
        self._score = np.zeros(hi - lo + 1, np.float64)
        self._below = np.zeros(hi - lo + 1, bool)
        # Scalar operands as 0-d arrays (a Python scalar operand costs a fresh 0-d array per call).
        self._f0_e = np.zeros((), np.float64)
        self._f0_tiny = np.full((), 1e-30)
        self._f0_voiced = np.full((), VOICED)
        self._f0_m1 = np.full((), -1.0)
        self._f0q = np.zeros(MAX_BATCH, np.float64)  # per-frame F0 of the frames observed since the last batch
        self._wq = np.zeros(MAX_BATCH, np.bool_)     # and whether each is voice without an F0 (self._weak)
        self._hq = np.zeros(MAX_BATCH, np.float64)   # and the search's own pick (the harmonic shift's F0)
        self._pick_raw = 0.0                         # the last search's pick before a subclass's stricter voicing
        self._nq = 0
        self._f0_cur = 0.0
        # Envelope warp: bin k's frequency as an angle at 16 kHz.
        self._phi_k = 2.0 * np.pi * f / REF_RATE
        self._spacing = spacing
        # Timbre target and correction (natural-log magnitude, per bin).
        self._oct500 = np.log2(np.maximum(f, 500.0) / 500.0).astype(np.float32)
        self._pop = (np.interp(f, POP_HZ, POP_DB) * math.log(10.0) / 20.0).astype(np.float32)
        self._top = int(min(nb - 1, math.floor(TIMBRE_TOP_HZ / spacing)))
        self._band = ((f >= 100.0) & (f <= 8000.0)).astype(np.float32)
        self._hfw = np.clip((f - DETAIL_LO_HZ) / (DETAIL_HI_HZ - DETAIL_LO_HZ), 0.0, 1.0).astype(np.float32)
        self._band /= max(float(self._band.sum()), 1.0)
        self._tgt = np.zeros(nb, np.float32)
        # Formant-scale estimate: the unwarped long-term envelope read at k·w for each candidate w, correlated
        # with the average speaker's over VTLN_LO_HZ .. VTLN_HI_HZ.
        kb = np.flatnonzero((f >= VTLN_LO_HZ) & (f <= VTLN_HI_HZ)).astype(np.float64)
        self._vw = 2.0 ** (np.arange(-VTLN_STEPS, VTLN_STEPS + 1) / 48.0)
        # Slopes E(k_{i+1} w) - E(k_i w) from two contiguous gathers (a ufunc over 2-D strided views of one
        # array buffers its operands on the audio thread).
        self._vpos = []
        for kk in (kb[1:], kb[:-1]):
            pos = np.minimum(np.outer(self._vw, kk), nb - 1.001)
            i0 = np.floor(pos).astype(np.int64)
            self._vpos.append((i0, i0 + 1, (pos - i0).astype(np.float32)))
        popb = np.diff(np.interp(kb * spacing, POP_HZ, POP_DB) * math.log(10.0) / 20.0)
        popb -= popb.mean()
        self._vpop = (popb / np.linalg.norm(popb)).astype(np.float32)
        shape = self._vpos[0][0].shape
        self._vg = np.zeros(shape, np.float32)
        self._vg2 = np.zeros(shape, np.float32)
        self._vd = np.zeros(shape, np.float32)
        self._vnum = np.zeros(len(self._vw), np.float32)
        self._vsum = np.zeros(len(self._vw), np.float32)
        self._vss = np.zeros(len(self._vw), np.float32)
        self._vB = float(shape[1])
        self._emean = np.zeros(nb, np.float32)
        self._corr = np.zeros((ctx.channels, nb), np.float32)
        self._mean = np.zeros((ctx.channels, nb), np.float32)
        self._ctmp = np.zeros(nb, np.float32)
        self._fst = 1.0 - math.exp(-1.0 / (ST_TAU_S * ctx.frame_rate_hz))
        self._kfar = 1.0 - math.exp(-1.0 / (FAR_TAU_S * ctx.frame_rate_hz))
        self._far_hyst = FAR_HYST_ST / 12.0  # octaves
        self._k_lv = int(math.ceil(100.0 / spacing))  # the pause test's level counts the bins from 100 Hz up
        # Pitch index maps of the 3-cent shift steps -12 .. +12 st (rows filled on first use; 3 MB at 48 kHz,
        # of which the pages of the steps a speaker uses are touched).
        self._maps = np.zeros((2 * ST_STEPS + 1, nb), np.int64)
        self._mapped = [False] * (2 * ST_STEPS + 1)
        self._knn = codebook.KnnEnvelope(codebook.load(), nb, spacing, ctx.channels, ctx.frame_rate_hz)
        self._k_lo, self._k_hi = np.float32(-CORR_MAX), np.float32(CORR_MAX)
        self._dyn = dynamics.BandDynamics(ctx.freqs_hz, ctx.channels, ctx.frame_rate_hz, level_split.load())
        self._prepare_excite(ctx)
        self._prepare_harmonic(ctx)
        self.reset_trackers()

    def _prepare_excite(self, ctx) -> None:
        """Tables and state of the synthesized excitation (anon.excite_pct; kernels.excite_frame)."""
        nb, n, hop = ctx.n_bins, ctx.n_fft, ctx.hop
        w = sqrt_hann_pair(n, hop)[0].astype(np.float64)  # the section's analysis window
        # Its transform at offsets -EXCITE_HALF .. EXCITE_HALF bins: a windowed sinusoid of b bins puts
        # amplitude/2 x e^{i phase} x lobe(k - b) on bin k.
        d = np.arange(-EXCITE_HALF * EXCITE_STEPS, EXCITE_HALF * EXCITE_STEPS + 1) / EXCITE_STEPS
        lobe = np.exp(-2j * np.pi * np.outer(d, np.arange(n)) / n) @ w
        self._wlobe = lobe                           # float64, the harmonic shift's table derives from it
        self._xlobe = lobe.astype(np.complex64)
        self._xt0 = float(w.sum())
        # Noise on the envelope at the power per Hz of harmonics at the same level (n sum w^2 / (sum w)^2 per
        # harmonic, spread over the b0 bins between two; divided by b0 per frame), times the power a frame of
        # random phases loses against a real noise's analysis-synthesis (2 sum w^2 / hop: the synthesis window
        # tapers it and overlapping frames add incoherently).
        self._xg = math.sqrt(n * float(np.sum(w * w)) / self._xt0**2 * 2.0 * float(np.sum(w * w)) / hop)
        # The window's linear autocorrelation at each lag (samples), normalised: the band periodicity of a
        # periodic frame at its period (kernels.band_voicing divides it out). The circular part (lag n - T0)
        # pairs samples a non-integer number of periods apart and adds nothing on average.
        ac = np.fft.irfft(np.abs(np.fft.rfft(w, 2 * n)) ** 2, 2 * n)[: n + 1]
        self._xrho = ac / ac[0]
        self._xband = np.searchsorted(np.asarray(EXCITE_BANDS_HZ), ctx.freqs_hz, side="left").astype(np.int64)
        nband = len(EXCITE_BANDS_HZ) + 1
        self._xnum = np.zeros((EXCITE_LAGS, nband), np.float64)
        self._xden = np.zeros(nband, np.float64)
        self._xvb = np.zeros((ctx.channels, nband), np.float32)
        self._xphase = np.zeros((ctx.channels, nb), np.float64)
        self._xrng = np.zeros((ctx.channels, 1), np.int64)
        self._xsyn = np.zeros(nb, np.complex64)
        self._xk = 1.0 - math.exp(-1.0 / (EXCITE_TAU_S * ctx.frame_rate_hz))
        self._xadv = 2.0 * math.pi * hop / n
        # The output envelope's minimum phase per bin (rad), on which the harmonics are laid, as a vocal tract
        # (close to minimum phase) lays them: with their running phases alone they add up to a symmetric
        # (zero-phase) pulse per period, and Whisper lost more of the words (docs/anonymization.md). From the
        # envelope's real cepstrum c (quefrencies 0 .. lq, the smoothing's B1 envw), averaged over time:
        # phi(k) = -2 sum_q c[q] sin(2 pi q k / n).
        lq1 = self._b1.shape[0]
        self._xps = (-2.0 * np.sin(2.0 * np.pi * np.outer(self._kf64, np.arange(lq1)) / n)).astype(np.float32)
        self._xpc = np.zeros(lq1, np.float32)
        self._xpcs = np.zeros((ctx.channels, lq1), np.float32)
        self._xpcs_ch = list(self._xpcs)   # each channel's row, made once (a view per frame is an object)
        self._xpk = np.float32(1.0 - math.exp(-1.0 / (EXCITE_PHASE_TAU_S * ctx.frame_rate_hz)))
        self._xpt = np.zeros(lq1, np.float32)
        self._xpfirst = np.ones(ctx.channels, bool)  # the channel's mean cepstrum starts at its first frame's
        self._xenvp = np.zeros(nb, np.float32)
        self._xn = n
        self._xfs = float(ctx.sample_rate)
        # The numpy code's buffers (the compiled loops need none of them).
        f64 = np.float64
        self._xoh = np.zeros((nb, nband), f64)                 # each bin's band, one-hot
        self._xoh[np.arange(nb), self._xband] = 1.0
        self._xkl = np.outer(1.0 + 0.004 * (np.arange(EXCITE_LAGS) - (EXCITE_LAGS - 1) // 2), np.arange(nb))
        self._xcos = np.zeros((EXCITE_LAGS, nb), f64)
        self._xp, self._xq = np.zeros(nb, f64), np.zeros(nb, f64)
        self._xcb, self._xt = np.zeros(nband, f64), np.zeros(nband, f64)
        self._xmask = np.zeros(nband, bool)
        self._x0 = np.zeros((), f64)                             # a per-frame scalar operand
        self._xh = np.arange(1, nb + 1, dtype=f64)               # harmonic numbers
        self._xhb, self._xhe, self._xha = np.zeros(nb, f64), np.zeros(nb, f64), np.zeros(nb, f64)
        self._xhq = np.zeros(nb, f64)
        self._xhi = np.zeros(nb, np.int64)
        self._xhi1 = np.zeros(nb, np.int64)
        self._xhv = np.zeros(nb, np.float32)
        self._xhc = np.zeros(nb, np.complex128)                 # each harmonic's amplitude and phase
        self._xsj = np.zeros(nb, np.int64)                      # a lobe slot's bins (nb: the spare bin)
        self._xsx = np.zeros(nb, f64)
        self._xsm = np.zeros(nb, np.int64)
        self._xsl = np.zeros(nb, np.complex128)
        self._xsl2 = np.zeros(nb, np.complex128)
        self._xsok = np.zeros(nb, bool)
        self._xsok2 = np.zeros(nb, bool)
        self._xhm = np.zeros(nb, bool)
        self._xf1, self._xf2 = np.zeros(nb, np.float32), np.zeros(nb, np.float32)
        self._xlobe64 = self._xlobe.astype(np.complex128)
        self._xsyn1 = np.zeros(nb + 1, np.complex64)            # syn plus a spare bin for out-of-range lobe bins
        self._xsynv = self._xsyn1[:nb]
        self._xst = np.zeros(nb, np.complex64)
        self._xn64 = np.zeros(nb, f64)
        self._xnv = np.zeros(nb, np.float32)
        # The noise generator's states after j steps from s, s_j = (A_j s + C_j) mod 2^32, j = 1 .. nb - 1:
        # the loop's sequence in one product.
        A = np.zeros(nb, np.uint64)
        C = np.zeros(nb, np.uint64)
        a_, c_ = 1, 0
        for j in range(1, nb):
            a_, c_ = (a_ * 1664525) % 2**32, (c_ * 1664525 + 1013904223) % 2**32
            A[j], C[j] = a_, c_
        A[0] = 1  # bin 0: the state itself (its noise amplitude is 0); bins 1 .. nb - 1: the next states
        self._xA, self._xC = A, C
        self._xs = np.zeros(nb, np.uint64)
        self._xs0 = np.zeros((), np.uint64)
        self._xmod = np.full((), 2**32, np.uint64)

    def _prepare_harmonic(self, ctx) -> None:
        """Tables and state of the harmonic shift (kernels.harmonic_frame; compiled only: without numba every
        frame takes the peak-locked shift)."""
        nb = ctx.n_bins
        self._harm = bool(self.harmonic and kernels.AVAILABLE and kernels.warm_up())
        # R(d): the window's transform (the excitation's table, W(d)) with its phase referred to the frame's centre,
        # real as the window is symmetric about it: W(d) = e^{-i pi d} R(d); R(0) is the excitation's t0.
        d = np.arange(-EXCITE_HALF * EXCITE_STEPS, EXCITE_HALF * EXCITE_STEPS + 1) / EXCITE_STEPS
        self._hlobe = np.ascontiguousarray((np.exp(1j * np.pi * d) * self._wlobe).real)
        self._lbelow = math.log2(HARMONIC_BELOW_BINS * self._spacing)  # octaves re 1 Hz, as the tracked median
        self._hyst = HARMONIC_HYST_ST / 12.0                             # octaves
        self._hkmax = float(min(HARMONIC_MAX_HZ / self._spacing, nb - 1 - EXCITE_HALF))
        self._hres = np.zeros(nb, np.complex128)
        self._hamp = np.zeros(nb, np.complex128)
        self._hstate = np.zeros((ctx.channels, 4), np.float64)
        self._hsc = np.zeros(max(2 * HARMONIC_REF_STEPS + 1, HARMONIC_PHI), np.float64)  # the grid searches' scores
        self.harmonics = 0  # harmonics the last harmonic frame fitted (diagnostics and tests)

    def reset(self):
        super().reset()
        if hasattr(self, "_hstate"):
            self._hstate.fill(0.0)
        if hasattr(self, "_mean"):
            self.reset_trackers()

    def reset_trackers(self):
        self._knn.reset()
        self._dyn.reset()
        self.speech = False       # the last frame was speech, not a pause (diagnostics, scripts/build_anon_dynamics.py)
        self._xvb.fill(0.0)
        self._xphase.fill(0.0)
        self._xrng.fill(EXCITE_SEED)
        self._xpcs.fill(0.0)
        self._xpfirst.fill(True)
        self.excite_harmonics = 0  # harmonics the last excited frame synthesized (diagnostics and tests)
        self._mean.fill(0.0)
        self._corr.fill(0.0)
        self._emean.fill(0.0)
        self._nmean = 0
        self._ls = 0.0            # the speaker's formant scale re the average speaker, log2
        self.formant_scale = 1.0  # 2^_ls (diagnostics and tests)
        self._med = math.nan      # octaves re 1 Hz
        self._hon = 0             # the harmonic shift: 1 on, -1 off, 0 not decided (no median yet)
        self._far_on = 0          # the far side: 1 mirrored, -1 not, 0 not decided (no median yet)
        self.far_share = 0.0      # the mirror's share, gliding toward the decision (diagnostics and tests)
        self._lfar = 0.0          # log2 of the dividing pitch the mirror was last taken across
        self._nvoiced = 0
        self._nobs = -1
        self._dc.fill(0.0)
        self._f0_last = 0.0
        self._f0h_last = 0.0
        self._f0h_cur = 0.0
        self._nq = 0
        self._lv = math.nan       # the speaker's median level over voiced frames, dB (of the frames' power over 100 Hz)
        self._nlv = 0
        self._st = math.nan
        self._warp_key = (math.nan, math.nan)
        self._tilt = math.nan     # the tilt self._tgt was built for
        self._seed = 0
        self._drawn = (0.0, 0.0, 0.0, 0.0)
        self.f0 = 0.0             # last frame's F0 estimate (Hz, 0 = unvoiced; diagnostics and tests)
        self.median_hz = 0.0      # the speaker's tracked median F0 (Hz)

    # -- audio thread ---------------------------------------------------------------------------
    wants_input = True

    def observe_input(self, inbuf):
        """The frame's F0 (Hz; 0 when unvoiced) from the channels' summed input, queued for its batch."""
        self._nobs += 1
        if self._nobs % F0_EVERY == 0:
            self._weak_last = False
            self._pick_raw = 0.0
            self._f0_last = self._estimate(inbuf)
            self._f0h_last = self._pick_raw
        if self._nq < MAX_BATCH:
            self._f0q[self._nq] = self._f0_last
            self._wq[self._nq] = self._weak_last
            self._hq[self._nq] = self._f0h_last
            self._nq += 1

    def _estimate(self, inbuf) -> float:
        D, m = self._D, self._m
        if self._kern:
            e = kernels.f0_frame(inbuf, D, m, self._x, self._cs, self._dc, DC_FRAMES)
        else:
            e = self._decimate(inbuf)
        if not e > 1e-12 * m:
            return 0.0
        self._fft.forward(self._x, self._X)
        np.abs(self._X, out=self._Xa)
        self._Xa *= self._Xa
        np.copyto(self._X, self._Xa)
        self._fft.inverse(self._X, self._ac)
        if self._kern:
            lag = kernels.pick_lag(self._ac, self._cs, self._lo, self._hi, e, self._cost, self._score, VOICED)
            self._pick_raw = self._fs0 / lag if lag > 0.0 else 0.0
            return self._pick_raw
        return self._pick(m, e)

    def _decimate(self, inbuf) -> float:
        """self._x[:m] <- the channels' sum decimated by sums of D samples, less the running DC estimate
        (self._dc); self._cs <- its cumulative energy. Returns the energy."""
        D, m = self._D, self._m
        x = self._x32
        c0 = 0
        if D < 8:
            # channel 0's sums of D samples in one call: numpy adds fewer than 8 terms in order, so the
            # sums equal the loop's below bit for bit (from 8 on it unrolls and the rounding differs)
            np.add.reduce(inbuf[0, : m * D].reshape(m, D), axis=1, out=x)
            c0 = 1
        else:
            x.fill(0.0)
        for c in range(c0, inbuf.shape[0]):
            for d in range(D):
                x += inbuf[c, d : m * D : D]
        np.copyto(self._x[:m], x)
        x = self._x[:m]
        # Less the input's DC: an offset correlates with itself at every lag, so with it the correlation never falls
        # below VOICED and no period is found (a voice on a 0.25 offset would stay unvoiced, and unshifted). A running
        # mean of the frames' means (time constant DC_FRAMES searches), not each frame's own: that would take part of
        # a hum's or a low voice's period with it. The sums run in order (np.add.accumulate), as the compiled loop's.
        np.add.accumulate(x, out=self._cs)
        mean = float(self._cs[-1]) / m
        dc = self._dc
        if math.isfinite(mean):  # a non-finite sample spoils this frame's search, not the estimate
            dc[0] = dc[0] + (mean - dc[0]) / DC_FRAMES if dc[1] else mean
            dc[1] = 1.0
        x -= dc[0]
        np.multiply(x, x, out=self._cs)
        np.add.accumulate(self._cs, out=self._cs)  # np.cumsum's loop without its Python wrapper
        return float(self._cs[-1])

    def _pick(self, n: int, e: float) -> float:
        """F0 (Hz) from self._ac (linear autocorrelation) and self._cs (cumulative energy), 0 if unvoiced."""
        lo, hi = self._lo, self._hi
        eh, et, sc = self._eh, self._et, self._score
        # energy of x[0 : n - lag] and of x[lag : n]
        np.copyto(eh, self._cs_head)
        self._f0_e[()] = e
        np.subtract(self._f0_e, self._cs_tail, out=et)
        eh *= et
        np.maximum(eh, self._f0_tiny, out=eh)
        np.sqrt(eh, out=eh)
        np.divide(self._ac[lo : hi + 1], eh, out=sc)
        # Lags before the correlation first drops below VOICED belong to the lag-0 lobe (a smooth or
        # formant-dominated waveform correlates with itself over a few samples), not to a period.
        below = self._below
        np.less(sc, self._f0_voiced, out=below)
        j = int(below.argmax())  # the methods, not np.argmax: its Python wrapper costs more than the search
        if not below[j]:
            return 0.0
        np.copyto(sc[:j], self._f0_m1)
        peak_i = int(sc.argmax())
        if not sc[peak_i] > VOICED:
            return 0.0
        sc += self._cost
        i = int(sc.argmax())
        lag = float(lo + i)
        if 0 < i < sc.shape[0] - 1:  # parabolic refinement
            a, b, c = float(sc[i - 1]), float(sc[i]), float(sc[i + 1])
            den = a - 2.0 * b + c
            if den < 0.0:
                lag += 0.5 * (a - c) / den
        self._pick_raw = self._fs0 / lag
        return self._pick_raw

    def process_frames(self, specs, n: int) -> None:
        for k in range(n):
            self._f0_cur = float(self._f0q[k]) if k < self._nq else 0.0
            self._weak = k < self._nq and bool(self._wq[k])
            self._f0h_cur = float(self._hq[k]) if k < self._nq else 0.0
            self.process_frame(specs[k])
        self._nq = 0

    def _targets(self):
        v = self.table.value
        i = self._i
        f0 = float(v[i["f0_hz"]])
        fr = float(v[i["formant_ratio"]])
        al = float(v[i["warp_alpha"]])
        ti = float(v[i["tilt_db_oct"]])
        seed = int(round(float(v[i["seed"]])))
        if seed > 0:
            spread = 0.01 * float(v[i["seed_spread_pct"]])
            key = (seed, f0, fr, al, ti, spread)
            if key != self._seed:
                self._seed = key
                self._drawn = draw(seed, f0, fr, al, ti, spread)
            f0, fr, al, ti = self._drawn
        return f0, fr, al, ti

    def _far_side(self, far: float, lt: float, fr: float, tilt: float, fr_far: float | None):
        """(lt, fr, tilt): the pitch target (log2 Hz), formant ratio and tilt, mirrored across far (Hz; 0: off)
        by the glide's share when the speaker's median lies on the pseudo-speaker's side of it; fr_far is the
        mirrored voice's formant ratio (None: 1 / fr), glided geometrically as the ratio's own scale is."""
        goal = 0.0
        if far > 0.0:
            self._lfar = math.log2(far)
            if self._nvoiced >= MIN_VOICED and lt != self._lfar:
                # "on" (mirrored): the speaker's median on the pseudo-speaker's side of the dividing pitch
                d = (self._med - self._lfar) * (1.0 if lt > self._lfar else -1.0)
                self._far_on = side_with_hysteresis(self._far_on, d, self._far_hyst)
            goal = 1.0 if self._far_on == 1 else 0.0
        m = self.far_share + self._kfar * (goal - self.far_share)
        if abs(m - goal) < 1e-4:
            m = goal
        self.far_share = m
        fr_m = fr ** (1.0 - 2.0 * m) if fr_far is None else fr ** (1.0 - m) * fr_far ** m
        return lt + 2.0 * m * (self._lfar - lt), fr_m, tilt * (1.0 - 2.0 * m)

    def _pitch_map(self, j: int, r: float) -> None:
        """self._sidx <- the pitch index map of shift step j (r = 2^(j / 384)): a row of a table filled on
        first use, as the shift follows the pitch contour and changes step on most voiced frames."""
        i = j + ST_STEPS
        self._sidx = self._maps[i]
        if not self._mapped[i]:
            self._pitch_index(r, self._sidx)
            self._mapped[i] = True

    def _set_warp(self, a: float, alpha: float) -> None:
        """self._wi0 / self._wfr <- read position src(k) = warp^-1(k / a) of the envelope (bins)."""
        # Quantised to 1/128 octave of scale (0.5 %) and 0.002 of alpha: the scale follows the tracked
        # median by small steps, and rebuilding the map costs a power over every bin.
        key = (round(128.0 * math.log2(a)), round(500.0 * alpha))
        if key == self._warp_key:
            return
        self._warp_key = key
        if self._kern:
            kernels.warp_map(self._phi_k, 1.0 / a, 1.0 / alpha if alpha < 1.0 else 1.0,
                             REF_RATE / (2.0 * math.pi * self._spacing), self._wi0, self._wi1, self._wfr)
            return
        t = self._t64
        np.multiply(self._phi_k, 1.0 / a, out=t)
        if alpha < 1.0:
            np.power(t, 1.0 / alpha, out=t)
        t *= REF_RATE / (2.0 * math.pi * self._spacing)
        self._warp_from(t)

    def process_frame(self, spec):
        # The frame less its DC: a constant c shows as c W(k) in the lowest bins (W: the analysis window's spectrum;
        # c = X(0) / W(0)). A shifted frame took part of it up into the voice's lowest bins, or none of it, while a
        # frame left at the speaker's pitch (a pause) kept it all: on a recording with a DC offset the output's
        # offset came and went with the pauses, a thump at every phrase (tests/test_anon_voice.py).
        for ch in range(spec.shape[0]):
            np.multiply(self._wdc, spec[ch, 0], out=self._dctmp)
            np.subtract(spec[ch, :DC_BINS], self._dctmp, out=spec[ch, :DC_BINS])
        v = self.table.value
        f0_t, fr, alpha, tilt = self._targets()
        rng = float(v[self._i["pitch_range"]])
        follow = float(v[self._i["formant_follow"]])
        self._timbre = 0.01 * float(v[self._i["timbre_pct"]])
        self._cbp = 0.01 * float(v[self._i["codebook_pct"]])
        self._detail = 0.01 * float(v[self._i["detail_pct"]])
        f0 = self._f0_cur
        self.f0 = f0
        lt = math.log2(f0_t)
        if self.pause_db is not None:
            # The frame's power above 100 Hz: a recording's DC and rumble would otherwise be most of a pause's.
            p, k0 = 0.0, self._k_lv
            for ch in range(spec.shape[0]):
                p += float(np.vdot(spec[ch, k0:], spec[ch, k0:]).real)
            self._lv_cur = 10.0 * math.log10(p + 1e-30)
        if f0 > 0.0:
            x = math.log2(f0)
            self._med = sign_step_median(self._med, x, self._nvoiced, MEDIAN_STEP, MEDIAN_STEP0)
            self._nvoiced += 1
            if self.pause_db is not None:
                self._lv = sign_step_median(self._lv, self._lv_cur, self._nlv, LEVEL_STEP_DB, LEVEL_STEP0_DB)
                self._nlv += 1
        far = float(v[self._i["far_hz"]])
        if far > 0.0 or self.far_share > 0.0:
            # The mirrored voice's formant ratio: the reciprocal, or the one set, moved by a seed's draw as the
            # draw moved the pseudo-speaker's own (fr against the ratio as set).
            ffr = float(v[self._i["far_formant_ratio"]])
            fr_far = None if ffr <= 0.0 else max(ffr, 0.7) * fr / float(v[self._i["formant_ratio"]])
            lt, fr, tilt = self._far_side(far, lt, fr, tilt, fr_far)
        if self._nvoiced >= MIN_VOICED:
            med = self._med
            self.median_hz = 2.0 ** med
            dev = x - med if f0 > 0.0 else 0.0
            if abs(dev) > OUTLIER_OCT:
                dev = 0.0
            st = 12.0 * (lt - med + (rng - 1.0) * dev)
            a = fr * 2.0 ** (follow * (lt - med) - 0.01 * float(v[self._i["vtln_pct"]]) * self._ls)
            a_ps = fr * 2.0 ** (follow * (lt - med))  # a without the speaker's scale: the codebook's map
        else:
            st, a, a_ps = 0.0, fr, fr
        if (self.pause_db is not None and f0 == 0.0 and not self._weak and self._nlv >= MIN_VOICED
                and self._lv_cur < self._lv - self.pause_db):
            st = 0.0  # a pause: its background (room tone, hum) keeps its pitch
        # Speech for the level-dynamics statistics (step 10): the pause test's complement once it has a level
        if self.pause_db is not None:
            self.speech = self._nlv >= MIN_VOICED and self._lv_cur >= self._lv - self.pause_db
        else:
            self.speech = self._nvoiced >= MIN_VOICED
        st = min(max(st, -12.0), 12.0)
        if math.isnan(self._st):
            self._st = st
        else:
            self._st += self._fst * (st - self._st)
        j = round(32.0 * self._st)  # 3-cent steps: one pitch index map per step, built on first use
        st = j / 32.0
        r = 2.0 ** (st / 12.0)
        self._pitch_map(j, r)
        self._set_warp(min(max(a, 0.5), 2.0), alpha)
        if self._cbp > 0.0:
            self._knn.set_warp(min(max(a_ps, 0.5), 2.0), alpha)
        if tilt != self._tilt:
            # Timbre target: the average speaker's envelope, tilted above 500 Hz (nepers).
            np.multiply(self._oct500, tilt * math.log(10.0) / 20.0, out=self._tgt)
            self._tgt += self._pop
            self._tilt = tilt
        self._voiced = f0 > 0.0
        # The synthesized excitation: voiced frames whose F0 the pitch follows (not an outlier), at the
        # output F0 f0 r, in bins.
        excite = 0.01 * float(v[self._i["excite_pct"]])
        dyn = 0.01 * float(v[self._i["dynamics_pct"]])
        split = 0.01 * float(v[self._i["split_pct"]])
        dyn_db = float(v[self._i["dynamics_range_db"]])
        s_center = 0.01 * float(v[self._i["split_center_pct"]])
        s_spread = 0.01 * float(v[self._i["split_spread_pct"]])
        s_mid = 0.01 * float(v[self._i["split_mid_pct"]])
        p_cut = float(v[self._i["pause_cut_db"]])
        lift_snr = float(v[self._i["lift_snr_db"]])
        f_sub = float(v[self._i["floor_sub_db"]])
        b0 = 0.0
        if excite > 0.0 and self._voiced and self._nvoiced >= MIN_VOICED and abs(x - self._med) <= OUTLIER_OCT:
            b0 = f0 * r / self._spacing
            lag = self._xfs / f0  # the input's period, samples (< 0.7 n_fft)
            i = int(lag)
            rho = float(self._xrho[i] + (self._xrho[i + 1] - self._xrho[i]) * (lag - i))
            lag_w = 2.0 * math.pi * lag / self._xn
        # The harmonic shift: voiced frames whose F0 the pitch follows (an outlier may be an octave error).
        # A frame of voice whose F0 a subclass's stricter voicing refused (self._weak) takes the search's own pick.
        # Whether the speaker's voice is low enough for the harmonic shift is decided on the median, with
        # HARMONIC_HYST_ST semitones of hysteresis either side of the limit: a voice on it would otherwise switch
        # paths as the median dithers, and the two paths' phases do not join.
        fh = f0 if f0 > 0.0 else (self._f0h_cur if self._weak else 0.0)
        if self._harm and self._nvoiced >= MIN_VOICED:
            self._hon = side_with_hysteresis(self._hon, self._lbelow - self._med, self._hyst)
        harm = self._hon == 1 and fh > 0.0 and abs(math.log2(fh) - self._med) <= OUTLIER_OCT
        for ch in range(spec.shape[0]):
            self._ch = ch
            if b0 >= 1.0:
                if self._kern:
                    kernels.band_voicing(spec[ch], self._xband, lag_w, self._xnum, self._xden, rho, self._xvb[ch],
                                         self._xk, EXCITE_V0, EXCITE_V1)
                else:
                    self._band_voicing(spec[ch], self._xvb[ch], lag_w, rho)
            if abs(st) > 1e-4 and harm:
                self._harmonic(spec[ch], ch, r, fh / self._spacing)
            elif abs(st) > 1e-4:
                self._hstate[ch, 2] = 0.0
                self._shift(spec[ch], ch, r, True)
            else:
                self._hstate[ch, 2] = 0.0
                self._follow[ch] = True
                np.conjugate(spec[ch], out=self._zpc[ch])
                self._formants(spec[ch])
            if b0 >= 1.0:
                np.dot(self._b1, self._envw, out=self._xpc)
                pcs = self._xpcs_ch[ch]
                if self._xpfirst[ch]:
                    np.copyto(pcs, self._xpc)
                    self._xpfirst[ch] = False
                np.subtract(self._xpc, pcs, out=self._xpt)
                self._xpt *= self._xpk
                pcs += self._xpt
                np.dot(self._xps, pcs, out=self._xenvp)
                if self._kern:
                    self.excite_harmonics = kernels.excite_frame(
                        spec[ch], self._envw, self._xenvp, self._xband, self._xvb[ch], self._xphase[ch], b0,
                        self._xadv, self._xlobe, float(EXCITE_STEPS), float(EXCITE_HALF), self._xt0, self._xg / math.sqrt(b0),
                        self._xrng[ch], self._xsyn, excite)
                else:
                    self.excite_harmonics = self._excite(spec[ch], ch, b0, self._xg / math.sqrt(b0), excite)
            if dyn > 0.0:
                self._dyn.process(spec[ch], ch, dyn, tilt, self.speech, split, dyn_db, s_center, s_spread,
                                  p_cut, lift_snr, f_sub, s_mid)

    def _harmonic(self, row, ch: int, r: float, b0: float) -> None:
        """One channel's voiced frame row (nb,) complex64 shifted by r through the harmonic model (in place), on
        the stage's warped envelope; b0: the frame's F0 in bins. A peak-locked shift on the next frame continues
        this frame's output phases."""
        np.abs(row, out=self._mag)
        self._analyse()
        self._warped_envelope()
        np.conjugate(row, out=self._zpc[ch])
        self.harmonics = kernels.harmonic_frame(
            row, self._env, self._envw, b0, r, self._hlobe, float(EXCITE_STEPS), float(EXCITE_HALF), self._xt0,
            self._hkmax, self._xadv, self._hres, self._hamp, self._hstate[ch], self._hsc, HARMONIC_REF_STEPS,
            HARMONIC_REF_STEP, HARMONIC_PHI, HARMONIC_PULL, HARMONIC_ITERS)
        if self.harmonics == 0:  # no harmonic fits the frame: the envelope's gain alone
            self._envelope_gain(row)
        # A peak-locked shift on the next frame continues this frame's output phases (window-centre referred),
        # each bin its own peak, as from an unshifted frame's.
        phi = self._phi[ch]
        np.arctan2(row.imag, row.real, out=phi)
        phi += self._pik
        np.copyto(self._prev_owner[ch], self.ki)
        self._follow[ch] = False

    def _band_voicing(self, row, vb, lag_w: float, rho: float) -> None:
        """kernels.band_voicing in numpy: vb (nbands,) float32 of one channel moved toward the frame's
        periodicity per band (row (nb,) complex64 the input frame; lag_w rad per bin; rho the window's own).
        Mixed-dtype operands go through np.copyto first: a ufunc that casts them buffers (allocates)."""
        p, f1, f2, cs = self._xp, self._xf1, self._xf2, self._xcos
        np.multiply(row.real, row.real, out=f1)
        np.multiply(row.imag, row.imag, out=f2)
        f1 += f2
        np.copyto(p, f1)
        np.matmul(p, self._xoh, out=self._xden)
        self._x0[()] = lag_w
        np.multiply(self._xkl, self._x0, out=cs)
        np.cos(cs, out=cs)
        for i in range(cs.shape[0]):
            cs[i] *= p
        np.matmul(cs, self._xoh, out=self._xnum)
        c, t, den, mask = self._xcb, self._xt, self._xden, self._xmask
        np.maximum.reduce(self._xnum, axis=0, out=c)
        np.greater(den, 0.0, out=mask)
        np.maximum(den, 1e-300, out=t)
        t *= rho
        c /= t
        c -= EXCITE_V0
        c *= 1.0 / (EXCITE_V1 - EXCITE_V0)
        np.maximum(c, 0.0, out=c)
        np.minimum(c, 1.0, out=c)
        np.copyto(t, vb)
        c -= t
        c *= self._xk
        c += t
        np.copyto(vb, c, where=mask, casting="same_kind")

    def _excite(self, row, ch: int, b0: float, noise: float, share: float) -> int:
        """kernels.excite_frame in numpy, on one channel's output frame row (nb,) complex64 (in place);
        returns the number of harmonics. Every harmonic number 1 .. nb is computed and those at or above
        bin nb - 1 are masked (rather than sliced off: a view per array per frame is a Python object each,
        and together they outweigh the arithmetic saved)."""
        nb = row.shape[0]
        env, vb, pp = self._envw, self._xvb[ch], self._xphase[ch]
        b, e, a, x = self._xhb, self._xhe, self._xha, self._xsx
        i0, i1, v32, c, hm = self._xhi, self._xhi1, self._xhv, self._xhc, self._xhm
        syn1 = self._xsyn1
        syn1.fill(0.0)
        half, steps = float(EXCITE_HALF), float(EXCITE_STEPS)
        lobe = self._xlobe64
        nl = lobe.shape[0]
        np.multiply(self._xh, b0, out=b)
        np.less(b, nb - 1.0, out=hm)                      # the loop's harmonics: h b0 < nb - 1
        H = int(np.count_nonzero(hm))
        # the envelope at each harmonic (linear interpolation) and the periodicity of its bin's band
        np.floor(b, out=a)
        np.copyto(i0, a, casting="unsafe")
        np.subtract(b, a, out=a)                          # the fraction
        np.add(i0, 1, out=i1)
        env.take(i1, out=v32, mode="clip")
        np.copyto(e, v32)
        env.take(i0, out=v32, mode="clip")
        np.copyto(x, v32)
        e -= x
        e *= a
        e += x
        q = self._xhq                                     # the phase: running plus the envelope's there
        self._xenvp.take(i1, out=v32, mode="clip")
        np.copyto(q, v32)
        self._xenvp.take(i0, out=v32, mode="clip")
        np.copyto(x, v32)
        q -= x
        q *= a
        q += x
        q += pp
        np.add(b, 0.5, out=a)
        np.copyto(i1, a, casting="unsafe")
        self._xband.take(i1, out=i1, mode="clip")
        vb.take(i1, out=v32, mode="clip")
        # amplitude exp(E) sqrt(v) / t0 (0 past the last harmonic) and phase: each lobe's coefficient
        np.exp(e, out=e)
        np.copyto(a, v32)
        np.sqrt(a, out=a)
        e *= a
        e *= 1.0 / self._xt0
        np.copyto(a, hm)
        e *= a
        np.cos(q, out=a)
        a *= e
        np.copyto(c.real, a)
        np.sin(q, out=a)
        a *= e
        np.copyto(c.imag, a)
        # The lobes one slot (offset from each harmonic's first bin) at a time: within a slot the harmonics
        # write different bins (b0 >= 1), so a gather, add and scatter; bins outside the lobe or the spectrum
        # and those of masked harmonics go to the spare bin nb.
        j, m, lv, lv2, ok, ok2, st = self._xsj, self._xsm, self._xsl, self._xsl2, self._xsok, self._xsok2, self._xst
        for slot in range(2 * EXCITE_HALF + 1):
            np.subtract(b, half, out=x)
            np.ceil(x, out=x)
            x += slot
            np.minimum(x, float(nb), out=x)
            np.copyto(j, x, casting="unsafe")
            np.greater_equal(x, 0.0, out=ok)
            ok &= hm
            np.less_equal(x, nb - 1.0, out=ok2)
            ok &= ok2
            x -= b
            np.less_equal(x, half, out=ok2)
            ok &= ok2
            x += half
            x *= steps
            np.copyto(m, x, casting="unsafe")
            np.minimum(m, nl - 2, out=m)
            np.maximum(m, 0, out=m)
            np.copyto(a, m)
            x -= a                                        # the fraction between table entries
            lobe.take(m, out=lv, mode="clip")
            m += 1
            lobe.take(m, out=lv2, mode="clip")
            lv2 -= lv
            np.multiply(lv2.real, x, out=lv2.real)
            np.multiply(lv2.imag, x, out=lv2.imag)
            lv += lv2
            lv *= c
            np.logical_not(ok, out=ok)
            np.copyto(j, nb, where=ok)
            syn1.take(j, out=st, mode="clip")
            np.copyto(lv2, st)
            lv2 += lv
            np.copyto(st, lv2, casting="same_kind")
            syn1.put(j, st, mode="clip")
        # the negative-frequency image of the harmonics within the lobe's reach of DC (a few bins)
        for h in range(H):
            bh = float(b[h])
            if bh > half:
                break
            cc = complex(float(c[h].real), -float(c[h].imag))
            for jj in range(min(math.floor(half - bh), nb - 1) + 1):
                xx = (jj + bh + half) * steps
                mm = min(int(xx), nl - 2)
                lo = complex(lobe[mm])
                syn1[jj] += np.complex64(cc * (lo + (complex(lobe[mm + 1]) - lo) * (xx - mm)))
        # the running phases of the synthesized harmonics advanced by the hop, wrapped
        np.multiply(b, self._xadv, out=a)
        np.copyto(x, hm)
        a *= x
        pp += a
        np.multiply(pp, 1.0 / (2.0 * math.pi), out=a)
        np.floor(a, out=a)
        a *= 2.0 * math.pi
        pp -= a
        syn = self._xsynv
        # noise on bins 1 .. nb - 1, its phases from the generator's next nb - 1 states
        s = self._xs
        self._xs0[()] = int(self._xrng[ch, 0])
        np.multiply(self._xA, self._xs0, out=s)
        s += self._xC
        np.remainder(s, self._xmod, out=s)
        self._xrng[ch, 0] = int(s[-1])
        n64, q, a, f1 = self._xn64, self._xq, self._xp, self._xf1
        vb.take(self._xband, out=f1, mode="clip")
        np.copyto(n64, f1)
        np.subtract(1.0, n64, out=n64)
        np.maximum(n64, 0.0, out=n64)
        np.sqrt(n64, out=n64)
        np.copyto(q, env)
        np.exp(q, out=q)
        n64 *= q
        n64 *= noise
        n64[0] = 0.0
        np.copyto(q, s)
        q *= 2.0 * math.pi / 4294967296.0
        t = self._xst
        np.cos(q, out=a)
        a *= n64
        np.copyto(f1, a, casting="same_kind")
        np.copyto(t.real, f1)
        np.sin(q, out=a)
        a *= n64
        np.copyto(f1, a, casting="same_kind")
        np.copyto(t.imag, f1)
        syn += t
        # the synthesized frame at the output frame's power, blended power-complementarily
        pr = self._power(row)
        ps = self._power(syn)
        if ps > 0.0 and pr > 0.0:
            row *= np.float32(math.sqrt(1.0 - share))
            syn *= np.float32(math.sqrt(pr / ps * share))
            row += syn
        return H

    def _power(self, z) -> float:
        """sum |z|^2 of (nb,) complex64, accumulated in float64."""
        f1, f2, a = self._xf1, self._xf2, self._xp
        np.multiply(z.real, z.real, out=f1)
        np.multiply(z.imag, z.imag, out=f2)
        f1 += f2
        np.copyto(a, f1)
        return float(np.add.reduce(a))

    def _vtln(self) -> None:
        """self._ls <- moved toward log2 of the candidate scale w whose E(k·w) correlates best with POP_DB."""
        e, g, g2, d = self._emean, self._vg, self._vg2, self._vd
        for n, (i0, i1, fr) in enumerate(self._vpos):  # E at k_{i+1} w into d, then minus E at k_i w
            e.take(i0, out=g, mode="clip")
            e.take(i1, out=g2, mode="clip")
            g2 -= g
            g2 *= fr
            g += g2
            if n == 0:
                np.copyto(d, g)
            else:
                d -= g
        np.matmul(d, self._vpop, out=self._vnum)  # POP's slope is zero-mean: a row's own mean drops out
        np.add.reduce(d, axis=1, out=self._vsum)
        np.multiply(d, d, out=d)
        np.add.reduce(d, axis=1, out=self._vss)
        self._vsum *= self._vsum
        self._vsum *= 1.0 / self._vB
        self._vss -= self._vsum
        np.maximum(self._vss, 1e-12, out=self._vss)
        np.sqrt(self._vss, out=self._vss)
        self._vnum /= self._vss
        j = int(np.argmax(self._vnum))
        self._ls += VTLN_RATE * (math.log2(float(self._vw[j])) - self._ls)
        self.formant_scale = 2.0 ** self._ls

    def _warped_envelope(self) -> None:
        """The warped envelope (VoiceShift's, on this stage's map) plus the timbre correction; the voiced
        frames' warped envelope updates the channel's long-term mean first."""
        ch = self._ch
        if self._kern:
            self._warped_envelope_kernels(ch)
            return
        if self._voiced and ch == 0:
            k = 1.0 / min(self._nmean + 1, TIMBRE_FRAMES)
            np.subtract(self._env, self._emean, out=self._ctmp)
            self._ctmp *= k
            self._emean += self._ctmp
            if (self._nmean + 1) % VTLN_EVERY == 0:
                self._vtln()
        super()._warped_envelope()
        w, mean, corr, t = self._envw, self._mean[ch], self._corr[ch], self._ctmp
        if self._voiced:
            if ch == 0:
                self._nmean += 1
            k = 1.0 / min(self._nmean, TIMBRE_FRAMES)
            np.subtract(w, mean, out=t)
            t *= k
            mean += t
            # correction = timbre x (T - M), its band mean removed, within +-CORR_MAX
            np.subtract(self._tgt, mean, out=corr)
            corr -= float(np.dot(corr, self._band))
            np.clip(corr, -CORR_MAX, CORR_MAX, out=corr)
            corr[self._top + 1 :] = corr[self._top]
            if self._cbp > 0.0:
                self._knn.apply(w, mean, self._cbp, ch)
            if self._detail > 0.0:
                # the frame's envelope above the crossover pulled toward the long-term mean
                np.subtract(mean, w, out=t)
                t *= self._hfw
                t *= self._detail
                w += t
        else:
            self._knn.gap(ch)
        if self._nmean:
            np.multiply(corr, self._timbre, out=t)
            w += t

    def _warped_envelope_kernels(self, ch: int) -> None:
        """_warped_envelope through the compiled loops (kernels.warp_timbre / detail_timbre): the same steps
        in the same order; the formant-scale estimate runs after the long-term envelope's update, as it
        sets the next frame's scale only."""
        voiced = self._voiced
        ke = -1.0
        if voiced and ch == 0:
            ke = 1.0 / min(self._nmean + 1, TIMBRE_FRAMES)
            self._nmean += 1
        k = 1.0 / min(self._nmean, TIMBRE_FRAMES) if self._nmean else 0.0
        w, mean, corr = self._envw, self._mean[ch], self._corr[ch]
        kernels.warp_timbre(self._env, self._emean, np.float32(ke), self._wi0, self._wfr, w, mean, corr,
                            self._tgt, self._band, self._top, voiced, np.float32(k), self._k_lo, self._k_hi)
        if ke > 0.0 and self._nmean % VTLN_EVERY == 0:
            self._vtln()
        detail = 0.0
        if voiced:
            if self._cbp > 0.0:
                self._knn.apply(w, mean, self._cbp, ch)
            detail = self._detail
        else:
            self._knn.gap(ch)
        kernels.detail_timbre(w, mean, corr, self._hfw, np.float32(detail),
                              np.float32(self._timbre if self._nmean else -1.0))
