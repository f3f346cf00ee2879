"""The ``cleanroom`` command: init, serve, demo, feed and eval here; one
verb group per part in the modules beside it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer
    from click.exceptions import ClickException

    NoArgsIsHelpError = ClickException  # type: ignore[misc,assignment]

from cleanroom.cli import help as help_text
from cleanroom.cli.audit import audit_app
from cleanroom.cli.cluster import cluster_app
from cleanroom.cli.common import data_directory, fail, run_server, state, table_console
from cleanroom.cli.ledger import ledger_app, witness_app
from cleanroom.cli.load import load_app
from cleanroom.cli.principals import deletion_app, policy_app, principal_app
from cleanroom.cli.release import release_app
from cleanroom.cli.screen import screen_app
from cleanroom.cli.status import status
from cleanroom.errors import CleanroomError
from cleanroom.oversight.cli import oversight_app
from cleanroom.room.config import (
    DEFAULT_JURISDICTION,
    DEFAULT_OPERATOR,
    DEFAULT_ORIGIN,
    Config,
    ResidencyConfig,
    SiteConfig,
)

help_text.install()
app = typer.Typer(
    help="Cleanroom: a verifiable clean room — a platform's recommender and users' data under "
    "one jurisdiction, every access on a public ledger an oversight body checks. Start: "
    "cleanroom init, cleanroom load users|videos|events FILE, cleanroom serve, cleanroom status.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(ledger_app, name="ledger")
app.add_typer(witness_app, name="witness")
app.add_typer(principal_app, name="principal")
app.add_typer(deletion_app, name="deletion")
app.add_typer(policy_app, name="policy")
app.add_typer(release_app, name="release")
app.add_typer(screen_app, name="screen")
app.add_typer(oversight_app, name="oversight")
app.add_typer(audit_app, name="audit")
app.add_typer(cluster_app, name="cluster")
app.add_typer(load_app, name="load")
app.command("status")(status)


def _version(value: bool) -> None:
    if value:
        from cleanroom import __version__

        typer.echo(f"cleanroom {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    data_dir: Annotated[
        str | None,
        typer.Option("--data-dir", envvar="CLEANROOM_DATA_DIR", help="data directory"),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    state.data_dir = data_dir
    if data_dir:
        os.environ["CLEANROOM_DATA_DIR"] = str(Path(data_dir).resolve())


# --------------------------------------------------------------------------- init / serve


@app.command()
def init(
    origin: Annotated[str, typer.Option(help="checkpoint origin line / log key name")] = (
        DEFAULT_ORIGIN
    ),
    database_url: Annotated[
        str | None, typer.Option(help="database URL (default: SQLite in the data dir)")
    ] = None,
    jurisdiction: Annotated[
        str, typer.Option(help="jurisdiction of this site and of the users it serves")
    ] = DEFAULT_JURISDICTION,
    operator: Annotated[str, typer.Option(help="the trusted operator running this site")] = (
        DEFAULT_OPERATOR
    ),
    site: Annotated[str, typer.Option(help="name of this storage site")] = "site-1",
    oversight_vkey: Annotated[
        str | None,
        typer.Option(
            help="the oversight body's root public key (from `cleanroom oversight root-init`); "
            "without it a development root key is made in the data directory"
        ),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option("--bus", help="the event bus the nodes share: nats://HOST:PORT"),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", help="the users' online state the nodes share: redis://HOST:PORT/N"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="what was made, as JSON")] = False,
) -> None:
    """Create the data directory, the log signing key, the keyring and the system
    principals; pin the oversight body's root key; print the log's verifier key."""
    from cleanroom.cluster.nodes import check_bus_url, check_state_url
    from cleanroom.ledger.note import check_key_name, generate_signer
    from cleanroom.ledger.store import LedgerStore

    check_key_name(origin)
    for url, check in ((bus, check_bus_url), (state, check_state_url)):
        if url is not None:
            check(url)  # a malformed URL is refused before anything is written
    dd = data_directory()
    if dd.exists():
        config = dd.load()
        if config.origin != origin and origin != DEFAULT_ORIGIN:
            fail(f"{dd.path} already holds the log {config.origin!r}")
        if database_url is not None and database_url != config.database_url:
            fail(f"{dd.path} already holds its records at another database URL")
        if bus is not None or state is not None:  # joining (or leaving) a cluster
            config.bus_url = bus if bus is not None else config.bus_url
            config.state_url = state if state is not None else config.state_url
            dd.save(config)
    else:
        from cleanroom.vault.model import check_jurisdiction

        check_jurisdiction(jurisdiction)
        if oversight_vkey is not None:
            from cleanroom.ledger.authority import root_verifier

            root_verifier(oversight_vkey)  # a malformed key is refused before anything
        config = Config(
            origin=origin,
            database_url=database_url,
            site=SiteConfig(site, jurisdiction, operator),
            residency=ResidencyConfig([jurisdiction], [operator]),
            oversight_vkey=oversight_vkey,
            bus_url=bus,
            state_url=state,
        )
        dd.save(config)
    if not dd.has_key("log"):
        dd.write_key("log", generate_signer(config.origin))
    signer = dd.read_key("log")
    db = dd.database(config)
    try:
        cp = LedgerStore(db, config.origin, signer).init()
    finally:
        db.dispose()
    from cleanroom.room import CleanRoom
    from cleanroom.room.bootstrap import bootstrap

    # the keyring, the system principals, the first releases and the bundled
    # restricted-party lists (all on the record)
    with CleanRoom.open(dd, background=False) as room:
        bootstrapped = bootstrap(room, dd)
        room.screening.ensure_bundled(by="init")
        room.log.integrate()
        live = [k for k in ("policy", "model") if room.releases.live(k) is not None]
        oversight_vkey = room.config.oversight_vkey
    if as_json:
        typer.echo(json.dumps({
            "data_dir": str(dd.path), "site": config.site.name,
            "jurisdiction": config.site.jurisdiction, "operator": config.site.operator,
            "origin": config.origin, "tree_size": cp.size, "log_vkey": signer.verifier.vkey,
            "oversight_vkey": oversight_vkey, "bootstrapped": bootstrapped,
            "live": live, "bus": config.bus_url, "state": config.state_url,
        }, indent=2))  # fmt: skip
        return
    typer.echo(f"data directory: {dd.path}")
    typer.echo(
        f"site: {config.site.name} ({config.site.jurisdiction}, run by {config.site.operator})"
    )
    typer.echo(f"log origin: {config.origin} (tree size {cp.size})")
    if bootstrapped:
        if len(live) == 2:
            typer.echo(
                "first releases: reviewers operator-reviewer and oversight-reviewer "
                f"(keys in {dd.keys}), shipped policy set and model configuration approved "
                "and deployed (a development oversight root key: keys/oversight-root.key)"
            )
        else:
            typer.echo(
                "first releases: the shipped policy set and model configuration are approved by "
                "operator-reviewer and wait for the oversight body (its root key is pinned): it "
                "registers a reviewer with a root statement and approves them; then `cleanroom "
                "release deploy` them and the server starts"
            )
    typer.echo(signer.verifier.vkey)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
    workers: Annotated[int, typer.Option(help="server processes")] = 1,
    node: Annotated[
        str | None,
        typer.Option(help="this node's name in the cluster (default: host and process id)"),
    ] = None,
    monitor_state: Annotated[
        Path | None,
        typer.Option(help="the oversight monitor's state directory: its alerts on the console"),
    ] = None,
) -> None:
    """Serve the log at http://HOST:PORT/log/, the ledger API, the console at
    /console, the API's documentation at /docs, the witness and /healthz."""
    from cleanroom.cluster.nodes import check_node_name

    dd = data_directory()
    dd.load()
    if node is not None:
        check_node_name(node)
    if monitor_state is not None:
        if not monitor_state.is_dir():
            fail(f"--monitor-state {monitor_state} is not a directory")
        os.environ["CLEANROOM_MONITOR_STATE"] = str(monitor_state.resolve())
    run_server(dd, "cleanroom.api.app:app_from_env", host, port, workers, node=node)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="keep the demo data directory")] = False,
    serve: Annotated[
        bool, typer.Option(help="then keep the console running on what the demo did (Ctrl-C)")
    ] = False,
) -> None:
    """Run the end-to-end demonstration on the embedded default (SQLite, local keys)."""
    import subprocess

    # the demo is a program of its own (``python -m cleanroom.demo``): nothing imports it
    flags = [*(["--keep"] if keep else []), *(["--serve"] if serve else [])]
    cmd = [sys.executable, "-m", "cleanroom.demo", *flags]
    raise typer.Exit(subprocess.call(cmd))


# --------------------------------------------------------------------------- For You


@app.command()
def feed(
    user: Annotated[str | None, typer.Option(help="the user (local: opens the clean room)")] = None,
    url: Annotated[str | None, typer.Option(help="a running server: ask it over HTTP")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="CLEANROOM_TOKEN", help="the user's API token (--url)")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="a file (0600) holding the token instead of --token")
    ] = None,
    limit: Annotated[int, typer.Option(help="items per page (1-100)")] = 10,
    mode: Annotated[str | None, typer.Option(help="personalized or popular")] = None,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page")] = None,
    seed: Annotated[str | None, typer.Option(help="request seed (replays use it)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the feed as JSON")] = False,
) -> None:
    """A user's For You feed with the reasons for each item. With --url and
    --token it asks a running server; with --user it opens the clean room here
    (reading through the gate as the recommender) and records the feed on the
    ledger the same way."""
    if url:
        from cleanroom.storage.secrets import api_token

        token = api_token(token, token_file, required="--url")
        assert token is not None
        doc = _remote_feed(url, token, limit, mode, cursor, seed)
    else:
        if not user:
            fail("give --user USER (local) or --url URL --token TOKEN (a running server)")
        if cursor:
            fail("--cursor needs a running server (--url): a local feed is not kept")
        from cleanroom.room import CleanRoom
        from cleanroom.room.recommender import Recommender

        with CleanRoom.open(data_directory()) as room:
            rec = Recommender(room).start(background=False)
            served, index = rec.feed(user, limit=limit, mode=mode, seed=seed)
            doc = {**served.to_dict(), "ledger_index": index}
            rec.close()
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.table import Table

    table = Table(
        "#", "video", "creator", "score", "why", title=f"feed {doc['feed']} ({doc['mode']})"
    )
    for n, item in enumerate(doc["items"], doc["offset"] + 1):
        why = "; ".join(r["text"] for r in item["why"]) or ", ".join(item["sources"])
        table.add_row(str(n), item["video"], item["creator"], f"{item['score']:.4f}", why)
    table_console().print(table)
    typer.echo(f"ledger entry {doc['ledger_index']}; model {doc['model_version'][:19]}…")
    if doc.get("next_cursor"):
        typer.echo(f"next page: --cursor {doc['next_cursor']}")


def _remote_feed(
    url: str, token: str, limit: int, mode: str | None, cursor: str | None, seed: str | None
) -> dict:
    from cleanroom.audit.client import api_call

    params = {
        k: v for k, v in {"limit": limit, "mode": mode, "cursor": cursor, "seed": seed}.items() if v
    }
    return api_call(None, "GET", url, "/v1/feed", token, params=params)


@app.command("eval")
def eval_(
    dataset: Annotated[
        list[str] | None, typer.Option(help="bundled dataset(s): kuairec-small, kuairand-small")
    ] = None,
    train: Annotated[Path | None, typer.Option(help="train split, 'user item label' lines")] = None,
    valid: Annotated[Path | None, typer.Option(help="validation split")] = None,
    test: Annotated[Path | None, typer.Option(help="test split")] = None,
    split: Annotated[str, typer.Option(help="the split to report: test or valid")] = "test",
    baselines: Annotated[bool, typer.Option(help="also measure the baselines")] = True,
    plot: Annotated[Path | None, typer.Option(help="write a bar chart (PNG) here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
) -> None:
    """Offline evaluation (the SIGformer protocol): our engine against
    popularity, EASE, implicit ALS, ALS with exposures as weak positives and
    item-kNN (each tuned on the validation split) in the same run, with a
    table, JSON or a plot. Any dataset in the 'user item label' format:
    --train/--valid/--test."""
    from cleanroom.foryou.evaluate import EvalError, run

    if split not in ("test", "valid"):
        fail("--split must be test or valid")
    if train or valid or test:
        if not (train and test) or dataset:
            raise EvalError("give --train and --test (and --valid), or --dataset, not both")
        sources = [("files", {"train": train, "test": test, **({"valid": valid} if valid else {})})]
    else:
        sources = [(d, None) for d in (dataset or ["kuairec-small", "kuairand-small"])]
    if split == "valid" and any(f is not None and "valid" not in f for _, f in sources):
        fail("--split valid needs --valid")
    results = run(sources, split=split, baselines=baselines, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(results if len(results) > 1 else results[0], indent=2))
    else:
        from cleanroom.foryou.evaluate import table

        for res in results:
            table_console().print(table(res))
    if plot:
        from cleanroom.foryou.evaluate import plot_results

        plot_results(results, plot)
        if not as_json:
            typer.echo(f"plot written to {plot}")


# --------------------------------------------------------------------------- entry point


def main() -> None:
    """Run the CLI; errors become one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except CleanroomError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
