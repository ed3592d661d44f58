"""The child process of LocalServer (`python -m llm_erm.local_model '<settings as JSON>'`): serve until killed."""

import json
import sys

from llm_erm.errors import UsageError
from llm_erm.local_model.server import ServerSettings, serve_forever

try:
    serve_forever(ServerSettings(**json.loads(sys.argv[1])))
except UsageError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
