"""Who may do what: each action of the doors and the control plane, and the roles that may take it.

A role is set beside its key in RISK_API_KEYS (`name:key:role+role`; see shared/settings.py). `admin` may do
everything, yet never approve its own proposal: maker-checker holds for every identity.
"""

from __future__ import annotations

from typing import Final

from shared.errors import ForbiddenError
from shared.settings import ROLES, ApiIdentity

SCORE, DESCRIBE, READ_DECISIONS, REPORT_OUTCOMES = "score", "describe", "read_decisions", "report_outcomes"
PROPOSE, DECIDE, READ_CONTROL, ADMINISTER = "propose", "decide", "read_control", "administer"

# What each action means, in the words a refusal uses.
ACTION_WORDS: Final[dict[str, str]] = {
    SCORE: "score events",
    DESCRIBE: "read the model card and reference documents",
    READ_DECISIONS: "read recorded decisions and monitoring reports",
    REPORT_OUTCOMES: "report outcomes",
    PROPOSE: "propose changes (rulesets, promotions, challengers, rollbacks, list values)",
    DECIDE: "approve or refuse proposals",
    READ_CONTROL: "read proposals, listings and the audit log",
    ADMINISTER: "use an endpoint no role is named for",
}
ALLOWED: Final[dict[str, frozenset[str]]] = {
    SCORE: frozenset({"scorer", "admin"}),
    DESCRIBE: frozenset(ROLES),
    READ_DECISIONS: frozenset({"analyst", "admin"}),
    REPORT_OUTCOMES: frozenset({"analyst", "admin"}),
    PROPOSE: frozenset({"analyst", "admin"}),
    DECIDE: frozenset({"approver", "admin"}),
    READ_CONTROL: frozenset({"analyst", "approver", "admin"}),
    ADMINISTER: frozenset({"admin"}),
}


def may(identity: ApiIdentity, action: str) -> bool:
    return bool(identity.roles & ALLOWED[action])


def require(identity: ApiIdentity, action: str) -> None:
    """Raise ForbiddenError, naming the roles that would do, unless `identity` may take `action`."""
    if not may(identity, action):
        needed = " or ".join(sorted(ALLOWED[action]))
        raise ForbiddenError(
            f"{identity.name} ({'+'.join(sorted(identity.roles))}) may not {ACTION_WORDS[action]}: "
            f"that needs the role {needed}, set beside the key in RISK_API_KEYS"
        )
