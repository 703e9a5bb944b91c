import orjson
import pytest

from tenantgate.dataplane.request import Endpoint, InferenceRequest, parse_request
from tenantgate.errors import InvalidRequest

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]}


def body(**changes: object) -> bytes:
    return orjson.dumps({**CHAT, **changes})


def test_plain_request_is_forwarded_byte_for_byte() -> None:
    raw = b'{"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}'
    request = parse_request(Endpoint.CHAT, raw)
    assert request.upstream_body("sim-small") is raw


def test_stream_without_usage_asks_upstream_for_it() -> None:
    request = parse_request(Endpoint.CHAT, body(stream=True))
    assert request.stream and not request.wants_usage
    sent = orjson.loads(request.upstream_body("sim-small"))
    assert sent["stream_options"] == {"include_usage": True}


def test_stream_with_usage_is_untouched_and_alias_is_rewritten() -> None:
    raw = body(stream=True, stream_options={"include_usage": True})
    request = parse_request(Endpoint.CHAT, raw)
    assert request.wants_usage and request.upstream_body("sim-small") is raw
    assert orjson.loads(request.upstream_body("real-model"))["model"] == "real-model"


@pytest.mark.parametrize(
    ("endpoint", "raw", "param"),
    [
        (Endpoint.CHAT, b"{not json", None),
        (Endpoint.CHAT, b"[1, 2]", None),
        (Endpoint.CHAT, orjson.dumps({"messages": []}), "model"),
        (Endpoint.CHAT, orjson.dumps({"model": 3, "messages": []}), "model"),
        (Endpoint.CHAT, orjson.dumps({"model": "m"}), "messages"),
        (Endpoint.CHAT, orjson.dumps({"model": "m", "messages": "hi"}), "messages"),
        (Endpoint.CHAT, orjson.dumps({"model": "m", "messages": []}), "messages"),
        (Endpoint.CHAT, orjson.dumps({"model": "m", "messages": [{"content": "x"}]}), "messages"),
        (Endpoint.CHAT, body(stream="yes"), "stream"),
        (Endpoint.CHAT, body(max_tokens=0), "max_tokens"),
        (Endpoint.CHAT, body(max_tokens=True), "max_tokens"),
        (Endpoint.CHAT, body(stream_options=[1]), "stream_options"),
        (Endpoint.COMPLETIONS, orjson.dumps({"model": "m"}), "prompt"),
        (Endpoint.EMBEDDINGS, orjson.dumps({"model": "m", "input": 5}), "input"),
        (Endpoint.EMBEDDINGS, orjson.dumps({"model": "m", "input": "x", "stream": True}), "stream"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(endpoint: Endpoint, raw: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(endpoint, raw)
    assert caught.value.status == 400 and caught.value.param == param
    assert caught.value.message


def test_the_prefix_key_is_the_first_message_within_the_tenant() -> None:
    def chat(*contents: str) -> InferenceRequest:
        messages = [{"role": "system" if i == 0 else "user", "content": c} for i, c in enumerate(contents)]
        return parse_request(Endpoint.CHAT, orjson.dumps({"model": "m", "messages": messages}))

    shared = chat("You are a tax assistant.", "hello").prefix_key("t1")
    assert shared == chat("You are a tax assistant.", "another question").prefix_key("t1")
    assert shared != chat("You are a tax assistant.", "hello").prefix_key("t2")  # never across tenants
    assert shared != chat("You are a poet.", "hello").prefix_key("t1")
    embed = parse_request(Endpoint.EMBEDDINGS, orjson.dumps({"model": "m", "input": "x"}))
    assert embed.prefix_key("t1") is None
