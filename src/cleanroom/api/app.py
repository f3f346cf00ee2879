"""The FastAPI application: the public log, the ledger API, the witness, /healthz."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline

from cleanroom import __version__
from cleanroom.api import console, problems, routes
from cleanroom.api import models as answers
from cleanroom.api.access_log import AccessLog
from cleanroom.api.guard import InputGuard
from cleanroom.cluster.nodes import Heartbeat, Nodes, check_node_name, default_node_name
from cleanroom.gate.deletion import OrderRunner
from cleanroom.gate.sessions import Sessions
from cleanroom.ledger import witness_http
from cleanroom.ledger.log import Log
from cleanroom.ledger.witness import Witness
from cleanroom.room import CleanRoom
from cleanroom.room.assembly import checked_site
from cleanroom.room.bootstrap import bootstrap
from cleanroom.room.config import DataDir
from cleanroom.room.infra import check_infrastructure
from cleanroom.room.live import load_model_config, load_policy
from cleanroom.room.recommender import Recommender


def create_app(
    data_dir: str | None = None,
    *,
    log: bool = True,
    witness: bool = True,
    node: str | None = None,
    monitor_state: str | None = None,
) -> FastAPI:
    """Build the app for one data directory. With ``log`` it is the clean room
    (ledger, vault, gate, platform API); the witness is an optional part."""
    dd = DataDir(data_dir)
    config = dd.load()
    node = check_node_name(node or os.environ.get("CLEANROOM_NODE") or default_node_name())
    if os.environ.get("CLEANROOM_NODE") and os.environ.get("CLEANROOM_WORKERS"):
        node = f"{node}.{os.getpid()}"  # one of several worker processes: a node each
    serve_witness = witness and dd.has_key("witness")
    if log:  # refuse to build on a site the residency policy does not allow
        checked_site(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        room: CleanRoom | None = None
        runner: OrderRunner | None = None
        recommender: Recommender | None = None
        heartbeat: Heartbeat | None = None
        own_db = None
        if log:
            room = CleanRoom.open(dd)
            try:
                # the deploy check: only the live approved policy set and model
                # configuration load (a fresh clean room bootstraps them, on record)
                bootstrap(room, dd)
                # the bundled lists on a fresh clean room; the Clean Network
                # check of the configured manifest (refuses to start when flagged)
                room.screening.ensure_bundled(by="init")
                app.state.infra = check_infrastructure(room)
                app.state.policy_release = load_policy(room)
                ranking, app.state.model_release = load_model_config(room)
                app.state.approved_ranking = ranking  # what the oversight replays with
            except Exception:
                room.close()
                raise
            app.state.room = room
            app.state.log = room.log
            app.state.console_sessions = Sessions(room.db, room.principals)
            runner = OrderRunner(room.deletions, room.system("deletion-service")).start()
            app.state.order_runner = runner
            recommender = Recommender(room, ranking, node=node).start(background=True)
            app.state.recommender = recommender
            url = os.environ.get("CLEANROOM_NODE_URL", "")
            heartbeat = Heartbeat(Nodes(room.db), node, url, recommender.report).start()
        if serve_witness:
            db = room.db if room is not None else (own_db := dd.database(config))
            app.state.witness = Witness(db, dd.read_key("witness"))
        try:
            yield
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            if runner is not None:
                runner.close()
            if recommender is not None:
                recommender.close()
            if room is not None:
                room.close()
            if own_db is not None:
                own_db.dispose()

    app = FastAPIOffline(  # /docs and /redoc from bundled assets: they work offline
        title="Cleanroom",
        version=__version__,
        summary="Verifiable clean room: transparency ledger, witness and platform API",
        lifespan=lifespan,
        responses=problems.RESPONSES,
    )
    problems.install(app, pages=console.error_page if log else None, page_prefix=console.PREFIX)
    app.add_middleware(InputGuard)  # body caps and I-JSON before any route
    app.add_middleware(AccessLog)  # outermost: one line per request, nobody named

    @app.get("/healthz", tags=["meta"], response_model=answers.Health)
    def healthz(request: Request) -> dict[str, object]:
        """Liveness and the log's current size."""
        out: dict[str, object] = {"status": "ok", "version": __version__, "node": node}
        running: Log | None = getattr(request.app.state, "log", None)
        if running is not None:
            cp = running.store.latest()
            out["log"] = {"origin": cp.checkpoint.origin, "size": cp.size}
            missing = running.store.missing_below(cp.size)
            if missing:
                out["status"] = "degraded"
                out["last_error"] = missing
            rec = getattr(request.app.state, "recommender", None)
            if rec is not None:
                out["recommender"] = {"ready": rec.ready.is_set(), "error": rec.error}
                out["model"] = rec.engine.live_version
                out["bus"] = rec.bus_status()
            if running.last_error:
                out["status"] = "degraded"
                out["last_error"] = running.last_error
        out["witness"] = serve_witness
        return out

    if log:
        app.include_router(routes.log.router)
        app.include_router(routes.platform.router)
        app.include_router(routes.foryou.router)
        app.include_router(routes.release.router)
        app.include_router(routes.screen.router)
        app.include_router(routes.boost.router)
        app.include_router(routes.principals.router)
        # the oversight body's monitor state: its alerts on the oversight console
        app.state.monitor_state = monitor_state or os.environ.get("CLEANROOM_MONITOR_STATE")
        console.install(app)
    if serve_witness:
        app.include_router(witness_http.router())
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: the data directory comes from CLEANROOM_DATA_DIR."""
    return create_app()


def witness_app_from_env() -> FastAPI:
    return create_app(log=False, witness=True)
