"""The response cache: tenants whose plan keeps answers get repeated identical requests answered
without an engine, never from another tenant's answers; hits are metered with what they saved,
streams are served from a kept answer, and instances sharing Redis share the cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tenantgate.settings import DEFAULT_PLANS
from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, gateway

PROMPT = {"model": "sim-small", "messages": [{"role": "user", "content": "What is the capital of France?"}],
          "max_tokens": 6}  # fmt: skip


def config(tmp: Path, engines: Engines) -> Path:
    plans = [p.model_dump() for p in DEFAULT_PLANS] + [{"name": "cached", "display_name": "Cached",
                                                         "response_cache_ttl_s": 600}]  # fmt: skip
    sim = {"name": "sim", "base_url": engines.healthy.url + "/v1", "models": ["sim-small"]}
    document = {"pools": [{"name": "main", "deployments": [sim]}], "plans": plans,
                "prices": {"sim-small": {"input_per_1m": 1_000, "output_per_1m": 2_000}}}  # fmt: skip
    path = tmp / "tenantgate.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def cached_gw(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("response-cache")
    with gateway(tmp, "--config", str(config(tmp, engines))) as gw:
        yield gw


def post(gw: Gateway, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def test_ten_tenants_with_one_prompt_never_get_each_others_answers(cached_gw: Gateway) -> None:
    keys = [cached_gw.tenant_with_key(f"cache-{n}", "--plan", "cached") for n in range(10)]
    first = [post(cached_gw, key, PROMPT) for key in keys]
    again = [post(cached_gw, key, {**PROMPT, "user": "someone"}) for key in keys]  # `user` does not change the answer
    assert [r.headers["x-tenantgate-cache"] for r in first] == ["miss"] * 10  # zero cross-tenant hits
    assert [r.headers["x-tenantgate-cache"] for r in again] == ["hit"] * 10
    assert all(a.json() == f.json() for a, f in zip(again, first, strict=True))
    other = post(cached_gw, keys[0], {**PROMPT, "temperature": 0.5})
    assert other.headers["x-tenantgate-cache"] == "miss"  # a different request is a different entry
    uncached = cached_gw.tenant_with_key("no-cache")
    twice = [post(cached_gw, uncached, PROMPT) for _ in range(2)]
    assert all("x-tenantgate-cache" not in r.headers for r in twice)  # its plan keeps nothing


def test_a_stream_is_served_from_a_kept_answer(cached_gw: Gateway) -> None:
    key = cached_gw.tenant_with_key("cache-stream", "--plan", "cached")
    with openai.OpenAI(base_url=cached_gw.url + "/v1", api_key=key, max_retries=0) as sdk:
        whole = sdk.chat.completions.with_raw_response.create(**PROMPT)
        streamed = sdk.chat.completions.with_raw_response.create(**PROMPT, stream=True,
                                                                 stream_options={"include_usage": True})  # fmt: skip
        chunks = list(streamed.parse())
    assert whole.headers["x-tenantgate-cache"] == "miss" and streamed.headers["x-tenantgate-cache"] == "hit"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.parse().choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_hits_are_metered_as_hits_with_what_they_saved(cached_gw: Gateway) -> None:
    key = cached_gw.tenant_with_key("cache-meter", "--plan", "cached")
    assert [post(cached_gw, key, PROMPT).headers["x-tenantgate-cache"] for _ in range(3)] == ["miss", "hit", "hit"]
    now = datetime.now(UTC)
    window = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    with cached_gw.admin() as admin:
        lines = admin.get("/api/v1/tenants/cache-meter/usage/events", params=window).text.splitlines()
    events = sorted((json.loads(line)["data"] for line in lines), key=lambda e: e["cache_hit"])
    miss, *hits = events
    assert not miss["cache_hit"] and miss["cost_micros"] > 0 and miss["completion_tokens"] == 6
    assert len(hits) == 2
    for hit in hits:
        assert hit["cache_hit"] and hit["deployment"] == "response-cache"
        assert (hit["prompt_tokens"], hit["completion_tokens"], hit["cost_micros"]) == (0, 0, 0)
        assert hit["saved_micros"] == miss["cost_micros"]


def test_instances_sharing_redis_share_the_cache(engines: Engines, redis_url: str, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {"TENANTGATE_REDIS_URL": redis_url}
    with ExitStack() as stack:
        first, second = (stack.enter_context(gateway(tmp_path, "--config", str(config(tmp_path, engines)),
                                                     database_url=database, env=env)) for _ in range(2))  # fmt: skip
        key = first.tenant_with_key("cache-shared", "--plan", "cached")
        assert post(first, key, PROMPT).headers["x-tenantgate-cache"] == "miss"
        assert post(second, key, PROMPT).headers["x-tenantgate-cache"] == "hit"


def test_a_tenant_chooses_its_own_cache_and_purges_it(cached_gw: Gateway) -> None:
    """Owners opt in on a plan that keeps nothing, or out on one that keeps answers; a purge forgets."""
    chooser = cached_gw.tenant_with_key("cache-chooser")  # its plan keeps nothing
    assert "x-tenantgate-cache" not in post(cached_gw, chooser, PROMPT).headers
    cached_gw.cli("tenants", "update", "cache-chooser", "--response-cache", "120")
    assert [post(cached_gw, chooser, PROMPT).headers["x-tenantgate-cache"] for _ in range(2)] == ["miss", "hit"]
    purged = cached_gw.cli_json("tenants", "purge-cache", "cache-chooser")
    assert isinstance(purged, dict) and purged["forgotten"] == 1
    assert post(cached_gw, chooser, PROMPT).headers["x-tenantgate-cache"] == "miss"
    cached_gw.cli("tenants", "update", "cache-chooser", "--response-cache", "off")
    assert "x-tenantgate-cache" not in post(cached_gw, chooser, PROMPT).headers
    on_cached_plan = cached_gw.tenant_with_key("cache-declines", "--plan", "cached")
    cached_gw.cli("tenants", "update", "cache-declines", "--response-cache", "off")
    assert "x-tenantgate-cache" not in post(cached_gw, on_cached_plan, PROMPT).headers
    shown = cached_gw.cli_json("tenants", "update", "cache-declines", "--response-cache", "plan")
    assert isinstance(shown, dict) and shown["response_cache_ttl_s"] is None
    assert post(cached_gw, on_cached_plan, PROMPT).headers["x-tenantgate-cache"] == "miss"
    with cached_gw.admin() as admin:
        wrong = admin.patch("/api/v1/tenants/cache-declines", json={"response_cache_ttl_s": -1})
    assert wrong.status_code == 400 and "response_cache_ttl_s" in wrong.json()["error"]["message"]


def test_an_engines_refusal_is_never_kept(cached_gw: Gateway) -> None:
    key = cached_gw.tenant_with_key("cache-refused", "--plan", "cached")
    refused = [post(cached_gw, key, {**PROMPT, "n": 2}) for _ in range(2)]  # the engine makes one choice only
    assert [r.status_code for r in refused] == [400, 400]
    assert [r.headers["x-tenantgate-cache"] for r in refused] == ["miss", "miss"]
    assert refused[1].json()["error"]["param"] == "n"
