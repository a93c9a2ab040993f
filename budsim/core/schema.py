"""What users type, checked in one place: the deployment and the workload as pydantic models.

Every input path goes through these models: `budsim predict` (flags and `--cases` CSV rows, via
budsim.core.cases.parse_case), `budsim optimize`, the TUI's setup form, and the frozen dataclasses
themselves (`Deployment.validate()` / `Workload.validate()` are calls into `check_deployment` /
`check_workload`, cached per value, so stored runs and configurations read back are held to the
same rules). Values may be typed (ints, floats) or loosely typed text (a CSV cell, a CLI flag, a form
field): blank text means "not given". Each rule raises a one-line message that names the field;
`one_line` gives it as budsim's error and `field_errors` maps the messages to field names (the
TUI marks the field). `to_deployment()` / `to_workload()` build the runtime dataclasses, which stay
plain frozen dataclasses because the predictor hashes them in hot caches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .deployment import MIN_BURSTINESS, SCENARIOS, Deployment, Workload
from .dtypes import KV_DTYPES, WEIGHT_DTYPES
from .errors import BudsimError

# the load field of each scenario, and the scenario a lone load field picks
LOAD_OF = {"concurrency": "concurrency", "static": "batch_size", "rate": "rate"}
SCENARIO_OF = {load: scenario for scenario, load in LOAD_OF.items()}


def problem(field: str | None, message: str) -> PydanticCustomError:
    """A rule's failure: `message` is the whole one-line text; `field` the input it is about (for
    a rule over several fields, the one a form marks)."""
    return PydanticCustomError("budsim", "{message}", {"message": message, "field": field})


# ----------------------------------------------------------------------------- value parsing


def _number(name: str, value: Any, what: str) -> float:
    """A finite number from a typed or text value."""
    if isinstance(value, bool):
        raise problem(name, f"{name} must be {what}, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise problem(name, f"{name} must be {what}, got {value!r}") from None
    if not math.isfinite(number):
        raise problem(name, f"{name} must be {what}, got {value!r}")
    return number


def whole(name: str, value: Any, minimum: int = 1) -> int:
    """A whole number >= `minimum`: "tp must be a positive integer, got '0'"."""
    what = "a positive integer" if minimum == 1 else f"a whole number >= {minimum}"
    text = value.replace(",", "") if isinstance(value, str) else value  # 1,024 tokens
    number = _number(name, text, what)
    if number != int(number) or number < minimum:
        raise problem(name, f"{name} must be {what}, got {value!r}")
    return int(number)


def in_range(name: str, value: Any, low: float, high: float, *, open_high: bool = False) -> float:
    """A number in [low, high] (or [low, high) with `open_high`)."""
    what = f"in [{low:g}, {high:g}{')' if open_high else ']'}"
    number = _number(name, value, what)
    if not (low <= number < high if open_high else low <= number <= high):
        raise problem(name, f"{name} must be {what}, got {value!r}")
    return number


def fraction(name: str, value: Any) -> float:
    """A share in [0, 1)."""
    return in_range(name, value, 0.0, 1.0, open_high=True)


def _word(value: Any) -> str:
    return str(value).strip().lower()


class _Input(BaseModel):
    """Blank text is a value not given (the default); other text loses its outer spaces."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _drop_blanks(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.strip()
            if value is None or value == "":
                continue
            out[key] = value
        return out


# ----------------------------------------------------------------------------- the deployment


class DeploymentInput(_Input):
    """One engine configuration (budsim.core.deployment.Deployment) as a user gives it."""

    model: str | None = None
    hardware: str | None = None
    engine: str | None = None
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    replicas: int = 1
    weight_dtype: str = "auto"
    kv_dtype: str = "auto"
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    gpu_memory_utilization: float | None = None
    spec_method: str = "none"
    spec_tokens: int = 0
    spec_acceptance: float | None = None
    spec_draft_model: str = ""

    @field_validator("model", "hardware", "spec_draft_model", mode="before")
    @classmethod
    def _text(cls, value: Any, info: Any) -> str:
        if not isinstance(value, str):
            raise problem(info.field_name, f"{info.field_name} must be text, got {value!r}")
        return value

    @field_validator("engine", "spec_method", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return _word(value)

    @field_validator("tp", "pp", "dp", "ep", "replicas", "max_num_seqs", mode="before")
    @classmethod
    def _positive_int(cls, value: Any, info: Any) -> int:
        return whole(info.field_name, value)

    @field_validator("max_num_batched_tokens", mode="before")
    @classmethod
    def _token_budget(cls, value: Any) -> int:
        return whole("max_num_batched_tokens", value)

    @field_validator("weight_dtype", mode="before")
    @classmethod
    def _weight_dtype(cls, value: Any) -> str:
        dtype = _word(value)
        if dtype not in (*WEIGHT_DTYPES, "auto"):
            raise problem(
                "weight_dtype",
                f"unknown weight_dtype {dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)} or auto",
            )
        return dtype

    @field_validator("kv_dtype", mode="before")
    @classmethod
    def _kv_dtype(cls, value: Any) -> str:
        dtype = _word(value)
        if dtype not in KV_DTYPES:
            raise problem("kv_dtype", f"unknown kv_dtype {dtype!r}; choose auto or fp8")
        return dtype

    @field_validator("gpu_memory_utilization", mode="before")
    @classmethod
    def _utilization(cls, value: Any) -> float:
        return in_range("gpu_memory_utilization", value, 0.05, 0.99)

    @field_validator("spec_tokens", mode="before")
    @classmethod
    def _spec_tokens(cls, value: Any) -> int:
        return whole("spec_tokens", value, minimum=0)

    @field_validator("spec_acceptance", mode="before")
    @classmethod
    def _spec_acceptance(cls, value: Any) -> float:
        return fraction("spec_acceptance", value)

    @model_validator(mode="after")
    def _whole_deployment(self) -> DeploymentInput:
        missing = [n for n in ("model", "hardware", "engine") if not getattr(self, n)]
        if missing:
            raise problem(missing[0], f"missing {', '.join(missing)}")
        if (self.tp * self.dp) % self.ep:
            raise problem("ep", f"ep={self.ep} must divide tp*dp={self.tp * self.dp}")
        from .speculative import validate_speculative

        try:
            validate_speculative(self.to_deployment())
        except BudsimError as exc:
            raise problem("spec_method", str(exc)) from None
        return self

    def to_deployment(self) -> Deployment:
        return Deployment(
            model=self.model or "",
            hardware=self.hardware or "",
            engine=self.engine or "",
            tp=self.tp,
            pp=self.pp,
            dp=self.dp,
            ep=self.ep,
            replicas=self.replicas,
            weight_dtype=self.weight_dtype,
            kv_dtype=self.kv_dtype,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            gpu_memory_utilization=self.gpu_memory_utilization,
            spec_method=self.spec_method,
            spec_tokens=self.spec_tokens,
            spec_acceptance=self.spec_acceptance,
            spec_draft_model=self.spec_draft_model,
        )


# ----------------------------------------------------------------------------- the workload


class WorkloadInput(_Input):
    """The traffic (budsim.core.deployment.Workload) as a user gives it.

    With no scenario, a lone load field picks it (batch_size: static, rate: rate) and none is a
    closed loop of 1 client. `burstiness` belongs to the rate scenario only. A `length_mix` (text
    as budsim.core.lengths.mix_from_text reads it, or entries) replaces input_len/output_len.
    """

    scenario: str | None = None
    input_len: int | None = None
    output_len: int | None = None
    concurrency: int | None = None
    batch_size: int | None = None
    rate: float | None = None
    burstiness: float | None = None
    num_requests: int | None = None
    input_len_spread: float = 0.0
    output_len_spread: float = 0.0
    seed: int = 0
    shared_prefix_len: int = 0
    cached_share: float = 0.0
    length_mix: Any = None

    @field_validator("scenario", mode="before")
    @classmethod
    def _scenario(cls, value: Any) -> str:
        scenario = _word(value)
        if scenario not in SCENARIOS:
            raise problem(
                "scenario", f"unknown scenario {scenario!r}; choose concurrency, static or rate"
            )
        return scenario

    @field_validator(
        "input_len", "output_len", "concurrency", "batch_size", "num_requests", mode="before"
    )
    @classmethod
    def _positive_int(cls, value: Any, info: Any) -> int:
        return whole(info.field_name, value)

    @field_validator("rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> float:
        what = "a positive number of requests/s"
        number = _number("rate", value, what)
        if number <= 0:
            raise problem("rate", f"rate must be {what}, got {value!r}")
        return number

    @field_validator("burstiness", mode="before")
    @classmethod
    def _burstiness(cls, value: Any) -> float:
        what = f"a number >= {MIN_BURSTINESS} (1 = Poisson)"
        number = _number("burstiness", value, what)
        if number < MIN_BURSTINESS:
            raise problem("burstiness", f"burstiness must be {what}, got {value!r}")
        return number

    @field_validator("input_len_spread", "output_len_spread", "cached_share", mode="before")
    @classmethod
    def _share(cls, value: Any, info: Any) -> float:
        return fraction(info.field_name, value)

    @field_validator("shared_prefix_len", mode="before")
    @classmethod
    def _prefix(cls, value: Any) -> int:
        return whole("shared_prefix_len", value, minimum=0)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: Any) -> int:
        return whole("seed", value, minimum=0)

    @field_validator("length_mix", mode="before")
    @classmethod
    def _mix(cls, value: Any) -> tuple[tuple[float, int, int, float, float], ...]:
        from .lengths import mix_from_text, validate_mix

        try:
            if isinstance(value, str):
                return mix_from_text(value)
            mix = tuple(tuple(entry) for entry in value)
            validate_mix(mix)
        except BudsimError as exc:
            raise problem("length_mix", str(exc)) from None
        except (TypeError, ValueError):
            raise problem(
                "length_mix", f"length mix: not a list of entries, got {value!r}"
            ) from None
        return mix  # type: ignore[return-value]

    @model_validator(mode="after")
    def _whole_workload(self) -> WorkloadInput:
        if self.length_mix is not None:
            if self.input_len is not None or self.output_len is not None:
                raise problem("length_mix", "give input_len/output_len or a length_mix, not both")
            if self.input_len_spread or self.output_len_spread:
                raise problem("length_mix", "give a length mix or length spreads, not both")
        else:
            missing = [n for n in ("input_len", "output_len") if getattr(self, n) is None]
            if missing:
                raise problem(missing[0], f"missing {', '.join(missing)} (or a length_mix)")
        given = self._loads_given()
        if self.scenario is None and len(given) > 1:
            raise problem(
                given[0],
                f"give one load ({' or '.join(given)}), or the scenario that picks one of them",
            )
        scenario = self.scenario_name
        load = LOAD_OF[scenario]
        if self.scenario is not None and getattr(self, load) is None:
            raise problem(load, f"the {scenario} scenario needs a {load}")
        if scenario != "rate" and self.burstiness is not None:
            raise problem(
                "burstiness", "burstiness shapes the arrivals of the rate scenario; give a rate"
            )
        input_len = self.input_len
        if self.length_mix is not None:
            from .lengths import mix_means

            input_len = mix_means(self.length_mix)[0]
        if input_len is not None and self.shared_prefix_len >= input_len:
            raise problem(
                "shared_prefix_len",
                f"shared_prefix_len ({self.shared_prefix_len}) must be shorter than input_len "
                f"({input_len}): a prompt is its shared prefix plus at least one token of its own",
            )
        return self

    def _loads_given(self) -> list[str]:
        return [load for load in LOAD_OF.values() if getattr(self, load) is not None]

    @property
    def scenario_name(self) -> str:
        """The scenario named, or the one the load given picks (none: a closed loop)."""
        if self.scenario is not None:
            return self.scenario
        given = self._loads_given()
        return SCENARIO_OF[given[0]] if given else "concurrency"

    def to_workload(self) -> Workload:
        workload = Workload(
            scenario=self.scenario_name,  # type: ignore[arg-type]
            input_len=self.input_len or 1,
            output_len=self.output_len or 1,
            concurrency=self.concurrency or 1,
            batch_size=self.batch_size or 1,
            rate=self.rate or 1.0,
            burstiness=1.0 if self.burstiness is None else self.burstiness,
            num_requests=self.num_requests,
            input_len_spread=self.input_len_spread,
            output_len_spread=self.output_len_spread,
            seed=self.seed,
            shared_prefix_len=self.shared_prefix_len,
            cached_share=self.cached_share,
        )
        if self.length_mix is not None:
            workload = workload.with_length_mix(self.length_mix)
        return workload


# ----------------------------------------------------------------------------- errors


def _problems(exc: ValidationError) -> list[tuple[str | None, str]]:
    """(field, message) of each failed rule, in the order the fields are declared."""
    out = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        if err["type"] == "budsim":
            out.append((ctx.get("field"), str(ctx["message"])))
            continue
        # pydantic's own checks (a value of the wrong type): its text without the boilerplate
        loc = ".".join(str(part) for part in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append((loc or None, f"{loc}: {message}" if loc else message))
    return out


def one_line(exc: ValidationError) -> str:
    """The first failed rule as budsim's one-line error message."""
    return _problems(exc)[0][1]


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Field name -> message of each failed rule (the first per field); a rule about the whole
    input is keyed by the field it names."""
    errors: dict[str, str] = {}
    for name, message in _problems(exc):
        errors.setdefault(name or "", message)
    return errors


def deployment_input(fields: Mapping[str, Any]) -> DeploymentInput:
    try:
        return DeploymentInput.model_validate(fields)
    except ValidationError as exc:
        raise BudsimError(one_line(exc)) from None


def workload_input(fields: Mapping[str, Any]) -> WorkloadInput:
    try:
        return WorkloadInput.model_validate(fields)
    except ValidationError as exc:
        raise BudsimError(one_line(exc)) from None


# ----------------------------------------------------------------------------- the dataclasses


@lru_cache(maxsize=4096)
def check_deployment(dep: Deployment) -> None:
    """Hold a Deployment (however it was built) to the input rules; BudsimError if it breaks one.
    Cached per value: the predictor and the search check the same deployments over and over."""
    deployment_input(dep.to_dict())


def workload_fields(workload: Workload) -> dict[str, Any]:
    """A Workload as the fields a user would give for it."""
    fields: dict[str, Any] = {
        "scenario": workload.scenario,
        "concurrency": workload.concurrency,
        "batch_size": workload.batch_size,
        "rate": workload.rate,
        "num_requests": workload.num_requests,
        "input_len_spread": workload.input_len_spread,
        "output_len_spread": workload.output_len_spread,
        "seed": workload.seed,
        "shared_prefix_len": workload.shared_prefix_len,
        "cached_share": workload.cached_share,
    }
    if workload.scenario == "rate":  # the other scenarios carry the default, unused
        fields["burstiness"] = workload.burstiness
    if workload.length_mix:  # input_len/output_len are then its means
        fields["length_mix"] = workload.length_mix
    else:
        fields.update(input_len=workload.input_len, output_len=workload.output_len)
    return fields


@lru_cache(maxsize=4096)
def check_workload(workload: Workload) -> None:
    """Hold a Workload to the input rules (see check_deployment)."""
    workload_input(workload_fields(workload))
