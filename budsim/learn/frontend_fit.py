"""Fitting the front end's fixed latency to measured rows (`budsim train`, and per fold in `budsim validate`).

The front end itself (`FrontEnd`, the shipped ``pretrained/front_end.json``) is runtime and lives in
budsim.core.frontend; this module only fits its one constant, `fixed_ms`, to training samples.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from budsim.core import frontend
from budsim.core.frontend import DEFAULT_FIXED_MS, FrontEnd

from .samples import Sample, with_front_end

LOW_LOAD = 4  # clients: at most this many requests in flight


def fit_fixed_ms(excess_ms: Iterable[float]) -> float:
    """The fixed front-end cost from low-load TTFT excesses (measured TTFT minus the simulated one
    without a fixed front end), in ms: their median, never negative."""
    values = [v for v in excess_ms if v == v]  # NaN-free
    return max(0.0, statistics.median(values)) if values else DEFAULT_FIXED_MS


def low_load_excess_ms(samples: Iterable[Sample], fixed_ms: float) -> list[float]:
    """Measured TTFT minus the simulated one without the fixed front end, in ms, of the vLLM runs
    at a concurrency of at most LOW_LOAD (see budsim.core.frontend's docstring)."""
    out = []
    for s in samples:
        if s.engine != "vllm" or s.scenario != "concurrency" or s.load > LOW_LOAD:
            continue
        for column, key, measured in s.targets:
            predicted = getattr(s.pred, key, None)
            if column == "ttft_ms" and predicted:
                out.append(measured - (predicted - fixed_ms))
    return out


def fit(samples: Iterable[Sample], current: FrontEnd) -> FrontEnd:
    """The front end fitted to the measured `samples`, whose physics used `current`."""
    excess = low_load_excess_ms(samples, current.fixed_ms)
    fixed = round(fit_fixed_ms(excess), 3)
    return FrontEnd(fixed, current.tokenize_us_per_token, f"median of {len(excess)} runs")


def fit_front_end(
    samples: list[Sample], training: Sequence[Sample] | None = None
) -> tuple[list[Sample], FrontEnd]:
    """The front end fitted on `training` (default: all `samples`), and `samples` as their
    physics is with it (budsim.core.frontend: the one constant fitted to end-to-end rows)."""
    current = frontend.front_end()
    fitted = fit(samples if training is None else training, current)
    return with_front_end(samples, fitted.fixed_ms - current.fixed_ms), fitted
