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
class Sampling:
    """What chat and raw completions share: the model asked for, streaming and sampling."""

    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def sampling(self) -> dict:
        return {
            "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
            "stop": self.stop, "seed": self.seed, "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
        }


@dataclass
class ChatRequest(Sampling):
    messages: list[dict] = field(default_factory=list)
    conversation_id: str | None = None
    memory: bool = True  # put memories into the prompt (False: the model's weights alone)


@dataclass
class CompletionRequest(Sampling):
    prompts: list[str | list[int]] = field(default_factory=list)  # text, or token ids of the served model
    suffix: str | None = None  # fill-in-the-middle
    echo: bool = False
    conversation_id: str | None = None


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


def _reject_unsupported(body: dict, logprobs_kind: str) -> None:
    """Options this daemon does not implement: a clear 400 rather than silently ignoring them."""
    n = _number(body, "n", 1, 1, 1, integer=True)
    del n  # only one choice per prompt
    best_of = body.get("best_of")
    if best_of not in (None, 1):
        raise APIError(400, "'best_of' must be 1: this daemon returns one choice per prompt", param="best_of")
    logprobs = body.get("logprobs")
    unsupported = logprobs not in (None, False) if logprobs_kind == "chat" else logprobs is not None
    if unsupported or body.get("top_logprobs") not in (None, 0):
        param = "logprobs" if unsupported else "top_logprobs"
        raise APIError(400, f"'{param}' is not supported by this daemon; leave it out", param=param)


def _parse_sampling(body: dict, max_tokens_limit: int, default_max_tokens: int | None, logprobs_kind: str) -> dict:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError(400, "'model' must be a string", param="model")
    _reject_unsupported(body, logprobs_kind)
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
        stop = [stop] if stop else []
    elif not (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) and s for s in stop)):
        raise APIError(400, "'stop' must be a string or a list of up to 4 non-empty strings", param="stop")
    return dict(
        model=model,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage", False)),
        max_tokens=max_tokens if max_tokens is not None else default_max_tokens,
        temperature=_number(body, "temperature", 0.8, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.95, 0.0, 1.0),
        stop=stop,
        seed=_number(body, "seed", None, -(2**63), 2**63 - 1, integer=True),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
    )


def _conversation_id(body: dict) -> str | None:
    conversation_id = body.get("conversation_id")
    if conversation_id is not None and (not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 200):
        raise APIError(400, "'conversation_id' must be a non-empty string of at most 200 characters",
                       param="conversation_id")
    return conversation_id


def parse_chat_request(body: Any, max_tokens_limit: int, default_max_tokens: int | None = None) -> ChatRequest:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    sampling = _parse_sampling(body, max_tokens_limit, default_max_tokens, "chat")
    memory = body.get("memory", True)
    if not isinstance(memory, bool):
        raise APIError(400, "'memory' must be a boolean", param="memory")
    return ChatRequest(**sampling, messages=parse_messages(body.get("messages")), memory=memory,
                       conversation_id=_conversation_id(body))


MAX_PROMPTS = 32  # prompts in one completion request, generated one after the other (LangChain sends 20)


def _is_token_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool)
                                                           for t in value)


def parse_prompts(raw: Any) -> list[str | list[int]]:
    """``prompt`` as OpenAI takes it: a string, a list of strings, a list of token ids, or a list
    of token-id lists; never a mix."""
    if raw is None:
        raise APIError(400, "'prompt' is required", param="prompt")
    if isinstance(raw, str):
        prompts = [raw]
    elif _is_token_list(raw):
        prompts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw):
        prompts = list(raw)
    elif isinstance(raw, list) and raw and all(_is_token_list(p) for p in raw):
        prompts = list(raw)
    elif isinstance(raw, list) and not raw:
        raise APIError(400, "'prompt' must not be an empty list", param="prompt")
    elif isinstance(raw, list):
        kinds = sorted({"string" if isinstance(p, str) else "integer" if isinstance(p, int) and not isinstance(p, bool)
                        else "token list" if _is_token_list(p) else type(p).__name__ for p in raw})
        raise APIError(400, f"'prompt' must be a string, a list of strings, a list of token ids or a list of "
                            f"token-id lists, not a mix ({', '.join(kinds)})", param="prompt")
    else:
        raise APIError(400, f"'prompt' must be a string or a list, got {type(raw).__name__}", param="prompt")
    if len(prompts) > MAX_PROMPTS:
        raise APIError(400, f"at most {MAX_PROMPTS} prompts per request, got {len(prompts)}", param="prompt")
    for i, p in enumerate(prompts):
        if isinstance(p, str) and not p.strip():
            where = "'prompt'" if len(prompts) == 1 else f"prompt[{i}]"
            raise APIError(400, f"{where} is empty: give the text to continue", param="prompt")
    return prompts


def parse_completion_request(body: Any, max_tokens_limit: int, default_max_tokens: int | None = None
                             ) -> CompletionRequest:
    """Without ``max_tokens``, the daemon's default as for chat (OpenAI's 16 would cut off every
    client that leaves it out)."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    sampling = _parse_sampling(body, max_tokens_limit, default_max_tokens, "completion")
    prompts = parse_prompts(body.get("prompt"))
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise APIError(400, "'suffix' must be a string", param="suffix")
    if suffix == "":
        suffix = None
    if suffix is not None and any(isinstance(p, list) for p in prompts):
        raise APIError(400, "'suffix' goes with a text prompt, not token ids", param="suffix")
    echo = body.get("echo", False)
    if not isinstance(echo, bool):
        raise APIError(400, "'echo' must be a boolean", param="echo")
    if echo and suffix is not None:
        raise APIError(400, "'echo' and 'suffix' cannot be used together", param="echo")
    return CompletionRequest(**sampling, prompts=prompts, suffix=suffix, echo=echo,
                             conversation_id=_conversation_id(body))


MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit
MAX_EMBEDDING_INPUT_CHARS = 32_768  # one input (OpenAI refuses more than 8,192 tokens, about this)
MAX_EMBEDDING_TOTAL_CHARS = 1_000_000  # one request


@dataclass
class EmbeddingRequest:
    inputs: list[str]
    model: str | None
    encoding_format: str = "float"
    dimensions: int | None = None


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError(400, "'model' must be a string", param="model")
    raw = body.get("input")
    if raw is None:
        raise APIError(400, "'input' is required: a string or a list of strings", param="input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list):
        raise APIError(400, f"'input' must be a string or a list of strings, got {type(raw).__name__}", param="input")
    if not inputs:
        raise APIError(400, "'input' must not be an empty list", param="input")
    if _is_token_list(inputs) or any(_is_token_list(i) for i in inputs):
        raise APIError(400, "'input' as token ids is not supported (they would be another model's tokens): send "
                            "text (LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))", param="input")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise APIError(400, f"at most {MAX_EMBEDDING_INPUTS} inputs per request, got {len(inputs)}", param="input")
    total = 0
    for i, text in enumerate(inputs):
        where = "'input'" if isinstance(raw, str) else f"input[{i}]"
        if not isinstance(text, str):
            raise APIError(400, f"{where} must be a string, got {type(text).__name__}", param="input")
        if not text.strip():
            raise APIError(400, f"{where} is empty", param="input")
        if len(text) > MAX_EMBEDDING_INPUT_CHARS:
            raise APIError(400, f"{where} is {len(text):,} characters, more than the {MAX_EMBEDDING_INPUT_CHARS:,} "
                                f"one input may have (the model reads its first 256 tokens anyway); split it",
                           param="input")
        total += len(text)
    if total > MAX_EMBEDDING_TOTAL_CHARS:
        raise APIError(400, f"the inputs are {total:,} characters in all, more than the {MAX_EMBEDDING_TOTAL_CHARS:,} "
                            f"one request may have; send them in several requests", param="input")
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise APIError(400, f"'encoding_format' must be 'float' or 'base64', got {encoding_format!r}",
                       param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)):
        raise APIError(400, "'dimensions' must be an integer", param="dimensions")
    return EmbeddingRequest(inputs=inputs, model=model, encoding_format=encoding_format, dimensions=dimensions)
