"""Logging set up from logging.conf, shared by the command line and the web service."""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path

# LogRecord attributes every record has; anything else was passed with `extra=` and is kept.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# The id of the web request being served ("" outside one): set by the service for each request
# (request_ids.py), a context variable so that each thread of a gthread worker has its own.
request_id: ContextVar[str] = ContextVar("request_id", default="")


def record_request_id(record: logging.LogRecord) -> str:
    """The request id of a log line: the request's being served, or for one of gunicorn's access
    lines (logged once the request is over), the one the service settled in its WSGI environ."""
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        # gunicorn_logger.AccessLogger makes this field for every line, named or not.
        sent = record.args.get("{http_x_request_id}e", "-")
        return "" if sent == "-" else sent
    return request_id.get()


def configure_logging(config_path: Path) -> None:
    """Apply logging.conf; without one, log INFO to stderr and say so."""
    if config_path.is_file():
        # Keep loggers created at import time (Flask's, the package's) working.
        logging.config.fileConfig(config_path, disable_existing_loggers=False)
    else:
        logging.basicConfig(level=logging.INFO)
        logging.getLogger(__name__).warning("%s not found; logging INFO to stderr", config_path)


class TextFormatter(logging.Formatter):
    """logging.conf's format, with %(request_id)s: the request's id, or - outside a request."""

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = record_request_id(record) or "-"
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (Loki, CloudWatch, Elasticsearch...).

    The time is ISO 8601 to the second with the UTC offset as +00:00, as nginx's $time_iso8601
    writes it in its JSON access log (deploy/nginx.conf), so that one parser reads both.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat("T", "seconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if current_id := record_request_id(record):
            entry["request_id"] = current_id
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
