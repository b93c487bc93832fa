"""The default model and the presets side by side: what a person gets from each.

    .venv/bin/python bench/models.py [--models default,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b]
                                     [--data tests/data/dev] [--limit N] [--out bench/results/models.json]
                                     [--consolidate] [--memories 50] [--max-steps 40]
                                     [--continual] [--sessions 3] [--per-session K]
                                     [--wait-memory 1800]

For each model, on a fresh home made from it (the embedded SmolLM2 for ``default``, a preset or a
GGUF path otherwise), greedy decoding, the served quantization (Q8_0):

- **memory questions**: three stores, each one person's, in its own copy of the home: the statements
  and corrections of ``scenario.json``, the user's turns of ``conversation.json`` (with their dates),
  the memories of ``unrelated.json``, learned by the fast memory as the daemon learns them. Every
  question of the first two is asked with memory on (the daemon's recall and notes block) and off.
  Right: the answer holds an expected value and no stale one.
- **note reading**: each of those questions with the note holding its answer and two other notes of
  the same store, in the daemon's notes block: is the answer taken from the note?
- **general questions** (``unrelated.json``, asked with its person's memories stored): right as
  served and with memory off, and how many were given a note.
- **speed with notes**: time to the first token and generation tokens/s of the memory-on answers
  (streamed from llama.cpp, prompt with its notes).
- ``--consolidate``: ``--memories`` memories (the scenario's statements and the unrelated set's) and
  one consolidation in its own process, as the daemon runs it: wall and CPU time, each stage's
  seconds and peak resident memory (sampled from /proc), training s/step.
- ``--continual``: ``bench/continual.py --model M --methods recall --sessions N [--per-session K]``:
  acquisition and retention after each session with the default method.

Before a model is loaded the script waits (up to ``--wait-memory`` seconds) until the machine's
available memory exceeds what that stage needs plus 3 GiB, and skips the stage (saying so) if it
never does: other work on the machine is never pushed into the out-of-memory killer. Results are
written after every model, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_MODELS = "default,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b"
GiB = 2**30


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------------
def data_files(folder: Path) -> dict[str, Path]:
    """tests/data/dev/{scenario,conversation,unrelated}.json, or the older names in tests/data."""
    names = {"scenario": ["scenario.json", "memory_scenario.json"],
             "conversation": ["conversation.json", "memory_conversation.json"],
             "unrelated": ["unrelated.json", "memory_unrelated.json"]}
    out = {}
    for key, options in names.items():
        found = next((folder / n for n in options if (folder / n).is_file()), None) or \
            next((ROOT / "tests" / "data" / n for n in options if (ROOT / "tests" / "data" / n).is_file()), None)
        if found is None:
            raise SystemExit(f"models: no {key} data in {folder} (expected {' or '.join(options)})")
        out[key] = found
    return out


def load_data(files: dict[str, Path]) -> dict:
    """Three stores, each one person's: the scenario's, the conversation's and the unrelated set's
    (whose questions are general ones, asked with that person's memories stored)."""
    scenario = json.loads(files["scenario"].read_text())
    conversation = json.loads(files["conversation"].read_text())
    unrelated = json.loads(files["unrelated"].read_text())
    turns = [(t["content"], date.fromisoformat(s["date"])) for s in conversation["sessions"]
             for t in s["turns"] if t["role"] == "user"]
    return {
        "stores": {
            "scenario": {"said": [(x, None) for x in scenario["statements"] + scenario["corrections"]],
                         "questions": scenario["questions"], "kind": "memory"},
            "conversation": {"said": turns, "questions": conversation["questions"], "kind": "memory"},
            "unrelated": {"said": [(x, None) for x in unrelated["memories"]], "questions": unrelated["questions"],
                          "kind": "general"},
        },
        "consolidation_memories": scenario["statements"] + unrelated["memories"],
    }


def right(answer: str, q: dict) -> bool:
    low = answer.lower()
    return any(a.lower() in low for a in q["answers"]) and \
        not any(s.lower() in low and not any(a.lower() in s.lower() for a in q["answers"]) for s in q.get("stale", []))


# -- memory -----------------------------------------------------------------------------------------
def available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_for_memory(need: float, what: str, limit: float) -> bool:
    """Wait until the machine has ``need`` bytes available plus 3 GiB; False if it never did."""
    deadline = time.monotonic() + limit
    while True:
        free = available()
        if free >= need + 3 * GiB:
            return True
        if time.monotonic() > deadline:
            say(f"  {what}: skipped: {free / GiB:.1f} GiB available, {need / GiB + 3:.1f} GiB wanted")
            return False
        say(f"  {what}: waiting for memory ({free / GiB:.1f} GiB available, {need / GiB + 3:.1f} GiB wanted)")
        time.sleep(30)


def model_bytes(model: str | None) -> tuple[int, int]:
    """(GGUF file size, parameter count) of the model a run starts from."""
    from clagent.models import gguf_io, sources

    src = sources.resolve(model)
    return src.path.stat().st_size, gguf_io.describe(src.path).parameters


# -- serving measurements ---------------------------------------------------------------------------
def stream(llm, tokens: list[int], max_tokens: int) -> tuple[str, float, int, float]:
    """(text, seconds to the first token, tokens generated, generation tokens/s after the first)."""
    started = time.perf_counter()
    first, n, parts = None, 0, []
    for chunk in llm.create_completion(prompt=tokens, max_tokens=max_tokens, temperature=0.0, stream=True):
        now = time.perf_counter()
        if first is None:
            first = now
        parts.append(chunk["choices"][0]["text"])
        n += 1
    end = time.perf_counter()
    rate = (n - 1) / (end - first) if first is not None and n > 1 and end > first else 0.0
    return "".join(parts).strip(), (first or end) - started, n, rate


def serving(served: dict[str, Path], work: Path, data: dict, limit: int | None, max_tokens: int) -> dict:
    """Each store learned once (the fast memory does not depend on the model), in its own home;
    then every model answers its questions with that store's memories."""
    from clagent.config import Settings
    from clagent.home import Home
    from clagent.memory.embedder import Embedder
    from clagent.memory.manager import MemoryManager

    out = {name: {"memory": [], "notes": [], "general": []} for name in served}
    embedder = Embedder()
    for store_name, store in data["stores"].items():
        folder = work / store_name
        folder.mkdir(parents=True)
        Settings().write(folder)
        home = Home.open(folder)  # a store without a model: only its database is used
        try:
            mm = MemoryManager(home.db, home.settings, embedder)
            mm.load()
            t = time.monotonic()
            for text, day in store["said"]:
                mm.learn_from_message(text, None, said_on=day)
            say(f"  {store_name}: learned {len(store['said'])} messages in {time.monotonic() - t:.0f}s")
            for name, path in served.items():
                if wait_for_memory(2 * path.stat().st_size + GiB, f"{name}: serving", 1800):
                    ask_store(path, home, mm, store_name, store, limit, max_tokens, out[name])
                    say(f"  {store_name}: {name} done")
        finally:
            home.close()
    return out


def ask_store(path: Path, home, mm, name: str, store: dict, limit: int | None, max_tokens: int, out: dict) -> None:
    from clagent.memory.retrieve import Hit, memory_block, with_memory
    from clagent.updater import gate

    s = home.settings
    llm, fmt = gate._open(path)
    count = lambda text: len(llm.tokenize(text.encode(), add_bos=False, special=False))  # noqa: E731

    def prompt(question: str, block) -> list[int]:
        messages = [{"role": "user", "content": question}]
        if not block:
            messages = [{"role": "system", "content": s.system_prompt}, *messages]
        messages = with_memory(messages, block, s.system_prompt)
        return llm.tokenize(fmt(messages=messages).prompt.encode(), add_bos=False, special=True)

    questions = store["questions"][:limit] if limit else store["questions"]
    pool = [r["text"] for r in home.db.query("SELECT text FROM memories WHERE status = 'active'")]
    rng = random.Random(0)
    started = time.monotonic()
    try:
        for n, q in enumerate(questions, 1):
            block = mm.recall(q["question"], count).block
            on, ttft, ntok, rate = stream(llm, prompt(q["question"], block), max_tokens)
            off = stream(llm, prompt(q["question"], ""), max_tokens)[0]
            row = {"store": name, "question": q["question"], "on": on, "off": off, "right_on": right(on, q),
                   "right_off": right(off, q), "notes_tokens": count(block), "ttft": round(ttft, 3),
                   "tokens": ntok, "tokens_per_second": round(rate, 1)}
            if store["kind"] == "general":
                out["general"].append(dict(row, given_notes=bool(block)))
            else:
                out["memory"].append(row)
                holding = [x for x in pool if any(a.lower() in x.lower() for a in q["answers"])
                           and not any(st.lower() in x.lower() for st in q.get("stale", []))]
                if holding:
                    chosen = [holding[-1], *rng.sample([x for x in pool if x not in holding], 2)]
                    rng.shuffle(chosen)
                    nb = memory_block([Hit(i, "fact", x, 1.0) for i, x in enumerate(chosen)], [])
                    answer = stream(llm, prompt(q["question"], nb), max_tokens)[0]
                    out["notes"].append({"store": name, "question": q["question"], "note": holding[-1],
                                         "answer": answer, "right": right(answer, q)})
            if n % 10 == 0:
                say(f"  {name}: {n}/{len(questions)} questions, {time.monotonic() - started:.0f}s")
    finally:
        llm.close()


def summarize_serving(r: dict) -> dict:
    mem, notes, gen = r["memory"], r["notes"], r["general"]
    with_notes = [x for x in mem if x["notes_tokens"]]
    timed = [x for x in mem + gen if x["tokens"] > 4]
    pct = lambda rows, key: round(sum(x[key] for x in rows) / len(rows), 3) if rows else None  # noqa: E731
    return {
        "memory_questions": len(mem), "memory_on": pct(mem, "right_on"), "memory_off": pct(mem, "right_off"),
        "note_reading_cases": len(notes), "note_reading": pct(notes, "right"),
        "general_questions": len(gen), "general_on": pct(gen, "right_on"), "general_off": pct(gen, "right_off"),
        "general_given_notes": pct(gen, "given_notes"),
        "ttft_with_notes_p50": round(statistics.median(x["ttft"] for x in with_notes), 3) if with_notes else None,
        "notes_tokens_mean": round(statistics.mean(x["notes_tokens"] for x in with_notes), 1) if with_notes else None,
        "tokens_per_second": round(statistics.median(x["tokens_per_second"] for x in timed), 1) if timed else None,
        "load_average": round(os.getloadavg()[0], 1),
    }


# -- consolidation ----------------------------------------------------------------------------------
def consolidation(home_path: Path, memories: list[str], max_steps: int) -> dict:
    """One consolidation of ``memories`` in its own process; each stage's seconds and peak RSS."""
    from clagent.home import Home
    from clagent.memory.manager import MemoryManager

    home = Home.open(home_path)
    mm = MemoryManager(home.db, home.settings)
    mm.load()
    for m in memories:
        mm.add(m)
    stored = next(home.db.query("SELECT COUNT(*) AS n FROM memories WHERE status = 'active'"))["n"]
    home.close()
    cmd = [sys.executable, "-m", "clagent", "consolidate", "--home", str(home_path), "--max-steps", str(max_steps)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    stage, peaks, lines = "start", {}, []
    lock = threading.Lock()

    def sample():
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                rss = next(int(x.split()[1]) * 1024 for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
            except (OSError, StopIteration):
                break
            with lock:
                peaks[stage] = max(peaks.get(stage, 0), rss)
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith("consolidate: "):
            with lock:
                stage = line[len("consolidate: "):].split(" (")[0].split(",")[0][:48]
            say(f"    [{time.monotonic() - t0:6.0f}s] {line.rstrip()}")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.join(1)
    wall = time.monotonic() - t0
    home = Home.open(home_path)
    from clagent.updater.pipeline import last_run

    last = last_run(home) or {}
    home.close()
    train = last.get("train") or {}
    return {"memories_stored": stored, "exit": proc.returncode, "outcome": last.get("outcome"),
            "wall_seconds": round(wall, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_gib": round(usage.ru_maxrss * 1024 / GiB, 2),
            "stage_peak_gib": {k: round(v / GiB, 2) for k, v in peaks.items()},
            "stage_seconds": last.get("seconds"), "steps": train.get("steps"),
            "seconds_per_step": round(train["seconds"] / train["steps"], 1) if train.get("steps") else None,
            "tokens_per_second": train.get("tokens_per_second"), "examples": (last.get("data") or {}).get("examples"),
            "gate": {k: (last.get("gate") or {}).get(k) for k in ("passed", "acquisition", "drift", "verified", "held")},
            "log_tail": lines[-5:] if proc.returncode not in (0, 2) else []}


def continual(model: str | None, sessions: int, per_session: int | None, max_steps: int, out: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "continual.py"), "--methods", "recall", "--sessions", str(sessions),
           "--out", str(out), "--max-steps", str(max_steps)]
    if model:
        cmd += ["--model", model]
    if per_session:
        cmd += ["--per-session", str(per_session)]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1:] or ["?"], "seconds": round(time.monotonic() - t)}
    rows = json.loads((out / "results.json").read_text())["methods"]["recall"]
    return {"sessions": [{k: r.get(k) for k in ("session", "acquisition", "retention", "served", "drift", "seconds")}
                         for r in rows], "per_session": per_session, "max_steps": max_steps,
            "seconds": round(time.monotonic() - t)}


# -- main -------------------------------------------------------------------------------------------
def make_home(name: str, work: Path, args, results: dict) -> Path | None:
    """A fresh home from the model: its folder, or None when there was not memory for it."""
    from clagent.home import Home

    model = None if name == "default" else name
    size, params = model_bytes(model)
    row = results["models"].setdefault(name, {})
    row.update({"file_bytes": size, "parameters": params})
    if not wait_for_memory(1.5 * GiB, f"{name}: import", args.wait_memory):
        return None
    t = time.monotonic()
    h = Home.open(work / name / "pristine")
    h.ensure_model(model, verbose=False)
    h.close()
    row["import_seconds"] = round(time.monotonic() - t, 1)
    say(f"{name}: home made in {row['import_seconds']}s ({params / 1e6:.0f}M parameters)")
    return work / name / "pristine"


def training(name: str, pristine: Path, work: Path, args, data: dict, results: dict) -> None:
    from clagent.config import Settings

    model = None if name == "default" else name
    row = results["models"][name]
    need = 2.3 * 4 * row["parameters"] + 2 * GiB  # float32 base + trained matrices + activations + llama.cpp
    if args.consolidate and wait_for_memory(need, f"{name}: consolidation", args.wait_memory):
        home = work / name / "consolidate"
        shutil.copytree(pristine, home)
        Settings.load(home, consolidate_max_seconds=args.max_seconds).write(home)
        say(f"{name}: consolidating {args.memories} memories ({args.max_steps} steps at most)")
        row["consolidation"] = consolidation(home, data["consolidation_memories"][: args.memories], args.max_steps)
        say(f"{name}: {json.dumps(row['consolidation'])}")
        write(args.out, results)
    if args.continual and wait_for_memory(need, f"{name}: continual", args.wait_memory):
        say(f"{name}: bench/continual.py, {args.sessions} sessions")
        row["continual"] = continual(model, args.sessions, args.per_session, args.max_steps, work / name / "continual")
        say(f"{name}: {json.dumps(row['continual'])}")
        write(args.out, results)


def write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


def table(results: dict) -> str:
    names = list(results["models"])
    rows = [("parameters", lambda r: f"{r['parameters'] / 1e6:.0f}M"),
            ("file", lambda r: f"{r['file_bytes'] / 1e6:.0f} MB")]
    pct = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
    s = lambda r: r.get("serving") or {}  # noqa: E731
    c = lambda r: r.get("consolidation") or {}  # noqa: E731
    rows += [("memory questions, memory on", lambda r: pct(s(r).get("memory_on"))),
             ("memory questions, memory off", lambda r: pct(s(r).get("memory_off"))),
             ("note reading (right note + 2)", lambda r: pct(s(r).get("note_reading"))),
             ("general questions, as served", lambda r: pct(s(r).get("general_on"))),
             ("general questions given notes", lambda r: pct(s(r).get("general_given_notes"))),
             ("generation tokens/s", lambda r: str(s(r).get("tokens_per_second", "-"))),
             ("first token with notes, p50", lambda r: f"{s(r)['ttft_with_notes_p50']:.2f} s"
              if s(r).get("ttft_with_notes_p50") is not None else "-"),
             ("consolidation wall / CPU", lambda r: f"{c(r)['wall_seconds']:.0f} / {c(r)['cpu_seconds']:.0f} s"
              if c(r).get("wall_seconds") else "-"),
             ("consolidation s/step", lambda r: str(c(r).get("seconds_per_step") or "-")),
             ("consolidation peak memory", lambda r: f"{c(r)['peak_rss_gib']:.1f} GiB" if c(r).get("peak_rss_gib")
              else "-")]
    width = max(len(n) for n in names) + 2
    out = [f"{'':<32}" + "".join(f"{n:>{width}}" for n in names)]
    for label, fn in rows:
        cells = []
        for n in names:
            try:
                cells.append(fn(results["models"][n]))
            except (KeyError, TypeError):
                cells.append("-")
        out.append(f"{label:<32}" + "".join(f"{x:>{width}}" for x in cells))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated: default, preset names, GGUF paths")
    ap.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "dev")
    ap.add_argument("--limit", type=int, default=None, help="only the first N memory and N general questions")
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--skip-serving", action="store_true", help="only the consolidation / continual parts")
    ap.add_argument("--consolidate", action="store_true")
    ap.add_argument("--memories", type=int, default=50)
    ap.add_argument("--max-steps", type=int, default=40)
    ap.add_argument("--max-seconds", type=float, default=7200, help="consolidate_max_seconds for the run")
    ap.add_argument("--continual", action="store_true")
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--per-session", type=int, default=None)
    ap.add_argument("--wait-memory", type=float, default=1800, help="seconds to wait for free memory per stage")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "models.json")
    ap.add_argument("--append", action="store_true", help="keep other models' results already in --out")
    args = ap.parse_args(argv)
    files = data_files(args.data)
    data = load_data(files)
    results = json.loads(args.out.read_text()) if args.append and args.out.is_file() else {"models": {}}
    results["data"] = {k: str(v.relative_to(ROOT) if v.is_relative_to(ROOT) else v) for k, v in files.items()}
    results["machine"] = f"{os.cpu_count()} CPU cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GiB:.0f} GiB"
    work = Path(tempfile.mkdtemp(prefix="clagent-models-"))
    try:
        homes = {}
        for name in [n.strip() for n in args.models.split(",")]:
            homes[name] = make_home(name, work, args, results)
        homes = {k: v for k, v in homes.items() if v is not None}
        if not args.skip_serving:
            from clagent.home import Home

            served = {}
            for name, folder in homes.items():
                h = Home.open(folder, create=False)
                served[name] = h.registry.served_path(h.registry.served())
                h.close()
            raw = serving(served, work / "stores", data, args.limit, args.max_tokens)
            for name, r in raw.items():
                results["models"][name]["serving"] = summarize_serving(r)
                results.setdefault("answers", {})[name] = r
                say(f"{name}: {json.dumps(results['models'][name]['serving'])}")
            write(args.out, results)
        for name, folder in homes.items():
            training(name, folder, work, args, data, results)
        write(args.out, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
