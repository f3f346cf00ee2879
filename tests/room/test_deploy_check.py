"""The deploy check the serving process cannot skip: a fresh clean room
bootstraps its first releases on the record; the server then loads only the
live, approved policy set and model configuration, with their deployment
proven on the signed ledger. Altered content, an unapproved deployment written
straight into the database, and a deployment not on the ledger all stop the
server, with a ``release.refused`` entry."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cleanroom.api import create_app
from cleanroom.foryou import RankingConfig
from cleanroom.gate.policy import shipped
from cleanroom.release import NotApproved
from cleanroom.release.verify import ledger_entries, replay
from cleanroom.room import CleanRoom
from cleanroom.room.bootstrap import bootstrap, sign_review
from cleanroom.room.config import DataDir
from cleanroom.room.live import load_model_config, load_policy
from tests.support import ORIGIN


@pytest.fixture
def dd(data_dir: DataDir) -> DataDir:
    return data_dir


def ledger(room: CleanRoom) -> list[tuple[int, dict]]:
    return ledger_entries(room.log.store)


def test_a_fresh_clean_room_bootstraps_on_the_record(dd: DataDir) -> None:
    with TestClient(create_app(str(dd.path))) as c:
        room = c.app.state.room
        assert c.app.state.policy_release.digest == shipped().version == room.gate.policy.version
        assert c.app.state.model_release.digest == RankingConfig.shipped().digest()
        assert c.app.state.model_release.approved_by == ("operator-reviewer", "oversight-reviewer")
        kinds = [e["type"] for _, e in ledger(room)]
        # the oversight root first; the oversight reviewer (and principal) by its statement
        assert kinds[:12] == [
            "oversight.root", "release.reviewer", "principal.oversight", "release.reviewer",
            "release.submitted", "release.submitted",
        ] + ["release.review", "release.review", "release.deployed"] * 2  # fmt: skip
        # the oversight body checks it all from entries and public keys alone
        view = replay(ledger(room))
        assert view.problems == []
        assert view.live("policy")["artifact"] == shipped().version
    # a restart does not bootstrap again: the same releases load
    with TestClient(create_app(str(dd.path))) as c:
        kinds = [e["type"] for _, e in ledger(c.app.state.room)]
        assert kinds.count("release.deployed") == 2 and "release.refused" not in kinds


def _refused_start(dd: DataDir, match: str) -> list[dict]:
    with pytest.raises(NotApproved, match=match), TestClient(create_app(str(dd.path))):
        pass
    with CleanRoom.open(dd) as room:
        refusals = [e for _, e in ledger(room) if e["type"] == "release.refused"]
    assert refusals and match.split(" ")[0] in refusals[-1]["reason"]
    return refusals


def test_altered_policy_content_stops_the_server(dd: DataDir) -> None:
    with TestClient(create_app(str(dd.path))):
        pass
    with CleanRoom.open(dd) as room, room.db.write() as conn:
        row = conn.execute(
            text("SELECT digest, manifest FROM release_artifacts WHERE kind = 'policy'")
        ).one()
        manifest = json.loads(row.manifest)
        name = next(n for n in manifest["files"] if n.endswith(".cedar"))
        manifest["files"][name] += "\npermit(principal, action, resource);\n"  # open everything
        conn.execute(
            text("UPDATE release_artifacts SET manifest = :m WHERE digest = :d"),
            {"m": json.dumps(manifest), "d": row.digest},
        )
    refusals = _refused_start(dd, "hashes to")
    assert refusals[-1]["kind"] == "policy"


def test_a_deployment_written_around_the_registry_stops_the_server(dd: DataDir) -> None:
    """Someone with database access submits a model configuration and marks it
    deployed directly in the table: it has no approvals and no ledger entry."""
    with TestClient(create_app(str(dd.path))):
        pass
    boosted = RankingConfig.shipped().raw | {"exploration": 0.5}
    with CleanRoom.open(dd) as room:
        art = room.releases.submit(
            "model",
            "more exploration",
            RankingConfig.parse(boosted).digest(),
            {"config": boosted},
            submitted_by="pete",
            org="parent",
        )
        with room.db.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO release_deployments (kind, artifact, by, rollback, deployed_ms,"
                    " ledger_index) VALUES ('model', :d, 'pete', 0, 1, 3)"
                ),
                {"d": art.digest},
            )
    _refused_start(dd, "not approved")
    # approved by two reviewers, but the deployment row still points at an
    # entry that is not its deployment: not proven on the ledger
    with CleanRoom.open(dd) as room:
        for name, org in (("operator-reviewer", "operator"), ("oversight-reviewer", "oversight")):
            room.releases.review(
                art.digest, sign_review(dd.read_key(f"reviewer-{name}"), art, org=org)
            )
    _refused_start(dd, "not proven")
    # deployed properly, it loads
    with CleanRoom.open(dd) as room:
        room.releases.deploy(art.digest, by="operator-reviewer")
    with TestClient(create_app(str(dd.path))) as c:
        assert c.app.state.model_release.digest == art.digest
        assert c.app.state.recommender.engine.config.exploration == 0.5
        assert c.get("/v1/feed/config").json()["digest"] == art.digest


def test_deploy_check_needs_a_deployment(dd: DataDir) -> None:
    with CleanRoom.open(dd) as room:
        with pytest.raises(NotApproved, match="no policy release is deployed"):
            load_policy(room)
        with pytest.raises(NotApproved, match="no model release"):
            load_model_config(room)
        assert bootstrap(room, dd) and not bootstrap(room, dd)
        assert load_policy(room).name == "shipped policy set"


def test_models_trained_on_foreign_records_are_refused(dd: DataDir) -> None:
    from cleanroom.foryou import Item, TrainingSet
    from cleanroom.release import PROVENANCE_TYPE, dsse, parse_statement
    from cleanroom.room.provenance import attest_model, builder_key, running_source
    from cleanroom.room.recommender import Recommender

    rows = [
        (f"u{u}", f"v{v}", "view", 1_000 + v, 30_000) for u in range(6) for v in range(u, u + 5)
    ]
    items = [Item(f"v{v}", f"c{v % 3}") for v in range(12)]
    with CleanRoom.open(dd) as room:
        bootstrap(room, dd)
        rec = Recommender(room, load_model_config(room)[0])
        foreign = TrainingSet.from_rows(
            rows, items, regions={f"u{u}": "US" for u in range(5)} | {"u5": "CN"}
        )
        with pytest.raises(NotApproved, match="another jurisdiction"):
            rec.engine.train(foreign)
        assert rec.engine.live_version is None  # nothing was loaded
        refused = [e for _, e in ledger(room) if e["type"] == "release.refused"]
        assert refused[-1]["kind"] == "model" and "CN: 5" in refused[-1]["reason"]
        home = TrainingSet.from_rows(rows, items, regions={f"u{u}": "US" for u in range(6)})
        model = rec.engine.train(home)
        assert rec.engine.live_version == model.version
        # its provenance, signed by the clean room's builder, verifies with the public key
        env = attest_model(
            room,
            model_version=model.version,
            config_digest=rec.engine.config.digest(),
            snapshot=home.digest(),
            jurisdictions=home.records_by_region(),
            read_decision=7,
            started_ms=1,
            finished_ms=2,
        )
        body, _ = dsse.verify(json.dumps(env), [builder_key(room).verifier])
        stmt = parse_statement(body, PROVENANCE_TYPE)
        assert stmt["subject"][0]["digest"]["sha256"] == model.version.removeprefix("sha256:")
        lineage = stmt["predicate"]["buildDefinition"]["externalParameters"]["lineage"]
        assert lineage["jurisdictions"] == {"US": 30} and lineage["purpose"] == "recommendation"
        builder = stmt["predicate"]["runDetails"]["builder"]["id"]
        assert builder == f"https://{ORIGIN}/builder"
        # materials: the code that trained it, the configuration, the snapshot
        deps = {
            d["uri"]: "sha256:" + d["digest"]["sha256"]
            for d in stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
        }
        assert deps == {
            "source": running_source(),
            "ranking-config": rec.engine.config.digest(),
            "training-snapshot": home.digest(),
        }
