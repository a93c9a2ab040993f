"""Where the shipped artefacts live: ``pretrained/`` at the repository root (the calibration
models, the kernel tables, the front-end constants), or the folder named by
``$BUDSIM_PRETRAINED_DIR``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

ENV_PRETRAINED = "BUDSIM_PRETRAINED_DIR"


def pretrained_dir() -> Path:
    return Path(_pretrained_dir(os.environ.get(ENV_PRETRAINED)))


@lru_cache(maxsize=8)
def _pretrained_dir(env: str | None) -> str:
    if env:
        return str(Path(env).expanduser())
    return str(Path(__file__).resolve().parents[2] / "pretrained")
