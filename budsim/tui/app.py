"""BudsimApp: screens, workers and the handlers that own the app's state.

Discipline (harlequin / toolong style): every slow or heavy thing (the catalog, model lookups, the
search, the run store, exports) runs in a thread worker that posts a message from `messages.py`; the
handlers here update state and tell the visible screen. Workers never touch widgets.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

from .catalog import Catalog
from .messages import (
    CatalogLoaded,
    EditRequested,
    ExportReady,
    GenerationDone,
    HistoryLoaded,
    MemoryPlanned,
    ModelChecked,
    RunCreated,
    RunDeleted,
    RunFailed,
    RunFinished,
    RunOpened,
    RunsCompared,
)
from .screens.setup import SetupScreen
from .state import RunState
from .views import ResultView, Row, configuration_document, view_from_response, view_from_store

if TYPE_CHECKING:
    from .screens.history import HistoryScreen
    from .screens.results import ResultsScreen
    from .screens.run import RunScreen

# Screens other than the setup form load lazily (the catalog worker preloads them after the first
# paint), so that startup imports only what the first frame needs.
LAZY_SCREENS = (
    "budsim.tui.screens.run",
    "budsim.tui.screens.results",
    "budsim.tui.screens.history",
    "budsim.tui.screens.modals",
)


def _run_screen() -> type[RunScreen]:
    from .screens.run import RunScreen

    return RunScreen


def _results_screen() -> type[ResultsScreen]:
    from .screens.results import ResultsScreen

    return ResultsScreen


def _history_screen() -> type[HistoryScreen]:
    from .screens.history import HistoryScreen

    return HistoryScreen


QUIT_WAIT_S = 5.0
GC_HOLD_THRESHOLD = 100_000  # generation-1 collections before a full one, while a search runs  # how long quitting waits for a cancelled search to write its last generation


class BudsimApp(App[None]):
    """The interactive planner."""

    TITLE = "budsim"
    CSS_PATH = str(Path(__file__).with_name("budsim.tcss"))  # absolute: subclasses live elsewhere
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    # pop-ups are notes, not the content: gone in 3 s (Textual's default is 5) and, with the
    # toast style in budsim.tcss, a third of an 80-column screen instead of half
    NOTIFICATION_TIMEOUT = 3
    BINDINGS = [
        Binding("f2", "history", "History"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        *,
        db_path: str | Path | None = None,
        save_runs: bool = True,
        cursor_blink: bool = True,
        workers: int | None = None,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path) if db_path is not None else None
        self.save_runs = save_runs
        self.cursor_blink = cursor_blink
        from .runner import default_workers

        # prediction processes (0 = predict on the worker thread itself; same answers)
        self.workers_per_search = default_workers() if workers is None else workers
        self.catalog: Catalog | None = None
        self.model_cache: dict[tuple[str, bool], tuple[dict[str, Any] | None, str | None]] = {}
        self.run_state: RunState | None = None
        self.history: list[dict[str, Any]] | None = None
        self._token = 0
        self._quitting = False
        self._warned: set[str] = set()
        self._gc_threshold: tuple[int, int, int] | None = None

    def get_default_screen(self) -> Screen[Any]:
        return SetupScreen()

    def on_mount(self) -> None:
        theme = os.environ.get("BUDSIM_THEME")
        if theme:
            self.theme = theme
        # after the first frame: the worker's imports would otherwise compete with the first paint
        self.call_after_refresh(self.load_catalog)

    # ================================================================= catalog and model lookups

    @work(thread=True, group="catalog", exit_on_error=False)
    def load_catalog(self) -> None:
        import importlib

        from .catalog import load_catalog

        catalog = load_catalog()
        self.post_message(CatalogLoaded(catalog))
        if self.workers_per_search > 0:
            from .runner import PredictionPool

            try:
                PredictionPool.warm(self.workers_per_search)
            except Exception:  # noqa: BLE001 - no process pool here: predict on the thread
                self.workers_per_search = 0
        for name in LAZY_SCREENS:
            importlib.import_module(name)

    def on_catalog_loaded(self, message: CatalogLoaded) -> None:
        self.catalog = message.catalog
        # Startup objects (textual, the catalog, imported modules) never die: move them out of the
        # collector's reach so that later full collections stay short (they stall the UI thread).
        gc.collect()
        gc.freeze()
        for error in message.catalog.errors:
            self.notify(error, title="catalog", severity="warning", timeout=8)
        for screen in self.screen_stack:
            if isinstance(screen, SetupScreen) and screen.is_mounted:
                screen.catalog_ready()  # a screen still mounting picks the catalog up itself

    def check_model(self, ref: str, online: bool = False) -> None:
        if (ref, online) in self.model_cache:
            self.post_message(ModelChecked(ref, *self.model_cache[(ref, online)], online=online))
            return
        self._check_model(ref, online)

    @work(thread=True, group="model", exclusive=True, exit_on_error=False)
    def _check_model(self, ref: str, online: bool) -> None:
        from budsim.core.errors import BudsimError

        facts: dict[str, Any] | None = None
        error: str | None = None
        try:
            if online:
                from budsim.core.model import load_model

                load_model(ref, allow_network=True)  # fills the HF cache the rest reads offline
            from budsim.core.facts import model_facts

            facts = model_facts(ref)
        except BudsimError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bad config file must not end the app
            error = f"cannot read {ref}: {type(exc).__name__}: {exc}"
        self.post_message(ModelChecked(ref, facts, error, online=online))

    def on_model_checked(self, message: ModelChecked) -> None:
        self.model_cache[(message.ref, message.online)] = (message.facts, message.error)
        for screen in self.screen_stack:
            if isinstance(screen, SetupScreen) and screen.is_mounted:
                screen.model_checked(message.ref)

    # ================================================================= the search

    def start_run(self, request: Any) -> None:
        if self.run_state is not None and self.run_state.active:
            self.notify("a search is already running (c on the run screen cancels it)")
            self._show_run_screen()
            return
        self._token += 1
        self.run_state = RunState(self._token, request)
        self._show_run_screen()
        self.run_state.worker_started = True
        self._hold_full_gc()
        self._search(self.run_state)

    def _show_run_screen(self) -> None:
        if not isinstance(self.screen, _run_screen()):
            self.push_screen(_run_screen()())

    @work(thread=True, group="search", exclusive=True, exit_on_error=False)
    def _search(self, state: RunState) -> None:
        from budsim.core.errors import BudsimError

        from .runner import run_search

        token = state.token

        def post(message: Message) -> None:
            self.post_message(message)

        try:
            outcome = run_search(
                state.request,
                cancel=state.cancel,
                on_progress=lambda p: post(GenerationDone(token, p)),
                on_created=lambda run_id: post(RunCreated(token, run_id)),
                db_path=self.db_path,
                save=self.save_runs,
                workers=self.workers_per_search,
            )
        except BudsimError as exc:
            response = getattr(exc, "response", None) or {}
            self.post_message(
                RunFailed(
                    token,
                    str(exc),
                    closest=list(getattr(exc, "closest", None) or []),
                    run_id=response.get("simulation_id"),
                )
            )
        except Exception as exc:  # noqa: BLE001 - a bug in core is shown, not fatal
            self.post_message(RunFailed(token, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(RunFinished(token, outcome))
        finally:
            import time

            state.worker_ended_at = time.perf_counter()
            state.done.set()

    def _hold_full_gc(self) -> None:
        """No full (generation 2) collections while a search runs.

        The search keeps thousands of candidates alive; a full collection then takes 100+ ms with
        the GIL held, whichever thread triggers it, and the UI freezes for that long. Young
        generations are still collected; the full collection happens once the search is over.
        """
        if self._gc_threshold is None:
            self._gc_threshold = gc.get_threshold()
            first, second, _ = self._gc_threshold
            gc.set_threshold(first, second, GC_HOLD_THRESHOLD)

    def _release_full_gc(self) -> None:
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
            self._gc_threshold = None

    def _current(self, token: int) -> RunState | None:
        state = self.run_state
        return state if state is not None and state.token == token else None

    def on_run_created(self, message: RunCreated) -> None:
        state = self._current(message.token)
        if state is not None:
            state.run_id = message.run_id
            state.touch()

    def on_generation_done(self, message: GenerationDone) -> None:
        state = self._current(message.token)
        if state is not None:
            state.progress.append(message.progress)
            state.touch()

    def _end_run(self, state: RunState, run_id: str | None) -> None:
        """What a run's end does however it ended: keep its stored id, stop its clock, redraw,
        give the full garbage collection back, and have the history read the store again."""
        import time

        state.run_id = run_id or state.run_id
        state.finished_at = time.perf_counter()
        state.touch()
        self._release_full_gc()
        self.history = None

    def on_run_finished(self, message: RunFinished) -> None:
        state = self._current(message.token)
        if state is None:
            return
        outcome = message.outcome
        state.status = outcome.status
        state.response = outcome.response
        self._end_run(state, outcome.run_id)
        if self._quitting:
            return
        for text in outcome.warnings[:3]:
            if text not in self._warned:  # once per session
                self._warned.add(text)
                self.notify(text, title="predictor", severity="warning", timeout=8)
        if outcome.status == "cancelled":
            self.notify(
                "search cancelled; the run keeps its finished generations",
                severity="warning",
            )
        if isinstance(self.screen, _run_screen()):
            self.show_run_results()
        else:
            self.notify("the search finished: F2 → history, or the run screen, shows it")

    def on_run_failed(self, message: RunFailed) -> None:
        state = self._current(message.token)
        if state is None:
            return
        state.status = "failed"
        state.error = message.error
        state.closest = message.closest
        self._end_run(state, message.run_id)
        if self._quitting:
            return
        if isinstance(self.screen, _run_screen()):  # it shows the reason whole, under the table
            self.notify("search failed: the reason is under the table", severity="error")
        else:
            self.notify(message.error, title="search failed", severity="error", timeout=10)

    def cancel_run(self) -> None:
        import time

        state = self.run_state
        if state is None or not state.active:
            return
        state.cancel.set()
        state.status = "cancelling"
        state.cancel_requested_at = time.perf_counter()
        state.touch()

    def show_run_results(self) -> None:
        state = self.run_state
        if state is None or state.response is None:
            if state is not None and state.active:
                self.notify("still searching…")
            else:
                self.notify("no results to show", severity="warning")
            return
        view = view_from_response(state.response)
        if not view.rows:
            self.notify("the search found no feasible configuration", severity="warning")
            return
        screen = _results_screen()(view)
        if isinstance(self.screen, _run_screen()):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    # ================================================================= navigation

    def action_history(self) -> None:
        if not isinstance(self.screen, _history_screen()):
            self.push_screen(_history_screen()())

    def action_new_search(self) -> None:
        self._to_setup()

    def _to_setup(self) -> SetupScreen:
        while not isinstance(self.screen, SetupScreen) and len(self.screen_stack) > 1:
            self.pop_screen()
        assert isinstance(self.screen, SetupScreen)
        return self.screen

    def new_search(self, request: Mapping[str, Any] | None = None) -> None:
        setup = self._to_setup()
        if request:
            from .form import values_from_inputs

            setup.load_values(values_from_inputs(request))

    # ================================================================= the run store

    def _store(self) -> Any:
        from budsim.core.store import open_store

        return open_store(self.db_path)

    @work(thread=True, group="history", exclusive=True, exit_on_error=False)
    def load_history(self) -> None:
        try:
            with self._store() as store:
                runs = store.list_runs(limit=500)
        except Exception as exc:  # noqa: BLE001
            self.post_message(HistoryLoaded([], error=str(exc)))
            return
        self.post_message(HistoryLoaded(runs))

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        if message.error is None:
            self.history = message.runs
        for screen in self.screen_stack:
            if isinstance(screen, _history_screen()):
                screen.show_runs(message.runs, message.error)

    @work(thread=True, group="store", exit_on_error=False)
    def open_run(self, run_id: str) -> None:
        try:
            with self._store() as store:
                run = store.get_run(run_id)
                results = store.get_results(run_id)
            view = view_from_store(run, results)
        except Exception as exc:  # noqa: BLE001
            self.post_message(RunOpened(None, str(exc)))
            return
        self.post_message(RunOpened(view))

    def on_run_opened(self, message: RunOpened) -> None:
        if message.view is None:
            self.notify(message.error or "cannot open the run", severity="error")
            return
        if not message.view.rows:
            why = f": {message.view.error}" if message.view.error else ""
            self.notify(
                f"run {str(message.view.run_id)[:8]} ({message.view.status}) has no results{why}",
                severity="warning",
                timeout=8,
            )
            return
        self.push_screen(_results_screen()(message.view))

    @work(thread=True, group="store", exit_on_error=False)
    def edit_run(self, run_id: str) -> None:
        try:
            with self._store() as store:
                inputs = store.get_run(run_id).get("inputs")
        except Exception as exc:  # noqa: BLE001
            self.post_message(EditRequested(None, str(exc)))
            return
        self.post_message(EditRequested(dict(inputs or {})))

    def on_edit_requested(self, message: EditRequested) -> None:
        if not message.inputs:
            self.notify(message.error or "the run has no stored inputs", severity="error")
            return
        self.new_search(message.inputs)
        self.notify("loaded the run's settings: edit them and press Ctrl+R")

    @work(thread=True, group="store", exit_on_error=False)
    def compare_runs(self, run_a: str, run_b: str) -> None:
        try:
            with self._store() as store:
                comparison = store.compare_runs(run_a, run_b)
        except Exception as exc:  # noqa: BLE001
            self.post_message(RunsCompared(None, str(exc)))
            return
        self.post_message(RunsCompared(comparison))

    def on_runs_compared(self, message: RunsCompared) -> None:
        if message.comparison is None:
            self.notify(message.error or "cannot compare", severity="error")
            return
        from .screens.modals import CompareScreen

        self.push_screen(CompareScreen(message.comparison))

    @work(thread=True, group="store", exit_on_error=False)
    def delete_run(self, run_id: str) -> None:
        try:
            with self._store() as store:
                full = store.delete_run(run_id)
        except Exception as exc:  # noqa: BLE001
            self.post_message(RunDeleted(run_id, str(exc)))
            return
        self.post_message(RunDeleted(full))

    def on_run_deleted(self, message: RunDeleted) -> None:
        if message.error:
            self.notify(message.error, severity="error")
        else:
            self.notify(f"deleted run {message.run_id[:8]}")
        self.load_history()

    # ================================================================= results: memory and export

    @work(thread=True, group="memory", exit_on_error=False)
    def plan_memory(self, key: str, config: Mapping[str, Any], request: Mapping[str, Any]) -> None:
        try:
            plan = memory_plan(config, request)
        except Exception as exc:  # noqa: BLE001 - the coarse breakdown stays
            self.post_message(MemoryPlanned(key, None, str(exc)))
            return
        self.post_message(MemoryPlanned(key, plan))

    def on_memory_planned(self, message: MemoryPlanned) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, _results_screen()) and message.plan is not None:
                screen.memory_planned(message.key, message.plan)

    def export_row(self, view: ResultView, row: Row) -> None:
        self._export(configuration_document(view, row), {"status": view.status, "id": view.run_id})

    @work(thread=True, group="export", exclusive=True, exit_on_error=False)
    def _export(self, doc: dict[str, Any], run: dict[str, Any]) -> None:
        text_json = json.dumps(doc, indent=2, default=str)
        try:
            from budsim.core.export import export, from_config_json
            from budsim.core.export.plan import run_warning
        except ImportError:
            self.post_message(ExportReady("configuration JSON", text_json, "configuration JSON"))
            return
        try:
            # a failed run's closest configuration leads its header with a warning, as the CLI's
            plan = replace(from_config_json(doc), warning=run_warning(run))
            result = export(plan, [plan.engine])
            text = result.text()
        except Exception as exc:  # noqa: BLE001 - fall back to the JSON, say why
            self.post_message(
                ExportReady(
                    "configuration JSON (export failed)",
                    text_json,
                    "configuration JSON",
                    error=str(exc),
                )
            )
            return
        title = (
            f"{plan.engine} launch script · `budsim export <run> -t all` adds docker, k8s, litellm"
        )
        self.post_message(ExportReady(title, text, f"{plan.engine} launch script"))

    def on_export_ready(self, message: ExportReady) -> None:
        if message.error:
            self.notify(f"export: {message.error}", severity="warning", timeout=8)
        from .screens.modals import ExportScreen

        self.push_screen(ExportScreen(message.title, message.text, message.kind))

    def copy_configuration(self, view: ResultView, row: Row) -> None:
        text = json.dumps(configuration_document(view, row), indent=2, default=str)
        self.copy_to_clipboard(text)
        self.notify("configuration JSON copied (OSC 52)")

    # ================================================================= palette and quitting

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "History", "Saved runs: open, compare, re-run, delete", self.action_history
        )
        yield SystemCommand("New search", "Back to the setup form", self.action_new_search)
        if isinstance(screen, SetupScreen):
            yield SystemCommand(
                "Run the search", "Start the optimisation (Ctrl+R)", screen.action_run
            )
            yield SystemCommand(
                "Toggle advanced settings",
                "GA population, generations, seed…",
                screen.action_toggle_advanced,
            )
        if self.run_state is not None and self.run_state.active:
            yield SystemCommand(
                "Cancel the search", "Stop after the current chunk", self.cancel_run
            )
        if isinstance(screen, _results_screen()):
            yield SystemCommand(
                "Export", "Launch script of the selected configuration", screen.action_export
            )
            yield SystemCommand(
                "Copy configuration JSON", "OSC 52 clipboard", screen.action_copy_json
            )
            yield SystemCommand("Sort results", "Cycle the sort column", screen.action_sort)
        if isinstance(screen, _history_screen()):
            yield SystemCommand(
                "Compare marked runs", "Two runs side by side", screen.action_compare
            )
            yield SystemCommand("Re-run with edits", "Load the run's settings", screen.action_edit)
            yield SystemCommand("Delete run", "Remove the run from the store", screen.action_delete)

    async def action_quit(self) -> None:
        """Quit; a running search is cancelled first so the store records it as cancelled."""
        state = self.run_state
        if state is not None and state.searching:
            self._quitting = True
            self.cancel_run()
            self.notify("cancelling the search before quitting…")
            await asyncio.to_thread(state.done.wait, QUIT_WAIT_S)
        self.exit()

    def on_unmount(self) -> None:
        state = self.run_state
        if state is not None and state.searching:  # exit by another path than action_quit
            state.cancel.set()
            state.done.wait(QUIT_WAIT_S)


def memory_plan(config: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """Where one device's memory goes for a configuration (runs in a worker)."""
    import math

    from budsim.core.deployment import Deployment
    from budsim.core.memory import plan_memory
    from budsim.core.predict import resolve

    names = {f.name for f in fields(Deployment)}
    values = {k: v for k, v in config.items() if k in names}
    values.setdefault("model", request.get("model"))
    values.setdefault("hardware", request.get("hardware"))
    resolved = resolve(Deployment(**values))
    workload = dict(request.get("workload") or {})
    context = math.ceil(
        int(workload.get("input_len", 1024)) * (1 + float(workload.get("input_len_spread") or 0))
    ) + math.ceil(
        int(workload.get("output_len", 256)) * (1 + float(workload.get("output_len_spread") or 0))
    )
    plan = plan_memory(
        resolved.model, resolved.device, resolved.engine, resolved.deployment, context
    )
    return plan.to_dict()
