"""Which action each HTTP endpoint is, so the door can check the caller's roles before it runs.

An endpoint missing from `ENDPOINT_ACTIONS` needs the admin role: a new endpoint is closed to every other
role until someone says who may use it (a test lists the app's endpoints against this table).
"""

from __future__ import annotations

from shared.control.roles import (
    ADMINISTER,
    DECIDE,
    DESCRIBE,
    PROPOSE,
    READ_CONTROL,
    READ_DECISIONS,
    REPORT_OUTCOMES,
    SCORE,
    require,
)
from shared.errors import UnauthorizedError
from shared.settings import ApiIdentity, Settings

REFERENCE_ENDPOINT_PREFIX = "reference:"  # a service's reference documents, e.g. /v1/equations

ENDPOINT_ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/v1/score"): SCORE,
    ("GET", "/v1/model"): DESCRIBE,
    ("GET", "/v1/model/report"): DESCRIBE,
    ("GET", "/v1/decisions"): READ_DECISIONS,
    ("GET", "/v1/decisions/<event_id>"): READ_DECISIONS,
    ("GET", "/v1/monitoring"): READ_DECISIONS,
    ("GET", "/v1/monitoring/report"): READ_DECISIONS,
    ("POST", "/v1/outcomes"): REPORT_OUTCOMES,
    ("POST", "/v1/control/rulesets"): PROPOSE,
    ("POST", "/v1/control/promotions"): PROPOSE,
    ("POST", "/v1/control/challengers"): PROPOSE,
    ("POST", "/v1/control/rollbacks"): PROPOSE,
    ("POST", "/v1/control/proposals/<proposal_id>/approve"): DECIDE,
    ("POST", "/v1/control/proposals/<proposal_id>/refuse"): DECIDE,
    ("GET", "/v1/control/proposals"): READ_CONTROL,
    ("GET", "/v1/control/rulesets"): READ_CONTROL,
    ("GET", "/v1/control/models"): READ_CONTROL,
    ("GET", "/v1/control/audit"): READ_CONTROL,
    ("GET", "/v1/control/audit/verify"): READ_CONTROL,
    ("GET", "/v1/control/lists"): READ_CONTROL,
    ("GET", "/v1/control/lists/<name>"): READ_CONTROL,
    ("POST", "/v1/control/lists/<name>/additions"): PROPOSE,
    ("POST", "/v1/control/lists/<name>/removals"): PROPOSE,
}


def action_of(method: str, rule: str | None, endpoint: str | None) -> str | None:
    """The action a request takes (None when it matched no endpoint: a 404 or 405 follows)."""
    if rule is None or method == "OPTIONS":  # OPTIONS only lists the methods (Allow)
        return None
    if endpoint and endpoint.startswith(REFERENCE_ENDPOINT_PREFIX):
        return DESCRIBE
    return ENDPOINT_ACTIONS.get(("GET" if method == "HEAD" else method, rule), ADMINISTER)


def authorise(settings: Settings, presented: str, method: str, rule: str | None, endpoint: str | None) -> ApiIdentity:
    """The caller of a request: 401 for a key the server does not know, 403 when its roles do not allow the
    endpoint. Only the server's RISK_API_KEYS count, whatever a client's own environment holds."""
    caller = settings.caller(presented)
    if caller is None:
        raise UnauthorizedError("missing or unknown API key (X-API-Key header)")
    action = action_of(method, rule, endpoint)
    if action is not None:
        require(caller, action)
    return caller
