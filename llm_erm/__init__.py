"""LLM-ERM: propose-and-verify program learning.

Vocabulary carried through the package:
  target   a hidden boolean function (fn_a ...), see llm_erm.datasets
  dataset  the train/val/test splits of one (target, length, sizes, seed), content-hashed on disk
  prompt   what a proposer is shown: the training split only
  proposer draws candidate programs (OpenAI, OpenAI-compatible, enumerative, replay)
  verify   extracts, sandboxes and scores one candidate
  trial    one k-attempt search on a cell's dataset; the attempt with the best validation accuracy is selected
  cell     one (target, length) of the grid
"""

__version__ = "0.1.0"
