"""Test doubles: fakes of provider APIs that tests and benchmarks run real SDK clients against.

anthropic_wire.py  Anthropic's Messages API (AnthropicWireServer), for the official `anthropic` SDK
gemini_wire.py     Google's Gemini generateContent API (GeminiWireServer), for `google-genai`

Each subclasses llm_erm.wire.server.WireServer (recording, fault injection, keys). No product module
imports this package (tests/test_import_graph.py checks it); it ships in the wheel so that benchmarks and
plug-in authors can use the same fakes.
"""
