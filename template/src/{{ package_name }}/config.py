"""Settings shared by the command line and the web service, read from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    logging_config: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            model_dir=Path(environ.get("MODEL_DIR", "models")),
            logging_config=Path(environ.get("LOGGING_CONFIG", "deploy/logging.conf")),
        )
