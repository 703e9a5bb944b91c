"""No request body makes the data plane fail: hypothesis sends chat, Messages, Responses and embeddings
requests built from each API's fields with arbitrary JSON in them, to a gateway in front of a
simulated engine and an Anthropic deployment, and every answer is a well-shaped error or a success,
never a 500, and validates against the API it claims to speak (conformance.py: the SDKs' models of
OpenAI's and Anthropic's published API descriptions). A fixed seed, so the run is the same each time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tests.e2e import conformance
from tests.e2e.anthropic_upstream import AnthropicUpstream
from tests.e2e.data_plane_openapi import document
from tests.e2e.procs import Gateway
from tests.e2e.test_anthropic_upstream import claude  # noqa: F401 - the module's gateway fixture

Claude = tuple[Gateway, AnthropicUpstream, str]
SCHEMATHESIS = str(Path(sys.executable).parent / "st")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a value the API takes, now and then any JSON: deep enough to reach the engines and translators."""
    return st.one_of(*[valid] * 7, json_values)


models = st.sampled_from(["sim-small", "claude-test", "sim-small", "claude-test", "no-such-model", ""])
texts = st.text(max_size=30)
parts = mostly(st.fixed_dictionaries({"type": st.just("text"), "text": texts})
               | st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries(
                   {"url": st.sampled_from(["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo=",
                                            "data:nonsense"])})}))  # fmt: skip
contents = mostly(texts | st.lists(parts, max_size=3))
functions = st.fixed_dictionaries({"name": mostly(st.sampled_from(["lookup", "get_weather"])),
                                   "arguments": mostly(st.sampled_from(['{"q": 1}', "{}", "[1]", "{"]))})  # fmt: skip
tool_calls = st.lists(st.fixed_dictionaries({"id": mostly(st.sampled_from(["call_1", "toolu_1"])),
                                             "type": st.just("function"), "function": mostly(functions)}),
                      max_size=2)  # fmt: skip
message = st.fixed_dictionaries(
    {"role": mostly(st.sampled_from(["user", "user", "assistant", "system", "tool"])), "content": contents},
    optional={"tool_calls": mostly(tool_calls), "tool_call_id": mostly(st.just("call_1"))},
)
messages = mostly(st.lists(message, min_size=1, max_size=4))
function_tool = st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": st.sampled_from(["lookup", "get_weather"]), "parameters": st.just({"type": "object"})})})  # fmt: skip
tools = st.lists(mostly(function_tool), max_size=2)
choices = ["auto", "none", "required", {"type": "function", "function": {"name": "lookup"}}, {"type": "any"},
           {"type": "tool", "name": "lookup"}]  # fmt: skip
formats = [{"type": "text"}, {"type": "json_object"},
           {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}]  # fmt: skip
common = {"stream": mostly(st.booleans()), "temperature": mostly(st.floats(0, 2)),
          "stop": mostly(st.sampled_from(["END", ["a", "b"]])), "tools": mostly(tools),
          "tool_choice": mostly(st.sampled_from(choices)), "response_format": mostly(st.sampled_from(formats)),
          "n": mostly(st.just(1)), "stream_options": mostly(st.just({"include_usage": True})),
          "system": mostly(texts), "input": mostly(texts), "user": mostly(texts)}  # fmt: skip
bodies = st.fixed_dictionaries(
    {"model": models, "messages": messages, "max_tokens": st.integers(1, 6)}, optional=common
)
paths = st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/responses",
                         "/v1/embeddings", "/v1/completions"])  # fmt: skip


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=paths, body=bodies)
def test_no_body_makes_the_data_plane_fail(claude: Claude, path: str, body: dict[str, Any]) -> None:  # noqa: F811
    gw, _, key = claude
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        answer = http.post(path, json=body)
    event(f"{path} {answer.status_code}")  # what the run reached: --hypothesis-show-statistics
    assert answer.status_code < 500 or answer.status_code in (502, 503, 504), (path, body, answer.text)
    conformance.check(path, answer)
    if answer.status_code >= 400:
        error = answer.json()
        assert isinstance(error.get("error"), dict) and error["error"].get("message"), (path, body, answer.text)


valid_message = st.fixed_dictionaries({"role": st.just("user"), "content": texts.filter(str.strip)})
valid_messages = st.lists(valid_message, min_size=1, max_size=1)
both_models = st.sampled_from(["sim-small", "claude-test"])
chat_fields = {"stream": st.booleans(), "temperature": st.floats(0, 1), "tools": st.lists(function_tool, max_size=1),
               "stop": st.sampled_from(["END", ["a", "b"]])}  # fmt: skip
messages_tool = st.just({"name": "lookup", "input_schema": {"type": "object"}})
messages_fields = {"stream": st.booleans(), "temperature": st.floats(0, 1), "system": texts,
                   "tools": st.lists(messages_tool, max_size=1), "stop_sequences": st.just(["END"])}  # fmt: skip
valid_calls = st.one_of(
    st.tuples(st.just("/v1/chat/completions"), st.fixed_dictionaries(
        {"model": both_models, "messages": valid_messages, "max_tokens": st.integers(1, 6)}, optional=chat_fields)),
    st.tuples(st.just("/v1/messages"), st.fixed_dictionaries(
        {"model": both_models, "messages": valid_messages, "max_tokens": st.integers(1, 6)}, optional=messages_fields)),
    st.tuples(st.just("/v1/messages/count_tokens"), st.fixed_dictionaries(
        {"model": both_models, "messages": valid_messages})),
    st.tuples(st.just("/v1/completions"), st.fixed_dictionaries(
        {"model": st.just("sim-small"), "prompt": texts, "max_tokens": st.integers(1, 6)},
        optional={"stream": st.booleans()})),
    st.tuples(st.just("/v1/embeddings"), st.fixed_dictionaries(
        {"model": st.just("sim-small"), "input": texts | st.lists(texts, min_size=1, max_size=3)})),
)  # fmt: skip


@pytest.fixture(scope="module")
def roomy_key(claude: Claude) -> str:  # noqa: F811
    gw = claude[0]
    key = gw.tenant_with_key("conformance", "--plan", "growth")
    with gw.admin() as admin:  # hypothesis may send many more than 80 while it shrinks a failure
        limits = {"rpm": 1_000_000, "tpm": 1_000_000_000, "daily_tokens": 1_000_000_000}
        assert admin.patch("/api/v1/tenants/conformance", json={"limits": limits}).status_code == 200
    return key


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=(Phase.explicit, Phase.generate),  # a failure is shown as found: shrinking it would send hundreds more
)
@given(call=valid_calls)
def test_what_is_answered_validates_against_its_api(
    claude: Claude,  # noqa: F811
    roomy_key: str,
    call: tuple[str, dict[str, Any]],
) -> None:
    """Requests each API takes, through the simulated engine and the Anthropic deployment, translated
    or not, whole or streamed: every answer validates against its API's description."""
    path, body = call
    with httpx.Client(base_url=claude[0].url, headers={"Authorization": f"Bearer {roomy_key}"}, timeout=30) as http:
        answer = http.post(path, json=body)
    event(f"{path} {body['model']} {'stream' if body.get('stream') else 'whole'} {answer.status_code}")
    assert answer.status_code == 200, (path, body, answer.text)
    conformance.check(path, answer)


@pytest.mark.timeout(600)  # Schemathesis's generation is CPU-bound: 80-120 s on a busy 2-core machine
def test_a_schema_driven_fuzzer_finds_no_server_error_and_no_answer_out_of_shape(
    claude: Claude,  # noqa: F811
    roomy_key: str,
    tmp_path: Path,
) -> None:
    """Schemathesis sends what the SDKs' types (OpenAI's and Anthropic's API descriptions) allow, to
    every data-plane operation, and checks each answer against the description of that answer."""
    described = tmp_path / "data-plane.json"
    described.write_text(json.dumps(document(["sim-small", "claude-test"])))
    done = subprocess.run(
        [SCHEMATHESIS, "run", str(described), "--url", claude[0].url, "-H", f"Authorization: Bearer {roomy_key}",
         "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "25", "--seed", "20261126",
         "--generation-deterministic", "--workers", "1", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,  # its cache stays out of the checkout
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Server error" not in done.stdout
