"""`python -m cli` is the `passageway` command (`up` starts its children so)."""

from .main import main

raise SystemExit(main())
