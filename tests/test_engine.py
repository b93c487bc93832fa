"""The engine in-process on the tiny model: prompts prepared without the engine lock, cancelled
generations that stop within a token or never start, the size bound that refuses a huge prompt
untokenized, and the vocab-only tokenizer agreeing with llama.cpp's own."""

from __future__ import annotations

import threading
import time

import pytest

from clagent.daemon.engine import Engine
from clagent.daemon.errors import APIError

GREEDY = {"max_tokens": 40, "temperature": 0.0, "top_p": 1.0, "stop": [], "seed": 0}


@pytest.fixture(scope="module")
def engine(tiny_gguf):
    e = Engine(n_ctx=2048)
    e.load(tiny_gguf, 1)
    yield e
    e.close()


def _in_thread(fn, timeout: float = 30):
    out = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked"
    return out


def test_prompts_are_prepared_without_the_engine_lock(engine):
    huge = "word " * 1_000_000  # 5 MB
    with engine._lock:  # a long generation holds it
        t0 = time.monotonic()
        ok = _in_thread(lambda: engine.chat_prompt([{"role": "user", "content": "hello"}]))
        assert ok["value"].tokens and ok["value"].version == 1
        too_big = _in_thread(lambda: engine.chat_prompt([{"role": "user", "content": huge}]))
        assert isinstance(too_big["error"], APIError) and too_big["error"].code == "context_length_exceeded"
        tokenized = _in_thread(lambda: engine.text_prompt("word " * 20_000))  # under the size bound: tokenized
        assert tokenized["error"].code == "context_length_exceeded" and "2048" in tokenized["error"].message
        raw = _in_thread(lambda: engine.text_prompt("Once upon a time"))
        assert len(raw["value"].tokens) == 4
        assert time.monotonic() - t0 < 10


def test_a_cancelled_generation_stops_within_a_token(engine):
    prompt = engine.text_prompt("Numbers:")
    pieces = []
    full = engine.generate(prompt, GREEDY, pieces.append, threading.Event())
    # this prompt's text comes a piece per token (nothing held back), so pieces count tokens
    assert full.completion_tokens == len(pieces) == 40 and full.finish_reason == "length"

    for stop_at in (1, 5, 17):
        cancelled = threading.Event()
        seen = []

        def on_text(text, seen=seen, cancelled=cancelled, stop_at=stop_at):
            seen.append(text)
            if len(seen) == stop_at:
                cancelled.set()

        gen = engine.generate(prompt, GREEDY, on_text, cancelled)
        assert gen.finish_reason == "cancelled"
        assert stop_at <= gen.completion_tokens <= stop_at + 1, (stop_at, gen.completion_tokens)
        assert gen.text == "".join(pieces[:len(seen)])


def test_a_request_cancelled_while_queued_never_generates(engine):
    prompt = engine.chat_prompt([{"role": "user", "content": "hi"}])
    cancelled = threading.Event()
    texts = []
    with engine._lock:
        t = threading.Thread(target=lambda: texts.append(engine.generate(prompt, GREEDY, texts.append, cancelled)))
        t.start()
        time.sleep(0.3)
        assert t.is_alive()  # waiting for its turn
        cancelled.set()
        t.join(5)
        assert not t.is_alive()  # left the queue while the lock is still held
    [gen] = texts
    assert gen.finish_reason == "cancelled" and gen.completion_tokens == 0 and gen.text == ""


def test_a_prompt_prepared_before_a_swap_runs_on_the_new_model(tiny_gguf, tiny_gguf_b):
    e = Engine(n_ctx=2048)
    e.load(tiny_gguf, 1)
    try:
        prompt = e.chat_prompt([{"role": "user", "content": "hi"}])
        e.load(tiny_gguf_b, 2)
        started = []
        gen = e.generate(prompt, {**GREEDY, "max_tokens": 4}, lambda t: None, threading.Event(),
                         on_start=started.append)
        assert started == [2] and gen.version == 2 and gen.completion_tokens == 4
    finally:
        e.close()


# Texts of unlike kinds: the size bound must never refuse a prompt that fits.
TEXTS = {
    "prose": "The quick brown fox jumps over the lazy dog. " * 20,
    "whitespace": " " * 3000 + "\n" * 500 + "\t" * 200,
    "code": "def f(x):\n    return [i ** 2 for i in range(x) if i % 3]\n" * 30,
    "cjk": "東京は日本の首都です。" * 40,
    "emoji": "🙂🚀🎉👍🏽" * 50,
    "digits": "3141592653589793238462643383279502884197" * 30,
    "special": "<|im_start|>user\nhi<|im_end|>\n" * 30,
    "repeated": "a" * 5000,
    "url": "https://example.org/some/long/path?query=value&other=thing#frag " * 30,
}


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_the_size_bound_is_a_true_lower_bound(engine, kind):
    vocab = engine._loaded.vocab
    text = TEXTS[kind]
    for special in (False, True):
        n = len(vocab.tokenize(text, parse_special=special))
        assert n >= len(text.encode()) // vocab.max_piece_bytes, (kind, n)
    # the vocab-only tokenizer is llama.cpp's own
    llm = engine._loaded.llm
    assert vocab.tokenize(text, parse_special=True) == llm.tokenize(text.encode(), add_bos=False, special=True)
