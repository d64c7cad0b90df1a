"""The benchmark harness: `python bench/run.py` (see bench/README.md).

- projects.py: rendering, training, and the copies of a render that serve a reference app
- stacks.py: each project's `make serve` on loopback, and its processes as /proc sees them
- load.py: the request bodies and wrk's runs
- report.py: merging the rounds, the targets, bench/RESULTS.md
- cli.py: the command's options and the run itself

The process and template helpers it shares with tests/ are in harness/. The other scripts
here (image.py, auth_cost.py, drift_cost.py) measure one thing each and keep their section of
RESULTS.md; null_app.py and plain_app.py are the reference apps gunicorn serves, counted_worker.py
the worker auth_cost.py counts instructions in, and peers.py the MLflow and BentoML stacks.
"""
