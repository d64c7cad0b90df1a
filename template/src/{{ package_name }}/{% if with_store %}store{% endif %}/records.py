"""`PredictionStore`: predictions written to the database in batches, off the request path.

One module over 250 lines for one class: its buffer, writer thread and outage handling share state.

A request hands its record to `add`, which appends it to an in-memory buffer and returns: the
request never waits for the database. A background thread in each worker writes the buffer in
batches, one multi-row INSERT every `flush_interval` seconds, or sooner once `batch_size`
records wait, and on shutdown (`close`, which gunicorn's worker_exit hook and atexit call).

While the database is down the buffer holds the newest `buffer_size` records; beyond that the
oldest are dropped and counted. The outage is logged once when it starts and once when it
ends; meanwhile the thread retries with a growing pause, and writes the buffer once it can.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import SQLAlchemyError

from .schema import Prediction

log = logging.getLogger(__name__)

# timezone.utc itself, spelt so that no Python version's linter asks for datetime.UTC (3.11+).
UTC = timezone(timedelta(0))


@dataclass(frozen=True)
class Record:
    """One prediction, as the request made it; turned into a row by the writer thread."""

    request_id: str
    created_at: float  # time.time(), in seconds since the epoch
    model_sha256: str
    model_version: str
    endpoint: str
    inputs: np.ndarray  # the request's rows, kept as the array: .tolist() runs off the path
    outputs: list[Any]
    latency_ms: float

    def row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "created_at": datetime.fromtimestamp(self.created_at, UTC),
            "model_sha256": self.model_sha256,
            "model_version": self.model_version,
            "endpoint": self.endpoint,
            "inputs": self.inputs.tolist(),
            "outputs": self.outputs,
            "latency_ms": self.latency_ms,
        }


class PredictionStore:
    """The prediction log of one process: a bounded buffer, a writer thread, and reads."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        buffer_size: int = 100_000,
        max_retry_interval: float = 10.0,
        report: Callable[[int, int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retry_interval = max_retry_interval
        self.written = 0  # records in the database, from this process
        self.dropped = 0  # records lost: the buffer was full during an outage
        # Called by the writer thread after each write with (records buffered, records dropped
        # since the last call): the service's metrics, kept off the request path.
        self._report = report
        self._reported_dropped = 0
        self._pending: deque[Record] = deque()
        self._buffer_size = buffer_size
        self._lock = threading.Lock()  # guards _pending and the counters
        self._write_lock = threading.Lock()  # one batch in flight: the thread's or flush()'s
        self._wake = threading.Event()
        self._closed = False
        self._outage: SQLAlchemyError | None = None  # set while the database is unreachable
        self._dropped_in_outage = 0
        self._reads_failing = False
        self._thread: threading.Thread | None = None
        _open_stores.add(self)

    # ------------------------------------------------------------------ the request side

    def add(self, record: Record) -> None:
        """Buffer one record for the writer thread; never blocks on the database."""
        with self._lock:
            if len(self._pending) >= self._buffer_size:
                self._pending.popleft()
                self._drop(1)
            self._pending.append(record)
            # A full batch is written at once; not while the database is down, where the
            # thread's growing pause between retries stands.
            write_now = len(self._pending) >= self.batch_size and self._outage is None
        if self._thread is None:
            self._start()
        if write_now:
            self._wake.set()

    def _start(self) -> None:
        # Started by the first record, in the process that makes it: a thread started before
        # a fork (gunicorn's preload_app) would not exist in the forked worker.
        with self._lock:
            if self._closed or self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="prediction-store-writer", daemon=True
            )
            self._thread.start()

    def _drop(self, count: int) -> None:
        # Called with _lock held.
        if self._dropped_in_outage == 0:
            log.error(
                "prediction store buffer full (%d records): dropping the oldest until the "
                "database is back",
                self._buffer_size,
            )
        self.dropped += count
        self._dropped_in_outage += count

    # ------------------------------------------------------------------ the writer side

    def _run(self) -> None:
        retry_interval = self.flush_interval
        while not self._closed:
            self._wake.wait(retry_interval if self._outage else self.flush_interval)
            self._wake.clear()
            if self._closed:
                break
            if self.flush():
                retry_interval = self.flush_interval
            else:  # down: wait longer each time, up to max_retry_interval
                retry_interval = min(retry_interval * 2, self.max_retry_interval)
            self._report_state()

    def _report_state(self) -> None:
        if self._report is None:
            return
        with self._lock:
            pending, dropped = len(self._pending), self.dropped
        self._report(pending, dropped - self._reported_dropped)
        self._reported_dropped = dropped

    def flush(self) -> bool:
        """Write every buffered record now; False if the database refused (they stay buffered).

        The writer thread calls it on its schedule; tests and `close` call it to write at once.
        """
        with self._write_lock:
            while True:
                with self._lock:
                    batch = [
                        self._pending.popleft()
                        for _ in range(min(self.batch_size, len(self._pending)))
                    ]
                if not batch:
                    return True
                try:
                    self._insert(batch)
                except SQLAlchemyError as error:
                    self._requeue(batch)
                    self._went_down(error)
                    return False
                except Exception:
                    # Not an outage but a bug: retrying would block the buffer behind this
                    # batch for good, so it is logged and dropped.
                    log.exception("prediction store: %d records could not be written", len(batch))
                    with self._lock:
                        self.dropped += len(batch)
                    continue
                with self._lock:
                    self.written += len(batch)
                self._came_back()

    def _insert(self, batch: list[Record]) -> None:
        rows = [record.row() for record in batch]
        if self._outage is not None:
            self._migrate()
        # One statement for the batch: SQLAlchemy sends it as executemany, or as multi-row
        # VALUES where the driver supports it ("insertmanyvalues").
        with self.engine.begin() as connection:
            connection.execute(insert(Prediction), rows)

    def _migrate(self) -> None:
        # The database may be back but fresh: the service could not migrate it at start-up.
        # Whatever stops the migrations, the insert that follows tells whether writing works
        # (a database already at a newer revision, say, takes these records all the same).
        from .database import migrate

        try:
            migrate(self.engine.url)
        except SQLAlchemyError:
            pass  # still down: the insert fails too, and says so
        except Exception as error:
            log.warning("prediction store: migrations failed: %s", first_line(error))

    def _requeue(self, batch: list[Record]) -> None:
        # Back at the front, in order; past the bound, the oldest records go.
        with self._lock:
            self._pending.extendleft(reversed(batch))
            excess = len(self._pending) - self._buffer_size
            for _ in range(max(excess, 0)):
                self._pending.popleft()
            if excess > 0:
                self._drop(excess)

    def _went_down(self, error: SQLAlchemyError) -> None:
        if self._outage is None:
            self._outage = error
            log.error(
                "prediction store unavailable, buffering up to %d records and retrying: %s",
                self._buffer_size,
                first_line(error),
            )

    def _came_back(self) -> None:
        if self._outage is None and self._dropped_in_outage == 0:
            return
        with self._lock:
            dropped, self._dropped_in_outage = self._dropped_in_outage, 0
        self._outage = None
        log.warning("prediction store writing again; %d records were dropped meanwhile", dropped)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the writer thread and write what is left; idempotent.

        Bounded by `timeout` seconds of waiting for the thread, plus one last write attempt,
        so a worker shuts down within gunicorn's graceful timeout even while the database is
        down. Records that cannot be written then are lost, and counted in the log.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if not self.flush():
            log.error("prediction store: %d records lost on shutdown", len(self._pending))
        self._report_state()
        self.engine.dispose()
        _open_stores.discard(self)

    @property
    def pending(self) -> int:
        """Records waiting for the writer thread."""
        return len(self._pending)

    # ------------------------------------------------------------------ reads

    def recent(self, limit: int, before_id: int | None = None) -> list[dict[str, Any]]:
        """The newest `limit` records, newest first; with `before_id`, those older than it.

        Raises SQLAlchemyError while the database is unavailable.
        """
        query = select(Prediction.__table__).order_by(Prediction.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(Prediction.id < before_id)
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query).mappings().all()
        except SQLAlchemyError as error:
            # Logged once until a read works again, however often a dashboard polls.
            if not self._reads_failing:
                self._reads_failing = True
                log.warning("prediction store: reads fail: %s", first_line(error))
            raise
        if self._reads_failing:
            self._reads_failing = False
            log.warning("prediction store: reads work again")
        return [
            {**row, "created_at": _as_utc(row["created_at"]).isoformat(timespec="milliseconds")}
            for row in rows
        ]


def _as_utc(moment: datetime) -> datetime:
    # SQLite keeps no time zone: what it returns was written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def first_line(error: Exception) -> str:
    # The driver's message, without SQLAlchemy's statement and parameters (the inputs).
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


# Every store this process opened, closed at exit (and by gunicorn's worker_exit hook) so that
# their buffers reach the database.
_open_stores: weakref.WeakSet[PredictionStore] = weakref.WeakSet()


@atexit.register
def close_all() -> None:
    for store in list(_open_stores):
        store.close()


def _after_fork_in_child() -> None:
    # A forked child has none of its parent's threads, and a lock one of them held stays
    # locked. Each store starts afresh there: its own thread, locks and connections (the
    # parent's are the parent's: https://docs.sqlalchemy.org/en/20/core/pooling.html), and no
    # records, which the parent writes.
    for store in list(_open_stores):
        store._thread = None
        store._lock = threading.Lock()
        store._write_lock = threading.Lock()
        store._wake = threading.Event()
        store._pending.clear()
        store.engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
