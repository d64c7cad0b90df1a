"""What the jobs keep in the queue's key-value store, shared by the web service and every worker.

- "job:<id>", the job's record (kind, status, input, result or error, times);
- "lease:<id>", until when a live worker holds the job;
- "lock:training", the retraining running now, one at a time;
- the counters of finished jobs by kind and outcome, which GET /metrics reads.

Only huey's storage API is used, so this is the same code on every backend (backend.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import backend

log = logging.getLogger(__name__)

RECORD = "job:"
LEASE = "lease:"
TRAINING_LOCK = "lock:training"
FINISHED_COUNTER = "finished:"
KINDS = ("predict", "train")
FINISHED = ("done", "failed")


class QueueUnavailableError(RuntimeError):
    """The queue's backend cannot be reached; requests that need it answer 503."""


@contextmanager
def reachable() -> Iterator[None]:
    """Turn the backend's outage errors into QueueUnavailableError."""
    try:
        backend.prepare()
        yield
    except backend.BACKEND_ERRORS as error:
        log.warning("job queue unavailable: %s", error)
        raise QueueUnavailableError(backend.UNAVAILABLE) from error


def load(job_id: str) -> dict[str, Any] | None:
    record: dict[str, Any] | None = backend.huey.get(RECORD + job_id, peek=True)
    return record


def save(record: dict[str, Any]) -> None:
    backend.huey.put(RECORD + record["job_id"], record)


def forget(job_id: str) -> None:
    backend.huey.delete(RECORD + job_id)
    backend.huey.delete(LEASE + job_id)


def queued_count() -> int:
    """Jobs waiting in the queue for a worker."""
    pending: int = backend.huey.pending_count()
    return pending


def count_finished(kind: str, status: str) -> None:
    """Count a job that ended `status`; atomic in the backend (HINCRBY, an UPSERT in SQLite).

    Counted in the queue's store, not in the worker's memory: the worker runs in another
    process, often another container or machine, which GET /metrics cannot read.
    """
    backend.huey.storage.incr(_finished_key(kind, status))


def finished_counts() -> dict[tuple[str, str], int]:
    """Jobs finished since the queue's store was created, by (kind, status)."""
    # Adding 0 is the storage API's atomic read; every pair is listed, 0 until it happens.
    storage = backend.huey.storage
    return {
        (kind, status): storage.incr(_finished_key(kind, status), 0)
        for kind in KINDS
        for status in FINISHED
    }


def _finished_key(kind: str, status: str) -> str:
    return f"{FINISHED_COUNTER}{kind}:{status}"


@contextmanager
def lease(job_id: str) -> Iterator[None]:
    """Hold the job's lease while it runs, renewing it from a thread; release it after."""
    key = LEASE + job_id
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(backend.settings.lease / 3):
            try:
                backend.huey.put(key, time.time() + backend.settings.lease)
            except backend.BACKEND_ERRORS as error:  # the next renewal may get through
                log.warning("job %s: lease not renewed: %s", job_id, error)

    backend.huey.put(key, time.time() + backend.settings.lease)
    renewer = threading.Thread(target=renew, name=f"lease-{job_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        backend.huey.delete(key)


def leased(job_id: str) -> bool:
    until = backend.huey.get(LEASE + job_id, peek=True)
    return until is not None and until > time.time()


def take_training_lock(job_id: str) -> bool:
    """One retraining at a time across every worker: two would write the same model files.

    The lock names the job holding it. A holder whose lease has run out died with it (a
    worker holds the lease before the lock, and keeps it until it lets go): the lock is taken
    over. Both steps are atomic in the backend (HSETNX; INSERT OR IGNORE in a transaction).
    """
    huey = backend.huey
    if huey.put_if_empty(TRAINING_LOCK, job_id):
        return True
    holder = huey.get(TRAINING_LOCK, peek=True)
    if holder == job_id:
        return True  # this job's previous run died holding it
    if holder is not None and leased(holder):
        return False
    log.warning("retraining job %s died holding the training lock: taking it over", holder)
    huey.delete(TRAINING_LOCK)
    taken: bool = huey.put_if_empty(TRAINING_LOCK, job_id)
    return taken


def release_training_lock(job_id: str) -> None:
    if backend.huey.get(TRAINING_LOCK, peek=True) == job_id:
        backend.huey.delete(TRAINING_LOCK)
