"""Storage: models, migrations, the one write path, queries and the change feed."""
