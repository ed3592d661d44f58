"""Planted targets for positive controls: rules every learner here should find from 200 samples.

Use them as user targets, e.g. DatasetSpec("llm_erm.methods.controls:first_bit", 20, alphabet="binary").
"""


def first_bit(x: str) -> int:
    """Label = the first bit: one feature decides it."""
    return int(x[0] == "1")
