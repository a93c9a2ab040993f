"""What the setup screen offers: models, hardware and engines, loaded off the UI thread.

`load_catalog()` runs in a worker after the first paint. It also imports the core modules the form and
the run need later (search request types, the predictor), so that those imports never stall the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from budsim.core.dtypes import WEIGHT_DTYPES

if TYPE_CHECKING:
    from budsim.core.engines import EngineProfile
    from budsim.core.hardware import Device

# the formats the form can offer, in the catalog's order; a kind shows those its listed engines
# run (the GGUF formats only where llama.cpp is listed)
ALL_QUANTS: tuple[str, ...] = ("auto", *WEIGHT_DTYPES)


@dataclass(frozen=True)
class Catalog:
    models: tuple[str, ...]
    aliases: Mapping[str, str]  # alias (lowercase) -> catalog id
    devices: Mapping[str, Device]
    engines: tuple[EngineProfile, ...]
    errors: tuple[str, ...] = field(default_factory=tuple)  # problems met while loading

    @property
    def model_choices(self) -> list[tuple[str, str]]:
        """(text to search, catalog id): every id, then every alias pointing at its id."""
        out = [(m, m) for m in self.models]
        lowered = {m.lower() for m in self.models}
        out += sorted((a, i) for a, i in self.aliases.items() if a.lower() not in lowered)
        return out

    def engines_for(self, kind: str) -> list[EngineProfile]:
        return [e for e in self.engines if e.kind == kind]

    def engine_ids_for(self, kind: str) -> list[str]:
        out: list[str] = []
        for e in self.engines_for(kind):
            if e.id not in out:
                out.append(e.id)
        return out

    def quantizations_for(self, kind: str) -> list[str]:
        """Weight formats some engine runs on this hardware kind ("auto" = the checkpoint's)."""
        runs = {q for e in self.engines_for(kind) for q in e.quantizations}
        return [q for q in ALL_QUANTS if q == "auto" or q in runs]


def load_catalog() -> Catalog:
    """Read the bundled catalogs (and the user's hardware.toml). Never raises for a bad file."""
    errors: list[str] = []
    from budsim.core.errors import BudsimError

    models: tuple[str, ...] = ()
    aliases: dict[str, str] = {}
    devices: dict[str, Any] = {}
    engines: tuple[Any, ...] = ()
    try:
        from budsim.core.model import list_aliases, list_catalog

        models = tuple(list_catalog())
        aliases = dict(list_aliases())
    except (BudsimError, OSError, ValueError) as exc:
        errors.append(f"model catalog: {exc}")
    try:
        from budsim.core.hardware import load_hardware

        devices = dict(load_hardware())
    except (BudsimError, OSError, ValueError) as exc:
        errors.append(f"hardware catalog: {exc}")
        try:  # the user file is the usual culprit: fall back to the bundled table
            from budsim.core.hardware import bundled_hardware_path

            devices = dict(load_hardware(bundled_hardware_path()))
        except Exception:  # noqa: BLE001
            devices = {}
    try:
        from budsim.core.engines import all_profiles
        from budsim.core.search.space import searched_by_default

        # the engines a search weighs unless named (ticked, the others would be ranked against
        # calibrated predictions)
        engines = tuple(p for p in all_profiles() if searched_by_default(p))
    except (BudsimError, ImportError) as exc:
        errors.append(f"engine profiles: {exc}")
    preload()
    return Catalog(models, aliases, devices, engines, tuple(errors))


def preload() -> None:
    """Import what the form and the run use later, here in the worker rather than on the UI thread."""
    import importlib

    for name in (
        "budsim.core.deployment",
        "budsim.core.search.optimize",
        "budsim.core.search.scoring",
        "budsim.core.store",
    ):
        try:
            importlib.import_module(name)
        except ImportError:  # written in parallel; the form reports what is missing
            pass
