"""Peers measured beside tenantgate by `bench/run.py --with-peers`, each installed on first use into
an environment of its own under bench/ (never into tenantgate's):

- LiteLLM `litellm[proxy]==1.106.2` (PyPI), master-key mode, one worker, the upstream as an
  `openai/` model;
- vllm-router 0.1.17 (PyPI, a Rust router in a Python wheel), round robin over the one upstream
  (its worker URL without /v1); no tenants, keys or limits;
- the Portkey gateway 1.15.2 (npm, Node), told the upstream per request by its headers; no
  tenants, keys or limits in the open-source build.

Each start takes (port, upstream, a work directory) and returns the process, the time it was started,
its URL and the headers its requests need.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from procs import free_port, spawn

HERE = Path(__file__).parent
LITELLM_PIN = "litellm[proxy]==1.106.2"
VLLM_ROUTER_PIN = "vllm-router==0.1.17"
PORTKEY_PIN = "@portkey-ai/gateway@1.15.2"
LITELLM_VENV, ROUTER_VENV, PORTKEY_DIR = HERE / ".litellm-venv", HERE / ".vllm-router-venv", HERE / ".portkey"

Started = tuple[subprocess.Popen[bytes], float, str, dict[str, str]]


def _venv(venv: Path, pin: str) -> Path:
    """A venv of its own holding `pin`, made on first use; its bin directory."""
    if not (venv / ".installed").exists():
        print(f"installing {pin} into {venv} (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", pin], check=True)
        (venv / ".installed").touch()
    return venv / "bin"


def start_litellm(port: int, upstream: str, workdir: Path) -> Started:
    bin_dir = _venv(LITELLM_VENV, LITELLM_PIN)
    config = workdir / "litellm.yaml"
    model = {"model_name": "sim-small", "litellm_params": {"model": "openai/sim-small", "api_base": upstream + "/v1",
                                                          "api_key": "sk-upstream"}}  # fmt: skip
    config.write_text(json.dumps({"model_list": [model], "general_settings": {"master_key": "sk-bench"}}))
    args = [str(bin_dir / "litellm"), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    started = time.monotonic()
    process = spawn(args, {"LITELLM_LOG": "ERROR"})
    return process, started, f"http://127.0.0.1:{port}", {"Authorization": "Bearer sk-bench"}


def start_vllm_router(port: int, upstream: str, workdir: Path) -> Started:
    bin_dir = _venv(ROUTER_VENV, VLLM_ROUTER_PIN)
    args = [str(bin_dir / "vllm-router"), "--worker-urls", upstream, "--host", "127.0.0.1", "--port", str(port),
            "--policy", "round_robin", "--prometheus-port", str(free_port())]  # fmt: skip
    started = time.monotonic()
    return spawn(args), started, f"http://127.0.0.1:{port}", {}


def start_portkey(port: int, upstream: str, workdir: Path) -> Started:
    server = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not server.exists():
        if shutil.which("npm") is None:
            raise SystemExit("npm is not installed: the Portkey gateway comes from the npm registry")
        print(f"installing {PORTKEY_PIN} into {PORTKEY_DIR} (first run only)", flush=True)
        PORTKEY_DIR.mkdir(exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", str(PORTKEY_DIR), PORTKEY_PIN], check=True)
    started = time.monotonic()
    process = spawn(["node", str(server), f"--port={port}", "--headless"])
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream + "/v1", "Authorization": "Bearer x"}
    return process, started, f"http://127.0.0.1:{port}", headers
