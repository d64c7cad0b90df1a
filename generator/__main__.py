"""`python -m generator`: serve the generator page on this machine."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from generator.app import create_app

REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m generator", description=__doc__)
    parser.add_argument(
        "--template",
        default=str(REPO_ROOT),
        help="the template to render, as `copier copy` takes it: this checkout by default, "
        "or a URL such as gh:<owner>/copier-ml-deploy. Projects record it as their _src_path.",
    )
    parser.add_argument("--vcs-ref", help="the template's git tag or commit (default: newest tag)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--render-timeout", type=float, default=180, help="seconds a render may take"
    )
    arguments = parser.parse_args()
    app = create_app(arguments.template, arguments.vcs_ref, render_timeout=arguments.render_timeout)
    ref = arguments.vcs_ref or "its newest tag, as copier copy (--vcs-ref HEAD: the last commit)"
    print(f"Template: {arguments.template} at {ref}")
    print(f"The generator page: http://{arguments.host}:{arguments.port}/ (Ctrl-C stops it)")
    # `kill` ends it as Ctrl-C does, so the questionnaire's temporary snapshot goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        app.run(host=arguments.host, port=arguments.port, threaded=True)
    finally:
        app.extensions["questionnaire"].close()


if __name__ == "__main__":
    main()
