"""`budsim export`: turn a chosen configuration into launch scripts, router/recipe YAML and manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from budsim.core.errors import BudsimError

from .output import echo_json

TARGET_HELP = (
    "vllm | sglang | trtllm | llamacpp | litellm | llmc | docker | k8s | bench | all (repeatable)"
)


def _load_plan(
    source: str, rank: int | None, pareto: int | None, db: str | None, disagg: bool = False
) -> Any:
    from budsim.core.export import from_config_json
    from budsim.core.export.plan import plan_from_store

    path = Path(source).expanduser()
    if path.is_file() or source.endswith(".json"):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BudsimError(f"cannot read configuration {source}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise BudsimError(f"{source} is not UTF-8 text (a configuration JSON)") from None
        except json.JSONDecodeError as exc:
            raise BudsimError(
                f"{source} is not valid JSON: {exc.msg} (line {exc.lineno})"
            ) from None
        return from_config_json(doc, rank=rank, pareto=pareto, source=path.name, disagg=disagg)
    return plan_from_store(source, rank=rank, pareto=pareto, db=db, disagg=disagg)


def _write(out: Path, artifacts: list[Any]) -> list[Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BudsimError(f"cannot create {out}: {exc.strerror}") from None
    written = []
    for artifact in artifacts:
        target = out / artifact.name
        try:
            target.write_text(artifact.content, encoding="utf-8")
            if artifact.kind == "sh":
                target.chmod(0o755)
        except OSError as exc:
            raise BudsimError(f"cannot write {target}: {exc.strerror}") from None
        written.append(target)
    return written


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        source: str = typer.Argument(
            ...,
            help="A run id (or unique prefix) from the run store, or a configuration JSON file.",
        ),
        target: list[str] = typer.Option(["all"], "--target", "-t", help=TARGET_HELP),
        rank: int = typer.Option(
            None, help="Result rank of the run (0 = best, then alternatives)."
        ),
        pareto: int = typer.Option(None, help="Member K (0-based) of the run's Pareto front."),
        disagg: bool = typer.Option(
            False,
            "--disagg",
            help="Export the prefill/decode split of `budsim optimize --disagg` (a configuration "
            "with prefill_workers is disaggregated without it): both pools and their router.",
        ),
        out: Path = typer.Option(None, help="Write one file per target into this folder."),
        host: str = typer.Option("0.0.0.0", help="Address the engines bind to."),
        port: int = typer.Option(None, help="First API port (default: the engine's own)."),
        node_hosts: str = typer.Option(
            None, help="Comma-separated addresses of node 0, 1, ... (LiteLLM api_base, multi-node)."
        ),
        engine: str = typer.Option(
            None, help="Engine for litellm/llmc/docker/k8s/bench (default: the plan's engine)."
        ),
        image: str = typer.Option(None, help="Container image instead of the official one."),
        models_dir: str = typer.Option(
            "/models", help="Where quantised checkpoints/GGUF files live."
        ),
        fp8_offline: bool = typer.Option(
            False, help="Quantise fp8 weights with an LLMC recipe instead of the engine online."
        ),
        int4_method: str = typer.Option("awq", help="LLMC int4 method: awq | gptq."),
        db: str = typer.Option(None, help="Run store file (default: $BUDSIM_DB or the data dir)."),
        as_json: bool = typer.Option(False, "--json", help="Print the files as JSON."),
    ) -> None:
        """Export a configuration as engine launch scripts, LiteLLM/LLMC YAML, docker, k8s and the
        benchmark that replays its workload (then prints the `budsim calibrate` command)."""
        from budsim.core.export import TARGETS, ExportOptions
        from budsim.core.export import export as run_export

        if rank is not None and pareto is not None:
            raise BudsimError("pass --rank or --pareto, not both")
        targets = [t.strip().lower() for item in target for t in item.split(",") if t.strip()]
        for name in targets:
            if name != "all" and name not in TARGETS:
                raise BudsimError(
                    f"unknown target {name!r}; choose one of {', '.join(TARGETS)} or all"
                )
        options = ExportOptions(
            host=host,
            port=port,
            node_hosts=tuple(h.strip() for h in (node_hosts or "").split(",") if h.strip()),
            image=image,
            models_dir=models_dir,
            int4_method=int4_method,
            fp8_offline=fp8_offline,
        )
        plan = _load_plan(source, rank, pareto, db, disagg)
        if plan.warning:
            typer.echo(f"warning: {plan.warning}", err=True)
        result = run_export(plan, targets or ["all"], options, engine=engine)
        if out is not None:
            paths = _write(out, result.artifacts)
            if as_json:
                echo_json(
                    {
                        "files": [str(p) for p in paths],
                        "skipped": [{"target": t, "reason": r} for t, r in result.skipped],
                    }
                )
                return
            for path in paths:
                typer.echo(str(path))
        elif as_json:
            echo_json(
                {
                    "files": [
                        {"name": a.name, "target": a.target, "kind": a.kind, "content": a.content}
                        for a in result.artifacts
                    ],
                    "skipped": [{"target": t, "reason": r} for t, r in result.skipped],
                }
            )
            return
        else:
            typer.echo(result.text(), nl=False)
        for name, reason in result.skipped:
            typer.echo(f"skipped {name}: {reason}", err=True)
