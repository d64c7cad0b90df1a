"""A window of recent stored predictions: the rows a drift check compares with the reference.

The newest rows first, from the newest records back: the last `rows` rows, or every row since
a moment, or the last `rows` rows since it; of one model version. Each record's inputs are
read as JSON text and parsed here (CAST(inputs AS TEXT)): the database driver's own decoding
of JSON values costs more per record on a window of a million rows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Text, cast, select

from .records import UTC
from .schema import Prediction

# Records fetched per round trip: server-side on PostgreSQL (stream_results), so that a large
# window is never held in memory twice.
CHUNK = 2000
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Window:
    rows: list[list[Any]]  # newest first, each in the model's feature order
    records: int  # the stored records (requests) they came from
    oldest: datetime | None
    newest: datetime | None


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'30m', '24h', '7d', '2w' ago, or an ISO 8601 moment (UTC unless it names its zone)."""
    now = now or datetime.now(UTC)
    if match := _DURATION.fullmatch(text.strip()):
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"since must be a duration (30m, 24h, 7d, 2w) or an ISO 8601 time, got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def read_window(
    engine: Engine,
    model_version: str | None,
    *,
    rows: int | None = None,
    since: datetime | None = None,
) -> Window:
    """The newest stored rows of `model_version` (every version's if None), as described above.

    Raises SQLAlchemyError while the database is unavailable.
    """
    inputs_text = cast(Prediction.inputs, Text).label("inputs")
    query = select(Prediction.created_at, inputs_text).order_by(Prediction.id.desc())
    if model_version is not None:
        query = query.where(Prediction.model_version == model_version)
    if since is not None:
        if engine.dialect.name == "sqlite":  # which keeps naive UTC times (records.py)
            since = since.astimezone(UTC).replace(tzinfo=None)
        query = query.where(Prediction.created_at >= since)
    window: list[list[Any]] = []
    records = 0
    oldest = newest = None
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
        for created_at, inputs in result:
            # Newest rows first within a record too, so that a cut keeps the latest.
            window.extend(reversed(json.loads(inputs)))
            records += 1
            newest = newest or created_at
            oldest = created_at
            if rows is not None and len(window) >= rows:
                del window[rows:]
                break
        result.close()
    return Window(window, records, _as_utc(oldest), _as_utc(newest))


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
