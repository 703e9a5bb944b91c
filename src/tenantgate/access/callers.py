"""The caller of a management request, and the checks every handler runs against it."""

from __future__ import annotations

from dataclasses import dataclass

from tenantgate.access.roles import Action, PlatformRole, grants
from tenantgate.domain import Role
from tenantgate.errors import NotFound, PermissionDenied


@dataclass(frozen=True, slots=True)
class Caller:
    """A platform operator (no tenant) or a member of one tenant, with the role it acts in."""

    role: PlatformRole | Role
    name: str  # as the audit log shows it: "admin token", "token 1a2b… of ana@acme.example"
    tenant_id: str | None = None
    tenant_slug: str | None = None
    user_id: str | None = None
    source: str = ""  # the client's address

    @property
    def operator(self) -> bool:
        return isinstance(self.role, PlatformRole)

    def may(self, action: Action) -> bool:
        return action in grants(self.role)

    def require(self, *actions: Action, slug: str | None = None) -> None:
        """Allowed when the role holds any of `actions`, and (for a tenant member) `slug` is its tenant.

        Another tenant answers exactly as a tenant that does not exist, so ids cannot be probed."""
        if slug is not None and not self.operator and slug != self.tenant_slug:
            raise tenant_not_found(slug)
        if not any(self.may(action) for action in actions):
            role = self.role.value
            raise PermissionDenied(f"The role '{role}' may not {actions[0].value}.", code="forbidden_for_role")

    def within(self, tenant_id: str) -> bool:
        """Whether the caller may see a record of `tenant_id` at all."""
        return self.operator or self.tenant_id == tenant_id


def tenant_not_found(slug: str) -> NotFound:
    shown = slug.encode("unicode_escape").decode()[:80]
    return NotFound(f"No tenant named '{shown}'; tenantgate tenants list shows them.", code="tenant_not_found")


SYSTEM = Caller(PlatformRole.ADMIN, "tenantgate (seed or apply)")
