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
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from clagent.daemon.engine import Engine, Generation
from clagent.daemon.errors import APIError, error_response
from clagent.daemon.guard import Guard, Policy
from clagent.daemon.metrics import Metrics, MetricsMiddleware
from clagent.daemon.operations import operations_router
from clagent.daemon.scheduler import Scheduler
from clagent.daemon.schemas import ChatRequest, json_body, optional_json_object, parse_chat_request
from clagent.errors import ClagentError
from clagent.home import Home
from clagent.memory import store as memory_store
from clagent.memory.interactions import (Interaction, delete_interactions, get_interaction, log_interaction,
                                        recent_interactions, set_feedback)
from clagent.memory.manager import MemoryManager, Recall
from clagent.memory.retrieve import with_memory
from clagent.status import collect_status

MODEL_ALIAS = "clagent"
CONVERSATION_HEADER = "x-clagent-conversation"
MEMORY_HEADER = "x-clagent-memory"  # "off" disables memory for one request
MEMORIES_USED_HEADER = "x-clagent-memories-used"
LEARN_WAIT_S = 5.0


@dataclass
class DaemonInfo:
    pid: int
    url: str
    started_at: str
    started_monotonic: float = field(default_factory=time.monotonic)


def create_app(home: Home, engine: Engine, info: DaemonInfo, memory: MemoryManager | None = None,
               scheduler: Scheduler | None = None, policy: Policy | None = None) -> FastAPI:
    app = FastAPI(title="clagent", version="1", docs_url=None, redoc_url=None)
    settings = home.settings
    # Serialises the daemon's model-switching actions (swap, rollback, prune), not generation.
    swap_lock = threading.Lock()
    metrics = Metrics(home, lambda: engine.version)
    # Host, Origin, API key and JSON-only checks before any handler; refusals are still counted
    # (the metrics middleware, added last, is the outer one).
    app.add_middleware(Guard, policy=policy or Policy.from_settings(settings, urlsplit(info.url).port))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(operations_router(home, engine, swap_lock, scheduler))

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

    def check_model(name: str | None) -> None:
        served = engine.version
        if name in (None, "", MODEL_ALIAS, f"{MODEL_ALIAS}-v{served}"):
            return
        raise APIError(404, f"the model {name!r} does not exist; this daemon serves {MODEL_ALIAS!r} "
                            f"(currently {MODEL_ALIAS}-v{served})", param="model", code="model_not_found")

    @app.get("/health")
    def health():
        return {"status": "ok", "version": engine.version}

    @app.get("/metrics")
    def prometheus_metrics():
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

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
        if request.headers.get(MEMORY_HEADER, "").lower() in ("off", "0", "false", "no"):
            req.memory = False
        run = _Run(engine, home, req, conversation, asyncio.get_running_loop(), settings.system_prompt, memory,
                   metrics)
        run.start()
        try:
            kind, payload = await run.events.get()
        except asyncio.CancelledError:
            run.cancelled.set()
            raise
        if kind == "error":
            return payload.response()
        headers = {CONVERSATION_HEADER: conversation,
                   MEMORIES_USED_HEADER: ",".join(str(i) for i in run.recall.ids)}
        if req.stream:
            return StreamingResponse(run.sse(payload), media_type="text/event-stream", headers=headers)
        try:
            gen = await run.finish()
        finally:
            run.cancelled.set()
        return JSONResponse(run.completion_body(gen), headers=headers)

    @app.get("/v1/clagent/status")
    def status():
        return collect_status(home, memory_enabled=memory is not None, daemon={
            "running": True, "pid": info.pid, "url": info.url, "started_at": info.started_at,
            "uptime_s": round(time.monotonic() - info.started_monotonic, 1),
            "served_version": engine.version,
        }, schedule=scheduler.describe() if scheduler is not None else None)

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
        result = {"interaction_id": interaction_id, "rating": row["rating"], "correction": row["correction"],
                  "lesson": None}
        question = next((m["content"] for m in reversed(row["messages"]) if m["role"] == "user"), None)
        if memory is not None and row["correction"] and question:
            try:
                added = await asyncio.to_thread(memory.learn_from_feedback, question, row["correction"], interaction_id)
                result["lesson"] = added.to_dict()
            except ClagentError as e:
                raise APIError(400, str(e), param="correction") from None
        return result

    # -- the interaction log ---------------------------------------------------------------------
    @app.get("/v1/clagent/interactions")
    def list_interactions(limit: int = 10, conversation: str | None = None):
        if not 1 <= limit <= 10000:
            raise APIError(400, "'limit' must be between 1 and 10000", param="limit")
        return {"data": recent_interactions(home.db, limit, conversation)}

    def delete_logged(**what) -> dict:
        from clagent.updater.pipeline import is_running

        if is_running(home.path):
            raise APIError(409, "a consolidation is training on the waiting interactions now; delete them once it "
                                "has ended (it would have learned them anyway)")
        try:
            return delete_interactions(home.db, **what)
        except ClagentError as e:
            raise APIError(404 if str(e).startswith("no waiting") else 400, str(e)) from None

    @app.delete("/v1/clagent/interactions/{interaction_id}")
    async def delete_interaction(interaction_id: str):
        return await asyncio.to_thread(delete_logged, ids=[interaction_id])

    @app.post("/v1/clagent/interactions/delete")
    async def delete_interactions_endpoint(request: Request):
        body = await json_body(request)
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object")
        ids, conversation, everything = body.get("ids"), body.get("conversation"), body.get("all", False)
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise APIError(400, "'ids' must be a list of interaction ids", param="ids")
        if conversation is not None and not isinstance(conversation, str):
            raise APIError(400, "'conversation' must be a conversation id", param="conversation")
        if not isinstance(everything, bool):
            raise APIError(400, "'all' must be true or false", param="all")
        if sum((ids is not None, conversation is not None, everything)) != 1:
            raise APIError(400, "send one of {\"ids\": [...]}, {\"conversation\": \"...\"} or {\"all\": true}")
        return await asyncio.to_thread(delete_logged, ids=ids, conversation=conversation, everything=everything)

    # -- consolidation -------------------------------------------------------------------------
    @app.post("/v1/clagent/consolidate", status_code=202)
    async def consolidate(request: Request):
        from clagent.updater.pipeline import start_in_background

        body = await optional_json_object(request)
        max_steps = body.get("max_steps")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise APIError(400, "'max_steps' must be a positive integer", param="max_steps")
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise APIError(400, "'dry_run' must be a boolean", param="dry_run")
        try:
            return {"started": True, **start_in_background(home.path, max_steps, dry_run, trigger="api")}
        except ClagentError as e:
            raise APIError(409, str(e)) from None

    # -- memories ------------------------------------------------------------------------------
    def need_memory() -> MemoryManager:
        if memory is None:
            raise APIError(409, "memory is switched off in this daemon's settings (memory_enabled = false)")
        return memory

    @app.get("/v1/clagent/memories")
    def list_memories(search: str | None = None, kind: str | None = None, status: str = "active",
                      limit: int = 100):
        if status not in ("active", "superseded", "all"):
            raise APIError(400, "'status' must be active, superseded or all", param="status")
        if not 1 <= limit <= 10000:
            raise APIError(400, "'limit' must be between 1 and 10000", param="limit")
        try:
            if search is not None:
                return {"data": need_memory().search(search, limit)}
            rows = memory_store.listing(home.db, status, kind, limit)
        except ClagentError as e:
            raise APIError(400, str(e), param="search") from None
        return {"data": [memory_store.public(r) for r in rows]}

    @app.post("/v1/clagent/memories", status_code=201)
    async def add_memory(request: Request):
        body = await json_body(request)
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object")
        manager = need_memory()
        try:
            added = await asyncio.to_thread(manager.add, body.get("text"), body.get("kind"), "api")
        except ClagentError as e:
            raise APIError(400, str(e), param="text" if "kind" not in str(e) else "kind") from None
        return added.to_dict()

    @app.delete("/v1/clagent/memories/{memory_id}")
    def delete_memory(memory_id: int):
        try:
            return {"deleted": need_memory().forget([memory_id])}
        except ClagentError as e:
            raise APIError(404, str(e), param="id") from None

    @app.post("/v1/clagent/memories/forget")
    async def forget_memories(request: Request):
        body = await json_body(request)
        match = body.get("match") if isinstance(body, dict) else None
        if not isinstance(match, str):
            raise APIError(400, "'match' (text the memories to forget contain) is required", param="match")
        manager = need_memory()
        try:
            return {"deleted": await asyncio.to_thread(manager.forget_matching, match)}
        except ClagentError as e:
            status = 404 if str(e).startswith("no memory") else 400
            raise APIError(status, str(e), param="match") from None

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
                 loop: asyncio.AbstractEventLoop, default_system: str = "", memory: MemoryManager | None = None,
                 metrics: Metrics | None = None):
        self.engine, self.home, self.req = engine, home, req
        self.metrics = metrics
        self.default_system = default_system
        self.memory = memory
        self.recall = Recall()
        self.conversation = conversation
        self.loop = loop
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.version: int | None = None
        self.stored: list = []  # memories learned from this request's message

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
            messages = self.req.messages
            last_user = messages[-1]["content"] if messages[-1]["role"] == "user" else None
            if self.memory is not None and self.req.memory and last_user:
                self.recall = self._recall(last_user)
            if not any(m["role"] == "system" for m in messages) and self.default_system and not self.recall.block:
                messages = [{"role": "system", "content": self.default_system}, *messages]
            messages = with_memory(messages, self.recall.block, self.default_system)
            learning = None
            if self.memory is not None and last_user:
                # beside the generation, so that it never delays the answer
                learning = threading.Thread(target=self._learn, args=(last_user,), name=f"learn-{self.id[-8:]}",
                                            daemon=True)
                learning.start()
            gen = self.engine.generate(messages, self.req.sampling(), on_text, self.cancelled)
            self.version = gen.version
            self._log(gen)
            if learning is not None:
                learning.join(LEARN_WAIT_S)  # to say what was stored; a slower store goes on by itself
            if not started[0]:
                self._emit("start")
            self._emit("done", gen)
        except APIError as e:
            self._emit("error", e)
        except Exception as e:
            traceback.print_exception(e, file=sys.stderr)
            self._emit("error", APIError(500, f"generation failed: {type(e).__name__}"))

    def _recall(self, query: str) -> Recall:
        try:
            return self.memory.recall(query, self.engine.count_tokens)
        except ClagentError as e:  # memory failing must not fail the chat
            print(f"clagent: memory recall failed: {e}", file=sys.stderr)
            return Recall()

    def _learn(self, text: str) -> None:
        try:
            self.stored = self.memory.learn_from_message(text, self.id, conversation=self.conversation,
                                                         previous=self.req.messages[:-1])
        except ClagentError as e:
            print(f"clagent: memory not updated: {e}", file=sys.stderr)
        except Exception as e:  # a bug in learning must not lose the answer
            traceback.print_exception(e, file=sys.stderr)

    def stored_summary(self) -> list[dict]:
        return [{"id": a.memory["id"], "kind": a.memory["kind"], "text": a.memory["text"], "action": a.action,
                 "superseded": a.superseded} for a in list(self.stored)]

    def _log(self, gen: Generation) -> None:
        log_interaction(self.home.db, Interaction(
            id=self.id, conversation_id=self.conversation, version=gen.version,
            model=f"{MODEL_ALIAS}-v{gen.version}", messages=self.req.messages, params=self.req.sampling(),
            response=gen.text, finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens, ttft_ms=gen.ttft_ms, total_ms=gen.total_ms,
            stream=self.req.stream, memory_ids=self.recall.ids,
        ))
        if self.recall.ids:
            self.memory.mark_used(self.recall.ids)
        if self.metrics is not None:
            self.metrics.observe_generation(gen)

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
            "memories_used": [{"id": h.id, "kind": h.kind, "text": h.text} for h in self.recall.used],
            "memories_stored": self.stored_summary(),
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
                    last = json.loads(self._chunk({}, payload.finish_reason)[len("data: "):])
                    last["memories_stored"] = self.stored_summary()
                    yield f"data: {json.dumps(last)}\n\n"
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
