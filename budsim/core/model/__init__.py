"""ModelSpec: the architecture facts the planner needs, derived from a Hugging Face ``config.json``.

Modules: ``spec`` (LayerSpec, ModelSpec and the counting conventions), ``config`` (the config
reader ``_Cfg`` and the model-type tables), ``layers`` (mixer / FFN builders the families share),
``families`` (layer builders per architecture family: ``dense``, ``moe``, ``hybrid``), ``quant``
(the checkpoint's quantisation plan and bytes), ``parse`` (``model_from_config``: config to
ModelSpec) and ``catalog`` (catalog ids, aliases, ``load_model`` from a path, the catalog or the
Hugging Face Hub).
"""

from __future__ import annotations

from .catalog import (
    ALIASES_FILE,
    CATALOG_DIR,
    canonical_model_name,
    list_aliases,
    list_catalog,
    load_model,
)
from .parse import model_from_config
from .quant import _classify_module as _classify_module  # scripts/build_model_catalog.py
from .spec import LayerSpec, ModelSpec

__all__ = [
    "ALIASES_FILE",
    "CATALOG_DIR",
    "LayerSpec",
    "ModelSpec",
    "canonical_model_name",
    "list_aliases",
    "list_catalog",
    "load_model",
    "model_from_config",
]
