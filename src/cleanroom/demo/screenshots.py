"""``python -m cleanroom.demo.screenshots DIR``: PNGs of the console's main
pages on what the last demo did (``make screenshots``), taken in Debian's
Chromium with Playwright. Runs the demo first when there is none to show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cleanroom.demo.browse import DEMO, TOKENS, read_tokens, witnesses_running
from cleanroom.ledger.serving import ServerProcess

BASE = DEMO
CHROMIUM = "/usr/bin/chromium"


def main(out: Path) -> None:

    if not (BASE / TOKENS).exists():
        subprocess.check_call([sys.executable, "-m", "cleanroom.demo", "--keep"])
    out.mkdir(parents=True, exist_ok=True)
    tokens = read_tokens(BASE)
    with witnesses_running(BASE):
        _shoot(out, tokens)


def _shoot(out: Path, tokens: dict[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    server = ServerProcess(
        BASE / "operator", env={"CLEANROOM_MONITOR_STATE": str((BASE / "oversight").resolve())}
    ).wait_ready(120)
    verified = "#verify-result.ok, #verify-result.bad"
    shots = [  # (who signs in, page, name, a button to press, what to wait for then)
        (None, "/console", "center", "#verify-checkpoint button", verified),
        (None, "/console/ledger?type=access.*", "ledger", None, None),
        (None, "/console/ledger/12", "entry", "#verify-inclusion button", verified),
        ("olga-oversight", "/console/oversight", "oversight", None, None),
        ("viewer-15", "/console/me", "user", None, None),
        ("oscar-ops", "/console/operator", "operator", None, None),
        ("rita-research", "/console/research", "research", "form.actions button", "table"),
        ("pete-parent", "/console/oversight", "refused", None, None),
    ]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            for who, path, name, click, wait in shots:
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                if who is not None:
                    page.goto(server.url + "/console/login")
                    page.fill("#token", tokens[who])
                    page.click("form.stack button[type=submit]")
                page.goto(server.url + path)
                if click:
                    page.click(click)
                    page.wait_for_selector(wait, timeout=15_000)
                if name == "oversight":  # and the incident behind the first row
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    page.click("#incidents tbody tr a")
                    name = "incident"
                # (an incident's page lists every alert: its first screen says enough)
                page.screenshot(path=str(out / f"{name}.png"), full_page=name != "incident")
                print(out / f"{name}.png")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
