"""What a consolidation costs on this machine.

    .venv/bin/python bench/consolidate.py [--interactions 20] [--memories 5] [--max-steps 40]
                                          [--model PATH|ollama:NAME[:TAG]]
        The whole pipeline on a fresh home made from the embedded SmolLM2 (or --model): N logged
        interactions and M memories, then wall time of each stage, training tokens/s, and the
        peak memory (resident set) of the import and of the consolidation process, as a table.

    python bench/consolidate.py --train-only [--devices cpu,cuda] [--steps 20]
        Only the LoRA training step (clagent.updater.train.train_lora), on SmolLM2-135M's shapes
        with random weights and random token sequences of a typical length, on each device: for
        comparing CPU and GPU throughput where the embedded model package is not installed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMOLLM2_135M = dict(n_vocab=49152, n_embd=576, n_ff=1536, n_layer=30, n_head=9, n_head_kv=3, n_ctx_train=8192,
                    rope_theta=100000.0, rms_eps=1e-5, tied_embeddings=True)


def train_only(devices: list[str], steps: int, batch: int, length: int) -> None:
    import torch

    from clagent.models.gguf_io import LlamaSpec
    from clagent.updater.dataset import Tokenized
    from clagent.updater.train import TrainConfig, train_lora

    spec = LlamaSpec(**SMOLLM2_135M)
    torch.manual_seed(0)
    from transformers import LlamaForCausalLM

    print("making a SmolLM2-135M-shaped model with random weights ...", flush=True)
    weights = {k: v.numpy() for k, v in LlamaForCausalLM(spec.hf_config()).state_dict().items()}
    rng = random.Random(0)
    data = []
    for _ in range(64):
        n = rng.randint(length // 2, length)
        ids = [rng.randrange(spec.n_vocab) for _ in range(n)]
        data.append(Tokenized(ids, [-100] * (n // 2) + ids[n // 2:]))
    rows = []
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: not available here", flush=True)
            continue
        cfg = TrainConfig(max_steps=steps, max_seconds=1e9, batch_size=batch, device=device)
        warm = TrainConfig(max_steps=2, max_seconds=1e9, batch_size=batch, device=device)
        train_lora(spec, weights, data, warm)  # first use: kernels, allocator
        print(f"training {steps} steps on {device} ...", flush=True)
        r = train_lora(spec, weights, data, cfg)
        name = torch.cuda.get_device_name() if device == "cuda" else f"{os.cpu_count()} CPU cores"
        rows.append((device, name, r.steps, r.tokens, r.seconds, r.tokens_per_second))
        del r
    print()
    print(f"{'device':<7} {'hardware':<28} {'steps':>6} {'tokens':>8} {'seconds':>8} {'tokens/s':>10}")
    for device, name, st, tok, sec, tps in rows:
        print(f"{device:<7} {name[:28]:<28} {st:>6} {tok:>8} {sec:>8.1f} {tps:>10.0f}")
    if len(rows) == 2:
        print(f"\n{rows[1][0]} / {rows[0][0]} training throughput: {rows[1][5] / rows[0][5]:.1f}x")
    print(f"(LoRA r=16 on all 7 projections, batch {batch}, sequences of {length // 2}-{length} tokens)")


def pipeline(n_interactions: int, n_memories: int, max_steps: int, model: str | None = None) -> None:
    import json
    import resource
    import subprocess

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from clagent.home import Home
    from clagent.memory.interactions import Interaction, log_interaction
    from clagent.memory.manager import MemoryManager

    facts = ["My dog is called Biscuit", "I live in Lisbon", "I work as a nurse", "My daughter is called Ana",
             "I drive a red Fiat", "My favorite color is blue", "I play the cello", "I am allergic to peanuts",
             "My cat is called Luna", "I was born in Madrid"]
    with tempfile.TemporaryDirectory(prefix="clagent-bench-") as tmp:
        home = Home.open(Path(tmp) / "home")
        t = time.monotonic()
        version = home.ensure_model(model, verbose=False)
        import_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        info = version.info
        print(f"home made from {info['source']} ({info.get('arch', 'llama')}, {info.get('parameters', 0) / 1e6:.0f}M "
              f"parameters, {info.get('source_quant', '?')}) in {time.monotonic() - t:.0f}s, "
              f"peak memory {import_peak:.1f} GiB", flush=True)
        for i in range(n_interactions):
            log_interaction(home.db, Interaction(
                id=f"chatcmpl-bench-{i}", conversation_id=f"c{i // 5}", version=1, model="clagent-v1",
                messages=[{"role": "user", "content": f"Tell me one thing about the number {i}."}],
                response=f"The number {i} is {'even' if i % 2 == 0 else 'odd'}.", finish_reason="stop"))
        mm = MemoryManager(home.db, home.settings)
        mm.load()
        for f in facts[:n_memories]:
            mm.add(f)
        home.close()
        # its own process, as the daemon runs it: the peak memory is the consolidation's alone
        t = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "clagent", "consolidate", "--home", str(Path(tmp) / "home"),
                               "--max-steps", str(max_steps), "--json"], capture_output=True, text=True)
        total = time.monotonic() - t
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak, cpu = usage.ru_maxrss / 2**20, usage.ru_utime + usage.ru_stime
        if proc.returncode not in (0, 2):
            print(proc.stderr[-3000:])
            return
        out = json.loads(proc.stdout)
        print()
        print(out["message"])
        if out["status"] not in ("committed", "gate_failed"):
            return
        info = out["info"]
        print(f"\n{'stage':<10} {'seconds':>8}")
        for stage, sec in info["seconds"].items():
            print(f"{stage:<10} {sec:>8.1f}")
        print(f"{'wall':<10} {total:>8.1f}")
        print(f"{'CPU time':<10} {cpu:>8.1f}  (user + system, all threads: comparable across machine loads)")
        tr = info["train"]
        print(f"\n{n_interactions} interactions + {n_memories} memories -> {info['data']['examples']} examples; "
              f"{tr['steps']} steps on {tr['device']}: {tr['tokens']} tokens, {tr['tokens_per_second']:.0f} tokens/s, "
              f"{tr['seconds'] / max(1, tr['steps']):.1f} s/step")
        print(f"peak memory: import {import_peak:.1f} GiB, consolidation {peak:.1f} GiB")
        g = info["gate"]
        print(f"gate: {'passed' if g['passed'] else 'failed'}, acquisition {g['acquisition']}, drift {g['drift']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=96)
    ap.add_argument("--interactions", type=int, default=20)
    ap.add_argument("--memories", type=int, default=5)
    ap.add_argument("--max-steps", type=int, default=40)
    ap.add_argument("--model", default=None, help="GGUF path or ollama:NAME[:TAG] (default: the embedded model)")
    args = ap.parse_args()
    if args.train_only:
        train_only(args.devices.split(","), args.steps, args.batch, args.length)
    else:
        pipeline(args.interactions, args.memories, args.max_steps, args.model)


if __name__ == "__main__":
    main()
