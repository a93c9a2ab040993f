"""Disaggregated serving (xPyD): a prefill pool, a decode pool and the router in front of them.

The files of one engine target: `<engine>-prefill.sh` and `<engine>-decode.sh` (one engine process
per worker), `<engine>-router.sh` (the API clients call), and for TensorRT-LLM the disaggregated
server's `trtllm-disagg.yaml` and each pool's LLM-API options. Each pool's engine command is the
engine's own builder run on that pool (ExportPlan.pool) with the workers placed here; this module
adds only what makes it a pool:

- SGLang 0.5.23: `--disaggregation-mode prefill|decode`, `--disaggregation-transfer-backend
  mooncake`, a `--disaggregation-bootstrap-port` per prefill worker; sglang-router's
  `--pd-disaggregation` in front (flags.SGLANG_ROUTER).
- vLLM 0.11: `--kv-transfer-config` with the NixlConnector (in 0.11, unlike P2pNcclConnector's
  producer/consumer pairing, NIXL's role comes from the proxy's routing, so both pools say kv_both)
  and a VLLM_NIXL_SIDE_CHANNEL_PORT per worker; vLLM's example proxy in front (flags.VLLM_PD_PROXY).
- TensorRT-LLM 1.2: each pool's `cache_transceiver_config` (and no overlap scheduler on prefill) in
  its options file; `trtllm-serve disaggregated -c trtllm-disagg.yaml` in front.

Placement: workers fill the nodes in order, prefill workers first; a worker stays on one node
unless it spans whole nodes. Both pools share a node where they fit one, as the prediction's KV
handoff assumed (over NVLink when all devices fit one scale-up domain). Ports: the router takes the
API port (--port, default the engine's) on node 0; the k-th worker on a node takes API port + 1 + k,
so no two processes on a node share one; SGLang's bootstrap port is 8998 + k, vLLM's NIXL handshake
ports start at 5600 + the worker's first device index (a worker uses at most one per device).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..errors import BudsimError
from . import sglang, trtllm, vllm
from .common import (
    Artifact,
    EngineRun,
    ExportOptions,
    Launch,
    Raw,
    Slot,
    base_port,
    dump_yaml,
    engine_script,
    engine_title,
    node_address,
    node_count,
    render_command,
    script,
)
from .flags import (
    ENGINE_TABLES,
    SGLANG,
    SGLANG_ROUTER,
    TRTLLM_DISAGG,
    VLLM,
    VLLM_NIXL_ENV,
    VLLM_PD_PROXY,
)
from .plan import ExportPlan, comment_block, header_lines

ROLES = ("prefill", "decode")
DISAGG_ENGINES = ("sglang", "vllm", "trtllm")
SGLANG_BOOTSTRAP_PORT = 8998  # SGLang's default --disaggregation-bootstrap-port
SGLANG_TRANSFER = "mooncake"  # SGLang's default transfer backend, explicit
NIXL_SIDE_CHANNEL_PORT = 5600  # vLLM's default VLLM_NIXL_SIDE_CHANNEL_PORT
NIXL_CONFIG = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
PROXY_VAR = "PD_PROXY"  # the script's own variable: where the user keeps vLLM's example proxy
PROXY_SOURCE = "tests/v1/kv_connector/nixl_integration/toy_proxy_server.py"
TRTLLM_CONFIG = "trtllm-disagg.yaml"
TRTLLM_START_TIMEOUT = 3600  # the workers load the model first; the 180 s default is short

__all__ = ["DISAGG_ENGINES", "artifacts", "place"]


def check(plan: ExportPlan, target: str) -> None:
    """Refuse a target or hardware a disaggregated export cannot express (one line each)."""
    if target not in DISAGG_ENGINES:
        raise BudsimError(
            f"the {target} target cannot express a disaggregated plan; export it with "
            f"--target {', '.join(DISAGG_ENGINES)} (each writes both pools and the router)"
        )
    if plan.device_kind != "cuda":
        raise BudsimError(
            "budsim exports disaggregated serving for NVIDIA GPUs (cuda) only; "
            f"{plan.hardware} is {plan.device_kind}"
        )


def place(plan: ExportPlan, api_port: int) -> dict[str, list[Slot]]:
    """Where each worker of each pool runs (see the module doc): role -> slots, worker = replica."""
    per_node = plan.devices_per_node
    node, used = 0, 0  # the node being filled and its devices already taken
    workers_on: dict[int, int] = {}  # workers started on each node so far (their port offset)
    out: dict[str, list[Slot]] = {}
    for role in ROLES:
        pool = plan.pool(role)
        width = pool.deployment.devices_per_replica
        span = node_count(pool)  # > 1: each worker fills `span` whole nodes
        slots: list[Slot] = []
        for worker in range(pool.deployment.replicas):
            if span == 1:
                if used + width > per_node:
                    node, used = node + 1, 0
                k = workers_on.get(node, 0)
                workers_on[node] = k + 1
                devices = tuple(range(used, used + width))
                slots.append(Slot(worker, node, 0, devices, api_port + 1 + k))
                used += width
                continue
            if used:
                node, used = node + 1, 0
            for rank in range(span):
                workers_on[node + rank] = 1
                devices = tuple(range(per_node))
                slots.append(Slot(worker, node + rank, rank, devices, api_port + 1))
            node += span
        out[role] = slots
    return out


@dataclass
class Front:
    """The router's command (program_len words name the program), the checks its script runs
    first, its notes and its side files."""

    argv: list[str]
    program_len: int
    checks: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Artifact] = field(default_factory=list)


def _url(options: ExportOptions, launch: Launch, nodes: int) -> tuple[str, int]:
    return node_address(options, launch.node, nodes), launch.port


def _offset(launch: Launch, api_port: int) -> int:
    """The worker's index among the workers on its (head) node."""
    return launch.port - api_port - 1


def _sglang_pool(run: EngineRun, role: str, api_port: int) -> list[str]:
    for launch in run.launches:
        launch.argv += [SGLANG.flag("--disaggregation-mode"), role]
        launch.argv += [SGLANG.flag("--disaggregation-transfer-backend"), SGLANG_TRANSFER]
        if role == "prefill":
            port = SGLANG_BOOTSTRAP_PORT + _offset(launch, api_port)
            launch.argv += [SGLANG.flag("--disaggregation-bootstrap-port"), str(port)]
    return [
        f"KV moves to the decode pool over {SGLANG_TRANSFER} (--disaggregation-transfer-backend; "
        "nixl is SGLang's other choice); where SGLang picks the wrong RDMA NICs, add "
        "--disaggregation-ib-device"
    ]


def _vllm_pool(run: EngineRun, addresses: list[str]) -> list[str]:
    config = json.dumps(NIXL_CONFIG, separators=(",", ":"))
    for launch in run.launches:
        launch.argv += [VLLM.flag("--kv-transfer-config"), config]
        first = launch.devices[0] if launch.devices else 0
        launch.env[_nixl("VLLM_NIXL_SIDE_CHANNEL_PORT")] = str(NIXL_SIDE_CHANNEL_PORT + first)
        if len(addresses) > 1:
            launch.env[_nixl("VLLM_NIXL_SIDE_CHANNEL_HOST")] = addresses[launch.node]
    return [
        "KV moves over vLLM's NixlConnector (install NIXL first: `pip install nixl`; UCX_TLS / "
        "UCX_NET_DEVICES choose its transport). kv_role kv_both: NIXL takes the role from the "
        "proxy, which sends each request to a prefill worker first",
        "VLLM_NIXL_SIDE_CHANNEL_PORT starts at 5600 + the worker's first device, so the "
        "handshake ports of two workers on a host never meet",
    ]


def _nixl(name: str) -> str:
    if name not in VLLM_NIXL_ENV:
        raise BudsimError(f"internal: {name} is not a NixlConnector environment variable")
    return name


def _pool_run(
    plan: ExportPlan, engine: str, role: str, options: ExportOptions, layout: Sequence[Slot]
) -> EngineRun:
    pool = plan.pool(role)
    if engine == "trtllm":
        return trtllm.build(pool, options, layout=layout, role=role)
    builder: Callable[..., EngineRun] = {"sglang": sglang.build, "vllm": vllm.build}[engine]
    return builder(pool, options, layout=layout)


def _router(
    plan: ExportPlan,
    engine: str,
    options: ExportOptions,
    runs: dict[str, EngineRun],
    api_port: int,
    addresses: list[str],
) -> Front:
    """The process in front of the pools."""
    heads = {role: runs[role].api_launches for role in ROLES}
    nodes = len(addresses)
    host = options.host
    if engine == "sglang":
        argv = [*SGLANG_ROUTER.program, SGLANG_ROUTER.flag("--pd-disaggregation")]
        for launch in heads["prefill"]:
            address, port = _url(options, launch, nodes)
            bootstrap = SGLANG_BOOTSTRAP_PORT + _offset(launch, api_port)
            argv += [SGLANG_ROUTER.flag("--prefill"), f"http://{address}:{port}", str(bootstrap)]
        for launch in heads["decode"]:
            address, port = _url(options, launch, nodes)
            argv += [SGLANG_ROUTER.flag("--decode"), f"http://{address}:{port}"]
        argv += [SGLANG_ROUTER.flag("--host"), host, SGLANG_ROUTER.flag("--port"), str(api_port)]
        note = (
            f"{SGLANG_ROUTER.version}: the sglang_router package the lmsysorg/sglang images "
            "carry (pip install sglang-router elsewhere)"
        )
        return Front(argv, len(SGLANG_ROUTER.program), notes=[note])
    if engine == "vllm":
        argv = ["python3", Raw(f'"${PROXY_VAR}"')]
        argv += [VLLM_PD_PROXY.flag("--host"), host, VLLM_PD_PROXY.flag("--port"), str(api_port)]
        for role, hosts, ports in (
            ("prefill", "--prefiller-hosts", "--prefiller-ports"),
            ("decode", "--decoder-hosts", "--decoder-ports"),
        ):
            urls = [_url(options, launch, nodes) for launch in heads[role]]
            argv += [VLLM_PD_PROXY.flag(hosts), *(address for address, _ in urls)]
            argv += [VLLM_PD_PROXY.flag(ports), *(str(port) for _, port in urls)]
        where = f"{PROXY_SOURCE} in the vLLM source tree at tag v0.11.0"
        checks = [
            (
                f"vLLM 0.11 has no prefill/decode router program: {PROXY_VAR} names its example "
                "proxy",
                f': "${{{PROXY_VAR}:?set {PROXY_VAR} to the path of {where}}}"',
            )
        ]
        note = (
            f"the router is vLLM's example proxy ({where}; it needs fastapi, httpx and uvicorn, "
            "which vLLM installs): it sends each request to the prefill workers, then the decode "
            "workers, round-robin"
        )
        return Front(argv, 2, checks=checks, notes=[note])
    config = {
        "hostname": host,
        "port": api_port,
        **{
            section: _trtllm_servers(plan.pool(role), heads[role], options, nodes)
            for section, role in (("context_servers", "prefill"), ("generation_servers", "decode"))
        },
    }
    head = comment_block(
        header_lines(
            plan,
            f"{TRTLLM_DISAGG.engine} {TRTLLM_DISAGG.version}: the disaggregated server's "
            f"configuration (trtllm-serve disaggregated --config_file {TRTLLM_CONFIG})",
        )
    )
    side = Artifact(TRTLLM_CONFIG, head + dump_yaml(config), "yaml", "trtllm")
    argv = [*TRTLLM_DISAGG.program, TRTLLM_DISAGG.flag("--config_file")]
    argv += [Raw(f'"$(dirname "$0")"/{TRTLLM_CONFIG}')]
    argv += [TRTLLM_DISAGG.flag("--server_start_timeout"), str(TRTLLM_START_TIMEOUT)]
    note = (
        f"the router is TensorRT-LLM's disaggregated server; {TRTLLM_CONFIG} lists the workers "
        "(context_servers = prefill, generation_servers = decode)"
    )
    return Front(argv, len(TRTLLM_DISAGG.program), notes=[note], files=[side])


def _trtllm_servers(
    pool: ExportPlan, heads: list[Launch], options: ExportOptions, nodes: int
) -> dict[str, object]:
    """One server section of trtllm-disagg.yaml: the workers' URLs, and their layout and KV
    transfer as their options file sets them (the parallel sizes trtllm.build passes)."""
    dep = pool.deployment
    section: dict[str, object] = {
        "num_instances": len(heads),
        "tensor_parallel_size": dep.tp * dep.dp,
    }
    if dep.pp > 1:
        section["pipeline_parallel_size"] = dep.pp
    if dep.ep > 1:
        section["moe_expert_parallel_size"] = dep.ep
    section["cache_transceiver_config"] = dict(trtllm.TRANSCEIVER)
    section["urls"] = ["{}:{}".format(*_url(options, launch, nodes)) for launch in heads]
    return section


def artifacts(plan: ExportPlan, target: str, options: ExportOptions) -> list[Artifact]:
    """The files of a disaggregated plan for one engine target (see the module doc)."""
    check(plan, target)
    table = ENGINE_TABLES[target]
    api_port = base_port(options, table)
    layout = place(plan, api_port)
    nodes = 1 + max(slot.node for slots in layout.values() for slot in slots)
    addresses = [node_address(options, node, nodes) for node in range(nodes)]
    runs = {role: _pool_run(plan, target, role, options, layout[role]) for role in ROLES}
    layout_notes: list[str] = []
    if nodes > 1:
        layout_notes.append(
            f"the workers fill {nodes} nodes of {plan.devices_per_node} devices"
            + (
                "; nodeN stands for the address of node N: edit it or pass --node-hosts"
                if len(options.node_hosts) < nodes
                else ""
            )
        )
    router_name = f"{target}-router.sh"
    files: list[Artifact] = []
    for role in ROLES:
        run = runs[role]
        if target == "sglang":
            role_notes = _sglang_pool(run, role, api_port)
        elif target == "vllm":
            role_notes = _vllm_pool(run, addresses)
        else:
            role_notes = []
        used = sorted({launch.node for launch in run.launches})
        where = []
        if len(used) == 1 and nodes > 1:
            where.append(f"run this script on node {used[0]} ({addresses[used[0]]})")
        notes = [
            f"{role} pool of a disaggregated deployment: start {target}-prefill.sh and "
            f"{target}-decode.sh, then {router_name} (the API clients call)",
            *where,
            *layout_notes,
            *role_notes,
            *(note for note in run.notes if not note.startswith("nodeN stands for")),
        ]
        # one node: a plain script (its comments name the node); several: a NODE_RANK case
        run = replace(run, notes=notes, nodes=nodes if len(used) > 1 else 1)
        title = f"{engine_title(plan, target)}, {role} pool (disaggregated)"
        files.append(Artifact(f"{target}-{role}.sh", engine_script(plan, run, title), "sh", target))
        files += run.files
    front = _router(plan, target, options, runs, api_port, addresses)
    title = f"{table.engine} {table.version}: the router in front of the prefill and decode pools"
    block = (
        0,
        f"router on node 0 ({addresses[0]}), port {api_port}",
        render_command(front.argv, head=front.program_len),
    )
    router_notes = [*front.notes, *layout_notes, "start it once both pools answer on /health"]
    text = script(
        plan, title, [block], notes=router_notes, background=False, nodes=1, checks=front.checks
    )
    files.append(Artifact(router_name, text, "sh", target))
    return files + front.files
