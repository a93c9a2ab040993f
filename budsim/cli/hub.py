"""`--allow-download`: the switch that lets predict, optimize and analyze fetch a model's config
from the Hugging Face Hub (the TUI's model field has the same switch, "HF Hub").

Everything else reads models offline; fetching once up front puts the config in the Hugging Face
cache, where those offline reads (in worker processes too) find it.
"""

from __future__ import annotations

import typer

HELP = (
    "Download the model's config.json from the Hugging Face Hub when it is neither in the "
    "catalog nor in the local Hugging Face cache (needs network)."
)


def allow_download_option() -> bool:
    return typer.Option(False, "--allow-download", help=HELP)  # type: ignore[no-any-return]


def fetch_config(model: str | None, *, trust_remote_code: bool = False) -> None:
    """Put `model`'s config where the offline loaders find it; a one-line BudsimError when the
    Hub cannot serve it (no network, an unknown or gated repo). Catalog ids and local paths
    need nothing."""
    if not model or not str(model).strip():
        return
    from budsim.core.model import load_model

    load_model(str(model), trust_remote_code=trust_remote_code, allow_network=True)
