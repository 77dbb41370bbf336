"""Hostile or broken process definitions: refused at upload with a clear error, or failing at
run time as an incident, with no side effect outside the engine and no other instance affected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.bpmn_models import FORMS, review_model
from tests.bpmn_models import HEAD as BPMN_HEAD
from tests.conftest import Backend
from tests.helpers import error_code
from tests.test_processes import (
    CITY_ADMIN,
    HANDLER,
    HEAD,
    complete,
    deploy,
    inbox,
    new_case,
    only,
    start,
    token,
)


def refused(client: TestClient, bpmn: str, forms: dict[str, Any] | None = None) -> Any:
    r = deploy(client, bpmn, forms)
    assert 400 <= r.status_code < 500, r.text
    return r


@pytest.mark.parametrize(
    "script",
    [
        "import os",
        "__import__('os').system('touch /tmp/ezd-pwned')",
        "x = ().__class__.__base__.__subclasses__()",
        "open('/tmp/ezd-pwned', 'w').write('x')",
        "x = (lambda: 0).__globals__",
    ],
)
def test_scripts_that_reach_outside_are_refused_at_upload(
    sqlite_backend: Backend, script: str
) -> None:
    with sqlite_backend.client() as client:
        r = refused(client, review_model(script=script))
        assert error_code(r) == "bpmn_script_refused"
        assert "calc" in r.json()["error"]["message_en"]
    assert not Path("/tmp/ezd-pwned").exists()


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"condition": "len(decision) > 0 and __import__('os')"}, "bpmn_script_refused"),
        ({"condition": "open('/etc/passwd')"}, "bpmn_script_refused"),
        ({"timer": "compute()"}, "bpmn_script_refused"),
        ({"operator": "os_system"}, "bpmn_unknown_operation"),
    ],
)
def test_calls_in_conditions_and_timers_and_unknown_operations(
    sqlite_backend: Backend, kwargs: dict[str, str], code: str
) -> None:
    with sqlite_backend.client() as client:
        assert error_code(refused(client, review_model(**kwargs))) == code


def test_xml_attacks_and_non_bpmn(sqlite_backend: Backend) -> None:
    billion_laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol2;'
        "</bpmn:definitions>"
    )
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;'
        "</bpmn:definitions>"
    )
    xinclude = review_model().replace(
        "<bpmn:process ",
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd" parse="text"/>'
        "<bpmn:process ",
    )
    with sqlite_backend.client() as client:
        for bad in (billion_laughs, xxe, xinclude):
            r = refused(client, bad)
            assert error_code(r) == "xml_refused", r.text
        assert error_code(refused(client, "<html><body>hello</body></html>")) == "bpmn_refused"
        assert error_code(refused(client, "not xml at all")) == "xml_malformed"
        assert error_code(refused(client, review_model().replace("</bpmn:process>", ""))) == (
            "xml_malformed"
        )
        # Schema-invalid BPMN (an element BPMN does not have) is refused too.
        odd = review_model().replace(
            '<bpmn:endEvent id="end">', '<bpmn:endThing id="x"/><bpmn:endEvent id="end">'
        )
        assert error_code(refused(client, odd)) == "bpmn_refused"


def test_too_many_elements_is_refused(sqlite_backend: Backend) -> None:
    tasks = "".join(
        f'<bpmn:task id="t{i}"><bpmn:incoming>s{i}</bpmn:incoming><bpmn:outgoing>s{i + 1}</bpmn:outgoing></bpmn:task>'
        f'<bpmn:sequenceFlow id="s{i + 1}" sourceRef="t{i}" targetRef="t{i + 1}"/>'
        for i in range(3000)
    )
    big = (
        '<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'id="d" targetNamespace="x"><bpmn:process id="big" isExecutable="true">'
        '<bpmn:startEvent id="start"><bpmn:outgoing>s0</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="s0" sourceRef="start" targetRef="t0"/>'
        + tasks
        + '<bpmn:endEvent id="t3000"><bpmn:incoming>s3000</bpmn:incoming></bpmn:endEvent>'
        "</bpmn:process></bpmn:definitions>"
    )
    with sqlite_backend.client() as client:
        r = refused(client, big)
        assert r.status_code == 413 and error_code(r) in ("bpmn_too_large", "xml_too_many_elements")


def test_missing_or_broken_forms_and_unknown_lanes(sqlite_backend: Backend) -> None:
    with sqlite_backend.client() as client:
        forms = dict(FORMS)
        forms.pop("forms/handle.schema.json")
        assert error_code(refused(client, review_model(), forms)) == "bpmn_form_missing"
        broken = {**FORMS, "forms/handle.schema.json": {"type": "no-such-type"}}
        assert error_code(refused(client, review_model(), broken)) == "bpmn_form_invalid"
        assert error_code(
            refused(client, review_model().replace('name="Referent"', 'name="Kucharz"'))
        ) == ("bpmn_unknown_lane")


@pytest.mark.parametrize(
    "script",
    [
        "while True:\n    pass",
        "x = sum(range(10**11))",
        "x = 10**10**10",
        "x = 'a' * 10**10",
        "x = []\nwhile True:\n    x.append([0] * 100000)",
        "x = '{0.__class__}'.format(1)",
    ],
)
def test_runaway_scripts_become_incidents_and_others_go_on(
    backend: Backend, client: TestClient, script: str
) -> None:
    """A script that loops, allocates without end or reaches for internals at run time is
    stopped; its instance gets an incident, another instance of the same unit goes on."""
    assert deploy(client, review_model(script=script)).status_code == 201
    victim = start(client, "test_review", new_case(client)).json()
    bystander = start(client, "test_review", new_case(client)).json()
    for task in [t for t in inbox(client, HEAD) if t["instance_id"] == victim["id"]]:
        complete(client, HEAD, task["id"], {"handler": HANDLER})
    handle = next(t for t in inbox(client, HANDLER) if t["instance_id"] == victim["id"])
    complete(client, HANDLER, handle["id"], {"reply_summary": "x"})
    approve = next(t for t in inbox(client, HEAD) if t["element_id"] == "approve")
    assert complete(client, HEAD, approve["id"], {"decision": "approve"}).status_code == 200
    state = client.get(f"/api/v1/process-instances/{victim['id']}", headers=token(client, HEAD))
    assert state.json()["status"] == "incident"
    incidents = client.get("/api/v1/incidents", headers=token(client, CITY_ADMIN)).json()
    assert [i["instance_id"] for i in incidents] == [victim["id"]]
    assert "ScriptError" in incidents[0]["message"]
    # The other instance is untouched and still works.
    other = next(t for t in inbox(client, HEAD) if t["instance_id"] == bystander["id"])
    assert complete(client, HEAD, other["id"], {"handler": HANDLER}).status_code == 200
    assert only(inbox(client, HANDLER), "handle")["instance_id"] == bystander["id"]


LOOP = (
    '<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'id="d" targetNamespace="x"><bpmn:process id="endless" isExecutable="true">'
    '<bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>'
    '<bpmn:scriptTask id="count"><bpmn:incoming>f0</bpmn:incoming><bpmn:incoming>f2</bpmn:incoming>'
    "<bpmn:outgoing>f1</bpmn:outgoing><bpmn:script>n = 1</bpmn:script></bpmn:scriptTask>"
    '<bpmn:exclusiveGateway id="b" default="f2"><bpmn:incoming>f1</bpmn:incoming>'
    "<bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing></bpmn:exclusiveGateway>"
    '<bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>'
    '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="count"/>'
    '<bpmn:sequenceFlow id="f1" sourceRef="count" targetRef="b"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="b" targetRef="count"/>'
    '<bpmn:sequenceFlow id="f3" sourceRef="b" targetRef="end">'
    "<bpmn:conditionExpression>n == 2</bpmn:conditionExpression></bpmn:sequenceFlow>"
    "</bpmn:process></bpmn:definitions>"
)


def test_endless_automatic_loop_is_stopped_as_an_incident(sqlite_backend: Backend) -> None:
    with sqlite_backend.client() as client:
        assert deploy(client, LOOP, {}).status_code == 201
        r = client.post(
            "/api/v1/processes/endless/start", headers=token(client, HEAD), json={"unit": "SP58"}
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "incident"
        incidents = client.get("/api/v1/incidents", headers=token(client, CITY_ADMIN)).json()
        assert "engine steps" in incidents[0]["message"]


def test_a_process_that_calls_itself_is_refused(sqlite_backend: Backend) -> None:
    calls_itself = (
        '<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'id="d" targetNamespace="x"><bpmn:process id="again" isExecutable="true">'
        '<bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:callActivity id="call" calledElement="again"><bpmn:incoming>f0</bpmn:incoming>'
        "<bpmn:outgoing>f1</bpmn:outgoing></bpmn:callActivity>"
        '<bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="call"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="call" targetRef="end"/>'
        "</bpmn:process></bpmn:definitions>"
    )
    with sqlite_backend.client() as client:
        assert error_code(refused(client, calls_itself, {})) == "bpmn_call_cycle"


def test_decision_tables_are_checked_like_scripts(sqlite_backend: Backend) -> None:
    """A DMN cell runs as an expression: one that reaches for internals or calls is refused."""
    from workflow.processes.service import library_files

    library = next(
        f
        for f in library_files(sqlite_backend.settings.bpmn_dir)
        if f.name == "invoice_approval.bpmn"
    )
    ((name, table),) = library.decisions.items()
    with sqlite_backend.client() as client:
        for bad in ("__import__('os')", "open('/etc/passwd')", "().__class__"):
            evil = table.replace("<text>True</text>", f"<text>{bad}</text>", 1)
            r = client.post(
                "/api/v1/process-definitions",
                headers=token(client, CITY_ADMIN),
                json={
                    "bpmn": library.bpmn.decode(),
                    "forms": library.forms,
                    "decisions": {name: evil},
                },
            )
            assert r.status_code == 422 and error_code(r) == "bpmn_script_refused", r.text
        # Without its table the definition does not load at all.
        r = client.post(
            "/api/v1/process-definitions",
            headers=token(client, CITY_ADMIN),
            json={"bpmn": library.bpmn.decode(), "forms": library.forms},
        )
        assert r.status_code == 422 and error_code(r) == "bpmn_refused"


THROWING = (
    BPMN_HEAD + '<bpmn:message id="m_reply" name="odpowiedz"/>'
    '<bpmn:process id="test_throw" name="Test: komunikat" isExecutable="true">'
    '<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>'
    '<bpmn:intermediateThrowEvent id="send" name="Odpowiedź"><bpmn:incoming>f1</bpmn:incoming>'
    "<bpmn:outgoing>f2</bpmn:outgoing>"
    '<bpmn:messageEventDefinition id="med" messageRef="m_reply"><bpmn:extensionElements>'
    "<spiffworkflow:messagePayload>PAYLOAD</spiffworkflow:messagePayload>"
    "</bpmn:extensionElements></bpmn:messageEventDefinition></bpmn:intermediateThrowEvent>"
    '<bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>'
    '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="send"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="send" targetRef="end"/>'
    "</bpmn:process></bpmn:definitions>"
)


def test_message_payload_expressions_are_checked_at_upload(sqlite_backend: Backend) -> None:
    """A thrown message's payload is an expression too: the same rules as conditions."""
    with sqlite_backend.client() as client:
        headers = token(client, CITY_ADMIN)
        good = THROWING.replace("PAYLOAD", '{"reply_body": reply_body}')
        r = client.post("/api/v1/process-definitions", headers=headers, json={"bpmn": good})
        assert r.status_code == 201, r.text
        evil = THROWING.replace("PAYLOAD", "__import__('os').getcwd()")
        r = client.post("/api/v1/process-definitions", headers=headers, json={"bpmn": evil})
        assert r.status_code == 422 and error_code(r) == "bpmn_script_refused", r.text
