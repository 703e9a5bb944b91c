"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API on tenant keys.

The request is translated to an OpenAI chat request and goes through the same pipeline as any
other (authentication, admission, the fair queue, placement on any backend, metering); its answer
is translated back on the way out, streams event by event. Keys come as `x-api-key` (what the
Anthropic SDK sends) or as a bearer token. Errors have the Messages API's shape."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantgate.dataplane.request import json_object
from tenantgate.errors import GatewayError
from tenantgate.providers.anthropic_events import MessageEvents
from tenantgate.providers.anthropic_inbound import chat_request, error_body, message

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"


def parse_messages(body: bytes, counting: bool = False) -> dict[str, Any]:
    """The Messages API request, as the OpenAI chat request the pipeline runs."""
    return chat_request(json_object(body), counting)


def error_response(error: GatewayError, request_id: str) -> Response:
    body = orjson.dumps(error_body(error.status, error.message))
    response = Response(body, status_code=error.status, media_type="application/json", headers=error.headers)
    response.headers["x-request-id"] = request_id
    response.headers["request-id"] = request_id  # where the Anthropic SDK looks for it
    return response


class MessagesAnswer:
    """Runs the gateway's OpenAI-dialect answer and hands the client the Messages API's."""

    def __init__(self, inner: ASGIApp, model: str, stream: bool) -> None:
        self.inner = inner
        self.model = model
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        events = MessageEvents(self.model) if self.stream else None
        start: Message = {}
        whole: list[bytes] = []

        async def translated(sent: Message) -> None:
            nonlocal start
            if sent["type"] == "http.response.start":
                start = sent
                if events is not None and sent["status"] == 200:
                    await send(sent)  # an event stream: no length to correct
                return
            if sent["type"] != "http.response.body":
                await send(sent)
                return
            more = bool(sent.get("more_body", False))
            if events is not None and start["status"] == 200:
                out = events.feed(sent.get("body", b"")) + (b"" if more else events.finish())
                await send({"type": "http.response.body", "body": out, "more_body": more})
                return
            whole.append(sent.get("body", b""))
            if not more:
                await self._send_whole(start, b"".join(whole), send)

        await self.inner(scope, receive, translated)

    async def _send_whole(self, start: Message, body: bytes, send: Send) -> None:
        status = start["status"]
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = {}
        if status < 400 and isinstance(answer, dict):
            out = orjson.dumps(message(answer, self.model))
        else:
            error = answer.get("error") if isinstance(answer, dict) else None
            text = str(error.get("message")) if isinstance(error, dict) else f"The upstream answered HTTP {status}."
            out = orjson.dumps(error_body(status, text))
        headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": out, "more_body": False})
