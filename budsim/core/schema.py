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
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .deployment import MIN_BURSTINESS, SCENARIOS, Deployment, Workload
from .dtypes import KV_DTYPES, WEIGHT_DTYPES
from .errors import BudsimError

if TYPE_CHECKING:
    from .search.ga import GASettings
    from .search.optimize import OptimizationRequest
    from .search.scoring import Constraints

# the load field of each scenario, and the scenario a lone load field picks
LOAD_OF = {"concurrency": "concurrency", "static": "batch_size", "rate": "rate"}
SCENARIO_OF = {load: scenario for scenario, load in LOAD_OF.items()}


def problem(field: str | None, message: str) -> PydanticCustomError:
    """A rule's failure: `message` is the whole one-line text; `field` the input it is about (for
    a rule over several fields, the one a form marks)."""
    return PydanticCustomError("budsim", "{message}", {"message": message, "field": field})


# ----------------------------------------------------------------------------- value parsing


def shown(value: Any) -> str:
    """A value as a message quotes it: a number typed as text reads as the number (a form's "0",
    a flag's 0 and a dataclass's 0 give the same message), other text in quotes."""
    if isinstance(value, str):
        text = value.strip()
        try:
            float(text)
        except ValueError:
            return repr(value)
        return text
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a flag's -5.0 reads as the -5 typed
    return repr(value)


def _number(name: str, value: Any, what: str) -> float:
    """A finite number from a typed or text value."""
    if isinstance(value, bool):
        raise problem(name, f"{name} must be {what}, got {shown(value)}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise problem(name, f"{name} must be {what}, got {shown(value)}") from None
    if not math.isfinite(number):
        raise problem(name, f"{name} must be {what}, got {shown(value)}")
    return number


def whole(name: str, value: Any, minimum: int = 1) -> int:
    """A whole number >= `minimum`: "tp must be a positive integer, got 0"."""
    what = "a positive integer" if minimum == 1 else f"a whole number >= {minimum}"
    text = value.replace(",", "") if isinstance(value, str) else value  # 1,024 tokens
    number = _number(name, text, what)
    if number != int(number) or number < minimum:
        raise problem(name, f"{name} must be {what}, got {shown(value)}")
    return int(number)


def in_range(name: str, value: Any, low: float, high: float, *, open_high: bool = False) -> float:
    """A number in [low, high] (or [low, high) with `open_high`)."""
    what = f"in [{low:g}, {high:g}{')' if open_high else ']'}"
    number = _number(name, value, what)
    if not (low <= number < high if open_high else low <= number <= high):
        raise problem(name, f"{name} must be {what}, got {shown(value)}")
    return number


def fraction(name: str, value: Any) -> float:
    """A share in [0, 1)."""
    return in_range(name, value, 0.0, 1.0, open_high=True)


def positive(name: str, value: Any) -> float:
    """A number > 0: "ttft_ms must be a positive number, got 0"."""
    number = _number(name, value, "a positive number")
    if number <= 0:
        raise problem(name, f"{name} must be a positive number, got {shown(value)}")
    return number


def text(name: str, value: Any) -> str:
    """A name, path or id: text only."""
    if not isinstance(value, str):
        raise problem(name, f"{name} must be text, got {value!r}")
    return value


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
        return text(info.field_name, value)

    @field_validator("engine", "spec_method", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return _word(value)

    @field_validator(
        "tp", "pp", "dp", "ep", "replicas", "max_num_seqs", "max_num_batched_tokens", mode="before"
    )
    @classmethod
    def _positive_int(cls, value: Any, info: Any) -> int:
        return whole(info.field_name, value)

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
            raise problem("rate", f"rate must be {what}, got {shown(value)}")
        return number

    @field_validator("burstiness", mode="before")
    @classmethod
    def _burstiness(cls, value: Any) -> float:
        what = f"a number >= {MIN_BURSTINESS} (1 = Poisson)"
        number = _number("burstiness", value, what)
        if number < MIN_BURSTINESS:
            raise problem("burstiness", f"burstiness must be {what}, got {shown(value)}")
        return number

    @field_validator("input_len_spread", "output_len_spread", "cached_share", mode="before")
    @classmethod
    def _share(cls, value: Any, info: Any) -> float:
        return fraction(info.field_name, value)

    @field_validator("shared_prefix_len", "seed", mode="before")
    @classmethod
    def _count(cls, value: Any, info: Any) -> int:
        return whole(info.field_name, value, minimum=0)

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
    def _whole_workload(self, info: ValidationInfo) -> WorkloadInput:
        if info.context and info.context.get("fields_only"):
            return self  # some fields of a workload, each by its own rule (workload_input)
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


# ----------------------------------------------------------------------------- the search

# the SLO fields a search request may set, each a positive number
SLO_FIELDS = ("ttft_ms", "tpot_ms", "min_output_tok_s", "min_requests_per_s", "max_memory_gb")


class ConstraintsInput(_Input):
    """The SLOs and floors of a search (budsim.core.search.scoring.Constraints)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    percentile: str = "p95"
    min_output_tok_s: float | None = None
    min_requests_per_s: float | None = None
    max_memory_gb: float | None = None

    @field_validator(*SLO_FIELDS, mode="before")
    @classmethod
    def _slo(cls, value: Any, info: Any) -> float:
        return positive(info.field_name, value)

    @field_validator("percentile", mode="before")
    @classmethod
    def _percentile(cls, value: Any) -> str:
        from .search.scoring import parse_percentile

        try:
            return parse_percentile(str(value))
        except BudsimError as exc:
            raise problem("percentile", str(exc)) from None

    def to_constraints(self) -> Constraints:
        from .search.scoring import Constraints

        return Constraints(**self.model_dump())


# the least each whole-number GA setting may be
GA_MINIMUM = {"population": 4, "generations": 0, "tournament": 1, "elite": 0, "patience": 0}
GA_MINIMUM |= {"seed": 0, "polish": 0}


class GAInput(_Input):
    """The genetic search's settings (budsim.core.search.ga.GASettings). A patience of 0 means
    never stop early (as None)."""

    population: int = 100
    generations: int = 50
    crossover: float = 0.8
    mutation: float = 0.2
    tournament: int = 3
    elite: int = 10
    patience: int | None = 10
    seed: int | None = None
    polish: int = 8

    @field_validator(*GA_MINIMUM, mode="before")
    @classmethod
    def _count(cls, value: Any, info: Any) -> int:
        return whole(info.field_name, value, minimum=GA_MINIMUM[info.field_name])

    @field_validator("crossover", "mutation", mode="before")
    @classmethod
    def _probability(cls, value: Any, info: Any) -> float:
        return in_range(info.field_name, value, 0.0, 1.0)

    def to_settings(self) -> GASettings:
        from .search.ga import GASettings

        return GASettings(**{**self.model_dump(), "patience": self.patience or None})


def _names(name: str, what: str, value: Any) -> tuple[str, ...]:
    """A list of names, as a sequence or comma-separated text, with at least one in it."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        names = tuple(str(item).strip() for item in items if str(item).strip())
    except TypeError:
        raise problem(name, f"{name} must be a list of {what}s, got {shown(value)}") from None
    if not names:
        raise problem(name, f"{name} must name at least one {what}")
    return names


class SearchInput(_Input):
    """What `budsim optimize` searches over and for (budsim.core.search.optimize
    .OptimizationRequest), less the workload (WorkloadInput): the cluster, the limits, the
    objective, the SLOs (`constraints`) and the GA (`ga`). Rules that need the hardware catalog
    or the model (a node's size, the engines a device runs, a format's name) stay with them."""

    model: str | None = None
    hardware: str | None = None
    devices: int | None = None
    nodes: int | None = None
    engines: tuple[str, ...] | None = None
    quantizations: tuple[str, ...] | None = None
    max_devices: int | None = None
    max_memory_gb: float | None = None
    max_batch_size: int | None = None
    constraints: ConstraintsInput = ConstraintsInput()
    optimization_target: str = "throughput"
    ga: GAInput = GAInput()
    alternatives: int = 5
    price_per_hour: float | None = None
    speculative: tuple[str, ...] = ()

    @field_validator("model", "hardware", mode="before")
    @classmethod
    def _text(cls, value: Any, info: Any) -> str:
        return text(info.field_name, value)

    @field_validator("devices", "nodes", "max_devices", "max_batch_size", mode="before")
    @classmethod
    def _positive_int(cls, value: Any, info: Any) -> int:
        return whole(info.field_name, value)

    @field_validator("alternatives", mode="before")
    @classmethod
    def _alternatives(cls, value: Any) -> int:
        return whole("alternatives", value, minimum=0)

    @field_validator("max_memory_gb", "price_per_hour", mode="before")
    @classmethod
    def _positive(cls, value: Any, info: Any) -> float:
        return positive(info.field_name, value)

    @field_validator("engines", mode="before")
    @classmethod
    def _engines(cls, value: Any) -> tuple[str, ...]:
        return tuple(name.lower() for name in _names("engines", "engine", value))

    @field_validator("quantizations", mode="before")
    @classmethod
    def _quantizations(cls, value: Any) -> tuple[str, ...]:
        return _names("quantizations", "weight format", value)

    @field_validator("optimization_target", mode="before")
    @classmethod
    def _target(cls, value: Any) -> str:
        from .search.scoring import TARGETS

        target = _word(value)
        if target not in TARGETS:
            raise problem(
                "optimization_target",
                f"unknown objective {target!r}; choose one of {', '.join(TARGETS)}",
            )
        return target

    @field_validator("speculative", mode="before")
    @classmethod
    def _speculative(cls, value: Any) -> tuple[str, ...]:
        from .speculative import parse_searched

        try:
            return parse_searched(value)
        except BudsimError as exc:
            raise problem("speculative", str(exc)) from None

    @model_validator(mode="after")
    def _whole_search(self) -> SearchInput:
        missing = [n for n in ("model", "hardware", "devices") if getattr(self, n) is None]
        if missing:
            raise problem(missing[0], f"missing {', '.join(missing)}")
        if self.nodes is not None and self.devices is not None and self.devices % self.nodes:
            raise problem("nodes", f"nodes={self.nodes} must divide devices={self.devices}")
        return self

    def to_request(self, workload: Workload, **flags: bool) -> OptimizationRequest:
        """The request for `workload`; `flags`: exhaustive, disagg."""
        from .search.optimize import OptimizationRequest

        return OptimizationRequest(
            model=self.model or "",
            hardware=self.hardware or "",
            devices=self.devices or 1,
            nodes=self.nodes,
            workload=workload,
            engines=self.engines,
            quantizations=self.quantizations,
            max_devices=self.max_devices,
            max_memory_gb=self.max_memory_gb,
            max_batch_size=self.max_batch_size,
            constraints=self.constraints.to_constraints(),
            optimization_target=self.optimization_target,
            ga=self.ga.to_settings(),
            alternatives=self.alternatives,
            price_per_hour=self.price_per_hour,
            speculative=self.speculative,
            **flags,
        )


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


_Model = TypeVar("_Model", bound=_Input)


def validated(
    model: type[_Model], fields: Mapping[str, Any], context: dict[str, Any] | None = None
) -> _Model:
    """`fields` held to `model`'s rules; BudsimError with the first failed rule's message."""
    try:
        return model.model_validate(fields, context=context)
    except ValidationError as exc:
        raise BudsimError(one_line(exc)) from None


def validated_or_errors(
    model: type[_Model], fields: Mapping[str, Any]
) -> tuple[_Model | None, dict[str, str]]:
    """`fields` held to `model`'s rules: the model, or None and each failed rule's message by
    the field it names (what a form marks)."""
    try:
        return model.model_validate(fields), {}
    except ValidationError as exc:
        return None, field_errors(exc)


def deployment_input(fields: Mapping[str, Any]) -> DeploymentInput:
    return validated(DeploymentInput, fields)


def workload_input(fields: Mapping[str, Any], *, fields_only: bool = False) -> WorkloadInput:
    """The workload the fields give; `fields_only`: the fields given, each by its own rule, without
    the rules about a whole workload (a document that carries a workload's prefix-caching fields
    without the workload, as an export configuration may)."""
    return validated(WorkloadInput, fields, {"fields_only": fields_only})


def search_input(fields: Mapping[str, Any]) -> SearchInput:
    return validated(SearchInput, fields)


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


def search_fields(request: OptimizationRequest) -> dict[str, Any]:
    """An OptimizationRequest as the fields SearchInput takes (the workload left out)."""
    from dataclasses import asdict

    return {
        "model": request.model,
        "hardware": request.hardware,
        "devices": request.devices,
        "nodes": request.nodes,
        "engines": request.engines,
        "quantizations": request.quantizations,
        "max_devices": request.max_devices,
        "max_memory_gb": request.max_memory_gb,
        "max_batch_size": request.max_batch_size,
        "constraints": asdict(request.constraints),
        "optimization_target": request.optimization_target,
        "ga": asdict(request.ga),
        "alternatives": request.alternatives,
        "price_per_hour": request.price_per_hour,
        "speculative": request.speculative,
    }


def check_ga(settings: GASettings) -> None:
    """Hold GASettings to the input rules; BudsimError if they break one."""
    from dataclasses import asdict

    validated(GAInput, asdict(settings))


def check_constraints(constraints: Constraints) -> str:
    """Hold Constraints to the input rules; the percentile as parse_percentile names it."""
    from dataclasses import asdict

    return validated(ConstraintsInput, asdict(constraints)).percentile
