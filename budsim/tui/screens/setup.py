"""Setup: model, hardware, engines, workload, SLOs, target and GA settings; validated as you type."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import (
    Button,
    Checkbox,
    Footer,
    Input,
    Select,
    SelectionList,
    Static,
)

from ..form import FIELD_ORDER, FormCheck, SetupValues, check_form
from ..widgets.engine_select import EngineQuantSelect
from ..widgets.ga_settings import GASettingsForm
from ..widgets.hardware_picker import HardwarePicker
from ..widgets.model_facts import ModelFacts
from ..widgets.model_picker import ModelPicker
from ..widgets.title_bar import TitleBar
from ..widgets.workload_form import WorkloadForm
from .base import BudsimScreen

MODEL_CHECK_DELAY = 0.25  # seconds of no typing before the model is looked up
GA_FIELDS = ("population", "generations", "seed", "patience", "crossover", "mutation")
SELECT_FIELDS = ("hardware", "scenario", "percentile", "target")
# form keys that are no one-line input: the model picker, the engine and format check lists, and
# "request" (the errors of the request as a whole)
_NOT_INPUTS = ("model", "engines", "quantizations", "request")
# the one-line inputs, in the form's order: every key but the selects, the advanced (GA) settings
# and _NOT_INPUTS
TEXT_FIELDS = tuple(
    key for key in FIELD_ORDER if key not in (*SELECT_FIELDS, *GA_FIELDS, *_NOT_INPUTS)
)


class FormScroll(VerticalScroll, can_focus=False):
    """Scrolls to whichever field has focus; never takes focus itself (a focus change on a
    container restyles everything inside it)."""


class SetupScreen(BudsimScreen):
    """The form. Ctrl+R runs once every field is valid; the bar at the bottom says why not."""

    TITLE = "budsim"
    SUB_TITLE = "setup"
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", priority=True),
        Binding("f3", "toggle_advanced", "Advanced"),
        Binding("ctrl+n", "focus_model", "Model", show=False),
    ]

    def __init__(self, values: SetupValues | None = None) -> None:
        super().__init__()
        self.values = values or SetupValues()
        self.check = FormCheck(None, {"hardware": "loading the catalog…"})
        self._model_timer: Timer | None = None
        self._kind: str | None = None
        self._mounted = False  # Changed events fired while the fields mount are not edits

    # ------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        v = self.values
        yield TitleBar("setup")
        with FormScroll(id="setup-form"):
            yield Static("Model", classes="section")
            yield ModelPicker(v.model, id="picker")
            yield ModelFacts("", id="facts")
            yield Static("Hardware", classes="section")
            yield HardwarePicker(hardware=v.hardware, devices=v.devices, nodes=v.nodes)
            yield Static("Engines and weight formats", classes="section")
            yield EngineQuantSelect(id="engine-quant")
            yield Static("Workload, SLOs and target", classes="section")
            yield WorkloadForm(v)
            yield GASettingsForm(v)
        with Horizontal(id="run-bar"):
            yield Button("Run ▶", id="run", variant="primary", compact=True, disabled=True)
            yield Static("", id="reason")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.call_after_refresh(self._mark_mounted)
        catalog = self.budsim.catalog
        if catalog is not None:
            self.catalog_ready()
        else:
            self.query_one(ModelFacts).show_pending("loading the catalog…")
        self.query_one("#model", Input).focus()
        self.revalidate()

    # ------------------------------------------------------------------------------ data in

    def catalog_ready(self) -> None:
        """Fill the pickers from the catalog the app loaded."""
        catalog = self.budsim.catalog
        if catalog is None:
            return
        self.query_one(ModelPicker).set_choices(catalog.model_choices)
        self.query_one(HardwarePicker).set_devices(catalog.devices, self.values.hardware)
        self._refresh_engines(force=True)
        self._model_changed(self.query_one(ModelPicker).value, immediate=True)
        self.revalidate()

    def load_values(self, values: SetupValues) -> None:
        """Put a run's settings back into the form (history: re-run with edits)."""
        self.values = values
        advanced = self.query_one(GASettingsForm)
        advanced.values = values
        keys = TEXT_FIELDS + (GA_FIELDS if advanced.has_fields else ())
        for key in keys:
            field = self.query_one(f"#{key}", Input)
            with field.prevent(Input.Changed):
                field.value = str(getattr(values, key))
        for key in SELECT_FIELDS:
            select: Select[str] = self.query_one(f"#{key}", Select)
            value = getattr(values, key)
            with select.prevent(Select.Changed):
                try:
                    select.value = value
                except Exception:  # noqa: BLE001 - a device missing from this catalog
                    self.notify(f"{key} {value!r} is not available here", severity="warning")
        if advanced.has_fields:
            for key in ("exhaustive", "disagg"):
                box = self.query_one(f"#{key}", Checkbox)
                with box.prevent(Checkbox.Changed):
                    box.value = getattr(values, key)
        self.query_one(ModelPicker).set_value(values.model)
        self._refresh_engines(force=True)
        catalog = self.budsim.catalog
        if catalog is not None:
            self.query_one(HardwarePicker).show_specs(catalog.devices.get(values.hardware))
        self.revalidate()

    def model_checked(self, ref: str) -> None:
        """The app has an answer for `ref` (facts or an error)."""
        if ref == self.query_one(ModelPicker).value:
            self._show_model(ref)
            self.revalidate()

    # ------------------------------------------------------------------------------ reading

    def read_values(self) -> SetupValues:
        def text(key: str) -> str:
            return self.query_one(f"#{key}", Input).value

        def choice(key: str) -> str:
            value = self.query_one(f"#{key}", Select).value
            return "" if value is Select.BLANK else str(value)

        engines, quants = self.query_one(EngineQuantSelect).selected()
        picker = self.query_one(ModelPicker)
        old = self.values
        if self.query_one(GASettingsForm).has_fields:
            ga = {key: text(key) for key in GA_FIELDS}
            exhaustive = self.query_one("#exhaustive", Checkbox).value
            disagg = self.query_one("#disagg", Checkbox).value
        else:  # the advanced section was never opened: its values are the form's
            ga = {key: getattr(old, key) for key in GA_FIELDS}
            exhaustive, disagg = old.exhaustive, old.disagg
        return SetupValues(
            model=picker.value,
            hardware=choice("hardware"),
            devices=text("devices"),
            nodes=text("nodes"),
            engines=engines,
            quantizations=quants,
            input_len=text("input_len"),
            output_len=text("output_len"),
            length_mix=text("length_mix"),
            scenario=choice("scenario"),
            load=text("load"),
            burstiness=text("burstiness"),
            num_requests=text("num_requests"),
            shared_prefix_len=text("shared_prefix_len"),
            cached_share=text("cached_share"),
            ttft_ms=text("ttft_ms"),
            tpot_ms=text("tpot_ms"),
            percentile=choice("percentile"),
            min_tok_s=text("min_tok_s"),
            target=choice("target"),
            speculative=text("speculative"),
            exhaustive=exhaustive,
            disagg=disagg,
            allow_network=picker.online,
            workload_extra=old.workload_extra,
            **ga,
        )

    # ------------------------------------------------------------------------------ validation

    def revalidate(self) -> FormCheck:
        app = self.budsim
        values = self.read_values()
        self.values = values
        ref = values.model
        known = app.model_cache.get((ref, values.allow_network)) if ref else None
        check = check_form(
            values,
            app.catalog,
            model_error=known[1] if known else None,
            model_pending=bool(ref) and known is None,
        )
        self.check = check
        for key in FIELD_ORDER:
            try:
                widget = self.query_one(f"#{key}")
            except Exception:  # noqa: BLE001 - not every error key is a widget
                continue
            widget.set_class(key in check.errors and key != "model", "-invalid")
        self.query_one("#model", Input).set_class(
            "model" in check.errors and bool(ref) and known is not None, "-invalid"
        )
        button = self.query_one("#run", Button)
        button.disabled = not check.ok
        reason = self.query_one("#reason", Static)
        # one line, fixed height: no layout pass needed
        if check.ok:
            reason.update("ready: Ctrl+R or Enter on Run starts the search", layout=False)
            reason.remove_class("-error")
        else:
            reason.update(f"can't run yet: {check.reason}", layout=False)
            reason.add_class("-error")
        return check

    def _mark_mounted(self) -> None:
        self._mounted = True

    @on(Input.Changed)
    @on(Select.Changed)
    @on(SelectionList.SelectedChanged)
    @on(Checkbox.Changed)
    def _changed(self, event: Any) -> None:
        if not self._mounted:
            return  # on_mount validates once; these are the fields announcing their values
        widget_id = getattr(event.control, "id", None)
        if widget_id == "hardware":
            self._hardware_changed()
        self.revalidate()

    @on(ModelPicker.Changed)
    def _picker_changed(self, event: ModelPicker.Changed) -> None:
        self._model_changed(event.value)

    def _hardware_changed(self) -> None:
        catalog = self.budsim.catalog
        if catalog is None:
            return
        value = self.query_one("#hardware", Select).value
        device = catalog.devices.get(str(value))
        self.query_one(HardwarePicker).show_specs(device)
        self._refresh_engines()

    def _refresh_engines(self, *, force: bool = False) -> None:
        catalog = self.budsim.catalog
        if catalog is None:
            return
        value = self.query_one("#hardware", Select).value
        device = catalog.devices.get(str(value))
        kind = device.kind if device is not None else None
        if kind == self._kind and not force:
            return
        self._kind = kind
        if kind is None:
            self.query_one(EngineQuantSelect).set_options(
                [], [], selected_engines=None, selected_quants=None
            )
            return
        names: dict[str, str] = {}
        for profile in catalog.engines_for(kind):
            names.setdefault(profile.id, profile.name)
        v = self.values
        select = self.query_one(EngineQuantSelect)
        all_engines, all_quants = select.everything_ticked()
        select.set_options(
            list(names.items()),
            catalog.quantizations_for(kind),
            selected_engines=None if all_engines else v.engines,
            selected_quants=None if all_quants else v.quantizations,
        )

    def _model_changed(self, ref: str, *, immediate: bool = False) -> None:
        if self._model_timer is not None:
            self._model_timer.stop()
            self._model_timer = None
        online = self.query_one(ModelPicker).online
        if not ref:
            self.query_one(ModelFacts).show_pending(
                "pick a model: type to search the catalog, or give a path to a config.json"
            )
        elif (ref, online) in self.budsim.model_cache:
            self._show_model(ref)
        else:
            self.query_one(ModelFacts).show_pending("looking the model up…")
            if immediate:
                self.budsim.check_model(ref, online)
            else:
                self._model_timer = self.set_timer(
                    MODEL_CHECK_DELAY, lambda: self.budsim.check_model(ref, online)
                )
        self.revalidate()

    def _show_model(self, ref: str) -> None:
        online = self.query_one(ModelPicker).online
        facts, error = self.budsim.model_cache.get((ref, online), (None, None))
        panel = self.query_one(ModelFacts)
        if facts is not None:
            panel.show_facts(facts)
        elif error:
            panel.show_error(error)

    # ------------------------------------------------------------------------------ actions

    @on(Button.Pressed, "#run")
    def _run_pressed(self) -> None:
        self.action_run()

    def action_run(self) -> None:
        check = self.revalidate()
        if not check.ok or check.request is None:
            self.notify(check.reason or "the form is not complete", severity="warning")
            return
        self.budsim.start_run(check.request)

    async def action_toggle_advanced(self) -> None:
        advanced = self.query_one(GASettingsForm)
        advanced.collapsed = not advanced.collapsed
        if not advanced.collapsed:
            await advanced.ensure_fields()
            if not self.budsim.cursor_blink:
                for field in advanced.query(Input):
                    field.cursor_blink = False
            self.query_one("#population", Input).focus()

    def action_focus_model(self) -> None:
        self.query_one("#model", Input).focus()
