"""Allowed engines and weight formats for the chosen hardware kind."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection

from .toggle import CheckList

QUANT_LABELS = {"auto": "checkpoint's own"}


class EngineQuantSelect(Horizontal):
    """Two checklists; space toggles an entry."""

    DEFAULT_CSS = """
    EngineQuantSelect { height: auto; }
    EngineQuantSelect > Vertical { width: 1fr; height: auto; }
    EngineQuantSelect SelectionList { height: auto; }
    EngineQuantSelect Label { color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("engines", id="engines-label")
            yield CheckList(id="engines", compact=True)
        with Vertical():
            yield Label("weight formats", id="quants-label")
            yield CheckList(id="quantizations", compact=True)

    def set_options(
        self,
        engines: Sequence[tuple[str, str]],
        quants: Sequence[str],
        *,
        selected_engines: Sequence[str] | None,
        selected_quants: Sequence[str] | None,
    ) -> None:
        """(id, label) engines and the formats; None selects all."""
        e_list = self.query_one("#engines", SelectionList)
        q_list = self.query_one("#quantizations", SelectionList)
        with e_list.prevent(SelectionList.SelectedChanged):
            e_list.clear_options()
            e_list.add_options(
                [
                    Selection(label, eid, selected_engines is None or eid in selected_engines)
                    for eid, label in engines
                ]
            )
        with q_list.prevent(SelectionList.SelectedChanged):
            q_list.clear_options()
            q_list.add_options(
                [
                    Selection(
                        QUANT_LABELS.get(q, q), q, selected_quants is None or q in selected_quants
                    )
                    for q in quants
                ]
            )
        self._count()

    def on_mount(self) -> None:
        self._count()

    def on_selection_list_selected_changed(self) -> None:
        self._count()  # the event bubbles on to the screen, which revalidates

    def _count(self) -> None:
        e_list = self.query_one("#engines", SelectionList)
        q_list = self.query_one("#quantizations", SelectionList)
        self.query_one("#engines-label", Label).update(
            f"engines: {len(e_list.selected)} of {e_list.option_count} (space toggles)"
        )
        self.query_one("#quants-label", Label).update(
            f"weight formats: {len(q_list.selected)} of {q_list.option_count}"
        )

    def selected(self) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        """The ticked engines and formats; None while a list has no options yet (= all)."""
        e_list = self.query_one("#engines", SelectionList)
        q_list = self.query_one("#quantizations", SelectionList)
        engines = tuple(e_list.selected) if e_list.option_count else None
        quants = tuple(q_list.selected) if q_list.option_count else None
        return engines, quants

    def everything_ticked(self) -> tuple[bool, bool]:
        """Whether every engine, and every format, on offer is ticked (the untouched default):
        another hardware kind then offers all of its own ticked too. False for an empty list
        (nothing offered yet: the form's own values decide)."""
        e_list = self.query_one("#engines", SelectionList)
        q_list = self.query_one("#quantizations", SelectionList)
        return (
            0 < e_list.option_count == len(e_list.selected),
            0 < q_list.option_count == len(q_list.selected),
        )
