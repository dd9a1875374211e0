"""Laboratory units: the conversions between mass concentration (mg/dL) and molar concentration (mmol/L).

Results arrive in either unit, stated beside the value; the services compute in one canonical unit
(mg/dL) and convert at the edge, so nothing downstream ever guesses which unit a number is in.
A factor is the analyte's molar mass in g/mol divided by 10 (mg/dL per mmol/L).
"""

from __future__ import annotations

from typing import Literal

MG_DL = "mg/dL"
MMOL_L = "mmol/L"
UNITS: tuple[str, ...] = (MG_DL, MMOL_L)
Unit = Literal["mg/dL", "mmol/L"]

# Cholesterol (total, HDL, LDL): 386.65 g/mol; 38.67 is the factor laboratories and the ESC tables use.
CHOLESTEROL_MG_DL_PER_MMOL_L = 38.67
# Glucose (C6H12O6): 180.156 g/mol.
GLUCOSE_MG_DL_PER_MMOL_L = 18.0156

MG_DL_PER_MMOL_L: dict[str, float] = {
    "cholesterol": CHOLESTEROL_MG_DL_PER_MMOL_L,
    "glucose": GLUCOSE_MG_DL_PER_MMOL_L,
}


def to_mg_dl(value: float, unit: str, analyte: str) -> float:
    """`value` in `unit` as mg/dL; an unknown unit or analyte is a ValueError, never a guess."""
    factor = MG_DL_PER_MMOL_L[analyte]
    if unit == MG_DL:
        return float(value)
    if unit == MMOL_L:
        return float(value) * factor
    raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")


def to_mmol_l(value_mg_dl: float, analyte: str) -> float:
    return float(value_mg_dl) / MG_DL_PER_MMOL_L[analyte]
