"""Versioned schema migrations of the decision store (Alembic), applied by `open_decision_store`."""
