"""Export a chosen configuration as what the user runs: engine launch scripts, a LiteLLM router config,
an LLMC quantisation recipe, `docker run` commands, Kubernetes manifests, and the benchmark that replays
the planned workload against them (then feeds its result to `budsim calibrate`).

    plan = from_config_json(json.loads(path.read_text()))
    result = export(plan, ["vllm", "litellm"])
    for artifact in result.artifacts: ...

Each target module turns an ExportPlan into Artifacts; the flags they may emit are in `flags.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import BudsimError
from . import bench, disagg, docker, k8s, litellm, llamacpp, llmc, sglang, trtllm, vllm
from .common import Artifact, EngineRun, ExportOptions, engine_script, engine_title
from .plan import ExportPlan, from_config_json, select_configuration
from .quant import quant_step

ENGINE_TARGETS = ("vllm", "sglang", "trtllm", "llamacpp")
TARGETS = (*ENGINE_TARGETS, "litellm", "llmc", "docker", "k8s", "bench")

BUILDERS: dict[str, Callable[..., EngineRun]] = {
    "vllm": vllm.build,
    "sglang": sglang.build,
    "trtllm": trtllm.build,
    "llamacpp": llamacpp.build,
}

__all__ = [
    "TARGETS",
    "Artifact",
    "ExportOptions",
    "ExportPlan",
    "ExportResult",
    "build_engine",
    "export",
    "export_target",
    "from_config_json",
    "select_configuration",
]


@dataclass
class ExportResult:
    artifacts: list[Artifact] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (target, why) under --target all

    def text(self) -> str:
        """Every artifact, one after the other, as printed to stdout."""
        parts = []
        for artifact in self.artifacts:
            parts.append(f"# ==== {artifact.name} ====\n{artifact.content}")
        return "\n".join(parts)


def build_engine(
    plan: ExportPlan, engine: str, options: ExportOptions, *, context: str = "host"
) -> EngineRun:
    if engine not in BUILDERS:
        raise BudsimError(f"unknown engine {engine!r}; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[engine](plan, options, context=context)


def _serving_engine(plan: ExportPlan, engine: str | None) -> str:
    chosen = (engine or plan.engine).lower()
    if chosen == "deepspeed":
        raise BudsimError(
            "DeepSpeed inference is modelled to compare Gaudi runs with, not exported (it has no "
            "serving loop); --target vllm serves the plan with vLLM's Gaudi plugin instead"
        )
    if chosen not in BUILDERS:
        raise BudsimError(f"unknown engine {chosen!r}; choose one of {', '.join(BUILDERS)}")
    return chosen


def export_target(
    plan: ExportPlan,
    target: str,
    options: ExportOptions | None = None,
    *,
    engine: str | None = None,
) -> list[Artifact]:
    """The files of one target. `engine` picks the engine for litellm/llmc/docker/k8s/bench
    (default: the plan's own)."""
    options = options or ExportOptions()
    options.validate()
    plan.validate()
    if plan.disaggregated:
        return disagg.artifacts(plan, target, options)
    if target in ENGINE_TARGETS:
        run = build_engine(plan, target, options)
        text = engine_script(plan, run, engine_title(plan, target))
        return [Artifact(f"{target}.sh", text, "sh", target), *run.files]
    served_by = _serving_engine(plan, engine)
    if target == "litellm":
        return litellm.artifacts(plan, build_engine(plan, served_by, options), options)
    if target == "llmc":
        step = quant_step(plan, served_by, options)
        if step.mode != "llmc":
            why = {
                "none": f"the checkpoint already provides {step.weight_dtype} weights",
                "online": f"{served_by} quantises to {step.weight_dtype} online (pass --fp8-offline "
                "for an LLMC fp8 checkpoint)",
                "modelopt": f"{served_by} loads an NVIDIA ModelOpt {step.method} checkpoint, which "
                f"the {served_by} script makes in its first step",
            }[step.mode]
            raise BudsimError(f"no LLMC recipe needed: {why}")
        return llmc.artifacts(plan, step, options)
    if target == "docker":
        return docker.artifacts(
            plan, build_engine(plan, served_by, options, context="docker"), options
        )
    if target == "k8s":
        return k8s.artifacts(plan, build_engine(plan, served_by, options, context="k8s"), options)
    if target == "bench":
        return bench.artifacts(plan, build_engine(plan, served_by, options), options)
    raise BudsimError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)} or all")


def targets_for_all(plan: ExportPlan) -> list[str]:
    """What --target all means for this plan: its engine, llama.cpp on CPU, then the rest (the
    benchmark last: it runs once the deployment is up)."""
    out = [plan.engine]
    if plan.device_kind == "cpu" and "llamacpp" not in out:
        out.append("llamacpp")
    return out + ["litellm", "llmc", "docker", "k8s", "bench"]


def export(
    plan: ExportPlan,
    targets: Sequence[str],
    options: ExportOptions | None = None,
    *,
    engine: str | None = None,
) -> ExportResult:
    """Export several targets; "all" expands to every target that applies (skipping, with the reason,
    the optional ones that cannot express this plan)."""
    result = ExportResult()
    wanted: list[str] = []
    optional: set[str] = set()
    for target in targets:
        if target == "all":
            expanded = targets_for_all(plan)
            optional.update(t for t in expanded if t != plan.engine)
            wanted += [t for t in expanded if t not in wanted]
        elif target not in wanted:
            wanted.append(target)
    seen: dict[str, str] = {}
    for target in wanted:
        try:
            artifacts = export_target(plan, target, options, engine=engine)
        except BudsimError as exc:
            if target in optional and target not in targets:
                result.skipped.append((target, str(exc)))
                continue
            raise
        for artifact in artifacts:
            if artifact.name in seen:
                if seen[artifact.name] != artifact.content:
                    raise BudsimError(f"internal: two different files named {artifact.name}")
                continue
            seen[artifact.name] = artifact.content
            result.artifacts.append(artifact)
    return result
