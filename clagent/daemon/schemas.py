"""Request bodies of the API, validated into plain values; every rejection names its parameter."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from clagent.daemon.errors import APIError

ROLES = {"system", "developer", "user", "assistant"}
MAX_BODY_BYTES = 8 * 1024 * 1024


async def json_body(request: Request):
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise APIError(400, f"could not parse the JSON body: {e}") from None


async def optional_json_object(request: Request) -> dict:
    """The body of an endpoint whose fields are all optional: empty means ``{}``."""
    raw = await request.body()
    body = await json_body(request) if raw.strip() else {}
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    return body


@dataclass
class ChatRequest:
    messages: list[dict]
    model: str | None
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    conversation_id: str | None = None
    memory: bool = True  # put memories into the prompt (False: the model's weights alone)

    def sampling(self) -> dict:
        return {
            "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
            "stop": self.stop, "seed": self.seed, "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
        }


def _number(body: dict, name: str, default, lo: float, hi: float, integer: bool = False):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise APIError(400, f"'{name}' must be {kind}, got {value!r}", param=name)
    if not lo <= value <= hi:
        raise APIError(400, f"'{name}' must be between {lo} and {hi}, got {value}", param=name)
    return value


def _text_content(content: Any, index: int) -> str:
    """Message content: a string, or a list of text parts as OpenAI clients send it."""
    param = f"messages[{index}].content"
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise APIError(400, f"{param}: only text parts are supported, got {kind!r}", param=param)
            texts.append(part["text"])
        return "".join(texts)
    raise APIError(400, f"{param} must be a string or a list of text parts, got {type(content).__name__}",
                   param=param)


def parse_messages(raw: Any) -> list[dict]:
    if raw is None:
        raise APIError(400, "'messages' is required", param="messages")
    if not isinstance(raw, list):
        raise APIError(400, "'messages' must be an array of message objects", param="messages")
    if not raw:
        raise APIError(400, "'messages' must contain at least one message", param="messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise APIError(400, f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = m.get("role")
        if role not in ROLES:
            raise APIError(400, f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}, got {role!r}",
                           param=f"messages[{i}].role")
        if "content" not in m or m["content"] is None:
            raise APIError(400, f"messages[{i}].content is required", param=f"messages[{i}].content")
        messages.append({"role": "system" if role == "developer" else role, "content": _text_content(m["content"], i)})
    if all(m["role"] != "user" for m in messages):
        raise APIError(400, "'messages' must contain at least one user message", param="messages")
    return messages


def parse_chat_request(body: Any, max_tokens_limit: int) -> ChatRequest:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError(400, "'model' must be a string", param="model")
    n = _number(body, "n", 1, 1, 1, integer=True)
    del n  # only one choice per request
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError(400, "'stream' must be a boolean", param="stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise APIError(400, "'stream_options' must be an object", param="stream_options")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        max_tokens = _number({"max_tokens": max_tokens}, "max_tokens", None, 1, max_tokens_limit, integer=True)
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    elif not (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) and s for s in stop)):
        raise APIError(400, "'stop' must be a string or a list of up to 4 non-empty strings", param="stop")
    conversation_id = body.get("conversation_id")
    if conversation_id is not None and (not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 200):
        raise APIError(400, "'conversation_id' must be a non-empty string of at most 200 characters",
                       param="conversation_id")
    memory = body.get("memory", True)
    if not isinstance(memory, bool):
        raise APIError(400, "'memory' must be a boolean", param="memory")
    return ChatRequest(
        memory=memory,
        messages=parse_messages(body.get("messages")),
        model=model,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage", False)),
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0.8, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.95, 0.0, 1.0),
        stop=stop,
        seed=_number(body, "seed", None, -(2**63), 2**63 - 1, integer=True),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        conversation_id=conversation_id,
    )
