"""The evaluation report every trained model gets beside its artifact (`report.html`, served at
`GET /v1/model/report`): the metrics table, then per evaluated outcome the ROC, precision-recall,
calibration and lift charts on held-out data and the model's feature importance. One self-contained
HTML file, charts embedded as PNG, readable offline."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Section:
    """One evaluated outcome: held-out truth (0/1) and the model's score for it (a probability, or any
    score that ranks, e.g. expected claims), with the model's feature importance."""

    name: str
    outcome: np.ndarray
    score: np.ndarray
    importance: Mapping[str, float]
    score_is_probability: bool = True


def evaluation_report(title: str, metrics: Mapping[str, Any], sections: Sequence[Section]) -> bytes:
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Metrics (held-out data)</h2>",
        f"<pre>{html.escape(json.dumps(metrics, indent=2, default=str))}</pre>",
    ]
    for section in sections:
        y, score = np.asarray(section.outcome, dtype=int), np.asarray(section.score, dtype=float)
        parts.append(f"<h2>{html.escape(section.name)}</h2><p>{len(y)} held-out rows, {int(y.sum())} positive</p>")
        for chart in (
            _roc,
            _precision_recall,
            _calibration if section.score_is_probability else _observed_by_decile,
            _lift,
        ):
            parts.append(f"<img alt='{chart.__name__.strip('_')}' src='data:image/png;base64,{_png(chart, y, score)}'>")
        parts.append(f"<img alt='importance' src='data:image/png;base64,{_importance_png(section.importance)}'>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "img{margin:0.5em;border:1px solid #ddd}pre{background:#f6f6f6;padding:1em}</style></head><body>"
        + "".join(parts)
        + "</body></html>\n"
    ).encode()


def _roc(axes: Any, y: np.ndarray, score: np.ndarray) -> None:
    false_positive, true_positive, _ = roc_curve(y, score)
    axes.plot(false_positive, true_positive)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axes.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")


def _precision_recall(axes: Any, y: np.ndarray, score: np.ndarray) -> None:
    precision, recall, _ = precision_recall_curve(y, score)
    axes.plot(recall, precision)
    axes.axhline(y.mean(), linestyle="--", color="grey")
    axes.set(title="precision-recall", xlabel="recall", ylabel="precision")


def _calibration(axes: Any, y: np.ndarray, score: np.ndarray) -> None:
    predicted, observed = _deciles(y, score)
    top = max(predicted.max(), observed.max()) * 1.05
    axes.plot(predicted, observed, marker="o")
    axes.plot([0, top], [0, top], linestyle="--", color="grey")
    axes.set(title="calibration (deciles)", xlabel="mean predicted", ylabel="observed rate")


def _observed_by_decile(axes: Any, y: np.ndarray, score: np.ndarray) -> None:
    _, observed = _deciles(y, score)
    axes.plot(range(1, len(observed) + 1), observed, marker="o")
    axes.set(title="observed rate by score decile", xlabel="decile (1 = lowest score)", ylabel="observed rate")


def _lift(axes: Any, y: np.ndarray, score: np.ndarray) -> None:
    _, observed = _deciles(y, score)
    axes.bar(range(1, len(observed) + 1), observed / max(y.mean(), 1e-12))
    axes.axhline(1.0, linestyle="--", color="grey")
    axes.set(title="lift by score decile", xlabel="decile (1 = lowest score)", ylabel="lift")


def _deciles(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(score, kind="stable")
    groups = np.array_split(order, 10)
    return (np.array([score[g].mean() for g in groups if len(g)]), np.array([y[g].mean() for g in groups if len(g)]))


def _png(chart: Callable[[Any, np.ndarray, np.ndarray], None], y: np.ndarray, score: np.ndarray) -> str:
    return _draw(lambda axes: chart(axes, y, score))


def _importance_png(importance: Mapping[str, float]) -> str:
    names = sorted(importance, key=importance.__getitem__)

    def draw(axes: Any) -> None:
        axes.barh(names, [importance[n] for n in names])
        axes.set(title="feature importance")

    return _draw(draw, height=max(3.0, 0.28 * len(names) + 1))


def _draw(draw: Callable[[Any], None], height: float = 3.6) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(4.6, height), dpi=90)
    draw(axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
