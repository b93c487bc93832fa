"""The daemon's operations endpoints: schedule, rollback, prune and history."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Request

from clagent.daemon.engine import Engine
from clagent.daemon.errors import APIError
from clagent.daemon.scheduler import Scheduler
from clagent.daemon.schemas import json_body, optional_json_object
from clagent.errors import ClagentError
from clagent.home import Home
from clagent.history import history


def operations_router(home: Home, engine: Engine, swap_lock: threading.Lock,
                      scheduler: Scheduler | None) -> APIRouter:
    router = APIRouter(prefix="/v1/clagent")

    def need_scheduler() -> Scheduler:
        if scheduler is None:
            raise APIError(409, "this daemon runs without a scheduler")
        return scheduler

    @router.get("/schedule")
    def get_schedule():
        return need_scheduler().describe()

    @router.put("/schedule")
    @router.post("/schedule")
    async def set_schedule(request: Request):
        body = await json_body(request)
        if not isinstance(body, dict) or not ({"cron", "enabled"} & set(body)):
            raise APIError(400, "send {\"cron\": \"M H DOM MON DOW\"} and/or {\"enabled\": true|false}")
        cron, enabled = body.get("cron"), body.get("enabled")
        if cron is not None and not isinstance(cron, str):
            raise APIError(400, "'cron' must be a string such as \"0 3 * * *\"", param="cron")
        if enabled is not None and not isinstance(enabled, bool):
            raise APIError(400, "'enabled' must be true or false", param="enabled")
        try:
            return await asyncio.to_thread(need_scheduler().update, cron, enabled)
        except ClagentError as e:
            raise APIError(400, str(e), param="cron") from None

    @router.post("/rollback")
    async def rollback(request: Request):
        body = await optional_json_object(request)
        version = body.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise APIError(400, "'version' must be a version number", param="version")
        reason = body.get("reason") or ""
        return await asyncio.to_thread(do_rollback, version, str(reason)[:500])

    def do_rollback(version: int | None, reason: str) -> dict:
        from clagent.updater import rollback as rb

        with swap_lock:
            registry = home.registry
            try:
                served, target = rb.choose_target(registry, version)
            except ClagentError as e:
                status = 404 if "no version" in str(e) or "pruned" in str(e) or "missing" in str(e) else 409
                raise APIError(status, str(e), param="version") from None
            previous_path = registry.served_path(served)
            try:
                engine.load(registry.served_path(target), target.id)
            except ClagentError as e:
                raise APIError(409, f"v{target.id} cannot be served: {e}", param="version") from None
            try:
                done = rb.record(registry, served, target, reason)
            except ClagentError as e:
                engine.load(previous_path, served.id)  # the database says served: so must the engine
                raise APIError(409, str(e)) from None
            return {"rolled_back": True, "served_version": target.id, **done.to_dict()}

    @router.post("/prune")
    async def prune(request: Request):
        body = await optional_json_object(request)
        keep = body.get("keep", home.settings.keep_versions)
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise APIError(400, "'keep' must be a positive integer", param="keep")
        dry_run = bool(body.get("dry_run", False))

        def run():
            with swap_lock:
                return home.registry.prune(keep, dry_run=dry_run)

        pruned = await asyncio.to_thread(run)
        return {"keep": keep, "dry_run": dry_run, "pruned": [v.id for v in pruned]}

    @router.get("/history")
    def get_history(limit: int = 50):
        if not 1 <= limit <= 10000:
            raise APIError(400, "'limit' must be between 1 and 10000", param="limit")
        return {"data": history(home.db, limit)}

    return router
