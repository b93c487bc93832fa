"""What a consolidation costs on this machine.

    .venv/bin/python bench/consolidate.py [--interactions 20] [--memories 5] [--earlier 0] [--max-steps N]
                                          [--model PATH|ollama:NAME[:TAG]]
        The whole pipeline on a fresh home made from the embedded SmolLM2 (or --model): N logged
        interactions and M memories, then wall time of each stage, training tokens/s, and the
        peak memory (resident set) of the import and of the consolidation process, as a table.
        With --earlier K a first consolidation absorbs K memories before (timed too): the second
        is a night with K + M memories in the store, K of them rehearsed.

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


RELATIONS = ["dog", "cat", "sister", "brother", "neighbour", "dentist", "landlord", "cousin", "niece", "nephew",
             "aunt", "uncle", "godson", "boss", "mentor", "tutor", "coach", "doctor", "plumber", "barber", "parrot",
             "horse", "tortoise", "goldfish", "hamster", "rabbit", "flatmate", "grandmother", "grandfather",
             "colleague", "accountant", "lawyer", "pharmacist", "vet", "mechanic", "gardener", "bandmate",
             "teammate", "pen pal", "stepbrother", "stepsister", "godmother", "godfather", "roommate", "optician",
             "physio", "therapist", "piano teacher", "tennis partner", "book club host"]
NAMES = ["Oriel", "Baptiste", "Kestrel", "Marguerite", "Tobiasz", "Ifeoma", "Rosalind", "Quenby", "Anwen",
         "Leopold", "Saoirse", "Thaddeus", "Zofia", "Emeric", "Philippa", "Caspian", "Ysolde", "Okonkwo"]
PLACES = ["Ravenglass", "Port Isaac", "Tarrow", "Villeneuve", "Kirkwall", "Ostend", "Marlow", "Bexhill",
          "Brennhall", "Corravin", "Halloran Bay", "Vellmora"]


def facts(n: int, start: int = 0) -> list[str]:
    """``n`` distinct facts about the user's people and animals (no two about the same thing, so
    none supersedes another)."""
    out = []
    for i in range(start, start + n):
        who = RELATIONS[i % len(RELATIONS)]
        if i >= 2 * len(RELATIONS):
            who = f"{who} number {i // (2 * len(RELATIONS)) + 1}"
        out.append(f"My {who} is called {NAMES[i % len(NAMES)]}." if (i // len(RELATIONS)) % 2 == 0 else
                   f"My {who} lives in {PLACES[i % len(PLACES)]}.")
    return out


def _run(home_path: Path, label: str, max_steps: int | None) -> None:
    """One consolidation in its own process, as the daemon runs it: the peak memory is its alone."""
    import json
    import subprocess

    cmd = [sys.executable, "-m", "clagent", "consolidate", "--home", str(home_path), "--json"]
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        t = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own figures, not every child's so far
        proc.returncode = os.waitstatus_to_exitcode(status)
        total = time.monotonic() - t
        stdout.seek(0), stderr.seek(0)
        text, err = stdout.read(), stderr.read()
    peak, cpu = usage.ru_maxrss / 2**20, usage.ru_utime + usage.ru_stime  # KiB -> GiB
    if proc.returncode not in (0, 2):
        print(err[-3000:])
        return
    out = json.loads(text)
    print(f"\n{label}: {out['message']} (load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)")
    if out["status"] not in ("committed", "gate_failed"):
        return
    info = out["info"]
    print(f"\n{'stage':<10} {'seconds':>8}")
    for stage, sec in info["seconds"].items():
        print(f"{stage:<10} {sec:>8.1f}")
    print(f"{'wall':<10} {total:>8.1f}")
    print(f"{'CPU time':<10} {cpu:>8.1f}  (user + system, all threads: comparable across machine loads)")
    tr, d, reh = info["train"], info["data"], info["rehearsal"]
    print(f"{d['memories']} new memories ({info['left_out']['memories']} wait), {reh['rehearsed']} of "
          f"{reh['candidates']} earlier rehearsed -> {d['examples']} examples; {tr['steps']} steps on {tr['device']} "
          f"({tr.get('threads')} threads): {tr['tokens']} tokens, {tr['tokens_per_second']:.0f} tokens/s, "
          f"{tr['seconds'] / max(1, tr['steps']):.1f} s/step")
    print(f"peak memory of the consolidation: {peak:.1f} GiB")
    g = info["gate"]
    kl = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    print(f"gate: {'passed' if g['passed'] else 'failed'}, acquisition {g['acquisition']}, retention "
          f"{g['retention']}, held {g['held']} of {g['verified']}, drift {kl(g['drift'])}, from base "
          f"{kl(g['base_drift'])}")


def _add_memories(home_path: Path, texts: list[str]) -> None:
    from clagent.home import Home
    from clagent.memory.manager import MemoryManager

    home = Home.open(home_path)
    mm = MemoryManager(home.db, home.settings)
    mm.load()
    for f in texts:
        mm.add(f)
    home.close()


def pipeline(n_interactions: int, n_memories: int, n_earlier: int, max_steps: int | None,
             model: str | None = None) -> None:
    import resource

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from clagent.home import Home
    from clagent.memory.interactions import Interaction, log_interaction

    with tempfile.TemporaryDirectory(prefix="clagent-bench-") as tmp:
        path = Path(tmp) / "home"
        home = Home.open(path)
        t = time.monotonic()
        version = home.ensure_model(model, verbose=False)
        import_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        info = version.info
        print(f"home made from {info['source']} ({info.get('arch', 'llama')}, {info.get('parameters', 0) / 1e6:.0f}M "
              f"parameters, {info.get('source_quant', '?')}) in {time.monotonic() - t:.0f}s, "
              f"peak memory {import_peak:.1f} GiB", flush=True)
        home.close()
        if n_earlier:
            _add_memories(path, facts(n_earlier))
            print(f"first consolidation: {n_earlier} memories (it also keeps the base's anchors and drift "
                  f"reference, once)", flush=True)
            _run(path, "first consolidation", max_steps)
        home = Home.open(path)
        for i in range(n_interactions):
            log_interaction(home.db, Interaction(
                id=f"chatcmpl-bench-{i}", conversation_id=f"c{i // 5}", version=1, model="clagent-v1",
                messages=[{"role": "user", "content": f"Tell me one thing about the number {i}."}],
                response=f"The number {i} is {'even' if i % 2 == 0 else 'odd'}.", finish_reason="stop"))
        home.close()
        _add_memories(path, facts(n_memories, n_earlier))
        print(f"\n{'next' if n_earlier else 'a'} consolidation: {n_interactions} interactions, {n_memories} new "
              f"memories, {n_earlier} earlier ones", flush=True)
        _run(path, "consolidation", max_steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=96)
    ap.add_argument("--interactions", type=int, default=20)
    ap.add_argument("--memories", type=int, default=5)
    ap.add_argument("--earlier", type=int, default=0, help="memories absorbed by a first consolidation")
    ap.add_argument("--max-steps", type=int, default=None, help="default: the consolidate_max_steps setting")
    ap.add_argument("--model", default=None, help="GGUF path or ollama:NAME[:TAG] (default: the embedded model)")
    args = ap.parse_args()
    if args.train_only:
        train_only(args.devices.split(","), args.steps, args.batch, args.length)
    else:
        pipeline(args.interactions, args.memories, args.earlier, args.max_steps, args.model)


if __name__ == "__main__":
    main()
