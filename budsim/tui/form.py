"""The setup form as plain data: raw field text in, an OptimizationRequest (or the reasons why not) out.

No textual here: the setup screen copies widget values into `SetupValues`, calls `check_form`, and shows
the errors. The same code turns a stored run's inputs back into field values ("re-run with edits").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .catalog import Catalog

if TYPE_CHECKING:
    from budsim.core.deployment import Workload
    from budsim.core.schema import SearchInput
    from budsim.core.search.optimize import OptimizationRequest

SCENARIOS: tuple[tuple[str, str], ...] = (
    ("concurrency", "concurrency"),
    ("rate", "rate (req/s)"),
    ("static", "static batch"),
)
TARGETS: tuple[tuple[str, str], ...] = (
    ("throughput", "throughput"),
    ("latency", "latency"),
    ("cost", "cost ($/1M tok)"),
    ("goodput", "goodput (req/s)"),
)
PERCENTILES: tuple[str, ...] = ("p50", "p90", "p95", "p99", "mean")

# Field ids in the order the form shows them; the first error in this order is the run button's reason.
FIELD_ORDER: tuple[str, ...] = (
    "model",
    "hardware",
    "devices",
    "nodes",
    "engines",
    "quantizations",
    "input_len",
    "output_len",
    "length_mix",
    "scenario",
    "load",
    "burstiness",
    "num_requests",
    "shared_prefix_len",
    "cached_share",
    "ttft_ms",
    "tpot_ms",
    "percentile",
    "min_tok_s",
    "target",
    "speculative",
    "population",
    "generations",
    "seed",
    "patience",
    "crossover",
    "mutation",
    "request",
)

LABELS: dict[str, str] = {
    "model": "model",
    "hardware": "hardware",
    "devices": "devices",
    "nodes": "nodes",
    "engines": "engines",
    "quantizations": "quantisations",
    "input_len": "input tokens",
    "output_len": "output tokens",
    "length_mix": "length mix",
    "scenario": "load type",
    "load": "load",
    "burstiness": "burstiness",
    "num_requests": "requests",
    "shared_prefix_len": "prefix tokens",
    "cached_share": "cached share",
    "ttft_ms": "TTFT SLO",
    "tpot_ms": "TPOT SLO",
    "percentile": "SLO percentile",
    "min_tok_s": "min tok/s",
    "target": "target",
    "speculative": "spec decode",
    "population": "population",
    "generations": "generations",
    "seed": "seed",
    "patience": "patience",
    "crossover": "crossover",
    "mutation": "mutation",
    "request": "request",
}


@dataclass(frozen=True)
class SetupValues:
    """The raw values of every setup field (text exactly as typed)."""

    model: str = ""
    hardware: str = "h100-sxm"
    devices: str = "8"
    nodes: str = ""
    engines: tuple[str, ...] | None = None  # None = every engine the hardware runs
    quantizations: tuple[str, ...] | None = None  # None = every format
    input_len: str = "1024"
    output_len: str = "256"
    length_mix: str = (
        ""  # request shapes instead of input/output ("256|40,128|20:0.7;2048,512:0.3")
    )
    scenario: str = "concurrency"
    load: str = "32"
    burstiness: str = "1"  # gamma shape of a rate's arrival gaps (1 = Poisson)
    num_requests: str = ""  # empty: steady state; N: a finite benchmark run of N requests
    shared_prefix_len: str = ""  # empty: 0, no prompt prefix shared by every request
    cached_share: str = ""  # empty: 0, nothing of a prompt cached by an earlier turn
    ttft_ms: str = ""
    tpot_ms: str = ""
    percentile: str = "p95"
    min_tok_s: str = ""
    target: str = "throughput"
    speculative: str = ""  # speculative methods to search beside plain decoding ("eagle3,ngram")
    population: str = "100"
    generations: str = "50"
    seed: str = ""
    patience: str = "10"
    crossover: str = "0.8"
    mutation: str = "0.2"
    exhaustive: bool = False
    disagg: bool = False  # also compare prefill/decode splits of the best (--disagg)
    allow_network: bool = False
    # Workload settings of a stored run that the form has no field for (set by the API: length
    # spreads, seed), kept as they were when it is re-run.
    workload_extra: tuple[tuple[str, Any], ...] = ()

    def with_(self, **changes: Any) -> SetupValues:
        return replace(self, **changes)


@dataclass
class FormCheck:
    request: OptimizationRequest | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.errors

    @property
    def reason(self) -> str:
        """The first problem, as one line for the run bar ("" when the form is valid)."""
        for key in FIELD_ORDER:
            if key in self.errors:
                return _with_label(LABELS.get(key, key), self.errors[key])
        if self.errors:
            key, message = next(iter(self.errors.items()))
            return _with_label(key, message)
        return ""


def _with_label(label: str, message: str) -> str:
    # a message that already names the field as the form labels it ("population must be ...")
    # is not prefixed again: the run bar has 80 columns
    return message if message.startswith(f"{label} ") else f"{label}: {message}"


# ------------------------------------------------------------------------------- the check


def _check_workload(values: SetupValues, errors: dict[str, str]) -> Workload | None:
    """The workload fields through the schema (budsim.core.schema): its messages go on the
    fields they name (a load on "load")."""
    from budsim.core.schema import LOAD_OF, WorkloadInput, validated_or_errors

    mix = values.length_mix.strip()
    rate = values.scenario == "rate"
    fields: dict[str, Any] = {
        **dict(values.workload_extra),
        "scenario": values.scenario,
        # a length mix stands for the input and output lengths (their fields may be left empty)
        "input_len": "" if mix else values.input_len,
        "output_len": "" if mix else values.output_len,
        "length_mix": mix,
        LOAD_OF.get(values.scenario, "concurrency"): values.load,
        "burstiness": values.burstiness if rate else "",
        "num_requests": values.num_requests,
        "shared_prefix_len": values.shared_prefix_len,
        "cached_share": values.cached_share,
    }
    if rate and not values.burstiness.strip():
        errors["burstiness"] = "required"  # the form's own default, 1, was cleared
        return None
    workload, problems = validated_or_errors(WorkloadInput, fields)
    for name, message in problems.items():
        key = "load" if name in LOAD_OF.values() else name
        if key == "length_mix":
            message = message.removeprefix("length mix: ")  # the field's own label
        errors.setdefault(key, message)
    return None if workload is None else workload.to_workload()


# the form's field for a SearchInput field whose name differs
SEARCH_FIELD = {"optimization_target": "target", "min_output_tok_s": "min_tok_s"}


def _check_search(
    values: SetupValues,
    engines: tuple[str, ...] | None,
    quants: tuple[str, ...] | None,
    errors: dict[str, str],
) -> SearchInput | None:
    """The search fields through the schema (budsim.core.schema.SearchInput): its messages go
    on the fields they name. Blank text is a value not given; a field the form needs says
    "required"."""
    from budsim.core.schema import SearchInput, validated_or_errors

    for key in ("devices", "population", "generations", "crossover", "mutation"):
        if not getattr(values, key).strip():
            errors[key] = "required"
    fields: dict[str, Any] = {
        "model": values.model,
        "hardware": values.hardware,
        "devices": values.devices,
        "nodes": values.nodes,
        "engines": engines,
        "quantizations": quants,
        "constraints": {
            "ttft_ms": values.ttft_ms,
            "tpot_ms": values.tpot_ms,
            "percentile": values.percentile,
            "min_output_tok_s": values.min_tok_s,
        },
        "optimization_target": values.target,
        "ga": {
            "population": values.population,
            "generations": values.generations,
            "seed": values.seed,
            "patience": values.patience.strip() or "0",  # empty: never stop early
            "crossover": values.crossover,
            "mutation": values.mutation,
        },
        "speculative": values.speculative,
    }
    search, problems = validated_or_errors(SearchInput, fields)
    for name, message in problems.items():
        errors.setdefault(SEARCH_FIELD.get(name, name), message)
    return search


def check_form(
    values: SetupValues,
    catalog: Catalog | None,
    *,
    model_error: str | None = None,
    model_pending: bool = False,
) -> FormCheck:
    """Validate every field; build the request when all are valid.

    `model_error` is the result of the asynchronous model check (None = the model loaded);
    `model_pending` says that check has not answered yet for the current text.
    """
    from budsim.core.errors import BudsimError

    errors: dict[str, str] = {}
    model = values.model.strip()
    if not model:
        errors["model"] = "choose a model (catalog id, HF id, config.json)"
    elif model_pending:
        errors["model"] = "checking…"
    elif model_error:
        errors["model"] = model_error

    if catalog is None:
        errors.setdefault("hardware", "loading the catalog…")
        return FormCheck(None, errors)

    device = catalog.devices.get(values.hardware) if values.hardware else None
    if device is None:
        errors["hardware"] = "choose a device" if not values.hardware else "unknown device"

    engines: tuple[str, ...] | None = None
    quants: tuple[str, ...] | None = None
    if device is not None:
        available = catalog.engine_ids_for(device.kind)
        if not available:
            errors["engines"] = f"no engine profile runs on {device.kind}"
        elif values.engines is not None:
            engines = tuple(e for e in values.engines if e in available)
            if set(engines) == set(available):
                engines = None  # every engine: no restriction
        q_available = catalog.quantizations_for(device.kind)
        if values.quantizations is not None:
            quants = tuple(q for q in values.quantizations if q in q_available)
            if set(quants) == set(q_available):
                quants = None

    workload = _check_workload(values, errors)
    search = _check_search(values, engines, quants, errors)
    if search is not None and device is not None and "devices" not in errors:
        from budsim.core.hardware import make_cluster

        try:  # the node size of this device
            make_cluster(device.id, search.devices or 1, search.nodes, hardware=catalog.devices)
        except BudsimError as exc:
            errors["nodes" if search.nodes is not None else "devices"] = str(exc)

    if errors or search is None or workload is None:
        return FormCheck(None, errors)
    try:
        request = search.to_request(workload, exhaustive=values.exhaustive, disagg=values.disagg)
        request.validate()
    except BudsimError as exc:
        return FormCheck(None, {"request": str(exc)})
    return FormCheck(request, {})


KEPT_WORKLOAD = ("input_len_spread", "output_len_spread", "seed")


def values_from_inputs(inputs: Mapping[str, Any]) -> SetupValues:
    """Field values from a stored request (`OptimizationRequest.to_dict()`), for re-running a run."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    from budsim.core.deployment import Workload
    from budsim.core.lengths import mix_text

    workload = dict(inputs.get("workload") or {})
    mix = Workload(length_mix=workload.get("length_mix") or ()).length_mix
    scenario = str(workload.get("scenario") or "concurrency")
    load_key = {"rate": "rate", "static": "batch_size"}.get(scenario, "concurrency")
    cons = dict(inputs.get("constraints") or {})
    ga = dict(inputs.get("ga") or {})

    def ga_value(*keys: str, default: Any = None) -> Any:
        for key in keys:
            if key in ga:
                return ga[key]
        return default

    engines = inputs.get("engines")
    quants = inputs.get("quantizations")
    return SetupValues(
        model=str(inputs.get("model") or ""),
        hardware=str(inputs.get("hardware") or ""),
        devices=text(inputs.get("devices")),
        nodes=text(inputs.get("nodes")),
        engines=tuple(engines) if engines else None,
        quantizations=tuple(quants) if quants else None,
        input_len="" if mix else text(workload.get("input_len", 1024)),
        output_len="" if mix else text(workload.get("output_len", 256)),
        length_mix=mix_text(mix, limit=None) if mix else "",
        scenario=scenario,
        load=text(workload.get(load_key, 1)),
        burstiness=text(workload.get("burstiness", 1.0)),
        num_requests=text(workload.get("num_requests")),
        shared_prefix_len=text(workload.get("shared_prefix_len") or None),
        cached_share=text(workload.get("cached_share") or None),
        ttft_ms=text(cons.get("ttft_ms")),
        tpot_ms=text(cons.get("tpot_ms")),
        percentile=str(cons.get("percentile") or "p95"),
        min_tok_s=text(cons.get("min_output_tok_s")),
        target=str(inputs.get("optimization_target") or "throughput"),
        speculative=",".join(inputs.get("speculative") or ()),
        population=text(ga_value("population_size", "population", default=100)),
        generations=text(ga_value("generations", default=50)),
        seed=text(ga_value("seed")),
        patience=text(ga_value("patience", default=None)) or "0",
        crossover=text(ga_value("crossover_probability", "crossover", default=0.8)),
        mutation=text(ga_value("mutation_probability", "mutation", default=0.2)),
        exhaustive=bool(inputs.get("exhaustive", False)),
        disagg=bool(inputs.get("disagg", False)),
        workload_extra=tuple(
            (key, workload[key])
            for key in KEPT_WORKLOAD
            if workload.get(key) not in (None, getattr(Workload(), key))
        ),
    )


def first_error(errors: Mapping[str, str], keys: Sequence[str]) -> str | None:
    for key in keys:
        if key in errors:
            return errors[key]
    return None
