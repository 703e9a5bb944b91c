"""Helpers for the fair-queue end-to-end tests: hold a deployment busy, watch its queue."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.e2e.procs import Gateway


def chat(model: str, max_tokens: int = 4, stream: bool = False, prompt: str = "hi") -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    }


def until(condition: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll an observable state of the system (not a stand-in for one)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def deployment(gw: Gateway, name: str) -> dict[str, Any]:
    with gw.admin() as admin:
        for pool in admin.get("/admin/pools").json():
            for state in pool["deployments"]:
                if state["name"] == name:
                    return dict(state)
    raise AssertionError(f"no deployment {name}")


@contextmanager
def occupied(gw: Gateway, key: str, model: str) -> Iterator[httpx.Response]:
    """A long stream that has started: it holds one in-flight place until the block ends."""
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", gw.url + "/v1/chat/completions", json=chat(model, 2000, stream=True),
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):  # fmt: skip
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))  # tokens flow: it holds its place
        yield response
