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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return (
        '<img alt="plot" src="data:image/png;base64,'
        + base64.b64encode(buf.getvalue()).decode()
        + '">'
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


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        return html.escape(json.dumps(v) if isinstance(v, list | dict) else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000)) if ms else "—"


def render_html(doc: dict[str, Any]) -> str:
    plots = _plots(doc)
    cp, win, ex = doc["checkpoint"], doc["window"], doc["exposure"]
    e = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Cleanroom algorithm audit</title>",
        "<style>body{font:14px system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left}th{background:#f3f3f3}.bad{color:#b00;font-weight:bold}"
        ".ok{color:#070;font-weight:bold}img{max-width:100%}</style>",
        "<h1>Algorithm audit</h1>",
        f"<p>Generated {_when(doc['generated_ms'])} against <code>{e(doc['api'])}</code>.</p>",
        "<h2>Computed against</h2><ul>",
        f"<li>Ledger checkpoint: <code>{e(str(cp.get('origin')))}</code> size {cp.get('size')}, "
        f"root <code>{e(str(cp.get('root')))}</code> — "
        + (
            "verified by the oversight monitor"
            if cp.get("verified_by_monitor")
            else "<span class='bad'>as served, not verified (no monitor state given)</span>"
        )
        + "</li>",
        f"<li>Model versions: {e(', '.join(str(v) for v in win['model_versions']))}; live ranking "
        f"configuration <code>{e(str(doc['live']['ranking_config']))}</code></li>",
        f"<li>Exposure window: {_when(win['exposure_from_ms'])} – "
        f"{_when(win['exposure_to_ms'])}</li>",
        f"<li>Topics: {e(doc['topics']['source'])} ({doc['topics']['count']} topics)</li>",
        "</ul>",
    ]
    parts.append("<h2>Exposure across real traffic</h2>")
    parts.append(f"<p>{e(doc['method']['exposure'])}</p>")
    c = ex["concentration"]
    parts.append(
        f"<p>{ex['impressions']:,} impressions; top-1% creators' share "
        f"{c['top_1pct_creator_share']:.1%}, "
        f"creator Gini {c['creator_gini']:.3f}, topic entropy {ex['topic_entropy_bits']:.2f} bits; "
        f"declared boosts {ex['declared_boosts']['share']:.2%} of impressions.</p>"
    )
    parts += [plots.get("topics", ""), plots.get("boosts", "")]
    parts.append("<h3>Per ranking configuration</h3>")
    parts.append(
        _table(
            [{"config": k, **v} for k, v in ex["per_ranking_config"].items()],
            ["config", "impressions", "approved"],
        )
    )
    if ex["excess_by_creator"]:
        parts.append(
            "<p class='bad'>Impressions served under a ranking configuration that was not "
            "approved went disproportionately to these creators:</p>"
        )
        parts.append(plots.get("excess", ""))
        parts.append(
            _table(
                ex["excess_by_creator"], ["creator", "share_unapproved", "share_approved", "excess"]
            )
        )
    parts.append(
        "<h3>By creator region</h3>"
        + _table(ex["by_creator_region"], ["key", "impressions", "share"])
    )
    if "replay" in doc:
        r = doc["replay"]
        cls = "bad" if r["mismatched"] else "ok"
        parts += [
            "<h2>Replay audit</h2>",
            f"<p>{e(doc['method']['replay'])}</p>",
            f"<p class='{cls}'>{r['replayed']} feeds replayed ({r['unavailable']} no longer kept): "
            f"{r['mismatched']} differ from the approved algorithm ({r['mismatch_rate']:.1%}). "
            f"Videos that took places in the top {r['head']} the approved algorithm would not have "
            f"given them: {r['undeclared_boost_share']:.1%} of those impressions.</p>",
            _table(r["excess_videos"][:10], ["video", "impressions"]),
            _table(
                r["examples"][:5],
                ["entry", "feed", "served_config", "approved_config", "model_version"],
            ),
        ]
    if "alerts" in doc:
        a = doc["alerts"]
        parts += [
            "<h2>Monitor alerts</h2>",
            f"<p>{a['total']} alerts: {e(json.dumps(a['by_kind']))}</p>",
            _table(a["latest"], ["kind", "index", "message"]),
        ]
    pup = doc.get("puppets")
    if pup:
        npf = pup["non_personalised_ignores_history"]
        ok = npf["identical"] and npf["checked"]
        parts += [
            "<h2>Sock-puppet audit</h2>",
            f"<p>{e(doc['method']['puppets'])}</p>",
            f"<p>Mean exploit fraction {pup['mean_exploit_fraction']:.1%} (non-personalised feed "
            f"{pup['mean_baseline_non_personalised']:.1%}, random draw "
            f"{pup['mean_baseline_random']:.1%}); "
            f"mean change of the persona's topic share from the first to the last page "
            f"{pup['mean_rabbit_hole_delta']:+.1%}.</p>",
            f"<p class='{'ok' if ok else 'bad'}'>Non-personalised feed ignores history: "
            f"{'yes' if ok else 'NO' if npf['checked'] else 'not checked (the pool changed)'} "
            f"({npf['puppets']} puppets with different histories).</p>",
            plots.get("curves", ""),
            plots.get("exploit", ""),
            _table(pup["personas"], PERSONA_COLUMNS),
        ]
    parts.append("<p>Machine-readable: the JSON file beside this report.</p>")
    return "\n".join(parts)


def write_report(doc: dict[str, Any], path: Path) -> Path:
    """``path`` (HTML) and the same name with ``.json``; returns the JSON path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(doc, indent=1, default=str))
    path.write_text(render_html(doc))
    return json_path
