"""The `passageway` command: the composition root that reads the settings and runs the roles (proxy, inspector, `up`'s supervisor, the store commands, the demo)."""
