"""Internal e-delivery (workflow/correspondence/delivery.py): a school's letter to the city office
and the office's reply, end to end through the processes, the outbox worker, real XAdES-T
signatures from each unit's seal with a real RFC 3161 TSA on loopback, verification against the
trust anchors, automatic registration on both sides and signed delivery receipts — on both
backends."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from tests.conftest import Backend
from tests.helpers import install_unit_seals
from tests.pki import TestPki, pki_fixture  # noqa: F401  (the `pki` fixture)
from tests.test_process_library import (
    CITY_CLERK,
    CITY_OFFICER,
    case_status,
    do,
    drain,
    instance,
)
from tests.test_processes import HANDLER, HEAD, inbox, new_case, only, start, token
from tests.test_xades_sign import assert_xmlsec1_ok
from tests.tsa_server import RunningTsa, tsa_fixture  # noqa: F401  (the `tsa` fixture)
from workflow.correspondence import delivery
from workflow.documents.models import Document
from workflow.letters.letter import parse_letter_xml
from workflow.letters.receipt import parse_receipt_xml
from workflow.registry.models import IncomingItem, OutgoingItem
from workflow.signing.service import trust_store
from workflow.signing.verify import verify_xades


def _outgoing(client: TestClient, who: str, unit: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/outgoing?unit={unit}", headers=token(client, who))
    assert r.status_code == 200, r.text
    return list(r.json())


def _incoming(client: TestClient, who: str, unit: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/incoming?unit={unit}", headers=token(client, who))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _documents_of_outgoing(
    backend: Backend, item_id: str
) -> list[tuple[dict[str, Any] | None, bytes]]:
    """The outgoing item's documents (stored signature report, content), oldest first."""
    from sqlalchemy import select

    from workflow.documents.repository import DocumentRepository

    with backend.container.uow() as uow:
        docs = (
            uow.session.execute(
                select(Document)
                .where(Document.outgoing_item_id == uuid.UUID(item_id))
                .order_by(Document.identifier)
            )
            .scalars()
            .all()
        )
        out = []
        repo = DocumentRepository(uow.session)
        for d in docs:
            version = repo.version(d.id, 1)
            assert version is not None
            blob = repo.blob(version.blob_id)
            assert blob is not None
            content = b"".join(backend.container.blob_store.open(blob.key))
            out.append((d.signature_report, content))
        return out


def _incoming_document(client: TestClient, who: str, item: dict[str, Any]) -> dict[str, Any]:
    full = client.get(f"/api/v1/incoming/{item['id']}", headers=token(client, who)).json()
    (doc,) = full["documents"]
    r = client.get(f"/api/v1/documents/{doc['id']}", headers=token(client, who))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _check_letter_and_receipt(
    backend: Backend,
    item: dict[str, Any],
    *,
    sender: str,
    addressee: str,
    incoming: dict[str, Any],
    tsa: RunningTsa,
    pki: TestPki,
    tmp: Path,
) -> None:
    """The sender's outgoing item holds the letter it signed and the addressee's signed
    receipt, both XAdES-T and TOTAL_PASSED, and the receipt names exactly what was delivered."""
    assert item["channel"] == "internal" and item["status"] == "delivered"
    assert item["dispatched_at"] and item["delivered_at"] and item["letter_id"]
    (letter_report, signed), (receipt_report, receipt_xml) = _documents_of_outgoing(
        backend, item["id"]
    )
    letter = parse_letter_xml(signed)
    assert str(letter.document_id) == item["letter_id"]
    assert (letter.sender.unit_code, letter.addressee.unit_code) == (sender, addressee)
    assert letter.our_reference == item["case_reference"]
    with backend.container.uow() as uow:
        trust = trust_store(uow)
    for stored, data, signer in (
        (letter_report, signed, sender),
        (receipt_report, receipt_xml, addressee),
    ):
        report = verify_xades(data, trust=trust, at="signing_time")
        assert report.indication == "TOTAL_PASSED", report.to_json()
        assert report.level == "XAdES-T" and report.timestamp_time is not None
        # the TSA chains to a trust anchor (revocation is offline: the one expected warning)
        assert report.warnings == ["revocation status not checked (offline verification)"]
        assert stored is not None and stored["indication"] == "TOTAL_PASSED"
        seal = pki.seal if signer == "SP58" else pki.seal_ec
        der = seal.cert.public_bytes(serialization.Encoding.DER)
        assert report.signer_certificate_sha256 == hashlib.sha256(der).hexdigest()
        signed_file = tmp / f"{uuid.uuid4().hex}.xml"
        signed_file.write_bytes(data)
        assert_xmlsec1_ok(signed_file, pki)
    receipt = parse_receipt_xml(receipt_xml)
    assert str(receipt.document_id) == item["letter_id"]
    assert receipt.document_sha256 == hashlib.sha256(signed).hexdigest()
    assert (receipt.sender.unit_code, receipt.addressee.unit_code) == (sender, addressee)
    assert receipt.registration_number == incoming["rpw_number"]
    assert receipt.sender_reference == letter.our_reference
    assert receipt.delivered_at.isoformat()[:19] == item["delivered_at"][:19]


@pytest.mark.timeout(300)
def test_school_to_city_and_back_signed_delivered_and_receipted(
    backend: Backend, client: TestClient, pki: TestPki, tsa: RunningTsa, tmp_path: Path
) -> None:
    backend.container.settings.tsa_url = tsa.url
    install_unit_seals(client, pki, tsa.root_pem_path.read_bytes())
    ref = new_case(client)
    school = start(client, "official_letter_school", ref).json()
    do(
        client,
        HANDLER,
        "draft",
        {"subject": "Arkusz organizacji", "body": "Przesyłamy arkusz.\n\nProsimy o zatwierdzenie."},
    )
    do(client, HEAD, "sign", {"decision": "approve"})
    # The service task registered the outgoing item; nothing is signed or sent before commit.
    (sent,) = _outgoing(client, HEAD, "SP58")
    assert sent["status"] == "ready" and sent["case_reference"] == ref
    drain(backend)  # dispatch (sign + keep), deliver (verify + register + start), receipt

    # The city office: registered automatically with the verification report, in a new case
    # that the city's process runs in.
    (received,) = _incoming(client, CITY_CLERK, "WOW")
    assert received["channel"] == "internal" and received["sender_reference"] == ref
    assert received["sender"]["name"] == "Szkoła Podstawowa nr 58"
    report = _incoming_document(client, CITY_CLERK, received)["signature_report"]
    assert report["indication"] == "TOTAL_PASSED" and report["level"] == "XAdES-T"
    assert "podpis prawidłowy" in received["notes"]
    task = only(inbox(client, CITY_CLERK), "register_assign")
    assert task["case_reference"] == received["case_reference"] != ref
    (sent,) = _outgoing(client, HEAD, "SP58")
    _check_letter_and_receipt(
        backend,
        sent,
        sender="SP58",
        addressee="WOW",
        incoming=received,
        tsa=tsa,
        pki=pki,
        tmp=tmp_path,
    )

    # The reply: signed by the city office's seal, registered at the school in the school's
    # own case (it names it as "znak sprawy adresata"), and the waiting process resumes.
    do(client, CITY_CLERK, "register_assign", {"handler": CITY_OFFICER})
    do(client, CITY_OFFICER, "prepare_reply", {"reply_body": "Arkusz zatwierdzony."})
    drain(backend)
    (reply_in,) = [i for i in _incoming(client, HEAD, "SP58") if i["channel"] == "internal"]
    assert reply_in["case_reference"] == ref and reply_in["channel"] == "internal"
    assert reply_in["subject"] == "Odpowiedź: Arkusz organizacji"
    (reply_out,) = _outgoing(client, CITY_OFFICER, "WOW")
    assert reply_out["case_reference"] == received["case_reference"]
    _check_letter_and_receipt(
        backend,
        reply_out,
        sender="WOW",
        addressee="SP58",
        incoming=reply_in,
        tsa=tsa,
        pki=pki,
        tmp=tmp_path,
    )
    do(client, HANDLER, "review_reply", {"acknowledged": True})
    assert instance(client, HEAD, school["id"])["status"] == "completed"
    assert case_status(client, HEAD, ref) == "closed"
    assert case_status(client, CITY_OFFICER, received["case_reference"]) == "closed"
    # Each side sees only its own registers.
    assert client.get("/api/v1/incoming?unit=WOW", headers=token(client, HEAD)).status_code in (
        403,
        404,
    )


def test_delivery_steps_run_twice_without_duplicates(
    backend: Backend, client: TestClient, pki: TestPki
) -> None:
    """An outbox event may run again (a worker died after its work, before the done mark):
    nothing is signed, registered or receipted twice."""
    install_unit_seals(client, pki)
    ref = new_case(client)
    start(client, "official_letter_school", ref)
    do(client, HANDLER, "draft", {"subject": "Sprawozdanie", "body": "W załączeniu."})
    do(client, HEAD, "sign", {"decision": "approve"})
    with backend.container.uow() as uow:
        from sqlalchemy import select

        from workflow.outbox.models import OutboxEvent

        events: list[tuple[str, dict[str, Any]]] = []
        drain(backend)
        for e in uow.session.execute(
            select(OutboxEvent).where(OutboxEvent.topic.like("letter.%")).order_by(OutboxEvent.id)
        ).scalars():
            events.append((e.topic, dict(e.payload)))
    order = ["letter.dispatch", "letter.deliver", "letter.receipt"]
    events.sort(key=lambda e: order.index(e[0]))
    assert [t for t, _ in events] == order

    def counts() -> tuple[int | None, ...]:
        from sqlalchemy import func, select

        with backend.container.uow() as uow:
            return tuple(
                uow.session.scalar(select(func.count()).select_from(model))
                for model in (IncomingItem, OutgoingItem, Document)
            )

    before = counts()
    handlers = backend.container.worker.handlers
    for topic, payload in events:
        with backend.container.uow() as uow:
            handlers[topic](uow, payload)
            uow.commit()
    assert counts() == before
    assert len(_incoming(client, CITY_CLERK, "WOW")) == 1
    assert len(inbox(client, CITY_CLERK)) == 1


def test_unverifiable_letter_is_registered_and_marked(
    backend: Backend, client: TestClient, pki: TestPki
) -> None:
    """The city office does not trust the school's CA: the letter is still received and
    registered (it arrived), its report says INDETERMINATE, the clerk sees it in the notes and
    the process gets the verdict."""
    for unit, issued in (("SP58", pki.seal), ("WOW", pki.seal_ec)):
        import base64

        r = client.post(
            f"/api/v1/units/{unit}/signing-keys",
            headers=token(client, f"admin.{unit.lower()}"),
            json={
                "label": "x",
                "key_base64": base64.b64encode(issued.p12(b"p")).decode(),
                "password": "p",
            },
        )
        assert r.status_code == 201
    ref = new_case(client)
    start(client, "official_letter_school", ref)
    do(client, HANDLER, "draft", {"subject": "Wniosek", "body": "Treść."})
    do(client, HEAD, "sign", {"decision": "approve"})
    drain(backend)
    (received,) = _incoming(client, CITY_CLERK, "WOW")
    report = _incoming_document(client, CITY_CLERK, received)["signature_report"]
    assert report["indication"] == "INDETERMINATE"
    assert report["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"
    assert "podpisu nie można potwierdzić" in received["notes"]
    assert (
        only(inbox(client, CITY_CLERK), "register_assign")["case_reference"]
        == (received["case_reference"])
    )
    # The receipt is signed all the same and kept with the school's item (its own report
    # says what the school can and cannot confirm).
    (sent,) = _outgoing(client, HEAD, "SP58")
    assert sent["status"] == "delivered"


def test_unit_without_a_seal_gets_an_incident_then_sends_after_import(
    backend: Backend, client: TestClient, pki: TestPki
) -> None:
    ref = new_case(client)
    school = start(client, "official_letter_school", ref).json()
    do(client, HANDLER, "draft", {"subject": "Pismo", "body": "Treść."})
    do(client, HEAD, "sign", {"decision": "approve"})
    admin = token(client, "admin.sp58")
    incidents = client.get("/api/v1/incidents", headers=admin).json()
    (incident,) = [i for i in incidents if i["instance_id"] == school["id"]]
    assert "signing key" in incident["message"] or "klucza podpisu" in incident["message"]
    assert _outgoing(client, HEAD, "SP58") == []  # nothing half-done
    install_unit_seals(client, pki)
    r = client.post(f"/api/v1/incidents/{incident['id']}/retry", headers=admin)
    assert r.status_code == 200, r.text
    drain(backend)
    assert len(_incoming(client, CITY_CLERK, "WOW")) == 1
    assert instance(client, HEAD, school["id"])["status"] == "running"


def test_send_official_letter_refuses_unknown_addressee(
    backend: Backend, client: TestClient, pki: TestPki
) -> None:
    install_unit_seals(client, pki)
    with backend.container.uow() as uow:
        from workflow.org.repository import OrgRepository

        unit = OrgRepository(uow.session).unit_by_code("SP58")
        assert unit is not None
        for to, code in (("XX99", "delivery_refused"), ("SP58", "delivery_refused")):
            with pytest.raises(delivery.DeliveryRefused) as e:
                delivery.send_official_letter(
                    uow, unit, to_unit=to, subject="a", body="b", case=None, correlation_key="k"
                )
            assert e.value.code == code


def test_demo_seals_let_the_demo_send_letters(sqlite_backend: Backend) -> None:
    """`ezd demo` gives every unit a demo seal and trusts the demo CA: a letter goes out signed
    and arrives TOTAL_PASSED without an administrator's set-up."""
    from api.bootstrap import key_encryption_key
    from workflow.demo import seed_demo_seals

    backend = sqlite_backend
    with backend.container.uow() as uow:
        seed_demo_seals(uow, lambda: key_encryption_key(backend.settings))
        uow.commit()
    with backend.client() as client:
        ref = new_case(client)
        start(client, "official_letter_school", ref)
        do(client, HANDLER, "draft", {"subject": "Demo", "body": "Treść."})
        do(client, HEAD, "sign", {"decision": "approve"})
        drain(backend)
        (received,) = _incoming(client, CITY_CLERK, "WOW")
        report = _incoming_document(client, CITY_CLERK, received)["signature_report"]
        assert report["indication"] == "TOTAL_PASSED", report
        assert "(DEMO)" in report["signed_by"]
        assert _outgoing(client, HEAD, "SP58")[0]["status"] == "delivered"
