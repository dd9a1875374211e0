"""What `risk rules ...`, `risk models ...`, `risk lists ...` and `risk audit` do, for one service; services/cli.py
wires them.

Whatever changes what is in force, or reads the control plane's records, is asked of the running service's
control API (`ControlClient`, over HTTP, with the key given by `--api-key` or RISK_API_KEY): the server checks
the key, its roles and the maker-checker rule against its own RISK_API_KEYS, so nothing in the client's
environment can stand in for them. Checks and backtests of a candidate change nothing and run here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import requests

from shared.core.contract import validate_event
from shared.doors.backtest import Costs, as_html, as_table, backtest, load_history
from shared.errors import InvalidInputError, InvalidRulesetError, RiskError, UsageError
from shared.files import read_chunks
from shared.runtime import Runtime


def check_ruleset(runtime: Runtime, path: Path, data: Path | None) -> list[str]:
    """Problems found, none when the ruleset is fine: the load-time checks (syntax, fields that exist,
    outcomes that exist), then, given events, the rules that never hit them or hit every one of them."""
    try:
        ruleset = runtime.parse_ruleset(path.read_text(), source=str(path))
    except InvalidRulesetError as error:
        return list(error.problems)
    if data is None:
        return []
    candidate = runtime.core.replaced(ruleset=ruleset.with_lists(runtime.core.ruleset.lists))  # the lists in force
    events = [
        candidate.validate(row) for chunk in read_chunks(data, 5_000) for row in chunk if "_unparsable" not in row
    ]
    if not events:
        return [f"{data}: no valid event to try the rules on"]
    decisions = candidate.score_offline(events)
    failed = [error for decision in decisions for error in decision.rule_errors or ()]
    failures, first_failure = Counter(e.rule_id for e in failed), {e.rule_id: e.message for e in reversed(failed)}
    hits = Counter(hit.rule_id for decision in decisions for hit in decision.rule_hits) - failures
    problems = []
    for rule in ruleset.rules:
        if failures[rule.id]:
            problems.append(
                f"rule {rule.id}: could not be evaluated on {failures[rule.id]} of the {len(events)} events in "
                f"{data} ({first_failure[rule.id]}): give optional fields a default, as in `(field ?? 0) > 3`"
            )
        if hits[rule.id] == 0:
            problems.append(f"rule {rule.id}: hit none of the {len(events)} events in {data} (unreachable?)")
        elif hits[rule.id] == len(events):
            problems.append(f"rule {rule.id}: hit every one of the {len(events)} events in {data} (always true?)")
    return problems


def printable(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


class ControlRequestError(RiskError):
    """The server refused a control request: its answer (error, message, fields) is kept as it came."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("message") or body.get("error") or f"HTTP {status}"))
        self.status, self.body = status, body

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, **self.body}


class ControlClient:
    """The control API of one running service, as the identity of one key."""

    def __init__(self, service: str, base_url: str | None, api_key: str | None, timeout: float = 60.0) -> None:
        if not base_url:
            raise UsageError(
                f"say which {service} server to ask: --server URL or RISK_SERVER_URL (e.g. http://127.0.0.1:8000); "
                "changes are made by the running service, which checks the key"
            )
        if not api_key:
            raise UsageError("give the API key you act with (--api-key or RISK_API_KEY)")
        self.service, self.base_url, self.timeout = service, base_url.rstrip("/"), timeout
        self._session = requests.Session()
        self._session.headers["X-API-Key"] = api_key
        self._checked = False

    def publish(self, path: Path) -> Any:
        headers = {"Content-Type": "application/yaml"}
        return self._call("POST", "/v1/control/rulesets", data=path.read_text().encode(), headers=headers)

    def promote(self, version: str) -> Any:
        return self._call("POST", "/v1/control/promotions", json={"version": version})

    def challenger(self, version: str | None) -> Any:
        return self._call("POST", "/v1/control/challengers", json={"version": version})

    def rollback(self, kind: Literal["ruleset", "model"], version: str) -> Any:
        return self._call("POST", "/v1/control/rollbacks", json={"kind": kind, "version": version})

    def approve(self, proposal_id: str, kinds: tuple[str, ...]) -> Any:
        """Approve a proposal of one of `kinds` (`risk rules approve` approves no model change, and the reverse)."""
        self._of_kind(proposal_id, kinds)
        return self._call("POST", f"/v1/control/proposals/{proposal_id}/approve")

    def refuse(self, proposal_id: str, kinds: tuple[str, ...], reason: str) -> Any:
        self._of_kind(proposal_id, kinds)
        return self._call("POST", f"/v1/control/proposals/{proposal_id}/refuse", json={"reason": reason})

    def rulesets(self) -> Any:
        return self._call("GET", "/v1/control/rulesets")

    def models(self) -> Any:
        return self._call("GET", "/v1/control/models")

    def audit(self) -> Any:
        return self._call("GET", "/v1/control/audit")["entries"]

    def lists(self) -> Any:
        return self._call("GET", "/v1/control/lists")

    def show_list(self, name: str, value: str | None = None, after: str | None = None, limit: int | None = None) -> Any:
        query = {k: v for k, v in (("value", value), ("after", after), ("limit", limit)) if v is not None}
        return self._call("GET", f"/v1/control/lists/{name}", params=query or None)

    def propose_list_change(self, name: str, action: Literal["add", "remove"], values: list[str]) -> Any:
        route = "additions" if action == "add" else "removals"
        return self._call("POST", f"/v1/control/lists/{name}/{route}", json={"values": values})

    def verify(self, head: str | None = None) -> Any:
        return self._call("GET", "/v1/control/audit/verify", params={"head": head} if head else None)

    def _of_kind(self, proposal_id: str, kinds: tuple[str, ...]) -> None:
        found = next(
            (p for p in self._call("GET", "/v1/control/proposals")["proposals"] if p["id"] == proposal_id), None
        )
        if found is not None and found["kind"] not in kinds:
            raise InvalidInputError(
                {"proposal": [f"proposal {proposal_id} is a {found['kind']} change, not a {' or '.join(kinds)} change"]}
            )

    def _call(self, method: str, path: str, **options: Any) -> Any:
        if not self._checked:  # a disease ruleset must never be sent to the fraud server
            served = self._request("GET", "/healthz").get("service")
            if served != self.service:
                raise UsageError(
                    f"{self.base_url} serves {served!r}, not {self.service!r}: give the {self.service} server"
                )
            self._checked = True
        return self._request(method, path, **options)

    def _request(self, method: str, path: str, **options: Any) -> Any:
        try:
            response = self._session.request(method, self.base_url + path, timeout=self.timeout, **options)
        except requests.RequestException as error:
            raise UsageError(
                f"the {self.service} server at {self.base_url} did not answer ({type(error).__name__}): "
                f"is `risk serve {self.service}` running there?"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {"error": "not_json", "message": response.text[:200]}
        if response.status_code >= 400:
            raise ControlRequestError(response.status_code, body if isinstance(body, dict) else {"body": body})
        return body


def read_values(given: list[str], path: Path | None) -> list[str]:
    """The values of a list change: those on the command line, then those of a file (one a line; blank lines
    and lines starting with # skipped, spaces around a value dropped)."""
    values = list(given)
    if path is not None:
        lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        values += [line for line in lines if line and not line.startswith("#")]
    if not values:
        raise UsageError("give the values: on the command line, or --file PATH with one a line")
    return values


def run_backtest(
    runtime: Runtime,
    data: Path,
    ruleset_path: Path | None,
    model_version: str | None,
    label: str | None,
    history: dict[str, Path],
    report: Path | None,
    costs: Costs,
) -> str:
    """The backtest of a candidate ruleset and/or model against what is in force; returns the table and
    writes the HTML report when asked."""
    if ruleset_path is None and model_version is None:
        raise InvalidInputError({"candidate": ["give --ruleset FILE, --model VERSION, or both"]})
    current = runtime.core
    ruleset = runtime.parse_ruleset(ruleset_path.read_text(), str(ruleset_path)) if ruleset_path else None
    candidate = current.replaced(  # a candidate ruleset over the lists in force, so only the rules differ
        model=runtime.load_model(model_version) if model_version else None,
        ruleset=ruleset.with_lists(current.ruleset.lists) if ruleset else None,
    )
    rows, labels = load_history(data, label)
    inputs = {h.name: h for h in runtime.service.history_inputs}
    histories = {
        name: [validate_event(inputs[name].schema(), row) for chunk in read_chunks(path, 5_000) for row in chunk]
        for name, path in history.items()
    }
    result = backtest(current, candidate, rows, labels, histories, costs)
    now = f"in force (model {current.model.version}, rules {current.ruleset.version})"
    then = f"candidate (model {candidate.model.version}, rules {candidate.ruleset.version})"
    if report is not None:
        report.write_text(as_html(result, runtime.service.name, now, then))
    return as_table(result, "in force", "candidate") + f"\n\nin force: {now}\ncandidate: {then}"


def compare(decisions_path: Path, labels_path: Path | None, label: str, default: str) -> dict[str, Any]:
    """Champion against challenger on recorded decisions (a batch output, or a dump of the decisions
    topic's `data`): agreement, score correlation, decision changes; with labels (event_id and `label`
    columns), each side's precision and recall of flagging (any decision but `default`)."""
    import numpy as np

    records = [row for chunk in read_chunks(decisions_path, 5_000) for row in chunk]
    records = [r | {"shadow": json.loads(r["shadow"])} if isinstance(r.get("shadow"), str) else r for r in records]
    paired = [r for r in records if isinstance(r.get("shadow"), dict)]
    if not paired:
        raise InvalidInputError({"decisions": ["no decision in the file carries a challenger's shadow record"]})
    champion = np.array([float(r["score"]) for r in paired])
    challenger = np.array([float(r["shadow"]["score"]) for r in paired])
    changes = Counter(
        f"{r['decision']} -> {r['shadow']['decision']}" for r in paired if r["decision"] != r["shadow"]["decision"]
    )
    report: dict[str, Any] = {
        "decisions": len(paired),
        "champion": sorted({json.dumps(r["model"], sort_keys=True) for r in paired}),
        "challenger": sorted({json.dumps(r["shadow"]["model"], sort_keys=True) for r in paired}),
        "agreement": round(1 - sum(changes.values()) / len(paired), 4),
        "score_correlation": round(float(np.corrcoef(champion, challenger)[0, 1]), 4) if len(paired) > 1 else None,
        "mean_absolute_score_difference": round(float(np.mean(np.abs(champion - challenger))), 6),
        "decision_changes": dict(changes.most_common()),
    }
    if labels_path is not None:
        truth = {
            str(row["event_id"]): int(str(row[label]).strip().lower() in {"1", "true", "yes", "1.0"})
            for chunk in read_chunks(labels_path, 5_000)
            for row in chunk
            if label in row
        }
        for side, decision_of in (
            ("champion", lambda r: r["decision"]),
            ("challenger", lambda r: r["shadow"]["decision"]),
        ):
            pairs = [
                (decision_of(r) != default, truth[str(r["event_id"])]) for r in paired if str(r["event_id"]) in truth
            ]
            tp = sum(f and y for f, y in pairs)
            flagged, positives = sum(f for f, _ in pairs), sum(y for _, y in pairs)
            report[f"{side}_labelled"] = {
                "events": len(pairs),
                "precision": round(tp / flagged, 4) if flagged else 0.0,
                "recall": round(tp / positives, 4) if positives else 0.0,
            }
    return report
