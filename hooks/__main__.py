"""Entry point Copier runs: `python <template>/hooks '<answers as JSON>'` after rendering
(the AST pass), or `python <template>/hooks carry-moved-edits OLD:NEW ...` as a migration."""

import sys
from pathlib import Path

# Running a folder puts that folder first on sys.path; the `hooks` package needs its parent there.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hooks import carry_moved_edits, post_generate  # noqa: E402

if sys.argv[1:2] == ["carry-moved-edits"]:
    raise SystemExit(carry_moved_edits.main(sys.argv[2:]))
raise SystemExit(post_generate.main(sys.argv[1:]))
