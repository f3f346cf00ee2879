"""The demo's last step: the console on what the demo just did.

The tokens of the demo's principals are written to ``console-tokens.txt``
(0600) beside the demo's data, so a newcomer can sign in as the oversight
analyst, a user, the operator or the parent's engineer. With ``--serve`` (on
a terminal) a server keeps running with the monitor's alerts until Ctrl-C;
otherwise the command that serves it is printed.

``python -m cleanroom.demo.browse`` (``make console``) serves it again later:
the demo's two witnesses first (the oversight body's witness and its
monitor), their new addresses written into the operator's configuration, so
every checkpoint the console shows is cosigned as during the demo.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cleanroom.demo.narration import console, step
from cleanroom.ledger.serving import ServerProcess

PORT = 8080
DEMO = Path(".cleanroom/demo")
TOKENS = "console-tokens.txt"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def browse(
    log_dir: Path, state: Path, tokens: dict[str, tuple[str, str]], base: Path, serve: bool
) -> None:
    step("26. Browse what the demo did: the transparency center and the consoles")
    path = base / TOKENS
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for name, (token, what) in tokens.items():
            f.write(f"{name}\t{what}\t{token}\n")
    picks = ("olga-oversight", "viewer-15", "oscar-ops", "pete-parent", "rita-research")
    console.print(f"sign-in tokens for the demo's principals: {path}")
    for name in picks:
        if name in tokens:
            console.print(f"  {name:<15} {tokens[name][1]:<20} {tokens[name][0][:24]}…")
    if not serve or not sys.stdin.isatty():
        console.print(
            "serve it: [bold]make console[/] (with its witnesses; or cleanroom --data-dir "
            f"{log_dir} serve --monitor-state {state}), then open "
            f"[bold]http://127.0.0.1:{PORT}/console[/]"
        )
        return
    run_console(log_dir, state)


def run_console(log_dir: Path, state: Path) -> None:
    """Serve the console on ``log_dir`` with the monitor's alerts until Ctrl-C
    (or a SIGTERM: the server, a process of its own, stops with it)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ServerProcess(
        log_dir,
        env={"CLEANROOM_MONITOR_STATE": str(state)},
        port=PORT if _port_free(PORT) else None,  # the well-known port when it is free
    )
    try:
        server.wait_ready(120)
        console.print(f"console: [bold]{server.url}/console[/]  API docs: {server.url}/docs")
        console.print("(Ctrl-C stops it)")
        while server.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def read_tokens(base: Path = DEMO) -> dict[str, str]:
    """The demo's principals and their sign-in tokens (``console-tokens.txt``)."""
    rows = [line.split("\t") for line in (base / TOKENS).read_text().splitlines()]
    return {name: token.strip() for name, _, token in rows}


@contextmanager
def witnesses_running(base: Path = DEMO) -> Iterator[None]:
    """The demo's two witnesses (the oversight body's and its monitor) serving
    again, their new addresses in the operator's configuration, so the
    checkpoints a server of the last demo signs are cosigned."""
    from cleanroom.demo.narration import ORIGIN
    from cleanroom.oversight.witness import MonitorWitness
    from cleanroom.room.config import DataDir

    if not (base / "operator" / "config.json").exists():
        raise SystemExit(f"no demo in {base}: run `make demo` first")
    dd = DataDir(base / "operator")
    witness = ServerProcess(base / "witness", witness_only=True).wait_ready()
    monitor = MonitorWitness(base / "oversight", ORIGIN, dd.read_key("log").verifier.vkey).serve()
    try:
        config = dd.load()
        urls = {"oversight.example/w1": witness.url, "oversight.example/monitor": monitor.url}
        for w in config.witnesses:  # the same keys, at their new addresses
            name = w.vkey.split("+")[0]
            if name in urls:
                w.url = urls[name] + "/witness"
        dd.save(config)
        yield
    finally:
        monitor.stop()
        witness.stop()


def main(base: Path = DEMO) -> None:
    """The console on the last demo, its witnesses running again."""
    with witnesses_running(base):
        names = list(read_tokens(base))
        console.print(f"sign in with a token from {base / TOKENS} ({', '.join(names[:6])}, …)")
        run_console(base / "operator", (base / "oversight").resolve())


if __name__ == "__main__":
    main()
