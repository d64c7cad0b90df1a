"""`python -m <package>` runs the command line (train, predict, evaluate)."""

from .cli import main

raise SystemExit(main())
