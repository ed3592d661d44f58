"""The OpenAI wire protocol on 127.0.0.1: a real HTTP server that the official `openai` client talks to.

server.py   WireServer: Responses, Chat Completions, Completions and models, answers from a callback,
            requests recorded, faults injectable; `llm-erm replay-server` serves a recording with it
batches.py  the Batch API's Files and Batches endpoints on the same server

Infrastructure, not science: no proposer depends on it to ask a model (llm_erm.proposers.replay only
gives it an answer callback). Fakes of other providers' APIs, used by tests alone, are in llm_erm.testing.
"""
