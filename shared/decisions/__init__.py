"""The decision store: each decision recorded once per (service, event id) in PostgreSQL or an embedded
SQLite file (`RISK_DECISIONS_URL`), found again by event id or by search, pruned by its retention."""

from __future__ import annotations

from shared.decisions.store import (
    DEFAULT_PAGE,
    MAX_PAGE,
    DecisionStore,
    Labelled,
    NewDecision,
    OutcomeReport,
    OutcomeResult,
    OutcomeStatus,
    Page,
    Recorded,
    Search,
    StoredDecision,
)

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "DecisionStore",
    "Labelled",
    "NewDecision",
    "OutcomeReport",
    "OutcomeResult",
    "OutcomeStatus",
    "Page",
    "Recorded",
    "Search",
    "StoredDecision",
]
