"""`budsim runs list | show ID | compare ID ID | delete ID`: the saved optimisation runs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from .output import echo_json, print_table

DB_HELP = "Run store file (default $BUDSIM_DB or the XDG data dir)."
# an SLO column folds no narrower than "TTFT p90" / "≤ 500 ms"
SLO_WIDTH = 8


def _when(text: str | None) -> str:
    if not text:
        return "-"
    try:
        return datetime.fromisoformat(text).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return text


def _status(status: str | None) -> str:
    colour = {
        "completed": "green",
        "running": "cyan",
        "cancelled": "yellow",
        "interrupted": "yellow",
        "failed": "red",
    }.get(status or "", "white")
    return f"[{colour}]{status}[/]"


def register(app: typer.Typer) -> None:
    runs = typer.Typer(
        help="Saved optimisation runs: list, show, compare, delete.", no_args_is_help=True
    )
    app.add_typer(runs, name="runs")

    @runs.command("list")
    def list_cmd(
        limit: int = typer.Option(20, "--limit", help="Newest N runs (0 = all)."),
        status: str | None = typer.Option(None, "--status", help="Only runs with this status."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
        db: Path | None = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """List saved runs, newest first."""
        from budsim.core.report import layout_text, run_label, weights_text
        from budsim.core.store import open_store

        with open_store(db) as store:
            rows = store.list_runs(limit=limit or None, status=status)
        if json_out:
            echo_json(rows)
            return
        if not rows:
            typer.echo("no saved runs yet; run `budsim optimize ...`")
            return
        table_rows = []
        for r in rows:
            dep = r.get("best_deployment") or {}
            pred = r.get("best_prediction") or {}
            best = f"{dep.get('engine')} {layout_text(dep)} {weights_text(dep)}" if dep else "-"
            tps = pred.get("output_tok_s_per_device")
            duration = r.get("duration_s")
            label = run_label(r)
            table_rows.append(
                (
                    f"{str(r['id'])[:8]} {_status(r.get('status'))}",
                    _when(r.get("created_at")),
                    label.model,
                    f"{r.get('devices')} x {r.get('hardware')}",
                    label.workload,
                    label.slo_text,
                    str(r.get("objective")),
                    best,
                    f"{tps:,.1f}" if isinstance(tps, (int, float)) else "-",
                    f"{duration:.1f}s" if isinstance(duration, (int, float)) else "-",
                )
            )
        columns: tuple[str, ...] = ("run", "created", "model", "hardware", "workload", "SLO")
        columns += ("objective", "best", "tok/s per dev", "time")
        print_table(
            f"Runs ({len(rows)})",
            columns,
            table_rows,
            optional=("time", "objective", "created", "best"),
            slashed=("model",),
            min_widths={"SLO": SLO_WIDTH},
        )

    @runs.command("show")
    def show_cmd(
        run_id: str = typer.Argument(..., help="Run id or a unique prefix."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
        generations: bool = typer.Option(
            False, "--generations", help="Also list per-generation statistics."
        ),
        db: Path | None = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Show one run: its inputs, best configuration, alternatives and progress."""
        from rich.console import Console
        from rich.table import Table

        from budsim.cli.optimize import render_candidates, render_result
        from budsim.core.report import run_label, search_steps_text, workload_text
        from budsim.core.store import open_store

        with open_store(db) as store:
            run = store.get_run(run_id)
            results = store.get_results(run["id"])
            gens = store.get_generations(run["id"])
        response = run.get("response")
        if not response:  # interrupted / failed / cancelled early: rebuild from what is stored
            best = next((r for r in results if r["kind"] == "best"), None)
            response = {
                "simulation_id": run["id"],
                "status": run["status"],
                "optimal_configuration": best["deployment"] if best else None,
                "predicted_performance": best["prediction"] if best else None,
                "objectives": best.get("objectives") if best else None,
                "constraints": best.get("constraints") if best else [],
                "alternative_configurations": [],
                "simulation_metadata": run.get("metadata") or {},
            }
        if json_out:
            record = {k: v for k, v in run.items() if k not in ("response",)}
            echo_json(
                {
                    "run": record,
                    "response": response,
                    "results": results,
                    "generations": [
                        {"generation": g["generation"], **(g.get("stats") or {})} for g in gens
                    ],
                }
            )
            return
        console = Console()
        inputs = run.get("inputs") or {}
        wl = inputs.get("workload") or {}
        console.print(
            f"[bold]run {run['id']}[/bold]  {_status(run.get('status'))}  "
            f"created {_when(run.get('created_at'))}  budsim {run.get('budsim_version')}"
        )
        label = run_label(run)
        console.print(
            f"{label.model} on {run.get('devices')} x {run.get('hardware')} · "
            f"{workload_text(wl)} · SLO {label.slo_text} · objective {run.get('objective')}"
        )
        if run.get("error"):
            console.print(f"[red]{run['error']}[/red]")
        config = response.get("optimal_configuration")
        if config is not None and "devices" not in config:
            tp, pp, dp = (config.get(k) or 1 for k in ("tp", "pp", "dp"))
            config = {
                **config,
                "devices_per_replica": tp * pp * dp,
                "devices": tp * pp * dp * (config.get("replicas") or 1),
            }
            response = {**response, "optimal_configuration": config}
        render_result(console, response)
        closest = [r for r in results if r["kind"] == "closest"]
        if closest:
            render_candidates(
                console,
                [
                    {
                        "configuration": r["deployment"],
                        "predicted_performance": r.get("prediction"),
                        "objectives": r.get("objectives"),
                        "constraints": r.get("constraints"),
                    }
                    for r in closest
                ],
                title="Closest configurations (none met the constraints)",
                show_miss=True,
            )
        if generations and gens:
            table = Table(title="Generations", title_justify="left")
            for col in ("gen", "evaluated", "feasible", "best target", "mean target", "elapsed s"):
                table.add_column(col, justify="right")
            for g in gens:
                s = g.get("stats") or {}
                best_t = (s.get("best") or {}).get("target")
                mean_t = (s.get("mean") or {}).get("target")
                table.add_row(
                    str(g["generation"]),
                    str(s.get("evaluations")),
                    str(s.get("feasible")),
                    f"{best_t:.4g}" if isinstance(best_t, (int, float)) else "-",
                    f"{mean_t:.4g}" if isinstance(mean_t, (int, float)) else "-",
                    f"{s.get('elapsed_s', 0):.2f}",
                )
            console.print(table)
        elif gens:
            # the search's own count first (as optimize, the TUI's results and History say it),
            # then the rows: the initial population and each local round are rows too
            steps = search_steps_text(run.get("metadata") or {})
            console.print(
                f"[dim]{steps + ': ' if steps else ''}{len(gens)} rows stored, the initial "
                "population first (--generations lists them)[/dim]"
            )

    @runs.command("compare")
    def compare_cmd(
        run_a: str = typer.Argument(..., help="First run id (or prefix)."),
        run_b: str = typer.Argument(..., help="Second run id (or prefix)."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
        db: Path | None = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Compare the best configurations and predicted metrics of two runs (B relative to A)."""
        from rich.console import Console
        from rich.table import Table

        from budsim.core.report import run_label
        from budsim.core.store import open_store

        with open_store(db) as store:
            data = store.compare_runs(run_a, run_b)
        if json_out:
            echo_json(data)
            return
        a, b = data["runs"]
        console = Console()
        labels = [run_label(a), run_label(b)]
        print_table(
            "Runs",
            ("", "run", "model", "hardware", "workload", "SLO", "objective"),
            [
                (
                    name,
                    f"{str(r['id'])[:8]} {_status(r.get('status'))}",
                    label.model,
                    f"{r.get('devices')} x {r.get('hardware')}",
                    label.workload,
                    label.slo_text,
                    str(r.get("objective")),
                )
                for name, r, label in zip("AB", (a, b), labels, strict=True)
            ],
            optional=("objective",),
            slashed=("model",),
            min_widths={"SLO": SLO_WIDTH},
            console=console,
        )
        cfg = Table(title="Best configuration", title_justify="left")
        for col in ("setting", "A", "B"):
            cfg.add_column(col)
        for key, (va, vb) in data["configuration"].items():
            if key in ("model", "hardware"):  # the runs' own, in the table above
                continue
            style = "" if va == vb else "bold"
            cfg.add_row(key, str(va), str(vb), style=style)
        console.print(cfg)
        met = Table(title="Predicted metrics", title_justify="left")
        for col in ("metric", "A", "B", "B - A", "B / A"):
            met.add_column(col, justify="right" if col != "metric" else "left")
        for key, m in data["metrics"].items():
            delta, ratio = m.get("delta"), m.get("ratio")
            met.add_row(
                key,
                _num(m.get("a")),
                _num(m.get("b")),
                _num(delta),
                f"{ratio:.3f}" if isinstance(ratio, (int, float)) else "-",
            )
        console.print(met)

    @runs.command("delete")
    def delete_cmd(
        run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
        db: Path | None = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Delete a run with its generations and results."""
        from budsim.core.store import open_store

        with open_store(db) as store:
            full = store.delete_run(run_id)
        if json_out:
            echo_json({"deleted": full})
        else:
            typer.echo(f"deleted run {full}")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)
