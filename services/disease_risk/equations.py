"""Validated clinical risk equations, implemented from their papers, shown beside the ML model's prediction.

Why this module exists: a model's score is easier to trust when a clinician can compare it with the
equation they already know. That comparison is only honest if each equation is computed exactly as
published, in the units and for the people it was derived for. So every equation here:

- takes its inputs in fixed, stated units (listed per input in `EQUATIONS[name].units`, published by the API);
- reads age in completed years, as the papers state their ranges ("aged 30-74" includes 74 years and 11
  months): a 74.9-year-old is 74, inside Framingham, and the equation is computed at 74;
- states its variant, outcome, horizon and valid ranges in an `EquationSpec`;
- returns "not applicable, because ..." outside its valid ranges or population, never an extrapolated number.

Coefficients are module-level constants; each table names the paper and table it was transcribed from and
the independent sources it was cross-checked against. Malformed categorical input (an unknown sex, race,
region or family-history code, a non-bool flag) is a caller error and raises `ValueError`/`TypeError`;
a well-formed person for whom an equation was not derived gets `applicable=False` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

from shared.features.units import CHOLESTEROL_MG_DL_PER_MMOL_L

Sex = Literal["female", "male"]
PceRace = Literal["white", "african_american", "other"]
Score2Region = Literal["low", "moderate", "high", "very_high"]
FamilyHistory = Literal["none", "second_degree", "first_degree"]

SEXES: tuple[str, ...] = ("female", "male")
PCE_RACES: tuple[str, ...] = ("white", "african_american", "other")
SCORE2_REGIONS: tuple[str, ...] = ("low", "moderate", "high", "very_high")
FAMILY_HISTORY_CODES: tuple[str, ...] = ("none", "second_degree", "first_degree")

# SCORE2 was fitted in mmol/L; the service takes cholesterol in mg/dL everywhere, so SCORE2 converts with the
# conventional cholesterol factor 38.67 mg/dL per mmol/L (1 mmol/L x 386.7 g/mol / 10 dL/L).
MG_DL_PER_MMOL_L_CHOLESTEROL = CHOLESTEROL_MG_DL_PER_MMOL_L


@dataclass(frozen=True)
class EquationResult:
    """One equation's answer for one person: a risk, or the reason it does not apply.

    `risk` is the 10-year risk as a probability in 0..1, except for FINDRISC where it is the points total
    (0-26); `reason` is set exactly when `applicable` is False, and then `risk` and `category` are None.
    """

    equation: str
    variant: str
    applicable: bool
    risk: float | None
    category: str | None
    reason: str | None
    inputs_used: dict[str, object]


@dataclass(frozen=True)
class EquationSpec:
    """What the API publishes about an equation, so a reader can judge whether a number applies to them."""

    name: str
    citation: str
    variant: str
    outcome: str
    horizon_years: int
    units: dict[str, str]
    valid_ranges: dict[str, tuple[float, float]]
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------------------
# Shared checks
# ---------------------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    """Numbers in reasons read like the papers: 74, not 74.0; 5.5, not 5.500000001."""
    return f"{value:g}"


def completed_years(age: float) -> int:
    """Age as the papers count it: whole years lived, so 74.9 is 74 (and still inside a range "30-74")."""
    return math.floor(age)


def _ranged_value(name: str, value: float) -> float:
    """What a range is checked against: age in completed years, every other input as given."""
    return completed_years(value) if name == "age" else value


def _described(name: str, value: float, unit: str) -> str:
    """An input as a reason names it; a fractional age also shows the completed years that were compared."""
    if name == "age" and completed_years(value) != value:
        return f"age = {_fmt(value)} {unit} ({completed_years(value)} in completed years)"
    return f"{name} = {_fmt(value)} {unit}"


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """A categorical code outside its list is a caller bug, not a person the equation excludes."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_flags(flags: Mapping[str, object]) -> None:
    """Flags must be real bools: bool('no') is True, so a string here would silently flip a risk factor."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool; got {value!r}")


def _not_a_finite_number(value: object) -> bool:
    """bool is an int subclass, but True as an age is a caller bug that we refuse rather than compute."""
    if type(value) is float or type(value) is int:  # the usual case, answered first (bool is neither)
        return not math.isfinite(value)
    return isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)


def _range_reason(spec: EquationSpec, values: Mapping[str, float]) -> str | None:
    """The first input outside the published range, named with its value, unit and the range."""
    for name, (low, high) in spec.valid_ranges.items():
        value = values[name]
        if _not_a_finite_number(value):
            unit = _short_unit(spec.units[name])
            return (
                f"not applicable, because {name} = {value!r} is not a finite number "
                f"({spec.name} needs {name} in {unit}, range {_fmt(low)}-{_fmt(high)})"
            )
        if not low <= _ranged_value(name, value) <= high:
            unit = _short_unit(spec.units[name])
            return (
                f"not applicable, because {_described(name, value, unit)} is outside the valid range "
                f"{_fmt(low)}-{_fmt(high)} {unit} of {spec.name}"
            )
    return None


def _positive_reason(spec: EquationSpec, values: Mapping[str, float]) -> str | None:
    """Inputs without a published range must still be positive measurements (several equations take logs)."""
    for name, value in values.items():
        if _not_a_finite_number(value) or value <= 0:
            unit = _short_unit(spec.units[name])
            return (
                f"not applicable, because {name} = {value!r} {unit} is not a positive finite measurement "
                f"({spec.name} publishes no range for {name}; only positive values can be used)"
            )
    return None


def _short_unit(unit_text: str) -> str:
    """Units in EQUATIONS may carry an explanation after ';' — reasons only need the unit itself."""
    return unit_text.split(";", maxsplit=1)[0].strip()


def _not_applicable(spec_key: str, variant: str, reason: str, inputs: dict[str, object]) -> EquationResult:
    return EquationResult(
        equation=spec_key,
        variant=variant,
        applicable=False,
        risk=None,
        category=None,
        reason=reason,
        inputs_used=inputs,
    )


def _cox_risk(baseline_survival: float, linear_sum: float, mean_sum: float) -> float:
    """10-year risk of a Cox model published as S0(10) and the mean of the linear predictor."""
    return 1.0 - baseline_survival ** math.exp(linear_sum - mean_sum)


# ---------------------------------------------------------------------------------------------------------
# Framingham general CVD (D'Agostino et al. 2008)
# ---------------------------------------------------------------------------------------------------------


class FraminghamCoefficients(NamedTuple):
    ln_age: float
    ln_total_cholesterol: float
    ln_hdl: float
    ln_sbp_untreated: float
    ln_sbp_treated: float
    smoker: float
    diabetes: float
    baseline_survival: float
    mean_sum: float


# D'Agostino RB Sr et al., Circulation 2008;117:743-753, Table 2 (regression coefficients of the primary,
# lipid-based general CVD model) with its 10-year baseline survival and mean linear predictor.
# Cross-checked: identical in shared/DATA.md, the Framingham Heart Study's own risk-function page
# (framinghamheartstudy.org, "Cardiovascular Disease (10-year risk)": betas and So(10)), Medscape's
# calculator page (betas, So(10), means), and the CVrisk R package (data-raw/score_coef.R, all values).
FRAMINGHAM_COEFFICIENTS: dict[str, FraminghamCoefficients] = {
    "female": FraminghamCoefficients(
        ln_age=2.32888,
        ln_total_cholesterol=1.20904,
        ln_hdl=-0.70833,
        ln_sbp_untreated=2.76157,
        ln_sbp_treated=2.82263,
        smoker=0.52873,
        diabetes=0.69154,
        baseline_survival=0.95012,
        mean_sum=26.1931,
    ),
    "male": FraminghamCoefficients(
        ln_age=3.06117,
        ln_total_cholesterol=1.12370,
        ln_hdl=-0.93263,
        ln_sbp_untreated=1.93303,
        ln_sbp_treated=1.99881,
        smoker=0.65451,
        diabetes=0.57367,
        baseline_survival=0.88936,
        mean_sum=23.9802,
    ),
}

AGE_UNIT = "years; read in completed years (74.9 is 74)"

_CVD_UNITS_COMMON: dict[str, str] = {
    "age": AGE_UNIT,
    "sex": "category; female or male",
    "total_cholesterol": "mg/dL",
    "hdl_cholesterol": "mg/dL",
    "systolic_bp": "mmHg",
    "treated_hypertension": "bool; currently taking blood-pressure-lowering medication",
    "smoker": "bool; current smoker",
    "diabetes": "bool; diabetes diagnosed",
    "prior_cvd": "bool; known cardiovascular disease (the equations are for people without it)",
}

FRAMINGHAM_SPEC = EquationSpec(
    name="Framingham general CVD",
    citation="D'Agostino RB Sr, Vasan RS, Pencina MJ, et al. General cardiovascular risk profile for use in "
    "primary care: the Framingham Heart Study. Circulation 2008;117:743-753.",
    variant="lipid-based (total and HDL cholesterol) sex-specific Cox model, Table 2; not the BMI-based office model",
    outcome="first CVD event: coronary death, myocardial infarction, coronary insufficiency, angina, ischaemic or "
    "haemorrhagic stroke, transient ischaemic attack, peripheral artery disease, heart failure",
    horizon_years=10,
    units=dict(_CVD_UNITS_COMMON),
    valid_ranges={"age": (30.0, 74.0)},
    notes=(
        "Derived in Framingham participants aged 30-74 free of CVD; people with prior CVD are not applicable.",
        "Age is read in completed years: 30 years to 74 years and 11 months apply, and are computed at 30-74.",
        "The paper publishes no range for cholesterol or blood pressure; they must be positive (logs are taken).",
        "No risk category is given: the paper defines none for the continuous equation.",
    ),
)


def framingham_general_cvd(
    *,
    age: float,
    sex: Sex,
    total_cholesterol: float,
    hdl_cholesterol: float,
    systolic_bp: float,
    treated_hypertension: bool,
    smoker: bool,
    diabetes: bool,
    prior_cvd: bool = False,
) -> EquationResult:
    """10-year general CVD risk, lipid model: risk = 1 - S0 ** exp(sum(beta * x) - mean).

    Treated and untreated SBP have separate coefficients because treatment changes what a given pressure
    means for risk; only the one matching `treated_hypertension` enters the sum.
    """
    _check_choice("sex", sex, SEXES)
    _check_flags(
        {
            "treated_hypertension": treated_hypertension,
            "smoker": smoker,
            "diabetes": diabetes,
            "prior_cvd": prior_cvd,
        }
    )
    labs = {"total_cholesterol": total_cholesterol, "hdl_cholesterol": hdl_cholesterol, "systolic_bp": systolic_bp}
    inputs: dict[str, object] = {
        "age": age,
        "sex": sex,
        **labs,
        "treated_hypertension": treated_hypertension,
        "smoker": smoker,
        "diabetes": diabetes,
        "prior_cvd": prior_cvd,
    }
    variant = f"{sex}, lipid model"
    reason = (
        _cvd_population_reason(FRAMINGHAM_SPEC, prior_cvd)
        or _range_reason(FRAMINGHAM_SPEC, {"age": age})
        or _positive_reason(FRAMINGHAM_SPEC, labs)
    )
    if reason:
        return _not_applicable("framingham_general_cvd", variant, reason, inputs)
    years = completed_years(age)
    inputs["age_in_completed_years"] = years
    c = FRAMINGHAM_COEFFICIENTS[sex]
    linear_sum = (
        c.ln_age * math.log(years)
        + c.ln_total_cholesterol * math.log(total_cholesterol)
        + c.ln_hdl * math.log(hdl_cholesterol)
        + (c.ln_sbp_treated if treated_hypertension else c.ln_sbp_untreated) * math.log(systolic_bp)
        + c.smoker * smoker
        + c.diabetes * diabetes
    )
    risk = _cox_risk(c.baseline_survival, linear_sum, c.mean_sum)
    return EquationResult("framingham_general_cvd", variant, True, risk, None, None, inputs)


def _cvd_population_reason(spec: EquationSpec, prior_cvd: bool) -> str | None:
    """All three CVD equations are primary-prevention tools: known CVD puts a person outside them."""
    if prior_cvd:
        return (
            f"not applicable, because prior_cvd is true and {spec.name} was derived in people "
            "without cardiovascular disease"
        )
    return None


# ---------------------------------------------------------------------------------------------------------
# ACC/AHA Pooled Cohort Equations (Goff et al. 2013)
# ---------------------------------------------------------------------------------------------------------


class PceCoefficients(NamedTuple):
    ln_age: float
    ln_age_squared: float
    ln_total_cholesterol: float
    ln_age_x_ln_total_cholesterol: float
    ln_hdl: float
    ln_age_x_ln_hdl: float
    ln_treated_sbp: float
    ln_age_x_ln_treated_sbp: float
    ln_untreated_sbp: float
    ln_age_x_ln_untreated_sbp: float
    smoker: float
    ln_age_x_smoker: float
    diabetes: float
    mean_sum: float
    baseline_survival: float


# Goff DC Jr et al., 2013 ACC/AHA Guideline on the Assessment of Cardiovascular Risk, Circulation
# 2014;129(suppl 2):S49-S73, Table A ("Equation Parameters of the Pooled Cohort Equations"): coefficients,
# mean "coefficient x value" sum and 10-year baseline survival per race-sex group, as printed (3 decimals,
# means to 2, survival to 4). Terms the guideline does not use for a group are 0.
# Cross-checked: identical in the CVrisk R package (data-raw/score_coef.R), and in a calculator page
# (skyscape) except its two typos (+3.114 for white women's ln age x ln TC, 86.16 for African-American
# women's mean) which the guideline example rules out (see tests). Cerner's ascvd-risk-calculator
# (app/load_fhir_data.js) uses the same betas with more digits for African-American women and for the
# means/survivals (e.g. 86.6081, 0.96652); we keep the guideline's printed values.
PCE_COEFFICIENTS: dict[tuple[str, str], PceCoefficients] = {
    ("white", "female"): PceCoefficients(
        ln_age=-29.799,
        ln_age_squared=4.884,
        ln_total_cholesterol=13.540,
        ln_age_x_ln_total_cholesterol=-3.114,
        ln_hdl=-13.578,
        ln_age_x_ln_hdl=3.149,
        ln_treated_sbp=2.019,
        ln_age_x_ln_treated_sbp=0.0,
        ln_untreated_sbp=1.957,
        ln_age_x_ln_untreated_sbp=0.0,
        smoker=7.574,
        ln_age_x_smoker=-1.665,
        diabetes=0.661,
        mean_sum=-29.18,
        baseline_survival=0.9665,
    ),
    ("african_american", "female"): PceCoefficients(
        ln_age=17.114,
        ln_age_squared=0.0,
        ln_total_cholesterol=0.940,
        ln_age_x_ln_total_cholesterol=0.0,
        ln_hdl=-18.920,
        ln_age_x_ln_hdl=4.475,
        ln_treated_sbp=29.291,
        ln_age_x_ln_treated_sbp=-6.432,
        ln_untreated_sbp=27.820,
        ln_age_x_ln_untreated_sbp=-6.087,
        smoker=0.691,
        ln_age_x_smoker=0.0,
        diabetes=0.874,
        mean_sum=86.61,
        baseline_survival=0.9533,
    ),
    ("white", "male"): PceCoefficients(
        ln_age=12.344,
        ln_age_squared=0.0,
        ln_total_cholesterol=11.853,
        ln_age_x_ln_total_cholesterol=-2.664,
        ln_hdl=-7.990,
        ln_age_x_ln_hdl=1.769,
        ln_treated_sbp=1.797,
        ln_age_x_ln_treated_sbp=0.0,
        ln_untreated_sbp=1.764,
        ln_age_x_ln_untreated_sbp=0.0,
        smoker=7.837,
        ln_age_x_smoker=-1.795,
        diabetes=0.658,
        mean_sum=61.18,
        baseline_survival=0.9144,
    ),
    ("african_american", "male"): PceCoefficients(
        ln_age=2.469,
        ln_age_squared=0.0,
        ln_total_cholesterol=0.302,
        ln_age_x_ln_total_cholesterol=0.0,
        ln_hdl=-0.307,
        ln_age_x_ln_hdl=0.0,
        ln_treated_sbp=1.916,
        ln_age_x_ln_treated_sbp=0.0,
        ln_untreated_sbp=1.809,
        ln_age_x_ln_untreated_sbp=0.0,
        smoker=0.549,
        ln_age_x_smoker=0.0,
        diabetes=0.645,
        mean_sum=19.54,
        baseline_survival=0.8954,
    ),
}

# Risk bands of the 2018 AHA/ACC cholesterol guideline (and 2019 ACC/AHA primary prevention guideline),
# which apply the PCE: low <5%, borderline 5 to <7.5%, intermediate 7.5 to <20%, high >=20%.
# Checked against the ClinCalc ASCVD calculator page; the 2013 guideline itself used the single 7.5% cut.
PCE_CATEGORIES: tuple[tuple[float, str], ...] = ((0.05, "low"), (0.075, "borderline"), (0.20, "intermediate"))

PCE_SPEC = EquationSpec(
    name="Pooled Cohort Equations",
    citation="Goff DC Jr, Lloyd-Jones DM, Bennett G, et al. 2013 ACC/AHA guideline on the assessment of "
    "cardiovascular risk. Circulation 2014;129(suppl 2):S49-S73.",
    variant="the four race-sex equations of Table A (white and African-American women and men)",
    outcome="first hard ASCVD event: non-fatal myocardial infarction, coronary heart disease death, "
    "fatal or non-fatal stroke",
    horizon_years=10,
    units={**_CVD_UNITS_COMMON, "race": "category; white, african_american or other (other uses the white equations)"},
    valid_ranges={
        "age": (40.0, 79.0),
        "total_cholesterol": (130.0, 320.0),
        "hdl_cholesterol": (20.0, 100.0),
        "systolic_bp": (90.0, 200.0),
    },
    notes=(
        "Races other than white and African-American use the white equations, as the guideline advises; the "
        "estimate may then be less accurate.",
        "Input ranges are those of the ACC/AHA ASCVD Risk Estimator (as enforced by Cerner's ascvd-risk-calculator "
        "and the PooledCohort R package); people with prior ASCVD are not applicable.",
        "Age is read in completed years: 40 years to 79 years and 11 months apply, and are computed at 40-79.",
        "Categories: low <5%, borderline 5 to <7.5%, intermediate 7.5 to <20%, high >=20% (2018 AHA/ACC "
        "cholesterol guideline).",
    ),
)


def pooled_cohort_equations(
    *,
    age: float,
    sex: Sex,
    race: PceRace,
    total_cholesterol: float,
    hdl_cholesterol: float,
    systolic_bp: float,
    treated_hypertension: bool,
    smoker: bool,
    diabetes: bool,
    prior_cvd: bool = False,
) -> EquationResult:
    """10-year hard ASCVD risk from the race-sex equation: 1 - S10 ** exp(individual sum - mean sum)."""
    _check_choice("sex", sex, SEXES)
    _check_choice("race", race, PCE_RACES)
    _check_flags(
        {
            "treated_hypertension": treated_hypertension,
            "smoker": smoker,
            "diabetes": diabetes,
            "prior_cvd": prior_cvd,
        }
    )
    equation_race = "african_american" if race == "african_american" else "white"
    variant = _pce_variant(race, equation_race, sex)
    inputs: dict[str, object] = {
        "age": age,
        "sex": sex,
        "race": race,
        "equation_race": equation_race,
        "total_cholesterol": total_cholesterol,
        "hdl_cholesterol": hdl_cholesterol,
        "systolic_bp": systolic_bp,
        "treated_hypertension": treated_hypertension,
        "smoker": smoker,
        "diabetes": diabetes,
        "prior_cvd": prior_cvd,
    }
    ranged = {
        "age": age,
        "total_cholesterol": total_cholesterol,
        "hdl_cholesterol": hdl_cholesterol,
        "systolic_bp": systolic_bp,
    }
    reason = _cvd_population_reason(PCE_SPEC, prior_cvd) or _range_reason(PCE_SPEC, ranged)
    if reason:
        return _not_applicable("pooled_cohort_equations", variant, reason, inputs)
    years = completed_years(age)
    inputs["age_in_completed_years"] = years
    c = PCE_COEFFICIENTS[(equation_race, sex)]
    individual_sum = pce_individual_sum(
        c, years, total_cholesterol, hdl_cholesterol, systolic_bp, treated_hypertension, smoker, diabetes
    )
    risk = _cox_risk(c.baseline_survival, individual_sum, c.mean_sum)
    return EquationResult("pooled_cohort_equations", variant, True, risk, _pce_category(risk), None, inputs)


def pce_individual_sum(
    c: PceCoefficients,
    age: float,
    total_cholesterol: float,
    hdl_cholesterol: float,
    systolic_bp: float,
    treated_hypertension: bool,
    smoker: bool,
    diabetes: bool,
) -> float:
    """The guideline's "Individual Sum": every term in natural logs, interactions as products of logs."""
    ln_age, ln_sbp = math.log(age), math.log(systolic_bp)
    ln_tc, ln_hdl = math.log(total_cholesterol), math.log(hdl_cholesterol)
    if treated_hypertension:
        sbp_terms = c.ln_treated_sbp * ln_sbp + c.ln_age_x_ln_treated_sbp * ln_age * ln_sbp
    else:
        sbp_terms = c.ln_untreated_sbp * ln_sbp + c.ln_age_x_ln_untreated_sbp * ln_age * ln_sbp
    return (
        c.ln_age * ln_age
        + c.ln_age_squared * ln_age**2
        + c.ln_total_cholesterol * ln_tc
        + c.ln_age_x_ln_total_cholesterol * ln_age * ln_tc
        + c.ln_hdl * ln_hdl
        + c.ln_age_x_ln_hdl * ln_age * ln_hdl
        + sbp_terms
        + c.smoker * smoker
        + c.ln_age_x_smoker * ln_age * smoker
        + c.diabetes * diabetes
    )


def _pce_variant(race: str, equation_race: str, sex: str) -> str:
    people = "women" if sex == "female" else "men"
    group = f"{'African-American' if equation_race == 'african_american' else 'white'} {people}"
    if race == "other":
        return f"{group} equation (used for race 'other', as the guideline advises)"
    return f"{group} equation"


def _pce_category(risk: float) -> str:
    for upper, label in PCE_CATEGORIES:
        if risk < upper:
            return label
    return "high"


# ---------------------------------------------------------------------------------------------------------
# SCORE2 (SCORE2 working group and ESC Cardiovascular Risk Collaboration 2021)
# ---------------------------------------------------------------------------------------------------------


class Score2Coefficients(NamedTuple):
    age: float
    smoking: float
    sbp: float
    diabetes: float
    total_cholesterol: float
    hdl: float
    age_x_smoking: float
    age_x_sbp: float
    age_x_diabetes: float
    age_x_total_cholesterol: float
    age_x_hdl: float
    baseline_survival: float


# SCORE2 working group and ESC Cardiovascular Risk Collaboration, Eur Heart J 2021;42:2439-2454,
# Supplementary Methods Table 2: sex-specific log subdistribution hazard ratios on the centred/scaled
# variables cage=(age-60)/5, csbp=(SBP-120)/20, ctchol=(TC-6)/1 mmol/L, chdl=(HDL-1.3)/0.5 mmol/L, and
# the 10-year baseline survival. Cross-checked: identical in the Stata program score2risk by S. Kaptoge,
# L. Pennells, S. Hageman (Cambridge CEU, the SCORE2 analysts), in a public R implementation that quotes
# Supplementary Methods Tables 2-4, and in a JavaScript implementation; the Stata program's "rounded"
# option reproduces them as ln of the published hazard ratios (e.g. men's age ln(1.45)).
SCORE2_COEFFICIENTS: dict[str, Score2Coefficients] = {
    "male": Score2Coefficients(
        age=0.3742,
        smoking=0.6012,
        sbp=0.2777,
        diabetes=0.6457,
        total_cholesterol=0.1458,
        hdl=-0.2698,
        age_x_smoking=-0.0755,
        age_x_sbp=-0.0255,
        age_x_diabetes=-0.0983,
        age_x_total_cholesterol=-0.0281,
        age_x_hdl=0.0426,
        baseline_survival=0.9605,
    ),
    "female": Score2Coefficients(
        age=0.4648,
        smoking=0.7744,
        sbp=0.3131,
        diabetes=0.8096,
        total_cholesterol=0.1002,
        hdl=-0.2606,
        age_x_smoking=-0.1088,
        age_x_sbp=-0.0277,
        age_x_diabetes=-0.1272,
        age_x_total_cholesterol=-0.0226,
        age_x_hdl=0.0613,
        baseline_survival=0.9776,
    ),
}

# Same paper, Supplementary Methods Table 3: region- and sex-specific recalibration scales, as published to
# 4 decimals. Cross-checked: identical in the public R and JavaScript implementations; the Kaptoge Stata
# program carries the same values to 6 decimals (e.g. -0.569857, 0.747593), which round to these.
SCORE2_RECALIBRATION: dict[tuple[str, str], tuple[float, float]] = {
    ("low", "male"): (-0.5699, 0.7476),
    ("low", "female"): (-0.7380, 0.7019),
    ("moderate", "male"): (-0.1565, 0.8009),
    ("moderate", "female"): (-0.3143, 0.7701),
    ("high", "male"): (0.3207, 0.9360),
    ("high", "female"): (0.5710, 0.9369),
    ("very_high", "male"): (0.5836, 0.8294),
    ("very_high", "female"): (0.9412, 0.8329),
}

# ESC 2021 prevention guideline (Visseren et al., Eur Heart J 2021;42:3227) age-specific SCORE2 thresholds:
# under 50: <2.5%, 2.5 to <7.5%, >=7.5%; 50-69: <5%, 5 to <10%, >=10%. Thresholds cross-checked with the
# RiskScorescvd R package; labels follow the guideline's wording.
# (age below, "high" from, "very high" from)
SCORE2_CATEGORY_THRESHOLDS: tuple[tuple[float, float, float], ...] = ((50.0, 0.025, 0.075), (70.0, 0.05, 0.10))

# SCORE2 covers 40-69 and SCORE2-OP (Eur Heart J 2021;42:2455-2467) 70 and over, both in completed years, so
# the two meet with no gap: 69.9 is SCORE2's last age, 70.0 SCORE2-OP's first.
SCORE2_AGES: tuple[float, float] = (40.0, 69.0)
SCORE2_OP_FIRST_AGE = 70

SCORE2_SPEC = EquationSpec(
    name="SCORE2",
    citation="SCORE2 working group and ESC Cardiovascular risk collaboration. SCORE2 risk prediction algorithms: "
    "new models to estimate 10-year risk of cardiovascular disease in Europe. Eur Heart J 2021;42:2439-2454.",
    variant="sex-specific competing-risk-adjusted model (Supplementary Methods Table 2) recalibrated to the ESC risk "
    "region (Supplementary Methods Table 3); ages 40-69 only (SCORE2-OP, for 70+, is not implemented)",
    outcome="first fatal or non-fatal cardiovascular event: CVD death, non-fatal myocardial infarction, "
    "non-fatal stroke",
    horizon_years=10,
    units={
        "age": AGE_UNIT,
        "sex": "category; female or male",
        "total_cholesterol": "mg/dL; converted to mmol/L by dividing by 38.67",
        "hdl_cholesterol": "mg/dL; converted to mmol/L by dividing by 38.67",
        "systolic_bp": "mmHg",
        "smoker": "bool; current smoker",
        "diabetes": "bool; diabetes diagnosed (SCORE2 is then not applicable)",
        "region": "category; ESC risk region low, moderate, high or very_high of the country of residence",
        "prior_cvd": "bool; known cardiovascular disease (SCORE2 is for people without it)",
    },
    valid_ranges={"age": SCORE2_AGES},
    notes=(
        "Cholesterol is taken in mg/dL and converted with 38.67 mg/dL per mmol/L, because the model is in mmol/L.",
        "Diabetes: the published model contains diabetes and age x diabetes terms (kept in the coefficient table and "
        "in score2_linear_predictor), which the authors needed to recalibrate on whole populations; SCORE2 itself "
        "is for people without diabetes (SCORE2-Diabetes covers them), so diabetes=True is not applicable.",
        "Age is read in completed years: 40 years to 69 years and 11 months are SCORE2's; from 70 SCORE2-OP applies "
        "(not implemented here), so the two meet with no gap; age under 40 is outside the derivation range.",
        "The paper publishes no range for cholesterol or blood pressure; they must be positive.",
        "Categories (ESC 2021): under 50, <2.5% low-to-moderate, 2.5 to <7.5% high, >=7.5% very high; "
        "50-69, <5%, 5 to <10%, >=10%.",
    ),
)


def score2(
    *,
    age: float,
    sex: Sex,
    total_cholesterol: float,
    hdl_cholesterol: float,
    systolic_bp: float,
    smoker: bool,
    diabetes: bool,
    region: Score2Region,
    prior_cvd: bool = False,
) -> EquationResult:
    """10-year CVD risk for the person's ESC risk region: the model's risk, then the region recalibration."""
    _check_choice("sex", sex, SEXES)
    _check_choice("region", region, SCORE2_REGIONS)
    _check_flags({"smoker": smoker, "diabetes": diabetes, "prior_cvd": prior_cvd})
    variant = f"{sex}, {region.replace('_', ' ')} risk region"
    labs = {"total_cholesterol": total_cholesterol, "hdl_cholesterol": hdl_cholesterol, "systolic_bp": systolic_bp}
    inputs: dict[str, object] = {
        "age": age,
        "sex": sex,
        **labs,
        "smoker": smoker,
        "diabetes": diabetes,
        "region": region,
        "prior_cvd": prior_cvd,
    }
    reason = (
        _score2_population_reason(age, diabetes, prior_cvd)
        or _range_reason(SCORE2_SPEC, {"age": age})
        or _positive_reason(SCORE2_SPEC, labs)
    )
    if reason:
        return _not_applicable("score2", variant, reason, inputs)
    years = completed_years(age)
    inputs["age_in_completed_years"] = years
    tc_mmol = total_cholesterol / MG_DL_PER_MMOL_L_CHOLESTEROL
    hdl_mmol = hdl_cholesterol / MG_DL_PER_MMOL_L_CHOLESTEROL
    inputs.update(total_cholesterol_mmol_l=tc_mmol, hdl_cholesterol_mmol_l=hdl_mmol)
    linear_predictor = score2_linear_predictor(
        sex=sex,
        age=years,
        total_cholesterol_mmol_l=tc_mmol,
        hdl_cholesterol_mmol_l=hdl_mmol,
        systolic_bp=systolic_bp,
        smoker=smoker,
        diabetes=False,
    )
    uncalibrated = 1.0 - SCORE2_COEFFICIENTS[sex].baseline_survival ** math.exp(linear_predictor)
    risk = score2_recalibrate(uncalibrated, sex=sex, region=region)
    return EquationResult("score2", variant, True, risk, _score2_category(years, risk), None, inputs)


def score2_linear_predictor(
    *,
    sex: Sex,
    age: float,
    total_cholesterol_mmol_l: float,
    hdl_cholesterol_mmol_l: float,
    systolic_bp: float,
    smoker: bool,
    diabetes: bool,
) -> float:
    """The published linear predictor (Supplementary Methods Table 4, part 1), in the paper's own units.

    Exposed so the paper's worked example can be checked term by term; it includes the diabetes terms as
    published even though `score2` only ever calls it with diabetes=False.
    """
    c = SCORE2_COEFFICIENTS[sex]
    cage = (age - 60.0) / 5.0
    csbp = (systolic_bp - 120.0) / 20.0
    ctchol = total_cholesterol_mmol_l - 6.0
    chdl = (hdl_cholesterol_mmol_l - 1.3) / 0.5
    return (
        c.age * cage
        + c.smoking * smoker
        + c.sbp * csbp
        + c.diabetes * diabetes
        + c.total_cholesterol * ctchol
        + c.hdl * chdl
        + c.age_x_smoking * cage * smoker
        + c.age_x_sbp * cage * csbp
        + c.age_x_diabetes * cage * diabetes
        + c.age_x_total_cholesterol * cage * ctchol
        + c.age_x_hdl * cage * chdl
    )


def score2_recalibrate(uncalibrated_risk: float, *, sex: Sex, region: Score2Region) -> float:
    """Region recalibration: risk = 1 - exp(-exp(scale1 + scale2 * ln(-ln(1 - uncalibrated))))."""
    scale1, scale2 = SCORE2_RECALIBRATION[(region, sex)]
    return 1.0 - math.exp(-math.exp(scale1 + scale2 * math.log(-math.log(1.0 - uncalibrated_risk))))


def _score2_population_reason(age: float, diabetes: bool, prior_cvd: bool) -> str | None:
    """SCORE2's exclusions, each pointing at the tool that does cover the person."""
    if prior_cvd:
        return _cvd_population_reason(SCORE2_SPEC, prior_cvd)
    if diabetes:
        return (
            "not applicable, because diabetes is true and SCORE2 is for people without diabetes "
            "(SCORE2-Diabetes covers them and is not implemented here)"
        )
    if not _not_a_finite_number(age) and completed_years(age) >= SCORE2_OP_FIRST_AGE:
        low, high = SCORE2_AGES
        return (
            f"not applicable, because {_described('age', age, 'years')} is {SCORE2_OP_FIRST_AGE} or over: "
            f"SCORE2-OP applies (not implemented here); SCORE2 covers {_fmt(low)}-{_fmt(high)} years"
        )
    return None


def _score2_category(age: float, risk: float) -> str:
    """ESC 2021 thresholds depend on age: the same risk is judged higher in a younger person."""
    high_from, very_high_from = next((h, v) for below, h, v in SCORE2_CATEGORY_THRESHOLDS if age < below)
    if risk < high_from:
        return "low-to-moderate"
    return "high" if risk < very_high_from else "very high"


# ---------------------------------------------------------------------------------------------------------
# FINDRISC (Lindstrom & Tuomilehto 2003; the Finnish Diabetes Risk Score form)
# ---------------------------------------------------------------------------------------------------------

# Points of the FINDRISC form ("Type 2 diabetes risk assessment form", test designed by J. Tuomilehto and
# J. Lindstrom), the original Finnish 8-item form scored 0-26. Transcribed from two copies of the form
# (paperzz "TYPE 2 DIABETES RISK ASSESSMENT FORM"; scribd "FINDRISC English") which agree item by item.
# Lindstrom & Tuomilehto, Diabetes Care 2003;26:725-731 derived the score from 7 of these items (age
# 35-64, BMI, waist, activity, vegetables, antihypertensives, high glucose) with range 0-20 (abstract):
# the form's points for those items sum to the same maximum (3+3+4+2+1+2+5 = 20); the form adds age over
# 64 (4 points) and family history (up to 5), giving 0-26. The 2003 paper's own points table could not be
# read here, so the per-item points are confirmed against the form, and only their total against the paper.
# (age below, points): under 45: 0, 45-54: 2, 55-64: 3; over 64: 4
FINDRISC_AGE_POINTS: tuple[tuple[float, int], ...] = ((45.0, 0), (55.0, 2), (65.0, 3))
FINDRISC_AGE_OVER_64_POINTS = 4
FINDRISC_BMI_BANDS_KG_M2: tuple[float, float] = (25.0, 30.0)  # lower than 25: 0; 25-30: 1; higher than 30: 3
FINDRISC_BMI_25_TO_30_POINTS = 1
FINDRISC_BMI_OVER_30_POINTS = 3
# Waist (cm) measured below the ribs: (lower bound of the middle band, upper bound of the middle band).
FINDRISC_WAIST_BANDS_CM: dict[str, tuple[float, float]] = {"male": (94.0, 102.0), "female": (80.0, 88.0)}
FINDRISC_WAIST_MIDDLE_POINTS = 3
FINDRISC_WAIST_HIGH_POINTS = 4
FINDRISC_INACTIVE_POINTS = 2  # not at least 30 minutes of physical activity daily
FINDRISC_NO_DAILY_VEGETABLES_POINTS = 1  # vegetables, fruit or berries not every day
FINDRISC_ANTIHYPERTENSIVE_POINTS = 2  # ever taken blood pressure medication regularly
FINDRISC_HIGH_GLUCOSE_POINTS = 5  # ever found to have high blood glucose
FINDRISC_FAMILY_HISTORY_POINTS: dict[str, int] = {"none": 0, "second_degree": 3, "first_degree": 5}
FINDRISC_MAX_POINTS = 26


class FindriscBand(NamedTuple):
    lowest: int
    highest: int
    category: str
    published_risk: str
    approximate_risk: float


# The form's bands and its printed estimate of developing type 2 diabetes within 10 years ("estimated 1 in
# N will develop disease"); approximate_risk is simply 1/N.
FINDRISC_BANDS: tuple[FindriscBand, ...] = (
    FindriscBand(0, 6, "low", "1 in 100", 1 / 100),
    FindriscBand(7, 11, "slightly elevated", "1 in 25", 1 / 25),
    FindriscBand(12, 14, "moderate", "1 in 6", 1 / 6),
    FindriscBand(15, 20, "high", "1 in 3", 1 / 3),
    FindriscBand(21, 26, "very high", "1 in 2", 1 / 2),
)

FINDRISC_SPEC = EquationSpec(
    name="FINDRISC",
    citation="Lindstrom J, Tuomilehto J. The diabetes risk score: a practical tool to predict type 2 diabetes "
    "risk. Diabetes Care 2003;26:725-731; scored with the Finnish FINDRISC form (0-26 points).",
    variant="original Finnish 8-item form, 0-26 points; risk field holds the points total",
    outcome="drug-treated type 2 diabetes (paper); the form: developing type 2 diabetes",
    horizon_years=10,
    units={
        "age": AGE_UNIT,
        "sex": "category; female or male (selects the waist bands)",
        "bmi": "kg/m2",
        "waist": "cm; measured below the ribs, usually at the navel",
        "physically_active": "bool; at least 30 minutes of physical activity daily, at work and/or in leisure time",
        "daily_vegetables": "bool; eats vegetables, fruit or berries every day",
        "antihypertensive_medication": "bool; has ever taken blood pressure medication regularly",
        "high_glucose_history": "bool; ever found to have high blood glucose (health check, illness, pregnancy)",
        "family_history": "category; none, second_degree (grandparent, aunt, uncle, first cousin) or "
        "first_degree (parent, sibling, own child) relative diagnosed with diabetes",
        "diabetes": "bool; diabetes already diagnosed (FINDRISC is then not applicable)",
    },
    valid_ranges={"age": (18.0, 120.0)},
    notes=(
        "Age is read in completed years, as the form's bands are (45-54 includes 54 years and 11 months).",
        "The age range is ours, not published: the form is an adult questionnaire (the 2003 derivation cohort was "
        "35-64); 18 is the adult lower bound and 120 a plausibility cap.",
        "BMI and waist have no published range; they must be positive.",
        "Bands and the form's 10-year estimates: <7 low (1 in 100), 7-11 slightly elevated (1 in 25), 12-14 "
        "moderate (1 in 6), 15-20 high (1 in 3), >20 very high (1 in 2).",
        "The 2003 paper's score ranged 0-20 without the family-history item; the form adds it and age over 64.",
    ),
)


def findrisc(
    *,
    age: float,
    sex: Sex,
    bmi: float,
    waist: float,
    physically_active: bool,
    daily_vegetables: bool,
    antihypertensive_medication: bool,
    high_glucose_history: bool,
    family_history: FamilyHistory,
    diabetes: bool = False,
) -> EquationResult:
    """FINDRISC points (0-26) and the form's band; `risk` holds the points, not a probability.

    The band's published 10-year estimate ("1 in 25", ...) is in `FINDRISC_BANDS`, via `findrisc_band`.
    """
    _check_choice("sex", sex, SEXES)
    _check_choice("family_history", family_history, FAMILY_HISTORY_CODES)
    _check_flags(
        {
            "physically_active": physically_active,
            "daily_vegetables": daily_vegetables,
            "antihypertensive_medication": antihypertensive_medication,
            "high_glucose_history": high_glucose_history,
            "diabetes": diabetes,
        }
    )
    inputs: dict[str, object] = {
        "age": age,
        "sex": sex,
        "bmi": bmi,
        "waist": waist,
        "physically_active": physically_active,
        "daily_vegetables": daily_vegetables,
        "antihypertensive_medication": antihypertensive_medication,
        "high_glucose_history": high_glucose_history,
        "family_history": family_history,
        "diabetes": diabetes,
    }
    variant = "original Finnish form, 0-26 points"
    reason = (
        _findrisc_population_reason(diabetes)
        or _range_reason(FINDRISC_SPEC, {"age": age})
        or _positive_reason(FINDRISC_SPEC, {"bmi": bmi, "waist": waist})
    )
    if reason:
        return _not_applicable("findrisc", variant, reason, inputs)
    inputs["age_in_completed_years"] = completed_years(age)
    item_points = {
        "age": findrisc_age_points(completed_years(age)),
        "bmi": findrisc_bmi_points(bmi),
        "waist": findrisc_waist_points(waist, sex),
        "physically_active": 0 if physically_active else FINDRISC_INACTIVE_POINTS,
        "daily_vegetables": 0 if daily_vegetables else FINDRISC_NO_DAILY_VEGETABLES_POINTS,
        "antihypertensive_medication": FINDRISC_ANTIHYPERTENSIVE_POINTS if antihypertensive_medication else 0,
        "high_glucose_history": FINDRISC_HIGH_GLUCOSE_POINTS if high_glucose_history else 0,
        "family_history": FINDRISC_FAMILY_HISTORY_POINTS[family_history],
    }
    points = sum(item_points.values())
    inputs["points_by_item"] = item_points  # lets the UI show where the total comes from, item by item
    return EquationResult("findrisc", variant, True, float(points), findrisc_band(points).category, None, inputs)


def findrisc_age_points(age: float) -> int:
    """Under 45: 0; 45-54: 2; 55-64: 3; over 64: 4 (a 54.5-year-old is still in 45-54)."""
    for below, points in FINDRISC_AGE_POINTS:
        if age < below:
            return points
    return FINDRISC_AGE_OVER_64_POINTS


def findrisc_bmi_points(bmi: float) -> int:
    """Lower than 25: 0; 25-30 inclusive: 1; higher than 30: 3."""
    low, high = FINDRISC_BMI_BANDS_KG_M2
    if bmi < low:
        return 0
    return FINDRISC_BMI_25_TO_30_POINTS if bmi <= high else FINDRISC_BMI_OVER_30_POINTS


def findrisc_waist_points(waist_cm: float, sex: Sex) -> int:
    """Men: <94 cm 0, 94-102 cm 3, >102 cm 4; women: <80 cm 0, 80-88 cm 3, >88 cm 4."""
    low, high = FINDRISC_WAIST_BANDS_CM[sex]
    if waist_cm < low:
        return 0
    return FINDRISC_WAIST_MIDDLE_POINTS if waist_cm <= high else FINDRISC_WAIST_HIGH_POINTS


def findrisc_band(points: int) -> FindriscBand:
    """The form's band for a points total; totals outside 0-26 cannot come from the form."""
    for band in FINDRISC_BANDS:
        if band.lowest <= points <= band.highest:
            return band
    raise ValueError(f"FINDRISC points must be 0-{FINDRISC_MAX_POINTS}; got {points}")


def _findrisc_population_reason(diabetes: bool) -> str | None:
    if diabetes:
        return "not applicable, because diabetes is true and FINDRISC predicts new type 2 diabetes in people without it"
    return None


# ---------------------------------------------------------------------------------------------------------
# QRISK3-2017 (Hippisley-Cox, Coupland & Brindle 2017)
# ---------------------------------------------------------------------------------------------------------

# In the order of QRISK3's own codes (ethrisk 1-9, smoke_cat 0-4), so a code's position is its published number.
Qrisk3Ethnicity = Literal[
    "white_or_not_stated",
    "indian",
    "pakistani",
    "bangladeshi",
    "other_asian",
    "black_caribbean",
    "black_african",
    "chinese",
    "other_ethnic_group",
]
Qrisk3Smoking = Literal["non_smoker", "ex_smoker", "light_smoker", "moderate_smoker", "heavy_smoker"]
Qrisk3Diabetes = Literal["none", "type_1", "type_2"]
QRISK3_ETHNICITIES: tuple[str, ...] = get_args(Qrisk3Ethnicity)
QRISK3_SMOKING: tuple[str, ...] = get_args(Qrisk3Smoking)
QRISK3_DIABETES: tuple[str, ...] = get_args(Qrisk3Diabetes)
# The conditions and treatments QRISK3 names, each a yes/no input with its own hazard ratio.
QRISK3_CONDITIONS: tuple[str, ...] = (
    "atrial_fibrillation",
    "atypical_antipsychotics",
    "corticosteroids",
    "erectile_dysfunction",
    "migraine",
    "rheumatoid_arthritis",
    "chronic_kidney_disease",
    "severe_mental_illness",
    "systemic_lupus_erythematosus",
    "treated_hypertension",
    "family_history_cvd",
)


class Qrisk3Coefficients(NamedTuple):
    """One sex's QRISK3 Cox model: every term is centred on the derivation cohort's mean before it enters.

    age_1 and age_2 are fractional polynomial terms of age/10 with the sex's two powers; BMI enters as
    (bmi/10)^-2 and (bmi/10)^-2 * ln(bmi/10) for both sexes. Terms absent from a mapping have no coefficient
    (women have no erectile-dysfunction term; some conditions have no age interaction).
    """

    baseline_survival: float
    age_powers: tuple[float, float]
    means: dict[str, float]
    ethnicity: dict[str, float]
    smoking: dict[str, float]
    main: dict[str, float]
    age_1_interactions: dict[str, float]
    age_2_interactions: dict[str, float]


# Hippisley-Cox J, Coupland C, Brindle P, BMJ 2017;357:j2099 (QRISK3-2017), coefficients as ClinRisk published
# them in the open-source QRISK3-2017 algorithm (LGPL, qrisk.org; functions cvd_female_raw and cvd_male_raw):
# 10-year baseline survival, centring means, ethnicity and smoking levels, main effects and the age
# interactions, transcribed with every published digit. Cross-checked against the copy of that source shipped
# in the CRAN package QRISK3 (inst/extdata/QRISK3_2017_src.txt, version 0.6.0), whose test patients
# tests/unit/test_qrisk3.py reproduces to 0.1 percentage point.
QRISK3_COEFFICIENTS: dict[str, Qrisk3Coefficients] = {
    "female": Qrisk3Coefficients(
        baseline_survival=0.988876402378082,
        age_powers=(-2.0, 1.0),
        means={
            "age_1": 0.053274843841791,
            "age_2": 4.332503318786621,
            "bmi_1": 0.154946178197861,
            "bmi_2": 0.144462317228317,
            "cholesterol_ratio": 3.47632646560669,
            "systolic_bp": 123.13001251220703,
            "systolic_bp_sd": 9.002537727355957,
            "townsend": 0.392308831214905,
        },
        ethnicity={
            "white_or_not_stated": 0.0,
            "indian": 0.28040314332995425,
            "pakistani": 0.56298994142075398,
            "bangladeshi": 0.29590000851116516,
            "other_asian": 0.072785379877982545,
            "black_caribbean": -0.17072135508857317,
            "black_african": -0.39371043314874971,
            "chinese": -0.32632495283530272,
            "other_ethnic_group": -0.17127056883241784,
        },
        smoking={
            "non_smoker": 0.0,
            "ex_smoker": 0.13386833786546262,
            "light_smoker": 0.56200858012438537,
            "moderate_smoker": 0.66749593377502547,
            "heavy_smoker": 0.84948177644830847,
        },
        main={
            "age_1": -8.1388109247726188,
            "age_2": 0.79733376689699098,
            "bmi_1": 0.29236092275460052,
            "bmi_2": -4.1513300213837665,
            "cholesterol_ratio": 0.15338035820802554,
            "systolic_bp": 0.013131488407103424,
            "systolic_bp_sd": 0.0078894541014586095,
            "townsend": 0.077223790588590108,
            "atrial_fibrillation": 1.5923354969269663,
            "atypical_antipsychotics": 0.25237642070115557,
            "corticosteroids": 0.59520725304601851,
            "migraine": 0.301267260870345,
            "rheumatoid_arthritis": 0.21364803435181942,
            "chronic_kidney_disease": 0.65194569493845833,
            "severe_mental_illness": 0.12555308058820178,
            "systemic_lupus_erythematosus": 0.75880938654267693,
            "treated_hypertension": 0.50931593683423004,
            "type_1_diabetes": 1.7267977510537347,
            "type_2_diabetes": 1.0688773244615468,
            "family_history_cvd": 0.45445319020896213,
        },
        age_1_interactions={
            "ex_smoker": -4.7057161785851891,
            "light_smoker": -2.7430383403573337,
            "moderate_smoker": -0.86608088829392182,
            "heavy_smoker": 0.90241562369710648,
            "atrial_fibrillation": 19.938034889546561,
            "corticosteroids": -0.98408045235936281,
            "migraine": 1.7634979587872999,
            "chronic_kidney_disease": -3.5874047731694114,
            "systemic_lupus_erythematosus": 19.690303738638292,
            "treated_hypertension": 11.872809733921812,
            "type_1_diabetes": -1.2444332714320747,
            "type_2_diabetes": 6.8652342000009599,
            "bmi_1": 23.802623412141742,
            "bmi_2": -71.184947692087007,
            "family_history_cvd": 0.99467807940435127,
            "systolic_bp": 0.034131842338615485,
            "townsend": -1.0301180802035639,
        },
        age_2_interactions={
            "ex_smoker": -0.075589244643193026,
            "light_smoker": -0.11951192874867074,
            "moderate_smoker": -0.10366306397571923,
            "heavy_smoker": -0.13991853591718389,
            "atrial_fibrillation": -0.076182651011162505,
            "corticosteroids": -0.12005364946742472,
            "migraine": -0.065586917898699859,
            "chronic_kidney_disease": -0.22688873086442507,
            "systemic_lupus_erythematosus": 0.077347949679016273,
            "treated_hypertension": 0.00096857823588174436,
            "type_1_diabetes": -0.28724064624488949,
            "type_2_diabetes": -0.097112252590695489,
            "bmi_1": 0.52369958933664429,
            "bmi_2": 0.045744190122323759,
            "family_history_cvd": -0.076885051698423038,
            "systolic_bp": -0.0015082501423272358,
            "townsend": -0.031593414674962329,
        },
    ),
    "male": Qrisk3Coefficients(
        baseline_survival=0.977268040180206,
        age_powers=(-1.0, 3.0),
        means={
            "age_1": 0.234766781330109,
            "age_2": 77.284080505371094,
            "bmi_1": 0.149176135659218,
            "bmi_2": 0.141913309693336,
            "cholesterol_ratio": 4.300998687744141,
            "systolic_bp": 128.57157897949219,
            "systolic_bp_sd": 8.756621360778809,
            "townsend": 0.52630490064621,
        },
        ethnicity={
            "white_or_not_stated": 0.0,
            "indian": 0.27719248760308279,
            "pakistani": 0.47446360714931268,
            "bangladeshi": 0.52961729919689371,
            "other_asian": 0.035100159186299017,
            "black_caribbean": -0.35807899669327919,
            "black_african": -0.4005648523216514,
            "chinese": -0.41522792889830173,
            "other_ethnic_group": -0.26321348134749967,
        },
        smoking={
            "non_smoker": 0.0,
            "ex_smoker": 0.19128222863388983,
            "light_smoker": 0.55241588192645552,
            "moderate_smoker": 0.63835053027506072,
            "heavy_smoker": 0.78983819881858019,
        },
        main={
            "age_1": -17.839781666005575,
            "age_2": 0.0022964880605765492,
            "bmi_1": 2.4562776660536358,
            "bmi_2": -8.3011122314711354,
            "cholesterol_ratio": 0.17340196856327111,
            "systolic_bp": 0.012910126542553305,
            "systolic_bp_sd": 0.010251914291290456,
            "townsend": 0.033268201277287295,
            "atrial_fibrillation": 0.88209236928054657,
            "atypical_antipsychotics": 0.13046879855173513,
            "corticosteroids": 0.45485399750445543,
            "erectile_dysfunction": 0.22251859086705383,
            "migraine": 0.25584178074159913,
            "rheumatoid_arthritis": 0.20970658013956567,
            "chronic_kidney_disease": 0.71853261288274384,
            "severe_mental_illness": 0.12133039882047164,
            "systemic_lupus_erythematosus": 0.4401572174457522,
            "treated_hypertension": 0.51659871082695474,
            "type_1_diabetes": 1.2343425521675175,
            "type_2_diabetes": 0.85942071430932221,
            "family_history_cvd": 0.54055469009390156,
        },
        age_1_interactions={
            "ex_smoker": -0.21011133933516346,
            "light_smoker": 0.75268676447503191,
            "moderate_smoker": 0.99315887556405791,
            "heavy_smoker": 2.1331163414389076,
            "atrial_fibrillation": 3.4896675530623207,
            "corticosteroids": 1.1708133653489108,
            "erectile_dysfunction": -1.506400985745431,
            "migraine": 2.3491159871402441,
            "chronic_kidney_disease": -0.50656716327223694,
            "treated_hypertension": 6.5114581098532671,
            "type_1_diabetes": 5.3379864878006531,
            "type_2_diabetes": 3.6461817406221311,
            "bmi_1": 31.004952956033886,
            "bmi_2": -111.29157184391643,
            "family_history_cvd": 2.7808628508531887,
            "systolic_bp": 0.018858524469865853,
            "townsend": -0.1007554870063731,
        },
        age_2_interactions={
            "ex_smoker": -0.00049854870275326121,
            "light_smoker": -0.00079875633317385414,
            "moderate_smoker": -0.00083706184266251296,
            "heavy_smoker": -0.00078400319155637289,
            "atrial_fibrillation": -0.00034995608340636049,
            "corticosteroids": -0.0002496045095297166,
            "erectile_dysfunction": -0.0011058218441227373,
            "migraine": 0.00019896446041478631,
            "chronic_kidney_disease": -0.0018325930166498813,
            "treated_hypertension": 0.00063838053104165013,
            "type_1_diabetes": 0.0006409780808752897,
            "type_2_diabetes": -0.00024695695588868315,
            "bmi_1": 0.0050380102356322029,
            "bmi_2": -0.013074483002524319,
            "family_history_cvd": -0.00024791809907396037,
            "systolic_bp": -0.00001271874191588457,
            "townsend": -0.000093299642323272888,
        },
    ),
}

# Valid ranges. Age 25-84 is the paper's (and the algorithm's own check). The others are the limits ClinRisk's
# QRISK software holds these inputs to (BMI 20-40 kg/m2, cholesterol/HDL ratio 1-12, SBP 70-210 mmHg) and the
# Townsend range its open-source programs accept (-7 to 11); ClinRisk's calculator moves a value outside them
# to the nearest limit, which would be an estimate for someone else, so here it is "not applicable" instead.
QRISK3_VALID_RANGES: dict[str, tuple[float, float]] = {
    "age": (25.0, 84.0),
    "bmi": (20.0, 40.0),
    "cholesterol_ratio": (1.0, 12.0),
    "systolic_bp": (70.0, 210.0),
    "townsend": (-7.0, 11.0),
}
# NICE (NG238, 2023; CG181 before it) offers a statin for primary prevention from a 10-year QRISK3 of 10 %.
QRISK3_NICE_THRESHOLD = 0.10

QRISK3_SPEC = EquationSpec(
    name="QRISK3-2017",
    citation="Hippisley-Cox J, Coupland C, Brindle P. Development and validation of QRISK3 risk prediction "
    "algorithms to estimate future risk of cardiovascular disease: prospective cohort study. BMJ 2017;357:j2099.",
    variant="sex-specific Cox model with fractional polynomials of age and BMI and their interactions, as published "
    "in the open-source QRISK3-2017 algorithm (ClinRisk, LGPL); 10-year horizon only",
    outcome="first cardiovascular disease event: coronary heart disease (including angina and myocardial "
    "infarction), ischaemic stroke or transient ischaemic attack",
    horizon_years=10,
    units={
        "age": "years; read in completed years (84.9 is 84)",
        "sex": "category; female or male",
        "ethnicity": "category; " + ", ".join(QRISK3_ETHNICITIES) + " (QRISK3's nine groups)",
        "townsend": "Townsend deprivation score of the home postcode's area; 0 is the national average, higher "
        "is more deprived",
        "bmi": "kg/m2; weight in kg / (height in m)^2 (bmi_from_height_and_weight)",
        "smoking": "category; non_smoker, ex_smoker, light_smoker (under 10 a day), moderate_smoker (10 to 19), "
        "heavy_smoker (20 or more)",
        "cholesterol_ratio": "ratio; total cholesterol / HDL cholesterol, in the same units (no unit)",
        "systolic_bp": "mmHg",
        "systolic_bp_sd": "mmHg; standard deviation of at least two most recent systolic readings",
        "diabetes_type": "category; none, type_1 or type_2",
        "atrial_fibrillation": "bool; atrial fibrillation diagnosed",
        "atypical_antipsychotics": "bool; on atypical antipsychotic medication",
        "corticosteroids": "bool; on regular oral corticosteroid (steroid tablets)",
        "erectile_dysfunction": "bool; erectile dysfunction diagnosed or treated (men only; ignored for women)",
        "migraine": "bool; migraine diagnosed",
        "rheumatoid_arthritis": "bool; rheumatoid arthritis diagnosed",
        "chronic_kidney_disease": "bool; chronic kidney disease stage 3, 4 or 5",
        "severe_mental_illness": "bool; schizophrenia, bipolar disorder or moderate/severe depression",
        "systemic_lupus_erythematosus": "bool; systemic lupus erythematosus (SLE) diagnosed",
        "treated_hypertension": "bool; on blood-pressure-lowering treatment",
        "family_history_cvd": "bool; angina or heart attack in a first-degree relative under 60",
        "prior_cvd": "bool; known cardiovascular disease (QRISK3 is for people without it)",
    },
    valid_ranges=dict(QRISK3_VALID_RANGES),
    notes=(
        "Derived in QResearch general practices in England, people aged 25-84 free of CVD; age is read in "
        "completed years (the published algorithm takes a whole number of years).",
        "BMI 20-40, cholesterol/HDL ratio 1-12 and SBP 70-210 are the limits ClinRisk's software holds these inputs "
        "to, and Townsend -7 to 11 the range its open-source programs accept; outside them the answer is not "
        "applicable rather than the calculator's estimate at the nearest limit.",
        "The standard deviation of systolic blood pressure has no published range; it must be zero or more.",
        "ClinRisk's calculator estimates missing BMI, cholesterol ratio or SBP and takes a missing Townsend score "
        "or SBP standard deviation as 0; here every input must be given, or QRISK3 is not applicable.",
        "No risk category is given; NICE offers a statin from a 10-year risk of 10%.",
    ),
)


def bmi_from_height_and_weight(height_cm: float, weight_kg: float) -> float:
    """Body-mass index in kg/m2, as QRISK3's calculator derives it from height (cm) and weight (kg)."""
    return weight_kg / (height_cm / 100.0) ** 2


def qrisk3(
    *,
    age: float,
    sex: Sex,
    ethnicity: Qrisk3Ethnicity,
    townsend: float,
    bmi: float,
    smoking: Qrisk3Smoking,
    cholesterol_ratio: float,
    systolic_bp: float,
    systolic_bp_sd: float,
    diabetes_type: Qrisk3Diabetes,
    atrial_fibrillation: bool,
    atypical_antipsychotics: bool,
    corticosteroids: bool,
    erectile_dysfunction: bool,
    migraine: bool,
    rheumatoid_arthritis: bool,
    chronic_kidney_disease: bool,
    severe_mental_illness: bool,
    systemic_lupus_erythematosus: bool,
    treated_hypertension: bool,
    family_history_cvd: bool,
    prior_cvd: bool = False,
) -> EquationResult:
    """10-year CVD risk: 1 - S0(10) ** exp(sum of the centred terms, their coefficients and age interactions)."""
    _check_choice("sex", sex, SEXES)
    _check_choice("ethnicity", ethnicity, QRISK3_ETHNICITIES)
    _check_choice("smoking", smoking, QRISK3_SMOKING)
    _check_choice("diabetes_type", diabetes_type, QRISK3_DIABETES)
    conditions = {
        "atrial_fibrillation": atrial_fibrillation,
        "atypical_antipsychotics": atypical_antipsychotics,
        "corticosteroids": corticosteroids,
        "erectile_dysfunction": erectile_dysfunction,
        "migraine": migraine,
        "rheumatoid_arthritis": rheumatoid_arthritis,
        "chronic_kidney_disease": chronic_kidney_disease,
        "severe_mental_illness": severe_mental_illness,
        "systemic_lupus_erythematosus": systemic_lupus_erythematosus,
        "treated_hypertension": treated_hypertension,
        "family_history_cvd": family_history_cvd,
    }
    _check_flags({**conditions, "prior_cvd": prior_cvd})
    ranged = {
        "age": age,
        "bmi": bmi,
        "cholesterol_ratio": cholesterol_ratio,
        "systolic_bp": systolic_bp,
        "townsend": townsend,
    }
    inputs: dict[str, object] = {
        **ranged,
        "sex": sex,
        "ethnicity": ethnicity,
        "smoking": smoking,
        "systolic_bp_sd": systolic_bp_sd,
        "diabetes_type": diabetes_type,
        **conditions,
        "prior_cvd": prior_cvd,
    }
    variant = f"{sex}, 10 years"
    reason = (
        _cvd_population_reason(QRISK3_SPEC, prior_cvd)
        or _range_reason(QRISK3_SPEC, ranged)
        or _non_negative_reason(QRISK3_SPEC, "systolic_bp_sd", systolic_bp_sd)
    )
    if reason:
        return _not_applicable("qrisk3", variant, reason, inputs)
    years = completed_years(age)
    inputs["age_in_completed_years"] = years
    linear_predictor = qrisk3_linear_predictor(
        sex=sex,
        age=years,
        bmi=bmi,
        cholesterol_ratio=cholesterol_ratio,
        systolic_bp=systolic_bp,
        systolic_bp_sd=systolic_bp_sd,
        townsend=townsend,
        ethnicity=ethnicity,
        smoking=smoking,
        flags={
            **conditions,
            "erectile_dysfunction": erectile_dysfunction and sex == "male",
            "type_1_diabetes": diabetes_type == "type_1",
            "type_2_diabetes": diabetes_type == "type_2",
        },
    )
    risk = 1.0 - QRISK3_COEFFICIENTS[sex].baseline_survival ** math.exp(linear_predictor)
    return EquationResult("qrisk3", variant, True, risk, None, None, inputs)


def qrisk3_linear_predictor(
    *,
    sex: Sex,
    age: int,
    bmi: float,
    cholesterol_ratio: float,
    systolic_bp: float,
    systolic_bp_sd: float,
    townsend: float,
    ethnicity: str,
    smoking: str,
    flags: Mapping[str, bool],
) -> float:
    """The published sum: centred terms times their coefficients, plus both age terms' interactions.

    `flags` holds the yes/no terms by name (the conditions, type_1_diabetes and type_2_diabetes); a flag
    without a coefficient for this sex contributes nothing.
    """
    c = QRISK3_COEFFICIENTS[sex]
    scaled_age, scaled_bmi = age / 10.0, bmi / 10.0
    first_power, second_power = c.age_powers
    measured = {
        "age_1": scaled_age**first_power,
        "age_2": scaled_age**second_power,
        "bmi_1": scaled_bmi**-2,
        "bmi_2": scaled_bmi**-2 * math.log(scaled_bmi),
        "cholesterol_ratio": cholesterol_ratio,
        "systolic_bp": systolic_bp,
        "systolic_bp_sd": systolic_bp_sd,
        "townsend": townsend,
    }
    terms: dict[str, float] = {name: value - c.means[name] for name, value in measured.items()}
    terms.update({name: float(flag) for name, flag in flags.items()})
    terms.update({level: float(level == smoking) for level in QRISK3_SMOKING[1:]})
    main = sum(beta * terms[name] for name, beta in c.main.items())
    by_age_1 = sum(beta * terms[name] for name, beta in c.age_1_interactions.items())
    by_age_2 = sum(beta * terms[name] for name, beta in c.age_2_interactions.items())
    return c.ethnicity[ethnicity] + c.smoking[smoking] + main + terms["age_1"] * by_age_1 + terms["age_2"] * by_age_2


def _non_negative_reason(spec: EquationSpec, name: str, value: float) -> str | None:
    """An input without a published range that may be zero (a spread of readings), but never negative."""
    unit = _short_unit(spec.units[name])
    if _not_a_finite_number(value) or value < 0:
        return (
            f"not applicable, because {name} = {value!r} {unit} is not a finite measurement of zero or more "
            f"({spec.name} publishes no range for {name})"
        )
    return None


# ---------------------------------------------------------------------------------------------------------
# Registry for the API
# ---------------------------------------------------------------------------------------------------------

EQUATIONS: dict[str, EquationSpec] = {
    "framingham_general_cvd": FRAMINGHAM_SPEC,
    "pooled_cohort_equations": PCE_SPEC,
    "score2": SCORE2_SPEC,
    "findrisc": FINDRISC_SPEC,
    "qrisk3": QRISK3_SPEC,
}

EQUATION_FUNCTIONS: dict[str, Callable[..., EquationResult]] = {
    "framingham_general_cvd": framingham_general_cvd,
    "pooled_cohort_equations": pooled_cohort_equations,
    "score2": score2,
    "findrisc": findrisc,
    "qrisk3": qrisk3,
}
