import orjson

from tenantgate.domain import Usage
from tenantgate.providers.openai_usage import _USAGE_VALUE, SseUsageSniffer, usage_from


def event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


CONTENT = event({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]})
USAGE = event(
    {
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}},
    }
)
DONE = b"data: [DONE]\n\n"
STREAM = CONTENT + CONTENT + USAGE + DONE


def feed_in_pieces(sniffer: SseUsageSniffer, data: bytes, size: int) -> bytes:
    out = b"".join(sniffer.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + sniffer.flush()


def test_usage_chunk_is_read_and_stripped_when_the_client_did_not_ask() -> None:
    for size in (1, 7, 64, len(STREAM)):
        sniffer = SseUsageSniffer(strip_usage_chunk=True)
        assert feed_in_pieces(sniffer, STREAM, size) == CONTENT + CONTENT + DONE
        assert sniffer.usage == Usage(7, 3, 2)


def test_usage_chunk_is_kept_when_the_client_asked() -> None:
    sniffer = SseUsageSniffer(strip_usage_chunk=False)
    assert feed_in_pieces(sniffer, STREAM, 5) == STREAM
    assert sniffer.usage == Usage(7, 3, 2)


def test_null_usage_on_content_chunks_is_forwarded_untouched() -> None:
    chunk = event({"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": None})
    sniffer = SseUsageSniffer(strip_usage_chunk=True)
    assert sniffer.feed(chunk) == chunk and sniffer.usage is None


def test_usage_from_ignores_missing_or_null() -> None:
    assert usage_from({"usage": None}) is None
    assert usage_from([]) is None
    assert usage_from({"usage": {"prompt_tokens": 1, "completion_tokens": 2}}) == Usage(1, 2)


def test_usage_is_found_among_null_usage_chunks_however_it_is_spaced() -> None:
    said = '"usage": {"prompt_tokens": 99}'  # in a string, escaped: not a key
    null_usage = event({"choices": [{"index": 0, "delta": {"content": said}}], "usage": None})
    spaced = b'data: {"choices": [], "usage" :\n {"prompt_tokens": 5, "completion_tokens": 1}}\n\n'
    stream = null_usage + null_usage + spaced + DONE
    for size in (1, 9, len(stream)):
        sniffer = SseUsageSniffer(strip_usage_chunk=True)
        assert feed_in_pieces(sniffer, stream, size) == null_usage + null_usage + DONE
        assert sniffer.usage == Usage(5, 1)


def test_a_content_chunk_that_only_says_usage_is_forwarded_untouched() -> None:
    chunk = event({"choices": [{"index": 0, "delta": {"content": "usage"}}], "usage": None})
    said = event({"choices": [{"index": 0, "delta": {"content": "usage"}}]})
    sniffer = SseUsageSniffer(strip_usage_chunk=True)
    assert sniffer.feed(chunk + said) == chunk + said and sniffer.usage is None


def test_a_null_usage_is_not_taken_for_a_value_however_it_is_spaced() -> None:
    """Such events are forwarded unparsed: a stream asked for its usage carries one on every chunk."""
    for null in (b'"usage":null', b'"usage": null', b'"usage" :\n  null'):
        assert _USAGE_VALUE.search(null) is None, null
    assert _USAGE_VALUE.search(b'"usage": {"prompt_tokens": 1}') is not None
