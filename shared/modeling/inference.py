"""How CatBoost is asked to predict while serving.

CatBoost uses every core by default. A serving process scores a few rows at a time beside other workers
on the same cores, and there the thread pool costs more than it gives: one row's exact SHAP values took
60 ms with all threads against 9 ms with one, under load on the 2-core machine. Big batches (the batch
door) still get every core.
"""

from __future__ import annotations

ROWS_PER_EXTRA_THREADS = 256


def catboost_threads(rows: int) -> int:
    """1 thread for the small batches of the online doors; all cores (-1) for big ones."""
    return 1 if rows < ROWS_PER_EXTRA_THREADS else -1
