"""Messages the workers post to the app. Workers never touch widgets; the app's handlers own state.

Every run message carries the `token` of the run it belongs to, so a late message from a cancelled
run never lands on the next one.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from .catalog import Catalog
from .runner import Progress, SearchOutcome
from .views import ResultView


class CatalogLoaded(Message):
    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self.catalog = catalog


class ModelChecked(Message):
    """The asynchronous model check answered for `ref`: facts, or the error to show."""

    def __init__(
        self, ref: str, facts: dict[str, Any] | None, error: str | None, *, online: bool = False
    ) -> None:
        super().__init__()
        self.ref = ref
        self.facts = facts
        self.error = error
        self.online = online

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ModelChecked)


class RunCreated(Message):
    def __init__(self, token: int, run_id: str) -> None:
        super().__init__()
        self.token = token
        self.run_id = run_id


class GenerationDone(Message):
    def __init__(self, token: int, progress: Progress) -> None:
        super().__init__()
        self.token = token
        self.progress = progress


class RunFinished(Message):
    def __init__(self, token: int, outcome: SearchOutcome) -> None:
        super().__init__()
        self.token = token
        self.outcome = outcome


class RunFailed(Message):
    """The search raised: an impossible request (with the closest candidates, if any) or a bug."""

    def __init__(
        self,
        token: int,
        error: str,
        *,
        closest: list[dict[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.error = error
        self.closest = closest or []
        self.run_id = run_id


class HistoryLoaded(Message):
    def __init__(self, runs: list[dict[str, Any]], error: str | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HistoryLoaded)


class RunOpened(Message):
    """A stored run, read back for the results screen."""

    def __init__(self, view: ResultView | None, error: str | None = None) -> None:
        super().__init__()
        self.view = view
        self.error = error


class EditRequested(Message):
    """A stored run's inputs, to load into the setup form (re-run with edits)."""

    def __init__(self, inputs: dict[str, Any] | None, error: str | None = None) -> None:
        super().__init__()
        self.inputs = inputs
        self.error = error


class RunsCompared(Message):
    def __init__(self, comparison: dict[str, Any] | None, error: str | None = None) -> None:
        super().__init__()
        self.comparison = comparison
        self.error = error


class RunDeleted(Message):
    def __init__(self, run_id: str, error: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.error = error


class MemoryPlanned(Message):
    """Memory breakdown of one configuration (results screen)."""

    def __init__(self, key: str, plan: dict[str, Any] | None, error: str | None = None) -> None:
        super().__init__()
        self.key = key
        self.plan = plan
        self.error = error


class ExportReady(Message):
    """Export text of one configuration; `kind` says what it is (launch script or JSON fallback)."""

    def __init__(self, title: str, text: str, kind: str, error: str | None = None) -> None:
        super().__init__()
        self.title = title
        self.text = text
        self.kind = kind
        self.error = error
