"""The served model: one llama.cpp instance behind one lock, swappable for another version.

A request holds the lock for its generation only. Its prompt is rendered, tokenized and checked
against the context before, without the lock (the tokenizer is a separate vocab-only instance), so
a huge prompt never makes the others wait. A swap waits for the generation in flight and the
requests queued behind it run on the new model; none fails. A request whose client has gone stops
within a token, or leaves the queue without generating.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from clagent.daemon.errors import APIError
from clagent.errors import ClagentError

LOCK_POLL_S = 0.05  # how often a queued request looks whether its client is still there


class Vocab:
    """A model's tokenizer alone: llama.cpp's vocab-only load (no weights, no context, so no
    context of its own to warn about), safe to use from any thread, freed when nothing uses it."""

    def __init__(self, path: Path):
        import ctypes

        import llama_cpp

        self._llama_cpp, self._ctypes = llama_cpp, ctypes
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not self._model:
            raise ClagentError(f"llama.cpp could not read the vocabulary of {path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.bos = llama_cpp.llama_vocab_bos(self._vocab)
        self.adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        fim = (llama_cpp.llama_vocab_fim_pre(self._vocab), llama_cpp.llama_vocab_fim_suf(self._vocab),
               llama_cpp.llama_vocab_fim_mid(self._vocab))
        self.fim = fim if all(t >= 0 for t in fim) else None
        # No token stands for more bytes than this: a text of n bytes takes at least n / this
        # many tokens, which refuses an oversized prompt without tokenizing it.
        self.max_piece_bytes = max(1, max(len(self.piece(t)) for t in range(self.n_vocab)))

    def tokenize(self, text: str, add_special: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8  # a token covers at least one byte; plus BOS/EOS
        buf = (self._llama_cpp.llama_token * capacity)()
        n = self._llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            raise ClagentError(f"tokenization failed ({n})")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        buf = self._ctypes.create_string_buffer(256)
        n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, 256, 0, True)
        return buf.raw[:max(n, 0)]

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def __del__(self):
        model, self._model = getattr(self, "_model", None), None
        if model:
            self._llama_cpp.llama_model_free(model)


@dataclass
class Loaded:
    llm: object  # llama_cpp.Llama
    vocab: Vocab  # tokenizes without the lock; a swap replaces it, requests holding it finish with it
    version: int
    path: Path
    formatter: object  # llama_cpp.llama_chat_format.Jinja2ChatFormatter
    eos_token_id: int
    n_ctx_train: int


@dataclass
class Prompt:
    """A request's prompt as tokens of one loaded model, checked against the context."""

    tokens: list[int]
    version: int
    make: Callable[[Loaded], list[int]]  # the same prompt for another model (after a swap)
    param: str = "prompt"  # what an error about its length names
    what: str = "prompt takes"


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


_LOG_ERROR, _LOG_CONT = 4, 5  # ggml_log_level of the llama.cpp that llama-cpp-python 0.3.3x bundles
_log_callback = None


def _quiet_llama_cpp_log() -> None:
    """Only llama.cpp's errors reach the daemon's log. Its context lines (and llama-cpp-python's
    level mapping, one off for this llama.cpp, which prints every warning) would say things about
    contexts that are not the one in force; the daemon says that once itself."""
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes
    import sys

    import llama_cpp

    last = [0]

    @llama_cpp.llama_log_callback
    def callback(level, text, user_data):
        level = last[0] if level == _LOG_CONT else level
        last[0] = level
        if level == _LOG_ERROR:
            print(f"llama.cpp: {text.decode('utf-8', errors='replace')}", end="", file=sys.stderr, flush=True)

    _log_callback = callback  # kept alive: llama.cpp holds a pointer to it
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def load_model(path: Path, version: int, n_ctx: int, n_threads: int) -> Loaded:
    """Load a GGUF into llama.cpp; any failure becomes a ClagentError naming the file."""
    import llama_cpp

    from clagent.models.gguf_io import check_gguf_file

    _quiet_llama_cpp_log()
    check_gguf_file(path)  # a clear error for a missing or foreign file, before llama.cpp sees it
    try:
        llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or None, n_batch=512,
            verbose=False,
        )
    except Exception as e:  # llama.cpp reports load failures as ValueError without detail
        raise ClagentError(f"llama.cpp could not load {path}: {e}") from None
    try:
        vocab = Vocab(path)
        formatter = chat_formatter(llm, path)
    except BaseException:
        llm.close()
        raise
    return Loaded(llm=llm, vocab=vocab, version=version, path=path, formatter=formatter,
                  eos_token_id=llm.token_eos(), n_ctx_train=llm._model.n_ctx_train())


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

    def context(self) -> dict:
        """The context in force, as llama.cpp set it up, and what the model was trained on."""
        loaded = self._loaded
        if loaded is None:
            return {"n_ctx": self.n_ctx, "n_ctx_train": None}
        return {"n_ctx": loaded.llm.n_ctx(), "n_ctx_train": loaded.n_ctx_train}

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

    def _current(self) -> Loaded:
        loaded = self._loaded
        if loaded is None:
            raise APIError(503, "no model is loaded")
        return loaded

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for the served model (no lock)."""
        loaded = self._loaded
        if loaded is None:
            return len(text) // 3 + 1
        return len(loaded.vocab.tokenize(text))

    def detokenize(self, tokens: list[int]) -> str:
        return self._current().vocab.detokenize(tokens)

    def close(self) -> None:
        with self._lock:
            if self._loaded is not None:
                self._loaded.llm.close()
                self._loaded = None

    # -- prompts: rendered, tokenized and checked without the lock ---------------------------------
    def _fits(self, n_tokens: int, param: str, what: str) -> None:
        if self.n_ctx - n_tokens < 1:
            raise APIError(400, f"this model's context is {self.n_ctx} tokens, but the {what} {n_tokens}; "
                                f"shorten it", param=param, code="context_length_exceeded")

    def check_size(self, text: str, param: str, what: str) -> None:
        """Refuse a text that cannot fit the context whatever its tokens: before any work on it."""
        loaded = self._loaded
        if loaded is not None:
            self._bounded(loaded, text, param, what)

    def _bounded(self, loaded: Loaded, text: str, param: str, what: str) -> None:
        floor = len(text.encode("utf-8")) // loaded.vocab.max_piece_bytes
        if floor >= self.n_ctx:
            raise APIError(400, f"this model's context is {self.n_ctx} tokens, but the {what} at least "
                                f"{floor}; shorten it", param=param, code="context_length_exceeded")

    def _prompt(self, make: Callable[[Loaded], list[int]], param: str, what: str) -> Prompt:
        loaded = self._current()
        tokens = make(loaded)
        self._fits(len(tokens), param, what)
        return Prompt(tokens=tokens, version=loaded.version, make=make, param=param, what=what)

    def chat_prompt(self, messages: list[dict]) -> Prompt:
        def make(loaded: Loaded) -> list[int]:
            text = loaded.formatter(messages=messages).prompt
            self._bounded(loaded, text, "messages", "messages take")
            return loaded.vocab.tokenize(text, add_special=False, parse_special=True)

        return self._prompt(make, "messages", "messages take")

    def text_prompt(self, prompt: str | list[int], suffix: str | None = None) -> Prompt:
        """A raw completion's prompt: text (special tokens in it are parsed, as templates written
        by clients need) or token ids of the served model; with ``suffix``, a fill-in-the-middle
        prompt in the model's own FIM tokens."""

        def make(loaded: Loaded) -> list[int]:
            vocab = loaded.vocab
            if isinstance(prompt, list):
                bad = next((t for t in prompt if not 0 <= t < vocab.n_vocab), None)
                if bad is not None:
                    raise APIError(400, f"token {bad} is not in this model's vocabulary (0..{vocab.n_vocab - 1})",
                                   param="prompt")
                return list(prompt)
            self._bounded(loaded, prompt + (suffix or ""), "prompt", "prompt takes")
            if suffix is None:
                return vocab.tokenize(prompt, add_special=True, parse_special=True)
            if vocab.fim is None:
                raise APIError(400, "'suffix' (fill-in-the-middle) needs a model with FIM tokens; the served one "
                                    "has none", param="suffix")
            pre, suf, mid = vocab.fim
            head = [vocab.bos] if vocab.adds_bos and vocab.bos >= 0 else []
            return [*head, pre, *vocab.tokenize(prompt), suf, *vocab.tokenize(suffix), mid]

        return self._prompt(make, "prompt", "prompt takes")

    # -- generation --------------------------------------------------------------------------------
    def _acquire(self, cancelled: threading.Event) -> bool:
        """Take the lock, unless the client goes away while waiting for it."""
        while not self._lock.acquire(timeout=LOCK_POLL_S):
            if cancelled.is_set():
                return False
        return True

    def generate(self, prompt: Prompt | list[dict], sampling: dict, on_text: Callable[[str], None],
                 cancelled: threading.Event, on_start: Callable[[int], None] | None = None) -> Generation:
        """Generate from ``prompt`` (a Prompt, or chat messages), calling ``on_text`` with each piece of
        text as it is produced, and ``on_start`` with the version that generates, once it has the
        lock. A request cancelled before its turn comes generates nothing.

        Raises APIError for requests the model cannot take (prompt too long for the context).
        """
        if not isinstance(prompt, Prompt):
            prompt = self.chat_prompt(prompt)
        started = time.perf_counter()
        if not self._acquire(cancelled):
            return Generation(version=prompt.version, prompt_tokens=len(prompt.tokens), finish_reason="cancelled",
                              total_ms=(time.perf_counter() - started) * 1000)
        try:
            loaded = self._loaded
            if loaded is None:
                raise APIError(503, "no model is loaded")
            tokens = prompt.tokens
            if loaded.version != prompt.version:  # swapped while this request waited: the new model's tokens
                tokens = prompt.make(loaded)
                self._fits(len(tokens), prompt.param, prompt.what)
            result = Generation(version=loaded.version, prompt_tokens=len(tokens))
            if on_start is not None:
                on_start(loaded.version)
            if cancelled.is_set():
                result.finish_reason = "cancelled"
                result.total_ms = (time.perf_counter() - started) * 1000
                return result
            self._run(loaded.llm, tokens, sampling, on_text, cancelled, result, started)
            result.total_ms = (time.perf_counter() - started) * 1000
            return result
        finally:
            self._lock.release()

    def _run(self, llm, tokens: list[int], sampling: dict, on_text: Callable[[str], None],
             cancelled: threading.Event, result: Generation, started: float) -> None:
        """Times are from ``started``, the request's turn in the queue included."""
        import llama_cpp

        room = self.n_ctx - len(tokens)
        max_tokens = min(sampling.get("max_tokens") or room, room)
        steps = 0

        def count_steps(input_ids, scores):
            nonlocal steps
            steps += 1
            return scores

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
            # Asked after every token, even those whose text is held back (a partial stop sequence,
            # an incomplete UTF-8 character), so that a cancelled request stops at once.
            stopping_criteria=llama_cpp.StoppingCriteriaList([lambda input_ids, logits: cancelled.is_set()]),
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
        if cancelled.is_set():
            result.finish_reason = "cancelled"
        result.text = "".join(pieces)
        result.completion_tokens = steps
