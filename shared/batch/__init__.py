"""The fast batch engine: `risk rescore` a column at a time, in bounded memory.

`score_table` (shared/batch/scoring.py) is the one entry point for scoring a chunk of valid events whose
window features are computed; `validate_table` (validation.py) checks raw rows column-wise against the
contract; `rescore_columns` (engine.py) runs a whole file through both, time slice by time slice.
"""

from shared.batch.scoring import score_table

__all__ = ["score_table"]
