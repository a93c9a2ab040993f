"""Small modal screens: confirm, compare two runs, export text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static, TextArea

from ..views import fmt, model_cell, run_label
from .base import BudsimModal


class ConfirmScreen(BudsimModal):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(id="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="error", compact=True)
                yield Button("No (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def run_rows(run: Mapping[str, Any]) -> dict[str, str]:
    """What a run was asked: its model, hardware, workload and SLOs (one a line), objective."""
    label = run_label(run)
    return {
        "status": fmt(run.get("status")),
        "model": model_cell(label.model),
        "hardware": f"{fmt(run.get('devices'))}× {fmt(run.get('hardware'))}",
        "workload": label.workload,
        "SLO": "\n".join(label.slo) or "no SLO",
        "objective": fmt(run.get("objective")),
        "generations": fmt(run.get("generations")),
    }


def comparison_table(comparison: Mapping[str, Any]) -> Table:
    runs = comparison.get("runs") or [{}, {}]
    a, b = runs[0], runs[1]
    table = Table(box=None, padding=(0, 1), header_style="bold")
    table.add_column("")
    table.add_column(f"A {str(a.get('id', ''))[:8]}", justify="right")
    table.add_column(f"B {str(b.get('id', ''))[:8]}", justify="right")
    table.add_column("B/A", justify="right")
    rows_a, rows_b = run_rows(a), run_rows(b)
    for key, va in rows_a.items():
        vb = rows_b[key]
        style = "" if va == vb or key == "generations" else "bold yellow"
        table.add_row(Text(key, style="dim"), va, Text(vb, style=style), "")
    table.add_section()
    for key, values in (comparison.get("configuration") or {}).items():
        if key in ("model", "hardware"):
            continue
        va, vb = (list(values) + [None, None])[:2]
        style = "" if va == vb else "bold yellow"
        table.add_row(Text(key, style="dim"), fmt(va), Text(fmt(vb), style=style), "")
    table.add_section()
    for key, entry in (comparison.get("metrics") or {}).items():
        ratio = entry.get("ratio")
        table.add_row(
            Text(key, style="dim"),
            fmt(entry.get("a")),
            fmt(entry.get("b")),
            f"{ratio:.2f}×" if isinstance(ratio, (int, float)) else "",
        )
    return table


class CompareScreen(BudsimModal):
    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, comparison: Mapping[str, Any]) -> None:
        super().__init__()
        self.comparison = comparison

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-wide"):
            yield Label("Compare runs: best configurations side by side", classes="section")
            with VerticalScroll(id="compare-body"):
                yield Static(comparison_table(self.comparison))
            yield Label("Esc closes", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#compare-body").focus()

    def action_close(self) -> None:
        self.dismiss()


class ExportScreen(BudsimModal):
    """Shows what the export produced; c copies it to the clipboard over OSC 52 (works over SSH)."""

    BINDINGS = [
        Binding("c", "copy", "Copy"),
        Binding("escape,q", "close", "Close"),
    ]

    def __init__(self, title: str, text: str, kind: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.kind = kind

    def compose(self) -> ComposeResult:
        # The title and the hint wrap, and so do the script's lines (at 80 columns they were cut
        # at about 72 characters); c copies the text as it is, unwrapped.
        with Vertical(id="dialog", classes="-wide"):
            yield Static(self.title_text, classes="dialog-title")
            area = TextArea(self.text, read_only=True, id="export-text", soft_wrap=True)
            area.cursor_blink = self.budsim.cursor_blink
            yield area
            yield Static(
                "c copies (OSC 52: works over SSH; in tmux: set-clipboard on) · Esc closes",
                classes="hint",
            )

    def on_mount(self) -> None:
        self.query_one("#export-text", TextArea).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify(f"copied {len(self.text.splitlines())} lines of {self.kind}")

    def action_close(self) -> None:
        self.dismiss()
