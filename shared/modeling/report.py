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


def monitoring_page(report: Mapping[str, Any]) -> bytes:
    """The monitoring report as a page for the data scientist: alerts first, then per model version the
    drift of the score and every feature (PSI against training, with the 0.1 and 0.2 marks), calibration in
    production (reliability by score bin, Brier, slope, intercept), precision and recall per decision
    outcome and per rule."""
    title = f"{report['service']}: quality in production"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>computed {html.escape(str(report['computed_at']))}; {report['decisions']} decisions, "
        f"{report['labelled']} with a known outcome</p>",
        "<h2>Alerts</h2>",
        _alert_list(report["alerts"]),
    ]
    for version, section in report["models"].items():
        parts.append(f"<h2>Model {html.escape(version)}</h2>")
        parts.append(
            f"<p>{section['decisions']} decisions, {section['labelled']} labelled, {section['positives']} positive</p>"
        )
        drift = section["drift"]
        if "unavailable" in drift:
            parts.append(f"<p>Drift: {html.escape(drift['unavailable'])}</p>")
        else:
            values = {"score": drift["score"], **drift["features"]}
            shown = {k: v for k, v in values.items() if v is not None}
            parts.append(f"<img alt='drift' src='data:image/png;base64,{_psi_png(shown)}'>")
        calibration = section["calibration"]
        if calibration is None:
            parts.append("<p>Calibration: no outcome known yet.</p>")
        else:
            parts.append(f"<img alt='reliability' src='data:image/png;base64,{_reliability_png(calibration)}'>")
            figures = {k: calibration[k] for k in ("brier", "slope", "intercept", "mean_predicted", "observed_rate")}
            parts.append(_table("Calibration", ["figure", "value"], [[k, v] for k, v in figures.items()]))
        for kind in ("outcomes", "rules"):
            rows = [
                [name, f["labelled"], f["positives"], f["precision"], f["recall"]] for name, f in section[kind].items()
            ]
            parts.append(_table(f"Per {kind[:-1]}", [kind[:-1], "labelled", "positive", "precision", "recall"], rows))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "img{margin:0.5em;border:1px solid #ddd}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:0.2em 0.6em;text-align:right}th{background:#f3f3f3}"
        ".alert{color:#a00}</style></head><body>" + "".join(parts) + "</body></html>\n"
    ).encode()


def _alert_list(alerts: Sequence[Mapping[str, Any]]) -> str:
    if not alerts:
        return "<p>None: no drift above PSI 0.2, calibration slope within 0.8 to 1.2.</p>"
    items = "".join(
        f"<li class='alert'>{html.escape(a['kind'])} of {html.escape(str(a['figure']))} (model "
        f"{html.escape(a['model_version'])}): {a['value']} against {html.escape(json.dumps(a['threshold']))}</li>"
        for a in alerts
    )
    return f"<ul>{items}</ul>"


def _table(caption: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_shown(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _psi_png(values: Mapping[str, float]) -> str:
    names = sorted(values, key=values.__getitem__)

    def draw(axes: Any) -> None:
        axes.barh(names, [values[n] for n in names], color=["#c33" if values[n] > 0.2 else "#48a" for n in names])
        for mark in (0.1, 0.2):
            axes.axvline(mark, linestyle="--", color="grey", linewidth=1)
        axes.set(title="drift: PSI against training", xlabel="population stability index")

    return _draw(draw, height=max(3.0, 0.28 * len(names) + 1))


def _reliability_png(calibration: Mapping[str, Any]) -> str:
    bins = calibration["reliability"]

    def draw(axes: Any) -> None:
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        axes.scatter(
            [b["mean_predicted"] for b in bins],
            [b["observed_rate"] for b in bins],
            s=[20 + 180 * b["count"] / max(c["count"] for c in bins) for b in bins],
        )
        axes.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="predicted (bin mean)",
            ylabel="observed rate",
            title="reliability in production",
        )

    return _draw(draw, height=4.2)
