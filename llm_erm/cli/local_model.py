"""`llm-erm local-model serve|path`: a real small model on 127.0.0.1, from PyPI alone (llm_erm.local_model)."""

from __future__ import annotations

from typing import Annotated

import typer

SERVE_EXAMPLES = """
Examples:


  pip install 'llm-erm[local-llm]'
  llm-erm local-model serve --port 8080
  llm-erm run --proposer openai-chat --base-url http://127.0.0.1:8080/v1 --model qwen2.5-coder-0.5b \\
      --functions fn_a --lengths 20 --train-size 20 --max-output-tokens 300 --structured-output
  llm-erm local-model serve --port 8080 --ctx-size 8192     # room for --train-size 100 at L=100
"""

PATH_EXAMPLES = """
Examples:


  llm-erm local-model path
  LLM_ERM_MODELS_DIR=/data/models llm-erm local-model path
"""

Port = Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: a free one, printed).")]
CtxSize = Annotated[int, typer.Option("--ctx-size", help="Tokens of context per request: prompt plus answer. "
                                      "The paper prompt at --train-size 100 needs ~2 500 at L=20, ~10 500 at "
                                      "L=100, plus the output cap.")]
Threads = Annotated[int, typer.Option("--threads", help="CPU threads. One is stable on a shared machine; more "
                                      "are faster only on idle cores.")]
Parallel = Annotated[int, typer.Option("--parallel", help="Requests served at once, each with --ctx-size of "
                                       "context (memory grows with it).")]
Alias = Annotated[str, typer.Option("--alias", help="The model name the server answers to: pass it as --model.")]
Metrics = Annotated[bool, typer.Option("--metrics/--no-metrics", help="Serve Prometheus counters at /metrics.")]


def register(app: typer.Typer) -> None:
    from llm_erm.local_model import MODEL, ServerSettings

    defaults = ServerSettings()
    local = typer.Typer(help=f"A real small model on this machine ({MODEL.description}), served by llama.cpp "
                             "on 127.0.0.1 with an OpenAI-compatible API. Needs the local-llm extra.",
                        no_args_is_help=True)
    app.add_typer(local, name="local-model")

    @local.command("serve", epilog=SERVE_EXAMPLES)
    def serve(port: Port = defaults.port, ctx_size: CtxSize = defaults.ctx_size, threads: Threads = defaults.threads,
              parallel: Parallel = defaults.parallel, alias: Alias = defaults.alias,
              metrics: Metrics = defaults.metrics) -> None:
        """Serve the bundled model on 127.0.0.1 until Ctrl-C.

        The first start assembles the model file from its packages (491 MB, checked by size and sha256)
        into <venv>/share/llm-erm/models (or $LLM_ERM_MODELS_DIR); later starts take a few seconds.
        """
        from llm_erm.local_model import serve_forever

        serve_forever(ServerSettings(port=port, ctx_size=ctx_size, threads=threads, parallel=parallel, alias=alias,
                                     metrics=metrics), say=lambda line: typer.echo(line, err=True))

    @local.command("path", epilog=PATH_EXAMPLES)
    def path() -> None:
        """Print the path of the verified model file (assembling it first if needed)."""
        from llm_erm.local_model import model_path

        typer.echo(str(model_path(say=lambda line: typer.echo(line, err=True))))
