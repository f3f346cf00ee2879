"""`cleanroom cluster …`: the nodes of this clean room, their live models and
bus lag, and whether the bus and the state store answer."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cleanroom.cli.common import data_directory, table_console

cluster_app = typer.Typer(help="The nodes of this clean room.", no_args_is_help=True)


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
            "up" if n["up"] else "DOWN",
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
