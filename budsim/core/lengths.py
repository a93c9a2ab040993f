"""Request-length mixes: the shapes of a workload's requests when they are not all alike.

A mix is a tuple of entries (weight, input mean, output mean, input sd, output sd). It comes from
text in AIPerf's sequence-distribution style, `"ISL,OSL:weight;..."` with an optional standard
deviation as `ISL|SD` (e.g. `"256|40,128|20:0.7;2048,512:0.3"`), or from a CSV of a user's own
(input, output) pairs, one row per request, identical pairs folded into one weighted entry (every
entry then has sd 0: the pairs are replayed as they are). A request draws an entry by weight, then
each length from a normal around its mean, clamped to [1, mean + 3 sd] so that the longest request,
which sizes the KV cache and the engine's context, is known.

A lognormal length is written `MEDIAN~SIGMA` (the median in tokens and the standard deviation of
ln(tokens), as a lognormal fit reports them: scipy's lognorm(s=SIGMA, scale=MEDIAN)). It is cut
into LOGNORMAL_BINS equally likely slices, each an entry at the slice's own mean and sd, so the
mix keeps its 5-field entries (the simulator, the stored runs and the exports read them as before)
while its mean is the lognormal's and its tail reaches far past the median. An entry with both
lengths lognormal becomes LOGNORMAL_BINS^2 entries (input and output drawn independently).

Named presets (`PRESETS`) stand for a whole mix with a documented source: `--length-mix azure-conv`.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BudsimError

LengthMix = tuple[tuple[float, int, int, float, float], ...]
MAX_ENTRIES = 10_000  # distinct (input, output) shapes a mix keeps
SD_CAP = 3.0  # draws are clamped to mean + SD_CAP * sd
LOGNORMAL_BINS = 8  # equally likely slices a lognormal length is cut into


@dataclass(frozen=True)
class LengthPreset:
    name: str
    text: str  # the mix in this module's syntax
    label: str
    source: str  # where the numbers come from, precisely enough to check them


# Each preset's numbers are computed from the published data named in its source, not assumed.
PRESETS: dict[str, LengthPreset] = {
    "azure-conv": LengthPreset(
        "azure-conv",
        # lognormal fits (mean and sd of ln tokens) of the 19,366 requests of the Azure LLM
        # inference trace 2023, conversation service: ln(context) 6.633 +- 0.985 (median 760),
        # ln(generated) 5.019 +- 0.859 (median 151); the two are nearly independent (correlation
        # of the logs 0.09). The trace itself: context mean 1,155, median 1,020, p90 2,735, max
        # 14,050; generated mean 211, median 129, p90 424, max 1,000. The fit's p10/p90 (215 /
        # 2,686 context) match the trace's (207 / 2,735); its median is lower (760 v. 1,020).
        "760~0.985,151~0.859",
        "Azure LLM inference trace 2023, conversation (lognormal fit)",
        "Azure/AzurePublicDataset data/AzureLLMInferenceTrace_conv.csv (commit 7909210, "
        "2024-03-24; the trace of Patel et al., 'Splitwise', ISCA 2024), 19,366 requests; "
        "lognormal fit by budsim: median 760 / sigma 0.985 input, 151 / 0.859 output tokens",
    ),
}


def preset(text: str) -> LengthPreset | None:
    """The named preset `text` stands for, or None when it is a mix of its own."""
    return PRESETS.get(text.strip().lower())


__all__ = [
    "LengthMix",
    "LengthPreset",
    "LengthSampler",
    "PRESETS",
    "mix_from_pairs",
    "mix_from_text",
    "mix_longest",
    "mix_means",
    "mix_text",
    "preset",
    "read_pairs_csv",
    "validate_mix",
]


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BudsimError(f"length mix: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BudsimError(f"length mix: {what} {text!r} is not finite")
    return value


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _lognormal_slices(median: float, sigma: float) -> list[tuple[int, float]]:
    """(mean, sd) of each of LOGNORMAL_BINS equally likely slices of a lognormal: the slice's
    conditional moments, from E[X^n; a < X < b] = e^(n mu + n^2 sigma^2 / 2) (Phi(zb - n sigma)
    - Phi(za - n sigma)) with z the slice's edges in standard units."""
    from statistics import NormalDist

    if sigma == 0:
        return [(max(1, round(median)), 0.0)] * LOGNORMAL_BINS
    mu, p = math.log(median), 1.0 / LOGNORMAL_BINS
    edges = [-math.inf] + [NormalDist().inv_cdf(i * p) for i in range(1, LOGNORMAL_BINS)]
    edges.append(math.inf)
    slices = []
    for za, zb in itertools.pairwise(edges):
        m1 = math.exp(mu + sigma**2 / 2) * (_phi(zb - sigma) - _phi(za - sigma)) / p
        m2 = math.exp(2 * mu + 2 * sigma**2) * (_phi(zb - 2 * sigma) - _phi(za - 2 * sigma)) / p
        slices.append((max(1, round(m1)), math.sqrt(max(0.0, m2 - m1 * m1))))
    return slices


def _length(text: str, what: str) -> tuple[int, float]:
    """'256' or '256|40' -> (mean, sd)."""
    mean_text, _, sd_text = text.strip().partition("|")
    mean = _number(mean_text.strip(), f"{what} length")
    if mean < 1 or mean != int(mean):
        raise BudsimError(
            f"length mix: {what} length must be a whole number >= 1, got {mean_text!r}"
        )
    sd = _number(sd_text.strip(), f"{what} sd") if sd_text.strip() else 0.0
    if sd < 0:
        raise BudsimError(f"length mix: {what} sd must be >= 0, got {sd_text!r}")
    return int(mean), sd


def _lengths(text: str, what: str) -> list[tuple[int, float]]:
    """'256', '256|40' -> [(mean, sd)]; '760~0.985' (lognormal) -> its slices' (mean, sd)."""
    if "~" not in text:
        return [_length(text, what)]
    median_text, _, sigma_text = text.strip().partition("~")
    median = _number(median_text.strip(), f"{what} median")
    sigma = _number(sigma_text.strip(), f"{what} sigma")
    if median < 1 or not 0 <= sigma <= 3:
        raise BudsimError(
            f"length mix: a lognormal {what} length is MEDIAN~SIGMA with a median >= 1 token and "
            f"a sigma of ln(tokens) in [0, 3], got {text.strip()!r}"
        )
    return _lognormal_slices(median, sigma)


def mix_from_text(text: str) -> LengthMix:
    """Parse `"ISL[|SD],OSL[|SD]:weight;..."` (the weight may be left out: 1), a length written
    MEDIAN~SIGMA being lognormal, or the name of a preset (`PRESETS`)."""
    named = preset(text)
    if named is not None:
        text = named.text
    entries = []
    for part in text.replace("\n", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        shape, _, weight_text = part.partition(":")
        lengths = shape.split(",")
        if len(lengths) != 2:
            raise BudsimError(
                f"length mix: {part!r} is not INPUT,OUTPUT[:weight] (e.g. 1024,256:0.7 or "
                "1024|128,256|32:0.3)"
            )
        inputs, outputs = _lengths(lengths[0], "input"), _lengths(lengths[1], "output")
        weight = _number(weight_text.strip(), "weight") if weight_text.strip() else 1.0
        share = weight / (len(inputs) * len(outputs))
        for (isl, isd), (osl, osd) in itertools.product(inputs, outputs):
            entries.append((share, isl, osl, isd, osd))
    mix = tuple(entries)
    validate_mix(mix)
    return mix


def mix_from_pairs(pairs: Iterable[tuple[int, int]]) -> LengthMix:
    """A user's (input, output) pairs, identical ones folded into one entry weighted by count."""
    counts = Counter(pairs)
    if len(counts) > MAX_ENTRIES:
        raise BudsimError(
            f"length mix: {len(counts):,} distinct (input, output) pairs; at most {MAX_ENTRIES:,} "
            "(round the lengths, e.g. to 16 tokens)"
        )
    mix = tuple((float(n), isl, osl, 0.0, 0.0) for (isl, osl), n in sorted(counts.items()))
    validate_mix(mix)
    return mix


def read_pairs_csv(path: Path) -> LengthMix:
    """A CSV with `input_len` and `output_len` columns (header required), one request a row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise BudsimError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BudsimError(f"{path} is not a CSV file ({exc})") from None
    if not rows or not {"input_len", "output_len"} <= set(rows[0]):
        raise BudsimError(f"{path}: needs a header with input_len and output_len columns")
    pairs = []
    for line, row in enumerate(rows, start=2):
        try:
            isl, osl = int(str(row["input_len"]).strip()), int(str(row["output_len"]).strip())
        except (TypeError, ValueError):
            raise BudsimError(
                f"{path}:{line}: input_len and output_len must be whole numbers"
            ) from None
        if isl < 1 or osl < 1:
            raise BudsimError(f"{path}:{line}: lengths must be >= 1")
        pairs.append((isl, osl))
    return mix_from_pairs(pairs)


def validate_mix(mix: Sequence[Sequence[float]]) -> None:
    if not mix:
        raise BudsimError("length mix: no entries")
    if len(mix) > MAX_ENTRIES:
        raise BudsimError(f"length mix: at most {MAX_ENTRIES:,} entries")
    for entry in mix:
        if len(entry) != 5:
            raise BudsimError(
                "length mix: each entry is (weight, input, output, input sd, output sd)"
            )
        weight, isl, osl, isd, osd = entry
        if not (weight > 0 and math.isfinite(weight)):
            raise BudsimError(f"length mix: weights must be positive, got {weight!r}")
        if not (isinstance(isl, int) and isinstance(osl, int) and isl >= 1 and osl >= 1):
            raise BudsimError("length mix: lengths must be whole numbers >= 1")
        if not (isd >= 0 and osd >= 0 and math.isfinite(isd) and math.isfinite(osd)):
            raise BudsimError("length mix: standard deviations must be >= 0")


def mix_means(mix: LengthMix) -> tuple[int, int]:
    """The mix's mean input and output lengths (rounded)."""
    total = sum(e[0] for e in mix)
    isl = sum(e[0] * e[1] for e in mix) / total
    osl = sum(e[0] * e[2] for e in mix) / total
    return max(1, round(isl)), max(1, round(osl))


def _cap(mean: int, sd: float) -> int:
    return mean + math.ceil(SD_CAP * sd)


def mix_longest(mix: LengthMix) -> tuple[int, int, int]:
    """(longest input, longest output, longest request) any draw can give."""
    return (
        max(_cap(e[1], e[3]) for e in mix),
        max(_cap(e[2], e[4]) for e in mix),
        max(_cap(e[1], e[3]) + _cap(e[2], e[4]) for e in mix),
    )


class LengthSampler:
    """Draws one request's (input, output) lengths from a mix (cumulative weights made once)."""

    def __init__(self, mix: LengthMix) -> None:
        self.mix = mix
        self.cum = list(itertools.accumulate(e[0] for e in mix))

    def __call__(self, rng: random.Random) -> tuple[int, int]:
        mix = self.mix
        entry = mix[0] if len(mix) == 1 else rng.choices(mix, cum_weights=self.cum)[0]
        _, isl, osl, isd, osd = entry
        if isd:
            isl = min(_cap(isl, isd), max(1, round(rng.gauss(isl, isd))))
        if osd:
            osl = min(_cap(osl, osd), max(1, round(rng.gauss(osl, osd))))
        return isl, osl


def mix_text(mix: LengthMix, limit: int | None = 4) -> str:
    """The mix in its own syntax. limit=None: every entry with its own weight (parses back to the
    same mix); else its first `limit` entries with their shares (`… +N more`), for display."""

    def length(mean: int, sd: float) -> str:
        return f"{mean}|{sd:g}" if sd else str(mean)

    total = sum(e[0] for e in mix)
    shown = mix if limit is None else mix[:limit]
    parts = [
        f"{length(e[1], e[3])},{length(e[2], e[4])}:"
        + (f"{e[0]:g}" if limit is None else f"{e[0] / total:.2g}")
        for e in shown
    ]
    more = len(mix) - len(shown)
    return ";".join(parts) + (f" … +{more} more" if more > 0 else "")
