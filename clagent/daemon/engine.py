"""The served model: one llama.cpp instance behind one lock, swappable for another version.

A request holds the lock for its whole generation, so a swap waits for the generations in flight
and the requests queued behind it run on the new model; none fails.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from clagent.daemon.errors import APIError
from clagent.errors import ClagentError


@dataclass
class Loaded:
    llm: object  # llama_cpp.Llama
    vocab: object  # a vocab-only llama_cpp.Llama: tokenizes without the lock, never closed mid-use
    version: int
    path: Path
    formatter: object  # llama_cpp.llama_chat_format.Jinja2ChatFormatter
    eos_token_id: int


@dataclass
class Generation:
    """What one request produced, for the response and the log."""

    version: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    text: str = ""
    finish_reason: str | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None


def load_model(path: Path, version: int, n_ctx: int, n_threads: int) -> Loaded:
    """Load a GGUF into llama.cpp; any failure becomes a ClagentError naming the file."""
    import logging

    import llama_cpp

    from clagent.models.gguf_io import check_gguf_file

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's own warnings are noise here

    check_gguf_file(path)  # a clear error for a missing or foreign file, before llama.cpp sees it
    try:
        llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or None, n_batch=512,
            verbose=False,
        )
    except Exception as e:  # llama.cpp reports load failures as ValueError without detail
        raise ClagentError(f"llama.cpp could not load {path}: {e}") from None
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return Loaded(llm=llm, vocab=vocab, version=version, path=path, formatter=chat_formatter(llm, path),
                  eos_token_id=llm.token_eos())


def chat_formatter(llm, path: Path):
    """The model's own chat template (from its GGUF metadata), as llama-cpp-python renders it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ClagentError(f"{path} has no chat template in its metadata")
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
    )


class Engine:
    def __init__(self, n_ctx: int, n_threads: int = 0):
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._lock = threading.Lock()
        self._loaded: Loaded | None = None

    @property
    def version(self) -> int | None:
        loaded = self._loaded
        return loaded.version if loaded else None

    def load(self, path: Path, version: int) -> None:
        """Load ``path`` and make it the served model, waiting for generations in flight.

        The new model is loaded before the lock is taken, so serving pauses only for the switch;
        if loading fails the old model keeps serving.
        """
        new = load_model(path, version, self.n_ctx, self.n_threads)
        with self._lock:
            old, self._loaded = self._loaded, new
        if old is not None:
            old.llm.close()

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for the served model (no lock: it uses the vocab-only instance, which
        a swap replaces but does not close)."""
        loaded = self._loaded
        if loaded is None:
            return len(text) // 3 + 1
        return len(loaded.vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def close(self) -> None:
        with self._lock:
            if self._loaded is not None:
                self._loaded.llm.close()
                self._loaded = None

    def generate(self, messages: list[dict], sampling: dict, on_text: Callable[[str], None],
                 cancelled: threading.Event) -> Generation:
        """Run one chat completion, calling ``on_text`` with each piece of text as it is produced.

        Raises APIError for requests the model cannot take (prompt too long for the context).
        """
        started = time.perf_counter()
        with self._lock:
            loaded = self._loaded
            if loaded is None:
                raise APIError(503, "no model is loaded")
            llm = loaded.llm
            result = Generation(version=loaded.version)
            prompt = loaded.formatter(messages=messages).prompt
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            result.prompt_tokens = len(tokens)
            room = self.n_ctx - len(tokens)
            if room < 1:
                raise APIError(400, f"this model's context is {self.n_ctx} tokens, but the messages take "
                                    f"{len(tokens)}; shorten them", param="messages",
                               code="context_length_exceeded")
            max_tokens = min(sampling.get("max_tokens") or room, room)
            steps = 0

            def count_steps(input_ids, scores):
                nonlocal steps
                steps += 1
                return scores

            import llama_cpp

            stream: Iterator[dict] = llm.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=sampling.get("temperature", 0.8),
                top_p=sampling.get("top_p", 0.95),
                stop=list(sampling.get("stop") or []),
                seed=sampling.get("seed"),
                presence_penalty=sampling.get("presence_penalty", 0.0),
                frequency_penalty=sampling.get("frequency_penalty", 0.0),
                stream=True,
                logits_processor=llama_cpp.LogitsProcessorList([count_steps]),
            )
            pieces = []
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    text = choice.get("text") or ""
                    if text:
                        if result.ttft_ms is None:
                            result.ttft_ms = (time.perf_counter() - started) * 1000
                        pieces.append(text)
                        on_text(text)
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
                    if cancelled.is_set():
                        result.finish_reason = "cancelled"
                        break
            finally:
                stream.close()
            result.text = "".join(pieces)
            result.completion_tokens = steps
            result.total_ms = (time.perf_counter() - started) * 1000
            return result

