"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API on tenant keys.

The request is translated to an OpenAI chat request and goes through the same pipeline as any
other (authentication, admission, the fair queue, placement on any backend, metering); its answer
is translated back on the way out, streams event by event. Keys come as `x-api-key` (what the
Anthropic SDK sends) or as a bearer token. Errors have the Messages API's shape."""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantgate.dataplane.request import MessagesOrigin, json_object
from tenantgate.errors import GatewayError
from tenantgate.providers.anthropic_events import MessageEvents
from tenantgate.providers.anthropic_inbound import error_body, message, native_only

MESSAGES = "/v1/messages"
_GATEWAY_ERROR = b'data: {"error"'
COUNT_TOKENS = "/v1/messages/count_tokens"


def parse_messages(body: bytes) -> MessagesOrigin:
    payload = json_object(body)
    return MessagesOrigin(payload, native_only(payload))


def native_events(data: bytes) -> bytes:
    """An Anthropic event stream passed through, with the gateway's own in-band error (relay.py, in
    OpenAI's shape, always at the end) told as the Messages API's `error` event."""
    at = data.find(_GATEWAY_ERROR)
    if at < 0:
        return data
    return data[:at] + MessageEvents("").feed(data[at:])


def error_response(error: GatewayError, request_id: str) -> Response:
    body = orjson.dumps(error_body(error.status, error.message))
    response = Response(body, status_code=error.status, media_type="application/json", headers=error.headers)
    response.headers["x-request-id"] = request_id
    response.headers["request-id"] = request_id  # where the Anthropic SDK looks for it
    return response


class MessagesAnswer:
    """Runs the gateway's OpenAI-dialect answer and hands the client the Messages API's."""

    def __init__(self, inner: ASGIApp, origin: MessagesOrigin, stream: bool) -> None:
        self.inner = inner
        self.origin = origin  # `native` once sent: then the answer is Anthropic's own, passed through
        self.model = str(origin.payload["model"])
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        events = MessageEvents(self.model) if self.stream else None
        origin = self.origin
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
                data = sent.get("body", b"")
                # sent natively: Anthropic's own events; only the gateway's in-band error is OpenAI's
                out = native_events(data) if origin.native else events.feed(data) + (b"" if more else events.finish())
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
        if self.origin.native and isinstance(answer, dict) and (status < 400 or answer.get("type") == "error"):
            out = body  # Anthropic's own answer or error
        elif status < 400 and isinstance(answer, dict):
            out = orjson.dumps(message(answer, self.model))
        else:
            error = answer.get("error") if isinstance(answer, dict) else None
            text = str(error.get("message")) if isinstance(error, dict) else f"The upstream answered HTTP {status}."
            out = orjson.dumps(error_body(status, text))
        headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": out, "more_body": False})
