"""Results: the sortable candidates (best, alternatives, Pareto front) and the chosen one in detail."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from ...core.engines import knob_names
from ..views import (
    OBJECTIVE_LABELS,
    ResultView,
    Row,
    bar,
    count_text,
    describe,
    devices_in,
    fmt,
    kv_text,
    layout_text,
    memory_rows,
    memory_rows_from_prediction,
    performance_rows,
    run_status_text,
    search_steps_text,
    weights_text,
    why_text,
)
from ..widgets.title_bar import TitleBar
from .base import BudsimScreen

# (column key, label, sort value)
SORTS: tuple[tuple[str, str], ...] = (
    ("rank", "#"),
    ("output_tok_s_per_device", "tok/s/dev"),
    ("second", "per user"),
    ("usd_per_1m_output_tokens", "$/1M"),
    ("ttft_ms_p50", "TTFT p50"),
    ("devices", "devices"),
)


KIND_TEXT = {"best": "best", "alternative": "alternative", "pareto": "Pareto", "closest": "closest"}
RANK_MARK = {"best": "★", "closest": "✗"}


class ResultsScreen(BudsimScreen):
    TITLE = "budsim"
    SUB_TITLE = "results"
    BINDINGS = [
        Binding("e", "export", "Export"),
        Binding("y", "copy_json", "Copy JSON"),
        Binding("s", "sort", "Sort"),
        Binding("n", "new_search", "New search"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, view: ResultView) -> None:
        super().__init__()
        self.view = view
        second = "tok_s_per_user"
        for row in view.rows:
            if "e2e_s_mean" in row.objectives:
                second = "e2e_s_mean"
                break
        self.second = second
        self.order: list[Row] = list(view.rows)
        self.sort_index = 0
        self.sort_reverse = False
        self.memory: dict[str, dict[str, Any] | None] = {}
        self.selected: Row | None = view.best or (view.rows[0] if view.rows else None)

    def compose(self) -> ComposeResult:
        yield TitleBar("results")
        yield Static("", id="results-title")
        with Horizontal(id="results-body"):
            yield DataTable(id="candidates", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail"):
                yield Static("", id="detail-config")
                with Container(id="detail-row"):
                    yield Static("", id="detail-perf")
                    yield Static("", id="detail-memory")
                yield Static("", id="detail-why")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        view = self.view
        title = Text()
        title.append(view.title, style="bold")
        title.append(f"\n{view.goal}\n")
        status = run_status_text(view.status)
        title.append(status, style="bold red" if view.status != "completed" else "bold green")
        if view.run_id:
            title.append(f" · run {view.run_id[:8]}")
        meta = view.metadata
        if meta:
            bits = []
            if meta.get("configurations_evaluated") is not None:
                bits.append(f"{fmt(meta.get('configurations_evaluated'))} evaluated")
            steps = search_steps_text(meta)
            if steps:
                bits.append(steps)
            if meta.get("seed") is not None:
                bits.append(f"seed {meta['seed']}")
            if bits:
                title.append(" · " + " · ".join(bits))
        self.query_one("#results-title", Static).update(title)
        table = self.query_one("#candidates", DataTable)
        for key, label in (
            ("rank", "#"),
            ("engine", "engine"),
            ("layout", "layout"),
            ("weights", "weights"),
            ("kv", "KV"),
            ("seqs", "seqs"),
            ("output_tok_s_per_device", "tok/s/dev"),
            ("ttft_ms_p50", "TTFT p50"),  # whole at 80 columns; the rest scroll sideways
            ("second", OBJECTIVE_LABELS.get(self.second, self.second)),
            ("usd_per_1m_output_tokens", "$/1M"),
            ("tokens", "batch tok"),
            ("util", "mem"),
            ("kind", "kind"),
        ):
            table.add_column(label, key=key)
        self._fill_table()
        self.show_detail(self.selected)
        table.focus()

    # ------------------------------------------------------------------------------ table

    def _sort_value(self, row: Row, key: str) -> float:
        if key == "rank":
            return float(row.rank)
        if key == "devices":
            return float(devices_in(row.configuration) or 0)
        metric = self.second if key == "second" else key
        value = row.metric(metric)
        if not isinstance(value, (int, float)):
            return float("inf")
        # best first: bigger-is-better metrics descending
        bigger = metric in ("output_tok_s_per_device", "tok_s_per_user", "requests_per_s")
        return -float(value) if bigger else float(value)

    def _fill_table(self) -> None:
        key = SORTS[self.sort_index][0]
        self.order = sorted(
            self.view.rows, key=lambda r: (self._sort_value(r, key), r.rank), reverse=False
        )
        if self.sort_reverse:
            self.order.reverse()
        table = self.query_one("#candidates", DataTable)
        table.clear()
        for row in self.order:
            cfg = row.configuration
            number = Text(f"{RANK_MARK.get(row.kind, '')}{row.rank}")
            if row.kind == "best":
                number.stylize("bold green")
            elif not row.feasible:
                number.stylize("red")
            table.add_row(
                number,
                str(cfg.get("engine")),
                layout_text(cfg),
                weights_text(cfg),
                kv_text(cfg),
                fmt(cfg.get("max_num_seqs")),
                fmt(row.metric("output_tok_s_per_device")),
                fmt((row.prediction or {}).get("ttft_ms_p50")),
                fmt(row.metric(self.second)),
                fmt(row.metric("usd_per_1m_output_tokens"), 3),
                fmt(cfg.get("max_num_batched_tokens")),
                fmt(cfg.get("gpu_memory_utilization")),
                KIND_TEXT.get(row.kind, row.kind),
                key=str(row.rank),
            )
        if self.selected is not None and self.selected in self.order:
            table.move_cursor(row=self.order.index(self.selected), animate=False)

    @on(DataTable.RowHighlighted, "#candidates")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        rank = int(event.row_key.value)
        for row in self.view.rows:
            if row.rank == rank:
                if row is not self.selected:
                    self.selected = row
                    self.show_detail(row)
                break

    @on(DataTable.HeaderSelected, "#candidates")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        keys = [k for k, _ in SORTS]
        column = str(event.column_key.value)
        if column in keys:
            index = keys.index(column)
            self.sort_reverse = (not self.sort_reverse) if index == self.sort_index else False
            self.sort_index = index
            self._fill_table()

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.sort_reverse = False
        self._fill_table()
        key, label = SORTS[self.sort_index]
        if key == "second":
            label = OBJECTIVE_LABELS.get(self.second, self.second)
        self.notify(f"sorted by {label}", timeout=1.5)

    # ------------------------------------------------------------------------------ detail

    def show_detail(self, row: Row | None) -> None:
        config = self.query_one("#detail-config", Static)
        perf = self.query_one("#detail-perf", Static)
        why = self.query_one("#detail-why", Static)
        if row is None:
            config.update(Text("No configuration to show.", style="bold"))
            perf.update("")
            self.query_one("#detail-memory", Static).update("")
            why.update(why_text(self.view, None))
            return
        cfg = row.configuration
        head = Text()
        if self.view.error and self.view.status != "completed":  # why the search failed, first
            head.append(f"{self.view.error}\n", style="red")
        head.append(f"{row.kind} #{row.rank}: ", style="bold")
        head.append(describe(cfg), style="bold")
        head.append("\n")
        _, tokens, memory = knob_names(cfg.get("engine"), short=True)
        head.append(
            f"{count_text(devices_in(cfg), 'device')} ({layout_text(cfg)}) · "
            f"{tokens} {fmt(cfg.get('max_num_batched_tokens'))} · "
            f"{memory} {fmt(cfg.get('gpu_memory_utilization'))} · "
            f"KV {kv_text(cfg)}"
        )
        pred = row.prediction or {}
        extra = [
            ("bottleneck", pred.get("bottleneck")),
            ("calibration", pred.get("calibration")),
        ]
        extra_text = " · ".join(f"{k} {v}" for k, v in extra if v)
        if extra_text:
            head.append("\n" + extra_text, style="dim")
        if pred.get("rests_on"):  # what the numbers rest on: evidence, or why physics only
            head.append(f"\nrests on: {pred['rests_on']}", style="dim")
        config.update(head)
        rows = performance_rows(pred) if pred else []
        if rows:
            table = Table(box=None, padding=(0, 1), show_header=True, header_style="dim")
            table.add_column("predicted")
            table.add_column("value", justify="right")
            table.add_column("band", justify="right", style="dim")
            for label, value, band in rows:
                table.add_row(label, value, band)
            perf.update(table)
        else:
            perf.update(
                Text(
                    "Pareto member: only its objectives were kept "
                    + ", ".join(
                        f"{OBJECTIVE_LABELS.get(k, k)} {fmt(v)}"
                        for k, v in row.objectives.items()
                        if k != "target"
                    ),
                    style="dim",
                )
            )
        self._show_memory(row)
        why.update(Text(why_text(self.view, row)))

    def _memory_key(self, row: Row) -> str:
        return f"{self.view.run_id}:{row.rank}"

    def _show_memory(self, row: Row) -> None:
        panel = self.query_one("#detail-memory", Static)
        key = self._memory_key(row)
        if key not in self.memory:
            self.memory[key] = None
            self.budsim.plan_memory(key, row.configuration, self.view.request)
        plan = self.memory.get(key)
        pred = row.prediction or {}
        if plan:
            items = memory_rows(plan)
            total = float(plan.get("device_memory_gb") or 0.0)
            title = f"memory per device ({fmt(total)} GB)"
        elif pred:
            items = memory_rows_from_prediction(pred, None)
            total = sum(v for _, v in items)
            title = "memory per device"
        else:
            panel.update("")
            return
        text = Text(title + "\n", style="bold")
        for label, gb in items:
            share = gb / total if total else 0.0
            text.append(f"{label:<12}", style="dim")
            text.append(bar(share, 20), style="cyan")
            text.append(f" {gb:6.2f} GB\n")
        panel.update(text)

    def memory_planned(self, key: str, plan: dict[str, Any] | None) -> None:
        self.memory[key] = plan
        if self.selected is not None and self._memory_key(self.selected) == key:
            self._show_memory(self.selected)

    # ------------------------------------------------------------------------------ actions

    def action_export(self) -> None:
        if self.selected is None:
            self.notify("nothing to export", severity="warning")
            return
        self.budsim.export_row(self.view, self.selected)

    def action_copy_json(self) -> None:
        if self.selected is None:
            self.notify("nothing to copy", severity="warning")
            return
        self.budsim.copy_configuration(self.view, self.selected)

    def action_new_search(self) -> None:
        self.budsim.new_search(self.view.request)

    def action_back(self) -> None:
        self.dismiss()
