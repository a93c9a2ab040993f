"""Objectives, constraints and the headline target for one evaluated candidate.

Objectives (NSGA-II, all turned into "bigger is better" for DEAP):
- output tok/s per device (maximise);
- tok/s per user (maximise), or mean end-to-end latency (minimise) when the target is latency;
- $ per 1M output tokens = price_per_hour * devices / (output tok/s * 3600) * 1e6 (minimise).

Constraints add up to one violation number; 0 means feasible. A candidate the predictor rejects scores
INVALID, one that does not fit in memory scores NO_FIT plus how far over it is, and an SLO miss scores the
sum of its relative misses, so among infeasible candidates the closest one ranks first and no infeasible
candidate ever ranks above a feasible one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..deployment import Deployment
from ..errors import BudsimError

TARGETS: tuple[str, ...] = ("throughput", "latency", "cost", "goodput")
INVALID = 1e6  # the predictor refused the configuration
NO_FIT = 1e3  # weights (plus minimal KV) do not fit the device memory
WORST = 1e12  # objective value standing in for "nothing" in minimised objectives

# Percentile keys a prediction may carry per metric (prediction keys are "<metric>_p<q>").
_PCT_RE = re.compile(r"^p(\d+(?:\.\d+)?)$")


def parse_percentile(text: str) -> str:
    """Normalise a percentile name: p50/p90/p95/p99/p99.9, median -> p50, mean/avg -> mean."""
    key = text.strip().lower()
    if key in ("mean", "avg", "average"):
        return "mean"
    if key == "median":
        return "p50"
    if not key.startswith("p"):
        key = "p" + key
    match = _PCT_RE.match(key)
    if not match or not (0 < float(match.group(1)) < 100):
        raise BudsimError(f"unknown percentile {text!r}; use mean, p50, p90, p95, p99 or similar")
    q = float(match.group(1))
    return f"p{q:g}"


def metric_at(
    prediction: Mapping[str, Any], metric: str, percentile: str
) -> tuple[float | None, str]:
    """The value of `metric` ("ttft_ms", "tpot_ms", "e2e_s", ...) at `percentile`, and how it was found.

    Uses the key itself when the prediction has it. Otherwise it interpolates linearly in percentile
    between the nearest available percentiles below and above (for the right-skewed latency
    distributions served traffic has, the quantile curve is convex, so this errs on the high,
    conservative side). Above the highest available percentile it uses that one and says so.
    """
    if percentile == "mean":
        value = prediction.get(f"{metric}_mean")
        return (None if value is None else float(value)), f"{metric}_mean"
    direct = prediction.get(f"{metric}_{percentile}")
    if direct is not None:
        return float(direct), f"{metric}_{percentile}"
    q = float(percentile[1:])
    points: list[tuple[float, float]] = []
    prefix = f"{metric}_p"
    for key, value in prediction.items():
        if not key.startswith(prefix) or value is None:
            continue
        rest = key[len(prefix) :]
        try:
            points.append((float(rest), float(value)))
        except ValueError:
            continue  # e.g. "_p99_lo" band keys
    if not points:
        mean = prediction.get(f"{metric}_mean")
        if mean is None:
            return None, "unavailable"
        return float(mean), f"{metric}_mean (no percentiles predicted)"
    points.sort()
    below = [p for p in points if p[0] < q]
    above = [p for p in points if p[0] > q]
    if below and above:
        (q0, v0), (q1, v1) = below[-1], above[0]
        value = v0 + (v1 - v0) * (q - q0) / (q1 - q0)
        return value, f"interpolated p{q0:g}-p{q1:g}"
    if above:
        q1, v1 = above[0]
        return v1, f"p{q1:g} (conservative: nothing lower predicted)"
    q0, v0 = below[-1]
    return v0, f"p{q0:g} (optimistic: nothing higher predicted)"


@dataclass(frozen=True)
class Constraints:
    """SLOs and floors. Latency limits apply at `percentile`."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    percentile: str = "p95"
    min_output_tok_s: float | None = None
    min_requests_per_s: float | None = None
    max_memory_gb: float | None = None  # per device: weights + KV cache

    def __post_init__(self) -> None:
        from ..schema import check_constraints  # the input rules (ConstraintsInput)

        object.__setattr__(self, "percentile", check_constraints(self))

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (self.ttft_ms, self.tpot_ms, self.min_output_tok_s, self.min_requests_per_s)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "percentile": self.percentile,
            "min_output_tok_s": self.min_output_tok_s,
            "min_requests_per_s": self.min_requests_per_s,
            "max_memory_gb": self.max_memory_gb,
        }


@dataclass(frozen=True)
class Check:
    """One constraint on one candidate."""

    name: str  # e.g. "ttft_ms_p95", "min_output_tok_s", "memory"
    value: float | None
    limit: float | None
    violation: float  # relative miss, 0 when met
    how: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "violation": self.violation,
            "met": self.violation == 0,
            "how": self.how,
        }


@dataclass(frozen=True)
class Score:
    objectives: tuple[float, float, float]  # natural units (see Scorer.objective_names)
    signed: tuple[float, float, float]  # bigger is better, for DEAP
    violation: float
    target: float  # headline score, bigger is better
    status: str  # ok | slo | no_fit | invalid
    checks: tuple[Check, ...] = field(default_factory=tuple)
    usd_per_1m_output_tokens: float | None = None

    @property
    def feasible(self) -> bool:
        return self.violation == 0.0

    def binding(self) -> str | None:
        """The constraint missed by most (None when feasible)."""
        if self.status in ("invalid", "no_fit"):
            return self.status
        missed = [c for c in self.checks if c.violation > 0]
        if not missed:
            return None
        return max(missed, key=lambda c: c.violation).name


class Scorer:
    """Turns (deployment, prediction dict) into a Score for one optimisation."""

    def __init__(
        self,
        *,
        target: str = "throughput",
        constraints: Constraints | None = None,
        price_per_hour: float = 1.0,
        device_memory_gb: float | None = None,
    ) -> None:
        if target not in TARGETS:
            raise BudsimError(f"unknown objective {target!r}; choose one of {', '.join(TARGETS)}")
        self.target = target
        self.constraints = constraints or Constraints()
        self.price_per_hour = float(price_per_hour)
        self.device_memory_gb = device_memory_gb
        self.latency_objective = target == "latency"

    @property
    def objective_names(self) -> tuple[str, str, str]:
        second = "e2e_s_mean" if self.latency_objective else "tok_s_per_user"
        return ("output_tok_s_per_device", second, "usd_per_1m_output_tokens")

    @property
    def objective_senses(self) -> tuple[str, str, str]:
        return ("max", "min" if self.latency_objective else "max", "min")

    def invalid(self, reason: str = "") -> Score:
        return Score(
            objectives=(0.0, WORST if self.latency_objective else 0.0, WORST),
            signed=(0.0, -WORST if self.latency_objective else 0.0, -WORST),
            violation=INVALID,
            target=-math.inf,
            status="invalid",
            checks=(Check("predictor", None, None, INVALID, reason),),
        )

    def score(self, deployment: Deployment, prediction: Mapping[str, Any] | None) -> Score:
        if prediction is None:
            return self.invalid("the predictor rejected this configuration")
        devices = int(prediction.get("devices") or deployment.devices)
        if not prediction.get("fits", True):
            return self._no_fit(prediction)
        tok_s = _num(prediction.get("output_tok_s"))
        per_device = _num(prediction.get("output_tok_s_per_device"))
        if per_device is None and tok_s is not None:
            per_device = tok_s / devices
        if tok_s is None and per_device is not None:
            tok_s = per_device * devices
        if not tok_s or not per_device or tok_s <= 0 or not math.isfinite(tok_s):
            return self.invalid("no throughput predicted")
        usd = self.price_per_hour * devices / (tok_s * 3600.0) * 1e6
        if self.latency_objective:
            e2e = _num(prediction.get("e2e_s_mean")) or _num(prediction.get("e2e_s_p50"))
            second = e2e if e2e is not None else WORST
            second_signed = -second
        else:
            per_user = _num(prediction.get("tok_s_per_user"))
            second = per_user if per_user is not None else 0.0
            second_signed = second
        checks = self._checks(prediction, tok_s)
        violation = sum(c.violation for c in checks)
        objectives = (per_device, second, usd)
        return Score(
            objectives=objectives,
            signed=(per_device, second_signed, -usd),
            violation=violation,
            target=self._target(prediction, per_device, usd),
            status="ok" if violation == 0 else "slo",
            checks=tuple(checks),
            usd_per_1m_output_tokens=usd,
        )

    def _target(self, prediction: Mapping[str, Any], per_device: float, usd: float) -> float:
        if self.target == "throughput":
            return per_device
        if self.target == "cost":
            return -usd
        if self.target == "latency":
            e2e = _num(prediction.get("e2e_s_mean")) or _num(prediction.get("e2e_s_p50"))
            return -e2e if e2e is not None else -math.inf
        rps = _num(prediction.get("requests_per_s"))  # goodput: requests/s served within the SLOs
        return rps if rps is not None else -math.inf

    def _no_fit(self, prediction: Mapping[str, Any]) -> Score:
        weights = _num(prediction.get("weights_gb_per_device")) or 0.0
        over = weights / self.device_memory_gb if self.device_memory_gb else 1.0
        violation = NO_FIT + over
        check = Check("memory", weights, self.device_memory_gb, violation, "weights per device")
        worst_second = WORST if self.latency_objective else 0.0
        return Score(
            objectives=(0.0, worst_second, WORST),
            signed=(0.0, -worst_second, -WORST),
            violation=violation,
            target=-math.inf,
            status="no_fit",
            checks=(check,),
        )

    def _checks(self, prediction: Mapping[str, Any], tok_s: float) -> list[Check]:
        c = self.constraints
        out: list[Check] = []
        for metric, limit in (("ttft_ms", c.ttft_ms), ("tpot_ms", c.tpot_ms)):
            if limit is None:
                continue
            value, how = metric_at(prediction, metric, c.percentile)
            if value is None:
                out.append(Check(f"{metric}_{c.percentile}", None, limit, 1.0, how))
                continue
            out.append(
                Check(f"{metric}_{c.percentile}", value, limit, max(0.0, value / limit - 1), how)
            )
        if c.min_output_tok_s is not None:
            limit = c.min_output_tok_s
            out.append(
                Check("min_output_tok_s", tok_s, limit, max(0.0, 1 - tok_s / limit), "output_tok_s")
            )
        if c.min_requests_per_s is not None:
            rps = _num(prediction.get("requests_per_s")) or 0.0
            limit = c.min_requests_per_s
            out.append(
                Check("min_requests_per_s", rps, limit, max(0.0, 1 - rps / limit), "requests_per_s")
            )
        if c.max_memory_gb is not None:
            used = (_num(prediction.get("weights_gb_per_device")) or 0.0) + (
                _num(prediction.get("kv_cache_gb_per_device")) or 0.0
            )
            limit = c.max_memory_gb
            miss = max(0.0, used / limit - 1.01)  # 1% slack for rounding in the memory plan
            out.append(Check("max_memory_gb", used, limit, miss, "weights + KV per device"))
        return out


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
