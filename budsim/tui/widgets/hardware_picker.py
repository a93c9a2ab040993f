"""Hardware: device id, device and node counts, and the chosen device's specs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select, Static

from ..views import fmt
from .fields import Field, FormGrid


def specs_text(device: Any) -> Text:
    tflops = dict(getattr(device, "tflops", {}) or {})
    text = Text()
    text.append(str(device.name), style="bold")
    text.append(f"  {device.kind} · {fmt(float(device.memory_gb))} GB · ")
    text.append(f"{fmt(float(device.memory_bw_gbs))} GB/s\n")
    text.append("TFLOPS ", style="dim")
    text.append(" · ".join(f"{k} {fmt(float(v))}" for k, v in tflops.items()) or "-")
    text.append("\n")
    text.append(f"{device.devices_per_node} per node")
    text.append(f" · scale-up {fmt(float(device.scaleup_bw_gbs))} GB/s")
    text.append(f" · ${float(device.price_per_hour):.2f}/h per device")
    return text


class HardwarePicker(Vertical):
    DEFAULT_CSS = """
    HardwarePicker { height: auto; }
    HardwarePicker #hw-specs { height: auto; padding: 0 1; }
    """

    def __init__(self, *, hardware: str, devices: str, nodes: str) -> None:
        super().__init__()
        self._init_hardware = hardware
        self._init_devices = devices
        self._init_nodes = nodes

    def compose(self) -> ComposeResult:
        with FormGrid(classes="form-grid hw-grid"):
            with Horizontal(id="field-hardware", classes="choice-cell"):
                yield Label("device")
                yield Select(
                    [(self._init_hardware, self._init_hardware)] if self._init_hardware else [],
                    value=self._init_hardware if self._init_hardware else Select.BLANK,
                    allow_blank=not self._init_hardware,
                    compact=True,
                    id="hardware",
                )
            yield Field("count", field_id="devices", value=self._init_devices)
            yield Field(
                "nodes",
                field_id="nodes",
                value=self._init_nodes,
                placeholder="auto",
                tooltip="Nodes the devices sit in (empty = as few full nodes as needed)",
            )
        yield Static("", id="hw-specs")

    def set_devices(self, devices: Mapping[str, Any], current: str) -> None:
        select: Select[str] = self.query_one("#hardware", Select)
        options = [(d.id, d.id) for d in devices.values()]
        value = current if current in devices else (options[0][1] if options else None)
        with select.prevent(Select.Changed):
            select.set_options(options)
            if value is not None:
                select.value = value
        self.show_specs(devices.get(value) if value is not None else None)

    def show_specs(self, device: Any | None) -> None:
        specs = self.query_one("#hw-specs", Static)
        specs.update(specs_text(device) if device is not None else Text("unknown device"))
