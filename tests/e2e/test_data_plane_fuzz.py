"""No request body makes the data plane fail: hypothesis sends chat, Messages, Responses and embeddings
requests built from each API's fields with arbitrary JSON in them, to a gateway in front of a
simulated engine and an Anthropic deployment, and every answer is a well-shaped error or a success,
never a 500 (a fixed seed, so the run is the same each time)."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.e2e.anthropic_upstream import AnthropicUpstream
from tests.e2e.procs import Gateway
from tests.e2e.test_anthropic_upstream import claude  # noqa: F401 - the module's gateway fixture

Claude = tuple[Gateway, AnthropicUpstream, str]
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
    if answer.status_code >= 400:
        error = answer.json()
        assert isinstance(error.get("error"), dict) and error["error"].get("message"), (path, body, answer.text)
