"""Model picker: one input for a catalog id, alias, local path or HF id, with fuzzy matches below."""

from __future__ import annotations

import re

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Input, OptionList
from textual.widgets.option_list import Option

from ..fuzzy import rank
from .toggle import Toggle

MAX_MATCHES = 6
_QUANT_HINT = re.compile(r"fp8|fp4|int4|int8|awq|gptq|w4a|w8a|mxfp|nvfp", re.IGNORECASE)


class MatchList(OptionList):
    BINDINGS = [Binding("escape", "back", "Back to input", show=False)]

    def action_back(self) -> None:
        picker = self.parent
        if isinstance(picker, ModelPicker):
            picker.query_one("#model", Input).focus()


class ModelPicker(Vertical):
    """Type to filter the bundled catalog; ↓ moves into the matches, Enter picks one."""

    DEFAULT_CSS = """
    ModelPicker { height: auto; }
    ModelPicker #model-row { height: 1; }
    ModelPicker #model { width: 1fr; }
    ModelPicker #online { width: auto; height: 1; border: none; padding: 0 1; }
    ModelPicker MatchList { height: auto; max-height: 6; display: none; margin-left: 12; text-wrap: nowrap; text-overflow: ellipsis; }
    ModelPicker.-open MatchList { display: block; }
    """

    class Changed(Message):
        """The model text changed (or a match was picked)."""

        def __init__(self, picker: ModelPicker, value: str) -> None:
            super().__init__()
            self.picker = picker
            self.value = value

        @property
        def control(self) -> ModelPicker:
            return self.picker

    def __init__(self, value: str = "", *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._value = value
        self.choices: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="model-row"):
            from textual.widgets import Label

            yield Label("model", classes="field-label")
            model = Input(
                self._value,
                placeholder="type to search the catalog, or an HF id / config.json path",
                id="model",
                compact=True,
                select_on_focus=False,
            )
            model.tooltip = "Fuzzy search over the bundled catalog; ↓ for the matches"
            yield model
            online = Toggle("HF Hub", id="online", compact=True)
            online.tooltip = "Allow downloading config.json from the Hugging Face Hub"
            yield online
        yield MatchList(id="model-matches", compact=True)

    @property
    def value(self) -> str:
        return self.query_one("#model", Input).value.strip()

    @property
    def online(self) -> bool:
        return self.query_one("#online", Checkbox).value

    def set_value(self, value: str) -> None:
        model = self.query_one("#model", Input)
        with model.prevent(Input.Changed):
            model.value = value
        self.remove_class("-open")
        self.post_message(self.Changed(self, value.strip()))

    def set_choices(self, choices: list[tuple[str, str]]) -> None:
        """(search text, model id) pairs; aliases lead to their catalog id."""
        self.choices = choices
        self._refresh_matches(self.value, open_list=False)

    def _refresh_matches(self, text: str, *, open_list: bool = True) -> None:
        entries: list[tuple[str, str]] = []  # (label, value)
        ids_listed: set[str] = set()
        exact = False
        if text:
            target = dict(self.choices)
            for m in rank(text, target):
                model_id = target[m.text]
                exact = exact or m.text.lower() == text.lower()
                if m.text == model_id:
                    if model_id not in ids_listed:
                        entries.append((model_id, model_id))
                        ids_listed.add(model_id)
                elif "/" in m.text and _QUANT_HINT.search(m.text):
                    # a quantised variant's HF id: keep it (it sets the checkpoint dtype)
                    entries.append((f"{m.text} → {model_id}", m.text))
                elif model_id not in ids_listed:
                    # any other alias picks its catalog id (a real HF id, good for export)
                    entries.append((f"{model_id}  ({m.text})", model_id))
                    ids_listed.add(model_id)
                if len(entries) >= MAX_MATCHES:
                    break
        matches = entries
        option_list = self.query_one(MatchList)
        option_list.clear_options()
        option_list.add_options(
            [
                Option(Text(label, no_wrap=True, overflow="ellipsis"), id=value)
                for label, value in entries
            ]
        )
        if matches:
            option_list.highlighted = 0
        self.set_class(open_list and bool(matches) and not exact, "-open")

    @on(Input.Changed, "#model")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self._refresh_matches(event.value.strip())
        self.post_message(self.Changed(self, event.value.strip()))

    @on(Input.Submitted, "#model")
    def _submitted(self, event: Input.Submitted) -> None:
        option_list = self.query_one(MatchList)
        if self.has_class("-open") and option_list.option_count:
            event.stop()
            option = option_list.get_option_at_index(option_list.highlighted or 0)
            self.set_value(str(option.id))

    @on(Checkbox.Changed, "#online")
    def _online(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self, self.value))

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.set_value(str(event.option.id))
        self.query_one("#model", Input).focus()

    def on_key(self, event: object) -> None:
        from textual.events import Key

        if not isinstance(event, Key):
            return
        model = self.query_one("#model", Input)
        if event.key == "down" and model.has_focus and self.has_class("-open"):
            event.stop()
            event.prevent_default()
            self.query_one(MatchList).focus()
        elif event.key == "escape" and model.has_focus and self.has_class("-open"):
            event.stop()
            self.remove_class("-open")

    def on_descendant_blur(self) -> None:
        self.call_after_refresh(self._close_if_away)

    def _close_if_away(self) -> None:
        focused = self.app.focused
        if focused is None or not (focused is self or self in focused.ancestors):
            self.remove_class("-open")
