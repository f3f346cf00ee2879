"""The For You feed over HTTP: a user's feed with explanations, their feed
setting, and the published ranking configuration and model card."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cleanroom.api import models as answers
from cleanroom.api.auth import Who, recommender_of, subject_of
from cleanroom.api.pages import DEFAULT_LIMIT, Cursor, Limit, page
from cleanroom.api.routes.platform import Purpose
from cleanroom.foryou.engine import MAX_LIMIT, ReplayError, ServedFeed
from cleanroom.foryou.feed import items_digest
from cleanroom.ledger.entries import encode_entry
from cleanroom.room.recommender import NotReady
from cleanroom.vault.store import UnknownRecord


class FeedSettings(BaseModel):
    """The feed setting a user chooses."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["personalized", "popular"]


def _feed_limiter(request: Request) -> anyio.CapacityLimiter:
    """Feeds are CPU work under one GIL: two threads at a time keep the cores
    busy; more only convoy on the GIL and stretch every request's latency."""
    limiter = getattr(request.app.state, "feed_limiter", None)
    if limiter is None:
        limiter = request.app.state.feed_limiter = anyio.CapacityLimiter(2)
    return limiter


class ReplayBatch(BaseModel):
    """The served feeds to recompute."""

    model_config = ConfigDict(extra="forbid")

    feeds: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]],
        Field(min_length=1, max_length=1000),
    ]


def _exposure_key(row: dict) -> list:
    return [row["hour_ms"], row["model_version"], row["ranking_config"], row["video"]]


router = APIRouter(tags=["feed"])


@router.get("/v1/feed", response_model=answers.Feed)
async def get_feed(
    request: Request,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    mode: Annotated[
        Literal["personalized", "popular"] | None,
        Query(description="personalized, or popular (not based on profiling)"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    seed: Annotated[str | None, Query(max_length=64)] = None,
) -> JSONResponse:
    """The calling user's For You feed: each item with its sources and why it
    is there. ``mode=popular`` (or the user's setting) gives the same feed to
    everyone in the region. Every page served is committed to the ledger."""
    user = subject_of(who)
    rec = recommender_of(request)

    def work() -> tuple[ServedFeed, dict[str, Any], bytes]:
        served = rec.serve(user, limit=limit, mode=mode, cursor=cursor, seed=seed)
        return served, served.to_dict(), encode_entry(served.entry)

    served, doc, entry = await anyio.to_thread.run_sync(work, limiter=_feed_limiter(request))
    # the commitment (and a new feed's record) is durable before the feed
    # leaves (awaited, not blocking a thread)
    index = await rec.commit(served, entry)
    return JSONResponse({**doc, "ledger_index": index})


@router.put("/v1/me/feed-settings", response_model=answers.FeedSettings)
def put_settings(request: Request, who: Who, body: FeedSettings) -> JSONResponse:
    """Choose the feed the user gets by default: personalised or not based on
    profiling (EU DSA Art. 38)."""
    user = subject_of(who)
    rec = recommender_of(request)
    rec.set_mode(user, body.mode)
    return JSONResponse({"user": user, "mode": body.mode})


@router.get("/v1/feed/config", response_model=answers.FeedConfig)
def feed_config(request: Request) -> JSONResponse:
    """What the feed optimises: the published weights, priors and rules."""
    rec = recommender_of(request)
    cfg = rec.engine.config
    return JSONResponse(
        {"digest": cfg.digest(), "about": cfg.raw.get("about", ""), **cfg.to_dict()}
    )


@router.get("/v1/feed/model", response_model=answers.ModelCard)
def feed_model(request: Request) -> JSONResponse:
    """The live model's card: version, configuration, heads, lineage."""
    rec = recommender_of(request)
    if not rec.ready.is_set():
        return JSONResponse({"ready": False, "error": rec.error})
    return JSONResponse(
        {
            "ready": True,
            **rec.engine.model.describe(),
            "trained": rec.trained,
            "engine": rec.engine.stats(),
        }
    )


@router.post("/v1/recommender/retrain", status_code=202, response_model=answers.Retraining)
def retrain(request: Request, who: Who, purpose: Purpose = "") -> JSONResponse:
    """Start a full retraining (operator staff or services only); the new
    model goes live when ready and its lineage is a model.trained entry."""
    rec = recommender_of(request)
    rec.room.gate.require(who, "write", "Models", purpose=purpose)
    if not rec.ready.is_set():
        raise NotReady("the first model is still training")
    rec.retrain()
    return JSONResponse({"status": "training", "live": rec.engine.model.version}, 202)


@router.get("/v1/oversight/exposure", tags=["oversight"], response_model=answers.Page)
def exposure(
    request: Request,
    who: Who,
    since_ms: Annotated[int, Query(ge=0, description="from this hour on")] = 0,
    purpose: Purpose = "oversight",
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> JSONResponse:
    """Impressions per model version, hour and video, with each video's
    creator, region and topics — aggregates across real traffic, no user."""
    rec = recommender_of(request)
    rec.room.gate.require(who, "read", "OversightData", purpose=purpose)
    rows = sorted(rec.exposure_rows(since_ms), key=_exposure_key)
    return JSONResponse(page(rows, cursor, limit, key=_exposure_key))


@router.get("/v1/oversight/topics", tags=["oversight"], response_model=answers.Topics)
def topics(request: Request, who: Who, purpose: Purpose = "oversight") -> JSONResponse:
    """Each video's topic for audits: the platform's tags, or communities of
    co-engagement derived when the live model trained (``source`` says which)."""
    rec = recommender_of(request)
    rec.room.gate.require(who, "read", "OversightData", purpose=purpose)
    if rec.topics is None:
        raise NotReady("no model has trained yet", hint="retry in a few seconds")
    version, tm = rec.topics
    return JSONResponse({"model_version": version, "source": tm.source, "topics": tm.topics})


@router.post("/v1/oversight/feeds/replay", tags=["oversight"], response_model=answers.Replays)
def replay_batch(
    request: Request, who: Who, body: ReplayBatch, purpose: Purpose = "oversight"
) -> JSONResponse:
    """Recompute many served feeds at once with the *approved* ranking
    configuration (the deploy-checked release, not what the engine runs):
    the oversight body compares each replayed digest with the list digest
    committed on the ledger. A feed no longer kept says so."""
    rec = recommender_of(request)
    rec.room.gate.require(who, "read", "Feeds", purpose=purpose)
    approved = request.app.state.approved_ranking
    # (in a cluster, records are in the database: any node replays any feed)
    records = {f: rec.engine.record(f) for f in body.feeds}
    out = []
    for feed in body.feeds:
        record = records[feed]
        if record is None:
            out.append({"feed": feed, "available": False})
            continue
        try:
            videos = rec.engine.replay(record, config=approved)
        except ReplayError as e:
            out.append({"feed": feed, "available": False, "why": e.message})
            continue
        row = {
            "feed": feed,
            "available": True,
            "model_version": record.model_version,
            "config_served": record.config_digest,
            "config_replayed": approved.digest(),
            "replayed_digest": items_digest(videos),
            "length": len(videos),
        }
        if videos != record.videos:  # the lists (video ids), to measure the difference
            row |= {"served": record.videos, "replayed": videos}
        out.append(row)
    return JSONResponse({"feeds": out, "approved_config": approved.digest()})


@router.post("/v1/oversight/feeds/{feed}/replay", tags=["oversight"], response_model=answers.Replay)
def replay(request: Request, feed: str, who: Who, purpose: Purpose = "oversight") -> JSONResponse:
    """Recompute a served feed from its recorded inputs with the model of
    its version; answers whether it matches, bit for bit (oversight only)."""
    rec = recommender_of(request)
    rec.room.gate.require(who, "read", "Feeds", purpose=purpose)
    record = rec.engine.record(feed)
    if record is None:
        raise UnknownRecord(
            f"no feed {feed!r} is kept for replay", hint="feeds are kept in memory for a while"
        )
    videos = rec.engine.replay(record)
    return JSONResponse(
        {
            "feed": feed,
            "model_version": record.model_version,
            "list_digest": record.list_digest,
            "replayed_digest": items_digest(videos),
            "match": videos == record.videos,
        }
    )
