"""OpenAI chat requests in the Anthropic Messages dialect, and Messages answers back as OpenAI's.

Only what both sides define is carried: system prompts, text and image parts, tools, tool calls and
their results, stop sequences, temperature and top_p, the token limit, the end user. What the
Messages API cannot express (several choices, logprobs, a JSON response format) is refused with a
400 that says so, never silently dropped.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tenantgate.errors import InvalidRequest

ANTHROPIC_VERSION = "2023-06-01"
JSON_TOOL = "json_answer"  # the forced tool whose input is a JSON answer (response_format)
DEFAULT_MAX_TOKENS = 4096  # the Messages API requires a limit; OpenAI clients often send none
UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction")
STOP_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
    "pause_turn": "stop", "refusal": "content_filter",
}  # fmt: skip


def _refuse(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_by_provider")


def _text(content: Any, where: str) -> str:
    """A system or tool message's content as plain text (a string, or text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    raise InvalidRequest(f"{where}.content must be a string or an array of text parts.", param="messages")


def _image(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[len("data:") :].split(";")[0]
        if not header.endswith(";base64") or not media_type:
            raise InvalidRequest(f"{where}: an image data URL must be base64 with a media type.", param="messages")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of parts.", param="messages")
    blocks: list[dict[str, Any]] = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif (
            kind == "image_url"
            and isinstance(part.get("image_url"), dict)
            and isinstance(part["image_url"].get("url"), str)
        ):
            blocks.append(_image(part["image_url"]["url"], f"{where}.content[{n}]"))
        else:
            raise _refuse(f"{where}.content[{n}]: only text and image_url parts reach this model.", "messages")
    return blocks


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if (
        not isinstance(function, dict)
        or not isinstance(function.get("name"), str)
        or not isinstance(call.get("id"), str)
    ):
        raise InvalidRequest(f"{where} must have an id and a function with a name.", param="messages")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"{where}.function.arguments must be a JSON object.", param="messages")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed}


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Consecutive turns of one role become one turn, as the Messages API wants them; an empty turn
    (an assistant message with no text and no calls) is left out, as the API refuses empty content."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _conversation(openai_messages: list[Any]) -> tuple[str | None, list[dict[str, Any]]]:
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for n, message in enumerate(openai_messages):
        where = f"messages[{n}]"
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            system.append(_text(content, where))
        elif role == "user":
            _append(messages, "user", _parts(content, where))
        elif role == "assistant":
            blocks = [] if content is None else _parts(content, where)
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise InvalidRequest(f"{where}.tool_calls must be an array.", param="messages")
            blocks += [_tool_use(call, f"{where}.tool_calls[{k}]") for k, call in enumerate(calls)]
            _append(messages, "assistant", blocks)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(f"{where}.tool_call_id is required for a tool message.", param="messages")
            result = {"type": "tool_result", "tool_use_id": call_id, "content": _text(content, where)}
            _append(messages, "user", [result])
        else:
            raise _refuse(f"{where}.role '{role}' cannot be sent to this model.", "messages")
    if not messages:
        raise InvalidRequest("At least one user message is needed besides system messages.", param="messages")
    return ("\n\n".join(system) if system else None), messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out = []
    for n, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"tools[{n}] must be a function with a name.", param="tools")
        spec = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
        if isinstance(function.get("description"), str):
            spec["description"] = function["description"]
        out.append(spec)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    picked: dict[str, Any] | None
    if choice is None:
        picked = None
    elif choice in ("auto", "none"):
        picked = {"type": choice}
    elif choice == "required":
        picked = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        picked = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest("'tool_choice' must be auto, none, required or a function by name.", param="tool_choice")
    if parallel is False:
        picked = {**(picked or {"type": "auto"}), "disable_parallel_tool_use": True}
    return picked


def _check_supported(payload: dict[str, Any]) -> None:
    for name in UNSUPPORTED:
        if payload.get(name) not in (None, False):
            raise _refuse(f"'{name}' is not supported by this model's provider.", name)
    if payload.get("n") not in (None, 1):
        raise _refuse("This model's provider answers one choice per request ('n' must be 1).", "n")


def _sampling(payload: dict[str, Any], request: dict[str, Any]) -> None:
    stop = payload.get("stop")
    if stop is not None:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    temperature = payload.get("temperature")
    if isinstance(temperature, int | float):
        request["temperature"] = min(float(temperature), 1.0)  # OpenAI's range is 0-2, Anthropic's 0-1
    for name in ("top_p", "top_k"):  # top_k: the extension vLLM and SGLang take, and so does Anthropic
        if isinstance(payload.get(name), int | float) and not isinstance(payload[name], bool):
            request[name] = payload[name]


def json_tool(payload: dict[str, Any]) -> dict[str, Any] | None:
    """For `response_format` json_object or json_schema: the tool whose forced call carries the answer
    (the Messages API has no JSON mode; a tool's input is JSON that matches its schema)."""
    response_format = payload.get("response_format")
    if response_format is None or (isinstance(response_format, dict) and response_format.get("type") == "text"):
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
    if kind == "json_object":
        schema: Any = {"type": "object"}
    elif kind == "json_schema" and isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        schema = spec["schema"]
    else:
        raise InvalidRequest(
            "'response_format' must be text, json_object, or json_schema with a schema.", param="response_format"
        )
    if payload.get("tools"):
        raise _refuse("'response_format' together with 'tools' is not supported by this model's provider.", "tools")
    return {"name": JSON_TOOL, "description": "Give the answer as this tool's input.", "input_schema": schema}


def messages_request(payload: dict[str, Any]) -> dict[str, Any]:
    """The Messages API request for an OpenAI chat request (already checked by the gateway's parser)."""
    _check_supported(payload)
    system, messages = _conversation(payload["messages"])
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens") or DEFAULT_MAX_TOKENS
    request: dict[str, Any] = {"model": payload["model"], "messages": messages, "max_tokens": limit}
    if system:
        request["system"] = system
    _sampling(payload, request)
    if payload.get("tools"):
        request["tools"] = _tools(payload["tools"])
    choice = _tool_choice(payload.get("tool_choice"), payload.get("parallel_tool_calls"))
    if choice is not None:
        request["tool_choice"] = choice
    answer_tool = json_tool(payload)
    if answer_tool is not None:
        request["tools"], request["tool_choice"] = [answer_tool], {"type": "tool", "name": JSON_TOOL}
    if isinstance(payload.get("user"), str):
        request["metadata"] = {"user_id": payload["user"]}
    if payload.get("stream"):
        request["stream"] = True
    return request


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic counts cached prompt tokens apart from `input_tokens`; OpenAI counts them within."""
    cached = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + written
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
    }  # fmt: skip


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {
        "id": block.get("id", ""),
        "type": "function",
        "function": {"name": block.get("name", ""), "arguments": arguments},
    }


def chat_completion(message: dict[str, Any], created: int | None = None, json_answer: bool = False) -> dict[str, Any]:
    """An OpenAI chat completion for a Messages API answer (`json_answer`: the forced JSON tool's input
    is the answer's content)."""
    blocks = message.get("content") or []
    if json_answer:
        answers = [b for b in blocks if b.get("type") == "tool_use" and b.get("name") == JSON_TOOL]
        blocks = [{"type": "text", "text": orjson.dumps(b.get("input") or {}).decode()} for b in answers]
        message = {**message, "stop_reason": "end_turn" if answers else message.get("stop_reason")}
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        reply["tool_calls"] = calls
    finish_reason = STOP_REASONS.get(message.get("stop_reason") or "", "stop")
    return {
        "id": message.get("id", ""), "object": "chat.completion", "created": created or int(time.time()),
        "model": message.get("model", ""),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason, "logprobs": None}],
        "usage": openai_usage(message.get("usage") or {}),
    }  # fmt: skip


ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error", "authentication_error": "upstream_error",
    "permission_error": "upstream_error", "not_found_error": "invalid_request_error",
    "request_too_large": "invalid_request_error", "rate_limit_error": "rate_limit_error",
    "api_error": "upstream_error", "overloaded_error": "upstream_error",
}  # fmt: skip


def openai_error(status: int, body: bytes) -> dict[str, Any]:
    """An Anthropic error answer in OpenAI's error shape, its message kept (it never holds the key)."""
    try:
        error = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        error = {}
    kind = str(error.get("type") or "api_error")
    message = str(error.get("message") or f"The upstream provider answered HTTP {status}.")
    return {"error": {"message": message, "type": ERROR_TYPES.get(kind, "upstream_error"), "code": kind, "param": None}}
