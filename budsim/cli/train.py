"""`budsim train`, `budsim validate`, `budsim calibrate`: the learned calibration layer.

xgboost, pandas and scikit-learn are imported inside the commands only.
"""

from __future__ import annotations

from pathlib import Path

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
        from budsim.core.calibration.train import train as run_train

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
        from budsim.core.calibration.validate import targets_table
        from budsim.core.calibration.validate import validate as run_validate

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
            None, "--name", help="Calibration name (default: hardware-engine)."
        ),
        per_model: bool = typer.Option(
            False, "--per-model", help="Apply only to this model (default: any model)."
        ),
        list_: bool = typer.Option(False, "--list", help="List the saved user calibrations."),
        reset: bool = typer.Option(
            False, "--reset", help="Delete user calibrations (only --name when given)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Calibrate predictions to your own benchmark results (stored in the user data dir)."""
        from budsim.core.calibration import user

        if list_:
            items = user.list_calibrations()
            if as_json:
                echo_json(items)
            elif not items:
                typer.echo("no user calibrations")
            else:
                cols = ["name", "hardware", "engine", "model", "points", "ttft", "tpot", "state"]
                print_table("user calibrations", cols, [[i[c] for c in cols] for i in items])
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
        content = user.calibrate(results, deployment, name=name, per_model=per_model)
        summary = {
            "name": content["name"],
            "path": content["path"],
            "match": content["match"],
            "base": content["base"],
            "points": len(content["points"]),
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
