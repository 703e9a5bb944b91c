"""Single sign-on per tenant with OpenID Connect: authorization code with PKCE (authlib's client),
the ID token checked against the issuer's published keys (joserfc), roles from a claim.

The flow's state, nonce and code verifier travel in a signed cookie that lasts ten minutes, so any
instance can finish a login another started. A person the issuer vouches for is created in the
tenant on first sign-in, and takes the role the claim maps to on every sign-in."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.access.login import Session, SessionCodec
from tenantgate.access.roles import PlatformRole
from tenantgate.access.secret_box import SecretBox
from tenantgate.clock import utcnow
from tenantgate.domain import Role, SsoConfig, Tenant, TenantStatus, User
from tenantgate.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied, UpstreamError
from tenantgate.storage.base import AccessStore, TenancyStore

if TYPE_CHECKING:
    import httpx
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from joserfc import jwt
    from joserfc.jwk import KeySet

FLOW_TTL_S = 600
IDP_TIMEOUT_S = 10.0  # an identity provider's answer, at most
METADATA_TTL_S = 300.0  # discovery documents and keys are fetched again after this long
RANK = (Role.OWNER, Role.DEVELOPER, Role.ANALYST, Role.READ_ONLY)  # a person with several mapped roles gets the first


class Store(AccessStore, TenancyStore, Protocol): ...


@dataclass(frozen=True, slots=True)
class Started:
    authorization_url: str
    flow_cookie: str


def s256(verifier: str) -> str:
    """RFC 7636's S256 code challenge of the verifier."""
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    return str(create_s256_code_challenge(verifier))  # type: ignore[no-untyped-call]


def oauth_client(client_id: str, client_secret: str | None = None, **options: Any) -> AsyncOAuth2Client:
    """authlib's OAuth 2 client. Imported at the first sign-on, not at start: with what it brings it
    holds about 10 MiB that an instance nobody signs on to through never needs."""
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(client_id, client_secret, **options)


def mapped_role(config: SsoConfig, claims: dict[str, Any]) -> Role | None:
    value = claims.get(config.role_claim)
    values = value if isinstance(value, list) else [] if value is None else [value]
    roles = {Role(config.role_map[v]) for v in map(str, values) if v in config.role_map}
    found = next((role for role in RANK if role in roles), None)
    return found or (None if config.default_role is None else Role(config.default_role))


class IssuerClient:
    """The HTTP client for identity providers' documents, made at the first call: httpx, with what it
    imports, is 6 MiB that an instance nobody signs on to through never needs."""

    def __init__(self, client: httpx.AsyncClient | None = None, timeout_s: float = IDP_TIMEOUT_S) -> None:
        """`client`: one the caller owns and closes (a tenant proxy's), instead of one made here."""
        self._timeout_s = timeout_s
        self._client = client
        self._owned = client is None

    async def document(self, url: str) -> dict[str, Any]:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False)
        try:
            response = await self._client.get(url)
            response.raise_for_status()
            document: dict[str, Any] = response.json()
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise UpstreamError(f"The sign-on issuer did not answer at {url} ({type(exc).__name__}).") from None
        return document

    async def aclose(self) -> None:
        if self._client is not None and self._owned:
            await self._client.aclose()
            self._client = None


class IssuerMetadata:
    """Each issuer's discovery document and signing keys, cached for a few minutes."""

    def __init__(self, http: IssuerClient) -> None:
        self._http = http
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def _get(self, url: str, fresh: bool = False) -> dict[str, Any]:
        cached = self._cache.get(url)
        if cached is not None and not fresh and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        document = await self._http.document(url)
        self._cache[url] = (time.monotonic(), document)
        return document

    async def discovery(self, issuer: str) -> dict[str, Any]:
        document = await self._get(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if document.get("issuer") != issuer:
            raise UpstreamError(f"The discovery document of {issuer} names another issuer ({document.get('issuer')}).")
        return document

    async def keys(self, jwks_uri: str, fresh: bool = False) -> KeySet:
        from joserfc.jwk import KeySet  # joserfc (with `cryptography`) loads at the first sign-on

        return KeySet.import_key_set(await self._get(jwks_uri, fresh))  # type: ignore[arg-type]

    async def verified(
        self, token: str, jwks_uri: str, registry: jwt.JWTClaimsRegistry, algorithms: list[str]
    ) -> dict[str, Any]:
        """The token's claims, signed with a key the issuer publishes and valid by `registry`. The keys
        are fetched again once when the token names one not seen yet (the issuer rotated); other
        failures raise JoseError or ValueError at once."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        for fresh in (False, True):
            keys = await self.keys(jwks_uri, fresh)
            try:
                decoded = jwt.decode(token, keys, algorithms=algorithms)
            except JoseError as exc:
                if fresh or "key" not in type(exc).__name__.lower():
                    raise
                continue
            registry.validate(decoded.claims)
            return dict(decoded.claims)
        raise AssertionError("unreachable")


class OidcSignOn:
    def __init__(
        self, store: Store, box: SecretBox, sessions: SessionCodec, audit: AuditLog, flow_secret: str,
        http: IssuerClient,
    ) -> None:  # fmt: skip
        self._store = store
        self._box = box
        self._sessions = sessions
        self._audit = audit
        self._flows = URLSafeTimedSerializer(flow_secret, salt="tenantgate-sso-flow")
        self.metadata = IssuerMetadata(http)

    async def configure(
        self, by: Caller, tenant: Tenant, issuer: str, client_id: str, client_secret: str, role_claim: str,
        role_map: dict[str, Role], default_role: Role | None,
    ) -> SsoConfig:  # fmt: skip
        try:  # a typo in the issuer is found now, not at the first sign-in
            await self.metadata.discovery(issuer)
        except UpstreamError as exc:
            raise InvalidRequest(
                f"{exc.message} Check the issuer URL.", param="issuer", code="issuer_unreachable"
            ) from None
        roles = {value: role.value for value, role in role_map.items()}
        default = None if default_role is None else default_role.value
        sealed = self._box.seal(client_secret)
        config = SsoConfig(tenant.id, issuer, client_id, sealed, role_claim, roles, default, utcnow())
        await self._store.set_sso(tenant.id, config)
        await self._audit.record(by, "sso.set", f"sign-on of {tenant.slug}", tenant_id=tenant.id,
                                 after=replace(config, client_secret_sealed=""))  # fmt: skip
        return config

    async def remove(self, by: Caller, tenant: Tenant) -> None:
        await self._store.set_sso(tenant.id, None)
        await self._audit.record(by, "sso.delete", f"sign-on of {tenant.slug}", tenant_id=tenant.id)

    async def config(self, tenant: Tenant) -> SsoConfig:
        config = await self._store.get_sso(tenant.id)
        if config is None:
            raise NotFound(f"The tenant '{tenant.slug}' has no single sign-on configured.", code="sso_not_configured")
        return config

    async def start(self, tenant: Tenant, redirect_uri: str, next_path: str) -> Started:
        config = await self.config(tenant)
        discovery = await self.metadata.discovery(config.issuer)
        state, nonce, verifier = (secrets.token_urlsafe(24) for _ in range(3))
        verifier += secrets.token_urlsafe(24)  # RFC 7636: 43 to 128 characters
        client = oauth_client(config.client_id, redirect_uri=redirect_uri, scope="openid email profile")
        url, _ = client.create_authorization_url(
            discovery["authorization_endpoint"], state=state, nonce=nonce,
            code_challenge=s256(verifier), code_challenge_method="S256",
        )  # fmt: skip
        flow = self._flows.dumps([tenant.slug, state, nonce, verifier, next_path])
        return Started(url, flow)

    async def finish(self, tenant: Tenant, code: str, state: str, flow_cookie: str | None, redirect_uri: str
                     ) -> tuple[str, Session, str]:  # fmt: skip
        """The session cookie, the session, and where to go next."""
        try:
            slug, expected_state, nonce, verifier, next_path = self._flows.loads(flow_cookie or "", max_age=FLOW_TTL_S)
        except (BadSignature, ValueError, TypeError):
            raise InvalidRequest("This sign-in was not started here or took longer than ten minutes; start again.",
                                 code="sso_flow_invalid") from None  # fmt: skip
        if slug != tenant.slug or not secrets.compare_digest(str(expected_state), state):
            raise InvalidRequest("The sign-in's state does not match; start again.", code="sso_flow_invalid")
        config = await self.config(tenant)
        discovery = await self.metadata.discovery(config.issuer)
        client = oauth_client(
            config.client_id, self._box.open(config.client_secret_sealed), redirect_uri=redirect_uri, timeout=10
        )
        try:
            token = await client.fetch_token(discovery["token_endpoint"], code=code, code_verifier=verifier)
        except Exception as exc:  # noqa: BLE001 - any failure of the exchange is the issuer refusing
            raise AuthenticationFailed(f"The sign-on issuer refused the sign-in ({type(exc).__name__}).",
                                       code="sso_refused") from None  # fmt: skip
        finally:
            await client.aclose()
        claims = await self._verified(config, discovery, str(token.get("id_token", "")), str(nonce))
        user = await self._person(tenant, config, claims)
        cookie, session = self._sessions.issue("user", user.id)
        return cookie, session, str(next_path)

    async def _verified(self, config: SsoConfig, discovery: dict[str, Any], id_token: str, nonce: str
                        ) -> dict[str, Any]:  # fmt: skip
        from joserfc import jwt
        from joserfc.errors import JoseError

        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": config.issuer}, aud={"essential": True, "value": config.client_id},
            nonce={"essential": True, "value": nonce}, sub={"essential": True}, exp={"essential": True},
        )  # fmt: skip
        try:
            return await self.metadata.verified(id_token, discovery["jwks_uri"], registry, ["RS256", "ES256", "PS256"])
        except JoseError as exc:
            raise AuthenticationFailed(f"The ID token was not valid ({exc.error}).", code="sso_refused") from None
        except ValueError:
            raise AuthenticationFailed("The ID token was malformed.", code="sso_refused") from None

    async def _person(self, tenant: Tenant, config: SsoConfig, claims: dict[str, Any]) -> User:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
            raise PermissionDenied("The issuer gave no verified e-mail address for this person.", code="sso_no_email")
        if tenant.status is TenantStatus.SUSPENDED:
            raise PermissionDenied(f"The tenant '{tenant.slug}' is suspended.", code="tenant_suspended")
        role = mapped_role(config, claims)
        if role is None:
            raise PermissionDenied(f"The tenant's sign-on maps none of this person's '{config.role_claim}' to a role.",
                                   code="sso_no_role")  # fmt: skip
        sso = Caller(PlatformRole.ADMIN, f"sign-on by {config.issuer}")
        existing = next((u for u in await self._store.list_users(tenant.id) if u.email == email), None)
        if existing is None:
            now = utcnow()
            user = User(
                secrets.token_hex(8), tenant.id, email, str(claims.get("name") or email), role, now, updated_at=now
            )
            await self._store.create_user(user)
            await self._audit.record(sso, "user.create", f"user {user.id} ({email})", tenant_id=tenant.id, after=user)
            return user
        if not existing.active:
            raise PermissionDenied(f"{email} is deactivated in '{tenant.slug}'; ask an owner.", code="user_deactivated")
        if existing.role is not role:
            user = replace(existing, role=role, updated_at=utcnow())
            await self._store.update_user(user)
            await self._audit.record(sso, "user.update", f"user {user.id} ({email})", tenant_id=tenant.id,
                                     before=existing, after=user)  # fmt: skip
            return user
        return existing
