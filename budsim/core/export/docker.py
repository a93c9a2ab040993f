"""`docker run` of the engine's official image, one container per replica (per node)."""

from __future__ import annotations

import posixpath

from ..errors import BudsimError
from .common import (
    WILDCARD_HOSTS,
    Artifact,
    EngineRun,
    ExportOptions,
    Launch,
    Raw,
    render_command,
    script,
)
from .flags import DOCKER_RUN_FLAGS, IMAGE_PROGRAM, IMAGES
from .plan import ExportPlan, slug
from .trtllm import CONTAINER_CONFIG_DIR, EXTRA_FILE

HF_CACHE = "/root/.cache/huggingface"


def image_for(engine: str, kind: str, options: ExportOptions) -> str:
    if options.image:
        return options.image
    try:
        return IMAGES[(engine, kind)]
    except KeyError:
        raise BudsimError(
            f"{engine} publishes no official image for {kind} hardware; pass --image with your build"
        ) from None


def _f(name: str) -> str:
    flag = name.split("=", 1)[0]
    if flag not in DOCKER_RUN_FLAGS:
        raise BudsimError(f"internal: {flag} is not in the docker run flag table")
    return name


def is_local_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~"))


def draft_ref(plan: ExportPlan) -> str:
    """The separate draft model the engine loads beside the target ("" when there is none)."""
    dep = plan.deployment
    return dep.spec_draft_model if dep.spec_method == "draft" else ""


def host_folders(plan: ExportPlan, run: EngineRun, options: ExportOptions) -> dict[str, str]:
    """Host folders a container reads checkpoints from (mounted read-only at the same path), with
    what each holds: the model's (the models directory when the model is inside it; a GGUF file's
    directory) and a local draft model's."""
    models = options.models_dir.rstrip("/")
    folders: dict[str, str] = {}
    refs = (
        ("the model", run.model_ref, run.engine == "llamacpp"),
        ("the draft model", draft_ref(plan), False),
    )
    for what, ref, is_file in refs:
        if not ref or not is_local_path(ref):
            continue
        if ref.startswith(models + "/"):
            folder = models
        elif is_file:
            folder = posixpath.dirname(ref) or "."
        else:
            folder = ref.rstrip("/")
        if not folder.startswith("/") or ":" in folder:
            raise BudsimError(
                f"a container needs an absolute path without ':' to mount {ref!r}, got {folder!r}"
            )
        folders.setdefault(folder, what)
    return folders


def needs_hf_cache(plan: ExportPlan, run: EngineRun) -> bool:
    """Whether the engine downloads from the Hugging Face hub: a model or draft model named by its
    hub id, or an EAGLE-3 draft head (named by its hub id in the script's placeholder)."""
    hub = [ref for ref in (run.model_ref, draft_ref(plan)) if ref and not is_local_path(ref)]
    return bool(hub) or plan.deployment.spec_method == "eagle3"


def mounts(plan: ExportPlan, run: EngineRun, options: ExportOptions) -> list[str]:
    """--volume arguments the container needs: HF cache or the local checkpoints, and config files."""
    args: list[str] = []
    for folder in host_folders(plan, run, options):
        args += [_f("--volume"), f"{folder}:{folder}:ro"]
    if needs_hf_cache(plan, run):
        args += [_f("--volume"), Raw(f'"$HOME/.cache/huggingface":{HF_CACHE}')]
        args += [_f("--env"), "HF_TOKEN"]
    if any(f.name == EXTRA_FILE for f in run.files):
        args += [
            _f("--volume"),
            Raw(f'"$(dirname "$0")"/{EXTRA_FILE}:{CONTAINER_CONFIG_DIR}/{EXTRA_FILE}:ro'),
        ]
    return args


def device_args(plan: ExportPlan, launch: Launch) -> list[str]:
    ids = ",".join(str(d) for d in launch.devices)
    whole = len(launch.devices) >= plan.devices_per_node
    kind = plan.device_kind
    if kind == "cuda":
        return [_f("--gpus"), "all" if whole else f'"device={ids}"']
    if kind == "rocm":
        args = [_f("--device=/dev/kfd"), _f("--device=/dev/dri"), _f("--group-add"), "video"]
        args += [_f("--security-opt"), "seccomp=unconfined"]
        if not whole:
            args += [_f("--env"), f"HIP_VISIBLE_DEVICES={ids}"]
        return args
    if kind == "hpu":
        return [
            _f("--runtime"),
            "habana",
            _f("--env"),
            f"HABANA_VISIBLE_DEVICES={'all' if whole else ids}",
            _f("--env"),
            "OMPI_MCA_btl_vader_single_copy_mechanism=none",
            _f("--cap-add"),
            "SYS_NICE",
        ]
    # cpu: pin the container to its sockets' cores and memory
    args = [_f("--cap-add"), "SYS_NICE", _f("--security-opt"), "seccomp=unconfined"]
    cores = plan.cpu_cores_per_device
    if cores:
        cpus = ",".join(f"{d * cores}-{(d + 1) * cores - 1}" for d in launch.devices)
        args += [_f("--cpuset-cpus"), cpus, _f("--cpuset-mems"), ids]
    return args


def artifacts(plan: ExportPlan, run: EngineRun, options: ExportOptions) -> list[Artifact]:
    image = image_for(run.engine, plan.device_kind, options)
    program = IMAGE_PROGRAM.get(run.engine, ())
    shared = mounts(plan, run, options)
    blocks: list[tuple[int, str, str]] = []
    name = slug(plan.served_name, 30)
    for launch in run.launches:
        argv: list[str] = ["docker", "run", _f("--detach"), _f("--name")]
        argv.append(f"budsim-{name}-{run.engine}-r{launch.replica}-n{launch.node_in_replica}")
        argv += [_f("--restart"), "unless-stopped"]
        argv += device_args(plan, launch)
        argv += [_f("--ipc=host")]
        if run.nodes > 1:
            argv += [_f("--network=host")]
        else:
            bind = "" if options.host in WILDCARD_HOSTS else f"{options.host}:"
            argv += [_f("--publish"), f"{bind}{launch.port}:{launch.port}"]
        argv += shared
        for key, value in launch.env.items():
            argv += [_f("--env"), f"{key}={value}"]
        words = list(program or launch.argv[: launch.program_len])
        argv += [_f("--entrypoint"), words[0]]
        image_at = len(argv)
        argv += [image, *words[1:], *launch.argv[launch.program_len :]]
        comment = (
            f"replica {launch.replica}, node {launch.node}, devices "
            + ",".join(str(d) for d in launch.devices)
            + (f", port {launch.port}" if launch.serves_api else ", worker")
        )
        blocks.append((launch.node, comment, render_command(argv, head=2, breaks=[image_at])))
    notes = list(run.notes)
    notes.append(f"image {image}; --ipc=host gives the engine the shared memory it needs")
    if any(f.name == EXTRA_FILE for f in run.files):
        notes.append(f"keep {EXTRA_FILE} next to this script")
    title = f"docker run: {run.table.engine} {run.table.version} in {image}"
    text = script(
        plan,
        title,
        blocks,
        notes=notes,
        background=False,
        nodes=run.nodes,
        prelude=run.prelude,
        checks=run.checks,
    )
    return [Artifact("docker.sh", text, "sh", "docker"), *run.files]
