"""The default list is the stored batch: what the service answers for the default question equals,
for every student in the batch, what ``export-recommendations`` writes; other questions are scored
live. A real nightly run on the tiny synthetic institution, SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from records.db import make_engine, session_scope
from records.ingest import import_tables
from records.schema import Student
from records.settings import Settings
from records.synthetic import generate
from records.users import add_user
from service.app import create_app
from service.routes.students import recommendations_out
from service.stored import StoredLists
from tests.e2e.conftest import auth
from tests.integration.training.conftest import FAST_MODEL, job_settings
from training.batch import export_current_batch
from training.pipeline import run_nightly


@dataclass
class Nightly:
    settings: Settings
    engine: Engine
    export: dict[str, list[tuple[str, str, str]]]
    """student id -> [(rank, module_id, score)] exactly as the export file writes them."""
    tokens: dict[str, str]


@pytest.fixture
def nightly(database_url: str, tmp_path: Path) -> Iterator[Nightly]:
    engine = make_engine(database_url)
    import_tables(engine, generate("tiny", seed=7))
    settings = job_settings(database_url, tmp_path)
    run_nightly(settings, engine=engine, model_options=FAST_MODEL)
    export_current_batch(engine, tmp_path / "export.csv")
    export: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO((tmp_path / "export.csv").read_text())):
        export[row["student_id"]].append((row["rank"], row["module_id"], row["score"]))
    tokens = {}
    with session_scope(engine) as session:
        _, tokens["admin"] = add_user(session, "root", "admin")
    yield Nightly(settings, engine, dict(export), tokens)
    engine.dispose()


def _as_exported(body: dict) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    return [(str(i["rank"]), i["module"]["id"], f"{i['score']:.6f}") for i in body["items"]]


def test_the_default_list_served_equals_the_exported_batch_for_every_student(nightly: Nightly) -> None:
    assert len(nightly.export) >= 20
    with session_scope(nightly.engine) as session:
        students = set(session.scalars(select(Student.id)))
    app = create_app(nightly.settings, model_check_interval_s=3600, wait_for_model_s=60)
    admin = auth(nightly.tokens["admin"])
    with TestClient(app) as client:
        for student_id, exported in sorted(nightly.export.items()):
            assert student_id in students
            response = client.get(f"/v1/students/{student_id}/recommendations", headers=admin)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["source"] == "batch", student_id
            assert _as_exported(body) == exported, student_id
            assert all(item["module"]["code"] and item["module"]["title"] for item in body["items"])
            assert all(item["reasons"] for item in body["items"])
            # A shorter list is the head of the stored one; another question is scored live.
            shorter = client.get(f"/v1/students/{student_id}/recommendations?k=3", headers=admin).json()
            assert shorter["source"] == "batch" and _as_exported(shorter) == exported[:3]
            named = client.get(
                f"/v1/students/{student_id}/recommendations?term={body['term']}", headers=admin
            ).json()
            assert named["source"] == "batch" and _as_exported(named) == exported
        student_id = sorted(nightly.export)[0]
        longer = client.get(f"/v1/students/{student_id}/recommendations?k=20", headers=admin).json()
        assert longer["source"] == "live"
        metrics = client.get("/metrics").text
        assert f'pathways_recommendation_lists_total{{source="batch"}} {3.0 * len(nightly.export)}' in metrics


def test_the_default_list_is_written_as_the_general_path_writes_it(nightly: Nightly) -> None:
    """The route writes a stored list's JSON itself (service.answer_json, straight from the rows when
    no decision touches the list): byte for byte what the pydantic models make of the same list, for
    students without decisions (no query: the route's fast way; ``?k=3``: the general way) and for one
    with an approval, a rejection, a replacement and a dismissal (the decisions applied)."""
    stored = StoredLists(nightly.settings.fail_risk_threshold)

    def general(student_id: str, k: int) -> bytes:
        with session_scope(nightly.engine) as session:
            result = stored.default_list(session, student_id, None, k, None)
        assert result is not None and result.source == "batch"
        return recommendations_out(result).model_dump_json().encode("utf-8")

    app = create_app(nightly.settings, model_check_interval_s=3600, wait_for_model_s=60)
    admin = auth(nightly.tokens["admin"])
    students = sorted(nightly.export)
    with TestClient(app) as client:

        def answer(student_id: str, query: str = "") -> bytes:
            response = client.get(f"/v1/students/{student_id}/recommendations{query}", headers=admin)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
            return response.content

        flagged = 0
        for student_id in students[:-1]:
            body = answer(student_id)
            assert body == general(student_id, 10), student_id
            assert answer(student_id, "?k=3") == general(student_id, 3), student_id
            flagged += sum(item["review"] == "pending" for item in json.loads(body)["items"])
        assert flagged > 0  # the flagged items' review and flags are written too

        decided = students[-1]
        items = json.loads(answer(decided))["items"]
        stored_ids = {item["module"]["id"] for item in items}
        longer = json.loads(answer(decided, "?k=20"))
        assert longer["source"] == "live"
        replacement = next(i["module"]["id"] for i in longer["items"] if i["module"]["id"] not in stored_ids)
        for item, decision in zip(
            items[:3],
            (
                {"action": "approve"},
                {"action": "reject"},
                {"action": "replace", "replacement_module_id": replacement},
            ),
            strict=True,
        ):
            response = client.post(
                f"/v1/recommendations/{item['recommendation_id']}/review", json=decision, headers=admin
            )
            assert response.status_code == 201, response.text
        with session_scope(nightly.engine) as session:
            _, student_token = add_user(session, "decided", "student", student_id=decided)
        dismissed = client.post(
            f"/v1/students/{decided}/feedback",
            json={"module_id": items[3]["module"]["id"], "action": "dismiss"},
            headers=auth(student_token),
        )
        assert dismissed.status_code == 201, dismissed.text
        for query, k in (("?k=5", 5), ("?k=3", 3)):
            body = answer(decided, query)
            assert body == general(decided, k), query
            shown = json.loads(body)
            assert shown["source"] == "batch"
            assert [i["module"]["id"] for i in shown["items"][:3]] == [
                items[0]["module"]["id"],
                items[4]["module"]["id"],
                replacement,  # at the replaced one's rank, after the rejected and dismissed left
            ]
            assert [i["origin"] for i in shown["items"][:3]] == ["model", "model", "advisor"]
            assert shown["items"][0]["review"] == "approved"


def _list(client: TestClient, world, query: str = "") -> dict:  # type: ignore[no-untyped-def,type-arg]
    response = client.get(
        f"/v1/students/{world.student_id}/recommendations{query}", headers=auth(world.tokens["student"])
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_decisions_and_dismissals_adjust_the_stored_list(live_client: TestClient, live_world) -> None:  # type: ignore[no-untyped-def]
    """Approve rank 1, replace rank 2, dismiss rank 3 of a stored list of five: k=3 is still the
    batch (rank 4 fills in), k=5 no longer fits in the stored rows and is scored live with the same
    decisions applied."""
    stored = _list(live_client, live_world, "?k=5")
    assert stored["source"] == "batch"
    assert [i["module"]["id"] for i in stored["items"]] == live_world.batch_module_ids
    assert [i["review"] for i in stored["items"]] == ["pending", "pending", None, None, None]
    assert {i["origin"] for i in stored["items"]} == {"model"}
    first, second, third = stored["items"][:3]
    advisor = auth(live_world.tokens["advisor"])
    approved = live_client.post(
        f"/v1/recommendations/{first['recommendation_id']}/review",
        json={"action": "approve"},
        headers=advisor,
    )
    assert approved.status_code == 201, approved.text
    live_ids = [i["module"]["id"] for i in _list(live_client, live_world, "?k=20")["items"]]
    replacement = next(m for m in live_ids if m not in live_world.batch_module_ids)
    replaced = live_client.post(
        f"/v1/recommendations/{second['recommendation_id']}/review",
        json={"action": "replace", "replacement_module_id": replacement},
        headers=advisor,
    )
    assert replaced.status_code == 201, replaced.text
    dismissed = live_client.post(
        f"/v1/students/{live_world.student_id}/feedback",
        json={"module_id": third["module"]["id"], "action": "dismiss"},
        headers=auth(live_world.tokens["student"]),
    )
    assert dismissed.status_code == 201, dismissed.text

    three = _list(live_client, live_world, "?k=3")
    assert three["source"] == "batch"
    assert [i["module"]["id"] for i in three["items"]] == [
        first["module"]["id"],
        replacement,
        live_world.batch_module_ids[3],
    ]
    assert [i["rank"] for i in three["items"]] == [1, 2, 3]
    assert [i["review"] for i in three["items"]] == ["approved", None, None]  # a replacement is no review
    assert [i["origin"] for i in three["items"]] == ["model", "advisor", "model"]
    assert three["items"][1]["recommendation_id"] == second["recommendation_id"]
    assert three["items"][2] == {**stored["items"][3], "rank": 3}

    five = _list(live_client, live_world, "?k=5")
    assert five["source"] == "live" and len(five["items"]) == 5
    ids = [i["module"]["id"] for i in five["items"]]
    assert second["module"]["id"] not in ids and third["module"]["id"] not in ids
    assert replacement in ids
    by_id = {i["module"]["id"]: i for i in five["items"]}
    if first["module"]["id"] in by_id:
        assert by_id[first["module"]["id"]]["review"] == "approved"


def test_an_active_student_left_out_of_the_batch_gets_a_live_list(database_url: str, tmp_path: Path) -> None:
    """A student recorded ``active`` whose newest enrolment is older than the window (settings
    ``active_within_terms``) is not scored by the nightly job; the service scores their list live."""
    tables = generate("tiny", seed=7)
    students, enrollments = tables["students.csv"], tables["enrollments.csv"]
    ordinal = tables["terms.csv"].set_index("code")["ordinal"]
    newest = (
        enrollments.assign(ordinal=enrollments["term"].map(ordinal)).groupby("student_id")["ordinal"].max()
    )
    gone = students.loc[students["status"] != "active", "id"]
    stale = str(newest[newest.index.isin(gone)].sort_values(kind="stable").index[0])
    students.loc[students["id"] == stale, "status"] = "active"  # a stale status, as real records have
    engine = make_engine(database_url)
    try:
        import_tables(engine, tables)
        settings = job_settings(database_url, tmp_path)
        result = run_nightly(settings, engine=engine, model_options=FAST_MODEL)
        assert result.promoted and result.n_not_recent >= 1 and result.within_terms == 3
        export_current_batch(engine, tmp_path / "export.csv")
        exported = {
            row["student_id"] for row in csv.DictReader(io.StringIO((tmp_path / "export.csv").read_text()))
        }
        assert stale not in exported and len(exported) == result.n_students
        with session_scope(engine) as session:
            _, token = add_user(session, "root", "admin")
        app = create_app(settings, model_check_interval_s=3600, wait_for_model_s=60)
        with TestClient(app) as client:
            body = client.get(f"/v1/students/{stale}/recommendations", headers=auth(token)).json()
            assert body["source"] == "live" and body["items"], body
            kept = sorted(exported)[0]
            assert (
                client.get(f"/v1/students/{kept}/recommendations", headers=auth(token)).json()["source"]
                == "batch"
            )
    finally:
        engine.dispose()
