"""Continual learning, session after session: does consolidation teach new facts without losing
the earlier ones, does the newer value of a corrected fact win, and does the model stay near the
original?

    .venv/bin/python bench/continual.py [--facts FILE] [--methods recall,replace,...] [--out DIR]
                                        [--max-steps N] [--model GGUF] [--setting NAME=VALUE ...]
                                        [--sessions N] [--per-session K]

For each method (``none`` = no update at all) a fresh home is made from the embedded SmolLM2 (or
``--model``). Then, session by session: the session's statements are said in chat (logged, and
learned by the fast memory as the daemon would), the home is consolidated with that method, and
the served model is asked every question so far, with memory off (the weights alone) and with
memory on (as the daemon answers by default).

Methods: ``none``, ``replace``, ``linear``, ``task_arithmetic``, ``ties``, ``recall`` (the default:
RECALL with rehearsal of earlier memories and notes-reading examples) and ``recall-plain`` (RECALL
without rehearsal and notes reading: what consolidation did before).

Reported after every session:
  acquisition  share of this session's questions answered from the weights (memory off; the reply
               contains ``answer``)
  retention    share of the earlier sessions' questions still current (not corrected since)
               answered from the weights (null after session 1)
  served       share of all current questions answered as served (memory on)
  stale        corrected facts answered with the old value (and not the new), as served / weights
  drift        mean KL divergence of next-token distributions from the original model, over its
               own answers to the general prompts shipped in clagent/data/general_prompts.json
  notes_tokens mean prompt tokens of the notes block per request (memory on)
  seconds      wall time of the session (stating the facts and consolidating)

``--facts`` is JSON Lines, one fact per line:
  {"session": 1, "statement": "...", "question": "...", "answer": "..."}
with optional "kind" (user | work | world) and "stale": the older value a correction replaces (the
earlier fact whose answer it is no longer counts). Sessions are numbered 1, 2, ... in order. The
default file, bench/continual_facts_48.jsonl, holds 48 fictional facts in six sessions (user, work
and world facts, five corrections), each asked in other words than it was stated;
bench/continual_facts.jsonl is the earlier 12-fact file. Writes OUT/results.json and
OUT/continual.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

METHODS = ["none", "replace", "linear", "task_arithmetic", "ties", "recall", "recall-plain"]
DEFAULT_METHODS = ["none", "replace", "recall-plain", "recall"]
FIELDS = {"session": int, "statement": str, "question": str, "answer": str}
OPTIONAL = {"kind": str, "stale": str}
# Methods that are a merge method with other settings.
# recall-plain: the recipe consolidation had before anchoring (RECALL merge, 40 steps of 4, the
# parent's answers replayed with cross-entropy, no rehearsal, no notes reading).
VARIANTS = {"recall-plain": ("recall", {"rehearse_max_memories": 0, "notes_training": False,
                                        "consolidate_anchor_weight": 0.0, "consolidate_batch_size": 4,
                                        "consolidate_max_steps": 40, "consolidate_epochs": 0.0})}


class BenchError(Exception):
    pass


@dataclass
class Fact:
    session: int
    statement: str
    question: str
    answer: str
    kind: str = "user"
    stale: str | None = None  # a correction: the older value it replaces


def load_facts(path: Path) -> dict[int, list[Fact]]:
    """Sessions in order, or a BenchError naming the offending line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"cannot read the facts file {path}: {e}") from None
    sessions: dict[int, list[Fact]] = {}
    last = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise BenchError(f"{where}: expected a JSON object with {', '.join(FIELDS)}")
        missing = [f for f in FIELDS if f not in obj]
        if missing:
            raise BenchError(f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        for name, kind in FIELDS.items():
            value = obj[name]
            if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise BenchError(f"{where}: session must be a positive integer, got {value!r}")
            if kind is str and (not isinstance(value, str) or not value.strip()):
                raise BenchError(f"{where}: {name} must be a non-empty string")
        for name in OPTIONAL:
            if name in obj and (not isinstance(obj[name], str) or not obj[name].strip()):
                raise BenchError(f"{where}: {name} must be a non-empty string")
        k = obj["session"]
        if k < last:
            raise BenchError(f"{where}: session {k} comes after session {last}; list the sessions in order")
        if k > last + 1:
            raise BenchError(f"{where}: session {k} follows session {last}; number the sessions 1, 2, 3 ... "
                             f"without gaps")
        last = k
        sessions.setdefault(k, []).append(Fact(k, obj["statement"].strip(), obj["question"].strip(),
                                               obj["answer"].strip(), obj.get("kind", "user").strip(),
                                               (obj.get("stale") or "").strip() or None))
    if not sessions:
        raise BenchError(f"{path}: no facts in the file")
    return sessions


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise BenchError(f"unknown method {', '.join(unknown) or '(none given)'}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(methods))


def parse_settings(items: list[str]) -> dict:
    from clagent.config import Settings
    from clagent.errors import ClagentError

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise BenchError(f"--setting {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    try:
        Settings.load(Path(tempfile.gettempdir()) / "clagent-no-such-home", **out)
    except ClagentError as e:
        raise BenchError(str(e)) from None
    return out


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def state_facts(home, memory, facts: list[Fact], session: int) -> None:
    """Say the statements in chat: the served model replies, the exchange is logged and the fast
    memory learns from it, as in the daemon."""
    from clagent.memory.interactions import Interaction, log_interaction
    from clagent.updater.gate import greedy_answers

    served = home.registry.served()
    replies = greedy_answers(home.registry.served_path(served), [f.statement for f in facts],
                             home.settings.system_prompt, max_tokens=32)
    for i, (fact, reply) in enumerate(zip(facts, replies)):
        iid = f"chatcmpl-bench-s{session}-{i}"
        log_interaction(home.db, Interaction(
            id=iid, conversation_id=f"session-{session}", version=served.id, model=f"clagent-v{served.id}",
            messages=[{"role": "user", "content": fact.statement}], response=reply, finish_reason="stop"))
        memory.learn_from_message(fact.statement, iid)


def accuracy(facts: list[Fact], replies: list[str]) -> float:
    return sum(f.answer.lower() in r.lower() for f, r in zip(facts, replies)) / len(facts)


def current(sessions: dict[int, list[Fact]], upto: int) -> list[Fact]:
    """The facts said up to session ``upto`` that still hold: an earlier fact whose answer a later
    correction names as stale no longer counts."""
    said = [f for j in range(1, upto + 1) for f in sessions.get(j, [])]
    out = []
    for i, f in enumerate(said):
        replaced = any(g.stale and g.stale.lower() == f.answer.lower() for g in said[i + 1:])
        if not replaced:
            out.append(f)
    return out


def stale_count(facts: list[Fact], replies: list[str]) -> int:
    """Corrections answered with the old value and not the new one."""
    return sum(1 for f, r in zip(facts, replies)
               if f.stale and f.stale.lower() in r.lower() and f.answer.lower() not in r.lower())


def served_answers(path, memory, questions: list[str], system_prompt: str, max_tokens: int = 48,
                   leave_out: set[int] = frozenset()):
    """Answers with memory on, as the daemon serves them (the same recall, notes block and system
    prompt), and the notes block's tokens per request. ``leave_out``: memories whose notes are
    not given (those the weights were verified to hold)."""
    from clagent.memory.retrieve import memory_block, with_memory
    from clagent.updater import gate

    llm, fmt = gate._open(path)
    try:
        replies, note_tokens = [], []
        count = lambda text: len(llm.tokenize(text.encode(), add_bos=False, special=False))  # noqa: E731
        for q in questions:
            block = ""
            if memory is not None:
                got = memory.recall(q, count)
                block = got.block
                if leave_out and any(h.id in leave_out for h in got.used):
                    kept = [h for h in got.used if h.id not in leave_out]
                    block = memory_block([h for h in kept if h.kind != "instruction"],
                                         [h for h in kept if h.kind == "instruction"])
            messages = [{"role": "user", "content": q}]
            if system_prompt and not block:
                messages = [{"role": "system", "content": system_prompt}, *messages]
            messages = with_memory(messages, block, system_prompt)
            tokens = llm.tokenize(fmt(messages=messages).prompt.encode(), add_bos=False, special=True)
            r = llm.create_completion(prompt=tokens, max_tokens=max_tokens, temperature=0.0)
            replies.append(r["choices"][0]["text"].strip())
            note_tokens.append(count(block) if block else 0)
        return replies, note_tokens
    finally:
        llm.close()


def run_method(method: str, base_home: Path, work: Path, sessions: dict[int, list[Fact]], reference,
               general, max_steps: int | None, embedder) -> list[dict]:
    from clagent.config import Settings
    from clagent.home import Home
    from clagent.memory.manager import MemoryManager
    from clagent.updater import gate
    from clagent.updater.pipeline import consolidate

    folder = work / method
    shutil.copytree(base_home, folder)
    merge_method, extra = VARIANTS.get(method, (method, {}))
    if extra:
        Settings.load(folder, **extra).write(folder)
    home = Home.open(folder)
    memory = MemoryManager(home.db, home.settings, embedder)
    memory.load()
    rows = []
    try:
        for k, facts in sessions.items():
            say(f"[{method}] session {k}/{len(sessions)}: stating {len(facts)} facts in chat")
            t = time.monotonic()
            state_facts(home, memory, facts, k)
            weights, steps, info = None, 0, {}
            if method != "none":
                # The gate runs (its verification of every memory is what rehearsal and the notes
                # use) but does not block: the methods themselves are compared.
                out = consolidate(home, method=merge_method, max_steps=max_steps, notify_daemon=False,
                                  check_gate=True, enforce_gate=False)
                if out.status != "committed":
                    raise BenchError(f"[{method}] session {k}: consolidation did not commit: {out.message}")
                info = out.info
                weights = (out.info.get("merge") or {}).get("weights", {}).get("tuned")
                steps = out.info["train"]["steps"]
                wanted = out.info["budget"]["steps_planned"]
                if steps < wanted:
                    say(f"[{method}] session {k}: WARNING: training stopped at {steps}/{wanted} steps "
                        f"(consolidate_max_seconds); this machine is busy or slow, figures are not comparable")
            seconds = time.monotonic() - t
            say(f"[{method}] session {k}: evaluating, memory off and on")
            served = home.registry.served_path(home.registry.served())
            now = current(sessions, k)
            new = [f for f in now if f.session == k]
            earlier = [f for f in now if f.session < k]
            asked = new + earlier
            sp = home.settings.system_prompt
            replies = gate.greedy_answers(served, [f.question for f in asked], sp)
            use = memory if home.settings.memory_enabled else None
            as_served, notes = served_answers(served, use, [f.question for f in asked], sp)
            held = held_memories(home, home.registry.served().id)
            lean, lean_notes = served_answers(served, use, [f.question for f in asked], sp, leave_out=held) \
                if held else (as_served, notes)
            drift = gate.mean_kl(reference, gate.answer_logprobs(served, general, sp))
            corrections = [f for f in asked if f.stale]
            row = {"session": k,
                   "acquisition": round(accuracy(new, replies[:len(new)]), 4) if new else None,
                   "retention": round(accuracy(earlier, replies[len(new):]), 4) if earlier else None,
                   "served": round(accuracy(asked, as_served), 4),
                   "stale_served": stale_count(asked, as_served), "stale_weights": stale_count(asked, replies),
                   "corrections": len(corrections),
                   "served_lean": round(accuracy(asked, lean), 4), "stale_lean": stale_count(asked, lean),
                   "notes_tokens_lean": round(sum(lean_notes) / len(lean_notes), 1), "held_memories": len(held),
                   "gate": _gate_figures(info.get("gate")),
                   "drift": round(max(drift, 0.0), 4), "notes_tokens": round(sum(notes) / len(notes), 1),
                   "seconds": round(seconds, 1), "train_steps": steps,
                   "layer_weights": weights,  # RECALL: the new model's weight per layer
                   "rehearsal": info.get("rehearsal"), "data": info.get("data"),
                   "answers": [{"question": f.question, "expected": f.answer, "stale": f.stale, "reply": r,
                                "served": a, "served_lean": b, "session": f.session, "kind": f.kind}
                               for f, r, a, b in zip(asked, replies, as_served, lean)]}
            rows.append(row)
            say(f"[{method}] session {k}: {summary(row)}")
    finally:
        home.close()
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def held_memories(home, version_id: int) -> set[int]:
    """The memories a version's weights were verified to hold (memory off, a phrasing never trained)."""
    return {r["memory_id"] for r in home.db.query(
        "SELECT memory_id FROM memory_checks WHERE version = ? AND ok = 1", [version_id])}


def _gate_figures(g: dict | None) -> dict | None:
    if not g:
        return None
    return {k: g.get(k) for k in ("passed", "reasons", "acquisition", "retention", "retention_of", "held",
                                  "verified", "drift", "base_drift")}


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


def summary(row: dict) -> str:
    return (f"acquisition {_pct(row['acquisition'])}, retention {_pct(row['retention'])}, "
            f"served {_pct(row['served'])} (held notes left out: {_pct(row.get('served_lean'))}), "
            f"stale {row['stale_served']}/{row['stale_weights']} of {row['corrections']}, drift {row['drift']:.3f}, "
            f"notes {row['notes_tokens']:.0f} tokens ({row.get('notes_tokens_lean', 0):.0f}), {row['seconds']:.0f}s")


def table(results: dict) -> str:
    out = [f"{'method':<14} {'session':>7} {'acquisition':>11} {'retention':>9} {'served':>6} {'lean':>5} "
           f"{'stale':>7} {'drift':>6} {'notes':>5} {'lean':>5} {'seconds':>7}"]
    for method, rows in results["methods"].items():
        for r in rows:
            stale = f"{r.get('stale_served', 0)}/{r.get('stale_weights', 0)}"
            out.append(f"{method:<14} {r['session']:>7} {_pct(r['acquisition']):>11} {_pct(r['retention']):>9} "
                       f"{_pct(r.get('served')):>6} {_pct(r.get('served_lean')):>5} {stale:>7} {r['drift']:>6.3f} "
                       f"{r.get('notes_tokens', 0):>5.0f} {r.get('notes_tokens_lean', 0):>5.0f} {r['seconds']:>7.0f}")
    out.append("(served: memory on, every note; lean: the notes of memories the weights were verified to hold "
               "left out; stale: corrected facts answered with the old value, as served / from the weights; "
               "notes: prompt tokens of notes per request, all / lean)")
    return "\n".join(out)


TARGETS = [("acquisition", ">=", 0.9), ("retention", ">=", 0.8), ("served", ">=", 0.95), ("stale_served", "<=", 0),
           ("drift", "<=", 0.5), ("seconds", "<=", 600)]


def verdict(results: dict) -> str:
    """The issue's targets for the default (recall) after the last session, and recall vs replace."""
    m = results["methods"]
    if "recall" not in m:
        return ""
    rc = m["recall"][-1]
    lines = ["", f"recall (the default) after session {rc['session']}:"]
    for name, op, bound in TARGETS:
        value = max(r[name] for r in m["recall"]) if name == "seconds" else rc.get(name)
        if value is None:
            continue
        ok = value >= bound if op == ">=" else value <= bound
        shown = f"{value:.0%}" if name in ("acquisition", "retention", "served") else f"{value:g}"
        lines.append(f"  {name:<12} {shown:>7} (target {op} {bound:g}{' per session' if name == 'seconds' else ''}) "
                     f"{'met' if ok else 'NOT met'}")
    if "replace" in m:
        rp = m["replace"][-1]
        lines.append(f"  drift {rc['drift']:.3f} vs replace {rp['drift']:.3f} (target: below replace) "
                     f"{'met' if rc['drift'] < rp['drift'] else 'NOT met'}")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for method, rows in results["methods"].items():
        sessions = [r["session"] for r in rows]
        for ax, key in ((axes[0], "acquisition"), (axes[1], "retention"), (axes[2], "served")):
            pts = [(r["session"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=method)
        axes[3].plot(sessions, [r["drift"] for r in rows], marker="o", label=method)
    for ax, title in zip(axes, ["acquisition (weights, this session's facts)", "retention (weights, earlier facts)",
                                "as served (memory on, all current facts)",
                                "general drift (mean KL from the original)"]):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("session")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[:3]:
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=8)
    fig.suptitle(results.get("title", "clagent continual-learning benchmark"), fontsize=11)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def previous_results(path: Path, facts: Path, settings: dict, methods: list[str]) -> dict:
    """The methods of an earlier run with the same facts file and settings, except those run now."""
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise BenchError(f"--append: cannot read {path}: {e}") from None
    if old.get("facts") != str(facts) or old.get("settings", {}) != settings:
        raise BenchError(f"--append: {path} was made with another facts file or settings")
    return {m: rows for m, rows in old.get("methods", {}).items() if m not in methods}


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=Path, default=HERE / "continual_facts_48.jsonl")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    ap.add_argument("--sessions", type=int, default=None, help="only the first N sessions (a quick slice)")
    ap.add_argument("--per-session", type=int, default=None, help="only the first K facts of each session")
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--max-steps", type=int, default=None, help="training steps per consolidation "
                    "(default: the consolidate_max_steps setting)")
    ap.add_argument("--model", default=None, help="start from this preset (qwen2.5-coder-0.5b ...) or GGUF instead of "
                    "the embedded SmolLM2")
    ap.add_argument("--append", action="store_true",
                    help="keep the other methods already in OUT/results.json (same facts file) in the table and plot")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a clagent setting for every home, e.g. recall_temperature=0.25 (repeatable)")
    ap.add_argument("--combine", type=Path, nargs="+", metavar="DIR", default=None,
                    help="only combine the results.json of runs made apart (e.g. one method each, at once) "
                         "into OUT: table, plot, targets")
    args = ap.parse_args(argv)
    if args.combine:
        try:
            combine(args.combine, args.out)
        except BenchError as e:
            print(f"continual: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        sessions = load_facts(args.facts)
        if args.sessions:
            sessions = {k: v for k, v in sessions.items() if k <= args.sessions}
        if args.per_session:
            sessions = {k: v[: args.per_session] for k, v in sessions.items()}
        methods = parse_methods(args.methods)
        args.settings = parse_settings(args.setting)
        try:
            import matplotlib  # noqa: F401 - checked before an hour of work, not after
        except ImportError:
            raise BenchError("the plot needs matplotlib: pip install -e '.[bench]'") from None
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BenchError(f"cannot create {args.out}: {e}") from None
        run(args, sessions, methods)
    except BenchError as e:
        print(f"continual: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("continual: interrupted", file=sys.stderr)
        return 130
    return 0


def combine(folders: list[Path], out: Path) -> None:
    """One results.json, table and plot from runs of the same facts file and settings."""
    merged: dict = {}
    for folder in folders:
        try:
            part = json.loads((folder / "results.json").read_text())
        except (OSError, ValueError) as e:
            raise BenchError(f"--combine: cannot read {folder / 'results.json'}: {e}") from None
        if merged and (part.get("facts"), part.get("settings")) != (merged["facts"], merged["settings"]):
            raise BenchError(f"--combine: {folder} was made with another facts file or settings")
        if not merged:
            merged = {**part, "methods": {}, "wall_seconds": {}}
        merged["methods"].update(part.get("methods", {}))
        merged["wall_seconds"].update(part.get("wall_seconds", {}))
    order = [m for m in METHODS if m in merged["methods"]]
    merged["methods"] = {m: merged["methods"][m] for m in order}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", merged)
    plot(merged, out / "continual.png")
    print(table(merged))
    print(verdict(merged))
    print(f"\nwrote {out / 'results.json'} and {out / 'continual.png'}")


def run(args, sessions: dict[int, list[Fact]], methods: list[str]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from clagent.errors import ClagentError
    from clagent.home import Home
    from clagent.memory.embedder import Embedder
    from clagent.updater import dataset, gate

    n_facts = sum(len(f) for f in sessions.values())
    results = {"title": f"{args.facts.name}: {len(sessions)} sessions, {n_facts} facts"
                        + "".join(f", {k}={v}" for k, v in args.settings.items()),
               "facts": str(args.facts), "settings": args.settings, "methods": {}}
    if args.append:
        results["methods"] = previous_results(args.out / "results.json", args.facts, args.settings, methods)
    work = Path(tempfile.mkdtemp(prefix="clagent-continual-"))
    try:
        base = work / "base"
        if args.settings:
            from clagent.config import Settings

            base.mkdir(parents=True)
            Settings.load(base, **args.settings).write(base)
        home = Home.open(base)
        try:
            say("making the starting home" + (f" from {args.model}" if args.model else " from the embedded model"))
            v1 = home.ensure_model(args.model, verbose=False)
            original = home.registry.served_path(v1)
            sp = home.settings.system_prompt
            say("measuring the original model on the general prompts")
            prompts = dataset.general_prompts()
            general = list(zip(prompts, gate.greedy_answers(original, prompts, sp)))
            reference = gate.answer_logprobs(original, general, sp)
        except ClagentError as e:
            raise BenchError(str(e)) from None
        finally:
            home.close()
        embedder = Embedder()
        for method in methods:
            t = time.monotonic()
            try:
                results["methods"][method] = run_method(method, base, work, sessions, reference, general,
                                                        args.max_steps, embedder)
            except ClagentError as e:
                raise BenchError(f"[{method}] {e}") from None
            say(f"[{method}] done in {time.monotonic() - t:.0f}s")
            results.setdefault("wall_seconds", {})[method] = round(time.monotonic() - t, 1)
            write_json(args.out / "results.json", results)  # partial results survive an interruption
        plot(results, args.out / "continual.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    print(verdict(results))
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'continual.png'}")


if __name__ == "__main__":
    sys.exit(main())
