"""`python -m sr_core` runs the command line interface."""

from sr_core.cli import main

raise SystemExit(main())
