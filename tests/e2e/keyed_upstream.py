"""An OpenAI-compatible upstream that answers only the API keys it accepts (401 otherwise), for tests
of which key the gateway sends: it records the method and bearer key of every /v1 request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.e2e.local_http import send_json, serving

MODEL = "house-model"
ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": MODEL,
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}  # fmt: skip


@dataclass
class KeyedUpstream:
    url: str = ""  # the base URL a deployment names, with /v1
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, key) of each /v1 request

    def chat_keys(self) -> list[str]:
        return [key for method, key in self.calls if method == "POST"]


@contextmanager
def keyed_upstream(*accepted: str) -> Iterator[KeyedUpstream]:
    upstream = KeyedUpstream()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: object) -> None:
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.path.startswith("/v1/"):  # not the engine-metrics probe at /metrics
                upstream.calls.append((self.command, key))
            if key in accepted:
                send_json(self, 200, body)
            else:
                send_json(self, 401, {"error": {"message": "bad key"}})

        def do_GET(self) -> None:
            self._answer({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._answer(ANSWER)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        upstream.url = url + "/v1"
        yield upstream
