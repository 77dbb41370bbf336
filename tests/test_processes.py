"""Processes over HTTP on both backends: deploy, start on a case, inbox per role and person,
dekretacja, form validation, completing twice or someone else's task, incidents and retry,
timers fired by the worker with escalation, versions kept by running instances."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.bpmn_models import FORMS, review_model
from tests.conftest import Backend
from tests.helpers import error_code, letter_meta, register
from tests.helpers import token as login
from workflow.engine.runtime import advance_clock

HEAD = "headteacher.sp58"
HANDLER = "handler.sp58"
CLERK = "clerk.sp58"
CITY_ADMIN = "admin.wow"


def token(client: TestClient, username: str) -> dict[str, str]:
    """One login per user and client (argon2 makes each login slow on purpose)."""
    tokens: dict[str, dict[str, str]] = client.__dict__.setdefault("_ezd_tokens", {})
    if username not in tokens:
        tokens[username] = login(client, username)
    return tokens[username]


def deploy(client: TestClient, bpmn: str, forms: dict[str, Any] | None = None) -> Any:
    h = token(client, CITY_ADMIN)
    return client.post(
        "/api/v1/process-definitions",
        headers=h,
        json={"bpmn": bpmn, "forms": FORMS if forms is None else forms},
    )


def new_case(client: TestClient) -> str:
    r = register(client, token(client, CLERK), letter_meta())
    assert r.status_code == 201, r.text
    return str(r.json()["case_reference"])


def start(client: TestClient, key: str, case_reference: str, who: str = CLERK) -> Any:
    return client.post(
        f"/api/v1/processes/{key}/start",
        headers=token(client, who),
        json={"case_reference": case_reference},
    )


def inbox(client: TestClient, who: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/v1/tasks", headers=token(client, who), params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


def complete(client: TestClient, who: str, task_id: str, data: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/tasks/{task_id}/complete", headers=token(client, who), json={"data": data}
    )


def only(tasks: list[dict[str, Any]], element: str) -> dict[str, Any]:
    found = [t for t in tasks if t["element_id"] == element]
    assert len(found) == 1, tasks
    return found[0]


def test_review_process_end_to_end(backend: Backend, client: TestClient) -> None:
    assert deploy(client, review_model()).status_code == 201
    ref = new_case(client)
    r = start(client, "test_review", ref)
    assert r.status_code == 201, r.text
    instance = r.json()

    # The head's pool has the assignment; the handler sees nothing yet.
    assert inbox(client, HANDLER) == []
    assign = only(inbox(client, HEAD), "assign")
    assert assign["role"] == "headteacher" and assign["case_reference"] == ref
    form = client.get(f"/api/v1/tasks/{assign['id']}", headers=token(client, HEAD)).json()["form"]
    assert form["required"] == ["handler"]

    # A form that breaks its schema is refused, nothing changes.
    bad = complete(client, HEAD, assign["id"], {"handler": 7})
    assert bad.status_code == 422 and error_code(bad) == "form_invalid"
    # Someone without the role cannot complete it.
    assert complete(client, HANDLER, assign["id"], {"handler": HANDLER}).status_code == 403

    ok = complete(
        client, HEAD, assign["id"], {"handler": HANDLER, "instruction": "Proszę o odpowiedź"}
    )
    assert ok.status_code == 200, ok.text
    # Completing twice is a conflict.
    again = complete(client, HEAD, assign["id"], {"handler": HANDLER})
    assert again.status_code == 409 and error_code(again) == "task_not_open"

    handle = only(inbox(client, HANDLER, mine=True), "handle")
    assert handle["assignee"] == HANDLER
    assert handle["instruction"] == "Proszę o odpowiedź"
    assert handle["due_at"] is not None  # the statutory month from compute_deadline
    # Assigned to a person: the head cannot complete it for them.
    assert complete(client, HEAD, handle["id"], {"reply_summary": "x"}).status_code == 403
    assert (
        complete(client, HANDLER, handle["id"], {"reply_summary": "Odpowiedź"}).status_code == 200
    )

    approve = only(inbox(client, HEAD), "approve")
    assert (
        complete(
            client, HEAD, approve["id"], {"decision": "return", "comment": "Popraw"}
        ).status_code
        == 200
    )
    handle2 = only(inbox(client, HANDLER), "handle")
    assert handle2["id"] != handle["id"]
    assert (
        complete(client, HANDLER, handle2["id"], {"reply_summary": "Poprawione"}).status_code == 200
    )
    approve2 = only(inbox(client, HEAD), "approve")
    assert complete(client, HEAD, approve2["id"], {"decision": "approve"}).status_code == 200

    done = client.get(
        f"/api/v1/process-instances/{instance['id']}", headers=token(client, HEAD)
    ).json()
    assert done["status"] == "completed"
    case = client.get(f"/api/v1/cases/{ref}", headers=token(client, HEAD)).json()
    assert case["status"] == "closed"
    record = client.get(f"/api/v1/cases/{ref}/record", headers=token(client, HEAD)).json()
    actions = [e["action"] for e in record]
    assert actions.count("task.completed") == 5 and "case.closed" in actions
    diagram = client.get(
        f"/api/v1/process-instances/{instance['id']}/diagram", headers=token(client, HEAD)
    ).json()
    assert "handle" in diagram["completed_elements"] and diagram["active_elements"] == []
    assert diagram["bpmn_xml"].startswith("<?xml")

    # Another school sees nothing of it.
    assert inbox(client, "headteacher.sp12", status="completed") == []
    other = client.get(
        f"/api/v1/process-instances/{instance['id']}", headers=token(client, "headteacher.sp12")
    )
    assert other.status_code == 404


def test_reassign_claim_release_and_substitute(backend: Backend, client: TestClient) -> None:
    deploy(client, review_model())
    ref = new_case(client)
    start(client, "test_review", ref)
    assign = only(inbox(client, HEAD), "assign")
    # Dekretacja to someone who lacks the task's role is refused.
    bad = client.post(
        f"/api/v1/tasks/{assign['id']}/assign",
        headers=token(client, HEAD),
        json={"username": "clerk.sp58"},
    )
    assert bad.status_code == 422 and error_code(bad) == "assignee_invalid"
    # A clerk claims from a pool only when the pool is theirs.
    assert (
        client.post(f"/api/v1/tasks/{assign['id']}/claim", headers=token(client, CLERK)).status_code
        == 403
    )
    claimed = client.post(f"/api/v1/tasks/{assign['id']}/claim", headers=token(client, HEAD))
    assert claimed.json()["assignee"] == HEAD
    released = client.post(f"/api/v1/tasks/{assign['id']}/release", headers=token(client, HEAD))
    assert released.json()["assignee"] is None
    complete(client, HEAD, assign["id"], {"handler": HANDLER})
    handle = only(inbox(client, HANDLER), "handle")

    # The handler is away: the clerk substitutes and sees and completes their task.
    assert inbox(client, CLERK) == []
    today = date.today()
    sub = client.post(
        "/api/v1/substitutions",
        headers=token(client, HEAD),
        json={
            "user": HANDLER,
            "substitute": CLERK,
            "starts_on": str(today),
            "ends_on": str(today + timedelta(days=7)),
        },
    )
    assert sub.status_code == 201, sub.text
    assert only(inbox(client, CLERK), "handle")["id"] == handle["id"]
    assert (
        complete(client, CLERK, handle["id"], {"reply_summary": "W zastępstwie"}).status_code == 200
    )


def test_timer_escalates_to_the_head(backend: Backend, client: TestClient) -> None:
    assert deploy(client, review_model(timer="deadline")).status_code == 201
    ref = new_case(client)
    start(client, "test_review", ref)
    assign = only(inbox(client, HEAD), "assign")
    complete(client, HEAD, assign["id"], {"handler": HANDLER})
    assert backend.container.fire_due_timers() == 0  # the month has not passed
    advance_clock(timedelta(days=40))
    assert backend.container.fire_due_timers() == 1
    escalation = only(inbox(client, HEAD), "escalate")
    assert escalation["name"] == "Przekroczony termin"
    # Non-interrupting: the handler still has the case.
    assert only(inbox(client, HANDLER), "handle")["overdue"] is True
    assert backend.container.fire_due_timers() == 0


def test_script_failure_becomes_an_incident_and_retry(backend: Backend, client: TestClient) -> None:
    assert deploy(client, review_model(script="zero = 0\nresult = 1 / zero")).status_code == 201
    ref = new_case(client)
    inst = start(client, "test_review", ref).json()
    complete(client, HEAD, only(inbox(client, HEAD), "assign")["id"], {"handler": HANDLER})
    complete(client, HANDLER, only(inbox(client, HANDLER), "handle")["id"], {"reply_summary": "x"})
    r = complete(client, HEAD, only(inbox(client, HEAD), "approve")["id"], {"decision": "approve"})
    assert r.status_code == 200  # the head's work is saved; the failure is the model's
    status = client.get(
        f"/api/v1/process-instances/{inst['id']}", headers=token(client, HEAD)
    ).json()
    assert status["status"] == "incident"
    incidents = client.get("/api/v1/incidents", headers=token(client, CITY_ADMIN)).json()
    assert len(incidents) == 1 and incidents[0]["element_id"] == "calc"
    assert "ZeroDivisionError" in incidents[0]["message"]
    # Staff cannot see or retry incidents.
    assert client.get("/api/v1/incidents", headers=token(client, HEAD)).status_code == 403
    # Retrying without a fix fails again and stays an incident.
    retry = client.post(
        f"/api/v1/incidents/{incidents[0]['id']}/retry", headers=token(client, CITY_ADMIN)
    )
    assert retry.status_code == 200 and retry.json()["status"] == "incident"


def test_running_instances_keep_their_version(backend: Backend, client: TestClient) -> None:
    v1 = deploy(client, review_model()).json()
    ref = new_case(client)
    first = start(client, "test_review", ref).json()
    v2 = deploy(client, review_model(condition='decision == "approve" or decision == "ok"')).json()
    assert (v1["version"], v2["version"]) == (1, 2)
    second = start(client, "test_review", new_case(client)).json()
    assert (first["version"], second["version"]) == (1, 2)
    # Deploying the same content again is idempotent.
    again = deploy(client, review_model(condition='decision == "approve" or decision == "ok"'))
    assert again.json()["version"] == 2
    complete(
        client,
        HEAD,
        next(t for t in inbox(client, HEAD) if t["instance_id"] == first["id"])["id"],
        {"handler": HANDLER},
    )
    assert only(inbox(client, HANDLER), "handle")["instance_id"] == first["id"]


def test_only_the_city_admin_deploys(backend: Backend, client: TestClient) -> None:
    for who in (HEAD, "admin.sp58"):
        r = client.post(
            "/api/v1/process-definitions",
            headers=token(client, who),
            json={"bpmn": review_model(), "forms": FORMS},
        )
        assert r.status_code == 403


def test_preview_shows_lanes_roles_and_forms(backend: Backend, client: TestClient) -> None:
    r = client.post(
        "/api/v1/process-definitions/preview",
        headers=token(client, CITY_ADMIN),
        json={"bpmn": review_model(), "forms": FORMS},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["key"] == "test_review" and body["next_version"] == 1
    handle = next(t for t in body["tasks"] if t["id"] == "handle")
    assert (handle["lane"], handle["role"], handle["form"]) == (
        "Referent",
        "handler",
        "forms/handle.schema.json",
    )
    # A preview stores nothing.
    listed = client.get("/api/v1/process-definitions", headers=token(client, CITY_ADMIN)).json()
    assert "test_review" not in {d["key"] for d in listed}


def test_concurrent_completions_of_one_task_succeed_once(pg_backend: Backend) -> None:
    """Eight heads' browsers complete the same task at once on PostgreSQL: the instance row
    lock lets one through; the others get 409 and the engine state moved exactly one step."""
    import concurrent.futures

    import httpx

    from api.app import create_app
    from tests.live import live_server

    with (
        live_server(create_app(pg_backend.container, start_worker=False)) as base,
        httpx.Client(base_url=base) as http,
    ):
        h = login_http(http, HEAD)
        assert deploy_http(http).status_code == 201
        ref = register_http(http)
        inst = http.post(
            "/api/v1/processes/test_review/start",
            headers=login_http(http, CLERK),
            json={"case_reference": ref},
        ).json()
        task = http.get("/api/v1/tasks", headers=h).json()[0]

        def go(_: int) -> int:
            with httpx.Client(base_url=base, timeout=30) as c:
                r = c.post(
                    f"/api/v1/tasks/{task['id']}/complete",
                    headers=h,
                    json={"data": {"handler": HANDLER}},
                )
                return r.status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(go, range(8)))
        assert codes == [200] + [409] * 7
        handler_tasks = http.get("/api/v1/tasks", headers=login_http(http, HANDLER)).json()
        assert [t["element_id"] for t in handler_tasks] == ["handle"]
        record = http.get(f"/api/v1/cases/{ref}/record", headers=h).json()
        assert [e["action"] for e in record].count("task.completed") == 1
        assert inst["status"] == "running"


def login_http(http: Any, username: str) -> dict[str, str]:
    r = http.post("/api/v1/auth/token", data={"username": username, "password": "demo"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def deploy_http(http: Any) -> Any:
    return http.post(
        "/api/v1/process-definitions",
        headers=login_http(http, CITY_ADMIN),
        json={"bpmn": review_model(), "forms": FORMS},
    )


def register_http(http: Any) -> str:
    import json

    from tests.helpers import PDF

    r = http.post(
        "/api/v1/incoming",
        headers=login_http(http, CLERK),
        data={"meta": json.dumps(letter_meta())},
        files=[("files", ("a.pdf", PDF, "application/pdf"))],
    )
    return str(r.json()["case_reference"])
