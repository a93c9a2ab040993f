"""The live search: progress, fitness by generation, the population, the best so far, cancel."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from ..views import fmt, pack
from ..widgets.best_table import BestTable
from ..widgets.fitness_chart import FitnessChart
from ..widgets.population_scatter import PopulationScatter
from ..widgets.run_progress import RunProgress
from ..widgets.title_bar import TitleBar
from .base import BudsimScreen

REFRESH_S = 0.25  # charts redraw at most 4 times a second, whatever the GA's pace


class RunScreen(BudsimScreen):
    TITLE = "budsim"
    SUB_TITLE = "search"
    BINDINGS = [
        Binding("c", "cancel", "Cancel"),
        Binding("enter,r", "results", "Results"),
        Binding("escape", "back", "Back"),
        Binding("f4", "toggle_charts", "Charts/table"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._seen_version = -1
        self._seen_active: bool | None = None
        self._seen_title = ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cancel is offered (in the footer too) only while the search runs."""
        if action == "cancel":
            state = self.budsim.run_state
            return state is not None and state.active
        return True

    def compose(self) -> ComposeResult:
        yield TitleBar("search")
        with Vertical(id="run-body"):
            yield Static("", id="run-title")
            yield RunProgress(id="run-progress")
            with Horizontal(id="charts"):
                yield FitnessChart(id="fitness")
                yield PopulationScatter(id="scatter")
            yield Static("best so far", classes="section")
            yield BestTable(id="best")
            yield Static("", id="run-message")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.render_state()
        self.set_interval(REFRESH_S, self.render_state)

    def on_resize(self) -> None:
        self._seen_version = -1  # the next frame folds the title for the new width

    def render_state(self) -> None:
        """Draw the app's run state if it changed since the last frame (throttled by the timer)."""
        state = self.budsim.run_state
        if state is None or state.version == self._seen_version:
            return
        self._seen_version = state.version
        if state.active != self._seen_active:
            self._seen_active = state.active
            self.refresh_bindings()  # the footer drops "c Cancel" once the run has ended
        req = state.request
        parts = [
            f"{req.model} on {req.devices}× {req.hardware}",
            f"target {req.optimization_target}",
            # the GA's settings mean nothing to an exhaustive search
            *(
                ["exhaustive search"]
                if req.exhaustive
                else [f"population {req.ga.population}", f"{req.ga.generations} generations"]
            ),
        ]
        if state.run_id:
            parts.append(f"run {state.run_id[:8]}")
        line = self.query_one("#run-title", Static)
        title = pack(parts, line.size.width or self.size.width - 2)
        if title != self._seen_title:  # two lines at 80 columns: a new layout only then
            self._seen_title = title
            line.update(title)
        latest = state.progress[-1] if state.progress else None
        self.query_one(RunProgress).show(latest, state.status)
        self.query_one(FitnessChart).show(state.progress, req.optimization_target)
        self.query_one(PopulationScatter).show(latest)
        table = self.query_one(BestTable)
        if state.closest:
            table.show(state.closest, "tok_s_per_user")
        elif latest is not None:
            table.show(latest.leaders, latest.x_name)
        message = self.query_one("#run-message", Static)
        if state.error:  # whole, on as many lines as it takes (the search is over)
            message.update(f"✖ {state.error}")
            message.add_class("-error")
        elif state.status == "cancelling":
            message.update("cancelling… (the run keeps its finished generations)", layout=False)
        elif state.status == "cancelled":
            message.update(
                "cancelled. Enter opens what it found; Esc goes back to the setup.", layout=False
            )
        elif state.status == "completed" and latest is not None:
            message.update(f"done: best {fmt(latest.best_target)} · Enter for the results")
        else:
            message.update("", layout=False)

    def action_cancel(self) -> None:
        state = self.budsim.run_state
        if state is not None and state.active:
            self.budsim.cancel_run()
        else:
            self.notify("the search is not running")

    def action_back(self) -> None:
        state = self.budsim.run_state
        if state is not None and state.active:
            self.notify("the search is still running: c cancels it")
            return
        self.dismiss()

    def action_results(self) -> None:
        self.budsim.show_run_results()

    def action_toggle_charts(self) -> None:
        self.toggle_class("-table-only")
