"""Background jobs: batch predictions and retraining, run by the worker program.

A job is what POST /jobs (a batch prediction) and POST /jobs/train (a retraining) queue. Its
record (kind, status, input, result or error, times) lives in the queue's own key-value store
under "job:<id>", so the web service and every worker share it without another database; the
task message carries only the job id.

    queued -> running -> done | failed

- backend.py: the queue's backend (huey on SQLite or on Redis), its settings and errors;
- records.py: what the jobs keep in the backend's key-value store, finished-job counters too;
- client.py: the web service's side, queue a job and read it back;
- worker.py: the worker's side, run jobs and lose none when a worker stops or dies;
- queue_format.py: JSON in place of pickle for everything huey writes.

Finished jobs are kept JOB_RESULT_TTL seconds. Reads honour that time exactly (an expired job
is a 404); the sweep deletes expired records from the backend within a minute.
"""

from .client import get_job, result_ttl, submit_predictions, submit_training
from .records import QueueUnavailableError, finished_counts, queued_count, reachable
from .worker import run_worker

__all__ = [
    "QueueUnavailableError",
    "finished_counts",
    "get_job",
    "queued_count",
    "reachable",
    "result_ttl",
    "run_worker",
    "submit_predictions",
    "submit_training",
]
