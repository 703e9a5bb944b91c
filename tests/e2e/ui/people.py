"""The people of the web UI tests (a tenant member of each role and two operators) and what the
tests' gateway promises them."""

from __future__ import annotations

PASSWORD = "correct horse battery"
MEMBERS = {"owner": "olga@acme.example", "developer": "dev@acme.example", "analyst": "ana@acme.example",
           "read_only": "rex@acme.example"}  # fmt: skip
OPERATORS = {"platform-admin": "pat@ops.example", "platform-viewer": "vic@ops.example"}
ANSWER_TOKENS = 300  # the engine's answer when the chat sets no max_tokens
SCALE_TTFT_TARGET_MS = 60_000  # the "scale" plan's first-token target: every stream here meets it
SCALE_FEE_USD = 0.005  # ... and its monthly fee: half of the 0.01 USD of credit a test grants
