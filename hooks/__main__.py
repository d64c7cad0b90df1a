"""Entry point: Copier's task runs `python <template>/hooks '<answers as JSON>'`."""

import sys
from pathlib import Path

# Running a folder puts that folder first on sys.path; the `hooks` package needs its parent there.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hooks.post_generate import main  # noqa: E402

raise SystemExit(main(sys.argv[1:]))
