"""JSON for everything huey writes to the queue's backend, so that nothing read back executes code.

huey pickles its messages and stored values by default, and unpickling runs whatever the
pickle names: anyone able to write to the backend (a Redis without a password, a shared
volume) could make a worker run code. Every job message and record here is plain data (a job
id, rows of numbers and strings, times), so JSON carries all of it. A message that is not
this JSON (a crafted pickle, say) is refused before anything reads it as code: the worker logs
the refusal and drops it.

huey's own values that JSON lacks are tagged: its task message (a named tuple), and the
datetimes and timedeltas of a scheduled or expiring task.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from huey.registry import Message
from huey.serializer import Serializer

_MESSAGE = "huey.message"
_DATETIME = "datetime"
_TIMEDELTA = "timedelta"


class UnsafeMessageError(ValueError):
    """What the backend returned is not this format's JSON: it is refused, never loaded."""


class JsonSerializer(Serializer):
    """huey's Serializer with JSON in place of pickle (compression stays off: rows are small)."""

    def _serialize(self, data: Any) -> bytes:
        return json.dumps(_encode(data), separators=(",", ":"), allow_nan=False).encode()

    def _deserialize(self, data: bytes) -> Any:
        try:
            return json.loads(data, object_hook=_decode)
        except (UnicodeDecodeError, json.JSONDecodeError):
            # Not JSON, so not written by this service; its bytes are never interpreted.
            raise UnsafeMessageError(
                f"refused a queue entry that is not JSON ({len(data)} bytes, "
                f"starting {bytes(data[:8])!r}): not written by this service"
            ) from None


def _encode(value: Any) -> Any:
    if isinstance(value, Message):
        fields = {name: _encode(item) for name, item in zip(Message._fields, value, strict=True)}
        return {"$type": _MESSAGE, "fields": fields}
    if isinstance(value, datetime.datetime):
        return {"$type": _DATETIME, "value": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"$type": _TIMEDELTA, "value": value.total_seconds()}
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


def _decode(document: dict[str, Any]) -> Any:
    kind = document.get("$type")
    if kind == _MESSAGE:
        fields = document["fields"]
        # huey extends a task's args as a tuple (pipelines), so they go back to one.
        fields["args"] = tuple(fields["args"] or ())
        return Message(**fields)
    if kind == _DATETIME:
        return datetime.datetime.fromisoformat(document["value"])
    if kind == _TIMEDELTA:
        return datetime.timedelta(seconds=document["value"])
    return document
