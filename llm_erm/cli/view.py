"""`llm-erm view`: browse runs, cells, attempts and comparisons in a local web page (read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_erm.config import default

MIRROR_SYNC_S = 2.0  # how often a viewer of an object store looks for new objects


def register(app: typer.Typer) -> None:
    @app.command()
    def view(
        results_dir: Annotated[str, typer.Option("--results-dir", help="Where runs are stored (a path or s3://...).")]
        = default("results_dir"),
        port: Annotated[int, typer.Option("--port", help="Port to listen on (0 picks a free one).")] = 8765,
        host: Annotated[str, typer.Option("--host", help="Interface to bind; anything but loopback needs --token.")]
        = "127.0.0.1",
        token: Annotated[str | None, typer.Option(
            "--token", envvar="LLM_ERM_VIEW_TOKEN",
            help="Secret every request must carry (required off loopback; at least 16 characters).")] = None,
    ) -> None:
        """A local web viewer of the runs under --results-dir: their state and cost, each run as a grid coloured
        by selected test accuracy with every flag, a cell's trials and attempts (prompt, response, highlighted
        code, errors, tokens, cost, behaviour groups), two runs side by side with regressions marked. Pages
        follow a run in progress. Read-only; nothing is fetched from the network.

        Example: llm-erm view --results-dir results   (then open http://127.0.0.1:8765/)
        """
        from llm_erm.results import storage
        from llm_erm.viewer import make_server

        location = storage.resolve(results_dir)
        mirror = None
        if storage.is_remote(location):  # the viewer reads a local folder: a copy kept in step with the store
            import tempfile
            import threading

            mirror = storage.Mirror(location, Path(tempfile.mkdtemp(prefix="llm-erm-view-")))
            mirror.sync()
            stop = threading.Event()

            def follow() -> None:
                while not stop.wait(MIRROR_SYNC_S):
                    try:
                        mirror.sync()
                    except Exception:  # noqa: BLE001 - a store hiccup: the next round tries again
                        continue

            threading.Thread(target=follow, name="llm-erm-view-sync", daemon=True).start()
        server = make_server(mirror.local if mirror else location, host=host, port=port, token=token)
        warm = server.warm_up()  # read the runs in the background: by the time a page is opened they are cached
        typer.echo(f"llm-erm view: {location} (read-only) at {server.url}  - Ctrl-C stops")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            # a daemon thread still inside pyarrow when the interpreter finalises aborts it (SIGABRT): let the
            # warm-up finish first (a Ctrl-C right after the start lands there on a busy machine)
            warm.join(timeout=30)
            if mirror is not None:
                stop.set()
                import shutil

                shutil.rmtree(mirror.local, ignore_errors=True)
