"""`llm-erm replay-server`: an OpenAI-compatible server on 127.0.0.1 that answers from a recording."""

from typing import Annotated

import typer

Source = Annotated[
    str, typer.Option("--from", help="A run's ledger directory (results/<run_id>, or s3://bucket/results/<run_id>) "
                      "or a JSONL file of recorded answers.")
]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free one.")]


def register(app: typer.Typer) -> None:
    app.command(name="replay-server")(replay_server)


def replay_server(source: Source, port: Port = 0) -> None:
    """Serve recorded answers over the OpenAI wire protocol, so any client replays a run offline.

    Speaks POST /v1/responses, POST /v1/chat/completions and GET /v1/models. The n-th request for a prompt gets the n-th recorded answer of that prompt; an unrecorded one gets HTTP 404.

    Examples:

        llm-erm replay-server --from results/3f2a9c1e --port 8000

        OPENAI_BASE_URL=http://127.0.0.1:8000/v1 python runner.py ...
    """
    from llm_erm.errors import UsageError
    from llm_erm.proposers.replay import ReplayAnswers, load_records
    from llm_erm.wire.server import WireServer

    records = load_records(source)
    answers = ReplayAnswers(records, str(source))
    models = tuple(sorted({record.model for record in records if record.model})) or ("gpt-5",)
    try:
        server = WireServer(answers, port=port, models=models)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): pick another --port") from None
    typer.echo(
        f"replaying {len(records)} recorded answers for {answers.prompts} prompts from {source} "
        f"at {server.url} (Ctrl-C to stop)"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")
