"""Quality in production, per model version, from the recorded decisions and their outcomes.

- Precision and recall of each decision outcome and of each rule, over the decisions whose outcome is known
  (precision: the share of them that turned out positive; recall: the share of all known positives they
  caught).
- Calibration: Brier score, the calibration slope (logistic recalibration of the outcome on the score's
  log-odds; 1 is ideal) and intercept (calibration-in-the-large; 0 is ideal), and a reliability table by
  score bin. For a score that is not a probability the service says how to read one from it.
- Drift: the population stability index of the score and of every model feature against the reference the
  model card saved at training time; it needs no outcome, so it is current from the first decision.

A drift PSI above 0.2, or a calibration slope outside 0.8 to 1.2 (once enough outcomes are known to say),
is an alert: logged, counted, listed in the report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from shared.core.service import Service
from shared.decisions import Labelled
from shared.logging import get_logger
from shared.metrics import QUALITY_ALERTS
from shared.modeling.binary import calibration_in_the_large
from shared.modeling.drift import DRIFT_ALERT_PSI, population_stability_index

CALIBRATION_SLOPE_RANGE = (0.8, 1.2)
MIN_LABELLED_FOR_CALIBRATION = 200  # fewer outcomes than this say too little about the slope to alert on
RELIABILITY_BINS = 10


def quality_report(
    service: Service,
    labelled: Sequence[Labelled],
    cards: Mapping[str, Mapping[str, Any]],
    computed_at: datetime,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> dict[str, Any]:
    """The report of `labelled` (a window of recorded decisions), one section per model version that made
    them; `cards` are those versions' model cards (their drift references)."""
    by_version: dict[str, list[Labelled]] = defaultdict(list)
    for row in labelled:
        by_version[row.model_version].append(row)
    models = {
        version: _model_section(service, rows, cards.get(version, {})) for version, rows in sorted(by_version.items())
    }
    alerts = [alert for version, section in models.items() for alert in _alerts(version, section)]
    log = get_logger(f"{service.name}.monitor")
    for alert in alerts:
        QUALITY_ALERTS.labels(service.name, alert["kind"]).inc()
        log.warning("quality_alert", **alert)
    return {
        "service": service.name,
        "computed_at": computed_at.isoformat(),
        "window": {"from": _iso(window[0]), "to": _iso(window[1])},
        "decisions": len(labelled),
        "labelled": sum(r.label is not None for r in labelled),
        "models": models,
        "alerts": alerts,
    }


def _model_section(service: Service, rows: Sequence[Labelled], card: Mapping[str, Any]) -> dict[str, Any]:
    known = [r for r in rows if r.label is not None]
    positives = sum(r.label == 1 for r in known)
    return {
        "decisions": len(rows),
        "labelled": len(known),
        "positives": positives,
        "outcomes": _precision_recall(known, positives, lambda r: (r.decision,), {r.decision for r in rows}),
        "rules": _precision_recall(known, positives, lambda r: r.rule_ids, {h for r in rows for h in r.rule_ids}),
        "calibration": _calibration(service, known),
        "drift": _drift(rows, card.get("drift_reference")),
    }


def _precision_recall(
    known: Sequence[Labelled], positives: int, groups_of: Any, every_group: set[str]
) -> dict[str, dict[str, Any]]:
    counted: dict[str, list[int]] = {group: [0, 0] for group in every_group}  # labelled, positive
    for row in known:
        for group in groups_of(row):
            counted[group][0] += 1
            counted[group][1] += int(row.label == 1)
    return {
        group: {
            "labelled": labelled,
            "positives": hits,
            "precision": round(hits / labelled, 6) if labelled else None,
            "recall": round(hits / positives, 6) if positives else None,
        }
        for group, (labelled, hits) in sorted(counted.items())
    }


def _calibration(service: Service, known: Sequence[Labelled]) -> dict[str, Any] | None:
    if not known:
        return None
    outcome = np.array([r.label for r in known], dtype=float)
    probability = np.clip(service.probability_of(np.array([r.score for r in known], dtype=float)), 1e-12, 1 - 1e-12)
    logit = np.log(probability / (1 - probability))
    both = 0 < outcome.sum() < len(outcome)
    slope = (
        float(LogisticRegression(C=np.inf, max_iter=1000).fit(logit.reshape(-1, 1), outcome).coef_[0, 0])
        if both
        else None
    )
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    which = np.clip(np.searchsorted(edges, probability, side="right") - 1, 0, RELIABILITY_BINS - 1)
    reliability = [
        {
            "bin": [round(float(edges[b]), 2), round(float(edges[b + 1]), 2)],
            "count": int((which == b).sum()),
            "mean_predicted": round(float(probability[which == b].mean()), 6),
            "observed_rate": round(float(outcome[which == b].mean()), 6),
        }
        for b in range(RELIABILITY_BINS)
        if (which == b).any()
    ]
    return {
        "brier": round(float(np.mean((probability - outcome) ** 2)), 6),
        "slope": round(slope, 6) if slope is not None else None,
        "intercept": round(calibration_in_the_large(outcome, logit), 6) if both else None,
        "mean_predicted": round(float(probability.mean()), 6),
        "observed_rate": round(float(outcome.mean()), 6),
        "reliability": reliability,
    }


def _drift(rows: Sequence[Labelled], reference: Mapping[str, Any] | None) -> dict[str, Any]:
    if not reference:
        return {"unavailable": "the model card has no drift reference (trained before references were saved)"}
    columns: dict[str, list[Any]] = {"score": [r.score for r in rows]}
    for row in rows:
        for name, value in row.features.items():
            columns.setdefault(name, []).append(value)
    psi = {name: population_stability_index(reference[name], columns.get(name, [])) for name in sorted(reference)}
    return {"score": _rounded(psi.pop("score", None)), "features": {k: _rounded(v) for k, v in psi.items()}}


def _alerts(version: str, section: Mapping[str, Any]) -> list[dict[str, Any]]:
    alerts = []
    drift = section["drift"]
    if "unavailable" not in drift:
        for name, value in {"score": drift["score"], **drift["features"]}.items():
            if value is not None and value > DRIFT_ALERT_PSI:
                alerts.append(
                    {
                        "kind": "drift",
                        "model_version": version,
                        "figure": name,
                        "value": value,
                        "threshold": DRIFT_ALERT_PSI,
                    }
                )
    calibration = section["calibration"]
    low, high = CALIBRATION_SLOPE_RANGE
    if (
        calibration is not None
        and calibration["slope"] is not None
        and section["labelled"] >= MIN_LABELLED_FOR_CALIBRATION
        and not low <= calibration["slope"] <= high
    ):
        alerts.append(
            {
                "kind": "calibration",
                "model_version": version,
                "figure": "slope",
                "value": calibration["slope"],
                "threshold": list(CALIBRATION_SLOPE_RANGE),
            }
        )
    return alerts


def _rounded(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
