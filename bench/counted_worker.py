"""The default service's gunicorn worker, each connection it handles inside functools.reduce.

bench/auth_cost.py runs gunicorn under Valgrind's callgrind with this worker class and
--toggle-collect=functools_reduce --dump-after=functools_reduce: only the instructions of
handling a connection are counted (not the worker's start-up, nor its idle loop), and each
connection's are written to a file of their own. Nothing else in a request calls
functools.reduce (auth_cost.py checks that the dumps number the requests sent).
"""

from functools import reduce

from iris_classifier.gunicorn_workers import JsonErrorsSyncWorker


class CountedWorker(JsonErrorsSyncWorker):
    def handle(self, listener, client, addr) -> None:
        handle = super().handle
        reduce(lambda _, __: handle(listener, client, addr), [None], None)
