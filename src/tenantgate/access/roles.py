"""The permission matrix: the one place that says which role may do what.

Two realms. Platform operators (`platform-admin`, `platform-viewer`) act on every tenant; tenant
members (Owner, Developer, Analyst, ReadOnly) act on their own tenant only. Every management
endpoint names the one action it needs (`api/access_deps.py`), so this table is the whole policy.
"""

from __future__ import annotations

from enum import StrEnum

from tenantgate.domain import Role


class PlatformRole(StrEnum):
    ADMIN = "platform-admin"
    VIEWER = "platform-viewer"


class Action(StrEnum):
    PLATFORM_READ = "read the platform (all tenants, pools, prices, margins)"
    PLATFORM_WRITE = "change the platform (tenants' plans and status, prices, pools, invoices, credits)"
    SETTINGS_READ = "read the tenant's settings"
    SETTINGS_WRITE = "change the tenant's settings (tighter limits, webhook, retention)"
    MEMBERS_READ = "list the tenant's users"
    MEMBERS_WRITE = "manage the tenant's users, their roles and tokens"
    KEYS_READ = "list every API key of the tenant"
    KEYS_WRITE = "create, rotate and revoke any API key of the tenant"
    OWN_KEYS = "create, rotate, revoke and list one's own API keys"
    USAGE_READ = "read the tenant's usage, cost and invoices"
    AUDIT_READ = "read the audit log"


_TENANT_READS = frozenset({Action.SETTINGS_READ, Action.MEMBERS_READ, Action.KEYS_READ, Action.USAGE_READ})

TENANT_GRANTS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action) - {Action.PLATFORM_READ, Action.PLATFORM_WRITE},
    Role.DEVELOPER: frozenset({Action.SETTINGS_READ, Action.OWN_KEYS}),
    Role.ANALYST: frozenset({Action.SETTINGS_READ, Action.USAGE_READ}),
    Role.READ_ONLY: _TENANT_READS,
}

PLATFORM_GRANTS: dict[PlatformRole, frozenset[Action]] = {
    PlatformRole.ADMIN: frozenset(Action),
    PlatformRole.VIEWER: _TENANT_READS | {Action.PLATFORM_READ, Action.AUDIT_READ},
}


def grants(role: PlatformRole | Role) -> frozenset[Action]:
    if isinstance(role, PlatformRole):
        return PLATFORM_GRANTS[role]
    return TENANT_GRANTS[role]
