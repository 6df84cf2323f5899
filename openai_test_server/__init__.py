"""An OpenAI-compatible HTTP server for tests and benchmarks (standard library only).

Chat completions with JSON generated from the response schema, the Files and Batch APIs,
flex processing, rate limits and scripted or random faults; see README.md. Run it with
``python -m openai_test_server --port 0`` or in-process with ``running_server()``.
"""

from openai_test_server.content import (
    count_tokens,
    generate_content,
    generate_from_schema,
    prompt_token_count,
)
from openai_test_server.server import (
    ABSURD_PROMPT_TOKENS,
    ALL_FAULT_KINDS,
    CAPTIVE_PORTAL_PAGE,
    DEFAULT_SERVER_ERROR_MESSAGE,
    FakeOpenAIConfig,
    FakeOpenAIServer,
    RecordedRequest,
    ServerStats,
    main,
    running_server,
)

__all__ = [
    "ABSURD_PROMPT_TOKENS",
    "ALL_FAULT_KINDS",
    "CAPTIVE_PORTAL_PAGE",
    "DEFAULT_SERVER_ERROR_MESSAGE",
    "FakeOpenAIConfig",
    "FakeOpenAIServer",
    "RecordedRequest",
    "ServerStats",
    "count_tokens",
    "generate_content",
    "generate_from_schema",
    "main",
    "prompt_token_count",
    "running_server",
]
