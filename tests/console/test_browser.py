"""The console in a real browser (Playwright driving Debian's Chromium) against
a clean room served by uvicorn: the public center verifies the checkpoint with
the browser's own crypto, an oversight analyst sees the hidden-ranking
incident as one and approves a declared boost with a review signed in the
page, a user finds the support agent's access to their profile, and the
foreign parent's engineer gets a refusal page."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cleanroom.api import create_app
from cleanroom.ledger.serving import serve_in_thread
from cleanroom.oversight.alerts import Alert, AlertStore
from tests.support import OPS, PRINCIPALS, USER, add_principal, make_dir

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.slow

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
HIDDEN = "sha256:" + "ab" * 32  # the ranking configuration the rogue feeds were ranked with


@dataclass
class Served:
    url: str
    tokens: dict[str, str]
    room: object
    keys: Path


def _alerts(state: Path) -> None:
    """What the monitor keeps after a hidden ranking change: a replay mismatch
    and an unapproved-model alert per served feed, all from one configuration."""
    alerts = []
    for i in range(51):
        alerts.append(Alert("replay-mismatch", 100 + i, f"feed {i} differs",
                            {"entries": [100 + i], "served_config": HIDDEN}))  # fmt: skip
        entry = f'{{"ranking_config":"{HIDDEN}","type":"feed.served"}}'
        proven = {str(100 + i): {"entry": entry}}
        alerts.append(Alert("unapproved-model", 100 + i, f"feed {i} unapproved",
                            {"entries": [100 + i], "proven": proven}))  # fmt: skip
    alerts.append(Alert("deletion-late", 7, "order done late", {"entries": [7]}))
    AlertStore(state).add(alerts)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, log_signer) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("console")
    dd = make_dir(tmp, f"sqlite:///{tmp / 'cleanroom.db'}", log_signer)
    state = tmp / "monitor"
    _alerts(state)
    app = create_app(str(dd.path), monitor_state=str(state))
    server = serve_in_thread(app, name="console", wait_s=120)
    try:
        room = app.state.room
        tokens = {}
        for p in [*PRINCIPALS, OPS]:
            add_principal(room, p)
            tokens[p.name] = room.principals.issue_token(p.name)

        def call(method: str, path: str, who: str, **kw):
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            return httpx.request(method, server.url + path, headers=headers, timeout=60, **kw)

        assert call("PUT", "/v1/users/u1", "app", json=USER).status_code == 201
        videos = [{"id": f"v{i}", "creator": f"c{i % 2}"} for i in range(3)]
        assert call("POST", "/v1/videos", "app", json={"videos": videos}).status_code == 200
        # the support agent reads u1's profile, for support (on the record)
        assert call("GET", "/v1/users/u1?purpose=support", "alice").status_code == 200
        now = int(time.time() * 1000)
        boost = {"video": "v1", "factor": 2.0, "reason": "public health campaign",
                 "start_ms": now, "end_ms": now + 3_600_000, "regions": ["US"]}  # fmt: skip
        r = call("POST", "/v1/boosts", "ops", json=boost)
        assert r.status_code == 201, r.text
        room.log.integrate()
        yield Served(server.url, tokens, room, dd.keys)
    finally:
        server.stop(60)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


def _signed_in(browser, served: Served, who: str):
    page = browser.new_context().new_page()
    page.goto(served.url + "/console/login")
    page.get_by_label("API token").fill(served.tokens[who])
    page.get_by_role("button", name="Sign in").click()
    return page


def test_the_public_center_verifies_the_checkpoint_in_the_browser(browser, served) -> None:
    page = browser.new_context().new_page()
    page.goto(served.url + "/console")
    page.get_by_role("button", name="Verify this checkpoint in my browser").click()
    result = page.locator("#verify-result")
    sync_api.expect(result).to_contain_text("Verified: the log signed size", timeout=15_000)
    # the log grows: the browser checks the new checkpoint extends the one it saw
    seen = served.room.log.store.latest().size
    served.room.log.append({"type": "ops.note", "v": 1})
    served.room.log.integrate()
    page.get_by_role("button", name="Verify this checkpoint in my browser").click()
    sync_api.expect(result).to_contain_text(
        f"extends the checkpoint this browser verified before (size {seen})", timeout=15_000
    )
    # a browser that saw another tree at a smaller size (a fork shown to it): refused
    origin = served.room.log.store.latest().checkpoint.origin
    forged = '{"size": 2, "root": "' + "A" * 43 + '="}'
    page.evaluate(f"localStorage.setItem('cleanroom.checkpoint.{origin}', '{forged}')")
    page.get_by_role("button", name="Verify this checkpoint in my browser").click()
    sync_api.expect(result).to_contain_text("NOT consistent", timeout=15_000)
    # a key that is not the log's: the same page says it does not verify
    page.fill("#log-vkey", served.room.data_dir.read_key("oversight-root").verifier.vkey)
    page.get_by_role("button", name="Verify this checkpoint in my browser").click()
    sync_api.expect(result).to_contain_text("Does not verify", timeout=15_000)
    # an entry's inclusion proof, checked against the signed root
    page.goto(served.url + "/console/ledger/3")
    page.get_by_role("button", name="Verify the proof in my browser").click()
    sync_api.expect(page.locator("#verify-result")).to_contain_text(
        "entry 3 is in the log", timeout=15_000
    )


def test_an_analyst_sees_one_incident_and_approves_a_declared_boost(
    browser, served, tmp_path: Path
) -> None:
    page = _signed_in(browser, served, "olga")
    assert page.url.endswith("/console/oversight")
    rows = page.locator("#incidents tbody tr")
    sync_api.expect(rows).to_have_count(2)  # 103 alerts, 2 causes
    top = rows.first
    sync_api.expect(top).to_contain_text("102")
    sync_api.expect(top).to_contain_text("feeds ranked with a configuration no release approved")
    top.get_by_role("link").click()
    page.get_by_label("Note").fill("traced to a patched ranking on node 2")
    page.get_by_role("button", name="Acknowledge").click()
    sync_api.expect(page.locator("text=acknowledge by olga")).to_be_visible()
    # the boost: signed in the page with the reviewer's key file
    page.goto(served.url + "/console/oversight")
    key = tmp_path / "reviewer.key"
    key.write_text((served.keys / "reviewer-oversight-reviewer.key").read_text())
    boost = page.locator("article.boost").first
    boost.locator("input[type=file]").set_input_files(str(key))
    boost.get_by_role("button", name="Sign and approve").click()
    page.wait_for_url("**/console/oversight#boosts")
    sync_api.expect(page.locator("#boosts")).to_contain_text("No boost is waiting for review")
    approved = served.room.boosts.list("approved")
    assert len(approved) == 1 and approved[0]["reviewed_by"] == "olga"
    entries = served.room.log.store.search
    from cleanroom.ledger.search import Query

    _, acks = entries(Query(type="oversight.incident"))
    assert len(acks) == 1


def test_a_user_finds_the_support_agents_access_to_their_profile(browser, served) -> None:
    page = _signed_in(browser, served, "ulla")
    assert page.url.endswith("/console/me")
    others = page.locator("#accesses table").first
    sync_api.expect(others).to_contain_text("alice")
    sync_api.expect(others).to_contain_text("support")
    others.get_by_role("link").first.click()
    page.get_by_role("button", name="Verify the proof in my browser").click()
    sync_api.expect(page.locator("#verify-result")).to_contain_text("is in the log", timeout=15_000)


def test_the_parents_engineer_gets_a_refusal_page(browser, served) -> None:
    page = _signed_in(browser, served, "pete")
    response = page.goto(served.url + "/console/oversight")
    assert response is not None and response.status == 403
    sync_api.expect(page.locator(".refusal")).to_contain_text(
        "only-oversight-reaches-oversight-data"
    )
    sync_api.expect(page.locator(".refusal")).to_contain_text("on the record")


A11Y = """() => {
  const out = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const named = el.labels.length || el.getAttribute('aria-label');
    if (!el.hidden && !named) out.push('unlabelled ' + (el.id || el.name));
  }
  for (const img of document.querySelectorAll('img')) if (!img.alt) out.push('img without alt');
  for (const svg of document.querySelectorAll('svg')) {
    const told = svg.querySelector('title') && svg.querySelector('desc');
    if (svg.getAttribute('role') !== 'img' || !told) out.push('chart without a text');
  }
  if (!document.documentElement.lang) out.push('no lang');
  if (document.querySelectorAll('h1').length !== 1) out.push('not one h1');
  return out;
}"""


def test_pages_are_labelled_and_work_from_the_keyboard(browser, served) -> None:
    page = browser.new_context().new_page()
    for path in ("/console", "/console/ledger", "/console/ledger/2", "/console/login"):
        page.goto(served.url + path)
        assert page.evaluate(A11Y) == [], path
    signed_pages = (
        ("olga", "/console/oversight"),
        ("ulla", "/console/me"),
        ("ops", "/console/operator"),
        ("rita", "/console/research"),
    )
    for who, path in signed_pages:
        signed = _signed_in(browser, served, who)
        signed.goto(served.url + path)
        assert signed.evaluate(A11Y) == [], path
    # keyboard only: from the key field, Tab reaches the button, Enter verifies
    page.goto(served.url + "/console")
    page.focus("#log-vkey")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#verify-result")).to_contain_text("Verified", timeout=15_000)
