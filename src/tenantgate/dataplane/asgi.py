"""The OpenAI-compatible data plane as a plain ASGI app: no framework work per token.

Paths: /v1/{chat/completions,completions,embeddings,responses,models,models/{id}}, the Anthropic
Messages API at /v1/messages and /v1/messages/count_tokens, and the same under
/tenants/{tenant}/v1/..., where the key must belong to {tenant}.
"""

from __future__ import annotations

import itertools
import logging
import os
from urllib.parse import unquote

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantgate.dataplane.client_watch import watch_of
from tenantgate.dataplane.deps import DataPlaneDeps
from tenantgate.dataplane.messages_api import COUNT_TOKENS, MESSAGES, MessagesAnswer, parse_messages
from tenantgate.dataplane.messages_api import error_response as messages_error_response
from tenantgate.dataplane.pipeline import InferenceCall, check_namespace, handle_inference
from tenantgate.dataplane.queued_stream import QueuedStream
from tenantgate.dataplane.relay import StreamRelay
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.error_responses import error_response, internal_error
from tenantgate.errors import BodyTooLarge, ClientGone, GatewayError, InvalidRequest, MethodNotAllowed, NotFound
from tenantgate.providers.anthropic_inbound import chat_request
from tenantgate.routing.policy import resolve_route, visible_models

log = logging.getLogger(__name__)

MAX_CLIENT_REQUEST_ID = 512  # as OpenAI's API allows
_POST_ROUTES = {"/v1/" + e.value: e for e in Endpoint}


def split_namespace(path: str) -> tuple[str | None, str]:
    """'/tenants/acme/v1/models' → ('acme', '/v1/models')."""
    if not path.startswith("/tenants/"):
        return None, path
    tenant, _, rest = path[len("/tenants/") :].partition("/")
    return tenant or None, "/" + rest


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge(f"The request body exceeds the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The request body exceeds the {limit}-byte limit.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def post_only(path: str) -> MethodNotAllowed:
    error = MethodNotAllowed(f"Use POST for {path}.")
    error.headers["Allow"] = "POST"
    return error


def client_of(scope: Scope) -> str | None:
    """The address of the connection the request came on."""
    client = scope.get("client")
    return str(client[0]) if client else None


def caller_headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """The Authorization header (or, as the Anthropic SDK sends the key, X-Api-Key), the client's own
    request id (X-Client-Request-Id) and the end-user assertion of a tenant's proxy
    (X-Tenantgate-Assertion), each if sent."""
    authorization = client_request_id = assertion = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            api_key = value.decode("latin-1")
        elif name == b"x-tenantgate-assertion":
            assertion = value.decode("latin-1")
        elif name == b"x-client-request-id":
            if len(value) > MAX_CLIENT_REQUEST_ID or not value.isascii():
                raise InvalidRequest(
                    f"X-Client-Request-Id must be ASCII and at most {MAX_CLIENT_REQUEST_ID} characters.",
                    code="invalid_client_request_id",
                )
            client_request_id = value.decode("ascii")
    if authorization is None and api_key is not None:
        authorization = "Bearer " + api_key
    return authorization, client_request_id, assertion


class DataPlane:
    def __init__(self, deps: DataPlaneDeps) -> None:
        self.deps = deps
        # Unique across instances (random prefix) without a syscall per request (counter).
        prefix = os.urandom(6).hex()
        self._request_ids = (f"{prefix}{n:012x}" for n in itertools.count())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = next(self._request_ids)
        app: ASGIApp
        try:
            app = await self._route(scope, receive, request_id)
        except GatewayError as exc:
            app = _error_response(scope, exc, request_id)
        except ClientGone:
            return
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            app = _error_response(scope, internal_error(request_id), request_id)
        recorder = self.deps.recorder
        # Strict journal: an answer goes out once its usage event is on disk. A stream records its
        # event when it ends, and waits for the disk there (relay.py), not before its head.
        if recorder.strict and not _streams(app):
            await recorder.durable()
        await app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, request_id: str) -> ASGIApp:
        namespace, path = split_namespace(scope["path"])
        method = scope["method"]
        endpoint = _POST_ROUTES.get(path)
        if endpoint is not None:
            if method != "POST":
                raise post_only(path)
            body = await read_body(scope, receive, self.deps.max_body_bytes)
            authorization, client_request_id, assertion = caller_headers(scope)
            call = InferenceCall(
                endpoint, body, authorization, namespace, request_id, receive, client_request_id, assertion,
                client=client_of(scope), watch=watch_of(scope),
            )  # fmt: skip
            return await handle_inference(self.deps, call)
        if path in (MESSAGES, COUNT_TOKENS):
            return await self._messages(scope, receive, request_id, namespace, path)
        if path.startswith("/v1/models") and method == "GET":
            return await self._models(scope, namespace, path[len("/v1/models") :])
        raise NotFound(f"Unknown endpoint {method} {scope['path']}.")

    async def _messages(
        self, scope: Scope, receive: Receive, request_id: str, namespace: str | None, path: str
    ) -> ASGIApp:  # fmt: skip
        """The Anthropic Messages API: translated to a chat request, run, and its answer translated back."""
        if scope["method"] != "POST":
            raise post_only(path)
        origin = parse_messages(await read_body(scope, receive, self.deps.max_body_bytes))
        chat = chat_request(origin.payload, counting=path == COUNT_TOKENS)
        authorization, client_request_id, assertion = caller_headers(scope)
        if path == COUNT_TOKENS:
            principal = await self.deps.authenticate(authorization, assertion, client_of(scope))
            check_namespace(principal, namespace)
            request = parse_request(Endpoint.CHAT, orjson.dumps(chat))
            resolve_route(self.deps.catalog, principal, request.model)  # a model it may not use: 403 or 404
            prompt_tokens, _ = self.deps.admission.estimate(request)
            return Response(orjson.dumps({"input_tokens": prompt_tokens}), media_type="application/json")
        body = orjson.dumps(chat)
        call = InferenceCall(
            Endpoint.CHAT,
            body,
            authorization,
            namespace,
            request_id,
            receive,
            client_request_id,
            assertion,
            origin,
            client_of(scope),
            watch_of(scope),
        )
        return MessagesAnswer(await handle_inference(self.deps, call), origin, bool(chat.get("stream")))

    async def _models(self, scope: Scope, namespace: str | None, rest: str) -> ASGIApp:
        """GET /v1/models (what the caller may use) and GET /v1/models/{id} (one of them)."""
        if rest and not rest.startswith("/"):
            raise NotFound(f"Unknown endpoint GET {scope['path']}.")
        authorization, _, assertion = caller_headers(scope)
        principal = await self.deps.authenticate(authorization, assertion, client_of(scope))
        check_namespace(principal, namespace)
        models = visible_models(self.deps.catalog, principal)
        if not rest:
            data = [_model(m) for m in models]
            return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
        wanted = unquote(rest[1:])  # model ids may hold slashes (org/name)
        if wanted not in models:
            raise NotFound(f"The model '{wanted}' does not exist or this key may not use it.", code="model_not_found")
        return Response(orjson.dumps(_model(wanted)), media_type="application/json")


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tenantgate"}


def _error_response(scope: Scope, error: GatewayError, request_id: str) -> ASGIApp:
    """An error in the shape of the API the client called: the Messages API's, or OpenAI's."""
    if scope["path"].endswith((MESSAGES, COUNT_TOKENS)):
        return messages_error_response(error, request_id)
    return error_response(error, request_id)


def _streams(app: ASGIApp) -> bool:
    inner = app.inner if isinstance(app, MessagesAnswer) else app
    return isinstance(inner, StreamRelay | QueuedStream)
