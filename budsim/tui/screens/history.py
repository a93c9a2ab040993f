"""History: the saved runs; open, compare two, re-run with edits, delete. Interrupted runs stand out."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from ..views import fmt, model_cell, pack, run_label, run_status_text, search_steps_text
from ..widgets.title_bar import TitleBar
from .base import BudsimScreen, breakpoint_classes
from .modals import ConfirmScreen

STATUS_STYLE = {
    "completed": "green",
    "cancelled": "yellow",
    "interrupted": "bold red",
    "failed": "red",
    "running": "bold cyan",
}


def created_text(value: Any) -> str:
    text = str(value or "")
    # ISO 8601 from the store: 2025-01-31T12:34:56.789+00:00 -> 2025-01-31 12:34
    return text[:16].replace("T", " ") if len(text) >= 16 else text


# The workload and SLO texts fold between words (and a long model id after its slash, see
# views.model_cell), so that the run, model, workload · SLO, result and hardware columns fit
# 80 columns.
WORKLOAD_WIDTH = 18


def workload_cell(run: Mapping[str, Any]) -> str:
    """The workload, then each SLO on a line of its own ("no SLO" where the run had none)."""
    label = run_label(run)
    lines = (label.workload, *(label.slo or ("no SLO",)))
    return "\n".join(
        wrapped
        for line in lines
        for wrapped in textwrap.wrap(
            line, WORKLOAD_WIDTH, break_long_words=False, break_on_hyphens=False
        )
    )


def run_details(run: Mapping[str, Any], width: int = 0) -> str:
    """The highlighted run's target, date and search size (the columns a narrow table leaves out),
    in lines of at most `width` that break between the parts, not inside one."""
    parts = [f"run {str(run.get('id'))[:8]}", f"target {run.get('objective') or '-'}"]
    if run.get("created_at"):
        parts.append(f"created {created_text(run.get('created_at'))} UTC")
    steps, evals = search_steps_text(run.get("metadata") or {}), run.get("evaluations")
    if steps:  # as the run's Results title counts them (not the saved rows)
        parts.append(steps)
    if evals is not None:
        parts.append(f"{fmt(evals)} evaluated")
    return pack(parts, width)


# (key, label); below 100 columns the table keeps the first NARROW_COLUMNS and the line under it
# names the highlighted run's others (run_details), instead of cutting "created" at the edge
COLUMNS = (
    ("id", " run"),
    ("model", "model"),
    ("workload", "workload · SLO"),
    ("best", "tok/s/dev"),
    ("hardware", "hardware"),
    ("created", "created (UTC)"),
    ("target", "target"),
    ("gens", "search"),
    ("evals", "evals"),
)
NARROW_COLUMNS = 5


def best_text(run: Mapping[str, Any]) -> str:
    pred = run.get("best_prediction") or {}
    obj = run.get("best_objectives") or {}
    value = obj.get("output_tok_s_per_device") or pred.get("output_tok_s_per_device")
    return fmt(value)


class HistoryScreen(BudsimScreen):
    TITLE = "budsim"
    SUB_TITLE = "history"
    BINDINGS = [
        Binding("enter,o", "open", "Open"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare 2"),
        Binding("e", "edit", "Re-run with edits"),
        Binding("d,delete", "delete", "Delete"),
        Binding("f5", "refresh", "Refresh"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict[str, Any]] = []
        self.marked: list[str] = []
        self._narrow = False

    def compose(self) -> ComposeResult:
        yield TitleBar("history")
        yield Static("loading the saved runs…", id="history-info")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="history-run")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        width, height = self.app.size
        self._set_columns("-narrow" in breakpoint_classes(self.app, width, height))
        self.query_one("#runs", DataTable).focus()
        if self.budsim.history is not None:
            self.show_runs(self.budsim.history)
        self.budsim.load_history()

    def on_resize(self, event: events.Resize) -> None:
        narrow = "-narrow" in breakpoint_classes(self.app, event.size.width, event.size.height)
        if narrow != self._narrow:
            self._set_columns(narrow)
            self.show_runs(self.runs)

    def _set_columns(self, narrow: bool) -> None:
        self._narrow = narrow
        table = self.query_one("#runs", DataTable)
        table.clear(columns=True)
        for key, label in COLUMNS[:NARROW_COLUMNS] if narrow else COLUMNS:
            table.add_column(label, key=key)

    def show_runs(self, runs: Sequence[Mapping[str, Any]], error: str | None = None) -> None:
        table = self.query_one("#runs", DataTable)
        current = self.current_id()
        self.runs = [dict(r) for r in runs]
        ids = {r.get("id") for r in self.runs}
        self.marked = [m for m in self.marked if m in ids]
        table.clear()
        keys = [str(column.key.value) for column in table.ordered_columns]
        for run in self.runs:
            run_id = str(run.get("id"))
            cells = {
                "id": self._id_cell(run),
                "model": model_cell(run_label(run).model),
                "workload": workload_cell(run),
                "best": best_text(run),
                "hardware": f"{run.get('devices')}× {run.get('hardware')}",
                "created": created_text(run.get("created_at")),
                "target": str(run.get("objective") or ""),
                "gens": search_steps_text(run.get("metadata") or {}) or "-",
                "evals": fmt(run.get("evaluations")),
            }
            row = [cells[key] for key in keys]
            height = max(len(str(c).splitlines()) for c in row)
            table.add_row(*row, height=height, key=run_id)
        if current in ids:
            table.move_cursor(row=[r.get("id") for r in self.runs].index(current), animate=False)
        self._show_details()
        info = self.query_one("#history-info", Static)
        if error:
            info.update(Text(f"cannot read the run store: {error}", style="red"))
        elif not self.runs:
            info.update("no saved runs yet: run a search from the setup screen (Esc)")
        else:
            interrupted = sum(1 for r in self.runs if r.get("status") == "interrupted")
            text = f"{len(self.runs)} run{'s' if len(self.runs) != 1 else ''}"
            if interrupted:
                text += f" · {interrupted} interrupted (their finished generations are kept)"
            text += " · space marks two runs to compare"
            info.update(text)

    def current_id(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row < 0 or table.cursor_row >= len(self.runs):
            return None
        return str(self.runs[table.cursor_row].get("id"))

    def current_run(self) -> dict[str, Any] | None:
        run_id = self.current_id()
        return next((r for r in self.runs if r.get("id") == run_id), None)

    @on(DataTable.RowHighlighted, "#runs")
    def _show_details(self) -> None:
        run = self.current_run()
        line = self.query_one("#history-run", Static)
        width = line.size.width or self.size.width - 2
        line.update(Text(run_details(run, width)) if run else "")

    @on(DataTable.RowSelected, "#runs")
    def _selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        run_id = self.current_id()
        if run_id:
            self.budsim.open_run(run_id)

    def action_mark(self) -> None:
        run_id = self.current_id()
        if not run_id:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
            self.marked = self.marked[-2:]
        table = self.query_one("#runs", DataTable)
        for run in self.runs:
            table.update_cell(str(run.get("id")), "id", self._id_cell(run))

    def _id_cell(self, run: Mapping[str, Any]) -> Text:
        """The short id (✓ when marked) over the status."""
        run_id, status = str(run.get("id")), str(run.get("status"))
        if run_id in self.marked:
            cell = Text(f"✓{run_id[:8]}", style="bold reverse")
        else:
            cell = Text(f" {run_id[:8]}")
        cell.append(f"\n {run_status_text(status)}", style=STATUS_STYLE.get(status, ""))
        return cell

    def action_compare(self) -> None:
        if len(self.marked) != 2:
            self.notify("mark two runs with space first", severity="warning")
            return
        self.budsim.compare_runs(self.marked[0], self.marked[1])

    def action_edit(self) -> None:
        run_id = self.current_id()
        if run_id:
            self.budsim.edit_run(run_id)

    def action_delete(self) -> None:
        run = self.current_run()
        if run is None:
            return
        run_id = str(run.get("id"))

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.budsim.delete_run(run_id)

        self.app.push_screen(
            ConfirmScreen(f"Delete run {run_id[:8]} ({run.get('model')}) and its generations?"),
            confirmed,
        )

    def action_refresh(self) -> None:
        self.budsim.load_history()

    def action_back(self) -> None:
        self.dismiss()
