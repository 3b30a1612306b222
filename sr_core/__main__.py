"""`python -m sr_core` runs the command line interface."""

from sr_core.faces.cli import main

raise SystemExit(main())
