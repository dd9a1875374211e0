"""The health contract: a patient assessment (`health.assessments`, or an HTTP body), keyed by patient id.

Laboratory results carry their unit (`{"value": 5.2, "unit": "mmol/L"}`, mg/dL or mmol/L) and are held in
mg/dL from here on; a missing or unknown unit is refused, never guessed. History flags that are left out
mean "no", except the questionnaire answers and QRISK3's conditions, which are asked for explicitly: left
out, they make the equations that need them "not applicable" instead of assuming "no". `patient_id` and
`patient_name` are personal: the id is replaced by a keyed pseudonym before anything leaves the service,
and the name is accepted (source records carry it) but never used or kept.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.disease_risk.equations import (
    FAMILY_HISTORY_CODES,
    PCE_RACES,
    QRISK3_ETHNICITIES,
    QRISK3_SMOKING,
    SCORE2_REGIONS,
    SEXES,
)
from shared.core.decision import DecisionSchema
from shared.core.fields import Measurement, WholeNumber

PERSONAL_FIELDS = ("patient_id", "patient_name")
DIABETES_TYPES = ("type_1", "type_2")
CURRENT_SMOKING = ("light_smoker", "moderate_smoker", "heavy_smoker")
# QRISK3's smoking levels by cigarettes a day: light under 10, moderate 10 to 19, heavy 20 or more.
CIGARETTES_PER_DAY_BY_SMOKING: dict[str, tuple[int, int, str]] = {
    "light_smoker": (1, 9, "1 to 9"),
    "moderate_smoker": (10, 19, "10 to 19"),
    "heavy_smoker": (20, 100, "20 or more"),
}


def _number(
    low: float, high: float, unit: str, example: float, description: str, required: bool = False
) -> fields.Float:
    return fields.Float(
        required=required,
        allow_nan=False,
        validate=validate.Range(low, high),
        metadata={"description": f"{description}, {unit}, {low:g} to {high:g}", "example": example},
    )


def _flag(description: str, example: bool = False, default: bool | None = False) -> fields.Boolean:
    options: dict[str, Any] = {"load_default": default} if default is not None else {}
    return fields.Boolean(metadata={"description": description, "example": example}, **options)


class AssessmentSchema(Schema):
    class Meta:
        unknown = RAISE

    assessment_id = fields.String(
        required=True, validate=validate.Length(min=1, max=64), metadata={"example": "ASM-2026-000042"}
    )
    patient_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "personal: pseudonymised before output", "example": "MRN-884213"},
    )
    patient_name = fields.String(
        load_only=True,
        validate=validate.Length(max=200),
        metadata={"description": "personal: accepted, never used, stored or echoed"},
    )
    timestamp = fields.AwareDateTime(
        required=True,
        format="iso",
        metadata={
            "description": "when the assessment was made, RFC 3339 with offset",
            "example": "2026-11-02T09:15:00+00:00",
        },
    )
    sex = fields.String(required=True, validate=validate.OneOf(SEXES), metadata={"example": "female"})
    age = _number(18, 110, "years", 58, "age at the assessment", required=True)
    systolic_bp = _number(60, 300, "mmHg", 142, "systolic blood pressure", required=True)
    diastolic_bp = _number(30, 200, "mmHg", 88, "diastolic blood pressure", required=True)
    bmi = _number(10, 90, "kg/m2", 31.4, "body-mass index", required=True)
    smoker = fields.Boolean(required=True, metadata={"description": "smokes now", "example": False})
    cigarettes_per_day = WholeNumber(
        validate=validate.Range(0, 100), metadata={"description": "for smokers; 0 for non-smokers", "example": 0}
    )
    treated_hypertension = _flag("takes blood pressure medication")
    hypertension = _flag("diagnosed hypertension")
    diabetes = _flag("diagnosed diabetes")
    prior_stroke = _flag("has had a stroke")
    prior_cvd = _flag("has cardiovascular disease (heart attack, angina, stroke, peripheral artery disease)")
    total_cholesterol = Measurement(
        "cholesterol",
        50,
        700,
        metadata={"description": "total cholesterol", "example": {"value": 5.6, "unit": "mmol/L"}},
    )
    hdl_cholesterol = Measurement(
        "cholesterol", 10, 200, metadata={"description": "HDL cholesterol", "example": {"value": 1.2, "unit": "mmol/L"}}
    )
    fasting_glucose = Measurement(
        "glucose",
        20,
        700,
        metadata={"description": "fasting plasma glucose", "example": {"value": 6.1, "unit": "mmol/L"}},
    )
    glucose_2h = Measurement(
        "glucose",
        20,
        800,
        metadata={
            "description": "plasma glucose 2 hours into a 75 g oral glucose tolerance test",
            "example": {"value": 152, "unit": "mg/dL"},
        },
    )
    heart_rate = _number(25, 250, "beats per minute", 76, "resting heart rate")
    pregnancies = WholeNumber(
        validate=validate.Range(0, 30), metadata={"description": "number of pregnancies", "example": 2}
    )
    triceps_skinfold = _number(2, 100, "mm", 29, "triceps skinfold thickness")
    diabetes_pedigree = _number(0, 3, "score", 0.42, "diabetes pedigree function (family history, Pima definition)")
    waist_cm = _number(40, 250, "cm", 96, "waist circumference, below the ribs (usually at the navel)")
    physically_active = _flag("30 minutes of physical activity daily", True, default=None)
    daily_vegetables = _flag("eats vegetables, fruit or berries every day", True, default=None)
    high_glucose_history = _flag("ever found to have high blood glucose", False, default=None)
    family_history_diabetes = fields.String(
        validate=validate.OneOf(FAMILY_HISTORY_CODES),
        metadata={"description": "relatives diagnosed with diabetes", "example": "second_degree"},
    )
    race = fields.String(
        validate=validate.OneOf(PCE_RACES),
        metadata={"description": "selects the Pooled Cohort Equation", "example": "white"},
    )
    score2_region = fields.String(
        validate=validate.OneOf(SCORE2_REGIONS),
        metadata={"description": "ESC risk region for SCORE2", "example": "moderate"},
    )
    # QRISK3's inputs beyond the ones above (its cholesterol ratio is total_cholesterol / hdl_cholesterol).
    ethnicity = fields.String(
        validate=validate.OneOf(QRISK3_ETHNICITIES),
        metadata={"description": "ethnic group, QRISK3's nine groups", "example": "white_or_not_stated"},
    )
    townsend_score = _number(
        -15, 25, "score (0 = national average, higher = more deprived)", -1.2, "Townsend deprivation of the home area"
    )
    smoking_status = fields.String(
        validate=validate.OneOf(QRISK3_SMOKING),
        metadata={
            "description": "non_smoker, ex_smoker, or a current smoker: light_smoker (under 10 a day), "
            "moderate_smoker (10 to 19), heavy_smoker (20 or more); must agree with smoker and cigarettes_per_day",
            "example": "ex_smoker",
        },
    )
    systolic_bp_sd = _number(
        0, 100, "mmHg", 8.5, "standard deviation of at least two most recent systolic blood pressure readings"
    )
    diabetes_type = fields.String(
        validate=validate.OneOf(DIABETES_TYPES),
        metadata={"description": "type_1 or type_2, when diabetes is true", "example": "type_2"},
    )
    atrial_fibrillation = _flag("atrial fibrillation diagnosed", default=None)
    atypical_antipsychotics = _flag("on atypical antipsychotic medication", default=None)
    corticosteroids = _flag("on regular oral corticosteroids (steroid tablets)", default=None)
    erectile_dysfunction = _flag("erectile dysfunction diagnosed or treated (asked of men)", default=None)
    migraine = _flag("migraine diagnosed", default=None)
    rheumatoid_arthritis = _flag("rheumatoid arthritis diagnosed", default=None)
    chronic_kidney_disease = _flag("chronic kidney disease stage 3, 4 or 5", default=None)
    severe_mental_illness = _flag(
        "severe mental illness (schizophrenia, bipolar disorder, moderate or severe depression)", default=None
    )
    systemic_lupus_erythematosus = _flag("systemic lupus erythematosus (SLE) diagnosed", default=None)
    family_history_cvd = _flag("angina or heart attack in a first-degree relative under 60", default=None)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("diastolic_bp", 0) >= data.get("systolic_bp", float("inf")):
            raise ValidationError("must be lower than systolic_bp", "diastolic_bp")
        if not data.get("smoker", True) and data.get("cigarettes_per_day", 0) > 0:
            raise ValidationError("must be 0 (or left out) when smoker is false", "cigarettes_per_day")
        hdl, total = data.get("hdl_cholesterol"), data.get("total_cholesterol")
        if hdl is not None and total is not None and hdl >= total:
            raise ValidationError("must be lower than total_cholesterol", "hdl_cholesterol")
        if data.get("diabetes_type") is not None and not data.get("diabetes"):
            raise ValidationError("is given only when diabetes is true", "diabetes_type")
        _smoking_agrees(data)


def _smoking_agrees(data: dict[str, Any]) -> None:
    """smoking_status says more than smoker and cigarettes_per_day, and must not contradict them."""
    status = data.get("smoking_status")
    if status is None or "smoker" not in data:
        return
    if (status in CURRENT_SMOKING) != data["smoker"]:
        expected = "a current smoker's status" if data["smoker"] else "non_smoker or ex_smoker"
        raise ValidationError(f"must be {expected}, as smoker is {str(data['smoker']).lower()}", "smoking_status")
    cigarettes = data.get("cigarettes_per_day")
    if status in CIGARETTES_PER_DAY_BY_SMOKING and cigarettes:
        low, high, in_words = CIGARETTES_PER_DAY_BY_SMOKING[status]
        if not low <= cigarettes <= high:
            message = f"{status} means {in_words} cigarettes a day; cigarettes_per_day is {cigarettes}"
            raise ValidationError(message, "smoking_status")


class ConditionResultSchema(Schema):
    title = fields.String(required=True)
    model = fields.String(required=True, metadata={"description": "the chosen algorithm"})
    applicable = fields.Boolean(required=True)
    risk = fields.Float(
        required=True, allow_none=True, metadata={"description": "calibrated probability; null when not applicable"}
    )
    reason = fields.String(
        required=True, allow_none=True, metadata={"description": "why not applicable; null when it is"}
    )


class ConditionsSchema(Schema):
    diabetes = fields.Nested(ConditionResultSchema, required=True)
    chd = fields.Nested(ConditionResultSchema, required=True)


class EquationDetailSchema(Schema):
    equation = fields.String(required=True, metadata={"example": "pooled_cohort_equations"})
    name = fields.String(required=True)
    variant = fields.String(required=True)
    outcome = fields.String(required=True)
    horizon_years = fields.Integer(required=True)
    applicable = fields.Boolean(required=True)
    risk = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "10-year risk 0..1; FINDRISC: points 0-26; null when not applicable"},
    )
    probability = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "the result as a 10-year probability (FINDRISC: its band's estimate)"},
    )
    category = fields.String(required=True, allow_none=True)
    reason = fields.String(
        required=True, allow_none=True, metadata={"description": '"not applicable, because ..." when not applicable'}
    )


class DiseaseDetailsSchema(Schema):
    conditions = fields.Nested(ConditionsSchema, required=True)
    equations = fields.List(fields.Nested(EquationDetailSchema), required=True)


class DiseaseDecisionSchema(DecisionSchema):
    details = fields.Nested(DiseaseDetailsSchema, required=True)  # type: ignore[assignment]  # typed details
