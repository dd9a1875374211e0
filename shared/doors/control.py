"""What `risk rules ...`, `risk models ...` and `risk audit` do, for one service; services/cli.py wires them.

Each command takes the service's runtime and acts as the API identity of the key it is given
(`--api-key`, or RISK_API_KEY), resolved against RISK_API_KEYS like an HTTP request, so the CLI and the HTTP
control endpoints share identities and the maker-checker rule.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from shared.control.store import Change, Kind
from shared.core.contract import validate_event
from shared.doors.backtest import Costs, as_html, as_table, backtest, load_history
from shared.errors import InvalidInputError, InvalidRulesetError, UnauthorizedError
from shared.files import read_chunks
from shared.runtime import Runtime


def identity(runtime: Runtime, api_key: str | None) -> str:
    who = runtime.settings.identity_of(api_key or "")
    if who is None:
        raise UnauthorizedError(
            "give the API key you act with (--api-key or RISK_API_KEY); it must be in RISK_API_KEYS"
        )
    return who


def check_ruleset(runtime: Runtime, path: Path, data: Path | None) -> list[str]:
    """Problems found, none when the ruleset is fine: the load-time checks (syntax, fields that exist,
    outcomes that exist), then, given events, the rules that never hit them or hit every one of them."""
    try:
        ruleset = runtime.parse_ruleset(path.read_text(), source=str(path))
    except InvalidRulesetError as error:
        return list(error.problems)
    if data is None:
        return []
    candidate = runtime.core.replaced(ruleset=ruleset)
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


def publish_ruleset(runtime: Runtime, path: Path, who: str) -> dict[str, Any]:
    text = path.read_text()
    ruleset = runtime.parse_ruleset(text, source=str(path))
    return asdict(runtime.control.propose_ruleset(runtime.service.name, ruleset, text, who))


def approve(runtime: Runtime, kind: Kind, proposal_id: str, who: str) -> dict[str, Any]:
    service = runtime.service.name
    proposal = next((p for p in runtime.control.proposals(service) if p.id == proposal_id), None)
    if proposal is not None and proposal.kind != kind:
        raise InvalidInputError(
            {"proposal": [f"proposal {proposal_id} is a {proposal.kind} change, not a {kind} change"]}
        )
    return _in_force(runtime, runtime.control.approve(service, proposal_id, who))


def refuse(runtime: Runtime, proposal_id: str, who: str, reason: str) -> dict[str, Any]:
    return asdict(runtime.control.refuse(runtime.service.name, proposal_id, who, reason))


def rollback(runtime: Runtime, kind: Kind, version: str, who: str) -> dict[str, Any]:
    return _in_force(runtime, runtime.control.rollback(runtime.service.name, kind, version, who))


def promote(runtime: Runtime, version: str, who: str) -> dict[str, Any]:
    return asdict(runtime.control.propose_promotion(runtime.service.name, version, who))


def set_challenger(runtime: Runtime, version: str | None, who: str) -> dict[str, Any]:
    return _in_force(runtime, runtime.control.set_challenger(runtime.service.name, version, who))


def ruleset_listing(runtime: Runtime) -> dict[str, Any]:
    store, service = runtime.control, runtime.service
    return {
        "active": store.active_ruleset(service.name) or f"packaged ({service.ruleset_path.name})",
        "published": store.ruleset_versions(service.name),
        "pending": [asdict(p) for p in store.proposals(service.name) if p.kind == "ruleset" and p.status == "pending"],
    }


def model_listing(runtime: Runtime) -> dict[str, Any]:
    store, registry, service = runtime.control, runtime.registry, runtime.service.name
    champion = store.champion(service)
    return {
        "champion": champion,
        "versions": [
            {
                "version": v,
                "champion": v == champion,
                "created_at": card.get("created_at"),
                "metrics": card.get("metrics"),
            }
            for v in registry.versions(service)
            for card in [registry.card(service, v)]
        ],
        "pending": [asdict(p) for p in store.proposals(service) if p.kind == "model" and p.status == "pending"],
    }


def audit_entries(runtime: Runtime) -> list[dict[str, Any]]:
    return runtime.control.audit(runtime.service.name)


def _in_force(runtime: Runtime, change: Change) -> dict[str, Any]:
    announced = runtime.announce(change, f"/risk/{change.service}/cli")
    return {"change": asdict(change), "announced": announced}


def printable(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


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
    candidate = current.replaced(
        model=runtime.load_model(model_version) if model_version else None,
        ruleset=runtime.parse_ruleset(ruleset_path.read_text(), str(ruleset_path)) if ruleset_path else None,
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
