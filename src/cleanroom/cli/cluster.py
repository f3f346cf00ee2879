"""`cleanroom cluster …`: the nodes of this clean room, their live models and
bus lag, whether the bus and the state store answer (``status``), and whether
the users' shared online states agree with the vault (``check``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cleanroom.cli.common import data_directory, fail, open_room, require_shared, table_console
from cleanroom.cli.help import group

cluster_app = group(help="The nodes of this clean room. Example: cleanroom cluster status")


def cluster_status() -> dict[str, Any]:
    from cleanroom.cluster.bus import bus_health
    from cleanroom.cluster.nodes import Nodes
    from cleanroom.cluster.state import RedisStates

    dd = data_directory()
    config = dd.load()
    db = dd.database(config)
    try:
        nodes = Nodes(db).list()
    finally:
        db.dispose()
    state: dict[str, Any] = {"ok": True, "kind": "process"}
    if config.state_url:
        store = RedisStates(config.state_url)
        try:
            state = {"kind": "redis", **store.health()}
        finally:
            store.close()
    bus: dict[str, Any] = {"ok": True, "kind": "process"}
    if config.bus_url:
        bus = {"kind": "nats", **bus_health(config.bus_url)}
    return {"nodes": nodes, "bus": bus, "state_store": state}


@cluster_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False,
) -> None:
    """The nodes (name, address, live model, bus lag, last heartbeat), the bus
    and the state store."""
    out = cluster_status()
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.table import Table

    table = Table(title="nodes")
    for col in ("node", "address", "up", "model", "bus lag", "heartbeat"):
        table.add_column(col)
    for n in out["nodes"]:
        info = n["info"]
        table.add_row(
            n["name"],
            n["url"] or f"{n['host']} pid {n['pid']}",
            "up" if n["up"] else "stopped" if n["state"] == "stopped" else "DOWN",
            (info.get("model") or "-")[:19],
            str((info.get("bus") or {}).get("lag", "-")),
            f"{n['age_ms'] / 1000:.1f} s ago",
        )
    console = table_console()
    console.print(table)
    for name in ("bus", "state_store"):
        part = out[name]
        where = part.get("url") or "in each process"
        ok = "ok" if part.get("ok") else f"NOT ANSWERING ({part.get('error')})"
        console.print(f"{name.replace('_', ' ')}: {part['kind']}, {where}: {ok}")


@cluster_app.command("check")
def check(
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="check this many users, at random")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False,
) -> None:
    """Whether every user's online state in the shared store is the fold of
    their events stored in the vault (exit 1 if one is not, or if a deleted
    user's state is left)."""
    from rich.progress import Progress

    from cleanroom.cluster.state import RedisStates
    from cleanroom.room.consistency import check_states
    from cleanroom.room.recommender import shared_prefix

    config = data_directory().load()
    if not config.state_url:
        fail(
            "no shared state store: each server process holds its own users' states "
            "(cleanroom init --state redis://HOST:PORT/N to share one)"
        )
    require_shared(config)
    with open_room() as room:
        store = RedisStates(config.state_url, prefix=shared_prefix(room))
        try:
            with Progress(transient=True, disable=as_json) as bar:
                task = bar.add_task("checking states", total=None)
                result = check_states(
                    room, store, sample=sample,
                    progress=lambda n, total: bar.update(task, completed=n, total=total),
                )  # fmt: skip
        finally:
            store.close()
    out = result.to_dict()
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        console = table_console()
        console.print(
            f"{result.users} users checked in {result.seconds:.1f} s: {result.equal} equal to "
            f"the fold of their stored events, {result.missing} not held (folded on their "
            f"next feed), {len(result.differ)} differ, {len(result.orphans)} held for users "
            "the vault no longer has"
        )
        for label, users in (("differ", result.differ), ("orphans", result.orphans)):
            if users:
                console.print(f"{label}: {', '.join(users[:20])}{' …' if len(users) > 20 else ''}")
    if not result.ok:
        raise typer.Exit(1)
