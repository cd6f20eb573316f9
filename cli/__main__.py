"""`python -m cli` is the `passageway` command (`up` starts its children so)."""

from . import run

raise SystemExit(run())
