"""Unit signing keys and trust anchors over HTTP (admins only, keys never returned), verifying an
uploaded signed file against the configured anchors, and a school letter built, signed with the
school's stored key (XAdES-T from a loopback TSA) and verified as the city office would."""

from __future__ import annotations

import base64
import uuid
from datetime import date

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from fastapi.testclient import TestClient

from api.bootstrap import key_encryption_key
from tests.conftest import Backend
from tests.helpers import error_code
from tests.pki import TestPki, pki_fixture  # noqa: F401  (the `pki` fixture)
from tests.test_processes import token
from tests.tsa_server import RunningTsa, tsa_fixture  # noqa: F401  (the `tsa` fixture)
from workflow.letters.letter import Letter, Party, build_letter_xml, parse_letter_xml
from workflow.org.repository import OrgRepository
from workflow.signing.service import unit_identity
from workflow.signing.sign import sign_enveloped
from workflow.signing.verify import verify_xades


def p12(pki: TestPki, password: bytes) -> str:
    data = pkcs12.serialize_key_and_certificates(
        b"seal",
        pki.seal.key,  # type: ignore[arg-type]
        pki.seal.cert,
        pki.seal.chain,
        serialization.BestAvailableEncryption(password),
    )
    return base64.b64encode(data).decode()


def school_letter() -> bytes:
    return build_letter_xml(
        Letter(
            sender=Party(name="Szkoła Podstawowa nr 58", unit_code="SP58"),
            addressee=Party(name="Wydział Oświaty i Wychowania", unit_code="WOW"),
            letter_date=date(2026, 11, 29),
            place="Miasto",
            our_reference="SP58.4430.12.2026",
            subject="Arkusz organizacji na rok 2027/2028",
            body=("W załączeniu przesyłamy arkusz organizacji.",),
            document_id=uuid.uuid4(),
        )
    )


def test_keys_anchors_and_verification(
    backend: Backend, client: TestClient, pki: TestPki, tsa: RunningTsa
) -> None:
    admin = token(client, "admin.sp58")
    body = {"label": "Pieczęć SP58", "key_base64": p12(pki, b"tajne"), "password": "tajne"}
    # Only the unit's administrator imports its keys; a wrong password is a clear 4xx.
    assert (
        client.post(
            "/api/v1/units/SP58/signing-keys", headers=token(client, "headteacher.sp58"), json=body
        ).status_code
        == 403
    )
    assert (
        client.post("/api/v1/units/SP12/signing-keys", headers=admin, json=body).status_code == 403
    )
    bad = client.post(
        "/api/v1/units/SP58/signing-keys", headers=admin, json={**body, "password": "x"}
    )
    assert bad.status_code == 422 and error_code(bad) == "signing_key_bad_password"
    r = client.post("/api/v1/units/SP58/signing-keys", headers=admin, json=body)
    assert r.status_code == 201, r.text
    listed = client.get("/api/v1/units/SP58/signing-keys", headers=admin)
    assert listed.status_code == 200
    assert set(listed.json()[0]) == {
        "id",
        "unit",
        "label",
        "subject",
        "issuer",
        "certificate_sha256",
        "not_before",
        "not_after",
        "active",
    }
    assert "PRIVATE" not in listed.text and body["key_base64"][:40] not in listed.text
    again = client.post("/api/v1/units/SP58/signing-keys", headers=admin, json=body)
    assert again.status_code == 422 and error_code(again) == "signing_key_exists"

    # The school signs a letter with its stored key, time-stamped by the TSA.
    with backend.container.uow() as uow:
        unit = OrgRepository(uow.session).unit_by_code("SP58")
        assert unit is not None
        identity = unit_identity(uow, unit, lambda: key_encryption_key(backend.settings))
    assert "PRIVATE" not in repr(identity)
    signed = sign_enveloped(school_letter(), identity, tsa_url=tsa.url)
    assert parse_letter_xml(signed).our_reference == "SP58.4430.12.2026"

    # Before the city trusts the school's CA the signature is indeterminate, after it passes.
    city = token(client, "admin.wow")
    r = client.post("/api/v1/signatures/verify", headers=city, content=signed)
    assert r.status_code == 200 and r.json()["indication"] == "INDETERMINATE"
    assert r.json()["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"
    assert (
        client.post(
            "/api/v1/trust-anchors",
            headers=admin,
            json={"label": "x", "pem": pki.root.cert_pem.decode()},
        ).status_code
        == 403
    )
    added = client.post(
        "/api/v1/trust-anchors",
        headers=city,
        json={"label": "Test CA", "pem": pki.root.cert_pem.decode()},
    )
    assert added.status_code == 201, added.text
    report = client.post("/api/v1/signatures/verify", headers=city, content=signed).json()
    assert report["indication"] == "TOTAL_PASSED", report
    assert report["level"] == "XAdES-T" and report["timestamp_time"]
    # A changed letter fails.
    tampered = signed.replace(b"rok 2027/2028", b"rok 2028/2029")
    bad_report = client.post("/api/v1/signatures/verify", headers=city, content=tampered).json()
    assert bad_report["indication"] == "TOTAL_FAILED"
    # The same with the library directly, at the signing time.
    with backend.container.uow() as uow:
        from workflow.signing.service import trust_store

        store = trust_store(uow)
    assert verify_xades(signed, trust=store, at="signing_time").passed


def test_anonymous_cannot_verify_or_list(client: TestClient) -> None:
    assert client.post("/api/v1/signatures/verify", content=b"<a/>").status_code == 401
    assert client.get("/api/v1/trust-anchors").status_code == 401


def test_production_without_a_key_encryption_key_refuses_clearly(pg_backend: Backend) -> None:
    """On PostgreSQL the key-encryption key must be configured; importing answers 503 with a
    stable code (after the authorisation check), never stores a key unencrypted."""
    settings = pg_backend.settings.model_copy(update={"key_encryption_key": None})
    from api.bootstrap import key_encryption_key as kek
    from workflow.errors import DomainError

    try:
        kek(settings)
    except DomainError as e:
        assert e.code == "key_encryption_key_missing" and e.status == 503
    else:
        raise AssertionError("a missing key-encryption key must be refused")


def test_a_signed_letter_is_registered_with_its_report(
    backend: Backend, client: TestClient, pki: TestPki, tsa: RunningTsa
) -> None:
    """SP58 signs a letter with its stored seal; the city office's clerk registers it: an RPW
    entry with a case in WOW, the signed XML as the document and the verification report stored
    with it. A tampered letter is registered too, marked failed; a letter for another unit or a
    file that is not a letter is refused."""
    admin = token(client, "admin.sp58")
    body = {"label": "Pieczęć SP58", "key_base64": p12(pki, b"k"), "password": "k"}
    assert (
        client.post("/api/v1/units/SP58/signing-keys", headers=admin, json=body).status_code == 201
    )
    city_admin = token(client, "admin.wow")
    client.post(
        "/api/v1/trust-anchors",
        headers=city_admin,
        json={"label": "Test CA", "pem": pki.root.cert_pem.decode()},
    )
    with backend.container.uow() as uow:
        unit = OrgRepository(uow.session).unit_by_code("SP58")
        assert unit is not None
        identity = unit_identity(uow, unit, lambda: key_encryption_key(backend.settings))
    signed = sign_enveloped(school_letter(), identity, tsa_url=tsa.url)

    clerk = token(client, "clerk.wow")
    # A school clerk cannot register into the city office's register.
    assert (
        client.post(
            "/api/v1/units/WOW/official-letters",
            headers=token(client, "clerk.sp58"),
            content=signed,
        ).status_code
        == 403
    )
    r = client.post("/api/v1/units/WOW/official-letters", headers=clerk, content=signed)
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["case_reference"].startswith("WOW.43178.")
    assert item["channel"] == "internal" and item["sender"]["name"] == "Szkoła Podstawowa nr 58"
    [doc] = item["documents"]
    assert doc["signature_report"]["indication"] == "TOTAL_PASSED"
    assert doc["signature_report"]["level"] == "XAdES-T"
    stored = client.get(f"/api/v1/incoming/{item['id']}", headers=clerk).json()
    assert stored["documents"][0]["signature_report"]["indication"] == "TOTAL_PASSED"
    assert "podpis prawidłowy" in stored["notes"]

    tampered = signed.replace(b"rok 2027/2028", b"rok 2030/2031")
    bad = client.post("/api/v1/units/WOW/official-letters", headers=clerk, content=tampered).json()
    assert bad["documents"][0]["signature_report"]["indication"] == "TOTAL_FAILED"
    assert "NIEPRAWIDŁOWY" in bad["notes"]

    wrong = client.post(
        "/api/v1/units/SP12/official-letters", headers=token(client, "clerk.sp12"), content=signed
    )
    assert wrong.status_code == 422 and error_code(wrong) == "letter_misaddressed"
    junk = client.post("/api/v1/units/WOW/official-letters", headers=clerk, content=b"<a/>")
    assert junk.status_code == 422
