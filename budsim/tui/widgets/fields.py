"""Compact labelled form fields (a label and a one-line input or select) that fill a grid cell."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal
from textual.widget import Widget
from textual.widgets import Input, Label, Select


class FormGrid(Grid):
    """Cells flow into 4 columns on wide terminals and 2 on narrow ones (see budsim.tcss)."""

    DEFAULT_CSS = """
    FormGrid { height: auto; grid-size: 2; grid-rows: 1; grid-gutter: 0 2; }
    """


class _Labelled(Horizontal):
    """A grid cell: a label, then the control the subclass makes, whose id is the form field id
    and which carries the tooltip."""

    def __init__(self, label: str, *, field_id: str, tooltip: str | None) -> None:
        super().__init__(id=f"field-{field_id}")
        self._label = label
        self._field_id = field_id
        self._hint = tooltip

    def _control(self) -> Widget:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        yield Label(self._label)
        control = self._control()
        if self._hint:
            control.tooltip = self._hint
        yield control


class Field(_Labelled):
    """`label [value     ]` on one line; the input's id is the form field id."""

    DEFAULT_CSS = """
    Field { height: 1; width: 1fr; }
    Field > Label { width: 12; color: $text-muted; }
    Field > Input { width: 1fr; }
    """

    def __init__(
        self,
        label: str,
        *,
        field_id: str,
        value: str = "",
        placeholder: str = "",
        tooltip: str | None = None,
    ) -> None:
        super().__init__(label, field_id=field_id, tooltip=tooltip)
        self._value = value
        self._placeholder = placeholder

    def _control(self) -> Widget:
        return Input(
            self._value,
            placeholder=self._placeholder,
            id=self._field_id,
            compact=True,
            select_on_focus=False,
        )


class Choice(_Labelled):
    """`label [choice ▼]` on one line."""

    DEFAULT_CSS = """
    Choice { height: 1; width: 1fr; }
    Choice > Label { width: 12; color: $text-muted; }
    Choice > Select { width: 1fr; }
    """

    def __init__(
        self,
        label: str,
        options: Iterable[tuple[str, str]],
        *,
        field_id: str,
        value: str,
        tooltip: str | None = None,
    ) -> None:
        super().__init__(label, field_id=field_id, tooltip=tooltip)
        self._options = list(options)
        self._value = value

    def _control(self) -> Widget:
        select: Select[str] = Select(
            self._options,
            value=self._value,
            allow_blank=False,
            compact=True,
            id=self._field_id,
        )
        return select
