"""`budsim train`, `budsim validate`, `budsim calibrate`: the learned calibration layer.

`train` and `validate` run the learning pipeline (budsim.learn), imported inside those two commands
only; `calibrate` is runtime (budsim.core.calibration.user). xgboost, pandas and scikit-learn are
imported inside the commands only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from budsim.core.errors import BudsimError

from .output import echo_json, print_table


def _say(message: str) -> None:
    typer.echo(message, err=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        data: Path = typer.Option(
            None, "--data", help="Measured data folder (default: $BUDSIM_DATA or ../shared/data)."
        ),
        out: Path = typer.Option(Path("pretrained"), "--out", help="Output folder for the models."),
        seed: int = typer.Option(0, "--seed", help="Random seed (same data + seed = same files)."),
        as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    ) -> None:
        """Fit the pretrained residual models (XGBoost JSON + manifest) from measured data."""
        from budsim.learn.train import train as run_train

        manifest = run_train(data, out, seed, log=_say)
        if as_json:
            echo_json(manifest)
            return
        rows = []
        for kind, info in manifest["kinds"].items():
            for fam, entry in info["families"].items():
                cv = entry.get("cv", {}).get("all", {})
                rows.append(
                    [
                        kind,
                        fam,
                        entry["status"],
                        entry["rows"],
                        entry.get("shrink"),
                        cv.get("physics_median_ape"),
                        cv.get("calibrated_median_ape"),
                        cv.get("band_coverage"),
                    ]
                )
        print_table(
            f"budsim train -> {out}",
            [
                "kind",
                "family",
                "status",
                "rows",
                "shrink",
                "physics mAPE %",
                "CV mAPE %",
                "coverage",
            ],
            rows,
        )

    @app.command()
    def validate(
        data: Path = typer.Option(
            None, "--data", help="Measured data folder (default: $BUDSIM_DATA or ../shared/data)."
        ),
        out: Path = typer.Option(
            Path("docs/accuracy.md"), "--out", help="Where to write the markdown report."
        ),
        seed: int = typer.Option(0, "--seed"),
        holdout: bool = typer.Option(
            False,
            "--holdout",
            help="Also score the frozen holdout (once a piece of work is finished; never choose "
            "designs by it).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the headline targets as JSON."),
    ) -> None:
        """Accuracy of physics vs calibrated on held-out models and hardware (nested CV)."""
        from budsim.learn.validate import targets_table
        from budsim.learn.validate import validate as run_validate

        command = (
            "budsim validate"
            + (f" --data {data}" if data else "")
            + f" --out {out}"
            + (" --holdout" if holdout else "")
        )
        _text, by_model = run_validate(data, out, seed, log=_say, command=command, holdout=holdout)
        targets = targets_table(by_model)
        if as_json:
            echo_json(targets.to_dict("records"))
            return
        print_table(f"targets (report: {out})", list(targets.columns), targets.values.tolist())

    @app.command()
    def calibrate(
        results: list[Path] = typer.Option(
            None,
            "--results",
            help="Benchmark result files (vLLM, SGLang, genai-perf, AIPerf, guidellm); "
            "several may follow one --results.",
        ),
        more: list[Path] = typer.Argument(None, hidden=True, show_default=False),
        deployment: str = typer.Option(
            None,
            "--deployment",
            help="The deployment measured: 'model=M,hardware=H,engine=E,tp=N,...'.",
        ),
        name: str = typer.Option(
            None,
            "--name",
            help="Calibration name (default: hardware-engine). Results given again under the "
            "same name add their points to those it holds, and it is refitted on all of them.",
        ),
        per_model: bool = typer.Option(
            False, "--per-model", help="Apply only to this model (default: any model)."
        ),
        replace: bool = typer.Option(
            False,
            "--replace",
            help="Start this calibration over from these results (default: add to its points).",
        ),
        list_: bool = typer.Option(
            False,
            "--list",
            help="List the saved user calibrations and their points (only --name when given).",
        ),
        reset: bool = typer.Option(
            False, "--reset", help="Delete user calibrations (only --name when given)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Calibrate predictions to your own benchmark results (stored in the user data dir).

        Each call adds its measured points to the calibration of the same hardware and engine
        (and model, with --per-model) and refits on all of them; a result file given twice
        counts once. --replace starts one calibration over, --reset deletes them."""
        from budsim.core.calibration import user

        if list_:
            _list_calibrations(user.list_calibrations(), name, as_json)
            return
        if reset:
            removed = user.reset(name)
            if as_json:
                echo_json({"removed": removed})
            else:
                typer.echo(f"removed {removed} user calibration(s)")
            return
        results = [*(results or []), *(more or [])]
        if not results:
            raise BudsimError("give --results FILE... and --deployment, or --list / --reset")
        if not deployment:
            raise BudsimError(
                "--deployment is required, e.g. 'model=M,hardware=h100-sxm,engine=vllm'"
            )
        content = user.calibrate(
            results, deployment, name=name, per_model=per_model, replace=replace
        )
        for warning in content["warnings"]:
            typer.echo(f"warning: {warning}", err=True)
        points = content["points"]
        summary = {
            "name": content["name"],
            "path": content["path"],
            "match": content["match"],
            "base": content["base"],
            "points": len(points),
            "result_files": content["result_files"],
            "added": content["added"],
            "families": {
                fam: {k: v for k, v in spec.items() if k != "model"}
                for fam, spec in content["families"].items()
            },
        }
        if as_json:
            echo_json(summary)
            return
        rows = [
            [fam, spec["type"], spec["n"], spec.get("offset")]
            for fam, spec in summary["families"].items()
        ]
        print_table(
            f"user calibration {content['name']} -> {content['path']}",
            ["family", "model", "points", "log offset"],
            rows,
        )
        holds = _holds(len(points), summary["result_files"])
        typer.echo(f"{content['name']} now {holds} ({content['added']} new from these results)")


def _holds(points: int, files: int) -> str:
    from budsim.core.report import count_text

    return f"holds {count_text(points, 'point')} from {count_text(files, 'result file')}"


def _list_calibrations(items: list[dict[str, Any]], name: str | None, as_json: bool) -> None:
    """`calibrate --list`: one line per calibration, then each one's points."""
    if name is not None:
        items = [i for i in items if i["name"] == name]
    if as_json:
        echo_json(items)
        return
    if not items:
        typer.echo("no user calibrations" + (f" named {name}" if name else ""))
        return
    # (how many result files: in each one's title below, where 80 columns have room for it)
    cols = ["name", "hardware", "engine", "model", "points", "ttft", "tpot", "state"]
    print_table("user calibrations", cols, [[i[c] for c in cols] for i in items])
    for item in items:
        measured = item["measured"]
        # a setup column only where the points measured several deployments (another model,
        # another tp): the fields that differ between them
        deps = [m["deployment"] or {} for m in measured]
        varying = sorted({k for d in deps for k in d if len({str(e.get(k)) for e in deps}) > 1})
        cols = ["file", *(["setup"] if varying else []), "load", "in", "out"]
        cols += ["TTFT ms", "TPOT ms", "TTFT ratio", "TPOT ratio"]
        rows = [
            [
                m["file"],
                *([",".join(f"{k}={d.get(k, '-')}" for k in varying)] if varying else []),
                m["load"],
                m["input_len"],
                m["output_len"],
                m["ttft_ms"],
                m["tpot_ms"],
                m["ttft_ratio"],
                m["tpot_ratio"],
            ]
            for m, d in zip(measured, deps, strict=True)
        ]
        print_table(
            f"{item['name']} {_holds(item['points'], item['result_files'])}",
            cols,
            rows,
            slashed=["setup"],
        )
    typer.echo("ratio: measured / budsim's prediction without the calibration")
