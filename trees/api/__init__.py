"""The read-only REST API under /api/v1/: declarations here, queries in trees.queries."""
