"""The disease models: one calibrated classifier per condition, each with the population it was trained on.

A model speaks only for people like those it learnt from. Each condition states that population (sexes,
the age range of its training data, the diagnosis that excludes a person, the inputs it cannot do
without); an assessment outside it gets "not applicable, because ..." for that condition, as the
equations do, never an extrapolated number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.disease_risk.features import CHD_FEATURES, DIABETES_FEATURES
from shared.modeling.binary import CalibratedClassifier
from shared.modeling.explain import Contribution
from shared.modeling.registry import MODEL_DIR

MANIFEST = "conditions.json"


Columns = Mapping[str, np.ndarray]


def columns_of(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every column of an all-numeric frame as a numpy array, from one conversion (pandas 3 costs tens of
    microseconds for each column taken on its own); serving reads `FeatureBatch.columns` instead."""
    matrix = features.to_numpy(dtype=np.float64)
    return {name: matrix[:, position] for position, name in enumerate(features.columns)}


@dataclass(frozen=True)
class Population:
    """Who a condition's model applies to, read off its training data."""

    sexes: tuple[str, ...]
    age_range: tuple[float, float]
    excluded_by: str | None  # a diagnosis flag: people who already have it are outside the model
    required: tuple[str, ...] = ()  # inputs the model cannot do without
    fill: dict[str, float] = field(default_factory=dict)  # optional inputs, filled with training medians

    def reasons(self, columns: Mapping[str, np.ndarray], condition: str) -> list[str | None]:
        """Per row, None when the row is inside the population, else why not, in words."""
        male = columns["male"] == 1.0
        people = " and ".join({"female": "women", "male": "men"}[sex] for sex in self.sexes)
        outside_sex = male if "male" not in self.sexes else ~male if "female" not in self.sexes else np.zeros_like(male)
        low, high = self.age_range
        ages = np.floor(columns["age"])  # completed years, as the training data record age and the equations read it
        excluded = columns[self.excluded_by] == 1.0 if self.excluded_by else np.zeros_like(male)
        missing = {name: np.isnan(columns[name]) for name in self.required}
        found: list[str | None] = []
        for row in range(len(ages)):
            if outside_sex[row]:
                found.append(f"not applicable, because the {condition} model was trained on {people} only")
            elif not low <= ages[row] <= high:
                found.append(
                    f"not applicable, because the {condition} model was trained on ages {low:g} to {high:g} "
                    "(in completed years)"
                )
            elif excluded[row]:
                found.append(f"not applicable, because {self.excluded_by} is already diagnosed")
            elif absent := [name for name, gaps in missing.items() if gaps[row]]:
                verb = "was" if len(absent) == 1 else "were"
                found.append(f"not applicable, because {' and '.join(absent)} {verb} not given")
            else:
                found.append(None)
        return found


CONDITION_TITLES = {
    "diabetes": "diabetes (WHO criteria), Pima Indian women",
    "chd": "coronary heart disease within 10 years (Framingham)",
}
CONDITION_FEATURES = {"diabetes": DIABETES_FEATURES, "chd": CHD_FEATURES}


@dataclass(frozen=True)
class ConditionModel:
    name: str
    classifier: CalibratedClassifier
    population: Population


@dataclass(frozen=True)
class ConditionRisks:
    """Per condition: the calibrated risk of each row (NaN where not applicable) and the reasons why not."""

    risks: dict[str, np.ndarray]
    not_applicable: dict[str, list[str | None]]


class DiseaseModels:
    """The registry artifact of the disease service: a model per condition, saved as JSON and .cbm files."""

    def __init__(self, conditions: dict[str, ConditionModel]) -> None:
        self.conditions = conditions

    def save(self, directory: Path) -> None:
        manifest = {}
        for name, condition in self.conditions.items():
            condition.classifier.save(directory, name)
            population = condition.population
            manifest[name] = {
                "sexes": list(population.sexes),
                "age_range": list(population.age_range),
                "excluded_by": population.excluded_by,
                "required": list(population.required),
                "fill": population.fill,
            }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, version_dir: Path) -> DiseaseModels:
        directory = version_dir / MODEL_DIR
        manifest = json.loads((directory / MANIFEST).read_text())
        return cls(
            {
                name: ConditionModel(
                    name,
                    CalibratedClassifier.load(directory, name),
                    Population(
                        tuple(entry["sexes"]),
                        tuple(entry["age_range"]),
                        entry["excluded_by"],
                        tuple(entry["required"]),
                        dict(entry["fill"]),
                    ),
                )
                for name, entry in manifest.items()
            }
        )

    def assess(self, columns: Columns) -> ConditionRisks:
        """Each condition's risk of every row (columns by name), or why its model does not apply."""
        risks, reasons = {}, {}
        for name, condition in self.conditions.items():
            why_not = condition.population.reasons(columns, name)
            applicable = np.array([reason is None for reason in why_not], dtype=bool)
            risk = np.full(len(why_not), np.nan)
            if applicable.any():
                risk[applicable] = condition.classifier.probability(self._inputs(condition, columns)[applicable])
            risks[name], reasons[name] = risk, why_not
        return ConditionRisks(risks, reasons)

    def top_contributions(
        self, columns: Columns, assessed: ConditionRisks, positions: Sequence[int], k: int
    ) -> list[list[Contribution]]:
        """The k features raising the risk most of each row at `positions`, over the conditions that apply
        to it (log-odds scale), from the risks `assess` already found."""
        wanted = np.asarray(positions, dtype=np.intp)
        columns = {name: values[wanted] for name, values in columns.items()}
        best: list[dict[str, Contribution]] = [{} for _ in range(len(wanted))]
        for name, condition in self.conditions.items():
            rows = np.flatnonzero(~np.isnan(assessed.risks[name][wanted]))
            if not len(rows):
                continue
            values = condition.classifier.contributions(self._inputs(condition, columns)[rows])
            names = condition.classifier.features
            for position, row in enumerate(rows):
                for column, contribution in enumerate(values[position]):
                    feature = names[column]
                    if contribution > 0 and contribution > getattr(best[row].get(feature), "contribution", 0.0):
                        best[row][feature] = Contribution(feature, float(columns[feature][row]), float(contribution))
        return [sorted(found.values(), key=lambda c: -c.contribution)[:k] for found in best]

    @staticmethod
    def _inputs(condition: ConditionModel, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The condition's features as a row-major matrix, optional inputs filled with training medians."""
        fill = condition.population.fill
        return np.column_stack(
            [
                np.where(np.isnan(columns[name]), fill[name], columns[name]) if name in fill else columns[name]
                for name in condition.classifier.features
            ]
        )

    def describe(self) -> dict[str, Any]:
        return {
            name: {
                "algorithm": c.classifier.algorithm,
                "features": list(c.classifier.features),
                "population": {
                    "sexes": list(c.population.sexes),
                    "age_range": list(c.population.age_range),
                    "excluded_by": c.population.excluded_by,
                    "required": list(c.population.required),
                },
            }
            for name, c in self.conditions.items()
        }
