"""Demo data for `make run`: two tenants with one key each, printed at start-up.

Keys are shown once by design; the demo keeps its own in `<data_dir>/demo-keys.json` (mode 0600)
so a restarted demo can print them again. Real tenants never get such a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tenantgate.access.callers import SYSTEM
from tenantgate.domain import TenantMode
from tenantgate.tenancy import TenancyService

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


async def _exists(service: TenancyService, slug: str) -> bool:
    return any(t.slug == slug for t in await service.list_tenants())


def python_beside(command: str) -> str:
    """The Python that has the openai package: the one next to `command` when that is a path (a venv)."""
    return str(Path(command).with_name("python")) if "/" in command else "python"


def banner(keys: list[DemoKey], base_url: str, admin_token: str, command: str = "tenantgate") -> str:
    acme = next(k.key for k in keys if k.tenant == "acme")
    lines = [
        "",
        f"tenantgate is serving on {base_url}",
        "",
        "Demo tenants and their API keys:",
        *(f"  {k.tenant:<6} ({k.plan:<7}) {k.key}" for k in keys),
        f"Admin token (for the tenantgate CLI and /api/v1): {admin_token}",
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
