"""Disaggregated (prefill/decode) export: each pool's launch script, the router, TRT-LLM's YAML.

Checked: every option, environment variable and YAML key against the flag tables and the engines'
option lists (../shared/reference/engine_flags/), each pool's own layout, ports and devices per
node, the header's prediction, and the CLI from a configuration file and from a stored
`budsim optimize --disagg` run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_export import (
    _fake_programs,
    _history,
    _reference_lines,
    _run_script,
    commands,
    key_paths,
    needs_reference,
    option_words,
    strip_env,
)
from typer.testing import CliRunner

from budsim.core.errors import BudsimError
from budsim.core.export import Artifact, ExportOptions, export, export_target
from budsim.core.export.flags import (
    SGLANG,
    SGLANG_ROUTER,
    TRTLLM,
    TRTLLM_DISAGG,
    TRTLLM_DISAGG_LLM_API_KEYS,
    VLLM,
    VLLM_NIXL_ENV,
    VLLM_PD_PROXY,
    FlagTable,
)
from budsim.core.export.plan import ExportPlan, from_config_json

ENGINES = ("sglang", "vllm", "trtllm")
WORKERS = {"sglang": SGLANG, "vllm": VLLM, "trtllm": TRTLLM}
ROUTERS = {"sglang": SGLANG_ROUTER, "vllm": VLLM_PD_PROXY, "trtllm": TRTLLM_DISAGG}
PREDICTION = {
    "ttft_ms_mean": 61.7,
    "tpot_ms_mean": 6.52,
    "output_tok_s": 4753.0,
    "requests_per_s": 18.6,
}


def config(engine: str = "sglang", **changes: Any) -> dict[str, Any]:
    """3 prefill workers of TP1 and 2 decode workers of TP2 on one 8-GPU node (7 devices)."""
    doc: dict[str, Any] = {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "hardware": "h100-sxm",
        "engine": engine,
        "checkpoint_dtype": "bf16",
        "model_type": "llama",
        "max_model_len": 4096,
        "run_id": "golden-disagg",
        "tp": 2,
        "prefill_workers": 3,
        "prefill_tp": 1,
        "decode_workers": 2,
        "predicted_performance": PREDICTION,
    }
    doc.update(changes)
    return doc


def plan_of(engine: str = "sglang", **changes: Any) -> ExportPlan:
    return from_config_json(config(engine, **changes))


def multi_node(engine: str) -> ExportPlan:
    """3 prefill workers of TP4 (node 0, half of node 1) and 2 decode workers of 16 devices, each
    over two whole nodes (nodes 2-3 and 4-5): 44 devices on 6 nodes of 8."""
    layout = {"tp": 8, "dp": 2} if engine == "vllm" else {"tp": 16}  # vLLM spans nodes with DP
    return plan_of(
        engine,
        model="meta-llama/Llama-3.1-70B-Instruct",
        max_model_len=8192,
        prefill_tp=4,
        prefill_dp=1,
        **layout,
    )


def files(plan: ExportPlan, engine: str, **options: Any) -> dict[str, Artifact]:
    return {a.name: a for a in export_target(plan, engine, ExportOptions(**options))}


LAUNCH = re.compile(r"# replica (\d+), node (\d+)[^,]*, devices ([\d,]+), (?:port (\d+)|worker)")


def launches(text: str) -> list[dict[str, Any]]:
    """Each engine process of a pool script: its node, devices, port, env and words (the launch
    comment above a command says where it runs)."""
    out: list[dict[str, Any]] = []
    where: dict[str, Any] | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        found = LAUNCH.search(line)
        if found:
            where = {
                "worker": int(found.group(1)),
                "node": int(found.group(2)),
                "devices": tuple(int(d) for d in found.group(3).split(",")),
                "port": int(found.group(4)) if found.group(4) else None,
            }
            block = []
            for follow in lines[i + 1 :]:
                block.append(follow)
                if not follow.rstrip().endswith("\\"):
                    break
            env, words = strip_env(commands("\n".join(block))[0])
            out.append({**where, "env": env, "words": words})
    return out


def value(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


def values(words: list[str], flag: str) -> list[str]:
    """The words after `flag` up to the next option (nargs="+")."""
    at = words.index(flag) + 1
    out = []
    while at < len(words) and not words[at].startswith("-"):
        out.append(words[at])
        at += 1
    return out


def router_words(artifact: Artifact, table: FlagTable) -> list[str]:
    found = [
        w for w in commands(artifact.content) if tuple(w[: len(table.program)]) == table.program
    ]
    assert len(found) == 1, artifact.content
    return found[0]


# ---- flags, environment and YAML keys ----------------------------------------------------------


@needs_reference
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", ["one node", "multi-node"])
def test_every_emitted_flag_is_in_the_tables_and_the_engines_lists(
    engine: str, layout: str
) -> None:
    plan = plan_of(engine) if layout == "one node" else multi_node(engine)
    if engine == "trtllm" and layout == "multi-node":
        plan = plan_of(engine, prefill_workers=9, decode_workers=5)  # 19 devices, 3 nodes
    out = files(plan, engine)
    worker, router = WORKERS[engine], ROUTERS[engine]
    tokens, deprecated = _reference_lines(worker.reference or "")
    seen = {"worker": 0, "router": 0}
    for artifact in out.values():
        if artifact.kind != "sh":
            continue
        for words in commands(artifact.content):
            env, words = strip_env(words)
            # the router first: trtllm-serve's program is a prefix of its disaggregated server's
            if tuple(words[: len(router.program)]) == router.program:
                at = len(router.program) + (1 if engine == "vllm" else 0)  # the proxy's path
                assert set(option_words(words[at:])) <= set(router.flags), words
                assert not env
                seen["router"] += 1
            elif tuple(words[: len(worker.program)]) == worker.program:
                options = option_words(words[len(worker.program) :])
                assert set(options) <= set(worker.flags), (artifact.name, options)
                assert set(options) <= tokens and not set(options) & deprecated
                assert set(env) <= set(worker.env) | set(VLLM_NIXL_ENV), env
                seen["worker"] += 1
    workers = plan.prefill.replicas + plan.deployment.replicas  # type: ignore[union-attr]
    assert seen["worker"] >= workers and seen["router"] == 1, seen
    # the disaggregation options exist in the targeted releases (vLLM 0.11.0 and 0.33.0)
    history = {"vllm": "vllm_flag_history.tsv", "sglang": "sglang_flag_history.tsv"}.get(engine)
    if history:
        rows = _history(history)
        for flag in (
            ("--kv-transfer-config",)
            if engine == "vllm"
            else (
                "--disaggregation-mode",
                "--disaggregation-transfer-backend",
                "--disaggregation-bootstrap-port",
            )
        ):
            assert all(rows[flag][v] == "1" for v in worker.reference_versions), flag
    if engine == "trtllm":
        disagg = yaml.safe_load(out["trtllm-disagg.yaml"].content)
        assert key_paths(disagg) <= TRTLLM_DISAGG.yaml_keys
        llm_args = {t for t in tokens if not t.startswith("-")}
        for section in ("context_servers", "generation_servers"):
            for key in set(disagg[section]) - {"num_instances", "urls"}:
                assert key in llm_args, key  # an LLM-API argument trtllm-serve knows
        for role in ("prefill", "decode"):
            options = yaml.safe_load(out[f"trtllm-{role}-llm-api.yaml"].content)
            assert key_paths(options) <= TRTLLM.yaml_keys | TRTLLM_DISAGG_LLM_API_KEYS
        assert {k.split(".")[0] for k in TRTLLM_DISAGG_LLM_API_KEYS} <= llm_args


def test_every_script_is_valid_bash(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    for engine in ENGINES:
        plan = multi_node(engine) if engine != "trtllm" else plan_of(engine)
        for artifact in files(plan, engine).values():
            if artifact.kind == "sh":
                path = tmp_path / f"{engine}-{artifact.name}"
                path.write_text(artifact.content)
                check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
                assert check.returncode == 0, (artifact.name, check.stderr)


# ---- pools, ports, devices --------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_each_pool_gets_its_own_parallelism_and_workers(engine: str) -> None:
    out = files(plan_of(engine), engine)
    assert sorted(out) == sorted(
        [f"{engine}-prefill.sh", f"{engine}-decode.sh", f"{engine}-router.sh"]
        + (
            ["trtllm-disagg.yaml", "trtllm-prefill-llm-api.yaml", "trtllm-decode-llm-api.yaml"]
            if engine == "trtllm"
            else []
        )
    )
    tp_flag = {"sglang": "--tp-size", "vllm": "--tensor-parallel-size", "trtllm": "--tp_size"}
    for role, workers, tp in (("prefill", 3, "1"), ("decode", 2, "2")):
        procs = launches(out[f"{engine}-{role}.sh"].content)
        assert len(procs) == workers
        assert all(value(p["words"], tp_flag[engine]) == tp for p in procs)
        assert all(len(p["devices"]) == int(tp) for p in procs)
        if engine == "sglang":
            assert all(value(p["words"], "--disaggregation-mode") == role for p in procs)
            assert all(
                value(p["words"], "--disaggregation-transfer-backend") == "mooncake" for p in procs
            )
            bootstraps = [p["words"].count("--disaggregation-bootstrap-port") for p in procs]
            assert bootstraps == [1 if role == "prefill" else 0] * workers
        if engine == "vllm":
            for p in procs:
                connector = json.loads(value(p["words"], "--kv-transfer-config"))
                assert connector == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
        if engine == "trtllm":
            options = value(procs[0]["words"], "--extra_llm_api_options")
            assert options.endswith(f"trtllm-{role}-llm-api.yaml")
            extra = yaml.safe_load(out[f"trtllm-{role}-llm-api.yaml"].content)
            assert extra["cache_transceiver_config"] == {"backend": "DEFAULT"}
            assert extra.get("disable_overlap_scheduler", False) is (role == "prefill")
    if engine == "trtllm":
        disagg = yaml.safe_load(out["trtllm-disagg.yaml"].content)
        assert disagg["port"] == 8000
        for section, n, tp in (("context_servers", 3, 1), ("generation_servers", 2, 2)):
            assert disagg[section]["num_instances"] == n == len(disagg[section]["urls"])
            assert disagg[section]["tensor_parallel_size"] == tp


def _listening(engine: str, out: dict[str, Artifact]) -> list[tuple[int, int, str]]:
    """(node, port, what) of every port a process of the deployment listens on."""
    ports: list[tuple[int, int, str]] = []
    for role in ("prefill", "decode"):
        for p in launches(out[f"{engine}-{role}.sh"].content):
            what = f"{role} worker {p['worker']}"
            if p["port"] is not None:
                ports.append((p["node"], p["port"], what))
            if "--disaggregation-bootstrap-port" in p["words"]:
                port = int(value(p["words"], "--disaggregation-bootstrap-port"))
                ports.append((p["node"], port, f"{what} bootstrap"))
            if "VLLM_NIXL_SIDE_CHANNEL_PORT" in p["env"]:
                first = int(p["env"]["VLLM_NIXL_SIDE_CHANNEL_PORT"])
                for rank in range(len(p["devices"])):  # one handshake port per rank at most
                    ports.append((p["node"], first + rank, f"{what} NIXL rank {rank}"))
    router = router_words(out[f"{engine}-router.sh"], ROUTERS[engine])
    if engine == "trtllm":
        port = yaml.safe_load(out["trtllm-disagg.yaml"].content)["port"]
    else:
        port = int(value(router, "--port"))
    ports.append((0, port, "router"))
    return ports


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layout", ["one node", "multi-node"])
def test_no_two_processes_on_a_node_share_a_port(engine: str, layout: str) -> None:
    if layout == "one node":
        plan = plan_of(engine)
    elif engine == "trtllm":  # a TRT-LLM worker stays on one node
        plan = plan_of(engine, prefill_workers=9, decode_workers=5)
    else:
        plan = multi_node(engine)
    ports = _listening(engine, files(plan, engine))
    taken: dict[tuple[int, int], str] = {}
    for node, port, what in ports:
        assert (node, port) not in taken, f"{what} and {taken[(node, port)]} on node {node}"
        taken[(node, port)] = what
    assert len(ports) > plan.prefill.replicas + plan.deployment.replicas  # type: ignore[union-attr]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_router_reaches_every_worker_where_it_listens(engine: str) -> None:
    plan = plan_of(engine, prefill_workers=9, decode_workers=5)  # 19 devices over 3 nodes
    out = files(plan, engine)
    api = {
        role: [
            (f"node{p['node']}", p["port"])
            for p in launches(out[f"{engine}-{role}.sh"].content)
            if p["port"] is not None
        ]
        for role in ("prefill", "decode")
    }
    router = router_words(out[f"{engine}-router.sh"], ROUTERS[engine])
    if engine == "sglang":
        prefill = [
            values(router[i:], "--prefill") for i, w in enumerate(router) if w == "--prefill"
        ]
        decode = [router[i + 1] for i, w in enumerate(router) if w == "--decode"]
        assert [url for url, _ in prefill] == [f"http://{h}:{p}" for h, p in api["prefill"]]
        assert [url for url in decode] == [f"http://{h}:{p}" for h, p in api["decode"]]
        boots = {
            (f"node{p['node']}", value(p["words"], "--disaggregation-bootstrap-port"))
            for p in launches(out["sglang-prefill.sh"].content)
        }
        assert {(url.split("//")[1].split(":")[0], port) for url, port in prefill} == boots
    elif engine == "vllm":
        for role, hosts, ports in (
            ("prefill", "--prefiller-hosts", "--prefiller-ports"),
            ("decode", "--decoder-hosts", "--decoder-ports"),
        ):
            pairs = list(zip(values(router, hosts), map(int, values(router, ports)), strict=True))
            assert pairs == api[role]
    else:
        disagg = yaml.safe_load(out["trtllm-disagg.yaml"].content)
        for section, role in (("context_servers", "prefill"), ("generation_servers", "decode")):
            assert disagg[section]["urls"] == [f"{h}:{p}" for h, p in api[role]]
    assert len(api["prefill"]) == 9 and len(api["decode"]) == 5


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_devices_per_worker_in_a_multi_node_layout(engine: str) -> None:
    out = files(multi_node(engine), engine)
    prefill = launches(out[f"{engine}-prefill.sh"].content)
    assert [(p["node"], p["devices"]) for p in prefill] == [
        (0, (0, 1, 2, 3)),
        (0, (4, 5, 6, 7)),
        (1, (0, 1, 2, 3)),
    ]
    assert [p["env"]["CUDA_VISIBLE_DEVICES"] for p in prefill] == ["0,1,2,3", "4,5,6,7", "0,1,2,3"]
    decode = launches(out[f"{engine}-decode.sh"].content)
    # each decode worker owns two whole nodes: no device mask, one process per node
    assert [(p["worker"], p["node"]) for p in decode] == [(0, 2), (0, 3), (1, 4), (1, 5)]
    assert all(p["devices"] == tuple(range(8)) for p in decode)
    assert all("CUDA_VISIBLE_DEVICES" not in p["env"] for p in decode)
    if engine == "sglang":
        assert [value(p["words"], "--dist-init-addr") for p in decode] == [
            "node2:5000",
            "node2:5000",
            "node4:5000",
            "node4:5000",
        ]
        assert [value(p["words"], "--node-rank") for p in decode] == ["0", "1", "0", "1"]
    else:
        assert [value(p["words"], "--data-parallel-address") for p in decode] == [
            "node2",
            "node2",
            "node4",
            "node4",
        ]
        assert ["--headless" in p["words"] for p in decode] == [False, True, False, True]
        hosts = [p["env"]["VLLM_NIXL_SIDE_CHANNEL_HOST"] for p in prefill + decode]
        assert hosts == ["node0", "node0", "node1", "node2", "node3", "node4", "node5"]
    # several nodes: the pool scripts branch on NODE_RANK, and say what nodeN stands for
    for role in ("prefill", "decode"):
        text = out[f"{engine}-{role}.sh"].content
        assert 'NODE_RANK="${NODE_RANK:?' in text
        assert "the workers fill 6 nodes of 8 devices; nodeN stands for" in text


def test_pools_that_fit_one_node_share_it_and_node_hosts_name_the_nodes() -> None:
    out = files(plan_of("sglang"), "sglang")
    used: list[int] = []
    for role in ("prefill", "decode"):
        text = out[f"sglang-{role}.sh"].content
        assert "NODE_RANK" not in text
        procs = launches(text)
        assert {p["node"] for p in procs} == {0}
        used += [d for p in procs for d in p["devices"]]
    assert sorted(used) == list(range(7))  # 3 x TP1 + 2 x TP2, no device twice
    hosts = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    plan = plan_of("vllm", prefill_workers=9, decode_workers=5)
    out = files(plan, "vllm", node_hosts=hosts)
    router = router_words(out["vllm-router.sh"], VLLM_PD_PROXY)
    assert set(values(router, "--prefiller-hosts")) | set(values(router, "--decoder-hosts")) == set(
        hosts
    )
    assert "nodeN stands for" not in out["vllm-decode.sh"].content


# ---- header ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_every_file_states_the_disaggregated_prediction(engine: str) -> None:
    for artifact in files(plan_of(engine), engine).values():
        lines = artifact.content.splitlines()
        header = "\n".join(
            line for line in lines[1 if lines[0].startswith("#!") else 0 :] if line.startswith("#")
        )
        assert "run golden-disagg" in header, artifact.name
        assert "predicted: TTFT 61.7 ms, TPOT 6.52 ms, throughput 4753 output tok/s" in header
        if artifact.name.endswith("-llm-api.yaml"):  # a pool's own options: its pool's layout
            continue
        assert (
            "7 devices disaggregated = 3 prefill workers x TP1 PP1 DP1 EP1 + "
            "2 decode workers x TP2 PP1 DP1 EP1"
        ) in header, artifact.name


# ---- what cannot be exported ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "changes", "message"),
    [
        ("litellm", {}, "the litellm target cannot express a disaggregated plan"),
        ("llamacpp", {}, "the llamacpp target cannot express a disaggregated plan"),
        ("k8s", {}, "the k8s target cannot express a disaggregated plan"),
        ("sglang", {"hardware": "mi300x"}, r"NVIDIA GPUs \(cuda\) only; mi300x is rocm"),
        ("trtllm", {"tp": 16}, "multi-node trtllm-serve needs an MPI launcher"),
    ],
)
def test_inexpressible_disaggregated_exports_say_why(
    target: str, changes: dict[str, Any], message: str
) -> None:
    plan = plan_of("sglang", **changes)
    with pytest.raises(BudsimError, match=message):
        export_target(plan, target)


def test_all_exports_the_engine_and_skips_the_rest_with_a_reason() -> None:
    result = export(plan_of("vllm"), ["all"])
    assert [a.name for a in result.artifacts] == [
        "vllm-prefill.sh",
        "vllm-decode.sh",
        "vllm-router.sh",
    ]
    assert {t for t, _ in result.skipped} == {"litellm", "llmc", "docker", "k8s", "bench"}
    assert all("cannot express a disaggregated plan" in why for _, why in result.skipped)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"replicas": 2}, "decode_workers counts the decode replicas"),
        ({"prefill_workers": None, "decode_workers": None}, "prefill_tp needs prefill_workers"),
        ({"decode_workers": 0}, "must be at least 1"),
        ({"prefill_tp": 0}, None),  # 0 = the decode pool's TP, as predict's default
    ],
)
def test_pool_fields_are_checked(changes: dict[str, Any], message: str | None) -> None:
    doc = {k: v for k, v in config("sglang", **changes).items() if v is not None}
    if message is None:
        assert from_config_json(doc).prefill.tp == 2  # type: ignore[union-attr]
        return
    with pytest.raises(BudsimError, match=message):
        from_config_json(doc)


# ---- the CLI ----------------------------------------------------------------------------------------


def _cli() -> Any:
    from budsim.cli import app

    return app


def _budsim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "budsim", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_writes_a_folder_of_scripts_from_a_configuration(tmp_path: Path) -> None:
    source = tmp_path / "plan.json"
    source.write_text(json.dumps(config("sglang")))
    out = tmp_path / "out"
    result = CliRunner().invoke(_cli(), ["export", str(source), "-t", "sglang", "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = ["sglang-prefill.sh", "sglang-decode.sh", "sglang-router.sh"]
    assert result.output.split() == [str(out / n) for n in names]
    assert all(os.access(out / n, os.X_OK) for n in names)
    router = router_words(
        Artifact("r", (out / "sglang-router.sh").read_text(), "sh", "sglang"), SGLANG_ROUTER
    )
    assert values(router, "--prefill") == ["http://localhost:30001", "8998"]
    assert router[router.index("--decode") + 1] == "http://localhost:30004"


def test_cli_exports_the_split_a_stored_disagg_run_kept(tmp_path: Path) -> None:
    store_module = pytest.importorskip("budsim.core.store")
    best = {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "hardware": "h100-sxm",
        "engine": "trtllm",
        "tp": 1,
        "replicas": 4,
        "weight_dtype": "bf16",
        "checkpoint_dtype": "bf16",
        "devices": 4,
    }
    split = {"prefill_workers": 1, "decode_workers": 3, "predicted_performance": PREDICTION}
    response = {
        "optimal_configuration": best,
        "predicted_performance": {"ttft_ms_mean": 99.0},
        "request": {"workload": {"input_len": 2048, "output_len": 256}},
        "disaggregated": {
            "best": split,
            "beats_aggregated": False,
            "verdict": "aggregated serving stays ahead on throughput (best split: 1P3D)",
        },
    }
    db = tmp_path / "runs.db"
    store = store_module.open_store(db)
    run_id = store.create_run(inputs={"model": best["model"]})
    plain = store.create_run(inputs={"model": best["model"]})
    for rid, doc in ((run_id, response), (plain, {**response, "disaggregated": None})):
        row = {"rank": 0, "kind": "best", "deployment": best, "prediction": {}}
        store.finish_run(rid, "completed", results=[row], response=doc)
    store.close()
    out = tmp_path / "out"
    args = ["export", run_id[:8], "--disagg", "-t", "trtllm", "--db", str(db), "--out", str(out)]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    disagg = yaml.safe_load((out / "trtllm-disagg.yaml").read_text())
    assert disagg["context_servers"]["num_instances"] == 1
    assert disagg["generation_servers"]["num_instances"] == 3
    prefill = (out / "trtllm-prefill.sh").read_text()
    assert f"run {run_id}, from run {run_id[:8]} disaggregated" in prefill
    assert "--max_seq_len 3072" in prefill  # from the run's workload
    assert "# WARNING: aggregated serving stays ahead" in prefill
    assert result.stderr.startswith("warning: aggregated serving stays ahead")
    # a run without a split, and --rank with --disagg: one line each, no traceback
    for extra, says in (
        ([plain[:8], "--disagg"], f"run {plain[:8]} (completed) has no prefill/decode split"),
        ([run_id[:8], "--disagg", "--rank", "1"], "drop --rank/--pareto"),
    ):
        failed = _budsim("export", *extra, "-t", "trtllm", "--db", str(db))
        assert failed.returncode != 0 and "Traceback" not in failed.stderr
        assert failed.stderr.strip().splitlines() == [failed.stderr.strip()]
        assert says in failed.stderr


def test_cli_refuses_disagg_for_an_aggregated_configuration(tmp_path: Path) -> None:
    doc = config("vllm", prefill_workers=None, prefill_tp=None, decode_workers=None)
    source = tmp_path / "plan.json"
    source.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}))
    failed = _budsim("export", str(source), "--disagg", "-t", "vllm")
    assert failed.returncode != 0 and failed.stdout == ""
    assert failed.stderr.strip() == (
        "error: this configuration is not disaggregated: --disagg needs prefill_workers and "
        "decode_workers in it, or the output of `budsim optimize --disagg`"
    )
    # without --disagg the same file still exports its aggregated plan
    assert CliRunner().invoke(_cli(), ["export", str(source), "-t", "vllm"]).exit_code == 0


def test_the_vllm_router_script_waits_for_the_proxy_path(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    for artifact in export_target(plan_of("vllm"), "vllm"):
        (tmp_path / artifact.name).write_text(artifact.content)
    _fake_programs(tmp_path, "python3")
    stopped = _run_script(tmp_path, "vllm-router.sh", {})
    assert stopped.returncode != 0 and not (tmp_path / "python3.args").exists()
    assert "toy_proxy_server.py in the vLLM source tree at tag v0.11.0" in stopped.stderr
    ran = _run_script(tmp_path, "vllm-router.sh", {"PD_PROXY": "/src/toy_proxy_server.py"})
    assert ran.returncode == 0, ran.stderr
    args = (tmp_path / "python3.args").read_text().split("\n")
    assert args[:5] == ["/src/toy_proxy_server.py", "--host", "0.0.0.0", "--port", "8000"]
    assert args[args.index("--prefiller-ports") + 1 : args.index("--decoder-hosts")] == [
        "8001",
        "8002",
        "8003",
    ]
