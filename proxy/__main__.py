"""`python -m proxy` is the `passageway` command."""

from .cli import main

raise SystemExit(main())
