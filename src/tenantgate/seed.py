"""Demo data for `make run`: two tenants with one key each, and two people who log in to the web
UI (an operator, and acme's owner), printed at start-up.

Keys and passwords are shown once by design; the demo keeps its own in `<data_dir>/demo-keys.json`
and `<data_dir>/demo-password` (mode 0600) so a restarted demo can print them again. Real tenants
never get such files.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from tenantgate.access.callers import SYSTEM
from tenantgate.access.login import LoginService
from tenantgate.access.roles import PlatformRole
from tenantgate.domain import Role, TenantMode
from tenantgate.kept_secrets import kept_secret
from tenantgate.tenancy import TenancyService

DEMO_OPERATOR = "admin@demo.example"
DEMO_OWNER = "owner@acme.example"
DEMO_TENANTS = (
    ("acme", "Acme Corp", "growth", TenantMode.ENTERPRISE),
    ("solo", "Solo Developer", "starter", TenantMode.RETAIL),
)


@dataclass(frozen=True, slots=True)
class DemoKey:
    tenant: str
    plan: str
    key: str


def load_saved_keys(data_dir: Path) -> dict[str, str]:
    path = data_dir / "demo-keys.json"
    saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    return saved


def save_keys(data_dir: Path, keys: list[DemoKey]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo-keys.json"
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps({k.tenant: k.key for k in keys}, indent=2))


async def seed_demo(service: TenancyService, saved: dict[str, str]) -> list[DemoKey]:
    """Create the demo tenants if missing; reuse a saved key while it still exists, else issue one."""
    known = {
        k.id for slug, *_ in DEMO_TENANTS if await _exists(service, slug) for k in await service.keys(SYSTEM, slug)
    }
    keys = []
    for slug, name, plan, mode in DEMO_TENANTS:
        if not await _exists(service, slug):
            await service.create_tenant(SYSTEM, slug, name=name, plan=plan, mode=mode)
        plaintext = saved.get(slug)
        if plaintext is None or plaintext.split("-")[1] not in known:
            plaintext = (await service.create_key(SYSTEM, slug, name="demo")).plaintext
        keys.append(DemoKey(slug, plan, plaintext))
    return keys


def demo_password(data_dir: Path) -> str:
    return kept_secret(data_dir, "demo-password", lambda: "demo-" + secrets.token_urlsafe(12))


async def seed_people(service: TenancyService, login: LoginService, password: str) -> None:
    """The demo operator and acme's owner, both with the demo password."""
    if not any(o.email == DEMO_OPERATOR for o in await login.operators(SYSTEM)):
        await login.create_operator(SYSTEM, DEMO_OPERATOR, "Demo operator", PlatformRole.ADMIN, password)
    tenant = await service.tenant("acme")
    owner = next((u for u in await service.users("acme") if u.email == DEMO_OWNER), None)
    if owner is None:
        owner = await service.add_user(SYSTEM, "acme", DEMO_OWNER, "Acme's owner", Role.OWNER)
    await login.set_password(SYSTEM, tenant, owner, password)


async def _exists(service: TenancyService, slug: str) -> bool:
    return any(t.slug == slug for t in await service.list_tenants())


def python_beside(command: str) -> str:
    """The Python that has the openai package: the one next to `command` when that is a path (a venv)."""
    return str(Path(command).with_name("python")) if "/" in command else "python"


def banner(keys: list[DemoKey], base_url: str, admin_token: str, password: str, command: str = "tenantgate") -> str:
    acme = next(k.key for k in keys if k.tenant == "acme")
    lines = [
        "",
        f"tenantgate is serving on {base_url}",
        "",
        "Demo tenants and their API keys:",
        *(f"  {k.tenant:<6} ({k.plan:<7}) {k.key}" for k in keys),
        f"Admin token (for the tenantgate CLI and /api/v1): {admin_token}",
        "",
        f"Web UI: {base_url}/ui/ with password {password} as {DEMO_OPERATOR} (the operator's console),",
        f"  or as {DEMO_OWNER} in organisation acme (its dashboard and chat)",
        "",
        "Try it:",
        f"  curl {base_url}/v1/chat/completions -H 'Authorization: Bearer {acme}' \\",
        "    -H 'Content-Type: application/json' \\",
        """    -d '{"model": "sim-small", "messages": [{"role": "user", "content": "Hello"}]}'""",
        "",
        f"  {python_beside(command)} -c \"from openai import OpenAI; c = OpenAI(base_url='{base_url}/v1', "
        f"api_key='{acme}'); print(c.chat.completions.create(model='sim-small', "
        "messages=[{'role': 'user', 'content': 'Hi'}]).choices[0].message.content)\"",
        "",
        f"  TENANTGATE_URL={base_url} TENANTGATE_ADMIN_TOKEN={admin_token} {command} usage --tenant acme",
        "",
    ]
    return "\n".join(lines)
