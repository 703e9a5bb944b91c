"""The Anthropic Messages API as clients speak it, in and out of the gateway's OpenAI dialect.

A Messages request becomes an OpenAI chat request (so it is limited, queued, placed, metered and
billed like any other, on any backend), and the OpenAI answer (whole, or a stream of chunks)
becomes a Messages answer (or its event stream). The outbound direction, OpenAI requests to
Anthropic upstreams, is anthropic_wire.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from tenantgate.errors import InvalidRequest

STOP_REASONS = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
    "content_filter": "refusal",
}  # fmt: skip
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error",
}  # fmt: skip


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error")


def in_band_error_type(openai_type: str, code: str) -> str:
    """The Messages API's error type for an error the gateway reports inside a stream."""
    if code in ("no_capacity", "overloaded_error", "queue_timeout", "queue_full"):
        return "overloaded_error"
    if openai_type in ("invalid_request_error", "authentication_error", "permission_error", "rate_limit_error"):
        return openai_type
    return "api_error"


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_block_text(b, f"{where}[{n}]") for n, b in enumerate(content) if _is_text(b))
    raise InvalidRequest(f"{where} must be a string or an array of text blocks.", param="messages")


def _is_text(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text"


def _block_text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: a text block's text must be a string.", param="messages")
    return text


def _image_url(source: Any, where: str) -> dict[str, Any]:
    if isinstance(source, dict) and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequest(f"{where}.source must be a base64 or url image source.", param="messages")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_turn(content: Any, where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as tool messages, then its text and images as one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of blocks.", param="messages")
    results, parts = [], []
    for n, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")),
                            "content": _text(block.get("content", ""), f"{where}.content[{n}].content")})  # fmt: skip
        elif kind == "text":
            parts.append({"type": "text", "text": _block_text(block, f"{where}.content[{n}]")})
        elif kind == "image":
            parts.append(_image_url(block.get("source"), f"{where}.content[{n}]"))
        elif kind == "document":  # sent only as it came (native_only): its text here sizes the prompt
            parts.append({"type": "text", "text": _document_text(block.get("source"))})
        else:
            raise InvalidRequest(
                f"{where}.content[{n}]: blocks of type '{kind}' are not supported here.", param="messages"
            )
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _document_text(source: Any) -> str:
    if not isinstance(source, dict):
        return ""
    content = source.get("data") or source.get("content") or source.get("url") or ""
    return content if isinstance(content, str) else orjson.dumps(content).decode()


def native_only(payload: dict[str, Any]) -> str | None:
    """What in a Messages API request only the Messages API carries: such a request may be sent to
    Anthropic deployments only, as it came. None when its chat translation says all of it."""
    if isinstance(payload.get("thinking"), dict) and payload["thinking"].get("type") == "enabled":
        return "extended thinking"
    turns = payload.get("messages")
    for turn in turns if isinstance(turns, list) else ():
        content = turn.get("content") if isinstance(turn, dict) else None
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "document" for b in content):
            return "document blocks"
    return None


def _assistant_turn(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of blocks.", param="messages")
    text = _text(content, f"{where}.content")
    calls = [{"id": str(b.get("id", "")), "type": "function",
              "function": {"name": str(b.get("name", "")), "arguments": orjson.dumps(b.get("input") or {}).decode()}}
             for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]  # fmt: skip
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    if choice is None:
        return None, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind in ("auto", "none"):
        return kind, parallel
    if kind == "any":
        return "required", parallel
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise InvalidRequest("'tool_choice' must be auto, any, none or a tool by name.", param="tool_choice")


def _tools(payload: dict[str, Any], request: dict[str, Any]) -> None:
    if isinstance(payload.get("tools"), list) and payload["tools"]:
        request["tools"] = [
            {"type": "function", "function": {"name": tool.get("name"), "description": tool.get("description", ""),
                                              "parameters": tool.get("input_schema") or {"type": "object"}}}
            for tool in payload["tools"] if isinstance(tool, dict)
        ]  # fmt: skip
    choice, parallel = _tool_choice(payload.get("tool_choice"))
    if choice is not None:
        request["tool_choice"] = choice
    if parallel is not None:
        request["parallel_tool_calls"] = parallel


def _conversation(payload: dict[str, Any]) -> list[dict[str, Any]]:
    turns = payload.get("messages")
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("messages: at least one message is required.", param="messages")
    messages: list[dict[str, Any]] = []
    if payload.get("system"):
        messages.append({"role": "system", "content": _text(payload["system"], "system")})
    for n, turn in enumerate(turns):
        role = turn.get("role") if isinstance(turn, dict) else None
        if role == "user":
            messages += _user_turn(turn.get("content"), f"messages[{n}]")
        elif role == "assistant":
            messages.append(_assistant_turn(turn.get("content"), f"messages[{n}]"))
        else:
            raise InvalidRequest(f"messages[{n}].role must be 'user' or 'assistant'.", param="messages")
    return messages


def chat_request(payload: dict[str, Any], counting: bool = False) -> dict[str, Any]:
    """The OpenAI chat request for a Messages API request (`counting`: for count_tokens, which takes
    no max_tokens)."""
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        raise InvalidRequest("model: Field required.", param="model")
    limit = payload.get("max_tokens", 1 if counting else None)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidRequest("max_tokens: Field required (a positive integer).", param="max_tokens")
    messages = _conversation(payload)
    request: dict[str, Any] = {"model": payload["model"], "messages": messages, "max_tokens": limit}
    pairs = (("stop_sequences", "stop"), ("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"))
    for ours, theirs in pairs:  # top_k: an extension vLLM, SGLang, llama.cpp and Ollama take
        if payload.get(ours) is not None:
            request[theirs] = payload[ours]
    _tools(payload, request)
    user = (payload.get("metadata") or {}).get("user_id") if isinstance(payload.get("metadata"), dict) else None
    if isinstance(user, str):
        request["user"] = user
    if payload.get("stream") is True:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}  # the message_delta event carries the usage
    return request


def anthropic_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return {"input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
            "output_tokens": int(usage.get("completion_tokens") or 0), "cache_read_input_tokens": cached}  # fmt: skip


def message(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """The Messages API answer for an OpenAI chat completion."""
    choice = (completion.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if reply.get("content"):
        content.append({"type": "text", "text": reply["content"]})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {"arguments": function.get("arguments")}  # kept, though the model's JSON was broken
        content.append(
            {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""), "input": arguments}
        )
    return {
        "id": completion.get("id", ""), "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"), "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage")),
    }  # fmt: skip
