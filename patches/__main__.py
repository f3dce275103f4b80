"""Entry point of `python -m patches` (see patches.cli)."""

from patches.cli import main

raise SystemExit(main())
