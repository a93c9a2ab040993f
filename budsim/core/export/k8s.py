"""Kubernetes Deployment + Service (and a ConfigMap for TRT-LLM's options file)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import BudsimError
from .common import Artifact, EngineRun, ExportOptions, dump_yaml
from .docker import HF_CACHE, host_folders, image_for, needs_hf_cache
from .flags import IMAGE_PROGRAM
from .plan import ExportPlan, header_lines, slug
from .trtllm import CONTAINER_CONFIG_DIR, EXTRA_FILE

RESOURCE = {"cuda": "nvidia.com/gpu", "rocm": "amd.com/gpu", "hpu": "habana.ai/gaudi"}


def _strip_header(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))


def resources(plan: ExportPlan) -> tuple[dict[str, Any], list[str]]:
    n = plan.deployment.devices_per_replica
    notes: list[str] = []
    if plan.device_kind in RESOURCE:
        devices: dict[str, Any] = {RESOURCE[plan.device_kind]: n}
        return {"limits": dict(devices), "requests": dict(devices)}, notes
    amount: dict[str, Any] = {}
    if plan.cpu_cores_per_device:
        amount["cpu"] = str(plan.cpu_cores_per_device * n)
    else:
        notes.append("set the cpu request to the cores of the sockets a replica uses")
    weights = plan.prediction.get("weights_gb_per_device")
    kv = plan.prediction.get("kv_cache_gb_per_device")
    if isinstance(weights, (int, float)) and isinstance(kv, (int, float)):
        # weights + KV cache of the replica, 15 % slack and 8 GB for the runtime
        need_gb = (weights + kv) * n * 1.15 + 8
        amount["memory"] = f"{math.ceil(need_gb * 1e9 / 1024**3)}Gi"
    elif plan.device_memory_gb:
        amount["memory"] = f"{math.floor(plan.device_memory_gb * n * 1e9 / 1024**3)}Gi"
    # requests == limits: Guaranteed QoS, so the static CPU manager can give the pod whole cores
    return {"limits": dict(amount), "requests": dict(amount)}, notes


def manifests(
    plan: ExportPlan, run: EngineRun, options: ExportOptions
) -> tuple[list[dict[str, Any]], list[str]]:
    if run.nodes > 1:
        raise BudsimError(
            "a replica spanning several nodes needs a multi-pod workload (LeaderWorkerSet), which "
            "budsim export does not generate; keep a replica on one node"
        )
    launch = run.launches[0]
    name = f"{slug(plan.served_name, 40)}-{run.engine}"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "budsim"}
    image = image_for(run.engine, plan.device_kind, options)
    program = list(IMAGE_PROGRAM.get(run.engine, ())) or launch.argv[: launch.program_len]
    args = launch.argv[launch.program_len :]
    port = launch.port
    res, notes = resources(plan)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in launch.env.items()]
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    for i, (folder, what) in enumerate(host_folders(plan, run, options).items()):
        volume = "models" if i == 0 else f"models-{i}"
        volumes.append({"name": volume, "hostPath": {"path": folder, "type": "Directory"}})
        mounts.append({"name": volume, "mountPath": folder, "readOnly": True})
        notes.append(
            f"{what} is read from {folder} on the node (hostPath); use a PVC in production"
        )
    if needs_hf_cache(plan, run):
        volumes.append({"name": "hf-cache", "emptyDir": {}})
        mounts.append({"name": "hf-cache", "mountPath": HF_CACHE})
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": "hf-token", "key": "token", "optional": True}
                },
            }
        )
    docs: list[dict[str, Any]] = []
    if any(f.name == EXTRA_FILE for f in run.files):
        extra = next(f for f in run.files if f.name == EXTRA_FILE)
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{name}-config", "labels": labels},
                "data": {EXTRA_FILE: _strip_header(extra.content)},
            }
        )
        volumes.append({"name": "config", "configMap": {"name": f"{name}-config"}})
        mounts.append({"name": "config", "mountPath": CONTAINER_CONFIG_DIR, "readOnly": True})
    health = run.table.health_path

    def probe(period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": health, "port": "http"},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 5,
        }

    container: dict[str, Any] = {
        "name": run.engine,
        "image": image,
        "command": program,
        "args": args,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "resources": res,
        "volumeMounts": mounts,
        # weights load and graphs compile before /health answers: up to 30 minutes
        "startupProbe": probe(10, 180),
        "readinessProbe": probe(10, 3),
        "livenessProbe": probe(30, 3),
    }
    if not env:
        del container["env"]
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": plan.deployment.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [container], "volumes": volumes},
                },
            },
        }
    )
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "selector": {"app.kubernetes.io/name": name},
                "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
            },
        }
    )
    if run.prelude:
        notes.append(
            f"{run.model_ref} must exist on every node first: run the quantisation step of the "
            f"{run.engine} script there"
        )
    notes.append(f"image {image}; probes on {health}; one pod per replica behind the Service")
    return docs, notes


def artifacts(plan: ExportPlan, run: EngineRun, options: ExportOptions) -> list[Artifact]:
    docs, notes = manifests(plan, run, options)
    notes = list(run.notes) + notes
    title = f"Kubernetes Deployment + Service: {run.table.engine} {run.table.version}"
    head = "".join(f"# {line}\n" for line in header_lines(plan, title, notes))
    body = dump_yaml(docs, many=True)
    return [Artifact("k8s.yaml", head + body, "yaml", "k8s")]
