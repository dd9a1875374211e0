"""What a candidate ruleset, model, or both would do, before either goes live: history replayed through
the scoring core with what is in force and with the candidate, on point-in-time features (the offline
features of the batch door, computed over the replayed history itself).

The report says how decisions move (counts and rates per decision, the events that change decision and
whether the model or the rules moved each), how each rule's hits move, and, where the data carries a
label, precision, recall and expected cost of flagging (any decision but the default) for both sides.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.core.scoring import ScoringCore
from shared.errors import InvalidInputError
from shared.files import read_chunks


@dataclass(frozen=True)
class Costs:
    false_positive: float = 1.0  # e.g. an analyst's review of a good event
    false_negative: float = 10.0  # e.g. a fraud or a claim let through


@dataclass
class Backtest:
    events: int
    rejected: int
    outcomes: tuple[str, ...]
    current: Counter[str]
    candidate: Counter[str]
    moves: Counter[tuple[str, str]]
    moved_by: Counter[str]  # "model", "rules", "both"
    rule_hits: dict[str, tuple[int, int]]  # rule -> (current, candidate)
    labelled: dict[str, dict[str, float]] = field(default_factory=dict)  # side -> precision, recall, cost


def load_history(path: Path, label: str | None) -> tuple[list[dict[str, Any]], list[int | None]]:
    rows, labels = [], []
    for chunk in read_chunks(path, 5_000):
        for row in chunk:
            value = row.pop(label, None) if label else None
            labels.append(None if value is None else int(str(value).strip().lower() in {"1", "true", "yes", "1.0"}))
            rows.append(row)
    return rows, labels


def backtest(
    current: ScoringCore,
    candidate: ScoringCore,
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[int | None],
    history: Mapping[str, Sequence[Any]] | None = None,
    costs: Costs = Costs(),
) -> Backtest:
    events, kept_labels, rejected = [], [], 0
    for row, label in zip(rows, labels, strict=True):
        try:
            events.append(current.validate(row))
            kept_labels.append(label)
        except InvalidInputError:
            rejected += 1
    if not events:
        raise InvalidInputError({"data": ["no valid event to replay"]})
    features = current.service.offline_features([e.data for e in events], history or {})
    now = current.decide(events, features, 0.0)
    then = candidate.decide(events, features, 0.0)
    by_model = (
        current.replaced(model=candidate.model).decide(events, features, 0.0)
        if candidate.model is not current.model
        else now
    )
    by_rules = (
        current.replaced(ruleset=candidate.ruleset).decide(events, features, 0.0)
        if candidate.ruleset is not current.ruleset
        else now
    )
    moved_by: Counter[str] = Counter()
    for a, b, m, r in zip(now, then, by_model, by_rules, strict=True):
        if a.decision != b.decision:
            model_moved, rules_moved = m.decision != a.decision, r.decision != a.decision
            moved_by["both" if model_moved == rules_moved else "model" if model_moved else "rules"] += 1
    rule_ids = list(dict.fromkeys([*(r.id for r in current.ruleset.rules), *(r.id for r in candidate.ruleset.rules)]))
    hits_now = Counter(h.rule_id for d in now for h in d.rule_hits)
    hits_then = Counter(h.rule_id for d in then for h in d.rule_hits)
    result = Backtest(
        events=len(events),
        rejected=rejected,
        outcomes=tuple(dict.fromkeys([*current.ruleset.outcomes, *candidate.ruleset.outcomes])),
        current=Counter(d.decision for d in now),
        candidate=Counter(d.decision for d in then),
        moves=Counter((a.decision, b.decision) for a, b in zip(now, then, strict=True) if a.decision != b.decision),
        moved_by=moved_by,
        rule_hits={rule: (hits_now[rule], hits_then[rule]) for rule in rule_ids},
    )
    if any(label is not None for label in kept_labels):
        for side, decisions, default in (
            ("current", now, current.ruleset.default),
            ("candidate", then, candidate.ruleset.default),
        ):
            result.labelled[side] = _flagging_quality([d.decision != default for d in decisions], kept_labels, costs)
    return result


def _flagging_quality(flagged: Sequence[bool], labels: Sequence[int | None], costs: Costs) -> dict[str, float]:
    pairs = [(f, y) for f, y in zip(flagged, labels, strict=True) if y is not None]
    tp = sum(1 for f, y in pairs if f and y)
    fp = sum(1 for f, y in pairs if f and not y)
    fn = sum(1 for f, y in pairs if not f and y)
    return {
        "labelled": len(pairs),
        "positives": tp + fn,
        "flagged": tp + fp,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
        "expected_cost": fp * costs.false_positive + fn * costs.false_negative,
    }


def as_table(result: Backtest, current_name: str, candidate_name: str) -> str:
    lines = [
        f"{result.events} events replayed ({result.rejected} refused by the contract)",
        "",
        f"{'decision':<14}{current_name:>22}{candidate_name:>22}",
    ]
    for outcome in result.outcomes:
        a, b = result.current[outcome], result.candidate[outcome]
        lines.append(f"{outcome:<14}{a:>12} {a / result.events:>8.2%}{b:>12} {b / result.events:>8.2%}")
    changed = sum(result.moves.values())
    lines += [
        "",
        f"{changed} events change decision"
        + (": " + ", ".join(f"{k} moved {v}" for k, v in sorted(result.moved_by.items())) if changed else ""),
    ]
    lines += [f"  {a} -> {b}: {n}" for (a, b), n in result.moves.most_common()]
    lines += ["", f"{'rule':<34}{'hits now':>10}{'hits then':>11}"]
    lines += [f"{rule:<34}{a:>10}{b:>11}" for rule, (a, b) in result.rule_hits.items()]
    for side, quality in result.labelled.items():
        lines.append(
            f"\n{side}: precision {quality['precision']:.3f}, recall {quality['recall']:.3f}, "
            f"expected cost {quality['expected_cost']:g} over {quality['labelled']:g} labelled events"
        )
    return "\n".join(lines)


def as_html(result: Backtest, service: str, current_name: str, candidate_name: str) -> str:
    table = html.escape(as_table(result, current_name, candidate_name))
    chart = _decision_chart(result, current_name, candidate_name)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(service)} backtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em}</style></head><body>"
        f"<h1>{html.escape(service)}: {html.escape(candidate_name)} against {html.escape(current_name)}</h1>"
        f"<img alt='decisions' src='data:image/png;base64,{chart}'><pre>{table}</pre></body></html>\n"
    )


def _decision_chart(result: Backtest, current_name: str, candidate_name: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.5), dpi=100)
    positions = range(len(result.outcomes))
    axes.bar([p - 0.2 for p in positions], [result.current[o] for o in result.outcomes], 0.4, label=current_name)
    axes.bar([p + 0.2 for p in positions], [result.candidate[o] for o in result.outcomes], 0.4, label=candidate_name)
    axes.set_xticks(list(positions), result.outcomes)
    axes.set_ylabel("events")
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
