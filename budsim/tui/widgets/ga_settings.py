"""GA settings, under a collapsed "advanced" section.

The fields are mounted the first time the section opens: most people never open it, and every
widget mounted before the first frame costs start-up time. Until then the form's values stand in.
"""

from __future__ import annotations

from typing import Any

from textual.containers import Horizontal
from textual.widgets import Collapsible

from ..form import SetupValues
from .fields import Field, FormGrid
from .toggle import Toggle


class GASettingsForm(Collapsible):
    DEFAULT_CSS = """
    GASettingsForm { height: auto; padding: 0; border: none; margin-top: 1; }
    GASettingsForm Contents { padding: 0; }
    GASettingsForm Toggle { height: 1; border: none; padding: 0; width: auto; }
    """

    def __init__(self, values: SetupValues) -> None:
        super().__init__(title="Advanced: search settings", collapsed=True, id="advanced")
        self.values = values
        self._mounting: Any = None  # the mount in flight (expand event and F3 can both ask)

    @property
    def has_fields(self) -> bool:
        return bool(self.query("#population"))

    async def ensure_fields(self) -> None:
        """Mount the fields (once), filled from `self.values`."""
        if self._mounting is None:
            self._mounting = self._mount_fields()
        await self._mounting

    def _mount_fields(self) -> Any:
        v = self.values
        grid = FormGrid(
            Field("population", field_id="population", value=v.population),
            Field("generations", field_id="generations", value=v.generations),
            Field("seed", field_id="seed", value=v.seed, placeholder="random"),
            Field(
                "patience",
                field_id="patience",
                value=v.patience,
                tooltip="Stop after N generations without improvement (0 = never)",
            ),
            Field("crossover", field_id="crossover", value=v.crossover),
            Field("mutation", field_id="mutation", value=v.mutation),
            Horizontal(
                Toggle("exhaustive search", v.exhaustive, id="exhaustive", compact=True),
                classes="check-cell",
            ),
            Horizontal(
                Toggle("compare xPyD", v.disagg, id="disagg", compact=True),
                classes="check-cell",
            ),
            classes="form-grid",
        )
        return self.query_one(Collapsible.Contents).mount(grid)

    async def _on_collapsible_expanded(self, event: Collapsible.Expanded) -> None:
        await self.ensure_fields()
