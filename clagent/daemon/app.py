"""The FastAPI application: OpenAI-compatible chat API plus clagent's own endpoints."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clagent.daemon.engine import Engine, Generation
from clagent.daemon.errors import APIError, error_response
from clagent.daemon.schemas import ChatRequest, parse_chat_request
from clagent.errors import ClagentError
from clagent.home import Home
from clagent.memory.interactions import Interaction, get_interaction, log_interaction, set_feedback
from clagent.status import collect_status

MODEL_ALIAS = "clagent"
CONVERSATION_HEADER = "x-clagent-conversation"
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class DaemonInfo:
    pid: int
    url: str
    started_at: str
    started_monotonic: float = field(default_factory=time.monotonic)


def create_app(home: Home, engine: Engine, info: DaemonInfo) -> FastAPI:
    app = FastAPI(title="clagent", version="1", docs_url=None, redoc_url=None)
    settings = home.settings
    # Serialises the daemon's model-switching actions (swap), not generation.
    swap_lock = threading.Lock()

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return error_response(400, str(exc.errors()[0].get("msg", "invalid request")))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        traceback.print_exception(exc, file=sys.stderr)
        return error_response(500, f"internal error: {type(exc).__name__}")

    async def json_body(request: Request):
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise APIError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise APIError(400, f"could not parse the JSON body: {e}") from None

    def check_model(name: str | None) -> None:
        served = engine.version
        if name in (None, "", MODEL_ALIAS, f"{MODEL_ALIAS}-v{served}"):
            return
        raise APIError(404, f"the model {name!r} does not exist; this daemon serves {MODEL_ALIAS!r} "
                            f"(currently {MODEL_ALIAS}-v{served})", param="model", code="model_not_found")

    @app.get("/health")
    def health():
        return {"status": "ok", "version": engine.version}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{
            "id": MODEL_ALIAS, "object": "model", "created": int(time.time()), "owned_by": "clagent",
            "version": engine.version, "root": f"{MODEL_ALIAS}-v{engine.version}",
        }]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = parse_chat_request(await json_body(request), settings.max_tokens_limit)
        check_model(req.model)
        if req.max_tokens is None:
            req.max_tokens = settings.default_max_tokens
        conversation = req.conversation_id or request.headers.get(CONVERSATION_HEADER) or f"conv-{uuid.uuid4().hex}"
        run = _Run(engine, home, req, conversation, asyncio.get_running_loop(), settings.system_prompt)
        run.start()
        headers = {CONVERSATION_HEADER: conversation}
        try:
            kind, payload = await run.events.get()
        except asyncio.CancelledError:
            run.cancelled.set()
            raise
        if kind == "error":
            return payload.response()
        if req.stream:
            return StreamingResponse(run.sse(payload), media_type="text/event-stream", headers=headers)
        try:
            gen = await run.finish()
        finally:
            run.cancelled.set()
        return JSONResponse(run.completion_body(gen), headers=headers)

    @app.get("/v1/clagent/status")
    def status():
        return collect_status(home, daemon={
            "running": True, "pid": info.pid, "url": info.url, "started_at": info.started_at,
            "uptime_s": round(time.monotonic() - info.started_monotonic, 1),
            "served_version": engine.version,
        })

    @app.post("/v1/clagent/feedback")
    async def feedback(request: Request):
        body = await json_body(request)
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object")
        interaction_id = body.get("interaction_id") or body.get("id")
        if not isinstance(interaction_id, str):
            raise APIError(400, "'interaction_id' (the completion's id) is required", param="interaction_id")
        rating, correction = body.get("rating"), body.get("correction")
        if correction is not None and not isinstance(correction, str):
            raise APIError(400, "'correction' must be a string", param="correction")
        if get_interaction(home.db, interaction_id) is None:
            raise APIError(404, f"no interaction with id {interaction_id!r}", param="interaction_id")
        try:
            row = await asyncio.to_thread(set_feedback, home.db, interaction_id, rating, correction)
        except ClagentError as e:
            raise APIError(400, str(e), param="rating") from None
        return {"interaction_id": interaction_id, "rating": row["rating"], "correction": row["correction"]}

    @app.post("/v1/clagent/swap")
    async def swap(request: Request):
        """Serve another registered version (used by consolidation and rollback)."""
        body = await json_body(request)
        version_id = body.get("version") if isinstance(body, dict) else None
        if isinstance(version_id, bool) or not isinstance(version_id, int):
            raise APIError(400, "'version' must be a version number", param="version")

        def do_swap():
            with swap_lock:
                registry = home.registry
                try:
                    version = registry.get(version_id)
                except ClagentError as e:
                    raise APIError(404, str(e), param="version") from None
                try:
                    engine.load(registry.served_path(version), version.id)
                except ClagentError as e:
                    raise APIError(409, f"version {version_id} cannot be served: {e}", param="version") from None
                registry.set_served(version.id, reason="swapped")
                return {"served_version": version.id}

        return await asyncio.to_thread(do_swap)

    return app


class _Run:
    """One chat completion: generation in a worker thread, events handed to the event loop."""

    def __init__(self, engine: Engine, home: Home, req: ChatRequest, conversation: str,
                 loop: asyncio.AbstractEventLoop, default_system: str = ""):
        self.engine, self.home, self.req = engine, home, req
        self.prompt_messages = req.messages
        if default_system and all(m["role"] != "system" for m in req.messages):
            self.prompt_messages = [{"role": "system", "content": default_system}, *req.messages]
        self.conversation = conversation
        self.loop = loop
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.version: int | None = None

    def _emit(self, kind: str, payload=None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))
        except RuntimeError:  # the event loop is gone (shutdown)
            self.cancelled.set()

    def start(self) -> None:
        threading.Thread(target=self._work, name=f"gen-{self.id[-8:]}", daemon=True).start()

    def _work(self) -> None:
        started = [False]

        def on_text(text: str) -> None:
            if not started[0]:
                started[0] = True
                self._emit("start")
            self._emit("text", text)

        try:
            gen = self.engine.generate(self.prompt_messages, self.req.sampling(), on_text, self.cancelled)
            self.version = gen.version
            self._log(gen)
            if not started[0]:
                self._emit("start")
            self._emit("done", gen)
        except APIError as e:
            self._emit("error", e)
        except Exception as e:
            traceback.print_exception(e, file=sys.stderr)
            self._emit("error", APIError(500, f"generation failed: {type(e).__name__}"))

    def _log(self, gen: Generation) -> None:
        log_interaction(self.home.db, Interaction(
            id=self.id, conversation_id=self.conversation, version=gen.version,
            model=f"{MODEL_ALIAS}-v{gen.version}", messages=self.req.messages, params=self.req.sampling(),
            response=gen.text, finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens, ttft_ms=gen.ttft_ms, total_ms=gen.total_ms,
            stream=self.req.stream,
        ))

    async def finish(self) -> Generation:
        while True:
            kind, payload = await self.events.get()
            if kind == "done":
                return payload
            if kind == "error":
                raise payload

    def _model(self) -> str:
        return f"{MODEL_ALIAS}-v{self.version if self.version is not None else self.engine.version}"

    def completion_body(self, gen: Generation) -> dict:
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self._model(),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text},
                         "finish_reason": gen.finish_reason, "logprobs": None}],
            "usage": _usage(gen), "conversation_id": self.conversation,
        }

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self._model(),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
        return f"data: {json.dumps(body)}\n\n"

    async def sse(self, first_payload):
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while True:
                kind, payload = await self.events.get()
                if kind == "text":
                    yield self._chunk({"content": payload})
                elif kind == "done":
                    yield self._chunk({}, payload.finish_reason)
                    if self.req.include_usage:
                        usage = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                 "model": self._model(), "choices": [], "usage": _usage(payload)}
                        yield f"data: {json.dumps(usage)}\n\n"
                    yield "data: [DONE]\n\n"
                    return
                elif kind == "error":
                    err = {"error": {"message": payload.message, "type": "server_error", "param": None,
                                     "code": payload.code}}
                    yield f"data: {json.dumps(err)}\n\n"
                    return
        finally:
            self.cancelled.set()  # the client went away, or we are done: stop generating


def _usage(gen: Generation) -> dict:
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens}
