"""Logging set up from logging.conf, shared by the command line and the web service."""

from __future__ import annotations

import json
import logging
import logging.config
from pathlib import Path

# LogRecord attributes every record has; anything else was passed with `extra=` and is kept.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def configure_logging(config_path: Path) -> None:
    """Apply logging.conf; without one, log INFO to stderr and say so."""
    if config_path.is_file():
        # Keep loggers created at import time (Flask's, the package's) working.
        logging.config.fileConfig(config_path, disable_existing_loggers=False)
    else:
        logging.basicConfig(level=logging.INFO)
        logging.getLogger(__name__).warning("%s not found; logging INFO to stderr", config_path)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (Loki, CloudWatch, Elasticsearch...)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
