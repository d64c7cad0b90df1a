"""The web service's side: queue a job, read its record back."""

from __future__ import annotations

import time
import uuid
from contextlib import suppress
from typing import Any

from . import backend, records
from .worker import run_job


def submit_predictions(rows: list[list[Any]], feature_names: list[str]) -> dict[str, Any]:
    """Queue a batch prediction of `rows`, in `feature_names` order; the new job's record."""
    return _submit("predict", {"rows": rows, "feature_names": feature_names})


def submit_training() -> dict[str, Any]:
    """Queue a retraining on the training data; the new job's record."""
    return _submit("train", {})


def get_job(job_id: str) -> dict[str, Any] | None:
    """The job's record, or None if the id is unknown or its result has expired."""
    with records.reachable():
        record = records.load(job_id)
        if record is not None and record.get("expires_at", float("inf")) <= time.time():
            backend.huey.delete(records.RECORD + job_id)
            return None
    return record


def result_ttl() -> int:
    """Seconds a finished job's result is kept (JOB_RESULT_TTL)."""
    return backend.settings.result_ttl


def _submit(kind: str, job_input: dict[str, Any]) -> dict[str, Any]:
    job_id = uuid.uuid4().hex
    now = time.time()
    record = {
        "job_id": job_id,
        "kind": kind,
        "status": "queued",
        "submitted_at": now,
        "queued_at": now,
        "attempts": 0,
        "input": job_input,
    }
    with records.reachable():
        # The record first: a worker that takes the message at once finds it.
        records.save(record)
        try:
            run_job(job_id)
        except backend.BACKEND_ERRORS:
            # The client is told the job was not accepted: drop its record, if still possible.
            with suppress(*backend.BACKEND_ERRORS):
                records.forget(job_id)
            raise
    return record
