"""Methods a grid compares besides erm: in-context learning (icl.py) and the trained baselines."""
