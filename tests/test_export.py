"""Export targets: golden files, flag tables vs the engines' own option lists, YAML, quoting, errors, CLI.

Golden files live in tests/golden/export/<plan>/<file>; the plans they come from are the configuration
JSON files in tests/golden/export/plans/. After an intended change to an exporter, regenerate them with

    BUDSIM_REGEN_GOLDEN=1 pytest tests/test_export.py

and review the diff. The flag-table checks read ../shared/reference/engine_flags/ (override with
BUDSIM_ENGINE_FLAGS); they are skipped when that folder is absent.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from budsim.core.errors import BudsimError
from budsim.core.export import TARGETS, Artifact, ExportOptions, export, export_target
from budsim.core.export.flags import (
    ALL_TABLES,
    BENCH_TABLES,
    DOCKER_RUN_FLAGS,
    ENGINE_TABLES,
    LITELLM,
    LLMC,
    MODELOPT,
    SGLANG,
    SGLANG_SPEC_ALGORITHMS,
    TORCHRUN_FLAGS,
    TRTLLM,
    TRTLLM_DECODING_TYPES,
    VLLM,
    VLLM_SPEC_METHODS,
    FlagTable,
)
from budsim.core.export.plan import ExportPlan, from_config_json

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "export"
PLANS = GOLDEN / "plans"
REGEN = os.environ.get("BUDSIM_REGEN_GOLDEN") == "1"
REFERENCE = Path(
    os.environ.get(
        "BUDSIM_ENGINE_FLAGS", HERE.parent.parent / "shared" / "reference" / "engine_flags"
    )
)

# plan -> targets with golden files (every target that can express the plan).
GOLDEN_TARGETS: dict[str, tuple[str, ...]] = {
    "dense_cuda": ("vllm", "sglang", "trtllm", "litellm", "docker", "k8s"),
    "moe_cuda": ("sglang", "vllm", "trtllm", "litellm", "docker", "k8s"),
    "gaudi": ("vllm", "litellm", "docker", "k8s"),
    "cpu": ("vllm", "llamacpp", "litellm", "docker", "k8s"),
    "int4_llmc": ("llmc", "vllm", "sglang", "litellm", "docker", "k8s"),
    # speculative decoding and prefix caching; these plans are budsim's own predictions, written
    # by tests/golden/export/make_plans.py
    "spec_eagle3_vllm": ("vllm", "sglang", "trtllm", "docker", "k8s", "bench"),
    "spec_mtp_sglang": ("sglang", "vllm", "trtllm", "bench"),
    "spec_ngram_trtllm": ("trtllm", "vllm", "sglang", "bench"),
    "spec_draft_sglang": ("sglang", "trtllm", "bench"),  # vLLM 0.11 runs no draft model
    "prefix_cache": ("vllm", "sglang", "trtllm", "k8s", "bench"),
    # the bench target's rate scenario (bursty arrivals, spread lengths, a sized run)
    "bench_rate_spread": ("vllm", "bench"),
}


def load_plan(name: str, **changes: Any) -> ExportPlan:
    doc = json.loads((PLANS / f"{name}.json").read_text())
    doc.update(changes)
    return from_config_json(doc)


def all_outputs() -> Iterator[tuple[str, str, Artifact]]:
    for plan_name, targets in GOLDEN_TARGETS.items():
        plan = load_plan(plan_name)
        for target in targets:
            for artifact in export_target(plan, target):
                yield plan_name, target, artifact


# ---- parsing generated shell ---------------------------------------------------------------------


def logical_lines(text: str) -> list[str]:
    """Shell lines with backslash continuations joined, comments and blank lines dropped."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    assert not pending, "a continuation line runs off the end of the script"
    return out


def commands(text: str) -> list[list[str]]:
    """Each simple command of a script, split with shlex (|| chains split, a trailing & dropped)."""
    result: list[list[str]] = []
    for line in logical_lines(text):
        words = shlex.split(line)
        current: list[str] = []
        for word in words:
            if word in ("||", "&&", ";;"):
                if current:
                    result.append(current)
                current = []
            else:
                current.append(word)
        if current and current[-1] == "&":
            current.pop()
        if current:
            result.append(current)
    return result


def strip_env(words: list[str]) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    i = 0
    while i < len(words) and "=" in words[i] and words[i].split("=", 1)[0].isidentifier():
        key, value = words[i].split("=", 1)
        env[key] = value
        i += 1
    return env, words[i:]


def find_program(words: list[str], table: FlagTable) -> int | None:
    n = len(table.program)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) == table.program:
            return i + n
    return None


def option_words(words: list[str]) -> list[str]:
    """The option names among command words (values never start with a dash in our output)."""
    return [w.split("=", 1)[0] for w in words if w.startswith("-")]


DOCKER_VALUE_FLAGS = DOCKER_RUN_FLAGS - {"--detach"}


def split_docker(words: list[str]) -> tuple[list[str], list[str]]:
    """(docker options, entrypoint + command) of a `docker run` command."""
    assert words[:2] == ["docker", "run"]
    flags: list[str] = []
    entrypoint: list[str] = []
    i = 2
    while i < len(words) and words[i].startswith("-"):
        name = words[i].split("=", 1)[0]
        flags.append(name)
        if name == "--entrypoint":
            entrypoint = [words[i + 1]]
        if "=" not in words[i] and name in DOCKER_VALUE_FLAGS:
            i += 1
        i += 1
    image_and_args = words[i + 1 :]  # words[i] is the image
    return flags, entrypoint + image_and_args


def engine_of(words: list[str]) -> tuple[FlagTable, list[str]] | None:
    """The engine table a command runs and the words after its program, or None."""
    for table in ENGINE_TABLES.values():
        at = find_program(words, table)
        if at is not None:
            return table, words[at:]
    if words and words[0] == "/app/llama-server":
        return ENGINE_TABLES["llamacpp"], words[1:]
    return None


# ---- golden files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("plan_name", sorted(GOLDEN_TARGETS))
def test_golden_files(plan_name: str) -> None:
    plan = load_plan(plan_name)
    folder = GOLDEN / plan_name
    produced: dict[str, str] = {}
    for target in GOLDEN_TARGETS[plan_name]:
        for artifact in export_target(plan, target):
            produced[artifact.name] = artifact.content
    if REGEN:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, content in produced.items():
            (folder / name).write_text(content)
    expected = {p.name: p.read_text() for p in folder.iterdir()}
    assert sorted(produced) == sorted(expected)
    for name, content in produced.items():
        assert content == expected[name], f"{plan_name}/{name} differs from its golden file"


def test_golden_plans_cover_the_issue_matrix() -> None:
    kinds = {name: load_plan(name).device_kind for name in GOLDEN_TARGETS}
    assert kinds["dense_cuda"] == kinds["moe_cuda"] == "cuda"
    assert kinds["gaudi"] == "hpu" and kinds["cpu"] == "cpu"
    dense, moe = load_plan("dense_cuda").deployment, load_plan("moe_cuda").deployment
    assert (dense.tp, dense.replicas) == (2, 2)
    assert moe.ep == 8 and moe.dp == 8 and load_plan("moe_cuda").moe
    covered = {t for targets in GOLDEN_TARGETS.values() for t in targets}
    assert covered == set(TARGETS)


# ---- every command against the flag tables ----------------------------------------------------------


def bench_of(words: list[str]) -> tuple[FlagTable, list[str]] | None:
    """The benchmark client table a command runs and the words after its program, or None."""
    for table in BENCH_TABLES.values():
        at = find_program(words, table)
        if at is not None:
            return table, words[at:]
    return None


def test_every_generated_command_uses_only_table_flags() -> None:
    checked = {name: 0 for name in ("engine", "docker", "litellm", "llmc", "modelopt", "bench")}
    for plan_name, _, artifact in all_outputs():
        if artifact.kind != "sh":
            continue
        for words in commands(artifact.content):
            env, words = strip_env(words)
            if words[:2] == ["docker", "run"]:
                flags, inner = split_docker(words)
                assert set(flags) <= DOCKER_RUN_FLAGS, (plan_name, artifact.name, flags)
                checked["docker"] += 1
                words = inner
            found = engine_of(words)
            client = bench_of(words)
            if found is not None:
                table, rest = found
                bad = [f for f in option_words(rest) if f not in table.flags]
                assert not bad, f"{plan_name}/{artifact.name}: {bad} not in the {table.title} table"
                assert set(env) <= set(table.env), (plan_name, artifact.name, env)
                checked["engine"] += 1
            elif client is not None:
                table, rest = client
                bad = [f for f in option_words(rest) if f not in table.flags]
                assert not bad, f"{plan_name}/{artifact.name}: {bad} not in the {table.title} table"
                assert not env
                checked["bench"] += 1
            elif len(words) > 1 and words[1].endswith("/examples/llm_ptq/hf_ptq.py"):
                assert words[0] == "python3"
                assert set(option_words(words[2:])) <= set(MODELOPT.flags)
                checked["modelopt"] += 1
            elif words and words[0] == "litellm":
                assert set(option_words(words[1:])) <= set(LITELLM.flags)
                checked["litellm"] += 1
            elif words and words[0] == "torchrun":
                at = next(i for i, w in enumerate(words) if w.endswith("llmc/__main__.py"))
                assert set(option_words(words[1:at])) <= TORCHRUN_FLAGS
                assert option_words(words[at + 1 :]) == ["--config", "--task_id"]
                assert set(env) <= set(LLMC.env)
                checked["llmc"] += 1
    assert all(count > 0 for count in checked.values()), checked


def test_docker_env_assignments_are_in_the_engine_env_tables() -> None:
    runtime = {"HABANA_VISIBLE_DEVICES", "OMPI_MCA_btl_vader_single_copy_mechanism", "HF_TOKEN"}
    for _, _, artifact in all_outputs():
        if artifact.name != "docker.sh":
            continue
        for words in commands(artifact.content):
            if words[:2] != ["docker", "run"]:
                continue
            table = engine_of(split_docker(words)[1])
            assert table is not None
            names = {words[i + 1].split("=", 1)[0] for i, w in enumerate(words) if w == "--env"}
            assert names <= set(table[0].env) | runtime


def _reference_lines(name: str) -> tuple[set[str], set[str]]:
    """(accepted tokens, tokens marked deprecated) of one reference list."""
    tokens: set[str] = set()
    deprecated: set[str] = set()
    marked = 0
    for raw in (REFERENCE / name).read_text().splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if "deprecated but still accepted" in line:
                marked = 2 if "next two lines" in line else 1
            continue
        tokens.add(line)
        if marked:
            deprecated.add(line)
            marked -= 1
    return tokens, deprecated


def _history(name: str) -> dict[str, dict[str, str]]:
    with (REFERENCE / name).open() as handle:
        return {row["flag"]: row for row in csv.DictReader(handle, delimiter="\t")}


needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason="../shared/reference/engine_flags is not available"
)


@needs_reference
@pytest.mark.parametrize("engine", sorted(ALL_TABLES))
def test_flag_tables_match_the_engines_option_lists(engine: str) -> None:
    table = ALL_TABLES[engine]
    assert table.reference is not None
    tokens, deprecated = _reference_lines(table.reference)
    flags = set(table.flags)
    assert flags <= tokens, f"{table.title}: not accepted: {sorted(flags - tokens)}"
    assert not flags & deprecated, f"{table.title}: deprecated: {sorted(flags & deprecated)}"
    yaml_keys = {t for t in tokens if not t.startswith("-")}
    parents = {k.rsplit(".", 1)[0] for k in yaml_keys if "." in k}  # sections of listed keys
    parents |= {p.removesuffix("[]") for p in parents}
    missing = table.yaml_keys - yaml_keys - parents
    assert not missing, sorted(missing)


@needs_reference
@pytest.mark.parametrize(
    ("table", "history"), [(VLLM, "vllm_flag_history.tsv"), (SGLANG, "sglang_flag_history.tsv")]
)
def test_flags_exist_in_the_targeted_releases(table: FlagTable, history: str) -> None:
    rows = _history(history)
    assert table.reference_versions
    for flag in table.flags:
        assert flag in rows, f"{flag} missing from {history}"
        for version in table.reference_versions:
            assert rows[flag][version] == "1", f"{flag} not in {table.engine} {version}"


@needs_reference
def test_engine_environment_variables_are_documented() -> None:
    notes = (REFERENCE / "NOTES.md").read_text()
    for table in ENGINE_TABLES.values():
        for name in table.env:
            if name.startswith(("VLLM_", "PT_HPU_", "SGLANG_")):
                assert name in notes, f"{name} is not in NOTES.md"


# ---- YAML --------------------------------------------------------------------------------------------


def key_paths(node: Any, prefix: str = "", opaque: frozenset[str] = frozenset()) -> set[str]:
    paths: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            if path not in opaque:
                paths |= key_paths(value, path, opaque)
    elif isinstance(node, list):
        for item in node:
            paths |= key_paths(item, f"{prefix}[]", opaque)
    return paths


def test_every_yaml_output_parses_and_uses_known_keys() -> None:
    seen: set[str] = set()
    for plan_name, _, artifact in all_outputs():
        if artifact.kind != "yaml":
            continue
        docs = list(yaml.safe_load_all(artifact.content))
        assert docs and all(isinstance(d, dict) for d in docs), (plan_name, artifact.name)
        if artifact.name == "litellm.yaml":
            assert key_paths(docs[0]) <= LITELLM.yaml_keys
            entries = docs[0]["model_list"]
            plan = load_plan(plan_name)
            assert len(entries) == plan.deployment.replicas
            assert len({e["litellm_params"]["api_base"] for e in entries}) == len(entries)
            assert {e["model_name"] for e in entries} == {plan.served_name}
            assert docs[0]["router_settings"]["routing_strategy"] == "simple-shuffle"
        elif artifact.name == "llmc.yaml":
            assert key_paths(docs[0], opaque=frozenset({"quant.special"})) <= LLMC.yaml_keys
        elif artifact.name == "trtllm-llm-api.yaml":
            assert key_paths(docs[0]) <= TRTLLM.yaml_keys
        elif artifact.name == "k8s.yaml":
            kinds = [d["kind"] for d in docs]
            assert kinds[-2:] == ["Deployment", "Service"]
            deployment = docs[-2]
            assert deployment["spec"]["replicas"] == load_plan(plan_name).deployment.replicas
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["path"] == "/health"
            assert all(isinstance(a, str) for a in container["args"])
        seen.add(artifact.name)
    assert {"litellm.yaml", "llmc.yaml", "trtllm-llm-api.yaml", "k8s.yaml"} <= seen


def test_k8s_resources_follow_the_device_kind() -> None:
    expected = {
        "dense_cuda": {"nvidia.com/gpu": 2},
        "moe_cuda": {"nvidia.com/gpu": 8},
        "gaudi": {"habana.ai/gaudi": 4},
    }
    for plan_name, amount in expected.items():
        docs = list(yaml.safe_load_all(export_target(load_plan(plan_name), "k8s")[0].content))
        container = docs[-2]["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"] == amount
    rocm = load_plan("dense_cuda", hardware="mi300x", device_kind="rocm", weight_dtype="bf16")
    docs = list(yaml.safe_load_all(export_target(rocm, "k8s")[0].content))
    limits = docs[-2]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"amd.com/gpu": 2}
    cpu_docs = list(yaml.safe_load_all(export_target(load_plan("cpu"), "k8s")[0].content))
    resources = cpu_docs[-2]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "128" and resources["requests"]["memory"].endswith("Gi")
    assert resources["requests"] == resources["limits"]


def test_trtllm_configmap_carries_the_llm_api_options() -> None:
    docs = list(
        yaml.safe_load_all(export_target(load_plan("moe_cuda"), "k8s", engine="trtllm")[0].content)
    )
    assert docs[0]["kind"] == "ConfigMap"
    options = yaml.safe_load(docs[0]["data"]["trtllm-llm-api.yaml"])
    assert options["enable_attention_dp"] is True
    args = docs[1]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--extra_llm_api_options") + 1] == "/etc/budsim/trtllm-llm-api.yaml"


# ---- headers --------------------------------------------------------------------------------------------


def test_every_output_starts_with_the_header() -> None:
    for plan_name, _, artifact in all_outputs():
        plan = load_plan(plan_name)
        lines = artifact.content.splitlines()
        if lines[0].startswith("#!"):
            lines = lines[1:]
        header = []
        for line in lines:
            if not line.startswith("#"):
                break
            header.append(line)
        text = "\n".join(header)
        assert f"budsim {plan.budsim_version}" in text, (plan_name, artifact.name)
        assert f"run {plan.run_id}" in text
        assert plan.hardware in text and plan.device_kind in text
        for metric in ("TTFT", "TPOT", "throughput"):
            assert metric in text
        assert "[" in text and "]" in text  # the bands


# ---- content checks ---------------------------------------------------------------------------------------


def _engine_commands(plan: ExportPlan, target: str) -> list[tuple[dict[str, str], list[str]]]:
    out = []
    for words in commands(export_target(plan, target)[0].content):
        env, words = strip_env(words)
        if engine_of(words):
            out.append((env, words))
    return out


def _value(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


def test_dense_vllm_replicas_get_their_own_devices_and_ports() -> None:
    runs = _engine_commands(load_plan("dense_cuda"), "vllm")
    assert [env["CUDA_VISIBLE_DEVICES"] for env, _ in runs] == ["0,1", "2,3"]
    assert [_value(w, "--port") for _, w in runs] == ["8000", "8001"]
    words = runs[0][1]
    assert _value(words, "--tensor-parallel-size") == "2"
    assert _value(words, "--quantization") == "fp8"  # bf16 checkpoint served as fp8
    assert _value(words, "--kv-cache-dtype") == "fp8"


def test_moe_parallelism_maps_per_engine() -> None:
    plan = load_plan("moe_cuda")
    ((_, vllm_words),) = _engine_commands(plan, "vllm")
    assert _value(vllm_words, "--data-parallel-size") == "8"
    assert "--enable-expert-parallel" in vllm_words
    assert "--quantization" not in vllm_words  # the checkpoint is already fp8
    ((_, sgl),) = _engine_commands(plan, "sglang")
    assert (_value(sgl, "--tp-size"), _value(sgl, "--attn-dp-size"), _value(sgl, "--ep-size")) == (
        "8",
        "8",
        "8",
    )
    ((_, trt),) = _engine_commands(plan, "trtllm")
    assert (_value(trt, "--tp_size"), _value(trt, "--ep_size")) == ("8", "8")


def test_cpu_plan_sets_the_vllm_cpu_environment_and_pins_llama_server() -> None:
    plan = load_plan("cpu")
    runs = _engine_commands(plan, "vllm")
    assert [env["VLLM_CPU_OMP_THREADS_BIND"] for env, _ in runs] == ["0-126", "128-254"]
    assert all(env["VLLM_CPU_KVCACHE_SPACE"] == "37" for env, _ in runs)  # 40 GB -> 37 GiB
    text = export_target(plan, "llamacpp")[0].content
    assert "GGUF" in text and "BF16" in text
    lines = [w for w in commands(text) if "llama-server" in w]
    assert [w[:3] for w in lines][1] == ["numactl", "--cpunodebind=1", "--membind=1"]
    assert _value(lines[0], "--ctx-size") == str(32 * 8192)


def test_gaudi_plan_uses_the_hpu_plugin_environment() -> None:
    runs = _engine_commands(load_plan("gaudi"), "vllm")
    env = runs[1][0]
    assert env["HABANA_VISIBLE_MODULES"] == "4,5,6,7"
    assert env["VLLM_DECODE_BS_BUCKET_MAX"] == "128" and env["VLLM_SKIP_WARMUP"] == "false"
    docker = export_target(load_plan("gaudi"), "docker")[0].content
    assert "--runtime habana" in docker and "HABANA_VISIBLE_DEVICES=0,1,2,3" in docker


def test_gaudi_fp8_calibrates_with_inc_first_and_loads_its_scales() -> None:
    plan = load_plan("gaudi", weight_dtype="fp8", kv_dtype="fp8")
    text = export_target(plan, "vllm")[0].content
    steps = commands(text)
    calibrate = next(
        w
        for w in steps
        if w[-1:]
        and any(x.endswith('calibrate_model.sh"') or x.endswith("calibrate_model.sh") for x in w)
    )
    model_at = calibrate.index("-m") + 1
    assert calibrate[model_at] == "meta-llama/Llama-3.1-70B-Instruct"
    assert calibrate[calibrate.index("-t") + 1] == "4"
    out = calibrate[calibrate.index("-o") + 1]
    config = f"{out}/llama-3.1-70b-instruct/maxabs_quant_g3.json"  # gaudi3: the g3 scales
    assert steps.index(calibrate) < next(i for i, w in enumerate(steps) if "vllm" in w)
    for env, words in _engine_commands(plan, "vllm"):
        assert env["QUANT_CONFIG"] == config
        assert _value(words, "--quantization") == "inc"
        assert _value(words, "--kv-cache-dtype") == "fp8_inc"
        assert words[2] == "meta-llama/Llama-3.1-70B-Instruct"  # quantised at load, not saved
    g2 = export_target(load_plan("gaudi", hardware="gaudi2", weight_dtype="fp8"), "vllm")
    assert "maxabs_quant_g2.json" in g2[0].content and "fp8_inc" not in g2[0].content


def test_rocm_docker_passes_the_kfd_and_dri_devices() -> None:
    plan = load_plan("dense_cuda", hardware="mi300x", device_kind="rocm")
    text = export_target(plan, "docker")[0].content
    assert "--device=/dev/kfd" in text and "--device=/dev/dri" in text
    assert "HIP_VISIBLE_DEVICES=2,3" in text and "rocm/vllm:" in text


def test_llmc_recipe_feeds_the_engine_command() -> None:
    plan = load_plan("int4_llmc")
    recipe = yaml.safe_load(export_target(plan, "llmc")[0].content)
    assert recipe["quant"]["method"] == "Awq" and recipe["quant"]["weight"]["bit"] == 4
    saved = recipe["save"]["save_path"] + "/vllm_quant_model"
    (_, words), *_ = _engine_commands(plan, "vllm")
    assert words[2] == saved
    gptq = yaml.safe_load(export_target(plan, "llmc", ExportOptions(int4_method="gptq"))[0].content)
    assert gptq["quant"]["method"] == "GPTQ" and gptq["calib"]["preproc"] == "wikitext2_gptq"
    int8 = load_plan("int4_llmc", weight_dtype="int8")
    assert (
        yaml.safe_load(export_target(int8, "llmc")[0].content)["quant"]["method"] == "SmoothQuant"
    )
    fp8 = load_plan("int4_llmc", weight_dtype="fp8")
    offline = ExportOptions(fp8_offline=True)
    recipe = yaml.safe_load(export_target(fp8, "llmc", offline)[0].content)
    assert recipe["quant"]["weight"]["bit"] == "e4m3" and "calib" not in recipe
    (_, words), *_ = _engine_commands(fp8, "vllm")
    assert _value(words, "--quantization") == "fp8"  # online by default


def test_trtllm_quantises_with_modelopt_first() -> None:
    plan = load_plan("dense_cuda")  # bf16 checkpoint served as fp8
    text = export_target(plan, "trtllm")[0].content
    steps = commands(text)
    ptq = next(w for w in steps if len(w) > 1 and w[1].endswith("hf_ptq.py"))
    assert _value(ptq, "--qformat") == "fp8" and _value(ptq, "--kv_cache_qformat") == "fp8"
    export_path = _value(ptq, "--export_path")
    assert steps.index(ptq) < next(i for i, w in enumerate(steps) if "trtllm-serve" in w)
    for _, words in _engine_commands(plan, "trtllm"):
        assert words[words.index("trtllm-serve") + 1] == export_path
    int4 = load_plan("dense_cuda", weight_dtype="int4", kv_dtype="auto")
    ptq = next(w for w in commands(export_target(int4, "trtllm")[0].content) if "--qformat" in w)
    assert _value(ptq, "--qformat") == "int4_awq" and _value(ptq, "--kv_cache_qformat") == "none"
    nvfp4 = load_plan("dense_cuda", hardware="b200", weight_dtype="nvfp4")
    assert "--qformat nvfp4" in export_target(nvfp4, "vllm")[0].content


def test_litellm_capacity_and_providers() -> None:
    doc = yaml.safe_load(export_target(load_plan("dense_cuda"), "litellm")[0].content)
    params = doc["model_list"][0]["litellm_params"]
    assert params["model"] == "hosted_vllm/llama-3.1-8b"
    assert params["rpm"] == int(35.6 / 2 * 60) and params["tpm"] == int(45600 / 2 * 60)
    moe = yaml.safe_load(export_target(load_plan("moe_cuda"), "litellm")[0].content)
    assert moe["model_list"][0]["litellm_params"]["model"] == "openai/deepseek-v3"
    assert moe["model_list"][0]["litellm_params"]["api_base"] == "http://localhost:30000/v1"
    bound = ExportOptions(host="10.1.2.3")
    doc = yaml.safe_load(export_target(load_plan("dense_cuda"), "litellm", bound)[0].content)
    assert doc["model_list"][0]["litellm_params"]["api_base"] == "http://10.1.2.3:8000/v1"
    assert (
        "--publish 10.1.2.3:8000:8000"
        in export_target(load_plan("dense_cuda"), "docker", bound)[0].content
    )
    hosts = ExportOptions(node_hosts=("10.0.0.5",))
    doc = yaml.safe_load(export_target(load_plan("dense_cuda"), "litellm", hosts)[0].content)
    assert doc["model_list"][1]["litellm_params"]["api_base"] == "http://10.0.0.5:8001/v1"


def test_multi_node_plans_get_one_block_per_node() -> None:
    plan = load_plan("moe_cuda", hardware="h100-sxm", tp=8, dp=2, ep=16, device_memory_gb=80)
    text = export_target(plan, "vllm")[0].content
    assert 'case "$NODE_RANK" in' in text
    worker = [w for _, w in _engine_commands(plan, "vllm")][1]
    assert "--headless" in worker and _value(worker, "--data-parallel-start-rank") == "1"
    sgl = [w for _, w in _engine_commands(plan, "sglang")]
    assert [_value(w, "--node-rank") for w in sgl] == ["0", "1"]
    assert _value(sgl[1], "--dist-init-addr") == "node0:5000"


# ---- hostile names ------------------------------------------------------------------------------------------

HOSTILE_MODEL = '/srv/models/my model\'s "v2"; rm -rf ~ $(id)'
HOSTILE_NAME = "chat; echo pwned `id` $HOME 'x' \"y\""


def test_hostile_names_stay_one_argument() -> None:
    plan = load_plan("dense_cuda", model=HOSTILE_MODEL, served_model_name=HOSTILE_NAME)
    for target in ("vllm", "sglang", "docker"):
        text = export_target(plan, target)[0].content
        engine_lines = [strip_env(w)[1] for w in commands(text)]
        assert engine_lines
        for words in engine_lines:
            if words[:2] == ["docker", "run"]:
                words = split_docker(words)[1]
            if engine_of(words) is None:
                continue
            assert HOSTILE_NAME in words and HOSTILE_MODEL in words
            assert _value(words, "--served-model-name") == HOSTILE_NAME
    cpu = load_plan("cpu", served_model_name=HOSTILE_NAME)
    for words in commands(export_target(cpu, "llamacpp")[0].content):
        if "llama-server" in words:
            assert _value(words, "--alias") == HOSTILE_NAME
    k8s = list(yaml.safe_load_all(export_target(plan, "k8s")[0].content))
    args = k8s[-2]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == HOSTILE_MODEL and HOSTILE_NAME in args
    name = k8s[-2]["metadata"]["name"]
    assert len(name) <= 63 and all(c.isalnum() or c == "-" for c in name) and name == name.lower()
    lite = yaml.safe_load(export_target(plan, "litellm")[0].content)
    assert lite["model_list"][0]["model_name"] == HOSTILE_NAME


@pytest.mark.parametrize(
    "changes",
    [
        {"served_model_name": "evil\nrm -rf /"},
        {"model": "meta-llama/x\r\ny"},
        {"served_model_name": "--help"},
    ],
)
def test_names_that_cannot_be_one_safe_argument_are_rejected(changes: dict[str, str]) -> None:
    with pytest.raises(BudsimError):
        load_plan("dense_cuda", **changes)


# ---- configurations a target cannot express ------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan_name", "changes", "target", "message"),
    [
        ("moe_cuda", {"tp": 2, "dp": 4, "ep": 4}, "vllm", "EP=4 cannot be expressed"),
        ("moe_cuda", {"tp": 2, "dp": 4}, "trtllm", "attention TP2 x DP4"),
        ("cpu", {"pp": 2, "replicas": 1}, "llamacpp", "no pipeline parallelism"),
        ("gaudi", {}, "trtllm", "needs cuda hardware"),
        ("gaudi", {}, "sglang", "needs cuda/rocm hardware"),
        ("dense_cuda", {"hardware": "mi300x", "device_kind": "rocm"}, "trtllm", "needs cuda"),
        # llama.cpp splits layers over GPUs; it has no TP
        ("dense_cuda", {}, "llamacpp", r"no tensor parallelism \(TP2\); split layers \(pp\)"),
        ("cpu", {"kv_dtype": "fp8"}, "vllm", "no fp8 KV cache"),
        ("gaudi", {"kv_dtype": "fp8"}, "vllm", "comes with Intel Neural Compressor fp8 weights"),
        ("gaudi", {"weight_dtype": "int4"}, "vllm", "no quantisation path to int4"),
        ("moe_cuda", {"weight_dtype": "bf16"}, "vllm", "already fp8"),
        ("dense_cuda", {"weight_dtype": "mxfp4"}, "vllm", "no quantisation path to mxfp4"),
        ("gaudi", {}, "llamacpp", "needs cuda/rocm/cpu hardware"),
        ("dense_cuda", {}, "llmc", "no LLMC recipe needed"),
        ("int4_llmc", {"model_type": "mamba"}, "llmc", "no model class"),
        (
            "moe_cuda",
            {"hardware": "h100-sxm", "tp": 8, "dp": 2, "ep": 16},
            "k8s",
            "LeaderWorkerSet",
        ),
        (
            "moe_cuda",
            {"hardware": "h100-sxm", "tp": 8, "dp": 2, "ep": 16},
            "trtllm",
            "MPI launcher",
        ),
        ("moe_cuda", {"hardware": "h100-sxm", "tp": 16, "dp": 1, "ep": 16}, "vllm", "Ray cluster"),
        ("gaudi", {}, "docker", None),  # expressible: a control case
        # speculative decoding an engine (or budsim's prediction) does not run
        ("spec_ngram_trtllm", {"hardware": "mi300x", "device_kind": "rocm"}, "sglang", "CUDA"),
        ("spec_ngram_trtllm", {"hardware": "mi300x", "device_kind": "rocm"}, "vllm", None),
        (
            "spec_mtp_sglang",
            {"spec_method": "ngram", "tp": 1, "dp": 8, "ep": 8},
            "sglang",
            "does not run with attention data parallelism",
        ),
        ("spec_mtp_sglang", {"tp": 1, "dp": 8, "ep": 8}, "sglang", None),  # MTP does
        ("cpu", {"spec_method": "ngram"}, "vllm", "only on cuda/rocm hardware"),
        ("cpu", {"spec_method": "ngram"}, "llamacpp", "only on cuda/rocm hardware"),
        ("gaudi", {"spec_method": "eagle3"}, "vllm", "only on cuda/rocm hardware"),
    ],
)
def test_inexpressible_configurations_name_the_missing_capability(
    plan_name: str, changes: dict[str, Any], target: str, message: str | None
) -> None:
    plan = load_plan(plan_name, **changes)
    if message is None:
        assert export_target(plan, target)
        return
    with pytest.raises(BudsimError, match=message):
        export_target(plan, target)


def test_all_skips_optional_targets_with_a_reason() -> None:
    result = export(load_plan("cpu"), ["all"])
    names = [a.name for a in result.artifacts]
    assert names == [
        "vllm.sh",
        "llamacpp.sh",
        "litellm.yaml",
        "litellm.sh",
        "docker.sh",
        "k8s.yaml",
    ]
    # the cpu plan does not say its workload: nothing for a benchmark to replay
    assert [t for t, _ in result.skipped] == ["llmc", "bench"]
    with pytest.raises(BudsimError, match="no LLMC recipe needed"):
        export(load_plan("cpu"), ["llmc"])


def test_memory_fraction_is_converted_for_trtllm() -> None:
    ((_, words),) = _engine_commands(load_plan("moe_cuda"), "trtllm")
    # SGLang 0.85 of 141 GB with 84 GB of weights -> (0.85*141-84)/(141-84) of the free memory
    assert float(_value(words, "--kv_cache_free_gpu_memory_fraction")) == pytest.approx(
        (0.85 * 141 - 84) / (141 - 84), abs=1e-3
    )


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_converted_memory_fraction_keeps_a_margin(engine: str) -> None:
    """TRT-LLM's 0.95 of the memory left after 50 of 85.9 GB of weights is 0.979 of the device
    (#19): the export caps it at 0.95 and its header says what was converted, why, and what the
    cap costs the KV cache."""
    from budsim.core.export.memory import MAX_CONVERTED

    plan = load_plan(
        "dense_cuda",
        engine="trtllm",
        gpu_memory_utilization=0.95,
        device_memory_gb=85.9,
        predicted_performance={"weights_gb_per_device": 50.0},
    )
    ((_, words),) = _engine_commands(plan, engine)[:1]
    option = {"vllm": "--gpu-memory-utilization", "sglang": "--mem-fraction-static"}[engine]
    assert float(_value(words, option)) == MAX_CONVERTED == 0.95
    (note,) = [n for n in export_target(plan, engine)[0].content.splitlines() if "converted" in n]
    assert "TensorRT-LLM fraction 0.95 is a share of the memory the weights leave" in note
    assert f"{option} a share of all device memory, so 0.979, capped at 0.95" in note
    assert "KV cache is about 2.5 GB per device smaller than predicted" in note
    # a small model converts without the cap
    small = load_plan("dense_cuda", engine="trtllm", gpu_memory_utilization=0.8)
    assert float(_value(_engine_commands(small, engine)[0][1], option)) == pytest.approx(
        (4.6 + 0.8 * (80 - 4.6)) / 80, abs=1e-3
    )


# ---- configuration JSON -------------------------------------------------------------------------------


def test_optimizer_response_shape_is_read_by_rank_and_pareto() -> None:
    base = json.loads((PLANS / "dense_cuda.json").read_text())
    keys = ("model", "hardware", "engine", "tp", "pp", "dp", "ep", "replicas", "weight_dtype")
    keys += ("kv_dtype", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization")
    config = {k: base[k] for k in keys}
    alt = {**config, "replicas": 4, "tp": 1}
    response = {
        "simulation_id": "run-123",
        "optimal_configuration": {**config, "devices": 4, "devices_per_replica": 2},
        "predicted_performance": base["predicted_performance"],
        "alternative_configurations": [
            {"configuration": alt, "predicted_performance": {"ttft_ms_mean": 99.0}}
        ],
        "pareto_front": [{"configuration": alt, "objectives": {}}],
        "request": {"workload": {"input_len": 3000, "output_len": 500}},
        "simulation_metadata": {"budsim_version": "0.0.9"},
    }
    extra = {"checkpoint_dtype": "bf16", "device_kind": "cuda", "devices_per_node": 8}
    response["optimal_configuration"].update(extra)
    alt.update(extra)
    best = from_config_json(response)
    assert best.run_id == "run-123" and best.rank == 0 and best.budsim_version == "0.0.9"
    assert best.max_model_len == 4096  # 3000 + 500 rounded up to 1024
    second = from_config_json(response, rank=1)
    assert second.deployment.replicas == 4 and second.prediction["ttft_ms_mean"] == 99.0
    front = from_config_json(response, pareto=0)
    assert front.deployment.tp == 1 and front.prediction["ttft_ms_mean"] == 99.0
    with pytest.raises(BudsimError, match="out of range"):
        from_config_json(response, rank=5)
    with pytest.raises(BudsimError, match="one configuration"):
        from_config_json(base, rank=2)


def test_unknown_hardware_needs_the_device_kind() -> None:
    with pytest.raises(BudsimError, match="device_kind"):
        load_plan("dense_cuda", hardware="mystery-chip", device_kind=None)


# ---- CLI ------------------------------------------------------------------------------------------------


def _cli() -> Any:
    from budsim.cli import app

    return app


def test_cli_prints_to_stdout_and_writes_files(tmp_path: Path) -> None:
    runner = CliRunner()
    plan = str(PLANS / "dense_cuda.json")
    result = runner.invoke(_cli(), ["export", plan, "--target", "vllm", "--port", "9000"])
    assert result.exit_code == 0, result.output
    assert "vllm serve meta-llama/Llama-3.1-8B-Instruct" in result.output
    assert "--port 9000" in result.output and "--port 9001" in result.output
    out = tmp_path / "out"
    result = runner.invoke(_cli(), ["export", plan, "-t", "vllm,litellm", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["litellm.sh", "litellm.yaml", "vllm.sh"]
    assert result.output.split() == [
        str(out / n) for n in ("vllm.sh", "litellm.yaml", "litellm.sh")
    ]
    assert os.access(out / "vllm.sh", os.X_OK)
    result = runner.invoke(_cli(), ["export", plan, "-t", "k8s", "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)["files"]
    assert [f["name"] for f in files] == ["k8s.yaml"]
    assert yaml.safe_load_all(files[0]["content"])


def test_cli_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    plan = str(PLANS / "dense_cuda.json")
    result = runner.invoke(_cli(), ["export", plan, "--target", "llamacpp"])
    assert result.exit_code != 0 and isinstance(result.exception, BudsimError)
    assert "no tensor parallelism (TP2)" in str(result.exception)
    result = runner.invoke(_cli(), ["export", plan, "--target", "nginx"])
    assert "unknown target" in str(result.exception)
    monkeypatch.setenv("BUDSIM_DB", str(tmp_path / "runs.db"))
    result = runner.invoke(_cli(), ["export", "deadbeef", "--target", "vllm"])
    assert isinstance(result.exception, BudsimError) and "deadbeef" in str(result.exception)


def test_cli_exports_a_stored_run(tmp_path: Path) -> None:
    store_module = pytest.importorskip("budsim.core.store")
    base = json.loads((PLANS / "gaudi.json").read_text())
    keys = ("model", "hardware", "engine", "tp", "pp", "dp", "ep", "replicas", "weight_dtype")
    keys += ("kv_dtype", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization")
    deployment = {k: base[k] for k in keys}
    db = tmp_path / "runs.db"
    store = store_module.open_store(db)
    run_id = store.create_run(
        inputs={"model": base["model"], "workload": {"input_len": 1000, "output_len": 200}}
    )
    store.finish_run(
        run_id,
        "completed",
        results=[
            {
                "rank": 0,
                "kind": "best",
                "deployment": deployment,
                "prediction": base["predicted_performance"],
            },
            {
                "rank": 1,
                "kind": "alternative",
                "deployment": {**deployment, "tp": 8, "replicas": 1},
            },
        ],
    )
    store.close()
    runner = CliRunner()
    result = runner.invoke(_cli(), ["export", run_id[:8], "-t", "vllm", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert f"run {run_id}, rank 0" in result.output
    assert "--max-model-len 2048" in result.output  # from the run's workload
    assert "HABANA_VISIBLE_MODULES=4,5,6,7" in result.output
    result = runner.invoke(_cli(), ["export", run_id, "-t", "vllm", "--rank", "1", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "--tensor-parallel-size 8" in result.output and "predicted: TTFT n/a" in result.output
    # the benchmark replays the run's workload (closed loop of 1 by default)
    result = runner.invoke(_cli(), ["export", run_id[:8], "-t", "bench", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "--random-input-len 1000" in result.output and "--max-concurrency 1" in result.output


@pytest.mark.parametrize(
    ("status", "says"),
    [("failed", "does not meet them"), ("cancelled", "generations it finished"), ("completed", "")],
)
def test_exporting_an_unfinished_run_warns(tmp_path: Path, status: str, says: str) -> None:
    """A failed run's closest configuration (or a cancelled run's best so far) is exported with
    a warning that leads the header and is repeated on stderr; a completed run's is not."""
    store_module = pytest.importorskip("budsim.core.store")
    base = json.loads((PLANS / "gaudi.json").read_text())
    keys = ("model", "hardware", "engine", "tp", "pp", "dp", "ep", "replicas", "weight_dtype")
    deployment = {k: base[k] for k in keys}
    db = tmp_path / "runs.db"
    store = store_module.open_store(db)
    run_id = store.create_run(inputs={"model": base["model"]})
    results = [{"rank": 0, "kind": "closest", "deployment": deployment, "prediction": {}}]
    store.finish_run(run_id, status, results=results, error="no configuration meets it")
    store.close()
    result = CliRunner().invoke(_cli(), ["export", run_id[:8], "-t", "vllm", "--db", str(db)])
    assert result.exit_code == 0, result.output
    header = [line for line in result.stdout.splitlines() if line.startswith("# WARNING:")]
    if says:
        assert len(header) == 1 and says in header[0]
        assert result.stderr.startswith("warning: ") and says in result.stderr
    else:
        assert not header and "warning" not in result.stderr


def test_one_version_per_engine_everywhere() -> None:
    """`budsim engines`, the exported scripts' headers, the flag tables and the official images
    state the same release of each engine: ENGINE_VERSIONS (#19: exports said TensorRT-LLM 1.2
    while `budsim engines` said 1.0)."""
    from budsim.core.engines import ENGINE_VERSIONS, all_profiles
    from budsim.core.export.flags import IMAGES

    listed = json.loads(CliRunner().invoke(_cli(), ["engines", "--json"]).stdout)
    for profile in listed:
        assert profile["version"].partition(" (")[0] == ENGINE_VERSIONS[profile["id"]], profile
    assert {p.version.partition(" (")[0] for p in all_profiles()} == set(ENGINE_VERSIONS.values())
    exported = [e for e in ENGINE_VERSIONS if e != "deepspeed"]  # DeepSpeed: modelled, not exported
    assert set(exported) <= set(ENGINE_TABLES)
    for engine in exported:
        assert ENGINE_TABLES[engine].version.partition(" (")[0] == ENGINE_VERSIONS[engine]
    names = {"vllm": VLLM.engine, "sglang": SGLANG.engine, "trtllm": TRTLLM.engine}
    for plan_name, engine in [
        ("dense_cuda", "vllm"),
        ("dense_cuda", "sglang"),
        ("moe_cuda", "trtllm"),
    ]:
        for artifact in export_target(load_plan(plan_name), engine):
            first = artifact.content.splitlines()[1 if artifact.name.endswith(".sh") else 0]
            assert first.startswith(f"# {names[engine]} {ENGINE_VERSIONS[engine]}"), first
    for (engine, kind), image in IMAGES.items():
        # the Gaudi image is tagged by SynapseAI; llama.cpp's by build number (server-bNNNN) or
        # rolling (server, server-cuda), never by the commit its flags were pinned at
        if engine in ENGINE_VERSIONS and kind != "hpu" and engine != "llamacpp":
            tag = ENGINE_VERSIONS[engine].removesuffix(".x")
            assert tag in image.rpartition(":")[2] or f"vllm_{tag}" in image, image


def test_no_commit_hash_reads_like_an_internal_id() -> None:
    """Builds known only by a git commit say so ("commit 00dc8057"), never "@00dc8057", which
    reads like an object id; an error names the engine without it (#19)."""
    for table in (*ALL_TABLES.values(), MODELOPT):
        assert "@" not in table.version, table.version
    with pytest.raises(BudsimError) as err:
        export_target(load_plan("gaudi"), "llamacpp")
    assert str(err.value).startswith("llama.cpp cannot run this plan: it needs cuda/rocm/cpu")


# ---- speculative decoding and prefix caching ----------------------------------------------------------

SPEC_PLANS = {"spec_eagle3_vllm": "eagle3", "spec_mtp_sglang": "mtp", "spec_ngram_trtllm": "ngram"}
# the method as each engine spells it (vLLM --speculative-config method, SGLang
# --speculative-algorithm, TensorRT-LLM speculative_config.decoding_type)
SPELLED = {
    "eagle3": ("eagle3", "EAGLE3", "Eagle"),
    "mtp": ("mtp", "NEXTN", "MTP"),
    "ngram": ("ngram", "NGRAM", "NGram"),
}
VLLM_SPEC_KEYS = {"method", "model", "num_speculative_tokens", "prompt_lookup_max"}
VLLM_SPEC_KEYS |= {"prompt_lookup_min"}  # vLLM 0.11 SpeculativeConfig fields


def _speculation(plan: ExportPlan, engine: str) -> dict[str, Any]:
    """What the `engine` export asks for: the vLLM JSON, the SGLang options or the TRT-LLM YAML
    section (the same for every replica)."""
    artifacts = export_target(plan, engine)
    if engine == "trtllm":
        options = next(a for a in artifacts if a.name == "trtllm-llm-api.yaml")
        return dict(yaml.safe_load(options.content)["speculative_config"])
    found = []
    for _, words in _engine_commands(plan, engine):
        if engine == "vllm":
            found.append(json.loads(_value(words, "--speculative-config")))
        else:
            found.append({w: _value(words, w) for w in words if w.startswith("--speculative")})
    assert found and all(f == found[0] for f in found)
    return found[0]


def test_speculative_method_values_exist_in_the_targeted_versions() -> None:
    """Every method an export names is one its engine's targeted version accepts, and the draft
    lengths agree with each other (SGLang: one chain of k tokens, verified as k + 1)."""
    seen = {"vllm": 0, "sglang": 0, "trtllm": 0}
    for plan_name in SPEC_PLANS:
        plan = load_plan(plan_name)
        vllm = _speculation(plan, "vllm")
        assert vllm["method"] in VLLM_SPEC_METHODS and set(vllm) <= VLLM_SPEC_KEYS
        sglang = _speculation(plan, "sglang")
        assert sglang["--speculative-algorithm"] in SGLANG_SPEC_ALGORITHMS
        if "--speculative-eagle-topk" in sglang:
            assert sglang["--speculative-eagle-topk"] == "1"
            steps = int(sglang["--speculative-num-steps"])
            assert int(sglang["--speculative-num-draft-tokens"]) == steps + 1
        trtllm = _speculation(plan, "trtllm")
        assert trtllm["decoding_type"] in TRTLLM_DECODING_TYPES
        for engine in seen:
            seen[engine] += 1
    assert all(seen.values())


@pytest.mark.parametrize("plan_name", sorted(SPEC_PLANS))
def test_each_engine_asks_for_the_predicted_speculation(plan_name: str) -> None:
    plan = load_plan(plan_name)
    method = SPEC_PLANS[plan_name]
    k = plan.deployment.spec_tokens or {"eagle3": 3, "mtp": 3, "ngram": 4}[method]
    vllm_name, sglang_name, trtllm_name = SPELLED[method]
    vllm = _speculation(plan, "vllm")
    assert (vllm["method"], vllm["num_speculative_tokens"]) == (vllm_name, k)
    sglang = _speculation(plan, "sglang")
    assert sglang["--speculative-algorithm"] == sglang_name
    assert sglang["--speculative-num-draft-tokens"] == str(k + 1)
    trtllm = _speculation(plan, "trtllm")
    assert trtllm["decoding_type"] == trtllm_name
    if method == "mtp":
        assert trtllm == {"decoding_type": "MTP", "num_nextn_predict_layers": k}
        assert "model" not in vllm and "--speculative-draft-model-path" not in sglang
    elif method == "eagle3":
        # budsim knows no draft head: the user names it, never a made-up repository
        assert vllm["model"] == "${DRAFT_MODEL}"
        assert sglang["--speculative-draft-model-path"] == "${DRAFT_MODEL}"
        assert trtllm["max_draft_len"] == k
        assert trtllm["speculative_model_dir"].startswith("<SET ME")
    else:
        assert (vllm["prompt_lookup_min"], vllm["prompt_lookup_max"]) == (2, 4)
        assert sglang["--speculative-ngram-max-bfs-breadth"] == "1"
        assert trtllm == {
            "decoding_type": "NGram",
            "max_draft_len": k,
            "max_matching_ngram_size": 4,
        }


def test_headers_state_the_assumed_speculation_and_prefix_cache() -> None:
    expected = {
        "spec_eagle3_vllm": "speculative decoding: EAGLE-3, 3 draft tokens a step, acceptance 0.70 "
        "per drafted token (budsim's EAGLE-3 default, an assumption: measure yours); the "
        "prediction assumed it: 2.53 tokens per target step",
        "spec_mtp_sglang": "speculative decoding: MTP, 3 draft tokens a step, acceptance 0.70",
        "spec_ngram_trtllm": "speculative decoding: n-gram, 5 draft tokens a step, acceptance 0.50 "
        "per drafted token (set for this plan); the prediction assumed it: 1.97 tokens",
        "prefix_cache": "prefix caching: every prompt starts with the same 2048-token prefix; 50 % "
        "of the rest of each prompt is cached from earlier turns. The prediction counted these "
        "tokens as prefix-cache hits",
    }
    for plan_name, line in expected.items():
        for target in GOLDEN_TARGETS[plan_name]:
            for artifact in export_target(load_plan(plan_name), target):
                assert f"# {line}" in artifact.content, (plan_name, artifact.name)
    for artifact in export_target(load_plan("dense_cuda"), "vllm"):
        assert "speculative decoding" not in artifact.content
        assert "prefix caching" not in artifact.content


def test_prefix_caching_stays_on_where_the_prediction_counted_it() -> None:
    plan = load_plan("prefix_cache")
    for _, words in _engine_commands(plan, "vllm"):
        assert "--enable-prefix-caching" in words
    for _, words in _engine_commands(plan, "sglang"):
        assert "--disable-radix-cache" not in words
    assert "radix prefix cache is on by default" in export_target(plan, "sglang")[0].content
    options = {a.name: a.content for a in export_target(plan, "trtllm")}["trtllm-llm-api.yaml"]
    assert yaml.safe_load(options)["kv_cache_config"] == {"enable_block_reuse": True}
    # without prefix caching in the workload: nothing explicit
    dense = load_plan("dense_cuda")
    assert "--enable-prefix-caching" not in export_target(dense, "vllm")[0].content
    assert "enable_block_reuse" not in export_target(dense, "trtllm")[1].content
    # a configuration JSON may give the fields at the top level
    top = load_plan("dense_cuda", shared_prefix_len=1000, cached_share=0.25)
    text = export_target(top, "vllm")[0].content
    assert "--enable-prefix-caching" in text and "25 % of the rest" in text
    with pytest.raises(BudsimError, match="cached_share"):
        load_plan("dense_cuda", cached_share=1.5)


@pytest.mark.parametrize(
    "changes",
    [{"spec_method": "medusa"}, {"spec_tokens": 40}, {"spec_acceptance": 1.2}],
)
def test_invalid_speculative_fields_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(BudsimError, match="spec_"):
        load_plan("spec_eagle3_vllm", **changes)


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run_script(folder: Path, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(folder / name)],
        env={"PATH": f"{folder / 'bin'}:{os.environ['PATH']}", "HOME": str(folder), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _fake_programs(folder: Path, *names: str) -> None:
    """Programs that write their arguments, one a line, to <name>.args instead of serving."""
    (folder / "bin").mkdir()
    for name in names:
        fake = folder / "bin" / name
        fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "{folder}/{name}.args"\n')
        fake.chmod(0o755)


@needs_bash
@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_scripts_stop_until_the_eagle3_draft_head_is_named(tmp_path: Path, engine: str) -> None:
    """Run the generated script with fake engines: it stops before starting anything while the
    draft head is unnamed, and passes the one the user names to the engine intact."""
    plan = load_plan("spec_eagle3_vllm")
    for artifact in export_target(plan, engine):
        (tmp_path / artifact.name).write_text(artifact.content)
    program = {"vllm": "vllm", "sglang": "python3", "trtllm": "trtllm-serve"}[engine]
    _fake_programs(tmp_path, program)
    draft = "/srv/drafts/my eagle3 head"  # a directory with a space stays one value
    first = _run_script(tmp_path, f"{engine}.sh", {"DRAFT_MODEL": ""})
    assert first.returncode != 0 and not (tmp_path / f"{program}.args").exists()
    if engine == "trtllm":
        assert "set the EAGLE-3 draft head in trtllm-llm-api.yaml first" in first.stderr
        options = tmp_path / "trtllm-llm-api.yaml"
        doc = yaml.safe_load(options.read_text())
        doc["speculative_config"]["speculative_model_dir"] = draft
        options.write_text(yaml.safe_dump(doc))
    else:
        assert "set DRAFT_MODEL to an EAGLE-3 draft head" in first.stderr
    second = _run_script(tmp_path, f"{engine}.sh", {"DRAFT_MODEL": draft})
    assert second.returncode == 0, second.stderr
    args = (tmp_path / f"{program}.args").read_text().splitlines()
    if engine == "vllm":
        config = json.loads(args[args.index("--speculative-config") + 1])
        assert config == {"method": "eagle3", "model": draft, "num_speculative_tokens": 3}
    elif engine == "sglang":
        assert args[args.index("--speculative-draft-model-path") + 1] == draft
    else:
        assert args[args.index("--extra_llm_api_options") + 1].endswith("trtllm-llm-api.yaml")


def test_k8s_names_the_draft_head_through_the_container_env() -> None:
    docs = list(yaml.safe_load_all(export_target(load_plan("spec_eagle3_vllm"), "k8s")[0].content))
    container = docs[-2]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DRAFT_MODEL"].startswith("<SET ME") and "HF_TOKEN" in env
    args = container["args"]
    config = json.loads(args[args.index("--speculative-config") + 1])
    assert config["model"] == "$(DRAFT_MODEL)"  # Kubernetes expands it from the env
    options = export_target(load_plan("spec_eagle3_vllm"), "k8s", engine="trtllm")[0].content
    config_map = yaml.safe_load(list(yaml.safe_load_all(options))[0]["data"]["trtllm-llm-api.yaml"])
    assert config_map["speculative_config"]["speculative_model_dir"].startswith("<SET ME")


def test_new_flags_are_among_the_checked_commands() -> None:
    """The flag-table check above runs over commands that use the speculative and prefix-cache
    options, so each is checked against its engine's option list."""
    emitted: set[str] = set()
    for _, _, artifact in all_outputs():
        if artifact.kind == "sh":
            for words in commands(artifact.content):
                found = engine_of(strip_env(words)[1])
                if found is not None:
                    emitted |= set(option_words(found[1]))
    new = {"--speculative-config", "--enable-prefix-caching", "--speculative-algorithm"}
    new |= {"--speculative-draft-model-path", "--speculative-num-steps", "--speculative-eagle-topk"}
    new |= {"--speculative-num-draft-tokens", "--speculative-ngram-max-bfs-breadth"}
    assert new <= emitted, sorted(new - emitted)


def test_cli_exports_a_stored_speculative_run_with_prefix_caching(tmp_path: Path) -> None:
    """A stored run's best deployment carries its speculative fields and its request's workload
    the prefix caching; the export asks the engine for both and says what was assumed."""
    store_module = pytest.importorskip("budsim.core.store")
    base = json.loads((PLANS / "dense_cuda.json").read_text())
    keys = ("model", "hardware", "engine", "tp", "pp", "dp", "ep", "replicas", "weight_dtype")
    keys += ("kv_dtype", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization")
    deployment = {k: base[k] for k in keys}
    deployment.update(spec_method="eagle3", spec_tokens=4, spec_acceptance=0.6)
    workload = {"input_len": 3000, "output_len": 500, "shared_prefix_len": 512, "cached_share": 0.0}
    db = tmp_path / "runs.db"
    store = store_module.open_store(db)
    run_id = store.create_run(inputs={"model": base["model"], "workload": workload})
    prediction = base["predicted_performance"]
    results = [{"rank": 0, "kind": "best", "deployment": deployment, "prediction": prediction}]
    store.finish_run(run_id, "completed", results=results)
    store.close()
    runner = CliRunner()
    for engine in ("vllm", "sglang", "trtllm"):
        result = runner.invoke(_cli(), ["export", run_id[:8], "-t", engine, "--db", str(db)])
        assert result.exit_code == 0, result.output
        text = result.output
        assert "EAGLE-3, 4 draft tokens a step, acceptance 0.60 per drafted token (set for" in text
        assert "every prompt starts with the same 512-token prefix. The prediction" in text
        if engine == "vllm":
            assert '"num_speculative_tokens": 4' in text and "--enable-prefix-caching" in text
        elif engine == "sglang":
            assert (
                "--speculative-num-steps 4" in text and "--speculative-num-draft-tokens 5" in text
            )
        else:
            assert "max_draft_len: 4" in text and "enable_block_reuse: true" in text


def test_an_optimised_speculative_run_exports_what_it_chose(tmp_path: Path) -> None:
    """End to end: a search with EAGLE-3 and a shared prefix, stored, then exported for its own
    engine: the export asks for the speculation the best configuration was predicted with."""
    from budsim.core.deployment import Workload
    from budsim.core.search.optimize import OptimizationRequest, run_optimization
    from budsim.core.store import open_store

    db = tmp_path / "runs.db"
    store = open_store(db)
    workload = Workload(concurrency=4, input_len=1024, output_len=256, shared_prefix_len=256)
    request = OptimizationRequest(
        model="meta-llama/Llama-3.1-8B",
        hardware="h100-sxm",
        devices=2,
        workload=workload,
        engines=("vllm",),
        quantizations=("bf16",),
        optimization_target="latency",
        speculative=("eagle3",),
    )
    result = run_optimization(request, store=store)
    store.close()
    assert result.best is not None and result.simulation_id
    best = result.best.deployment
    text = (
        CliRunner()
        .invoke(_cli(), ["export", result.simulation_id, "-t", "vllm", "--db", str(db)])
        .output
    )
    assert "--enable-prefix-caching" in text
    if best.spec_method == "eagle3":
        assert '"method": "eagle3"' in text and "speculative decoding: EAGLE-3" in text
    else:
        assert "--speculative-config" not in text and "speculative decoding" not in text


def test_max_model_len_covers_the_longest_request_of_a_length_mix() -> None:
    from budsim.core.export.plan import max_len_from_workload

    mix = [[0.7, 128, 64, 0.0, 0.0], [0.3, 4096, 1024, 0.0, 0.0]]  # as a stored run holds it
    assert max_len_from_workload({"input_len": 1318, "output_len": 352, "length_mix": mix}) == 5120
    assert (
        max_len_from_workload({"input_len": 1000, "output_len": 200, "input_len_spread": 0.5})
        == 2048
    )
    assert max_len_from_workload({"input_len": 1024, "output_len": 256}) == 2048
    assert max_len_from_workload({}) is None


# ---- the benchmark (bench target) -------------------------------------------------------------------

BENCH_FLAGS = HERE / "fixtures" / "bench_flags"


@pytest.mark.parametrize("client", sorted(BENCH_TABLES))
def test_bench_flags_exist_in_the_clients_option_lists(client: str) -> None:
    """Every option a bench command may carry is accepted by the client's own parser in each
    release the table names (lists dumped from the wheels, tests/fixtures/bench_flags/)."""
    table = BENCH_TABLES[client]
    assert table.reference and table.reference_versions
    for version in table.reference_versions:
        path = BENCH_FLAGS / f"{table.reference}-{version}.txt"
        lines = path.read_text().splitlines()
        tokens = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
        missing = sorted(set(table.flags) - tokens)
        assert not missing, f"not accepted by {table.engine} {version}: {missing}"


def _bench_words(plan: ExportPlan, engine: str | None = None) -> tuple[str, list[str]]:
    (artifact,) = export_target(plan, "bench", engine=engine)
    assert artifact.name == "bench.sh" and artifact.kind == "sh"
    found = [w for w in commands(artifact.content) if bench_of(w)]
    assert len(found) == 1
    return artifact.content, found[0]


def test_bench_replays_each_engine_against_its_server() -> None:
    # vLLM: one replica, its own server and API name
    text, words = _bench_words(load_plan("spec_eagle3_vllm"))
    assert words[:3] == ["vllm", "bench", "serve"] and _value(words, "--backend") == "vllm"
    assert 'BASE_URL="${BASE_URL:-http://localhost:8000}"' in text
    assert _value(words, "--model") == "meta-llama/Llama-3.1-8B-Instruct"
    assert _value(words, "--served-model-name") == "llama-3.1-8b"
    assert (_value(words, "--max-concurrency"), _value(words, "--num-prompts")) == ("4", "100")
    assert "--ignore-eos" in words and "--request-rate" not in words
    # SGLang: its own client, random token ids (no ShareGPT download), fixed lengths
    text, words = _bench_words(load_plan("spec_mtp_sglang"))
    assert words[:3] == ["python3", "-m", "sglang.benchmark.serving"]
    assert (_value(words, "--backend"), _value(words, "--dataset-name")) == ("sglang", "random-ids")
    assert _value(words, "--random-range-ratio") == "1"  # [len*1, len]: fixed
    assert 'BASE_URL="${BASE_URL:-http://localhost:30000}"' in text
    assert _value(words, "--output-file") == "$RESULT_DIR/$RESULT_FILE"
    # TensorRT-LLM, two replicas: vLLM's client through the LiteLLM proxy
    text, words = _bench_words(load_plan("spec_ngram_trtllm"))
    assert words[:3] == ["vllm", "bench", "serve"] and _value(words, "--backend") == "openai"
    assert 'BASE_URL="${BASE_URL:-http://localhost:4000}"' in text and "litellm.sh" in text
    assert _value(words, "--served-model-name") == "llama-3.1-8b"  # the proxy's model_name
    # one trtllm-serve replica answers to the checkpoint it loaded (no served-model-name option)
    single = load_plan("spec_ngram_trtllm", replicas=1)
    text, words = _bench_words(single)
    assert _value(words, "--backend") == "openai" and "--served-model-name" not in words
    assert 'BASE_URL="${BASE_URL:-http://localhost:8000}"' in text


def test_bench_load_and_lengths_follow_the_workload() -> None:
    # a rate with bursty arrivals, spread lengths and a sized run
    _, words = _bench_words(load_plan("bench_rate_spread"))
    assert (_value(words, "--request-rate"), _value(words, "--burstiness")) == ("4", "0.5")
    assert "--max-concurrency" not in words and _value(words, "--num-prompts") == "400"
    assert _value(words, "--random-range-ratio") == "0.25" and _value(words, "--seed") == "7"
    # SGLang draws lengths in [len*r, len]: len = mean*(1+s), r = (1-s)/(1+s); Poisson only
    text, words = _bench_words(load_plan("bench_rate_spread"), engine="sglang")
    assert (_value(words, "--random-input-len"), _value(words, "--random-output-len")) == (
        "2560",
        "320",
    )
    assert _value(words, "--random-range-ratio") == "0.6" and "--burstiness" not in words
    assert "SGLang's benchmark sends Poisson arrivals" in text
    # a shared prefix: vLLM's random prefix, SGLang's shared-prefix dataset (one group)
    _, words = _bench_words(load_plan("prefix_cache"))
    assert (_value(words, "--random-prefix-len"), _value(words, "--random-input-len")) == (
        "2048",
        "4096",
    )
    text, words = _bench_words(load_plan("prefix_cache"), engine="sglang")
    assert _value(words, "--dataset-name") == "generated-shared-prefix"
    assert (_value(words, "--gsp-system-prompt-len"), _value(words, "--gsp-question-len")) == (
        "2048",
        "4096",
    )
    assert _value(words, "--gsp-prompts-per-group") == "320" and "--num-prompts" not in words
    assert "shared_prefix_len=2048" in text and "cached_share" not in text.split("printf")[-1]
    # the spread of a whole prompt, carried by the part after the prefix: 0.2 x 6144 / 4096
    workload = {"input_len": 6144, "output_len": 512, "shared_prefix_len": 2048}
    spread = load_plan("prefix_cache", workload={**workload, "input_len_spread": 0.2})
    assert _value(_bench_words(spread)[1], "--random-range-ratio") == "0.3"
    wide = load_plan("prefix_cache", workload={**workload, "input_len_spread": 0.9})
    text, words = _bench_words(wide)
    assert _value(words, "--random-range-ratio") == "0.99" and "vLLM takes below 1" in text
    # a static batch: all at once
    static = load_plan(
        "spec_eagle3_vllm",
        workload={"scenario": "static", "batch_size": 8, "input_len": 512, "output_len": 64},
    )
    _, words = _bench_words(static)
    assert (_value(words, "--max-concurrency"), _value(words, "--num-prompts")) == ("8", "8")


def test_bench_sends_a_length_mix_at_its_means() -> None:
    mix = [[0.7, 128, 64, 0.0, 0.0], [0.3, 4096, 1024, 0.0, 0.0]]  # as a stored run holds it
    workload = {"concurrency": 16, "input_len": 1318, "output_len": 352, "length_mix": mix}
    text, words = _bench_words(load_plan("spec_eagle3_vllm", workload=workload))
    assert (_value(words, "--random-input-len"), _value(words, "--random-output-len")) == (
        "1318",
        "352",
    )
    assert _value(words, "--random-range-ratio") == "0"
    assert "mixes 2 request shapes" in text and "mean lengths 1318 -> 352" in text


def test_bench_needs_a_workload_and_a_predicted_engine() -> None:
    with pytest.raises(BudsimError, match="does not say the workload"):
        export_target(load_plan("dense_cuda"), "bench")
    cpu = load_plan("cpu", workload={"input_len": 512, "output_len": 128})
    assert export_target(cpu, "bench")  # vLLM on CPU: the client does not care
    with pytest.raises(BudsimError, match="no benchmark for llama.cpp"):
        export_target(cpu, "bench", engine="llamacpp")
    comma = load_plan("spec_eagle3_vllm", model="/srv/models/llama,v2")
    with pytest.raises(BudsimError, match="cannot carry"):
        export_target(comma, "bench")


def test_bench_keeps_hostile_names_one_argument() -> None:
    plan = load_plan("spec_eagle3_vllm", served_model_name=HOSTILE_NAME)
    _, words = _bench_words(plan)
    assert _value(words, "--served-model-name") == HOSTILE_NAME


FAKE_VLLM = '''#!{python}
"""vllm bench serve, faked: writes the --save-result JSON vLLM 0.11.0 writes, from its arguments."""
import json, os, sys

args = sys.argv[1:]
assert args[:2] == ["bench", "serve"], args
def value(flag, default=None):
    return args[args.index(flag) + 1] if flag in args else default
n = int(value("--num-prompts"))
isl = int(value("--random-input-len")) + int(value("--random-prefix-len", 0))
osl = int(value("--random-output-len"))
conc = value("--max-concurrency")
rate = value("--request-rate")
metrics = {{}}
for name, mean in (("ttft", 140.0), ("tpot", 14.0), ("itl", 13.9), ("e2el", 140.0 + 14.0 * osl)):
    metrics.update({{f"mean_{{name}}_ms": mean, f"median_{{name}}_ms": mean * 0.97,
                    f"std_{{name}}_ms": mean * 0.1}})
    for p in value("--metric-percentiles").split(","):
        metrics[f"p{{p}}_{{name}}_ms"] = mean * (1 + int(p) / 200)
duration = n * (140.0 + 14.0 * osl) / 1000 / (int(conc) if conc else 1)
result = {{
    "date": "20261201-120000", "endpoint_type": value("--backend"), "backend": value("--backend"),
    "label": None, "model_id": value("--model"), "tokenizer_id": value("--model"),
    "num_prompts": n, "request_rate": float(rate) if rate else "inf",
    "burstiness": float(value("--burstiness", 1.0)),
    "max_concurrency": int(conc) if conc else None, "duration": duration, "completed": n,
    "total_input_tokens": n * isl, "total_output_tokens": n * osl,
    "request_throughput": n / duration, "request_goodput": None,
    "output_throughput": n * osl / duration, "total_token_throughput": n * (isl + osl) / duration,
    "max_output_tokens_per_s": 1.2 * n * osl / duration, "max_concurrent_requests": int(conc or 1),
    **metrics,
}}
folder = value("--result-dir", ".")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, value("--result-filename")), "w") as out:
    json.dump(result, out)
'''

FAKE_SGLANG = '''#!{python}
"""python3 -m sglang.benchmark.serving, faked: appends the --output-file line SGLang 0.5.23 writes."""
import json, sys

args = sys.argv[1:]
assert args[:2] == ["-m", "sglang.benchmark.serving"], args
def value(flag, default=None):
    return args[args.index(flag) + 1] if flag in args else default
n = int(value("--num-prompts"))
isl, osl = int(value("--random-input-len")), int(value("--random-output-len"))
conc = value("--max-concurrency")
result = {{
    "tag": None, "backend": value("--backend"), "dataset_name": value("--dataset-name"),
    "request_rate": float(value("--request-rate", "inf")), "max_concurrency": int(conc),
    "random_input_len": isl, "random_output_len": osl,
    "random_range_ratio": float(value("--random-range-ratio")), "server_info": None,
    "duration": 60.0, "completed": n, "total_input_tokens": n * isl,
    "total_output_tokens": n * osl, "total_output_tokens_retokenized": n * osl,
    "request_throughput": n / 60.0, "input_throughput": n * isl / 60.0,
    "output_throughput": n * osl / 60.0, "total_throughput": n * (isl + osl) / 60.0,
    "mean_e2e_latency_ms": 9000.0, "median_e2e_latency_ms": 8900.0, "p99_e2e_latency_ms": 9900.0,
    "mean_ttft_ms": 260.0, "median_ttft_ms": 250.0, "p99_ttft_ms": 600.0,
    "mean_tpot_ms": 17.0, "median_tpot_ms": 16.8, "p99_tpot_ms": 21.0,
    "mean_itl_ms": 16.9, "median_itl_ms": 16.5, "p99_itl_ms": 40.0, "concurrency": float(conc),
}}
with open(value("--output-file"), "a") as out:
    out.write(json.dumps(result) + "\\n")
'''


@needs_bash
@pytest.mark.parametrize(
    ("plan_name", "engine", "program"),
    [
        ("spec_eagle3_vllm", "vllm", "vllm"),
        ("spec_ngram_trtllm", "trtllm", "vllm"),  # vLLM's client against trtllm-serve
        ("spec_mtp_sglang", "sglang", "python3"),
    ],
)
def test_bench_result_goes_back_through_the_printed_calibrate_command(
    tmp_path: Path, plan_name: str, engine: str, program: str
) -> None:
    """Run bench.sh with a fake client that writes the result file the real one writes; the
    `budsim calibrate` command the script prints, run as printed (in a temporary calibration
    store), accepts it, and `calibrate --list` shows the point."""
    import sys

    plan = load_plan(plan_name)
    (artifact,) = export_target(plan, "bench")
    (tmp_path / artifact.name).write_text(artifact.content)
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / program
    body = FAKE_SGLANG if program == "python3" else FAKE_VLLM
    fake.write_text(body.format(python=sys.executable))
    fake.chmod(0o755)
    results = tmp_path / "bench results"  # a space: the printed command quotes the path
    ran = _run_script(tmp_path, artifact.name, {"RESULT_DIR": str(results)})
    assert ran.returncode == 0, ran.stderr
    (result,) = results.iterdir()
    assert result.suffix == (".jsonl" if engine == "sglang" else ".json")
    printed = ran.stdout.strip().splitlines()[-1]
    words = shlex.split(printed)
    assert words[:3] == ["budsim", "calibrate", "--results"] and words[3] == str(result)
    deployment = dict(pair.split("=", 1) for pair in words[5].split(","))
    assert deployment["engine"] == engine and deployment["model"] == plan.model
    budsim = Path(sys.executable).parent / "budsim"
    env = {**os.environ, "BUDSIM_CALIBRATION_DIR": str(tmp_path / "calibration")}
    fitted = subprocess.run(
        [str(budsim), *words[1:], "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert fitted.returncode == 0, fitted.stderr
    summary = json.loads(fitted.stdout)
    assert summary["points"] == 1 and summary["match"]["engine"] == engine
    listed = subprocess.run(
        [str(budsim), "calibrate", "--list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert (entry["hardware"], entry["engine"], entry["points"]) == (plan.hardware, engine, 1)
    point = json.loads(Path(entry["path"]).read_text())["points"][0]
    workload = plan.workload
    assert workload is not None
    assert point["concurrency"] == workload.concurrency
    assert point["input_len"] == workload.input_len and point["output_len"] == workload.output_len


def test_a_draft_model_plan_names_its_draft_and_vllm_refuses_it() -> None:
    plan = load_plan("spec_draft_sglang")
    sglang = "\n".join(a.content for a in export_target(plan, "sglang"))
    assert "--speculative-algorithm STANDALONE" in sglang
    assert "--speculative-draft-model-path Qwen/Qwen3-0.6B" in sglang
    trtllm = "\n".join(a.content for a in export_target(plan, "trtllm"))
    assert (
        "decoding_type: Draft_Target" in trtllm
        and "speculative_model_dir: Qwen/Qwen3-0.6B" in trtllm
    )
    with pytest.raises(BudsimError, match="vLLM 0.11 cannot run a separate draft model"):
        export_target(plan, "vllm")


def _docker_volumes(plan: ExportPlan) -> list[str]:
    words = " ".join(logical_lines(docker_script(plan))).split()
    return [words[i + 1] for i, w in enumerate(words) if w == "--volume"]


def docker_script(plan: ExportPlan) -> str:
    return "\n".join(a.content for a in export_target(plan, "docker"))


def test_containers_mount_a_local_draft_model_and_fetch_a_hub_one() -> None:
    """A draft model given as a local directory is mounted read-only at its own path (docker
    volume, k8s hostPath), beside the HF cache the hub-named target still needs; a draft named by
    its hub id adds no mount; with the target and the draft both local, no HF cache is mounted."""
    hub = load_plan("spec_draft_sglang")
    hub_volumes = _docker_volumes(hub)
    assert not any(v.endswith(":ro") and "drafts" in v for v in hub_volumes)
    assert any("huggingface" in v for v in hub_volumes)

    local = load_plan("spec_draft_sglang", spec_draft_model="/srv/drafts/qwen3-0.6b")
    assert "/srv/drafts/qwen3-0.6b:/srv/drafts/qwen3-0.6b:ro" in _docker_volumes(local)
    assert any("huggingface" in v for v in _docker_volumes(local))
    k8s = "\n".join(a.content for a in export_target(local, "k8s"))
    (doc,) = [d for d in yaml.safe_load_all(k8s) if d and d.get("kind") == "Deployment"]
    pod = doc["spec"]["template"]["spec"]
    paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert paths == {"/srv/drafts/qwen3-0.6b"}
    mounted = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert "/srv/drafts/qwen3-0.6b" in mounted
    assert "the draft model is read from /srv/drafts/qwen3-0.6b on the node" in k8s

    both = load_plan(
        "spec_draft_sglang", model="/models/qwen3-32b", spec_draft_model="/models/qwen3-0.6b"
    )
    volumes = _docker_volumes(both)
    assert not any("huggingface" in v for v in volumes), volumes
