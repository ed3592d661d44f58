"""The Prefect flows: erm-grid, erm-cell (grid.py), erm-analysis, erm-nightly (analysis.py)."""
