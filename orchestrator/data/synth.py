"""The built-in `synthetic-fraud` data set: provider-level claim aggregates with fraud labels.

Generative story (one row per healthcare provider, aggregated over a year of claims):

1. The provider's region is drawn from five regions; regions differ a little in fraud
   prevalence, so partitioning by region (`column:region`) gives clients different base rates.
2. The provider is fraudulent with probability `fraud_rate` (times the region's factor,
   renormalised so the overall rate is `fraud_rate`).
3. Its size, the number of distinct beneficiaries, is log-normal (median about 55).
4. Claims per beneficiary are gamma distributed; fraudulent providers bill about 30% more
   claims per beneficiary and a larger share of them as inpatient stays.
5. Mean reimbursed amounts per claim are log-normal; fraudulent providers are reimbursed about
   16% (inpatient) and 12% (outpatient) more per claim, and their patients pay similar
   deductibles, so the deductible-to-reimbursement ratio is lower.
6. Inpatient stays and outpatient claim durations run longer for fraudulent providers; they
   work with more distinct physicians and file more same-day duplicate claims.
7. Their beneficiaries look slightly older and sicker (chronic-condition shares about four
   points higher), the signature of upcoding.
8. The share of deceased beneficiaries and of male beneficiaries carry no signal.

All effects overlap heavily with normal variation, so no single column separates the classes:
a well-trained logistic regression reaches a test ROC-AUC around 0.9, not 1.0. The same seed
always gives the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where a frame is built: the built-in data set's name and label need no pandas
    import pandas as pd

LABEL = "potential_fraud"
REGIONS = ("north", "south", "east", "west", "central")
_REGION_WEIGHTS = (0.25, 0.2, 0.2, 0.2, 0.15)
_REGION_FRAUD_FACTOR = (0.8, 1.3, 1.0, 0.9, 1.1)
_CHRONIC = {
    "share_chronic_alzheimer": 0.33,
    "share_chronic_heart_failure": 0.50,
    "share_chronic_kidney_disease": 0.35,
    "share_chronic_diabetes": 0.60,
    "share_chronic_cancer": 0.12,
    "share_chronic_depression": 0.35,
}


def generate_fraud(rows: int = 75_000, fraud_rate: float = 0.1, seed: int = 42) -> pd.DataFrame:
    """Generate `rows` providers, about `fraud_rate` of them fraudulent, deterministically from `seed`."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if not 0.0 < fraud_rate < 1.0:
        raise ValueError(f"fraud rate must be between 0 and 1 (exclusive), got {fraud_rate}")
    rng = np.random.default_rng(seed)

    region_index = rng.choice(len(REGIONS), size=rows, p=_REGION_WEIGHTS)
    factor = np.asarray(_REGION_FRAUD_FACTOR)[region_index]
    fraud = rng.random(rows) < np.clip(fraud_rate * factor / factor.mean(), 0.0, 1.0)
    f = fraud.astype(float)

    beneficiaries = np.maximum(1, np.round(np.exp(rng.normal(4.0, 0.9, rows)))).astype(int)
    claims_per_beneficiary = rng.gamma(4.0, 0.75, rows) * (1 + 0.30 * f)
    claims = np.maximum(1, np.round(beneficiaries * claims_per_beneficiary)).astype(int)
    inpatient_share = np.where(fraud, rng.beta(2.5, 11.0, rows), rng.beta(2.0, 12.0, rows))
    inpatient = rng.binomial(claims, inpatient_share)
    outpatient = claims - inpatient

    mean_inpatient_paid = np.exp(rng.normal(np.log(9000), 0.35, rows)) * (1 + 0.16 * f)
    mean_outpatient_paid = np.exp(rng.normal(np.log(300), 0.45, rows)) * (1 + 0.12 * f)
    mean_deductible = np.exp(rng.normal(np.log(120), 0.5, rows)) + 900 * inpatient / claims

    import pandas as pd

    frame = pd.DataFrame(
        {
            "region": np.asarray(REGIONS)[region_index],
            "n_beneficiaries": beneficiaries,
            "n_claims_inpatient": inpatient,
            "n_claims_outpatient": outpatient,
            "claims_per_beneficiary": np.round(claims / beneficiaries, 3),
            "inpatient_share": np.round(inpatient / claims, 4),
            "total_reimbursed_inpatient": np.round(inpatient * mean_inpatient_paid, 2),
            "total_reimbursed_outpatient": np.round(outpatient * mean_outpatient_paid, 2),
            "mean_reimbursed_per_claim": np.round(
                (inpatient * mean_inpatient_paid + outpatient * mean_outpatient_paid) / claims, 2
            ),
            "mean_deductible_paid": np.round(mean_deductible, 2),
            "mean_admission_days": np.round(rng.gamma(5.0, 1.0, rows) + 0.8 * f, 2),
            "mean_claim_duration_days": np.round(rng.gamma(3.0, 0.5, rows) + 0.3 * f, 2),
            "n_distinct_physicians": np.maximum(
                1, np.round(claims**0.6 * rng.lognormal(0.0, 0.3, rows) * (1 + 0.2 * f))
            ).astype(int),
            "share_duplicate_claims": np.round(
                np.where(fraud, rng.beta(1.5, 35.0, rows), rng.beta(1.0, 40.0, rows)), 4
            ),
            "mean_beneficiary_age": np.round(rng.normal(73.0, 4.0, rows) + 1.0 * f, 1),
            **{
                name: np.round(np.clip(rng.normal(base + 0.04 * f, 0.08, rows), 0, 1), 3)
                for name, base in _CHRONIC.items()
            },
            "share_deceased_beneficiaries": np.round(rng.beta(1.0, 80.0, rows), 4),
            "share_male_beneficiaries": np.round(rng.beta(40.0, 55.0, rows), 3),
            LABEL: fraud.astype(int),
        }
    )
    return frame
