"""Releases over HTTP: submit an artifact, read its diff and verdict, post a
signed review, deploy or roll back (the server reloads through the deploy
check), and read the model registry. Every call is decided by the gate
(resource class ``Releases``; the purpose says which step)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cleanroom.api import models as answers
from cleanroom.api.auth import Who, room_of
from cleanroom.api.pages import DEFAULT_LIMIT, Cursor, Limit, page
from cleanroom.foryou import RankingConfig
from cleanroom.foryou.compare import feed_change
from cleanroom.release import ReleaseError
from cleanroom.release.models import live_at, served_feed, timeline
from cleanroom.release.verify import ledger_entries
from cleanroom.room import CleanRoom
from cleanroom.room.live import load_model_config, load_policy
from cleanroom.room.manifests import check_manifest
from cleanroom.room.provenance import builder_verifier
from cleanroom.room.recommender import NotReady
from cleanroom.room.review import diff_lines, evaluate_model_release

Kind = Literal["source", "model", "policy", "infra"]


class Submission(BaseModel):
    """An artifact submitted for review."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    name: str = Field(min_length=1, max_length=128)
    manifest: dict[str, Any] = Field(
        description="policy: {files: {name: text}}; model: {config: ranking.json}; "
        "source: {files: {path: sha256 hex}}; infra: {files: {name: manifest YAML}}"
    )


class Rollback(BaseModel):
    """Roll a kind back to its previous deployment."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["model", "policy"]


def _reload(request: Request, kind: str) -> dict[str, Any]:
    """Load the newly live release through the deploy check (policy: into the
    gate at once; model: the recommender retrains with it)."""
    room = room_of(request)
    if kind == "policy":
        loaded = load_policy(room)
        request.app.state.policy_release = loaded
        return loaded.to_dict()
    if kind == "model":
        cfg, loaded = load_model_config(room)
        request.app.state.model_release = loaded
        request.app.state.approved_ranking = cfg
        rec = getattr(request.app.state, "recommender", None)
        if rec is not None:
            rec.reconfigure(cfg)
        return loaded.to_dict()
    return {}


def _artifact(room: CleanRoom, digest: str) -> dict[str, Any]:
    reg = room.releases
    art = reg.get(digest)
    live = reg.live(art.kind)
    return {
        **art.to_dict(),
        "verdict": reg.verdict(digest).to_dict(),
        "live": bool(live and live.artifact == digest),
        "reviews": [r.__dict__ for r in reg.reviews(digest)],
        "evaluation": reg.evaluation(digest),
    }


router = APIRouter(tags=["releases"])


@router.get("/v1/releases", response_model=answers.Page)
def list_releases(
    request: Request,
    who: Who,
    kind: Kind | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> JSONResponse:
    """Artifacts with their verdict and whether they are live, a page."""
    room = room_of(request)
    room.gate.require(who, "read", "Releases")
    arts = room.releases.artifacts(kind)
    out = page(arts, cursor, limit, key=lambda a: a.digest)
    out["items"] = [_artifact(room, a.digest) for a in out["items"]]
    return JSONResponse(out)


@router.post("/v1/releases", status_code=201, response_model=answers.Artifact)
def submit(request: Request, who: Who, body: Submission) -> JSONResponse:
    """Submit an artifact for review (operator, platform or the foreign
    parent); its digest is computed here from the manifest."""
    room = room_of(request)
    room.gate.require(who, "write", "Releases", purpose="release_submit")
    digest = check_manifest(body.kind, body.manifest)
    art = room.releases.submit(
        body.kind, body.name, digest, body.manifest, submitted_by=who.name, org=who.org
    )
    return JSONResponse(_artifact(room, art.digest), 201)


@router.get("/v1/releases/models", response_model=answers.Page)
def models(
    request: Request,
    who: Who,
    at_ms: Annotated[int | None, Query(ge=0, description="the model live then")] = None,
    feed: Annotated[str | None, Query(max_length=64, description="the model of a feed")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> JSONResponse:
    """The model registry from the ledger: versions, configuration
    releases, lineage; the model live at ``at_ms`` or that served ``feed``."""
    room = room_of(request)
    room.gate.require(who, "read", "Releases")
    entries = ledger_entries(room.log.store)
    out = timeline(entries, builder=builder_verifier(room))
    if feed is not None:
        served = served_feed(entries, feed)
        out = [m for m in out if served and m["version"] == served[0]["model_version"]]
    if at_ms is not None:
        hit = live_at(out, at_ms)
        out = [hit] if hit else []
    return JSONResponse(page(out, cursor, limit, key=lambda m: m["version"]))


@router.get("/v1/releases/{digest}", response_model=answers.Artifact)
def get_release(
    request: Request,
    who: Who,
    digest: str,
    evaluate: Annotated[
        bool, Query(description="model: how the live feeds of 200 users would change")
    ] = False,
) -> JSONResponse:
    """One artifact: verdict, reviews, and the diff reviewers read; for a
    model configuration with ``evaluate``, a summary of how feeds change."""
    room = room_of(request)
    room.gate.require(who, "read", "Releases")
    doc = {
        **_artifact(room, digest),
        "manifest": room.releases.get(digest).manifest,
        "diff": diff_lines(room, digest),
    }
    if evaluate:
        rec = getattr(request.app.state, "recommender", None)
        if doc["kind"] != "model":
            raise ReleaseError("only a model configuration can be evaluated on feeds")
        if rec is None or not rec.ready.is_set():
            raise NotReady("the live model is not ready to compare feeds with")
        cfg = RankingConfig.parse(room.releases.get(digest).manifest["config"])
        doc["feed_change"] = feed_change(rec.engine, cfg)
    return JSONResponse(doc)


@router.post("/v1/releases/{digest}/reviews", status_code=201, response_model=answers.Verdict)
def post_review(
    request: Request,
    who: Who,
    digest: str,
    envelope: Annotated[dict[str, Any], Body(description="a DSSE envelope")],
) -> JSONResponse:
    """Record a review signed with the reviewer's own key (a DSSE envelope
    of an in-toto statement with the review predicate)."""
    room = room_of(request)
    room.gate.require(who, "write", "Releases", purpose="release_review")
    verdict = room.releases.review(digest, envelope)
    return JSONResponse(verdict.to_dict(), 201)


@router.post("/v1/releases/{digest}/evaluate", status_code=201, response_model=answers.Open)
def evaluate(
    request: Request,
    who: Who,
    digest: str,
    split: Annotated[Literal["valid", "test"], Query()] = "valid",
) -> JSONResponse:
    """A model configuration's metrics on the fixed evaluation set
    (bundled kuairec-small, SIGformer protocol), recorded on the ledger."""
    room = room_of(request)
    room.gate.require(who, "write", "Releases", purpose="release_review")
    return JSONResponse(evaluate_model_release(room, digest, split=split, by=who.name), 201)


@router.post("/v1/releases/{digest}/deploy", response_model=answers.Deployed)
def deploy(request: Request, who: Who, digest: str) -> JSONResponse:
    """Make an approved artifact live and reload it through the deploy check."""
    room = room_of(request)
    room.gate.require(who, "write", "Releases", purpose="release_deploy")
    d = room.releases.deploy(digest, by=who.name)
    return JSONResponse({**d.to_dict(), "loaded": _reload(request, d.kind)})


@router.post("/v1/releases/rollback", response_model=answers.Deployed)
def rollback(request: Request, who: Who, body: Rollback) -> JSONResponse:
    """Go back to the approved release live before the current one."""
    room = room_of(request)
    room.gate.require(who, "write", "Releases", purpose="release_deploy")
    d = room.releases.rollback(body.kind, by=who.name)
    return JSONResponse({**d.to_dict(), "loaded": _reload(request, d.kind)})
