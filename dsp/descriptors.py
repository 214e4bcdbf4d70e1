"""Words to profile deltas: "more bass, clearer highs, a bit softer, not harsh".

A description is split into phrases (commas, semicolons, "and", "but"). In each phrase:
  * intensity words scale the effect: "a bit", "a little", "slightly", "somewhat" x0.5;
    "much", "a lot", "very", "way", "really", "lots", "extremely" x2 (they multiply);
  * negation flips it: "not", "no", "less", "fewer", "without", "don't"; "more" keeps it;
  * the rest must name one descriptor from :data:`VOCAB` (aliases and comparatives included).
Unknown words raise :class:`DescriptorError` listing the closest known descriptors.

Each descriptor is a band-envelope shape (dB offsets on the 32 ERB bands: shelves and peaks in
octaves around a corner) plus scalar deltas (ratios for frequencies and pace, additions for
loudness, HNR, crest and range). The result is a ``delta`` :class:`~resculpt.dsp.profile.Profile`;
band offsets are clipped to +-18 dB. No entry states a centroid, roll-off or tilt move: a delta's
value for those is what it asks beyond the move its band shape makes (``profile.apply_delta``), and
every shape here is its whole brightness move ("brighter": a 3 kHz shelf of +4 dB, which lifts the
centroid 9-13 % and the tilt 0.65 dB/oct on speech and music; ``scripts/delta_consistency.py``).
"""

from __future__ import annotations

import difflib
import re

import numpy as np

from .bands import band_centers_hz, erb_band_edges
from .profile import N_BANDS, RATIO_DIMS, Profile, empty_delta

CENTERS = band_centers_hz(erb_band_edges(N_BANDS))
_LF = np.log2(np.maximum(CENTERS, 1.0))


class DescriptorError(ValueError):
    """A description could not be parsed; the message names the word and close known ones."""


def low_shelf(fc, g):
    return g / (1.0 + 2.0 ** (2.5 * (_LF - np.log2(fc))))


def high_shelf(fc, g):
    return g / (1.0 + 2.0 ** (-2.5 * (_LF - np.log2(fc))))


def peak(fc, g, width_oct=1.0):
    return g * np.exp(-0.5 * ((_LF - np.log2(fc)) / (width_oct / 2.0)) ** 2)


def band_limit(lo, hi, depth=24.0):
    return -depth * (1.0 - 1.0 / (1.0 + 2.0 ** (-4 * (_LF - np.log2(lo))))) - depth * (
        1.0 / (1.0 + 2.0 ** (-4 * (_LF - np.log2(hi)))))


ST = 2.0 ** (1.0 / 12.0)

# name: (aliases, band shape (32,) dB, scalar deltas; none for the moment dims, which the shape moves)
VOCAB: dict[str, tuple[tuple[str, ...], np.ndarray, dict]] = {
    "bass": (("bass", "bassier", "low end", "lows"), low_shelf(150, 4.0), {}),
    "warm": (("warm", "warmer", "warmth"), peak(250, 3.0, 1.5) + high_shelf(6000, -1.5), {}),
    "bright": (("bright", "brighter", "brightness"), high_shelf(3000, 4.0), {}),
    "dark": (("dark", "darker", "dull", "duller"), high_shelf(3000, -4.0), {}),
    "clear highs": (("clear highs", "clearer highs", "clear", "clearer", "clarity", "clean highs"),
                    high_shelf(5000, 3.0) + peak(300, -1.5), {}),
    "airy": (("airy", "air", "airier", "more air"), high_shelf(10000, 4.0), {}),
    "soft": (("soft", "softer", "gentle", "gentler", "smooth", "smoother", "mellow"),
             high_shelf(4000, -3.0) + peak(3000, -2.0), {"crest_db": -1.0}),
    "harsh": (("harsh", "harsher", "edgy", "edgier", "piercing"), peak(3000, 4.0, 1.2), {}),
    "sibilance": (("sibilance", "sibilant", "esses", "hiss", "hissy"), peak(7000, 5.0, 0.7), {}),
    "deep voice": (("deep voice", "deeper voice", "deep", "deeper", "lower voice", "lower pitch"),
                   low_shelf(200, 2.0), {"f0_median_hz": ST ** -2, "f1_hz": 0.94, "f2_hz": 0.94, "f3_hz": 0.94}),
    "high voice": (("high voice", "higher voice", "higher pitch", "high pitched", "higher"),
                   low_shelf(200, -1.5), {"f0_median_hz": ST ** 2, "f1_hz": 1.06, "f2_hz": 1.06, "f3_hz": 1.06}),
    "nasal": (("nasal", "nasally", "nasality", "honky"), peak(1000, 5.0, 0.6) + peak(300, -1.5), {}),
    "breathy": (("breathy", "breathier", "breathiness", "whispery"), high_shelf(6000, 2.0), {"hnr_db": -4.0}),
    "slow": (("slow", "slower", "slowed"), np.zeros(N_BANDS), {"onset_rate_hz": 0.85}),
    "fast": (("fast", "faster", "quicker", "quick"), np.zeros(N_BANDS), {"onset_rate_hz": 1.15}),
    "loud": (("loud", "louder", "hotter"), np.zeros(N_BANDS), {"lufs_integrated": 3.0}),
    "quiet": (("quiet", "quieter"), np.zeros(N_BANDS), {"lufs_integrated": -3.0}),
    "radio": (("radio", "broadcast", "radio voice"), low_shelf(120, 3.0) + peak(3500, 3.0) + band_limit(60, 15000, 12),
              {"crest_db": -3.0, "lra_lu": -3.0}),
    "telephone": (("telephone", "phone", "phone call", "telephone line"), band_limit(300, 3400) + peak(1500, 3.0),
                  {}),
    "muddy": (("muddy", "muddier", "mud", "boxy"), peak(300, 4.0, 1.2), {}),
    "boomy": (("boomy", "boom", "boominess"), peak(120, 4.0, 1.0), {}),
    "thin": (("thin", "thinner", "tinny"), low_shelf(250, -5.0), {}),
    "full": (("full", "fuller", "fat", "fatter", "thick", "thicker", "body"), low_shelf(200, 3.0) + peak(500, 1.0), {}),
    "crisp": (("crisp", "crisper", "crispy", "sparkle", "sparkly"), peak(5000, 3.0) + high_shelf(10000, 2.0), {}),
    "presence": (("presence", "present", "forward", "upfront"), peak(3500, 3.0, 1.2), {}),
    "compressed": (("compressed", "squashed", "even", "evener", "punchy"), np.zeros(N_BANDS),
                   {"crest_db": -3.0, "lra_lu": -3.0}),
    "dynamic": (("dynamic", "dynamics", "open", "natural dynamics"), np.zeros(N_BANDS), {"crest_db": 3.0, "lra_lu": 3.0}),
    "distant": (("distant", "far away", "farther", "far"), high_shelf(4000, -4.0) + low_shelf(200, -2.0), {}),
    "close": (("close", "closer", "intimate", "proximity"), low_shelf(200, 3.0) + high_shelf(5000, 1.0), {}),
}

INTENSITY = {"a bit": 0.5, "a little": 0.5, "a touch": 0.5, "slightly": 0.5, "somewhat": 0.5, "little": 0.5,
             "bit": 0.5, "much": 2.0, "a lot": 2.0, "lot": 2.0, "lots": 2.0, "very": 2.0, "way": 2.0,
             "really": 2.0, "extremely": 2.0, "a lot more": 2.0, "much more": 2.0}
NEGATION = {"not", "no", "less", "fewer", "without", "dont", "don't", "never", "reduce", "remove", "cut"}
POSITIVE = {"more", "add", "boost", "increase", "extra", "some"}
STOP = {"a", "an", "the", "tone", "sound", "sounding", "make", "it", "with", "please", "to", "of", "my", "me",
        "bit", "little", "lot", "and", "too", "so", "as", "is", "be", "should", "i", "want", "like",
        "quality", "overall", "than", "now", "voice"}

ALIASES = {a: k for k, (al, _, _) in VOCAB.items() for a in al}


def known_words() -> list[str]:
    return sorted(ALIASES)


def _split_phrases(text: str) -> list[str]:
    parts = re.split(r"[,;/]|\band\b|\bbut\b|\bplus\b", text.lower())
    return [p.strip() for p in parts if p and p.strip()]


def parse_phrase(phrase: str) -> tuple[str, float]:
    """(descriptor name, signed intensity) of one phrase; raises DescriptorError."""
    words = re.findall(r"[a-z']+", phrase.lower().replace("-", " "))
    scale, sign = 1.0, 1.0
    rest = []
    i = 0
    while i < len(words):
        two = " ".join(words[i : i + 2])
        if two in INTENSITY and two not in ALIASES:
            scale *= INTENSITY[two]
            i += 2
            continue
        w = words[i]
        if w in INTENSITY:
            scale *= INTENSITY[w]
        elif w in NEGATION:
            sign = -sign
        elif w in POSITIVE:
            pass
        else:
            rest.append(w)
        i += 1
    # longest alias first, with and without the stop words
    for cand in (" ".join(rest), " ".join(w for w in rest if w not in STOP)):
        if cand in ALIASES:
            return ALIASES[cand], sign * scale
    content = [w for w in rest if w not in STOP]
    if not content:
        raise DescriptorError(f"{phrase!r}: no descriptor word; known: {', '.join(sorted(VOCAB))}")
    for n in range(len(content), 0, -1):
        for j in range(len(content) - n + 1):
            cand = " ".join(content[j : j + n])
            if cand in ALIASES:
                extra = [w for w in content if w not in cand.split()]
                if extra:
                    break
                return ALIASES[cand], sign * scale
    bad = [w for w in content if w not in ALIASES] or content
    close = []
    for w in bad:
        close += difflib.get_close_matches(w, known_words(), n=4, cutoff=0.6)
    close = list(dict.fromkeys(close)) or difflib.get_close_matches(" ".join(content), known_words(), n=4, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise DescriptorError(f"unknown descriptor {' '.join(bad)!r} in {phrase!r}{hint} "
                          f"(known: {', '.join(sorted(VOCAB))})")


def parse(text: str) -> list[tuple[str, float]]:
    """[(descriptor, signed intensity)] for a description; raises DescriptorError."""
    phrases = _split_phrases(text)
    if not phrases:
        raise DescriptorError("empty description; try e.g. \"more bass, clearer highs, softer\"")
    return [parse_phrase(p) for p in phrases]


def describe(text: str) -> Profile:
    """A delta Profile for a description (see the module doc)."""
    items = parse(text)
    out = empty_delta(description=text, descriptors=[[k, round(s, 3)] for k, s in items])
    env = np.zeros(N_BANDS)
    for name, s in items:
        _, shape, scalars = VOCAB[name]
        env += s * shape
        for dim, v in scalars.items():
            if dim in RATIO_DIMS:
                out.dims[dim] *= float(v) ** s
            else:
                out.dims[dim] += s * float(v)
    out.band_env_db = list(np.clip(env, -18.0, 18.0))
    return out
