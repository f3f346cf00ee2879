"""An algorithm audit, run from the oversight body's machine over HTTP, and
its report: HTML with plots for people, JSON beside it for machines. Each
says how it was computed (method), over which data window, against which
model versions and which ledger checkpoint (the one the oversight monitor
verified, when its state directory is given).

Sections: exposure across real traffic (topics, creator regions,
concentration, declared boosts, per model version and ranking configuration,
each creator's excess share under an unapproved configuration); the replay
audit (mismatch rate, the videos that took places the approved algorithm would
not have given them); the sock-puppet audit; the monitor's alerts."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cleanroom.audit.client import ApiError, api_call
from cleanroom.audit.exposure import exposure_report
from cleanroom.audit.puppets import (
    Accounts,
    PuppetRun,
    personas,
    summarise,
)
from cleanroom.audit.topics import TopicMap

METHOD = {
    "exposure": "Impressions per model version, ranking configuration, hour and video, "
    "as the clean room aggregates them (no user), grouped by topic, creator region and "
    "creator; concentration is the top-1% creators' share and the Gini of creators.",
    "replay": "A sample of the served feeds the monitor verified on the ledger is "
    "recomputed by the clean room with the approved ranking configuration and the "
    "recorded inputs, and compared with the list digest committed when it was served. "
    "A served list counts as evidence only if it hashes to that digest.",
    "puppets": "Scripted accounts, one persona per topic, watch their topic's videos to "
    "the end (and like them) and skip the rest, page after page, through the public feed "
    "API; events go through the platform's ingest like any user's. Baselines in the same "
    "run: a random draw from the catalogue (the topic's share of it) and each puppet's "
    "non-personalised feed.",
}


PERSONA_COLUMNS = [
    "persona", "videos", "exploit_fraction", "baseline_non_personalised", "baseline_random",
    "rabbit_hole_delta", "first_flagged", "topic_entropy_bits", "creator_entropy_bits",
    "creator_gini",
]  # fmt: skip


@dataclass
class AuditTarget:
    """The clean room's API as the audit reaches it: a URL, an oversight token, an HTTP client."""

    api_url: str
    token: str  # an oversight principal's
    client: httpx.Client | None = None

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = httpx.Client(timeout=120)

    def get(self, path: str, **params: Any) -> Any:
        assert self.client is not None
        return api_call(self.client, "GET", self.api_url.rstrip("/"), path, self.token,
                        params=params)  # fmt: skip

    def get_all(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paged list (following ``next_cursor``)."""
        items: list[Any] = []
        cursor = None
        while True:
            doc = self.get(path, **params, **({"cursor": cursor} if cursor else {}))
            items += doc["items"]
            cursor = doc.get("next_cursor")
            if not cursor:
                return items


def run_audit(
    target: AuditTarget,
    *,
    accounts: Accounts | None = None,
    verified: dict[str, Any] | None = None,
    n_personas: int = 6,
    pages: int = 10,
    page_size: int = 10,
    flagged: set[str] | None = None,
    since_ms: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Everything the report shows, as one JSON-able document. ``verified``
    is what the oversight monitor vouches for (``Watcher.verified``: the
    checkpoint, the replay audit, the alerts); without it the checkpoint is
    shown as served, unverified."""
    started = int(time.time() * 1000)
    t = _topics(target)
    topics = TopicMap(t["topics"], t["source"])
    model = target.get("/v1/feed/model")
    config = target.get("/v1/feed/config")
    doc: dict[str, Any] = {
        "generated_ms": started,
        "api": target.api_url,
        "method": dict(METHOD),
        "topics": {
            "source": topics.source,
            "model_version": t["model_version"],
            "count": len(set(topics.topics.values())),
        },
        "live": {"model_version": model.get("version"), "ranking_config": config.get("digest")},
    }
    approved: str | None = None
    if verified is not None:  # what the oversight monitor vouches for
        approved = verified["approved_config"]
        doc["checkpoint"] = verified["checkpoint"]
        doc["replay"] = verified["replay"]
        doc["alerts"] = verified["alerts"]
    else:
        doc["checkpoint"] = _unverified_checkpoint(target)
    rows = target.get_all("/v1/oversight/exposure", since_ms=since_ms)
    doc["exposure"] = exposure_report(rows, topics, approved)
    hours = sorted({int(r["hour_ms"]) for r in rows})
    doc["window"] = {
        "exposure_from_ms": hours[0] if hours else None,
        "exposure_to_ms": hours[-1] + 3_600_000 if hours else None,
        "model_versions": sorted({r["model_version"] for r in rows} | {model.get("version")}),
    }
    if accounts is not None:
        cast = personas(topics, min(n_personas, len(accounts.puppets)))
        run = PuppetRun(target.api_url, accounts, topics, client=target.client)
        sessions = run.run(
            cast,
            pages=pages,
            page_size=page_size,
            progress=(lambda d, n: progress("puppets", d, n)) if progress else None,
        )
        doc["puppets"] = summarise(sessions, topics, flagged=flagged or set(), window=page_size)
        doc["window"]["puppets_from_ms"] = min(s.started_ms for s in sessions) if sessions else None
        doc["window"]["puppets_to_ms"] = max(s.ended_ms for s in sessions) if sessions else None
    doc["finished_ms"] = int(time.time() * 1000)
    return doc


def _topics(target: AuditTarget, wait_s: float = 120) -> dict[str, Any]:
    """The topic map (derived after each training: wait while it is)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return target.get("/v1/oversight/topics")
        except ApiError as e:
            if e.http_status != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _unverified_checkpoint(target: AuditTarget) -> dict[str, Any]:
    """The log's checkpoint as served (no monitor state: not verified here)."""
    from cleanroom.ledger.checkpoint import parse_checkpoint
    from cleanroom.ledger.client import TileClient
    from cleanroom.ledger.note import parse_note

    text = TileClient(target.api_url.rstrip("/") + "/log/", target.client).checkpoint()
    cp = parse_checkpoint(parse_note(text).text)
    return {
        "origin": cp.origin,
        "size": cp.size,
        "root": base64.b64encode(cp.root).decode(),
        "verified_by_monitor": False,
    }


# --------------------------------------------------------------------------- HTML


def _png(fig: Any) -> str:
    """The figure as an <img> whose alt text is what the chart shows (its title)."""
    buf = io.BytesIO()
    title = " ".join(ax.get_title() for ax in fig.axes if ax.get_title()) or "chart"
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return (
        f'<img alt="{html.escape(title)} (the figures are in the table beside it)" '
        'src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'
    )


def _plots(doc: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    ex = doc["exposure"]
    if ex["by_topic"]:
        fig, ax = plt.subplots(figsize=(7, 3))
        top = ex["by_topic"][:12]
        ax.bar([t["key"] for t in top], [t["share"] for t in top], color="#4c72b0")
        ax.set_ylabel("share of impressions")
        ax.set_title("Exposure by topic")
        ax.tick_params(axis="x", rotation=45)
        out["topics"] = _png(fig)
    boosts = [("declared boosts", ex["declared_boosts"]["share"])]
    if "replay" in doc:
        boosts.append(("undeclared (replay, head)", doc["replay"]["undeclared_boost_share"]))
    fig, ax = plt.subplots(figsize=(5, 2.5))
    ax.barh(
        [b[0] for b in boosts], [b[1] for b in boosts], color=["#55a868", "#c44e52"][: len(boosts)]
    )
    ax.set_xlabel("share of impressions")
    ax.set_title("Boosted impressions")
    out["boosts"] = _png(fig)
    if ex["excess_by_creator"]:
        fig, ax = plt.subplots(figsize=(6, 2.8))
        rows = ex["excess_by_creator"][:8]
        ax.bar(
            [r["creator"] for r in rows],
            [r["share_approved"] for r in rows],
            label="approved ranking",
        )
        ax.bar(
            [r["creator"] for r in rows],
            [r["excess"] for r in rows],
            bottom=[r["share_approved"] for r in rows],
            label="excess (unapproved)",
            color="#c44e52",
        )
        ax.set_ylabel("share of impressions")
        ax.set_title("Creators' excess exposure under unapproved ranking")
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
        out["excess"] = _png(fig)
    pup = doc.get("puppets")
    if pup and pup["personas"]:
        fig, ax = plt.subplots(figsize=(7, 3))
        for p in pup["personas"]:
            c = p["topic_share_curve"]
            ax.plot(range(1, len(c) + 1), c, marker="o", label=p["persona"])
        ax.set_xlabel(f"page of the session ({pup['window']} videos)")
        ax.set_ylabel("share of the persona's topic")
        ax.set_title("Convergence over the session")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, ncol=2)
        out["curves"] = _png(fig)
        fig, ax = plt.subplots(figsize=(7, 3))
        names = [p["persona"] for p in pup["personas"]]
        xs = range(len(names))
        w = 0.27
        ax.bar(
            [x - w for x in xs],
            [p["exploit_fraction"] for p in pup["personas"]],
            w,
            label="personalised feed",
        )
        ax.bar(
            list(xs),
            [p["baseline_non_personalised"] for p in pup["personas"]],
            w,
            label="non-personalised feed",
        )
        ax.bar(
            [x + w for x in xs],
            [p["baseline_random"] for p in pup["personas"]],
            w,
            label="random draw",
        )
        ax.set_xticks(list(xs), names, rotation=30, fontsize=7)
        ax.set_ylabel("share matching interests")
        ax.set_title("Exploit fraction against baselines")
        ax.legend(fontsize=7)
        out["exploit"] = _png(fig)
    return out


def findings(doc: dict[str, Any]) -> list[dict[str, str]]:
    """What the report finds, gravest first: each with a severity, one
    sentence, and the section of the evidence that shows it."""
    out: list[dict[str, str]] = []

    def found(severity: str, anchor: str, text: str) -> None:
        out.append({"severity": severity, "anchor": anchor, "text": text})

    if not doc["checkpoint"].get("verified_by_monitor"):
        found("high", "checkpoint", "The figures were computed against the checkpoint the "
              "clean room served, not one the oversight monitor verified.")  # fmt: skip
    configs = doc["exposure"].get("per_ranking_config", {})
    unapproved = [v for v in configs.values() if not v.get("approved")]
    if unapproved and doc["checkpoint"].get("verified_by_monitor"):  # approval known
        n = sum(int(v.get("impressions", 0)) for v in unapproved)
        found("critical", "exposure", f"{n:,} impressions were served under "
              f"{len(unapproved)} ranking configuration(s) no release approved.")  # fmt: skip
    r = doc.get("replay")
    if r and r.get("mismatched"):
        rate = f"{r['mismatch_rate']:.1%}"
        found("critical", "replay", f"{r['mismatched']} of {r['replayed']} replayed feeds "
              f"({rate}) differ from what the approved algorithm gives.")  # fmt: skip
    a = doc.get("alerts")
    if a and a.get("total"):
        incidents = a.get("incidents") or []
        grave = any(i.get("severity") == "critical" for i in incidents)
        causes = f", from {len(incidents)} root cause(s)" if incidents else ""
        found("critical" if grave else "high", "alerts",
              f"The monitor raised {a['total']} alert(s){causes}.")  # fmt: skip
    pup = doc.get("puppets")
    npf = pup["non_personalised_ignores_history"] if pup else {}
    if npf.get("checked") and not npf.get("identical"):
        found("critical", "puppets", "The non-personalised feed depends on the viewer's history.")
    rank = {"critical": 0, "high": 1, "medium": 2}
    return sorted(out, key=lambda f: rank[f["severity"]])


def verdict(found: list[dict[str, str]]) -> str:
    if any(f["severity"] == "critical" for f in found):
        return "Not compliant: the algorithm served is not the one approved, or its record fails"
    if found:
        return "Open questions: the figures stand, with the reservations below"
    return "No finding: what was served is what was approved, and the record holds"


def render_html(doc: dict[str, Any]) -> str:
    """The report as a decision document: verdict and findings first, then the
    method and the data it was computed against, then the evidence."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("cleanroom.audit", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, short=short_digest, pct=lambda v: f"{v:.1%}", num=number)
    found = findings(doc)
    plots = _plots(doc)
    return env.get_template("report.html").render(
        doc=doc, found=found, verdict=verdict(found), plots=plots, personas=PERSONA_COLUMNS
    )


def short_digest(text: Any, keep: int = 12) -> str:
    """A digest cut for a table cell: ``sha256:1a2b3c4d5e6f…`` (the rest on hover)."""
    s = str(text or "")
    head = s.split(":", 1)[0] + ":" if ":" in s[:10] else ""
    body = s[len(head) :]
    return s if len(body) <= keep + 1 else f"{head}{body[:keep]}…"


def number(v: Any) -> str:
    """A figure for a table: floats to three places, integers with separators."""
    if isinstance(v, float):
        return f"{v:.3f}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000)) if ms else "—"


def write_report(doc: dict[str, Any], path: Path, state_dir: Path | None = None) -> Path:
    """``path`` (HTML) and the same name with ``.json``; returns the JSON path.
    With the monitor's ``state_dir`` the document is kept there too
    (``audits/<generated_ms>.json``), where the oversight console shows it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    json_path = path.with_suffix(".json")
    text = json.dumps(doc, indent=1, default=str)
    json_path.write_text(text)
    path.write_text(render_html(doc))
    if state_dir is not None:
        kept = Path(state_dir) / "audits"
        kept.mkdir(exist_ok=True)
        (kept / f"{int(doc['generated_ms'])}.json").write_text(text)
    return json_path


def kept_reports(state_dir: Path) -> list[Path]:
    """The audit documents kept in a monitor's state directory, newest first."""
    kept = Path(state_dir) / "audits"
    found = [p for p in kept.glob("*.json") if p.stem.isdigit()] if kept.is_dir() else []
    return sorted(found, key=lambda p: int(p.stem), reverse=True)
