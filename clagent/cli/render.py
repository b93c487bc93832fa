"""Plain-text rendering of status, versions and logs for an 80-column terminal."""

from __future__ import annotations

import textwrap


def human_bytes(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _short_time(iso: str | None) -> str:
    return (iso or "?").replace("T", " ")[:19]


def status(d: dict) -> str:
    lines = [f"home:      {d['home']}"]
    daemon = d.get("daemon") or {}
    if daemon.get("running"):
        lines.append(f"daemon:    up at {daemon['url']} (pid {daemon['pid']}, since "
                     f"{_short_time(daemon['started_at'])}, {daemon['uptime_s']:.0f}s)")
    else:
        lines.append("daemon:    down (start it with: clagent serve)")
    v = d.get("served_version")
    if v:
        lines.append(f"served:    v{v['id']} ({v['quant']}, {v['method']}, {_short_time(v['created_at'])})")
        chain = " <- ".join(f"v{x['id']} ({x['method']})" for x in v["lineage"])
        lines.append(f"lineage:   {chain}")
    else:
        lines.append("served:    no version yet (the first `clagent serve` creates version 1)")
    lines.append(f"versions:  {d['versions']}")
    i = d["interactions"]
    lines.append(f"logged:    {i['logged_total']} interactions in all; {i['waiting']} waiting for "
                 f"consolidation ({i['conversations_waiting']} conversations)")
    lines.append(f"feedback:  {i['rated_up']} up, {i['rated_down']} down, {i['corrected']} corrected")
    m = d.get("memory")
    if m:
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(m["active"].items())) or "none yet"
        state = "" if m["enabled"] else " (switched off)"
        lines.append(f"memory:    {m['total_active']} active ({by_kind}); {m['superseded']} superseded{state}")
    c = d.get("consolidation") or {}
    last = c.get("last")
    if c.get("running"):
        lines.append("training:  a consolidation is running now")
    if last:
        when = _short_time(last["at"])
        if last["outcome"] == "committed":
            t, g = last["train"], last["gate"]
            lines.append(f"last run:  {when}: v{last['version']} committed, {last['data']['examples']} examples, "
                         f"{t['steps']} steps on {t['device']}")
            lines.append(f"           {sum(v for k, v in last['seconds'].items() if k != 'total'):.0f}s, "
                         f"merge {last['merge']['method']}, gate acquisition {g['acquisition'] or 0:.0%}, "
                         f"drift {g['drift']:.2f}")
        elif last["outcome"] == "gate_failed":
            lines.append(f"last run:  {when}: gate failed, v{last['version']} kept: {'; '.join(last['reasons'])}"[:160])
        else:
            lines.append(f"last run:  {when}: skipped, nothing to consolidate")
    else:
        lines.append("last run:  never consolidated (clagent consolidate)")
    s = d["store"]
    lines.append(f"store:     database {human_bytes(s['database_bytes'])}, models {human_bytes(s['models_bytes'])}")
    return "\n".join(lines)


def models(rows: list[dict]) -> str:
    if not rows:
        return "no versions yet (the first `clagent serve` creates version 1)"
    out = [f"{'':1} {'version':<8} {'parent':<7} {'method':<14} {'quant':<7} {'size':>10}  created"]
    for r in rows:
        mark = "*" if r["served"] else " "
        parent = f"v{r['parent']}" if r["parent"] else "-"
        out.append(f"{mark} {'v' + str(r['id']):<8} {parent:<7} {r['method']:<14} {r['quant']:<7} "
                   f"{human_bytes(r['disk_bytes']):>10}  {_short_time(r['created_at'])}")
    out.append("(* = served)")
    return "\n".join(out)


def logs(rows: list[dict]) -> str:
    if not rows:
        return "no interactions logged (or all were consolidated)"
    out = []
    for r in rows:
        user = next((m["content"] for m in reversed(r["messages"]) if m["role"] == "user"), "")
        rating = {1: " [+1]", -1: " [-1]"}.get(r["rating"], "")
        tps = ""
        if r.get("total_ms") and r.get("completion_tokens"):
            tps = f", {r['completion_tokens'] / (r['total_ms'] / 1000):.1f} tok/s"
        out.append(f"{_short_time(r['created_at'])}  {r['id']}  v{r['version']}{rating}")
        out.append(f"  conversation {r['conversation_id']}, {r['prompt_tokens']}+{r['completion_tokens']} "
                   f"tokens{tps}, {r['finish_reason']}")
        out.append(textwrap.shorten(f"  you: {user}", width=78, placeholder=" ..."))
        out.append(textwrap.shorten(f"  clagent: {r['response']}", width=78, placeholder=" ..."))
        if r.get("correction"):
            out.append(textwrap.shorten(f"  correction: {r['correction']}", width=78, placeholder=" ..."))
    return "\n".join(out)


def sparkline(values: list[float], width: int = 40) -> str:
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [values[int(i * step)] for i in range(width)]
    lo, hi = min(values), max(values)
    bars = "▁▂▃▄▅▆▇█"
    return "".join(bars[int((v - lo) / (hi - lo + 1e-12) * (len(bars) - 1))] for v in values)


def consolidation(info: dict) -> str:
    t, g, d = info["train"], info["gate"], info["data"]
    lines = [
        f"data:      {d['memories']} memories, {d['corrections']} corrections, "
        f"{d['interaction_examples']} interactions, {d.get('replay', 0)} replayed -> {d['examples']} examples",
        f"training:  {t['steps']} steps on {t['device']} in {t['seconds']:.0f}s "
        f"({t['tokens_per_second']:.0f} tokens/s), loss {t['losses'][0]:.2f} -> {t['losses'][-1]:.2f}",
        f"loss:      {sparkline(t['losses'])}",
        f"merge:     {info['merge']['method']}",
    ]
    acq = "n/a" if g["acquisition"] is None else f"{g['acquisition']:.0%}"
    drift = "n/a" if g["drift"] is None else f"{g['drift']:.3f}"
    lines.append(f"gate:      {'passed' if g['passed'] else 'FAILED'}: acquisition {acq}, drift (mean KL) {drift}")
    lines.append("stages:    " + ", ".join(f"{k} {v:.0f}s" for k, v in info["seconds"].items()))
    return "\n".join(lines)


def layer_bars(weights: list[float], width: int = 60) -> str:
    """One character per layer: how much say the newly trained model had (0.5 = plain average)."""
    return sparkline([0.0, 1.0] + list(weights), width + 2)[2:] if weights else ""


def version(d: dict) -> str:
    info = d.get("info") or {}
    lines = [f"version:   v{d['id']} ({d['method']}, {d['quant']}, {_short_time(d['created_at'])})",
             "lineage:   " + " <- ".join(f"v{i}" for i in d["lineage"])]
    if d["method"] == "consolidation" and info.get("train"):
        lines.append(consolidation(info))
        weights = (info.get("merge") or {}).get("weights", {}).get("tuned")
        if weights:
            lines.append(f"layer weights of the new model (embeddings .. last layer, {min(weights):.2f}-{max(weights):.2f}):")
            lines.append(f"           {layer_bars(weights)}")
    elif info.get("source"):
        lines.append(f"source:    {info['source']}")
    return "\n".join(lines)
