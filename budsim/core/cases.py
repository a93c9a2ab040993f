"""One prediction case from loosely typed fields (CLI flags or a CSV row) -> (Deployment, Workload).

Both `budsim predict --model ...` and `budsim predict --cases FILE.csv` go through `parse_case`, so a bad
value gets the same one-line message in both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .deployment import SCENARIOS, Deployment, Workload
from .dtypes import KV_DTYPES, WEIGHT_DTYPES
from .errors import BudsimError

CASE_COLUMNS = (
    "id",
    "model",
    "hardware",
    "engine",
    "tp",
    "pp",
    "dp",
    "ep",
    "replicas",
    "weight_dtype",
    "kv_dtype",
    "scenario",
    "concurrency",
    "batch_size",
    "rate",
    "burstiness",
    "input_len",
    "output_len",
    "max_num_seqs",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
    "num_requests",
    "shared_prefix_len",
    "cached_share",
    "spec_method",
    "spec_tokens",
    "spec_acceptance",
    "spec_draft_model",
    "length_mix",
)
REQUIRED = ("model", "hardware", "engine", "input_len", "output_len")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _int(fields: Mapping[str, Any], name: str, default: int | None, minimum: int = 1) -> int | None:
    """A whole number >= `minimum` (blank: `default`)."""
    value = fields.get(name)
    if _blank(value):
        return default
    what = "a positive integer" if minimum == 1 else f"a whole number >= {minimum}"
    try:
        number = float(str(value).strip())
    except ValueError:
        raise BudsimError(f"{name} must be {what}, got {value!r}") from None
    if not math.isfinite(number) or number != int(number) or number < minimum:
        raise BudsimError(f"{name} must be {what}, got {value!r}")
    return int(number)


def _tokens(fields: Mapping[str, Any], name: str) -> int:
    """A token count that may be 0 (blank: 0)."""
    return _int(fields, name, 0, minimum=0) or 0


def _share(fields: Mapping[str, Any], name: str) -> float:
    """A fraction in [0, 1) (blank: 0)."""
    value = fields.get(name)
    if _blank(value):
        return 0.0
    try:
        number = float(str(value).strip())
    except ValueError:
        raise BudsimError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not (math.isfinite(number) and 0.0 <= number < 1.0):
        raise BudsimError(f"{name} must be a number in [0, 1), got {value!r}")
    return number


def _float(fields: Mapping[str, Any], name: str, default: float | None) -> float | None:
    value = fields.get(name)
    if _blank(value):
        return default
    try:
        number = float(str(value).strip())
    except ValueError:
        raise BudsimError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise BudsimError(f"{name} must be a positive number, got {value!r}")
    return number


def parse_burstiness(value: Any) -> float:
    """The gamma shape of the arrival gaps (blank = 1, Poisson)."""
    number = _float({"burstiness": value}, "burstiness", 1.0)
    return 1.0 if number is None else number


def _str(fields: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    value = fields.get(name)
    return default if _blank(value) else str(value).strip()


def parse_case(fields: Mapping[str, Any]) -> tuple[Deployment, Workload]:
    """Build and validate a deployment and workload from string-ish fields."""
    required = REQUIRED if _blank(fields.get("length_mix")) else REQUIRED[:3]
    missing = [name for name in required if _blank(fields.get(name))]
    if missing:
        raise BudsimError(f"missing {', '.join(missing)}")
    weight = (_str(fields, "weight_dtype", "auto") or "auto").lower()
    if weight not in (*WEIGHT_DTYPES, "auto"):
        raise BudsimError(
            f"unknown weight_dtype {weight!r}; choose one of {', '.join(WEIGHT_DTYPES)} or auto"
        )
    kv = (_str(fields, "kv_dtype", "auto") or "auto").lower()
    if kv not in KV_DTYPES:
        raise BudsimError(f"unknown kv_dtype {kv!r}; choose auto or fp8")
    load_given = [n for n in ("concurrency", "batch_size", "rate") if not _blank(fields.get(n))]
    scenario = _str(fields, "scenario")
    if scenario is None and len(load_given) > 1:
        raise BudsimError(
            f"give one load ({' or '.join(load_given)}), or the scenario that picks one of them"
        )
    if scenario is None:
        inferred = {"concurrency": "concurrency", "batch_size": "static", "rate": "rate"}
        scenario = inferred[load_given[0]] if load_given else "concurrency"
    scenario = scenario.lower()
    if scenario not in SCENARIOS:
        raise BudsimError(f"unknown scenario {scenario!r}; choose concurrency, static or rate")
    if scenario != "rate" and not _blank(fields.get("burstiness")):
        raise BudsimError("burstiness shapes the arrivals of the rate scenario; give a rate")
    dep = Deployment(
        model=str(_str(fields, "model")),
        hardware=str(_str(fields, "hardware")),
        engine=str(_str(fields, "engine")).lower(),
        tp=_int(fields, "tp", 1) or 1,
        pp=_int(fields, "pp", 1) or 1,
        dp=_int(fields, "dp", 1) or 1,
        ep=_int(fields, "ep", 1) or 1,
        replicas=_int(fields, "replicas", 1) or 1,
        weight_dtype=weight,
        kv_dtype=kv,
        max_num_seqs=_int(fields, "max_num_seqs", None),
        max_num_batched_tokens=_int(fields, "max_num_batched_tokens", None),
        gpu_memory_utilization=_float(fields, "gpu_memory_utilization", None),
        spec_method=(_str(fields, "spec_method", "none") or "none").lower(),
        spec_tokens=_tokens(fields, "spec_tokens"),
        spec_acceptance=_share(fields, "spec_acceptance")
        if not _blank(fields.get("spec_acceptance"))
        else None,
        spec_draft_model=_str(fields, "spec_draft_model", "") or "",
    )
    workload = Workload(
        scenario=scenario,  # type: ignore[arg-type]
        input_len=_int(fields, "input_len", None) or 1,
        output_len=_int(fields, "output_len", None) or 1,
        concurrency=_int(fields, "concurrency", 1) or 1,
        batch_size=_int(fields, "batch_size", 1) or 1,
        rate=_float(fields, "rate", 1.0) or 1.0,
        burstiness=parse_burstiness(fields.get("burstiness")),
        num_requests=_int(fields, "num_requests", None),  # blank: steady state
        shared_prefix_len=_tokens(fields, "shared_prefix_len"),
        cached_share=_share(fields, "cached_share"),
    )
    mix = _str(fields, "length_mix")
    if mix is not None:
        from .lengths import mix_from_text

        if not _blank(fields.get("input_len")) or not _blank(fields.get("output_len")):
            raise BudsimError("give input_len/output_len or a length_mix, not both")
        workload = workload.with_length_mix(mix_from_text(mix))
    dep.validate()
    workload.validate()
    return dep, workload
