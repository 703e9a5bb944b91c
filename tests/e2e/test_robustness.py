"""Whatever a client sends, the gateway answers in the OpenAI error shape and keeps serving."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, gateway

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    st.fixed_dictionaries(
        {"model": json_values | st.sampled_from(["sim-small", "small"]), "messages": json_values}
    ).map(orjson.dumps),
)
paths = st.sampled_from(
    ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tenants/acme/v1/chat/completions"]
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=paths)
def test_arbitrary_bodies_get_a_clean_answer(gw: Gateway, acme_key: str, body: bytes, path: str) -> None:
    response = httpx.post(gw.url + path, content=body, headers={"Authorization": f"Bearer {acme_key}"}, timeout=30)
    assert response.status_code in {200, 400, 403, 404, 413}, response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code", "param"} and error["message"]
    assert gw.process.poll() is None


def test_upstream_flag_discovers_models(engines: Engines, tmp_path: Path) -> None:
    with gateway(tmp_path, "--upstream", engines.healthy.url + "/v1") as discovered:
        key = discovered.tenant_with_key("discovery")
        models = httpx.get(discovered.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
        assert [m["id"] for m in models["data"]] == ["sim-flaky", "sim-large", "sim-small"]
