"""What `tenantgate serve --demo` prints can be pasted into a fresh shell and works as printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.procs import free_port, running


def pasted_commands(banner: str) -> list[str]:
    """The examples under "Try it:", continuation lines joined."""
    examples = banner.split("Try it:", 1)[1]
    commands, current = [], ""
    for line in examples.splitlines()[1:]:
        if not line.strip():
            continue
        if not line.startswith("  "):
            break  # the banner ended; the server's own log follows
        current += line.strip()
        if current.endswith("\\"):
            current = current[:-1] + " "
        elif current:
            commands.append(current)
            current = ""
    return commands


def test_the_demo_banner_runs_as_printed(tmp_path: Path) -> None:
    port = free_port()
    executable = str(Path(sys.executable).with_name("tenantgate"))
    fresh = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    log = tmp_path / "demo.log"
    args = [executable, "serve", "--demo", "--port", str(port)]
    env = {"TENANTGATE_SIM_SPEED": "50", "TENANTGATE_DATA_DIR": str(tmp_path / "data"),
           "TENANTGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}  # fmt: skip
    with running(args, f"http://127.0.0.1:{port}/readyz", env, log=log):
        commands = pasted_commands(log.read_text())
        assert len(commands) == 3 and commands[0].startswith("curl ") and "python -c " in commands[1]
        assert commands[2].startswith(f"TENANTGATE_URL=http://127.0.0.1:{port} ")
        # the web UI's demo logins, as printed
        ui = re.search(
            r"Web UI: (\S+) with password (\S+) as (\S+) .*\n\s+or as (\S+) in organisation (\w+)", log.read_text()
        )
        assert ui is not None and ui[1] == f"http://127.0.0.1:{port}/ui/"
        for email, tenant in ((ui[3], None), (ui[4], ui[5])):
            logged_in = httpx.post(f"http://127.0.0.1:{port}/api/v1/login", json={"email": email, "password": ui[2],
                                                                                  "tenant": tenant})  # fmt: skip
            assert logged_in.status_code == 200, logged_in.text
        for command in commands[1:]:  # curl is not installed everywhere these tests run
            done = subprocess.run(["bash", "-c", command], cwd=os.getcwd(), env=fresh, capture_output=True,
                                  text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
            assert done.stdout.strip()
