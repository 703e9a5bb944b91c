"""CPU per streamed chunk of the Anthropic stream translation, beside the OpenAI pass-through's
usage sniffing, one upstream network read per event (the worst case: no batching of events).
Usage: python bench/translation.py [--events 50] [--streams 2000]"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping

from tenantgate.providers.anthropic_stream import AnthropicStreamTranslator
from tenantgate.providers.openai_usage import SseUsageSniffer


def sse(name: str, data: Mapping[str, object]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def anthropic_stream(events: int) -> list[bytes]:
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-test", "usage": {"input_tokens": 20}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " word"}}
    stop = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 50}}
    return [sse("message_start", start), sse("content_block_start", block),
            *[sse("content_block_delta", delta)] * events,
            sse("message_delta", stop), sse("message_stop", {"type": "message_stop"})]  # fmt: skip


def openai_stream(events: int) -> list[bytes]:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
             "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}]}  # fmt: skip
    usage = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
             "usage": {"prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70}}  # fmt: skip
    return [b"data: " + json.dumps(chunk).encode() + b"\n\n"] * events + [
        b"data: " + json.dumps(usage).encode() + b"\n\n", b"data: [DONE]\n\n"]  # fmt: skip


def per_chunk(streams: int, events: int, translated: bool) -> float:
    parts = anthropic_stream(events) if translated else openai_stream(events)
    started = time.process_time()
    for _ in range(streams):
        sniffer = SseUsageSniffer(strip_usage_chunk=True)
        if translated:
            translator = AnthropicStreamTranslator("bench")
            for part in parts:
                sniffer.feed(translator.feed(part))
            translator.finish()
        else:
            for part in parts:
                sniffer.feed(part)
        assert sniffer.usage is not None
    return (time.process_time() - started) / (streams * len(parts)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--streams", type=int, default=2000)
    args = parser.parse_args()
    for label, translated in (("openai pass-through (sniffer)", False), ("anthropic translated + sniffer", True)):
        runs = sorted(per_chunk(args.streams, args.events, translated) for _ in range(5))
        print(f"{label:34s} median {runs[2]:6.2f} us/chunk (min {runs[0]:.2f}, max {runs[-1]:.2f})")


if __name__ == "__main__":
    main()
