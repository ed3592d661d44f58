"""`llm-erm view`: a local, read-only web viewer of runs, cells, attempts and comparisons.

    from llm_erm.viewer import make_server
    server = make_server(Path("results"), host="127.0.0.1", port=8765)   # UsageError on bad input
    print(server.url); server.serve_forever()

The page is plain HTML/CSS/JS shipped in static/ (no build step, nothing fetched from the network); the data
comes from JSON endpoints over the results directory (see server.py for the routes, data.py for the content).
"""

from llm_erm.viewer.data import Results
from llm_erm.viewer.server import ViewerServer, make_server

__all__ = ["Results", "ViewerServer", "make_server"]
