"""``GET /metrics`` in the Prometheus text format.

Live figures (requests, latencies, tokens) are counted as requests pass; figures kept in the home
(memories, served version, consolidations) are read from the database at scrape time, so they are
right across restarts.
"""

from __future__ import annotations

import json
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from clagent.home import Home

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TPS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


class Metrics:
    def __init__(self, home: Home, served_version):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("clagent_http_requests", "HTTP requests by endpoint, method and status.",
                                ["endpoint", "method", "status"], registry=r)
        self.errors = Counter("clagent_http_errors", "HTTP requests answered with an error (status >= 400).",
                              ["endpoint", "status"], registry=r)
        self.latency = Histogram("clagent_http_request_duration_seconds",
                                 "Time to the response's headers (a stream's body follows).",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("clagent_time_to_first_token_seconds", "Chat completions: time to the first token.",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.generation = Histogram("clagent_generation_seconds", "Chat completions: whole generation time.",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.tps = Histogram("clagent_generation_tokens_per_second", "Chat completions: generated tokens per second.",
                             buckets=TPS_BUCKETS, registry=r)
        self.completion_tokens = Counter("clagent_completion_tokens", "Tokens generated.", registry=r)
        self.prompt_tokens = Counter("clagent_prompt_tokens", "Prompt tokens evaluated.", registry=r)
        self.generations = Counter("clagent_generations", "Generations by endpoint kind (chat, completion) and "
                                   "finish reason (stop, length, cancelled: the client went away).",
                                   ["kind", "finish_reason"], registry=r)
        self.embedding_inputs = Counter("clagent_embedding_inputs", "Texts embedded (/v1/embeddings).", registry=r)
        self.embedding_tokens = Counter("clagent_embedding_tokens", "Tokens embedded (/v1/embeddings).", registry=r)
        r.register(_HomeCollector(home, served_version))

    def observe_generation(self, gen, kind: str = "chat") -> None:
        self.generations.labels(kind, gen.finish_reason or "unknown").inc()
        self.completion_tokens.inc(gen.completion_tokens)
        self.prompt_tokens.inc(gen.prompt_tokens)
        if gen.ttft_ms is not None:
            self.ttft.observe(gen.ttft_ms / 1000)
        if gen.total_ms:
            self.generation.observe(gen.total_ms / 1000)
            if gen.completion_tokens:
                self.tps.observe(gen.completion_tokens / (gen.total_ms / 1000))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def record(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)


class MetricsMiddleware:
    """ASGI middleware: every HTTP request counted by its route's path, method and status, and its
    time to the response's headers. A generation whose client closed the connection before any
    answer is answered (to nobody) with 499, so it is counted as such."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t = time.perf_counter()
        sent = [False]

        def endpoint() -> str:
            route = scope.get("route")  # set by the router once it matched
            return getattr(route, "path", None) or "(unmatched)"

        async def send_and_time(message):
            if message["type"] == "http.response.start" and not sent[0]:
                sent[0] = True
                self.metrics.record(endpoint(), scope["method"], message["status"], time.perf_counter() - t)
            await send(message)

        try:
            await self.app(scope, receive, send_and_time)
        except Exception:
            if not sent[0]:
                self.metrics.record(endpoint(), scope["method"], 500, time.perf_counter() - t)
            raise


class _HomeCollector:
    def __init__(self, home: Home, served_version):
        self.home = home
        self.served_version = served_version

    def describe(self):
        return []

    def collect(self):
        db = self.home.db
        served = GaugeMetricFamily("clagent_served_version", "The model version being served.")
        served.add_metric([], self.served_version() or 0)
        yield served
        versions = GaugeMetricFamily("clagent_versions", "Registered model versions.", labels=["files"])
        for pruned, n in db.execute("SELECT pruned_at IS NOT NULL, COUNT(*) FROM versions GROUP BY 1").fetchall():
            versions.add_metric(["pruned" if pruned else "kept"], n)
        yield versions
        memories = GaugeMetricFamily("clagent_memories", "Memories by kind and status.", labels=["kind", "status"])
        for kind, status, n in db.execute("SELECT kind, status, COUNT(*) FROM memories GROUP BY kind, status"):
            memories.add_metric([kind, status], n)
        yield memories
        waiting = GaugeMetricFamily("clagent_interactions_waiting", "Logged interactions not yet consolidated.")
        waiting.add_metric([], db.execute("SELECT COUNT(*) FROM interactions").fetchone()[0])
        yield waiting
        outcomes = CounterMetricFamily("clagent_consolidations", "Consolidations by outcome.", labels=["outcome"])
        counts = {"committed": 0, "skipped": 0, "gate_failed": 0}
        for kind, n in db.execute(
                """SELECT kind, COUNT(*) FROM events WHERE kind IN ('consolidation_skipped', 'gate_failed')
                   GROUP BY kind"""):
            counts["skipped" if kind == "consolidation_skipped" else "gate_failed"] = n
        durations = []
        for (info,) in db.execute("SELECT info FROM versions WHERE method = 'consolidation'"):
            counts["committed"] += 1
            total = (json.loads(info or "{}").get("seconds") or {}).get("total")
            if total is not None:
                durations.append(float(total))
        for outcome, n in counts.items():
            outcomes.add_metric([outcome], n)
        yield outcomes
        seconds = SummaryMetricFamily("clagent_consolidation_duration_seconds",
                                      "Wall time of the committed consolidations.")
        seconds.add_metric([], len(durations), sum(durations))
        yield seconds
        rollbacks = CounterMetricFamily("clagent_rollbacks", "Rollbacks to an earlier version.")
        rollbacks.add_metric([], db.execute("SELECT COUNT(*) FROM events WHERE kind = 'rollback'").fetchone()[0])
        yield rollbacks
