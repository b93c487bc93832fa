"""What the daemon's HTTP layer costs: tokens/s and time to first token through the API versus
llama-cpp-python called directly on the same model file, prompts and sampling, in one run.

    .venv/bin/python bench/serve_overhead.py [--home DIR] [--rounds 3] [--max-tokens 64]

Without --home it makes a fresh home from the embedded SmolLM2 in a temporary folder.
Target: ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clagent.config import Settings  # noqa: E402
from clagent.daemon.engine import load_model  # noqa: E402
from clagent.home import Home  # noqa: E402

PROMPTS = [
    "Write a short paragraph about the sea.",
    "Explain what a computer does, in simple words.",
    "Describe a walk in a forest in autumn.",
    "Give three tips for learning a new language.",
]


def messages_for(prompt: str, settings: Settings) -> list[dict]:
    return [{"role": "system", "content": settings.system_prompt}, {"role": "user", "content": prompt}]


def direct_round(loaded, settings: Settings, r: int, max_tokens: int) -> list[tuple[float, float, int]]:
    """(ttft_s, total_s, tokens) per prompt, llama-cpp-python called in this process."""
    import llama_cpp

    out = []
    for prompt in PROMPTS:
        text = loaded.formatter(messages=messages_for(prompt, settings)).prompt
        tokens = loaded.llm.tokenize(text.encode(), add_bos=False, special=True)
        steps = 0

        def count(ids, scores):
            nonlocal steps
            steps += 1
            return scores

        t0 = time.perf_counter()
        ttft = None
        for chunk in loaded.llm.create_completion(
                prompt=tokens, max_tokens=max_tokens, temperature=0, seed=r, stream=True,
                logits_processor=llama_cpp.LogitsProcessorList([count])):
            if ttft is None and chunk["choices"][0]["text"]:
                ttft = time.perf_counter() - t0
        out.append((ttft or 0.0, time.perf_counter() - t0, steps))
    return out


def daemon_round(http: httpx.Client, r: int, max_tokens: int) -> list[tuple[float, float, int]]:
    """The same prompts through the daemon's streaming chat API."""
    out = []
    for prompt in PROMPTS:
        body = {"model": "clagent", "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens, "temperature": 0, "seed": r, "stream": True,
                "stream_options": {"include_usage": True}}
        t0 = time.perf_counter()
        ttft, tokens = None, 0
        with http.stream("POST", "/v1/chat/completions", json=body) as resp:
            for line in resp.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                elif chunk["choices"] and chunk["choices"][0]["delta"].get("content") and ttft is None:
                    ttft = time.perf_counter() - t0
        out.append((ttft or 0.0, time.perf_counter() - t0, tokens))
    return out


def start_daemon(home: Path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "clagent", "serve", "--home", str(home), "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        url = None
        for _ in range(3000):
            info = home / "daemon.json"
            if info.exists():
                url = json.loads(info.read_text())["url"]
                try:
                    httpx.get(f"{url}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    pass
            if proc.poll() is not None:
                raise SystemExit(f"daemon failed: {proc.stderr.read().decode()}")
            time.sleep(0.2)
        return proc, url
    except BaseException:
        proc.terminate()
        raise


def summarise(runs):
    tokens = sum(t for _, _, t in runs)
    seconds = sum(s for _, s, _ in runs)
    return tokens / seconds, statistics.median(f for f, _, _ in runs) * 1000, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    tmp = None
    if args.home is None:
        tmp = tempfile.TemporaryDirectory(prefix="clagent-bench-")
        args.home = tmp.name
    home = Home.open(args.home)
    version = home.ensure_model()
    path = home.registry.served_path(version)
    settings = home.settings
    home.close()
    print(f"model: v{version.id} {path.name} ({version.quant}); {len(PROMPTS)} prompts x {args.rounds} "
          f"rounds, {args.max_tokens} max tokens, greedy", flush=True)

    print("starting the daemon and loading the model in this process ...", flush=True)
    proc, url = start_daemon(Path(args.home))
    loaded = load_model(path, 1, settings.n_ctx, settings.n_threads)
    direct_runs, daemon_runs = [], []
    try:
        with httpx.Client(base_url=url, timeout=600) as http:
            direct_round(loaded, settings, 0, 8)  # warm-up, both sides
            daemon_round(http, 0, 8)
            # Alternate the two so that drift in machine load hits both alike.
            for r in range(args.rounds):
                direct_runs += direct_round(loaded, settings, r, args.max_tokens)
                daemon_runs += daemon_round(http, r, args.max_tokens)
                print(f"round {r + 1}/{args.rounds} done", flush=True)
    finally:
        loaded.llm.close()
        proc.terminate()
        proc.wait(30)
    d_tps, d_ttft, d_tok = summarise(direct_runs)
    h_tps, h_ttft, h_tok = summarise(daemon_runs)

    print()
    print(f"{'path':<28}{'tokens':>8}{'tokens/s':>11}{'TTFT p50 ms':>14}")
    print(f"{'llama-cpp-python direct':<28}{d_tok:>8}{d_tps:>11.1f}{d_ttft:>14.1f}")
    print(f"{'clagent daemon over HTTP':<28}{h_tok:>8}{h_tps:>11.1f}{h_ttft:>14.1f}")
    print(f"\nthroughput ratio (daemon / direct): {h_tps / d_tps:.3f}   (target >= 0.95)")
    print(f"time-to-first-token overhead: {h_ttft - d_ttft:+.1f} ms")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
