"""Training losses of the resculpting generator (torch; never imported at run time).

Terms (weights in ``LOSS_W``; ``--off TERM`` switches one off, for the ablation):
  recon    multi-resolution STFT loss (spectral convergence + log-magnitude L1 at 3 sizes; the mask trainer's
           ``mrstft``, one home) between output and reference, on rows that have a reference;
  adv      LSGAN against ``MultiScaleDisc`` (3 spectrogram resolutions + 2 waveform scales); real = clean clips;
  fm       feature matching: L1 between the discriminator activations of output and reference (rows with a
           reference), averaged over layers and sub-discriminators;
  profile  the differentiable profile loss: squared ``profile_torch`` distance between the output's profile and
           the target profile over the covered dims of the match mode (envelope shape, centroid, roll-off,
           tilt, loudness, LRA, crest): the output's profile must land on the target;
  perc     perceptual: resemblyzer's frozen GE2E speaker encoder (``pretrained.pt`` of the resemblyzer wheel,
           found in this venv or .venv-bench; the mask trainer's ``PerceptualNet``, one home): L1 of its frame
           features + 1 - cosine of its embeddings, output vs reference, on rows with a reference;
  content  on rows moved toward another clip's profile (no reference exists): L1 between the output's and the
           input's band-level trajectories (dB per band and frame, each band's mean over time removed), so
           what changes over time (words, notes) stays while the long-term shape moves freely; also on
           ``nudge`` rows;
  identity on ``keep`` rows: L1 of the generator's outputs from the identity (:func:`identity`): band gain
           in dB, copy-up gain x ``COPY_ID_SCALE``, deep-filter tap deltas; it reaches the frames whose
           conditioning looks like a move (the running fingerprint's early error) where the waveform terms
           barely see a small per-band gain.

Conditioning modes per row (``MODES``, drawn with ``MODE_P``): ``restore`` (input = changed y, target =
profile(x), reference = x), ``move`` (input = y or x, target = another row's profile(x), no reference),
``keep`` (input = x or y, target = profile(input), reference = input: leave it alone), ``nudge`` (input = x
or y, target = profile(input) moved by a random delta of the product's descriptor vocabulary
(``train.nudge_delta``), no reference: small moves from where the input already is).
"""

from __future__ import annotations

import torch
from resculpt.models.mask.losses import PerceptualNet, find_resemblyzer_weights, mrstft  # noqa: F401

LOSS_W = {"recon": 1.0, "adv": 0.1, "fm": 2.0, "profile": 1.0, "perc": 0.5, "content": 1.0, "identity": 0.5}
MODES = ("restore", "move", "keep", "nudge")
MODE_P = (0.35, 0.2, 0.25, 0.2)
COPY_ID_SCALE = 10.0  # copy-up gain 0.1 (-20 dB of the bins 4 kHz lower) weighs as 1 dB of band gain


def identity(gain_db: torch.Tensor, copy: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
    """(B,) distance of the generator's outputs from the identity: mean |band gain| (dB) + COPY_ID_SCALE x mean
    copy-up gain + mean |deep-filter tap delta|. gain_db, copy (B, T, 32); df (B, T, N_LOW, DF_ORDER, 2)."""
    return (gain_db.abs().mean((1, 2)) + COPY_ID_SCALE * copy.abs().mean((1, 2))
            + df.abs().flatten(1).mean(1))


def level_match(y: torch.Tensor, ref: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(B, n) ``y`` with each selected row (bool (B,)) scaled to ``ref``'s RMS over the crop; other rows as they
    are. The scale is part of the graph, so a loss of the result does not change with ``y``'s own level: its
    gradient has no component along ``y`` (the waveform terms then ask nothing of the broadband level, which the
    loudness follower sets after the net in every render). A silent row keeps a finite scale (1e-10 floor)."""
    g = (ref.pow(2).sum(-1, keepdim=True) / y.pow(2).sum(-1, keepdim=True).clamp_min(1e-10)).sqrt()
    return torch.where(rows[:, None], y * g, y)


def lsgan_gen(fake: list) -> torch.Tensor:
    """Generator's LSGAN term: mean over sub-discriminators of mean((D(output) - 1)^2)."""
    return sum(((f[-1] - 1) ** 2).mean() for f in fake) / len(fake)


def lsgan_disc(real: list, fake: list) -> torch.Tensor:
    return sum(((r[-1] - 1) ** 2).mean() + (f[-1] ** 2).mean() for r, f in zip(real, fake)) / len(real)


def feature_matching(fake: list, real: list, rows: torch.Tensor) -> torch.Tensor:
    """Mean L1 of the activations (not the logits) on the selected rows (bool (B,)), real side detached."""
    if not bool(rows.any()):
        return fake[0][0].sum() * 0.0
    terms = [(f[rows] - r[rows].detach()).abs().mean() for fs, rs in zip(fake, real) for f, r in zip(fs[:-1], rs[:-1])]
    return sum(terms) / len(terms)


def content(fio, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) L1 (dB) between band-level trajectories of y and x with each band's time mean removed, over the
    bands the rate defines and the frames where x is active (within 50 dB of its loudest frame)."""
    fy, _ = fio.features(fio.stft(y))
    fx, _ = fio.features(fio.stft(x))
    with torch.no_grad():
        lv = fx.mean(-1)
        act = (lv > lv.amax(-1, keepdim=True) - 50.0).float()[..., None] * fio.valid
    n = act.sum(1, keepdim=True).clamp_min(1.0)

    def centred(f):
        return f - (f * act).sum(1, keepdim=True) / n

    return ((centred(fy) - centred(fx)).abs() * act).sum((1, 2)) / act.sum((1, 2)).clamp_min(1.0)
