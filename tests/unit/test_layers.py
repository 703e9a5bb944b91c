"""What each part of the code may import: the request path stays free of the management plane's
frameworks, so that it can run in a process of its own that does not pay their memory."""

from __future__ import annotations

import subprocess
import sys


def loaded_after_import(module: str, candidates: tuple[str, ...]) -> list[str]:
    probe = f"import sys, {module}; print(' '.join(m for m in {candidates!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()


def test_the_data_plane_imports_neither_fastapi_nor_the_sql_layer() -> None:
    assert loaded_after_import("tenantgate.dataplane.asgi", ("fastapi", "sqlalchemy", "jinja2", "authlib")) == []


def test_the_management_api_loads_no_client_or_cipher_until_one_is_needed() -> None:
    # Redis's client is 8 MiB of a gateway's memory, and without a Redis URL nothing needs it; httpx
    # (6 MiB with what it imports) waits for the first sign-on, export or webhook; joserfc and
    # `cryptography` (11 MiB) for the first sign-on, tenant key or sealed secret.
    probe = "from tenantgate.api import assembly; assembly.assembled()"
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys; {probe}; print(*sys.modules)"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "tenantgate.api.tenant.usage" in loaded
    assert {"redis", "httpx", "joserfc", "cryptography"} & set(loaded) == set()
