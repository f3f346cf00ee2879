"""The console over HTTP (through the ASGI app): sign-in gives an HttpOnly,
SameSite=Strict session bound to the token; every form needs the session's
CSRF token; the console asks the gate what the API asks, so refusals are the
same decisions, on the record; bad input gets a page that says why and
changes nothing stored."""

from __future__ import annotations

import json
import re

from cleanroom.ledger.search import Query
from cleanroom.oversight.alerts import Alert, AlertStore
from tests.support import Api


def _sign_in(api: Api, who: str):
    client = api.client
    client.cookies.clear()
    r = client.post("/console/login", data={"token": api.tokens[who]}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def _size(api: Api) -> int:
    return api.room.log.store.sequenced_size()


def test_sign_in_sets_a_strict_httponly_session_and_sign_out_ends_it(api: Api) -> None:
    r = _sign_in(api, "olga")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert api.tokens["olga"] not in cookie  # the session, not the token
    assert r.headers["location"] == "/console/oversight"
    page = api.client.get("/console/oversight")
    assert page.status_code == 200 and "Signed in as" in page.text
    out = api.client.post("/console/logout", data={"csrf": _csrf(page.text)},
                          follow_redirects=False)  # fmt: skip
    assert out.status_code == 303
    api.client.cookies.set("cleanroom_session", cookie.split(";")[0].split("=", 1)[1])
    assert api.client.get("/console/oversight").status_code == 401  # the session ended


def test_a_revoked_token_ends_its_console_session(api: Api) -> None:
    _sign_in(api, "ulla")
    assert api.client.get("/console/me").status_code == 200
    api.room.principals.revoke("ulla")
    r = api.client.get("/console/me")
    assert r.status_code == 401 and "Sign in" in r.text


def test_a_bad_token_gets_the_sign_in_page_again(api: Api) -> None:
    api.client.cookies.clear()
    r = api.client.post("/console/login", data={"token": "crt_nope"})
    assert r.status_code == 401 and "malformed" in r.text
    assert "set-cookie" not in r.headers


def test_a_form_without_the_sessions_csrf_token_is_refused_and_records_nothing(
    api: Api, tmp_path
) -> None:
    AlertStore(tmp_path).add([Alert("deletion-late", 3, "late", {"entries": [3]})])
    api.app.state.monitor_state = str(tmp_path)
    _sign_in(api, "olga")
    home = api.client.get("/console/oversight")
    incident = re.search(r"/console/oversight/incidents/(inc-[0-9a-f]{12})", home.text).group(1)
    before = _size(api)
    for csrf in (None, "0" * 64):
        data = {"action": "acknowledge", "note": "x", **({"csrf": csrf} if csrf else {})}
        r = api.client.post(f"/console/oversight/incidents/{incident}", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    r = api.client.post(f"/console/oversight/incidents/{incident}",
                        data={"action": "acknowledge", "csrf": _csrf(home.text)},
                        headers={"Origin": "https://evil.example"})  # fmt: skip
    assert r.status_code == 403 and "another site" in r.text
    # only the page views' own decisions were recorded, no incident entry
    _, acks = api.room.log.store.search(Query(type="oversight.incident"))
    assert acks == [] and _size(api) - before <= 1
    data = {"action": "resolve", "note": "", "csrf": _csrf(home.text)}
    ok = api.client.post(f"/console/oversight/incidents/{incident}", data=data)
    assert ok.status_code == 422 and "how it was resolved" in ok.text
    ok = api.client.post(
        f"/console/oversight/incidents/{incident}",
        data={"action": "resolve", "note": "order re-run", "csrf": _csrf(home.text)},
    )
    assert ok.status_code == 200 and "resolve by olga" in ok.text
    _, acks = api.room.log.store.search(Query(type="oversight.incident"))
    entry = json.loads(acks[0][1])
    assert entry["incident"] == incident and entry["by"] == "olga" and entry["entries"] == [3]


def test_the_console_refuses_what_the_api_refuses_with_the_same_recorded_decision(
    api: Api,
) -> None:
    _sign_in(api, "pete")
    r = api.client.get("/console/oversight")
    assert r.status_code == 403
    assert "only-oversight-reaches-oversight-data" in r.text
    index = int(re.search(r"/console/ledger/(\d+)", r.text).group(1))
    entry = json.loads(api.room.log.store.entry(index))
    assert entry["principal"] == "pete" and entry["decision"] == "deny"
    api_answer = api.call("GET", "/v1/oversight/topics", "pete")
    assert api_answer.status_code == 403
    assert api_answer.json()["rules"] == ["only-oversight-reaches-oversight-data"]
    # an operator's support agent has no page of the oversight body's either
    _sign_in(api, "alice")
    assert api.client.get("/console/oversight").status_code == 403
    assert api.client.get("/console/me").status_code == 403  # not a user


def test_a_user_sees_who_read_their_profile_and_why(api: Api) -> None:
    assert api.call("GET", "/v1/users/u1?purpose=support", "alice").status_code == 200
    api.room.log.integrate()
    _sign_in(api, "ulla")
    page = api.client.get("/console/me")
    assert page.status_code == 200
    others = page.text.split("By someone else")[1].split("Your own requests")[0]
    assert "alice" in others and "support" in others and "read Profile" in others
    assert "u2" not in page.text  # nobody else's data
    export = api.client.get("/console/me/export")
    assert export.status_code == 200 and export.json()["user"]["id"] == "u1"


def test_bad_console_input_gets_a_page_not_a_crash(api: Api) -> None:
    for path in ("/console/ledger?cursor=%%%", "/console/ledger?since=yesterday",
                 "/console/ledger/99999999", "/console/ledger/-1"):  # fmt: skip
        r = api.client.get(path)
        assert r.status_code in (400, 404, 422), (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), path
    assert api.client.get("/console/ledger?type=access").status_code == 200


def test_docs_and_console_load_nothing_from_the_internet(api: Api) -> None:
    for path in ("/docs", "/redoc", "/console", "/console/ledger"):
        html = api.client.get(path).text
        assert not re.search(r"(src|href)=\"https?://", html), path
    for asset in ("/console/static/console.js", "/console/static/console.css"):
        assert api.client.get(asset).status_code == 200
    js = api.client.get("/console/static/console.js").text
    assert "http" not in js.replace("https://in-toto.io", "")  # no remote fetch
    csp = api.client.get("/console").headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_a_researchers_query_is_a_posted_form_that_spends_budget_on_the_record(
    api: Api,
) -> None:
    def spent() -> int:
        api.room.log.integrate()
        return len(api.room.log.store.search(Query(type="privacy.spent"))[1])

    _sign_in(api, "rita")
    form = api.client.get("/console/research")
    assert form.status_code == 200 and spent() == 0  # looking spends nothing
    r = api.client.post("/console/research", data={"by": "kind", "min_group": "10"})
    assert r.status_code == 403 and spent() == 0  # no CSRF token: no query
    csrf = _csrf(form.text)
    r = api.client.post("/console/research", data={"by": "kind", "min_group": "10", "csrf": csrf})
    assert r.status_code == 200 and spent() == 1
    assert "spent" in r.text
    csv_answer = api.client.post(
        "/console/research.csv", data={"by": "kind", "min_group": "10", "csrf": csrf}
    )
    assert csv_answer.status_code == 200 and csv_answer.text.startswith("kind,count")
    assert spent() == 2
    for bad in ({"by": "user"}, {"by": "kind", "min_group": "3"}, {"by": "kind", "min_group": "x"}):
        r = api.client.post("/console/research", data={**bad, "csrf": csrf})
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert spent() == 2


def test_a_sign_in_posted_from_another_site_is_refused(api: Api) -> None:
    api.client.cookies.clear()
    r = api.client.post(
        "/console/login",
        data={"token": api.tokens["olga"]},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_a_user_deletes_their_account_from_their_page(api: Api) -> None:
    _sign_in(api, "ulla")
    page = api.client.get("/console/me")
    csrf = _csrf(page.text)
    r = api.client.post("/console/me/delete", data={"csrf": csrf, "confirm": "yes"})
    assert r.status_code == 422 and api.room.vault.counts()["users"] == 2  # not confirmed
    r = api.client.post("/console/me/delete", data={"csrf": csrf, "confirm": "delete"})
    assert r.status_code == 200 and "Your account is deleted" in r.text
    assert api.room.vault.counts()["users"] == 1
    receipt = int(re.search(r"/console/ledger/(\d+)", r.text).group(1))
    assert json.loads(api.room.log.store.entry(receipt))["type"] == "deletion"
    assert api.client.get("/console/me").status_code == 401  # the principal went with the data


def test_the_operator_revokes_a_token_from_the_desk_on_the_record(api: Api) -> None:
    token_id = api.tokens["pete"].split("_")[1]
    _sign_in(api, "alice")
    desk = api.client.get("/console/operator")
    assert desk.status_code == 200 and token_id in desk.text
    assert api.tokens["pete"] not in desk.text  # ids, never a secret
    csrf = _csrf(desk.text)
    form = {"csrf": csrf, "name": "pete", "token": token_id, "reason": ""}
    r = api.client.post("/console/operator/revocations", data=form)
    assert r.status_code == 422 and "on the record" in r.text  # a reason is required
    r = api.client.post("/console/operator/revocations",
                        data={**form, "token": "x", "reason": "leaked"})  # fmt: skip
    assert r.status_code == 422 and "16 hexadecimal" in r.text
    assert api.call("GET", "/v1/boosts", "pete").status_code == 403  # still live
    form["reason"] = "left the project"
    r = api.client.post("/console/operator/revocations", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert api.call("GET", "/v1/boosts", "pete").status_code == 401
    api.room.log.integrate()  # (a search covers the signed checkpoint)
    _, hits = api.room.log.store.search(Query(type="principal.tokens_revoked"))
    entry = json.loads(hits[0][1])
    assert (entry["principal"], entry["by"], entry["tokens"]) == ("pete", "alice", [token_id])
    after = api.client.get("/console/operator")
    assert "1 revocations on the record" in after.text
    assert f"/console/ledger/{hits[0][0]}" in after.text
    again = api.client.post("/console/operator/revocations", data=form)
    assert again.status_code == 409 and "no live token" in again.text

    # a researcher signed in cannot revoke the operator's tokens: the gate refuses
    _sign_in(api, "rita")
    csrf = _csrf(api.client.get("/console/research").text)
    cut = {"csrf": csrf, "name": "alice", "token": "", "reason": "cut them off"}
    r = api.client.post("/console/operator/revocations", data=cut)
    assert r.status_code == 403 and "Tokens" in r.text
    assert api.call("GET", "/v1/boosts", "alice").status_code == 200  # alice's token is live


def test_every_link_on_the_main_pages_leads_somewhere(api: Api) -> None:
    """Links made by the templates' macros included (they once lost the prefix)."""
    assert api.call("GET", "/v1/users/u1?purpose=support", "alice").status_code == 200
    api.room.log.integrate()
    seen: set[str] = set()
    for who, path in ((None, "/console"), ("olga", "/console/oversight"),
                      ("alice", "/console/operator"), ("ulla", "/console/me")):  # fmt: skip
        api.client.cookies.clear()
        if who is not None:
            _sign_in(api, who)
        html = api.client.get(path).text
        links = set(re.findall(r'href="(/[^"#]*)', html))
        assert any(h.startswith("/console/ledger") for h in links), path
        for href in sorted(links - seen)[:60]:
            seen.add(href)
            r = api.client.get(href.replace("&amp;", "&"))
            assert r.status_code == 200, (path, href, r.status_code)
