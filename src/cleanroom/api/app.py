"""The FastAPI application: the public log, the ledger API, the witness, /healthz."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from cleanroom import __version__
from cleanroom.api import log_routes, problems, witness_routes
from cleanroom.config import DataDir
from cleanroom.ledger.log import Log
from cleanroom.ledger.witness import Witness, WitnessEndpoint


def create_app(data_dir: str | None = None, *, log: bool = True, witness: bool = True) -> FastAPI:
    """Build the app for one data directory; the log and the witness are optional parts."""
    dd = DataDir(data_dir)
    config = dd.load()
    serve_witness = witness and dd.has_key("witness")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = dd.database(config)
        running: Log | None = None
        if log:
            endpoints = [WitnessEndpoint.parse(w.vkey, w.url) for w in config.witnesses]
            running = Log(db, config.origin, dd.read_key("log"), witnesses=endpoints).start()
            app.state.log = running
        if serve_witness:
            app.state.witness = Witness(db, dd.read_key("witness"))
        try:
            yield
        finally:
            if running is not None:
                running.close()
            db.dispose()

    app = FastAPI(
        title="Cleanroom",
        version=__version__,
        summary="Verifiable clean room: transparency ledger, witness and platform API",
        lifespan=lifespan,
    )
    problems.install(app)

    @app.get("/healthz", tags=["meta"])
    def healthz(request: Request) -> dict[str, object]:
        """Liveness and the log's current size."""
        out: dict[str, object] = {"status": "ok", "version": __version__}
        running: Log | None = getattr(request.app.state, "log", None)
        if running is not None:
            cp = running.store.latest()
            out["log"] = {"origin": cp.checkpoint.origin, "size": cp.size}
            if running.last_error:
                out["status"] = "degraded"
                out["last_error"] = running.last_error
        out["witness"] = serve_witness
        return out

    if log:
        app.include_router(log_routes.router())
    if serve_witness:
        app.include_router(witness_routes.router())
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: the data directory comes from CLEANROOM_DATA_DIR."""
    return create_app()


def witness_app_from_env() -> FastAPI:
    return create_app(log=False, witness=True)
