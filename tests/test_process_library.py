"""Every process shipped in bpmn/, end to end through the API, the worker and the engine, on both
backends: incoming letter (with timer escalation), citizen application (supplement message and
the 7-day timeout), official correspondence school ↔ city office (message correlation across
units), invoice approval (second approval above the threshold), complaint (KPA art. 237)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Backend
from tests.helpers import install_unit_seals
from tests.pki import TestPki, pki_fixture  # noqa: F401  (the `pki` fixture)
from tests.test_processes import HANDLER, HEAD, complete, inbox, new_case, only, start, token
from workflow.engine.runtime import advance_clock

CLERK = "clerk.sp58"
CITY_CLERK = "clerk.wow"
CITY_OFFICER = "city_officer.wow"


def instance(client: TestClient, who: str, instance_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/process-instances/{instance_id}", headers=token(client, who))
    assert r.status_code == 200, r.text
    return dict(r.json())


def case_status(client: TestClient, who: str, reference: str) -> str:
    return str(
        client.get(f"/api/v1/cases/{reference}", headers=token(client, who)).json()["status"]
    )


def drain(backend: Backend) -> None:
    """Run the worker until the outbox is empty (messages, notifications)."""
    for _ in range(20):
        if backend.container.worker.run_once() == 0:
            return
    raise AssertionError("the outbox did not drain")


def do(client: TestClient, who: str, element: str, data: dict[str, Any], **filters: Any) -> None:
    task = only(inbox(client, who, **filters), element)
    r = complete(client, who, task["id"], data)
    assert r.status_code == 200, r.text


def test_library_is_deployed(backend: Backend, client: TestClient) -> None:
    keys = {
        d["key"]
        for d in client.get(
            "/api/v1/process-definitions", headers=token(client, "admin.wow")
        ).json()
    }
    assert {
        "incoming_letter",
        "citizen_application",
        "official_letter_school",
        "official_letter_city",
        "invoice_approval",
        "complaint",
    } <= keys


def test_incoming_letter_with_reply_and_escalation(backend: Backend, client: TestClient) -> None:
    ref = new_case(client)
    inst = start(client, "incoming_letter", ref).json()
    assign = only(inbox(client, HEAD), "assign")
    due = datetime.fromisoformat(assign["due_at"])
    assert timedelta(days=27) < due - datetime.now(due.tzinfo) < timedelta(days=35)
    do(client, HEAD, "assign", {"handler": HANDLER, "instruction": "Przygotować odpowiedź"})
    # The month passes while the handler works: the head gets an intervention task.
    advance_clock(timedelta(days=40))
    assert backend.container.fire_due_timers() == 1
    do(client, HEAD, "escalate", {"intervention": "remind_handler"})
    do(
        client,
        HANDLER,
        "handle",
        {"reply_needed": True, "reply_addressee": "Anna Kowalska", "reply_summary": "Wydano"},
    )
    do(client, HEAD, "approve", {"decision": "approve"})
    # The reply is registered; the case stays open until the office has sent it.
    assert case_status(client, HEAD, ref) == "open"
    today = date.today().isoformat()
    do(client, CLERK, "dispatch_reply", {"dispatched_on": today, "dispatch_note": "list polecony"})
    assert instance(client, HEAD, inst["id"])["status"] == "completed"
    assert case_status(client, HEAD, ref) == "closed"
    outgoing = client.get("/api/v1/outgoing", headers=token(client, CLERK)).json()
    items = outgoing["items"] if isinstance(outgoing, dict) else outgoing
    (reply,) = [i for i in items if i.get("case_reference") == ref]
    assert reply["status"] == "dispatched" and reply["dispatched_at"]


def test_citizen_application_supplement_and_timeout(backend: Backend, client: TestClient) -> None:
    ref = new_case(client)
    inst = start(client, "citizen_application", ref).json()
    do(client, CLERK, "verify", {"complete": False, "missing_items": "Zdjęcie legitymacyjne"})
    drain(backend)  # the applicant's notification
    # The citizen's supplement arrives as a message correlated by the case reference.
    with backend.container.uow() as uow:
        uow.enqueue(
            "process.message",
            {"name": "uzupelnienie_wniosku", "payload": {"files": 1}, "correlation_key": ref},
        )
        uow.commit()
    drain(backend)
    do(client, CLERK, "verify", {"complete": True})
    do(client, HANDLER, "examine", {"findings": "Spełnia warunki", "proposed_decision": "grant"})
    do(client, HEAD, "decide", {"decision": "grant", "justification": "Wniosek zasadny"})
    drain(backend)
    assert instance(client, HEAD, inst["id"])["status"] == "completed"

    # A second application: the supplement never comes, after 7 days it is left unexamined.
    ref2 = new_case(client)
    inst2 = start(client, "citizen_application", ref2).json()
    do(client, CLERK, "verify", {"complete": False, "missing_items": "Podpis"})
    assert backend.container.fire_due_timers() == 0
    advance_clock(timedelta(days=8))
    assert backend.container.fire_due_timers() == 1
    assert instance(client, HEAD, inst2["id"])["status"] == "completed"
    assert case_status(client, HEAD, ref2) == "closed"


def test_official_letter_school_to_city_and_back(
    backend: Backend, client: TestClient, pki: TestPki
) -> None:
    install_unit_seals(client, pki)
    ref = new_case(client)
    school = start(client, "official_letter_school", ref).json()
    do(client, HANDLER, "draft", {"subject": "Arkusz organizacji", "body": "Przesyłamy arkusz."})
    do(client, HEAD, "sign", {"decision": "approve"})
    drain(backend)  # delivers pismo_urzedowe: the city office's process starts with its own case
    do(client, CITY_CLERK, "register_assign", {"handler": CITY_OFFICER})
    city_task = only(inbox(client, CITY_OFFICER), "prepare_reply")
    assert city_task["unit"] == "WOW" and city_task["case_reference"] != ref
    # The school's staff see nothing of the city office's work.
    assert all(t["unit"] == "SP58" for t in inbox(client, HEAD))
    do(client, CITY_OFFICER, "prepare_reply", {"reply_body": "Arkusz zatwierdzony."})
    drain(backend)  # delivers odpowiedz_urzedowa to the waiting school process, by correlation
    do(client, HANDLER, "review_reply", {"acknowledged": True})
    done = instance(client, HEAD, school["id"])
    assert done["status"] == "completed"
    assert case_status(client, HEAD, ref) == "closed"
    city_case = city_task["case_reference"]
    assert case_status(client, CITY_OFFICER, city_case) == "closed"


@pytest.mark.parametrize(
    ("amount", "basis", "second"),
    [
        (1500.0, "below_threshold", False),
        (45000.0, "basic_procedure", True),
        (900.0, "single_source", True),
    ],
)
def test_invoice_approval_threshold(
    backend: Backend, client: TestClient, amount: float, basis: str, second: bool
) -> None:
    """The second approval is decided by the DMN table bpmn/decisions/invoice_second_approval.dmn
    (above 20 000 zł, or any single-source purchase)."""
    ref = new_case(client)
    r = client.post(
        "/api/v1/processes/invoice_approval/start",
        headers=token(client, CLERK),
        json={
            "case_reference": ref,
            "data": {
                "invoice_number": "FV/1/2026",
                "amount": amount,
                "contractor": "ABC sp. z o.o.",
            },
        },
    )
    assert r.status_code == 201, r.text
    inst = r.json()
    description = {
        "description": "Zakup tablic interaktywnych",
        "budget_classification": {"dzial": "801", "rozdzial": "80101", "paragraf": "4240"},
        "procurement_basis": basis,
    }
    do(client, HANDLER, "describe", description)
    do(client, CLERK, "formal_check", {"formal_ok": False, "remarks": "Brak podpisu"})
    do(client, HANDLER, "describe", description)
    do(client, CLERK, "formal_check", {"formal_ok": True})
    do(client, HEAD, "approve_payment", {"decision": "approve"})
    if second:
        # The Wydział Oświaty lane is the city office's pool, not the school's.
        task = only(inbox(client, CITY_OFFICER), "second_approval")
        assert task["unit"] == "WOW" and task["case_reference"] == ref
        do(client, CITY_OFFICER, "second_approval", {"second_decision": "approve"})
    else:
        assert inbox(client, CITY_OFFICER) == []
    assert instance(client, HEAD, inst["id"])["status"] == "completed"
    drain(backend)


def test_complaint_deadline_and_answer(backend: Backend, client: TestClient) -> None:
    ref = new_case(client)
    r = client.post(
        "/api/v1/processes/complaint/start",
        headers=token(client, CLERK),
        json={"case_reference": ref, "data": {"complainant": "Jan Nowak"}},
    )
    inst = r.json()
    do(client, HEAD, "assign", {"handler": HANDLER})
    explain = only(inbox(client, HANDLER), "explain")
    assert explain["due_at"] is not None
    advance_clock(timedelta(days=35))
    assert backend.container.fire_due_timers() == 1
    assert only(inbox(client, HEAD), "escalate")["name"]
    do(client, HANDLER, "explain", {"findings": "Ustalono", "proposed_assessment": "unjustified"})
    do(client, HEAD, "answer", {"decision": "unjustified", "answer": "Skarga bezzasadna"})
    do(client, CLERK, "dispatch_answer", {"dispatched_on": date.today().isoformat()})
    drain(backend)
    assert instance(client, HEAD, inst["id"])["status"] == "completed"
    # The terminate end cancelled the open escalation task.
    assert inbox(client, HEAD) == []


def test_reply_arriving_during_a_reminder_is_kept_for_later(
    backend: Backend, client: TestClient, pki: TestPki
) -> None:
    """The school's deadline passes and the head is deciding on a reminder when the city
    office's reply arrives: nobody waits for it at that moment, so it is kept and handed over
    as soon as the school's process waits again."""
    install_unit_seals(client, pki)
    ref = new_case(client)
    school = start(client, "official_letter_school", ref).json()
    do(client, HANDLER, "draft", {"subject": "Sprawozdanie", "body": "W załączeniu."})
    do(client, HEAD, "sign", {"decision": "approve"})
    drain(backend)
    advance_clock(timedelta(days=40))
    assert backend.container.fire_due_timers() >= 1
    assert only(inbox(client, HEAD), "remind")
    do(client, CITY_CLERK, "register_assign", {"handler": CITY_OFFICER})
    do(client, CITY_OFFICER, "prepare_reply", {"reply_body": "Przyjęto."})
    drain(backend)  # the reply: nobody waits, it is kept
    assert instance(client, HEAD, school["id"])["status"] == "running"
    do(client, HEAD, "remind", {"reminder_action": "keep_waiting"})
    drain(backend)  # now the school waits again and gets the kept reply
    do(client, HANDLER, "review_reply", {"acknowledged": True})
    assert instance(client, HEAD, school["id"])["status"] == "completed"
