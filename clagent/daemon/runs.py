"""One generation request, chat or raw completion, from the HTTP handler to the engine and back.

The work runs in a thread: the prompt is prepared (memory recall, chat template, tokens, context
check) without the engine lock, then generated under it; the text comes back to the event loop as
events. Meanwhile the handler watches the connection: a client that goes away — streamed or not,
queued or generating — cancels the run, which leaves the queue or stops within a token, and is
logged as cancelled (consolidation never trains on it). The response to nobody is counted as
status 499 in /metrics, as nginx does.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
import uuid

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from clagent.daemon.catalog import VERSION_HEADER, fingerprint, version_name
from clagent.daemon.engine import Engine, Generation, Prompt
from clagent.daemon.errors import APIError
from clagent.daemon.metrics import Metrics
from clagent.daemon.schemas import ChatRequest, CompletionRequest
from clagent.errors import ClagentError
from clagent.home import Home
from clagent.memory.interactions import Interaction, log_interaction
from clagent.memory.manager import MemoryManager, Recall
from clagent.memory.retrieve import with_memory

CONVERSATION_HEADER = "x-clagent-conversation"
MEMORIES_USED_HEADER = "x-clagent-memories-used"
CLIENT_CLOSED = 499  # nginx's status for a request whose client closed the connection first
LEARN_WAIT_S = 5.0


class Run:
    """What chat and completion runs share: the worker thread, its events, cancellation, logging."""

    kind = "chat"
    id_prefix = "chatcmpl-"

    def __init__(self, engine: Engine, home: Home, req, name: str, loop: asyncio.AbstractEventLoop,
                 metrics: Metrics | None = None):
        self.engine, self.home, self.req, self.name = engine, home, req, name
        self.loop, self.metrics = loop, metrics
        self.id = f"{self.id_prefix}{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.disconnected = False  # the client went away before its answer was complete
        self.version: int | None = None
        self.generations: list[Generation] = []

    # -- the worker thread ------------------------------------------------------------------------
    def _emit(self, kind: str, payload=None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))
        except RuntimeError:  # the event loop is gone (shutdown)
            self.cancelled.set()

    def start(self) -> None:
        threading.Thread(target=self._work, name=f"gen-{self.id[-8:]}", daemon=True).start()

    def cancel(self) -> None:
        self.cancelled.set()

    def prepare(self) -> list[Prompt]:
        """The prompts as tokens, checked; an APIError here refuses the request (nothing logged)."""
        raise NotImplementedError

    def before_generation(self) -> None:
        pass

    def after_generation(self) -> None:
        pass

    def interaction(self, index: int, gen: Generation) -> Interaction:
        raise NotImplementedError

    def interaction_id(self, index: int) -> str:
        return self.id

    def _work(self) -> None:
        started = [False]

        def on_start(version: int) -> None:
            self.version = version

        try:
            prompts = self.prepare()
            self.before_generation()
            for index, prompt in enumerate(prompts):
                def on_text(text: str, index: int = index) -> None:
                    if not started[0]:
                        started[0] = True
                        self._emit("start")
                    self._emit("text", (index, text))

                gen = self.engine.generate(prompt, self.req.sampling(), on_text, self.cancelled, on_start=on_start)
                self.version = gen.version
                self.generations.append(gen)
                self._log(index, gen)
            self.after_generation()
            if not started[0]:
                self._emit("start")
            self._emit("done", self.generations)
        except APIError as e:
            self._emit("error", e)
        except Exception as e:
            traceback.print_exception(e, file=sys.stderr)
            self._emit("error", APIError(500, f"generation failed: {type(e).__name__}"))

    def _log(self, index: int, gen: Generation) -> None:
        log_interaction(self.home.db, self.interaction(index, gen))
        if self.metrics is not None:
            self.metrics.observe_generation(gen, self.kind)

    # -- the event loop's side ----------------------------------------------------------------------
    async def finish(self) -> list[Generation]:
        while True:
            kind, payload = await self.events.get()
            if kind == "done":
                return payload
            if kind == "error":
                raise payload

    def headers(self) -> dict:
        version = self.version if self.version is not None else self.engine.version
        return {VERSION_HEADER: str(version)} if version is not None else {}

    def _meta(self) -> dict:
        version = self.version if self.version is not None else self.engine.version
        return {"system_fingerprint": fingerprint(version), "clagent_version": version}

    def body(self, gens: list[Generation]) -> dict:
        raise NotImplementedError

    def chunk(self, index: int, text: str | None, finish_reason: str | None = None, first: bool = False) -> dict:
        raise NotImplementedError

    def first_chunks(self) -> list[dict]:
        return []

    def final_extra(self) -> dict:
        return {}

    @staticmethod
    def _sse(body: dict) -> str:
        return f"data: {json.dumps(body)}\n\n"

    async def sse(self):
        try:
            for c in self.first_chunks():
                yield self._sse(c)
            while True:
                kind, payload = await self.events.get()
                if kind == "text":
                    yield self._sse(self.chunk(*payload))
                elif kind == "done":
                    for i, gen in enumerate(payload):
                        last = self.chunk(i, None, gen.finish_reason)
                        if i == len(payload) - 1:
                            last.update(self.final_extra())
                        yield self._sse(last)
                    if self.req.include_usage:
                        usage = {**self.chunk(0, None), "choices": [], "usage": usage_of(payload)}
                        yield self._sse(usage)
                    yield "data: [DONE]\n\n"
                    return
                elif kind == "error":
                    yield self._sse({"error": {"message": payload.message, "type": "server_error", "param": None,
                                               "code": payload.code}})
                    return
        finally:
            self.cancelled.set()  # the client went away, or we are done: stop generating


def usage_of(gens: list[Generation]) -> dict:
    prompt = sum(g.prompt_tokens for g in gens)
    completion = sum(g.completion_tokens for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class ChatRun(Run):
    """A chat completion: memory recalled into the prompt, and learned from beside the generation."""

    def __init__(self, engine: Engine, home: Home, req: ChatRequest, name: str, loop: asyncio.AbstractEventLoop,
                 conversation: str, default_system: str = "", memory: MemoryManager | None = None,
                 metrics: Metrics | None = None):
        super().__init__(engine, home, req, name, loop, metrics)
        self.conversation = conversation
        self.default_system = default_system
        self.memory = memory
        self.recall = Recall()
        self.stored: list = []  # memories learned from this request's message
        self._learning: threading.Thread | None = None
        self._last_user: str | None = None

    def prepare(self) -> list[Prompt]:
        messages = self.req.messages
        # A request that cannot fit is refused before memory looks at it (nor learns from it).
        self.engine.check_size("".join(m["content"] for m in messages), "messages", "messages take")
        last_user = messages[-1]["content"] if messages[-1]["role"] == "user" else None
        self._last_user = last_user
        if self.memory is not None and self.req.memory and last_user:
            self.recall = self._recall(last_user)
        if not any(m["role"] == "system" for m in messages) and self.default_system and not self.recall.block:
            messages = [{"role": "system", "content": self.default_system}, *messages]
        messages = with_memory(messages, self.recall.block, self.default_system)
        return [self.engine.chat_prompt(messages)]

    def before_generation(self) -> None:
        if self.memory is not None and self._last_user:
            # beside the generation, so that it never delays the answer
            self._learning = threading.Thread(target=self._learn, args=(self._last_user,),
                                              name=f"learn-{self.id[-8:]}", daemon=True)
            self._learning.start()

    def after_generation(self) -> None:
        if self._learning is not None:
            self._learning.join(LEARN_WAIT_S)  # to say what was stored; a slower store goes on by itself

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

    def interaction(self, index: int, gen: Generation) -> Interaction:
        return Interaction(
            id=self.id, conversation_id=self.conversation, version=gen.version, model=version_name(gen.version),
            messages=self.req.messages, params=self.req.sampling(), response=gen.text,
            finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens, ttft_ms=gen.ttft_ms, total_ms=gen.total_ms,
            stream=self.req.stream, memory_ids=self.recall.ids, kind="chat",
        )

    def _log(self, index: int, gen: Generation) -> None:
        super()._log(index, gen)
        if self.recall.ids:
            self.memory.mark_used(self.recall.ids)

    def headers(self) -> dict:
        return {**super().headers(), CONVERSATION_HEADER: self.conversation,
                MEMORIES_USED_HEADER: ",".join(str(i) for i in self.recall.ids)}

    def body(self, gens: list[Generation]) -> dict:
        gen = gens[0]
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text},
                         "finish_reason": gen.finish_reason, "logprobs": None}],
            "usage": usage_of(gens), **self._meta(), "conversation_id": self.conversation,
            "memories_used": [{"id": h.id, "kind": h.kind, "text": h.text} for h in self.recall.used],
            "memories_stored": self.stored_summary(),
        }

    def chunk(self, index: int, text: str | None, finish_reason: str | None = None, first: bool = False) -> dict:
        delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text is not None else {})
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.name,
                **self._meta(),
                "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}

    def first_chunks(self) -> list[dict]:
        return [self.chunk(0, None, first=True)]

    def final_extra(self) -> dict:
        return {"memories_stored": self.stored_summary()}


class CompletionRun(Run):
    """A raw completion (/v1/completions): the prompt is continued as it is. Fast memory does not
    apply — no notes put into it, nothing learned from it: a raw prompt is a document or code to
    continue (an editor's file, a template the client wrote), not something the user said to the
    assistant, and notes inserted into it would change the text being continued."""

    kind = "completion"
    id_prefix = "cmpl-"

    def __init__(self, engine: Engine, home: Home, req: CompletionRequest, name: str,
                 loop: asyncio.AbstractEventLoop, conversation: str | None = None, metrics: Metrics | None = None):
        super().__init__(engine, home, req, name, loop, metrics)
        self.conversation = conversation
        self.texts: list[str] = []  # each prompt as text, for the log and for echo

    def prepare(self) -> list[Prompt]:
        prompts = [self.engine.text_prompt(p, self.req.suffix) for p in self.req.prompts]
        self.texts = [p if isinstance(p, str) else self.engine.detokenize(p) for p in self.req.prompts]
        return prompts

    def interaction_id(self, index: int) -> str:
        return self.id if len(self.req.prompts) == 1 else f"{self.id}-{index}"

    def interaction(self, index: int, gen: Generation) -> Interaction:
        messages = [{"role": "prompt", "content": self.texts[index]}]
        if self.req.suffix is not None:
            messages.append({"role": "suffix", "content": self.req.suffix})
        return Interaction(
            id=self.interaction_id(index), conversation_id=self.conversation, version=gen.version,
            model=version_name(gen.version), messages=messages,
            params={**self.req.sampling(), "echo": self.req.echo}, response=gen.text,
            finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens, ttft_ms=gen.ttft_ms, total_ms=gen.total_ms,
            stream=self.req.stream, kind="completion",
        )

    def headers(self) -> dict:
        headers = super().headers()
        if self.conversation is not None:
            headers[CONVERSATION_HEADER] = self.conversation
        return headers

    def body(self, gens: list[Generation]) -> dict:
        choices = [{"index": i, "text": (self.texts[i] if self.req.echo else "") + g.text,
                    "finish_reason": g.finish_reason, "logprobs": None} for i, g in enumerate(gens)]
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.name,
                "choices": choices, "usage": usage_of(gens), **self._meta()}

    def chunk(self, index: int, text: str | None, finish_reason: str | None = None, first: bool = False) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.name,
                **self._meta(),
                "choices": [{"index": index, "text": text or "", "finish_reason": finish_reason, "logprobs": None}]}

    def first_chunks(self) -> list[dict]:
        return [self.chunk(i, t) for i, t in enumerate(self.texts)] if self.req.echo else []


# -- the handler's side ---------------------------------------------------------------------------
async def _watch_disconnect(request: Request, run: Run) -> None:
    """Waits on the connection (the body is read already): the server says ``http.disconnect``
    when the client closes it."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            run.disconnected = True
            run.cancel()
            return


async def respond(request: Request, run: Run, stream: bool) -> Response:
    """Start ``run`` and answer with it: a stream once its first text is there, or the whole body;
    an error in OpenAI's shape if it was refused; 499 if the client left first."""
    run.start()
    watcher = asyncio.create_task(_watch_disconnect(request, run))
    try:
        kind, payload = await run.events.get()
        if kind == "error":
            return Response(status_code=CLIENT_CLOSED) if run.disconnected else payload.response()
        if stream and not run.disconnected:
            watcher.cancel()  # the streaming response listens to the connection from here on
            await asyncio.gather(watcher, return_exceptions=True)
            return StreamingResponse(run.sse(), media_type="text/event-stream", headers=run.headers())
        try:
            gens = await run.finish()
        except APIError as e:
            return Response(status_code=CLIENT_CLOSED) if run.disconnected else e.response()
    except asyncio.CancelledError:
        run.cancel()
        raise
    finally:
        watcher.cancel()
    if run.disconnected:
        return Response(status_code=CLIENT_CLOSED)
    return JSONResponse(run.body(gens), headers=run.headers())
