"""Benchmark the rendered service against the null-endpoint ceiling, on the real stack.

One command (from the repository root):

    python bench/run.py              # the full run, 10 s per measurement; writes bench/RESULTS.md
    python bench/run.py --smoke      # 2 s, one payload, one concurrency, nothing written

It renders the default service with Copier into a temporary folder (timing `copier copy
--defaults` and a no-op `copier update`), renders the random-forest variant, trains both, and
serves each with the project's own `make serve` (supervisord -> nginx -> gunicorn, 2 sync
workers) on a free loopback port. Beside them, on the same stack, it serves:

  * ceiling: bench/null_app.py, a Flask app answering a constant (the null endpoint);
  * plain:   bench/plain_app.py, the same random forest in a plain Flask + scikit-learn view;
  * onnx:    the default service rendered with model_format=onnx (0.3.0's default), to show
             what the NumPy format gains on the same linear model;
  * mixed:   the mixed-type default: training_data=csv on a synthetic CSV of numbers and text
             categories (write_mixed_csv), the linear model in the NumPy format, its rows sent
             as objects with strings;
  * mlflow, bentoml: the default service's pipeline served by `mlflow models serve` and by
    `bentoml serve`, each from a virtual environment of its own (bench/peers.py), with the
    same nginx and supervisord in front. Left out with --no-peers, or if pip cannot install them.

The renders use their default model formats: NumPy for the linear service, ONNX for the forest
(no scikit-learn in the workers); plain is the scikit-learn reference.

Both are copies of the rendered default project with gunicorn's `wsgi_app` pointed at the
bench app, so nginx.conf, gunicorn.conf.py and supervisord.conf are byte for byte the ones the
service runs with. wrk loads each at c=8 and c=64 with a one-row and a 100-row body; every
(payload, concurrency) case measures all the stacks in turn, twice, alternating, so drift on the
machine shows up as spread between the two rounds instead of as a difference between stacks.

The harness is the package bench/ (bench/__init__.py lists its modules); this file is its
command. Benchmarks are not tests: nothing here asserts a time. Every process started is stopped
(each stack runs in a session of its own), everything listens on 127.0.0.1 only, and every
wait is bounded.
"""

import sys
from pathlib import Path

# Run as a script, this folder is on sys.path, not the repository: bench/ and harness/ (the
# helpers shared with tests/) import as packages from there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
