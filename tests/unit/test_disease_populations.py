"""The condition models' populations read age in completed years, as their training data record it and the
clinical equations read it: a model trained on ages 30 to 75 speaks for a 75.9-year-old, not for a 76-year-old."""

from __future__ import annotations

import numpy as np
import pytest

from services.disease_risk.models import Population

CHD_LIKE = Population(("female", "male"), (30.0, 75.0), None)
DIABETES_LIKE = Population(("female",), (21.0, 63.0), "diabetes", ("glucose_2h",))


def reasons(population: Population, ages: list[float]) -> list[str | None]:
    columns = {
        "male": np.zeros(len(ages)),
        "age": np.asarray(ages, dtype=float),
        "diabetes": np.zeros(len(ages)),
        "glucose_2h": np.full(len(ages), 120.0),
    }
    return population.reasons(columns, "test")


@pytest.mark.parametrize(
    ("population", "edges"),
    [
        (CHD_LIKE, [(29.9, False), (30, True), (75, True), (75.9, True), (76, False)]),
        (DIABETES_LIKE, [(20.9, False), (21, True), (63, True), (63.9, True), (64, False)]),
    ],
)
def test_model_populations_read_age_in_completed_years(population: Population, edges: list[tuple[float, bool]]) -> None:
    """At each edge of a population's age range: a fraction below the youngest training age is outside, the
    whole oldest year is inside, and the next birthday is outside, with a reason naming the range."""
    found = reasons(population, [age for age, _ in edges])
    low, high = population.age_range
    for (age, inside), reason in zip(edges, found, strict=True):
        if inside:
            assert reason is None, (age, reason)
        else:
            assert reason == (
                f"not applicable, because the test model was trained on ages {low:g} to {high:g} (in completed years)"
            ), age
