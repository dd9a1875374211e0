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
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from shared.batch.scoring import features_of, score_chunk
from shared.batch.validation import columnar_fields, validate_table
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
    replay = _columns_replay(current, rows, labels, history) or _rows_replay(current, rows, labels, history)
    if replay.count == 0:
        raise InvalidInputError({"data": ["no valid event to replay"]})
    now = replay.decide(current)
    then = replay.decide(candidate)
    by_model = replay.decide(current.replaced(model=candidate.model)) if candidate.model is not current.model else now
    by_rules = (
        replay.decide(current.replaced(ruleset=candidate.ruleset)) if candidate.ruleset is not current.ruleset else now
    )
    moved_by: Counter[str] = Counter()
    for a, b, m, r in zip(now.decisions, then.decisions, by_model.decisions, by_rules.decisions, strict=True):
        if a != b:
            model_moved, rules_moved = m != a, r != a
            moved_by["both" if model_moved == rules_moved else "model" if model_moved else "rules"] += 1
    rule_ids = list(dict.fromkeys([*(r.id for r in current.ruleset.rules), *(r.id for r in candidate.ruleset.rules)]))
    result = Backtest(
        events=replay.count,
        rejected=replay.rejected,
        outcomes=tuple(dict.fromkeys([*current.ruleset.outcomes, *candidate.ruleset.outcomes])),
        current=Counter(now.decisions),
        candidate=Counter(then.decisions),
        moves=Counter((a, b) for a, b in zip(now.decisions, then.decisions, strict=True) if a != b),
        moved_by=moved_by,
        rule_hits={rule: (now.hits[rule], then.hits[rule]) for rule in rule_ids},
    )
    if any(label is not None for label in replay.labels):
        for side, decided, default in (
            ("current", now, current.ruleset.default),
            ("candidate", then, candidate.ruleset.default),
        ):
            flagged = [d != default for d in decided.decisions]
            result.labelled[side] = _flagging_quality(flagged, replay.labels, costs)
    return result


@dataclass(frozen=True)
class _Decided:
    decisions: list[str]
    hits: Counter[str]


@dataclass(frozen=True)
class _Replay:
    """The valid events of a backtest with their features, decided by any core: `decide`."""

    count: int
    rejected: int
    labels: list[int | None]
    decide: Callable[[ScoringCore], _Decided]


REPLAY_CHUNK_ROWS = 50_000


def _columns_replay(
    core: ScoringCore,
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[int | None],
    history: Mapping[str, Sequence[Any]] | None,
) -> _Replay | None:
    """The fast engine's replay: validation a column at a time, window features over the columns, each
    core's decisions by `score_chunk` (rules in bulk, the rows some rule may hit decided by the core itself:
    the same decisions and hits as `ScoringCore.decide`). None for a schema or rows it does not take."""
    if columnar_fields(core.contract.schema) is None or not rows:
        return None
    if any(value is None for row in rows for value in row.values()):
        return None  # a null given is the contract's to judge (a column's null reads as a field left out)
    names = dict.fromkeys(name for row in rows for name in row)  # every row's fields, not the first row's only
    try:
        raw = pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # a column of mixed kinds: the contract reads it row by row
    valid = validate_table(core.contract, raw, first_row=1)
    if valid.data.num_rows == 0:
        return _Replay(0, len(valid.rejects), [], lambda _core: _Decided([], Counter()))
    features = features_of(core, valid.data, history or {})

    def decide(scoring: ScoringCore) -> _Decided:
        decisions: list[str] = []
        hits: Counter[str] = Counter()
        for start in range(0, valid.data.num_rows, REPLAY_CHUNK_ROWS):
            part = slice(start, start + REPLAY_CHUNK_ROWS)
            decided = score_chunk(
                scoring,
                valid.documents.slice(start, REPLAY_CHUNK_ROWS),
                valid.data.slice(start, REPLAY_CHUNK_ROWS),
                features.take(part),
            )
            decisions += decided.column("decision").to_pylist()
            for text in decided.column("rule_hits").to_pylist():
                if text and text != "[]":
                    hits.update(hit["rule_id"] for hit in json.loads(text))
        return _Decided(decisions, hits)

    kept = [labels[number - 1] for number in valid.rows.tolist()]
    return _Replay(valid.data.num_rows, len(valid.rejects), kept, decide)


def _rows_replay(
    core: ScoringCore,
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[int | None],
    history: Mapping[str, Sequence[Any]] | None,
) -> _Replay:
    """The contract on each row and `ScoringCore.decide` over all of them (nested or optional fields)."""
    events, kept_labels, rejected = [], [], 0
    for row, label in zip(rows, labels, strict=True):
        try:
            events.append(core.validate(row))
            kept_labels.append(label)
        except InvalidInputError:
            rejected += 1
    features = core.service.offline_features([e.data for e in events], history or {}) if events else None

    def decide(scoring: ScoringCore) -> _Decided:
        assert features is not None
        decided = scoring.decide(events, features, 0.0)
        return _Decided([d.decision for d in decided], Counter(h.rule_id for d in decided for h in d.rule_hits))

    return _Replay(len(events), rejected, kept_labels, decide)


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
