"""A standards-conforming OpenID Connect issuer on loopback, standing in for a tenant's IdP: a
discovery document, a JWKS with its own RSA key, and the authorization code flow with PKCE (S256)
and client authentication. Whoever the test says is at the keyboard signs in without a form."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.e2e.procs import free_port

CLIENT_ID, CLIENT_SECRET = "tenantgate-test", "a-client-secret-of-some-length"


@dataclass
class Issuer:
    url: str
    key: RSAKey
    person: dict[str, Any] = field(default_factory=dict)  # the claims of whoever signs in next
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    audience: str = CLIENT_ID  # what the ID token's `aud` says (a test may make it wrong)

    def token_for(self, person: dict[str, Any], audience: str = CLIENT_ID, lifetime_s: int = 300) -> str:
        """A token the issuer signed for `person`, as an app of the tenant would hold after signing in."""
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime_s,
            "sub": person["email"],
            **person,
        }
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)

    def discovery(self, _: Request) -> Response:
        return JSONResponse({
            "issuer": self.url, "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token", "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        })  # fmt: skip

    def jwks(self, _: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    def authorize(self, request: Request) -> Response:
        q = request.query_params
        if (
            q.get("client_id") != CLIENT_ID
            or q.get("response_type") != "code"
            or q.get("code_challenge_method") != "S256"
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "challenge": q["code_challenge"],
            "nonce": q.get("nonce"),
            "redirect_uri": q["redirect_uri"],
        }
        return RedirectResponse(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}), 302)

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))  # application/x-www-form-urlencoded
        self.token_requests.append(form)
        basic = request.headers.get("authorization", "")
        client = base64.b64decode(basic[6:]).decode() if basic.startswith("Basic ") else ""
        posted = f"{form.get('client_id')}:{form.get('client_secret')}"
        grant = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if f"{CLIENT_ID}:{CLIENT_SECRET}" not in (client, posted):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if grant is None or grant["challenge"] != challenge or grant["redirect_uri"] != form.get("redirect_uri"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.audience, "iat": now, "exp": now + 300, "nonce": grant["nonce"],
                  "sub": str(self.person.get("email")), **self.person}  # fmt: skip
        id_token = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token})  # fmt: skip


@contextmanager
def oidc_issuer() -> Iterator[Issuer]:
    port = free_port()
    issuer = Issuer(f"http://127.0.0.1:{port}", RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"}))
    app = Starlette(routes=[
        Route("/.well-known/openid-configuration", issuer.discovery), Route("/jwks", issuer.jwks),
        Route("/authorize", issuer.authorize), Route("/token", issuer.token, methods=["POST"]),
    ])  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # an observable state of the server, polled
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test OIDC issuer did not start")
        time.sleep(0.01)
    try:
        yield issuer
    finally:
        server.should_exit = True
        thread.join(timeout=10)
