"""Start the servers under test and read their CPU time and memory from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PYTHON = sys.executable
TENANTGATE = [PYTHON, "-m", "tenantgate"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bytecode(src: Path) -> None:
    """Compile a checkout's sources, as installing a package does: a gateway measured without them
    compiles every module at each start (PYTHONDONTWRITEBYTECODE keeps Python from caching them)."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(src)], check=True, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_http(url: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer")


def sim_engine(*flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """A simulated engine on a free port, once it answers: (its process, its URL)."""
    port = free_port()
    process = spawn([*TENANTGATE, "sim-engine", "--port", str(port), *flags])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health")
    except BaseException:
        stop(process)
        raise
    return process, url


def first_200(
    url: str, key: str, started: float, deadline_s: float = 60, headers: dict[str, str] | None = None
) -> float:
    """Seconds from `started` until a chat completion through `url` returns 200 (`headers`: a peer's
    own, instead of the key)."""
    headers = {"Authorization": f"Bearer {key}"} if headers is None else headers
    body = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            response = httpx.post(url + "/v1/chat/completions", json=body, headers=headers)
            if response.status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.005)
    raise RuntimeError("no 200 before the deadline")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def family(pid: int) -> list[int]:
    """The process and its children (a gateway's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def cpu_seconds(pid: int) -> float:
    """CPU time of the process and its children, living ones included."""
    total = 0
    for member in family(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of the process and its children, summed (pages they share count once each)."""
    total = 0
    for member in family(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def quiet(pid: int, window_s: float = 0.5, busy_share: float = 0.02, deadline_s: float = 20.0) -> float:
    """Wait until the process and its children use under `busy_share` of a core over `window_s`: the
    work a load left behind (usage writes, rollups) is done, so the CPU counted for the next load is
    its own. The seconds waited (`deadline_s` at most: a process that never rests is not waited for)."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        if cpu_seconds(pid) - before <= busy_share * window_s:
            break
    return time.monotonic() - started
