"""Shared pieces of the export targets: artifacts, options, engine launches and shell rendering."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from ..errors import BudsimError
from .flags import ENGINE_KINDS, ENGINE_TABLES, FlagTable
from .plan import ExportPlan, comment_block, header_lines


@dataclass(frozen=True)
class Artifact:
    """One output file: its name under --out, its text and its format ("sh" or "yaml")."""

    name: str
    content: str
    kind: str
    target: str


@dataclass(frozen=True)
class ExportOptions:
    host: str = "0.0.0.0"  # address the engines bind to
    port: int | None = None  # first API port; None = the engine's default
    node_hosts: tuple[str, ...] = ()  # addresses of node 0, 1, ... (default localhost / nodeN)
    image: str | None = None  # container image override (docker, k8s)
    models_dir: str = "/models"  # where quantised checkpoints and GGUF files are kept
    calib_dir: str = "/data/llmc-calib"  # LLMC calibration data sets
    llmc_dir: str = "/opt/LightCompress"  # LLMC checkout
    int4_method: str = "awq"  # awq | gptq
    fp8_offline: bool = False  # quantise fp8 with LLMC instead of the engine's online fp8
    proxy_port: int = 4000  # LiteLLM proxy port

    def validate(self) -> None:
        for label, value in (("port", self.port), ("proxy port", self.proxy_port)):
            if value is not None and not 1 <= value <= 65535:
                raise BudsimError(f"{label} must be in 1..65535, got {value}")
        if self.int4_method not in ("awq", "gptq"):
            raise BudsimError(f"int4 method must be awq or gptq, got {self.int4_method!r}")


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class Raw(str):
    """A shell word that is already quoted (it expands a variable or runs $(...) on purpose)."""


def quote(word: str) -> str:
    return word if isinstance(word, Raw) else shlex.quote(word)


@dataclass
class Launch:
    """One engine process: where it runs and the exact argv (program first)."""

    replica: int
    node: int  # node index in the whole deployment
    node_in_replica: int
    devices: tuple[int, ...]  # device indices on its node
    port: int
    serves_api: bool
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    program_len: int = 1  # how many argv words name the program (vllm serve = 2)
    wrapper: list[str] = field(default_factory=list)  # bare-metal prefix (numactl ...)

    @classmethod
    def on(
        cls,
        slot: Slot,
        table: FlagTable,
        argv: list[str],
        env: dict[str, str],
        *,
        serves_api: bool,
    ) -> Launch:
        """The process of one engine slot: its replica, node, devices and port."""
        return cls(
            replica=slot.replica,
            node=slot.node,
            node_in_replica=slot.node_in_replica,
            devices=slot.devices,
            port=slot.port,
            serves_api=serves_api,
            argv=argv,
            env=env,
            program_len=len(table.program),
        )


@dataclass
class EngineRun:
    """What an engine target builds: the processes, side files and notes for the header."""

    engine: str
    table: FlagTable
    launches: list[Launch]
    files: list[Artifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model_ref: str = ""  # what the engine loads (may be a quantised output path)
    prelude: list[tuple[str, str]] = field(default_factory=list)  # steps before the launches
    # (comment, command) checks a script runs first: a value the user must supply (the EAGLE-3
    # draft head), so the script stops with a message instead of starting a broken engine
    checks: list[tuple[str, str]] = field(default_factory=list)
    nodes: int = 1

    @property
    def api_launches(self) -> list[Launch]:
        return [launch for launch in self.launches if launch.serves_api]


@dataclass(frozen=True)
class Slot:
    replica: int
    node: int
    node_in_replica: int
    devices: tuple[int, ...]
    port: int


def check_engine_kind(plan: ExportPlan, engine: str) -> None:
    kinds = ENGINE_KINDS[engine]
    if plan.device_kind not in kinds:
        table = ENGINE_TABLES[engine]
        raise BudsimError(
            f"{table.engine} cannot run this plan: it needs {'/'.join(kinds)} hardware and "
            f"{plan.hardware} is {plan.device_kind}"
        )


def node_count(plan: ExportPlan) -> int:
    """Nodes one replica spans (1 when it fits on a node)."""
    dep = plan.deployment
    per_replica = dep.devices_per_replica
    if per_replica <= plan.devices_per_node:
        return 1
    if per_replica % plan.devices_per_node:
        raise BudsimError(
            f"a replica of {per_replica} devices does not fill whole nodes of "
            f"{plan.devices_per_node}; multi-node replicas need a multiple of the node size"
        )
    return per_replica // plan.devices_per_node


def slots(plan: ExportPlan, base_port: int) -> list[Slot]:
    """Where each replica (and each node of a multi-node replica) runs, and on which port."""
    dep = plan.deployment
    per_replica = dep.devices_per_replica
    nodes = node_count(plan)
    out: list[Slot] = []
    if nodes == 1:
        per_node = max(1, plan.devices_per_node // per_replica)
        for replica in range(dep.replicas):
            local = replica % per_node
            first = local * per_replica
            out.append(
                Slot(
                    replica=replica,
                    node=replica // per_node,
                    node_in_replica=0,
                    devices=tuple(range(first, first + per_replica)),
                    port=base_port + local,
                )
            )
        return out
    for replica in range(dep.replicas):
        for k in range(nodes):
            out.append(
                Slot(
                    replica=replica,
                    node=replica * nodes + k,
                    node_in_replica=k,
                    devices=tuple(range(plan.devices_per_node)),
                    port=base_port,
                )
            )
    return out


def total_nodes(plan: ExportPlan, base_port: int = 8000) -> int:
    return max(slot.node for slot in slots(plan, base_port)) + 1


def node_address(options: ExportOptions, node: int, nodes: int) -> str:
    """The address other machines reach node `node` at."""
    if node < len(options.node_hosts):
        return options.node_hosts[node]
    if nodes == 1:
        return options.host if options.host not in WILDCARD_HOSTS else "localhost"
    return f"node{node}"


def visible_devices_env(plan: ExportPlan, devices: Sequence[int]) -> dict[str, str]:
    """Environment that restricts a bare-metal process to its devices (none when it owns the node)."""
    if len(devices) >= plan.devices_per_node:
        return {}
    ids = ",".join(str(d) for d in devices)
    name = {"cuda": "CUDA_VISIBLE_DEVICES", "rocm": "HIP_VISIBLE_DEVICES"}.get(plan.device_kind)
    if plan.device_kind == "hpu":
        name = "HABANA_VISIBLE_MODULES"
    return {name: ids} if name else {}


def base_port(options: ExportOptions, table: FlagTable) -> int:
    return options.port if options.port is not None else (table.default_port or 8000)


def _fmt_float(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def num(value: float | int) -> str:
    return str(value) if isinstance(value, int) else _fmt_float(value)


# ---- shell rendering --------------------------------------------------------------------------------


def render_command(
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    *,
    head: int = 1,
    breaks: Sequence[int] = (),
) -> str:
    """One command over several lines: env assignments and the first `head` words (the program) on
    the first line, then one option with its value per continuation line (and a new line at each
    index in `breaks`)."""
    words = [f"{k}={quote(v)}" for k, v in (env or {}).items()]
    groups: list[list[str]] = []
    current: list[str] = []
    for i, word in enumerate(argv):
        option = word.startswith("-") and not isinstance(word, Raw)
        if current and i >= head and (option or i in breaks):
            groups.append(current)
            current = []
        current.append(quote(word))
    if current:
        groups.append(current)
    if not groups:
        return " ".join(words)
    first = " ".join(words + groups[0])
    lines = [first] + ["  " + " ".join(g) for g in groups[1:]]
    return " \\\n".join(lines)


def dump_yaml(data: object, *, many: bool = False) -> str:
    """YAML without anchors/aliases (every mapping written out), keys in insertion order."""

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True

    if many:
        assert isinstance(data, list)
        return yaml.dump_all(
            data, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, allow_unicode=True
        )
    return yaml.dump(
        data, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def script(
    plan: ExportPlan,
    title: str,
    blocks: Sequence[tuple[int, str, str]],
    *,
    notes: Sequence[str] = (),
    background: bool,
    nodes: int,
    prelude: Sequence[tuple[str, str]] = (),
    checks: Sequence[tuple[str, str]] = (),
) -> str:
    """A bash script: header, the `checks` and the `prelude` (comment, command) steps that run
    first in the foreground, then (node, comment, command) blocks, grouped per node when there are
    several nodes (the script then runs on every node with NODE_RANK set)."""
    out = [
        "#!/usr/bin/env bash\n",
        comment_block(header_lines(plan, title, notes)),
        "set -euo pipefail\n",
    ]
    for comment, command in (*checks, *prelude):
        out.append(f"\n# {comment}\n{command}\n")
    amp = " &" if background else ""

    def emit(block_list: Sequence[tuple[int, str, str]], indent: str) -> None:
        for _, comment, command in block_list:
            out.append(f"\n{indent}# {comment}\n")
            body = "\n".join(indent + line for line in command.splitlines())
            out.append(body + amp + "\n")

    if nodes <= 1:
        emit(blocks, "")
    else:
        out.append(
            '\nNODE_RANK="${NODE_RANK:?run this script on every node with NODE_RANK=0..'
            f'{nodes - 1}}}"\ncase "$NODE_RANK" in\n'
        )
        for node in range(nodes):
            mine = [b for b in blocks if b[0] == node]
            out.append(f"{node})\n")
            emit(mine, "  ")
            out.append("  ;;\n")
        out.append(
            '*)\n  echo "NODE_RANK must be 0..' + f"{nodes - 1}" + '" >&2\n  exit 2\n  ;;\nesac\n'
        )
    if background:
        out.append("\nwait\n")
    return "".join(out)


def launch_comment(launch: Launch) -> str:
    devices = ",".join(str(d) for d in launch.devices)
    role = f"port {launch.port}" if launch.serves_api else "worker (no API server)"
    return (
        f"replica {launch.replica}, node {launch.node}"
        + (f" (rank {launch.node_in_replica} of the replica)" if launch.node_in_replica else "")
        + f", devices {devices}, {role}"
    )


def engine_script(plan: ExportPlan, run: EngineRun, title: str) -> str:
    blocks = [
        (
            launch.node,
            launch_comment(launch),
            render_command(
                launch.wrapper + launch.argv,
                launch.env,
                head=len(launch.wrapper) + launch.program_len,
            ),
        )
        for launch in run.launches
    ]
    background = len(run.launches) > 1
    return script(
        plan,
        title,
        blocks,
        notes=run.notes,
        background=background,
        nodes=run.nodes,
        prelude=run.prelude,
        checks=run.checks,
    )


def engine_title(plan: ExportPlan, engine: str) -> str:
    table = ENGINE_TABLES[engine]
    program = " ".join(table.program)
    title = f"{table.engine} {table.version}: `{program}` launch"
    if engine != plan.engine and not (engine == "llamacpp" and plan.device_kind == "cpu"):
        title += f" (translated; the plan was predicted for {plan.engine})"
    return title
