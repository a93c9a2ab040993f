"""Finding a model by name and loading its ModelSpec (``load_model``).

Where a model comes from (``load_model``):

1. a local directory holding ``config.json`` (and optionally ``hf_quant_config.json``) or a path to a
   ``config.json``;
2. the bundled offline catalog (``budsim/core/catalog/models/<org>__<name>.json``), by HF id
   (case-insensitive), by the short name after the slash when unambiguous, or by an alias
   (``budsim/core/catalog/models/aliases.json``, e.g. ``Llama-3-8B`` or
   ``meta-llama/Llama-3.1-8B-Instruct``);
3. the Hugging Face cache, or the Hub itself when ``allow_network`` is set (the CLI's
   ``--allow-download``, the TUI's "HF Hub" switch): ``transformers`` ``AutoConfig`` (imported
   lazily), falling back to the raw ``config.json``. A Hub that cannot serve the config (no network,
   an unknown or gated repo) is a one-line error.

``ModelSpec.name`` is the reference the model was loaded by and ``source`` says where the
config came from (``catalog:<id>``, a path or ``hf:<id>``). ``canonical_model_name`` gives the
one name a model goes by in saved runs.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import dtypes
from ..errors import BudsimError
from .parse import model_from_config
from .quant import _SIXTEEN_BIT
from .spec import ModelSpec

# the catalog folder is budsim/core/catalog/ (beside hardware.toml), one level above this package
CATALOG_DIR = Path(__file__).resolve().parents[1] / "catalog" / "models"
ALIASES_FILE = CATALOG_DIR / "aliases.json"


# --------------------------------------------------------------------------------------------------
# Catalog, aliases and loading
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _catalog_index() -> dict[str, tuple[str, Path]]:
    """lower-case id -> (id, file)."""
    index: dict[str, tuple[str, Path]] = {}
    if CATALOG_DIR.is_dir():
        for path in sorted(CATALOG_DIR.glob("*__*.json")):
            org, _, short = path.stem.partition("__")
            model_id = f"{org}/{short}"
            index[model_id.lower()] = (model_id, path)
    return index


@functools.lru_cache(maxsize=1)
def _alias_table() -> tuple[dict[str, str], dict[str, str], frozenset[str]]:
    """(lower-case alias -> catalog id, alias -> checkpoint dtype override, ambiguous names)."""
    if not ALIASES_FILE.is_file():
        return {}, {}, frozenset()
    data = json.loads(ALIASES_FILE.read_text())
    aliases = {str(k).lower(): str(v) for k, v in (data.get("aliases") or {}).items()}
    dtype_over = {str(k).lower(): str(v) for k, v in (data.get("dtype") or {}).items()}
    ambiguous = frozenset(str(k).lower() for k in (data.get("ambiguous") or []))
    return aliases, dtype_over, ambiguous


def list_catalog() -> list[str]:
    """Catalog ids (HF ``org/name``), sorted."""
    return sorted(model_id for model_id, _ in _catalog_index().values())


def list_aliases() -> dict[str, str]:
    """Every alias the catalog accepts, alias -> catalog id."""
    return dict(_alias_table()[0])


_STRIP_SUFFIXES = (
    "-instruct",
    "-chat",
    "-hf",
    "-it",
    "-base",
    "-thinking",
    "-2507",
    "-0905",
    "-0324",
)


def _norm_name(name: str) -> str:
    s = name.strip().lower().replace("_", "-").replace(" ", "-")
    s = s.rsplit("/", 1)[-1]
    if s.startswith("meta-llama-"):
        s = s[len("meta-") :]
    changed = True
    while changed:
        changed = False
        for suffix in _STRIP_SUFFIXES:
            if s.endswith(suffix):
                s = s[: -len(suffix)]
                changed = True
    return s


def _resolve(name: str) -> tuple[str, str | None] | None:
    key = name.strip().lower()
    if not key:
        return None
    index = _catalog_index()
    aliases, dtype_over, ambiguous = _alias_table()
    if key in ambiguous or " ".join(key.split()) in ambiguous:
        return None  # the benchmark data names two different models this way
    if key in index:
        return index[key][0], None
    if key in aliases and aliases[key].lower() in index:
        return index[aliases[key].lower()][0], dtype_over.get(key)
    spaced = " ".join(key.split())
    if spaced in aliases and aliases[spaced].lower() in index:
        return index[aliases[spaced].lower()][0], dtype_over.get(spaced)
    short = key.rsplit("/", 1)[-1]
    hits = {model_id for k, (model_id, _) in index.items() if k.rsplit("/", 1)[-1] == short}
    if len(hits) == 1:
        return hits.pop(), None
    alias_hits = {
        (v, dtype_over.get(k)) for k, v in aliases.items() if k.rsplit("/", 1)[-1] == short
    }
    if len(alias_hits) == 1:
        target, over = alias_hits.pop()
        if target.lower() in index:
            return index[target.lower()][0], over
    norm = _norm_name(key)
    if not norm:
        return None
    hits = {model_id for k, (model_id, _) in index.items() if _norm_name(k) == norm}
    if len(hits) == 1:
        return hits.pop(), None
    if not hits:
        alias_hits = {(v, dtype_over.get(k)) for k, v in aliases.items() if _norm_name(k) == norm}
        if len(alias_hits) == 1:
            target, over = alias_hits.pop()
            if target.lower() in index:
                return index[target.lower()][0], over
    return None


def canonical_model_name(ref: str) -> str:
    """The one name a model goes by in saved runs and run listings: the catalog id for any name
    the catalog resolves to it (an alias, the short name, another spelling), so
    ``Llama-3.1-70B``, ``Meta-Llama-3.1-70B`` and ``meta-llama/Llama-3.1-70B`` are one model.
    A local config path, a name the catalog does not know (a Hub id) and an alias that names a
    pre-quantised checkpoint (its weight format differs from the catalog id's) stay as given.
    Offline and cheap: no config is read."""
    name = ref.strip()
    if not name or _looks_like_path(name):
        return name
    return _catalog_name(name)


@functools.lru_cache(maxsize=1024)
def _catalog_name(name: str) -> str:
    found = _resolve(name)
    if found is None or found[1] is not None:
        return name
    return found[0]


def _looks_like_path(ref: str) -> bool:
    """Whether `load_model` takes `ref` for a local path rather than a model name."""
    return (
        ref.startswith((".", "/", "~")) or ref.endswith(".json") or Path(ref).expanduser().exists()
    )


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BudsimError(f"cannot read {what} {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BudsimError(
            f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(data, dict):
        raise BudsimError(f"{what} {path} is not a JSON object")
    return data


def _from_path(path: Path, name: str) -> ModelSpec:
    cfg_path = path / "config.json" if path.is_dir() else path
    if not cfg_path.is_file():
        raise BudsimError(f"no config.json in {path}")
    config = _read_json(cfg_path, "model config")
    hfq_path = cfg_path.parent / "hf_quant_config.json"
    if hfq_path.is_file() and "hf_quant_config" not in config:
        config["hf_quant_config"] = _read_json(hfq_path, "quantisation config")
    spec = model_from_config(config, name)
    return replace(spec, source=str(cfg_path))


def _apply_dtype_override(spec: ModelSpec, dtype: str) -> ModelSpec:
    """An alias naming a pre-quantised checkpoint of a catalogued architecture (e.g. ``-FP8``)."""
    if dtype == spec.checkpoint_dtype:
        return spec
    per = dtypes.weight_bytes(dtype)
    return replace(
        spec,
        checkpoint_dtype=dtype,
        quant_method=spec.quant_method or ("modelopt" if dtype == "nvfp4" else dtype),
        checkpoint_bytes=spec.body_params * per + spec.embedding_params * _SIXTEEN_BIT,
    )


def _from_hub(ref: str, trust_remote_code: bool, allow_network: bool) -> ModelSpec | None:
    """The model from the Hugging Face cache, else (with `allow_network`) from the Hub; None when
    the cache lacks it and the network is not allowed."""
    cached = _from_hub_files(ref, trust_remote_code, local_only=True)
    if cached is not None or not allow_network:
        return cached
    _check_on_hub(ref)  # one clear line when the Hub cannot give the config, before any retries
    return _from_hub_files(ref, trust_remote_code, local_only=False)


def _check_on_hub(ref: str) -> None:
    """Raise a one-line BudsimError unless the Hub can serve `ref`'s config.json now: no network,
    offline mode, an unknown, gated or private repo, or a repo without a config."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            HFValidationError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise BudsimError(
            f"cannot download {ref!r}: huggingface_hub is not installed (pip install "
            "huggingface_hub), or pass a config.json path"
        ) from None
    _quiet_hub_logs()
    where = f"the config of {ref!r} from the Hugging Face Hub"
    try:
        get_hf_file_metadata(hf_hub_url(ref, "config.json"), timeout=10)
    except HFValidationError:
        raise BudsimError(f"{ref!r} is not a Hugging Face repo id (org/name)") from None
    except OfflineModeIsEnabled:
        raise BudsimError(f"cannot download {where}: HF_HUB_OFFLINE is set") from None
    except GatedRepoError:
        raise BudsimError(
            f"cannot download {where}: the repo is gated; accept its terms on huggingface.co "
            "and log in (`hf auth login`), or pass a config.json path"
        ) from None
    except RepositoryNotFoundError:
        raise BudsimError(
            f"{ref!r} is not a model on the Hugging Face Hub (or it is private: log in with "
            "`hf auth login`)"
        ) from None
    except EntryNotFoundError:
        raise BudsimError(f"{ref!r} on the Hugging Face Hub has no config.json") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        raise BudsimError(f"cannot download {where}: the Hub answered {status}") from None
    except Exception as exc:  # noqa: BLE001 - the transport's own errors: no network, DNS, timeout
        reason = str(exc).strip() or type(exc).__name__
        raise BudsimError(
            f"cannot download {where}: no connection ({reason}); check the network or pass a "
            "config.json path"
        ) from None


def _quiet_hub_logs() -> None:
    """huggingface_hub logs every retry as a warning on stderr; budsim reports one line."""
    try:
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - checked by the caller
        pass


def _from_hub_files(ref: str, trust_remote_code: bool, *, local_only: bool) -> ModelSpec | None:
    config: dict[str, Any] | None = None
    # transformers prints a "PyTorch was not found" advisory on import; budsim only needs configs
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers import AutoConfig  # heavy: imported lazily

        cfg = AutoConfig.from_pretrained(
            ref, trust_remote_code=trust_remote_code, local_files_only=local_only
        )
        config = cfg.to_dict()
    except Exception:  # noqa: BLE001 - any failure falls back to the raw file
        config = None
    hfq: dict[str, Any] | None = None
    try:
        from huggingface_hub import hf_hub_download

        if config is None:
            path = hf_hub_download(ref, "config.json", local_files_only=local_only)
            config = _read_json(Path(path), "model config")
        try:
            qpath = hf_hub_download(ref, "hf_quant_config.json", local_files_only=local_only)
            hfq = _read_json(Path(qpath), "quantisation config")
        except Exception:  # noqa: BLE001 - optional file
            hfq = None
    except BudsimError:
        raise
    except Exception:  # noqa: BLE001
        pass
    if config is None:
        return None
    if hfq is not None:
        config["hf_quant_config"] = hfq
    return replace(model_from_config(config, ref), source=f"hf:{ref}")


@functools.lru_cache(maxsize=256)
def load_model(
    ref: str, *, trust_remote_code: bool = False, allow_network: bool = False
) -> ModelSpec:
    """Load a ModelSpec from a path, the bundled catalog, or (if allowed / cached) the HF Hub."""
    ref = ref.strip()
    if not ref:
        raise BudsimError("empty model name; pass an HF id, a catalog alias or a config path")
    path = Path(ref).expanduser()
    looks_like_path = _looks_like_path(ref)
    if looks_like_path and path.exists():
        return _from_path(path, ref)
    if looks_like_path and (ref.endswith(".json") or ref.startswith((".", "/", "~"))):
        raise BudsimError(f"model path {ref} does not exist")
    found = _resolve(ref)
    if found is not None:
        model_id, dtype_override = found
        file = _catalog_index()[model_id.lower()][1]
        spec = model_from_config(_read_json(file, "catalog model"), ref)
        spec = replace(spec, source=f"catalog:{model_id}")
        if dtype_override:
            spec = _apply_dtype_override(spec, dtype_override)
        return spec
    if "/" in ref:
        hub = _from_hub(ref, trust_remote_code, allow_network)
        if hub is not None:
            return hub
    close = _suggestions(ref)
    did_you_mean = f"; did you mean {', '.join(close)}?" if close else ""
    # Only an org/name id is looked up on the Hub. The CLI's predict, optimize and analyze take
    # --allow-download; the TUI's model field has the same switch ("HF Hub").
    hint = (
        ", or allow downloads (--allow-download; in the TUI the HF Hub switch)"
        if "/" in ref and not allow_network
        else ""
    )
    raise BudsimError(
        f"unknown model {ref!r}: not a local path, not in the bundled catalog and not in the Hugging"
        f" Face cache; pass a config.json path{hint}{did_you_mean}"
    )


def _suggestions(ref: str, limit: int = 3) -> list[str]:
    import difflib

    ids = list_catalog()
    norm = _norm_name(ref)
    exact = [i for i in ids if _norm_name(i) == norm]
    if exact:
        return exact[:limit]
    by_short = {i.rsplit("/", 1)[-1].lower(): i for i in ids}
    close = difflib.get_close_matches(ref.rsplit("/", 1)[-1].lower(), list(by_short), limit, 0.6)
    return [by_short[c] for c in close]
