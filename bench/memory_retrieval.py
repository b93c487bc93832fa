"""Fast-memory costs: retrieval latency at 1k, 10k and 100k memories, and the time to first token
that memory adds to a chat request (on versus off, alternated, same daemon) at 10k memories.

    .venv/bin/python bench/memory_retrieval.py [--sizes 1000,10000,100000] [--queries 200] [--ttft-requests 20]

Memories are generated from templates; the first few thousand get real embeddings from the
embedded MiniLM, the rest of a large store is filled with perturbed copies of those (the search
cost depends only on how many vectors there are). Targets: search under 10 ms p50 at 100k;
under 20 ms added to first token at 10k.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clagent.home import Home  # noqa: E402
from clagent.memory import db as dbmod  # noqa: E402
from clagent.memory.embedder import Embedder  # noqa: E402
from clagent.memory.manager import MemoryManager  # noqa: E402
from clagent.memory.db import transaction, utcnow  # noqa: E402

RELATIVES = ["sister", "brother", "cousin", "aunt", "uncle", "friend", "neighbour", "colleague", "boss", "teacher"]
THINGS = ["favorite book", "favorite film", "car", "dog", "cat", "hometown", "job", "birthday", "favorite food", "hobby"]
VALUES = ["Lisbon", "a blue Volvo", "Rex", "Luna", "pizza", "March 3", "chess", "nursing", "Dune", "jazz", "Oslo",
          "a red bike", "Biscuit", "sushi", "May 9", "painting", "teaching", "Emma", "hiking", "Kyoto"]
QUESTIONS = ["What is my dog called?", "Where does my sister live?", "What is my cousin's job?",
             "When is my friend's birthday?", "What car does my boss drive?", "What is my aunt's favorite film?",
             "What does my neighbour do for a hobby?", "What is my favorite food?"]


def texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"My {rng.choice(RELATIVES)}'s {rng.choice(THINGS)} is {rng.choice(VALUES)} (note {i})." for i in range(n)]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fill(db, embedder: Embedder, n: int, real: int) -> None:
    """Insert n memories: ``real`` with true embeddings, the rest perturbed copies of them."""
    all_texts = texts(n)
    base = embedder.encode(all_texts[:real])
    rng = np.random.default_rng(0)
    now = utcnow()
    rows = []
    for i, text in enumerate(all_texts):
        if i < real:
            v = base[i]
        else:
            v = base[i % real] + rng.normal(0, 0.05, base.shape[1]).astype(np.float32)
            v /= np.linalg.norm(v)
        rows.append((text, text, "fact", None, "active", "bench", now, now, 0, np.asarray(v, np.float32).tobytes()))
    with transaction(db):
        db.conn.executemany(
            """INSERT INTO memories (text, index_text, kind, key, status, source, created_at, updated_at,
               use_count, embedding) VALUES (?,?,?,?,?,?,?,?,?,?)""", rows)


def retrieval(sizes: list[int], queries: int, embedder: Embedder, real: int) -> list[dict]:
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = dbmod.connect(Path(tmp) / "m.db")
            print(f"filling {n} memories ...", flush=True)
            fill(db, embedder, n, min(real, n))
            home = Home(Path(tmp), Home.open(tmp).settings)
            mm = MemoryManager(db, home.settings, embedder)
            t0 = time.perf_counter()
            mm.load()
            load_s = time.perf_counter() - t0
            qvecs = embedder.encode(QUESTIONS)
            search_ms, recall_ms = [], []
            for i in range(queries):
                q = qvecs[i % len(QUESTIONS)]
                t0 = time.perf_counter()
                mm.index.search(q, 20)
                search_ms.append((time.perf_counter() - t0) * 1000)
            for i in range(max(20, queries // 4)):
                t0 = time.perf_counter()
                mm.recall(QUESTIONS[i % len(QUESTIONS)], lambda s: len(s) // 4 + 1)
                recall_ms.append((time.perf_counter() - t0) * 1000)
            db.conn.close()
        row = {"memories": n, "index_load_s": round(load_s, 2),
               "search_p50_ms": statistics.median(search_ms), "search_p99_ms": pct(search_ms, 99),
               "recall_p50_ms": statistics.median(recall_ms), "recall_p99_ms": pct(recall_ms, 99)}
        out.append(row)
        print(f"  {n}: search p50 {row['search_p50_ms']:.2f} ms, recall p50 {row['recall_p50_ms']:.1f} ms", flush=True)
    return out


def added_ttft(n: int, requests: int, embedder: Embedder, real: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Home.open(Path(tmp) / "home")
        print("making a home from the embedded model ...", flush=True)
        home.ensure_model(verbose=False)
        fill(home.db, embedder, n, min(real, n))
        home.close()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, "-m", "clagent", "serve", "--home", str(home.path), "--port", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            url = None
            for _ in range(3000):
                info = home.path / "daemon.json"
                if info.exists():
                    url = json.loads(info.read_text())["url"]
                    break
                time.sleep(0.1)
            http = httpx.Client(base_url=url, timeout=600)
            for _ in range(600):
                try:
                    http.get("/health")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)

            def ttft(question: str, memory: bool) -> tuple[float, int, int]:
                body = {"model": "clagent", "messages": [{"role": "user", "content": question}], "max_tokens": 2,
                        "temperature": 0, "stream": True, "memory": memory, "stream_options": {"include_usage": True}}
                t0 = time.perf_counter()
                first = None
                prompt_tokens = 0
                with http.stream("POST", "/v1/chat/completions", json=body) as r:
                    used = len([x for x in r.headers.get("x-clagent-memories-used", "").split(",") if x])
                    for line in r.iter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        if chunk.get("usage"):
                            prompt_tokens = chunk["usage"]["prompt_tokens"]
                        elif first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                            first = (time.perf_counter() - t0) * 1000
                return first or (time.perf_counter() - t0) * 1000, used, prompt_tokens

            ttft(QUESTIONS[0], True)  # first use loads the embedding model
            ttft(QUESTIONS[0], False)
            on, off, used, added_tokens = [], [], [], []
            for i in range(requests):
                q = QUESTIONS[i % len(QUESTIONS)]
                ms, u, p_on = ttft(q, True)
                on.append(ms)
                used.append(u)
                ms, _, p_off = ttft(q, False)
                off.append(ms)
                added_tokens.append(p_on - p_off)
            http.close()
        finally:
            proc.terminate()
            proc.wait(30)
    return {"memories": n, "ttft_on_p50_ms": statistics.median(on), "ttft_off_p50_ms": statistics.median(off),
            "added_p50_ms": statistics.median(on) - statistics.median(off),
            "memories_injected_mean": statistics.mean(used), "prompt_tokens_added_mean": statistics.mean(added_tokens)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ttft-requests", type=int, default=20)
    ap.add_argument("--ttft-memories", type=int, default=10000)
    ap.add_argument("--real", type=int, default=2000, help="memories given real embeddings (the rest are copies)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder = Embedder()
    print("loading the embedding model ...", flush=True)
    embedder.warm_up()
    rows = retrieval([int(s) for s in args.sizes.split(",")], args.queries, embedder, args.real)
    t = added_ttft(args.ttft_memories, args.ttft_requests, embedder, args.real)

    print()
    print(f"{'memories':>9} {'search p50':>11} {'search p99':>11} {'recall p50':>11} {'recall p99':>11} {'load':>7}")
    for r in rows:
        print(f"{r['memories']:>9} {r['search_p50_ms']:>9.2f}ms {r['search_p99_ms']:>9.2f}ms "
              f"{r['recall_p50_ms']:>9.1f}ms {r['recall_p99_ms']:>9.1f}ms {r['index_load_s']:>6.1f}s")
    print("  search: the cosine top-20 over the in-memory matrix (target < 10 ms p50 at 100k)")
    print("  recall: + embedding the question, reading the rows, ranking and packing")
    print()
    print(f"time to first token at {t['memories']} memories, p50 over {args.ttft_requests} alternated requests:")
    print(f"  memory off {t['ttft_off_p50_ms']:.1f} ms, memory on {t['ttft_on_p50_ms']:.1f} ms "
          f"({t['memories_injected_mean']:.1f} memories injected on average)")
    print(f"  added by memory: {t['added_p50_ms']:+.1f} ms   (target < 20 ms), of which:")
    recall10k = next((r["recall_p50_ms"] for r in rows if r["memories"] == t["memories"]), None)
    if recall10k is not None:
        print(f"    retrieval (embed the question, search, rank, pack): {recall10k:.1f} ms p50")
    print(f"    evaluating the {t['prompt_tokens_added_mean']:.0f} prompt tokens the memories add: the rest")


if __name__ == "__main__":
    main()
