"""Tabular targets: real public tables, offline first, rendered `k:v,...` under the raw or clean protocol.

    from llm_erm.datasets.tabular import load_table, table_status, TABLES
    table = load_table("fn_m")            # local file > cache > packaged copy > UCI/OpenML
    table.rows[0], table.labels[0], table.source, table.sha256

See README.md of llm_erm.datasets for the decisions (length, sizes, duplicates, missing values).
"""

from llm_erm.datasets.tabular.protocol import DEFAULT_PROTOCOL, PROTOCOLS, Encoding, encoding_for, parse_row
from llm_erm.datasets.tabular.sources import load_table, table_status, unavailable_message
from llm_erm.datasets.tabular.table import Table
from llm_erm.datasets.tabular.tables import OFFLINE_TABLES, TABLES, TABULAR_TARGETS, TableDef, get_table

__all__ = [
    "DEFAULT_PROTOCOL",
    "OFFLINE_TABLES",
    "PROTOCOLS",
    "TABLES",
    "TABULAR_TARGETS",
    "Encoding",
    "Table",
    "TableDef",
    "encoding_for",
    "get_table",
    "load_table",
    "parse_row",
    "table_status",
    "unavailable_message",
]
