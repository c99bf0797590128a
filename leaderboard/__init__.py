"""The SteerBench leaderboard: ONNX submissions with model cards, evaluated on the full protocol.

`python -m leaderboard --help` lists the commands; leaderboard/README.md documents the submission
format, the checks, the ranking and the entries. Modules: card (model card schema), modelcheck
(ONNX validation and smoke inference), sandbox (limited child processes), board (entries and the
evaluation step), submit, ranking, publish (README.md and index.html), verify.
"""

import benchmark  # noqa: F401  (first: portable numerics before numpy loads, benchmark/common/numerics.py)
