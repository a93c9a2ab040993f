"""budsim.core.schema: the one place the deployment, workload and search input rules live.

A table of bad values and the one-line message each rule gives; good inputs round-tripping to the
runtime dataclasses; and the CLI, a cases CSV row, the TUI form and the runtime dataclasses
reporting the same message for the same bad value.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from budsim.cli import app
from budsim.core.cases import parse_case
from budsim.core.deployment import Deployment, Workload
from budsim.core.errors import BudsimError
from budsim.core.schema import (
    DeploymentInput,
    SearchInput,
    WorkloadInput,
    field_errors,
    one_line,
    search_fields,
    search_input,
    workload_fields,
)
from budsim.core.search.ga import GASettings
from budsim.core.search.optimize import OptimizationRequest
from budsim.core.search.scoring import Constraints

DEPLOYMENT = {"model": "meta-llama/Llama-3.1-8B", "hardware": "h100-sxm", "engine": "vllm"}
WORKLOAD = {"input_len": "1024", "output_len": "128"}

DEPLOYMENT_RULES: list[tuple[dict[str, Any], str, str]] = [
    # (changes to DEPLOYMENT, field marked, whole message)
    ({"hardware": ""}, "hardware", "missing hardware"),
    ({"model": " ", "engine": None}, "model", "missing model, engine"),
    ({"tp": "0"}, "tp", "tp must be a positive integer, got 0"),
    ({"pp": "two"}, "pp", "pp must be a positive integer, got 'two'"),
    ({"dp": 1.5}, "dp", "dp must be a positive integer, got 1.5"),
    ({"ep": True}, "ep", "ep must be a positive integer, got True"),
    ({"replicas": "-2"}, "replicas", "replicas must be a positive integer, got -2"),
    ({"tp": "4", "ep": "3"}, "ep", "ep=3 must divide tp*dp=4"),
    ({"max_num_seqs": "0"}, "max_num_seqs", "max_num_seqs must be a positive integer, got 0"),
    (
        {"max_num_batched_tokens": "many"},
        "max_num_batched_tokens",
        "max_num_batched_tokens must be a positive integer, got 'many'",
    ),
    (
        {"gpu_memory_utilization": "1.5"},
        "gpu_memory_utilization",
        "gpu_memory_utilization must be in [0.05, 0.99], got 1.5",
    ),
    (
        {"weight_dtype": "fp3"},
        "weight_dtype",
        "unknown weight_dtype 'fp3'; choose one of bf16, fp16, fp8, int8, int4, nvfp4, mxfp4, "
        "q4_k_m, q5_k_m, q8_0 or auto",
    ),
    ({"kv_dtype": "INT4"}, "kv_dtype", "unknown kv_dtype 'int4'; choose auto or fp8"),
    (
        {"spec_method": "medusa"},
        "spec_method",
        "unknown spec_method 'medusa'; choose none, mtp, eagle3, ngram, draft",
    ),
    (
        {"spec_method": "ngram", "spec_tokens": "2.5"},
        "spec_tokens",
        "spec_tokens must be a whole number >= 0, got 2.5",
    ),
    (
        {"spec_method": "ngram", "spec_tokens": "17"},
        "spec_method",
        "spec_tokens must be a whole number from 1 to 16 (0: the method's default), got 17",
    ),
    (
        {"spec_method": "ngram", "spec_acceptance": "1"},
        "spec_acceptance",
        "spec_acceptance must be in [0, 1), got 1",
    ),
    (
        {"spec_tokens": "3"},
        "spec_method",
        "spec_tokens and spec_acceptance need a spec_method (mtp, eagle3, ngram, draft)",
    ),
    ({"spec_draft_model": "x/y"}, "spec_method", "spec_draft_model needs spec_method draft"),
    ({"spec_method": "draft"}, "spec_method", "spec_method draft needs spec_draft_model"),
]

WORKLOAD_RULES: list[tuple[dict[str, Any], str, str]] = [
    ({"input_len": "-5"}, "input_len", "input_len must be a positive integer, got -5"),
    ({"output_len": "nan"}, "output_len", "output_len must be a positive integer, got nan"),
    ({"output_len": "12.5"}, "output_len", "output_len must be a positive integer, got 12.5"),
    ({"input_len": ""}, "input_len", "missing input_len (or a length_mix)"),
    (
        {"scenario": "burst"},
        "scenario",
        "unknown scenario 'burst'; choose concurrency, static or rate",
    ),
    ({"concurrency": "0"}, "concurrency", "concurrency must be a positive integer, got 0"),
    ({"batch_size": "x"}, "batch_size", "batch_size must be a positive integer, got 'x'"),
    ({"rate": "inf"}, "rate", "rate must be a positive number of requests/s, got inf"),
    ({"rate": "-1"}, "rate", "rate must be a positive number of requests/s, got -1"),
    ({"scenario": "rate"}, "rate", "the rate scenario needs a rate"),
    ({"scenario": "static"}, "batch_size", "the static scenario needs a batch_size"),
    (
        {"batch_size": "3", "concurrency": "4"},
        "concurrency",
        "give one load (concurrency or batch_size), or the scenario that picks one of them",
    ),
    (
        {"rate": "2", "burstiness": "0.01"},
        "burstiness",
        "burstiness must be a number >= 0.05 (1 = Poisson), got 0.01",
    ),
    (
        {"concurrency": "2", "burstiness": "0.5"},
        "burstiness",
        "burstiness shapes the arrivals of the rate scenario; give a rate",
    ),
    ({"num_requests": "0"}, "num_requests", "num_requests must be a positive integer, got 0"),
    (
        {"input_len_spread": "1"},
        "input_len_spread",
        "input_len_spread must be in [0, 1), got 1",
    ),
    (
        {"shared_prefix_len": "-1"},
        "shared_prefix_len",
        "shared_prefix_len must be a whole number >= 0, got -1",
    ),
    (
        {"shared_prefix_len": "1024"},
        "shared_prefix_len",
        "shared_prefix_len (1024) must be shorter than input_len (1024): a prompt is its shared "
        "prefix plus at least one token of its own",
    ),
    ({"cached_share": "1.5"}, "cached_share", "cached_share must be in [0, 1), got 1.5"),
    ({"seed": "-1"}, "seed", "seed must be a whole number >= 0, got -1"),
    (
        {"input_len": "", "output_len": "", "length_mix": "1024"},
        "length_mix",
        "length mix: '1024' is not INPUT,OUTPUT",
    ),
    (
        {"input_len": "", "output_len": "", "length_mix": [(-1, 10, 10, 0, 0)]},
        "length_mix",
        "length mix: weights must be positive, got -1",
    ),
    (
        {"length_mix": "256,128"},
        "length_mix",
        "give input_len/output_len or a length_mix, not both",
    ),
    (
        {"input_len": "", "output_len": "", "length_mix": "256,128", "output_len_spread": "0.2"},
        "length_mix",
        "give a length mix or length spreads, not both",
    ),
]


def _failure(
    model: type[DeploymentInput | WorkloadInput], fields: dict[str, Any]
) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        model.model_validate(fields)
    return err.value


@pytest.mark.parametrize(("changes", "field", "message"), DEPLOYMENT_RULES)
def test_each_deployment_rule_has_its_message(
    changes: dict[str, Any], field: str, message: str
) -> None:
    exc = _failure(DeploymentInput, {**DEPLOYMENT, **changes})
    assert one_line(exc).startswith(message)
    assert field_errors(exc)[field].startswith(message)
    with pytest.raises(BudsimError) as err:  # the cases path: the same line, no pydantic text
        parse_case({**DEPLOYMENT, **WORKLOAD, **changes})
    assert str(err.value).startswith(message)
    for boilerplate in ("Value error", "validation error", "pydantic.dev", "\n"):
        assert boilerplate not in str(err.value)


@pytest.mark.parametrize(("changes", "field", "message"), WORKLOAD_RULES)
def test_each_workload_rule_has_its_message(
    changes: dict[str, Any], field: str, message: str
) -> None:
    exc = _failure(WorkloadInput, {**WORKLOAD, **changes})
    assert one_line(exc).startswith(message)
    assert field_errors(exc)[field].startswith(message)
    with pytest.raises(BudsimError) as err:
        parse_case({**DEPLOYMENT, **WORKLOAD, **changes})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_every_bad_field_is_reported_at_once() -> None:
    """A form marks every field that is wrong, not only the first."""
    exc = _failure(WorkloadInput, {"input_len": "0", "output_len": "x", "cached_share": "2"})
    assert set(field_errors(exc)) == {"input_len", "output_len", "cached_share"}
    assert one_line(exc) == "input_len must be a positive integer, got 0"


GOOD_DEPLOYMENTS = [
    Deployment(model="m", hardware="h100-sxm", engine="vllm"),
    Deployment(
        model="deepseek-ai/DeepSeek-V3",
        hardware="h200-sxm",
        engine="sglang",
        tp=8,
        pp=2,
        dp=2,
        ep=16,
        replicas=3,
        weight_dtype="fp8",
        kv_dtype="fp8",
        max_num_seqs=64,
        max_num_batched_tokens=8192,
        gpu_memory_utilization=0.9,
        spec_method="mtp",
        spec_tokens=3,
        spec_acceptance=0.7,
    ),
    Deployment(
        model="m", hardware="h", engine="sglang", spec_method="draft", spec_draft_model="d/1B"
    ),
]

GOOD_WORKLOADS = [
    Workload(),
    Workload(scenario="rate", rate=2.5, burstiness=0.5, num_requests=300),
    Workload(scenario="static", batch_size=16, input_len=4096, output_len=1),
    Workload(input_len_spread=0.2, output_len_spread=0.5, seed=7),
    Workload(shared_prefix_len=512, cached_share=0.25, concurrency=8),
    Workload().with_length_mix(((0.7, 256, 128, 40.0, 0.0), (0.3, 2048, 512, 0.0, 0.0))),
]


@pytest.mark.parametrize("dep", GOOD_DEPLOYMENTS)
def test_good_deployments_round_trip(dep: Deployment) -> None:
    dep.validate()
    assert DeploymentInput.model_validate(dep.to_dict()).to_deployment() == dep
    text = {k: "" if v is None else str(v) for k, v in dep.to_dict().items()}  # as a CSV row
    assert DeploymentInput.model_validate(text).to_deployment() == dep


@pytest.mark.parametrize("workload", GOOD_WORKLOADS)
def test_good_workloads_round_trip(workload: Workload) -> None:
    workload.validate()
    fields = workload_fields(workload)
    assert WorkloadInput.model_validate(fields).to_workload() == workload
    if not workload.length_mix:  # as text, a CSV row
        text = {k: "" if v is None else str(v) for k, v in fields.items()}
        assert WorkloadInput.model_validate(text).to_workload() == workload


def test_text_fields_are_cleaned_and_inferred() -> None:
    dep, wl = parse_case(
        {
            **DEPLOYMENT,
            "engine": " SGLang ",
            "tp": "4",
            "pp": "",
            "weight_dtype": "FP8",
            "input_len": "1,024",
            "output_len": "1e2",
            "rate": "2.5",
        }
    )
    assert (dep.engine, dep.tp, dep.pp, dep.weight_dtype) == ("sglang", 4, 1, "fp8")
    assert (wl.scenario, wl.rate, wl.input_len, wl.output_len) == ("rate", 2.5, 1024, 100)
    assert parse_case({**DEPLOYMENT, **WORKLOAD})[1] == Workload(input_len=1024, output_len=128)


def test_the_dataclasses_are_held_to_the_same_rules() -> None:
    """Deployment.validate / Workload.validate are calls into the schema (a stored run or a
    configuration read back meets the rules a user's input does)."""
    base = GOOD_DEPLOYMENTS[0]
    for changes, message in (
        ({"tp": 0}, "tp must be a positive integer, got 0"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization must be in [0.05, 0.99]"),
        ({"weight_dtype": "fp3"}, "unknown weight_dtype 'fp3'"),
    ):
        with pytest.raises(BudsimError, match="^" + re.escape(message)):
            replace(base, **changes).validate()
    for changes, message in (
        ({"input_len": 0}, "input_len must be a positive integer, got 0"),
        ({"scenario": "rate", "rate": 0.0}, "rate must be a positive number of requests/s"),
        ({"scenario": "rate", "burstiness": 0.0}, "burstiness must be a number >= 0.05"),
        ({"shared_prefix_len": 2048}, "shared_prefix_len (2048) must be shorter"),
    ):
        with pytest.raises(BudsimError, match="^" + re.escape(message)):
            replace(Workload(), **changes).validate()
    # a closed loop carries the default burstiness; it is not a burstiness given without a rate
    Workload(scenario="concurrency", burstiness=1.0).validate()


# ----------------------------------------------------------------------------- every input path

runner = CliRunner()


def _cli_error(*args: str) -> str:
    result = runner.invoke(app, ["predict", *args])
    assert isinstance(result.exception, BudsimError), result.output
    return str(result.exception)


def _csv_error(tmp_path: Path, fields: dict[str, str]) -> str:
    row = {**DEPLOYMENT, **WORKLOAD, **fields}
    path = tmp_path / "cases.csv"
    path.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
    result = runner.invoke(app, ["predict", "--cases", str(path), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout.splitlines()[0])["error"])


def _form_error(field: str, **changes: str) -> str:
    from budsim.tui.catalog import load_catalog
    from budsim.tui.form import SetupValues, check_form

    values = SetupValues(model=DEPLOYMENT["model"], load="8").with_(**changes)
    errors = check_form(values, load_catalog()).errors
    assert list(errors) == [field], errors
    return errors[field]


def _flags(fields: dict[str, str]) -> list[str]:
    row = {**DEPLOYMENT, **WORKLOAD, **fields}
    return [arg for k, v in row.items() for arg in (f"--{k.replace('_', '-')}", v)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tp": "0"}, "tp must be a positive integer, got 0"),
        ({"gpu_memory_utilization": "1.5"}, "gpu_memory_utilization must be in [0.05, 0.99]"),
        ({"engine": "tgi"}, "unknown engine 'tgi'"),
        ({"spec_tokens": "3"}, "spec_tokens and spec_acceptance need a spec_method"),
    ],
)
def test_cli_and_cases_csv_give_the_same_deployment_message(
    tmp_path: Path, fields: dict[str, str], message: str
) -> None:
    cli = _cli_error(*_flags(fields))
    assert cli.startswith(message)
    assert _csv_error(tmp_path, fields) == cli


@pytest.mark.parametrize(
    ("fields", "form", "form_field", "message"),
    [
        ({"input_len": "-5"}, {"input_len": "-5"}, "input_len", "input_len must be a positive"),
        ({"output_len": "0"}, {"output_len": "0"}, "output_len", "output_len must be a positive"),
        ({"scenario": "rate"}, {"scenario": "rate", "load": ""}, "load", "the rate scenario needs"),
        ({"rate": "0"}, {"scenario": "rate", "load": "0"}, "load", "rate must be a positive"),
        ({"concurrency": "-3"}, {"load": "-3"}, "load", "concurrency must be a positive"),
        ({"cached_share": "1.5"}, {"cached_share": "1.5"}, "cached_share", "cached_share must"),
        ({"num_requests": "2.5"}, {"num_requests": "2.5"}, "num_requests", "num_requests must"),
    ],
)
def test_cli_cases_csv_and_form_give_the_same_workload_message(
    tmp_path: Path, fields: dict[str, str], form: dict[str, str], form_field: str, message: str
) -> None:
    cli = _cli_error(*_flags(fields))
    assert cli.startswith(message)
    assert _csv_error(tmp_path, fields) == cli
    assert _form_error(form_field, **form) == cli


def test_the_command_line_reports_a_rule_as_one_line() -> None:
    """The real process: `error: <the rule's message>` on stderr, exit status 2."""
    out = subprocess.run(
        [sys.executable, "-m", "budsim", "predict", *_flags({"tp": "0"})],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr == "error: tp must be a positive integer, got 0\n"


def test_optimize_takes_the_workload_through_the_schema() -> None:
    result = runner.invoke(
        app,
        [
            "optimize",
            *("--model", DEPLOYMENT["model"], "--hardware", "h100-sxm", "--devices", "8"),
            *("--input-len", "1024", "--output-len", "128", "--concurrency", "4"),
            *("--cached-share", "1.5", "--no-save"),
        ],
    )
    assert str(result.exception) == "cached_share must be in [0, 1), got 1.5"


# ----------------------------------------------------------------------------- the search

SEARCH = {"model": "meta-llama/Llama-3.1-8B", "hardware": "h100-sxm", "devices": "8"}

SEARCH_RULES: list[tuple[dict[str, Any], str, str]] = [
    # (changes to SEARCH, field marked, whole message); constraints/ga fields nest
    ({"devices": "0"}, "devices", "devices must be a positive integer, got 0"),
    ({"devices": "eight"}, "devices", "devices must be a positive integer, got 'eight'"),
    ({"devices": ""}, "devices", "missing devices"),
    ({"model": "", "hardware": None}, "model", "missing model, hardware"),
    ({"hardware": 7}, "hardware", "hardware must be text, got 7"),
    ({"nodes": "0"}, "nodes", "nodes must be a positive integer, got 0"),
    ({"devices": "12", "nodes": "5"}, "nodes", "nodes=5 must divide devices=12"),
    ({"engines": ()}, "engines", "engines must name at least one engine"),
    ({"engines": " , "}, "engines", "engines must name at least one engine"),
    ({"engines": 3}, "engines", "engines must be a list of engines, got 3"),
    ({"quantizations": []}, "quantizations", "quantizations must name at least one weight format"),
    ({"max_devices": "0"}, "max_devices", "max_devices must be a positive integer, got 0"),
    (
        {"max_batch_size": "1.5"},
        "max_batch_size",
        "max_batch_size must be a positive integer, got 1.5",
    ),
    ({"max_memory_gb": "-80"}, "max_memory_gb", "max_memory_gb must be a positive number, got -80"),
    (
        {"optimization_target": "speed"},
        "optimization_target",
        "unknown objective 'speed'; choose one of throughput, latency, cost, goodput",
    ),
    ({"alternatives": "-1"}, "alternatives", "alternatives must be a whole number >= 0, got -1"),
    ({"price_per_hour": "0"}, "price_per_hour", "price_per_hour must be a positive number, got 0"),
    (
        {"speculative": "medusa"},
        "speculative",
        "unknown speculative method 'medusa'; choose mtp, eagle3, ngram, draft:MODEL",
    ),
    ({"constraints": {"ttft_ms": "-5"}}, "ttft_ms", "ttft_ms must be a positive number, got -5"),
    (
        {"constraints": {"tpot_ms": "fast"}},
        "tpot_ms",
        "tpot_ms must be a positive number, got 'fast'",
    ),
    (
        {"constraints": {"min_output_tok_s": 0}},
        "min_output_tok_s",
        "min_output_tok_s must be a positive number, got 0",
    ),
    (
        {"constraints": {"min_requests_per_s": "inf"}},
        "min_requests_per_s",
        "min_requests_per_s must be a positive number, got inf",
    ),
    (
        {"constraints": {"max_memory_gb": "0"}},
        "max_memory_gb",
        "max_memory_gb must be a positive number, got 0",
    ),
    (
        {"constraints": {"percentile": "p100"}},
        "percentile",
        "unknown percentile 'p100'; use mean, p50, p90, p95, p99 or similar",
    ),
    ({"ga": {"population": "2"}}, "population", "population must be a whole number >= 4, got 2"),
    (
        {"ga": {"generations": "-1"}},
        "generations",
        "generations must be a whole number >= 0, got -1",
    ),
    ({"ga": {"crossover": "1.5"}}, "crossover", "crossover must be in [0, 1], got 1.5"),
    ({"ga": {"mutation": "-0.1"}}, "mutation", "mutation must be in [0, 1], got -0.1"),
    ({"ga": {"tournament": "0"}}, "tournament", "tournament must be a positive integer, got 0"),
    ({"ga": {"elite": "-1"}}, "elite", "elite must be a whole number >= 0, got -1"),
    ({"ga": {"patience": "-1"}}, "patience", "patience must be a whole number >= 0, got -1"),
    ({"ga": {"seed": "x"}}, "seed", "seed must be a whole number >= 0, got 'x'"),
    ({"ga": {"polish": "2.5"}}, "polish", "polish must be a whole number >= 0, got 2.5"),
]


@pytest.mark.parametrize(("changes", "field", "message"), SEARCH_RULES)
def test_each_search_rule_has_its_message(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        SearchInput.model_validate({**SEARCH, **changes})
    assert one_line(err.value) == message
    assert field_errors(err.value)[field] == message
    with pytest.raises(BudsimError) as failure:  # the CLI's path: the same line
        search_input({**SEARCH, **changes})
    assert str(failure.value) == message


def test_good_search_builds_the_request() -> None:
    fields = {
        **SEARCH,
        "devices": "16",
        "nodes": "2",
        "engines": "vLLM, sglang",
        "quantizations": ("auto", "fp8"),
        "constraints": {"ttft_ms": "500", "percentile": "median"},
        "optimization_target": " Latency ",
        "ga": {"population": "8", "patience": "0", "seed": "3"},
        "speculative": "EAGLE3",
        "price_per_hour": "2.5",
    }
    request = SearchInput.model_validate(fields).to_request(Workload(), disagg=True)
    request.validate()
    assert (request.devices, request.nodes, request.engines) == (16, 2, ("vllm", "sglang"))
    assert request.constraints.ttft_ms == 500 and request.constraints.percentile == "p50"
    assert request.optimization_target == "latency" and request.speculative == ("eagle3",)
    assert request.ga.population == 8 and request.ga.patience is None and request.ga.seed == 3
    assert request.price_per_hour == 2.5 and request.disagg
    # the stored request reads back to the same fields
    assert OptimizationRequest.from_dict(request.to_dict()) == request
    default = OptimizationRequest(model="m", hardware="h", devices=1)
    default.validate()
    assert SearchInput.model_validate(search_fields(default)).to_request(Workload()) == default


def _optimize_error(*args: str) -> str:
    result = runner.invoke(
        app,
        [
            "optimize",
            *("--model", DEPLOYMENT["model"], "--hardware", "h100-sxm"),
            *("--input-len", "1024", "--output-len", "128", "--concurrency", "4", "--no-save"),
            *args,
        ],
    )
    assert isinstance(result.exception, BudsimError), result.output
    return str(result.exception)


def _request_error(**changes: Any) -> str:
    with pytest.raises(BudsimError) as err:
        replace(
            OptimizationRequest(model=DEPLOYMENT["model"], hardware="h100-sxm", devices=8),
            **changes,
        ).validate()
    return str(err.value)


@pytest.mark.parametrize(
    ("flags", "form", "form_field", "request_changes", "message"),
    [
        (
            ("--devices", "0"),
            {"devices": "0"},
            "devices",
            {"devices": 0},
            "devices must be a positive integer, got 0",
        ),
        (
            ("--devices", "12", "--nodes", "5"),
            {"devices": "12", "nodes": "5"},
            "nodes",
            {"devices": 12, "nodes": 5},
            "nodes=5 must divide devices=12",
        ),
        (
            ("--devices", "8", "--population", "2"),
            {"population": "2"},
            "population",
            {"ga": GASettings(population=2)},
            "population must be a whole number >= 4, got 2",
        ),
        (
            ("--devices", "8", "--generations", "-3"),
            {"generations": "-3"},
            "generations",
            {"ga": GASettings(generations=-3)},
            "generations must be a whole number >= 0, got -3",
        ),
        (
            ("--devices", "8", "--objective", "speed"),
            {"target": "speed"},
            "target",
            {"optimization_target": "speed"},
            "unknown objective 'speed'; choose one of throughput, latency, cost, goodput",
        ),
    ],
)
def test_cli_form_and_request_give_the_same_search_message(
    flags: tuple[str, ...],
    form: dict[str, str],
    form_field: str,
    request_changes: dict[str, Any],
    message: str,
) -> None:
    assert _optimize_error(*flags) == message
    assert _form_error(form_field, **form) == message
    assert _request_error(**request_changes) == message


def test_cli_form_and_constraints_give_the_same_slo_message() -> None:
    message = "ttft_ms must be a positive number, got -5"
    assert _optimize_error("--devices", "8", "--slo-ttft-ms", "-5") == message
    assert _form_error("ttft_ms", ttft_ms="-5") == message
    with pytest.raises(BudsimError) as err:  # the runtime dataclass holds itself to the rule
        Constraints(ttft_ms=-5.0)
    assert str(err.value) == message
    assert _optimize_error("--devices", "8", "--slo-percentile", "p0").startswith(
        "unknown percentile 'p0'"
    )


def test_ga_settings_are_held_to_the_same_rules() -> None:
    for changes, message in (
        ({"population": 3}, "population must be a whole number >= 4, got 3"),
        ({"crossover": 1.5}, "crossover must be in [0, 1], got 1.5"),
        ({"tournament": 0}, "tournament must be a positive integer, got 0"),
        ({"polish": -1}, "polish must be a whole number >= 0, got -1"),
    ):
        with pytest.raises(BudsimError, match="^" + re.escape(message) + "$"):
            replace(GASettings(), **changes).validate()
    GASettings(patience=None).validate()
    GASettings(patience=0).validate()  # 0: never stop early, as None


# ----------------------------------------------------------------------------- export's configuration


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tp": "x"}, "tp must be a positive integer, got 'x'"),
        ({"tp": 0}, "tp must be a positive integer, got 0"),
        ({"model": None}, "missing model"),
        ({"model": {"id": 7}}, "model must be text, got 7"),
        ({"hardware": {"kind": "cuda"}}, "missing hardware"),
        (
            {"gpu_memory_utilization": 1.5},
            "gpu_memory_utilization must be in [0.05, 0.99], got 1.5",
        ),
        ({"weight_dtype": "fp3"}, "unknown weight_dtype 'fp3'"),
        ({"spec_tokens": 3}, "spec_tokens and spec_acceptance need a spec_method"),
        ({"cached_share": 1.5}, "cached_share must be in [0, 1), got 1.5"),
        ({"shared_prefix_len": -1}, "shared_prefix_len must be a whole number >= 0, got -1"),
        (
            {"workload": {"input_len": 0, "output_len": 128}},
            "the configuration's workload: input_len must be a positive integer, got 0",
        ),
        (
            {"workload": {"input_len": 1024, "output_len": 128, "shared_prefix_len": 2048}},
            "the configuration's workload: shared_prefix_len (2048) must be shorter than input_len",
        ),
    ],
)
def test_an_export_configuration_is_held_to_the_same_rules(
    changes: dict[str, Any], message: str
) -> None:
    """budsim export reads a configuration's deployment and workload through the schema: the
    message a flag or a CSV cell gets."""
    from budsim.core.export.plan import from_config_json

    doc = {**DEPLOYMENT, "hardware": "h100-sxm", "checkpoint_dtype": "bf16", **changes}
    with pytest.raises(BudsimError) as err:
        from_config_json(doc)
    assert str(err.value).startswith(message)
    # a good one: text values read as the schema reads them, the engine's case ignored
    plan = from_config_json({**DEPLOYMENT, "engine": "VLLM", "tp": "2", "checkpoint_dtype": "bf16"})
    assert (plan.deployment.engine, plan.deployment.tp) == ("vllm", 2)
