"""The worker's side: the job task huey runs, what it runs, and the sweep that loses no job.

No accepted job is lost when a worker stops:
- SIGINT (what supervisord and Compose send it) is huey's graceful stop: the worker takes
  no new job and finishes the one in hand first. Queued jobs wait in the queue.
- SIGTERM is huey's immediate stop: the job in hand is put back in the queue, as queued.
- A worker that dies (SIGKILL, a lost machine) leaves its job "running" under a lease it was
  renewing every JOB_LEASE / 3 seconds. Once the lease runs out, the sweep (every minute, and
  when a worker starts) queues the job again; so it does for a queued job whose message died
  with a worker that had just taken it. A job that was started MAX_ATTEMPTS times fails
  instead, so that a job that kills its worker does not run forever. A job delivered twice
  runs once: a worker skips a job that is finished or leased.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey import crontab
from huey.signals import SIGNAL_INTERRUPTED

from ..config import Settings
from ..finite import NonFiniteOutputError
from ..model import ModelSlot
from . import backend, records

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# Seconds a retraining waits before trying again while another one runs.
TRAINING_WAIT = 5


class JobError(RuntimeError):
    """A job that cannot run as queued; its message is what GET /jobs/<id> reports."""


class Workspace:
    """Where jobs read and write the model, and the worker's model, loaded on first use."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir  # MODEL_DIR, or the worker's --model-dir
        self._slot: ModelSlot | None = None

    def model(self) -> ModelSlot:
        """Loaded on the first prediction job; the slot reloads it once retrained."""
        if self._slot is None:
            self._slot = ModelSlot(self.model_dir)
        return self._slot


workspace = Workspace(Settings.from_env().model_dir)


def _as_before(function: Callable[..., Any]) -> Callable[..., Any]:
    # huey names a task by its function's module. Until 0.7.0 the jobs were one module,
    # tasks.py: the same name lets a worker run the messages queued before an update.
    function.__module__ = f"{backend.NAME}.tasks"
    return function


@backend.huey.task()
@_as_before
def run_job(job_id: str) -> None:
    """Run a queued job and record its outcome; a job run already is not run again."""
    record = records.load(job_id)
    if record is None or record["status"] in records.FINISHED or records.leased(job_id):
        return  # expired, finished, or running on another worker: a duplicate message
    training = record["kind"] == "train"
    with records.lease(job_id):
        if training and not records.take_training_lock(job_id):
            log.info("job %s waits %d s: another retraining is running", job_id, TRAINING_WAIT)
            run_job.schedule((job_id,), delay=TRAINING_WAIT)
            return
        try:
            _run(record)
        finally:
            if training:
                records.release_training_lock(job_id)


def _run(record: dict[str, Any]) -> None:
    job_id = record["job_id"]
    record.update(status="running", started_at=time.time(), attempts=record["attempts"] + 1)
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    if record["attempts"] > MAX_ATTEMPTS:
        _finish(record, error=f"the worker stopped {MAX_ATTEMPTS} times while running this job")
        return
    records.save(record)
    log.info("job %s (%s) started, attempt %d", job_id, record["kind"], record["attempts"])
    try:
        result = RUNNERS[record["kind"]](record["input"])
    except backend.BACKEND_ERRORS:
        raise  # the queue is down: the record cannot be written; the sweep retries later
    except Exception as error:  # the job failed, not the worker: record why
        log.exception("job %s failed", job_id)
        _finish(record, error=str(error) or type(error).__name__)
    else:
        _finish(record, result=result)
        log.info("job %s done", job_id)


def _predict(job_input: dict[str, Any]) -> dict[str, Any]:
    model = workspace.model().get()
    if model.feature_names != job_input["feature_names"]:
        raise JobError(
            f"the model was retrained on other features ({model.feature_names}) since this job "
            f"was queued with {job_input['feature_names']}: submit it again"
        )
    try:
        predictions = model.predict(model.schema.array(job_input["rows"]))
    except NonFiniteOutputError as error:  # the job fails, naming the rows as POST /jobs did
        raise JobError(error.describe(lambda index: f"rows[{index}]")) from None
    return {
        "predictions": predictions,
        "model_sha256": model.metadata["artifact"]["sha256"],
        "model_version": model.version,
    }


def _train(_: dict[str, Any]) -> dict[str, Any]:
    # Imported here, in the worker only: training needs scikit-learn, which the web service
    # (it imports this module to queue jobs) never loads.
    from ..training import train

    # Under the training lock (run_job). train() publishes a new model version (save_model);
    # web workers see it within a second and swap it in once loaded, off the request path
    # (ModelSlot).
    metadata = train(workspace.model_dir)
    return {
        "metrics": metadata["metrics"],
        "trained_at": metadata["trained_at"],
        "model_version": metadata["model_version"],
    }


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "predict": _predict,
    "train": _train,
}


def _finish(
    record: dict[str, Any], result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    finished_at = time.time()
    record.pop("input", None)  # the rows are no longer needed, and may be large
    record.update(
        status="failed" if error is not None else "done",
        finished_at=finished_at,
        expires_at=finished_at + backend.settings.result_ttl,
    )
    if error is not None:
        record["error"] = error
    else:
        record["result"] = result
    records.save(record)
    # After the record: a worker dying between the two writes leaves a job uncounted, never
    # one counted twice (a finished job is not run again).
    records.count_finished(record["kind"], record["status"])


@backend.huey.signal(SIGNAL_INTERRUPTED)
def _requeue_interrupted(signal: str, task: Any, *_: Any) -> None:
    """A worker stopped at once (SIGTERM) mid-job: queue the job again."""
    if not isinstance(task, run_job.task_class):
        return
    job_id = task.args[0]
    record = records.load(job_id)
    if record is not None and record["status"] == "running":
        requeue(record)
        log.warning("job %s interrupted by the worker's shutdown: queued again", job_id)


@backend.huey.periodic_task(crontab(minute="*"))
@_as_before
def sweep() -> None:
    """Queue again the jobs of workers that died; delete the expired results.

    A worker that died mid-job left it "running" without a live lease. One that died just
    after taking a job's message from the queue left it "queued" with no message anywhere:
    such a job is queued again once it has waited a lease's time without one (a message
    taken by a live worker is in its hands for microseconds before the lease is held).
    """
    huey = backend.huey
    now = time.time()
    waiting = {
        task.args[0]
        for task in [*huey.pending(), *huey.scheduled()]
        if isinstance(task, run_job.task_class)
    }
    for key, value in huey.storage.result_items().items():
        if not key.startswith(records.RECORD):
            continue
        record = huey.serializer.deserialize(value)
        job_id = record["job_id"]
        if record.get("expires_at", float("inf")) <= now:
            records.forget(job_id)
        elif record["status"] == "running" and not records.leased(job_id):
            log.warning("job %s lost its worker: queued again", job_id)
            requeue(record)
        elif (
            record["status"] == "queued"
            and job_id not in waiting
            and record["queued_at"] < now - backend.settings.lease
            and not records.leased(job_id)
        ):
            log.warning("job %s lost its queue message: queued again", job_id)
            requeue(record)


@backend.huey.on_startup()
def _sweep_on_start() -> None:
    # A worker starting after a crash picks up the jobs whose lease has already run out.
    try:
        sweep.call_local()
    except backend.BACKEND_ERRORS as error:
        log.warning("sweep skipped, the job queue is unavailable: %s", error)


def requeue(record: dict[str, Any]) -> None:
    record.update(status="queued", queued_at=time.time())
    backend.huey.delete(records.LEASE + record["job_id"])
    records.save(record)
    run_job(record["job_id"])


def run_worker(directory: Path) -> int:
    """The worker program (`python -m <package> worker`): run jobs until stopped."""
    workspace.model_dir = directory
    backend.prepare()
    # On SIGHUP huey restarts the worker by running sys.executable with sys.argv again. Under
    # `python -m`, argv[0] is __main__.py's path, which cannot run as a script: run the module.
    if sys.argv and Path(sys.argv[0]).name == "__main__.py":
        sys.argv[:1] = ["-m", backend.NAME]
    consumer = backend.create_consumer(backend.settings.workers)
    log.info(
        "worker for %s: %d thread(s); SIGINT stops after the jobs in hand, "
        "SIGTERM at once (their jobs are queued again)",
        backend.DESCRIPTION,
        backend.settings.workers,
    )
    consumer.run()
    if threading.active_count() > 1:
        # Threads still running: after SIGTERM, huey returns with its job threads still in the
        # jobs it queued again. Finalizing the interpreter around them can abort the process (a
        # thread in a model's native code is unwound when it next asks for the GIL, and a C++
        # runtime calls terminate), so the worker leaves now, its log written, exiting 0.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0
