"""Concurrent clients against the daemon on loopback: latency, throughput, and whether every
answered request was logged exactly once.

    .venv/bin/python bench/load.py [--url http://127.0.0.1:PORT] [--clients 8] [--requests 120]
                                   [--max-seconds 300] [--max-tokens 32] [--mix chat,stream,completion]

Without --url it makes a fresh home from the embedded SmolLM2 in a temporary folder and starts a
daemon on a free loopback port. Only loopback addresses are accepted. It is bounded: at most
--requests requests (capped at 2,000) from --clients threads (capped at 64), and no new request
once --max-seconds (capped at 1,800) have passed. The API key, if the daemon has one, comes from
--api-key or CLAGENT_API_KEY.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAX_REQUESTS, MAX_CLIENTS, MAX_SECONDS = 2000, 64, 1800
PROMPTS = [
    "Give me one tip for sleeping better.",
    "What is a good name for a grey cat?",
    "Describe the sea in one sentence.",
    "Why do leaves change colour in autumn?",
    "Suggest a quick vegetarian dinner.",
    "What does a librarian do?",
]


@dataclass
class Result:
    kind: str
    ok: bool
    seconds: float
    ttft: float | None = None
    tokens: int = 0
    id: str | None = None
    error: str | None = None


def loopback_only(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise SystemExit(f"cannot resolve {host!r}")
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"{url} is not a loopback address: this benchmark only loads a daemon on this machine")
    return url.rstrip("/")


def one_request(http: httpx.Client, kind: str, n: int, tag: str, max_tokens: int) -> Result:
    prompt = PROMPTS[n % len(PROMPTS)]
    headers = {"X-Clagent-Conversation": f"{tag}-{n}"}
    t0 = time.perf_counter()
    try:
        if kind == "completion":
            r = http.post("/v1/completions", headers=headers, json={
                "model": "clagent", "prompt": f"Question: {prompt}\nAnswer:", "max_tokens": max_tokens,
                "temperature": 0.7, "seed": n})
            r.raise_for_status()
            body = r.json()
            return Result(kind, True, time.perf_counter() - t0, tokens=body["usage"]["completion_tokens"],
                          id=body["id"])
        payload = {"model": "clagent", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                   "temperature": 0.7, "seed": n}
        if kind == "chat":
            r = http.post("/v1/chat/completions", headers=headers, json=payload)
            r.raise_for_status()
            body = r.json()
            return Result(kind, True, time.perf_counter() - t0, tokens=body["usage"]["completion_tokens"],
                          id=body["id"])
        ttft, tokens, rid = None, 0, None
        with http.stream("POST", "/v1/chat/completions", headers=headers,
                         json={**payload, "stream": True, "stream_options": {"include_usage": True}}) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                rid = chunk.get("id", rid)
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                elif chunk.get("choices") and chunk["choices"][0]["delta"].get("content") and ttft is None:
                    ttft = time.perf_counter() - t0
        return Result(kind, True, time.perf_counter() - t0, ttft=ttft, tokens=tokens, id=rid)
    except (httpx.HTTPError, KeyError, ValueError) as e:
        return Result(kind, False, time.perf_counter() - t0, error=f"{type(e).__name__}: {e}"[:200])


def run_load(url: str, api_key: str | None, clients: int, requests: int, max_seconds: float, max_tokens: int,
             mix: list[str], tag: str) -> tuple[list[Result], float]:
    counter = itertools.count()
    lock = threading.Lock()
    results: list[Result] = []
    deadline = time.monotonic() + max_seconds
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def client() -> None:
        with httpx.Client(base_url=url, timeout=max(60.0, max_seconds), headers=headers) as http:
            while time.monotonic() < deadline:
                with lock:
                    n = next(counter)
                if n >= requests:
                    return
                result = one_request(http, mix[n % len(mix)], n, tag, max_tokens)
                with lock:
                    results.append(result)
                    done = len(results)
                if done % max(1, requests // 10) == 0:
                    print(f"  {done}/{requests} answered", flush=True)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def logged_once(url: str, api_key: str | None, tag: str, results: list[Result]) -> tuple[int, int, int, int]:
    """(answered ids logged exactly once, logged twice or more, not logged, rows of this run not
    answered) from the daemon's interaction log."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    rows = httpx.get(f"{url}/v1/clagent/interactions", params={"limit": 10000}, headers=headers, timeout=120)
    rows.raise_for_status()
    ours = Counter(r["id"] for r in rows.json()["data"] if (r.get("conversation_id") or "").startswith(f"{tag}-"))
    answered = {r.id for r in results if r.ok}
    once = sum(1 for i in answered if ours[i] == 1)
    twice = sum(1 for i in answered if ours[i] > 1)
    missing = sum(1 for i in answered if ours[i] == 0)
    extra = sum(1 for i in ours if i not in answered)
    return once, twice, missing, extra


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def start_daemon(home: Path):
    import subprocess

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "clagent", "serve", "--home", str(home), "--port", "0",
                             "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    for _ in range(3000):
        info = home / "daemon.json"
        if info.exists():
            url = json.loads(info.read_text())["url"]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        if proc.poll() is not None:
            raise SystemExit(f"daemon failed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the daemon did not start in 10 minutes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a daemon on loopback (default: start one on a fresh home)")
    ap.add_argument("--api-key", default=os.environ.get("CLAGENT_API_KEY"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=120)
    ap.add_argument("--max-seconds", type=float, default=300)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--mix", default="chat,stream,completion", help="request kinds, in turn")
    args = ap.parse_args()
    clients = max(1, min(args.clients, MAX_CLIENTS))
    requests = max(1, min(args.requests, MAX_REQUESTS))
    max_seconds = max(1.0, min(args.max_seconds, MAX_SECONDS))
    mix = [m.strip() for m in args.mix.split(",") if m.strip()]
    if not mix or set(mix) - {"chat", "stream", "completion"}:
        raise SystemExit("--mix takes chat, stream and completion")

    tmp = proc = None
    url = args.url
    if url is None:
        from clagent.home import Home

        tmp = tempfile.TemporaryDirectory(prefix="clagent-load-")
        home = Home.open(tmp.name)
        version = home.ensure_model()
        home.close()
        print(f"fresh home from the embedded model (v{version.id}); starting the daemon ...", flush=True)
        proc, url = start_daemon(Path(tmp.name))
    url = loopback_only(url)
    tag = f"load-{uuid.uuid4().hex[:8]}"
    try:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        warm = httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=300, json={
            "model": "clagent", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        warm.raise_for_status()
        print(f"{requests} requests ({', '.join(mix)} in turn, {args.max_tokens} max tokens) from {clients} "
              f"concurrent clients on {url}, at most {max_seconds:.0f} s", flush=True)
        results, wall = run_load(url, args.api_key, clients, requests, max_seconds, args.max_tokens, mix, tag)
        once, twice, missing, extra = logged_once(url, args.api_key, tag, results)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        if tmp is not None:
            tmp.cleanup()

    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    print()
    print(f"{'kind':<12}{'answered':>9}{'failed':>8}{'p50 s':>9}{'p95 s':>9}{'TTFT p50':>10}{'TTFT p95':>10}")
    for kind in [*sorted(set(mix)), "all"]:
        rs = [r for r in results if kind == "all" or r.kind == kind]
        lat = [r.seconds for r in rs if r.ok]
        ttft = [r.ttft for r in rs if r.ok and r.ttft is not None]
        t50 = f"{pct(ttft, 0.5):.2f}" if ttft else "-"
        t95 = f"{pct(ttft, 0.95):.2f}" if ttft else "-"
        print(f"{kind:<12}{len(lat):>9}{len(rs) - len(lat):>8}{pct(lat, 0.5):>9.2f}{pct(lat, 0.95):>9.2f}"
              f"{t50:>10}{t95:>10}")
    tokens = sum(r.tokens for r in ok)
    print(f"\nwall {wall:.1f} s; throughput {len(ok) / wall:.2f} requests/s, {tokens / wall:.1f} generated tokens/s "
          f"({tokens} tokens)")
    if len(results) < requests:
        print(f"stopped at the time limit: {len(results)} of {requests} requests sent")
    for r in failed[:5]:
        print(f"  failed {r.kind}: {r.error}")
    print(f"logged exactly once: {once}/{len(ok)} answered requests; logged more than once: {twice}; "
          f"not logged: {missing}; logged but not answered: {extra}")
    verdict = once == len(ok) and not twice and not missing and not extra and not failed
    print("check:", "PASS" if verdict else "FAIL")
    sys.exit(0 if verdict else 1)


if __name__ == "__main__":
    main()
