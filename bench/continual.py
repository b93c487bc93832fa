"""Continual learning, session after session: does a merge method teach new facts without losing
the earlier ones and without drifting from the original model?

    .venv/bin/python bench/continual.py [--facts FILE] [--methods recall,replace,...] [--out DIR]
                                        [--max-steps N] [--model GGUF] [--setting NAME=VALUE ...]

For each method (``none`` = no update at all) a fresh home is made from the embedded SmolLM2 (or
``--model``). Then, session by session: the session's statements are said in chat (logged, and
learned by the fast memory as the daemon would), the home is consolidated with that method, and
the served model is asked every question so far with memory switched off.

Reported after every session:
  acquisition  share of this session's questions answered (the reply contains ``answer``)
  retention    share of the earlier sessions' questions answered (null after session 1)
  drift        mean KL divergence of next-token distributions from the original model, over its
               own answers to the general prompts shipped in clagent/data/general_prompts.json
  seconds      wall time of the session (stating the facts and consolidating)

``--facts`` is JSON Lines, one fact per line:
  {"session": 1, "statement": "...", "question": "...", "answer": "..."}
sessions numbered 1, 2, ... in order. The default file, bench/continual_facts.jsonl, holds
fictional facts in three sessions. Writes OUT/results.json and OUT/continual.png.
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

METHODS = ["none", "replace", "linear", "task_arithmetic", "ties", "recall"]
FIELDS = {"session": int, "statement": str, "question": str, "answer": str}


class BenchError(Exception):
    pass


@dataclass
class Fact:
    session: int
    statement: str
    question: str
    answer: str


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
        k = obj["session"]
        if k < last:
            raise BenchError(f"{where}: session {k} comes after session {last}; list the sessions in order")
        if k > last + 1:
            raise BenchError(f"{where}: session {k} follows session {last}; number the sessions 1, 2, 3 ... "
                             f"without gaps")
        last = k
        sessions.setdefault(k, []).append(Fact(k, obj["statement"].strip(), obj["question"].strip(),
                                               obj["answer"].strip()))
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


def run_method(method: str, base_home: Path, work: Path, sessions: dict[int, list[Fact]], reference,
               general, max_steps: int | None, embedder) -> list[dict]:
    from clagent.home import Home
    from clagent.memory.manager import MemoryManager
    from clagent.updater import gate
    from clagent.updater.pipeline import consolidate

    folder = work / method
    shutil.copytree(base_home, folder)
    home = Home.open(folder)
    memory = MemoryManager(home.db, home.settings, embedder)
    memory.load()
    rows = []
    try:
        for k, facts in sessions.items():
            say(f"[{method}] session {k}/{len(sessions)}: stating {len(facts)} facts in chat")
            t = time.monotonic()
            state_facts(home, memory, facts, k)
            weights, steps = None, 0
            if method != "none":
                out = consolidate(home, method=method, max_steps=max_steps, notify_daemon=False, check_gate=False)
                if out.status != "committed":
                    raise BenchError(f"[{method}] session {k}: consolidation did not commit: {out.message}")
                weights = (out.info.get("merge") or {}).get("weights", {}).get("tuned")
                steps = out.info["train"]["steps"]
                wanted = max_steps or home.settings.consolidate_max_steps
                if steps < wanted:
                    say(f"[{method}] session {k}: WARNING: training stopped at {steps}/{wanted} steps "
                        f"(consolidate_max_seconds); this machine is busy or slow, figures are not comparable")
            seconds = time.monotonic() - t
            say(f"[{method}] session {k}: evaluating with memory off")
            served = home.registry.served_path(home.registry.served())
            earlier = [f for j in range(1, k) for f in sessions[j]]
            replies = gate.greedy_answers(served, [f.question for f in facts + earlier], home.settings.system_prompt)
            drift = gate.mean_kl(reference, gate.answer_logprobs(served, general, home.settings.system_prompt))
            row = {"session": k, "acquisition": round(accuracy(facts, replies[:len(facts)]), 4),
                   "retention": round(accuracy(earlier, replies[len(facts):]), 4) if earlier else None,
                   "drift": round(max(drift, 0.0), 4), "seconds": round(seconds, 1),
                   "train_steps": steps, "layer_weights": weights,  # RECALL: the new model's weight per layer
                   "answers": [{"question": f.question, "expected": f.answer, "reply": r, "session": f.session}
                               for f, r in zip(facts + earlier, replies)]}
            rows.append(row)
            ret = "-" if row["retention"] is None else f"{row['retention']:.0%}"
            say(f"[{method}] session {k}: acquisition {row['acquisition']:.0%}, retention {ret}, "
                f"drift {row['drift']:.3f}, {seconds:.0f}s")
    finally:
        home.close()
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def table(results: dict) -> str:
    out = [f"{'method':<16} {'session':>7} {'acquisition':>12} {'retention':>10} {'drift':>7} {'seconds':>8}"]
    for method, rows in results["methods"].items():
        for r in rows:
            ret = "-" if r["retention"] is None else f"{r['retention']:.0%}"
            out.append(f"{method:<16} {r['session']:>7} {r['acquisition']:>12.0%} {ret:>10} {r['drift']:>7.3f} "
                       f"{r['seconds']:>8.0f}")
    return "\n".join(out)


def verdict(results: dict) -> str:
    """The issue's targets, after the last session: RECALL vs replace."""
    m = results["methods"]
    if "recall" not in m or "replace" not in m:
        return ""
    rc, rp = m["recall"][-1], m["replace"][-1]
    lines = ["", f"after session {rc['session']}, recall vs replace:"]
    if rc["retention"] is not None:
        d = (rc["retention"] - rp["retention"]) * 100
        lines.append(f"  retention   {rc['retention']:.0%} vs {rp['retention']:.0%}: {d:+.0f} points "
                     f"(target: at least +15) {'met' if d >= 15 else 'NOT met'}")
    d = (rc["acquisition"] - rp["acquisition"]) * 100
    lines.append(f"  acquisition {rc['acquisition']:.0%} vs {rp['acquisition']:.0%}: {d:+.0f} points "
                 f"(target: within 10) {'met' if d >= -10 else 'NOT met'}")
    lines.append(f"  drift       {rc['drift']:.3f} vs {rp['drift']:.3f} "
                 f"(target: below replace) {'met' if rc['drift'] < rp['drift'] else 'NOT met'}")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for method, rows in results["methods"].items():
        sessions = [r["session"] for r in rows]
        axes[0].plot(sessions, [r["acquisition"] for r in rows], marker="o", label=method)
        kept = [(r["session"], r["retention"]) for r in rows if r["retention"] is not None]
        if kept:
            axes[1].plot(*zip(*kept), marker="o", label=method)
        axes[2].plot(sessions, [r["drift"] for r in rows], marker="o", label=method)
    for ax, title in zip(axes, ["acquisition (this session's facts)", "retention (earlier sessions' facts)",
                                "general drift (mean KL from the original)"]):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("session")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylim(-0.05, 1.05)
    axes[1].set_ylim(-0.05, 1.05)
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
    ap.add_argument("--facts", type=Path, default=HERE / "continual_facts.jsonl")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--max-steps", type=int, default=None, help="training steps per consolidation "
                    "(default: the consolidate_max_steps setting)")
    ap.add_argument("--model", type=Path, default=None, help="start from this GGUF instead of the embedded SmolLM2")
    ap.add_argument("--append", action="store_true",
                    help="keep the other methods already in OUT/results.json (same facts file) in the table and plot")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a clagent setting for every home, e.g. recall_temperature=0.25 (repeatable)")
    args = ap.parse_args(argv)
    try:
        sessions = load_facts(args.facts)
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
            write_json(args.out / "results.json", results)  # partial results survive an interruption
        plot(results, args.out / "continual.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    print(verdict(results))
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'continual.png'}")


if __name__ == "__main__":
    sys.exit(main())
