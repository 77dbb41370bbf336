"""Administrator and auditor roles reach across units only when held in the city office;
held in a school they stay within it (tenant isolation, invariant 6)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Backend
from tests.helpers import error_code, letter_meta, register, token


def test_school_admin_manages_only_its_school(backend: Backend, client: TestClient) -> None:
    h = token(client, "admin.sp58")
    dept = {"code": "SEK", "name": "Sekretariat"}
    assert client.post("/api/v1/units/SP58/departments", headers=h, json=dept).status_code == 201
    r = client.post("/api/v1/units/SP12/departments", headers=h, json=dept)
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    r = client.post(
        "/api/v1/units",
        headers=h,
        json={
            "code": "SP99",
            "name": "Szkoła Podstawowa nr 99",
            "kind": "school",
            "jrwa_plan": "szkola",
        },
    )
    assert r.status_code == 403
    r = client.post(
        "/api/v1/users",
        headers=h,
        json={"username": "nauczyciel.sp58", "full_name": "Ewa Nowak", "password": "tajne-haslo-1"},
    )
    assert r.status_code == 201, r.text
    ok = client.post(
        "/api/v1/users/nauczyciel.sp58/roles", headers=h, json={"unit": "SP58", "role": "handler"}
    )
    assert ok.status_code == 204, ok.text
    r = client.post(
        "/api/v1/users/nauczyciel.sp58/roles", headers=h, json={"unit": "SP12", "role": "clerk"}
    )
    assert r.status_code == 403
    # Nor can a school admin make anyone the city's auditor or administrator.
    r = client.post(
        "/api/v1/users/nauczyciel.sp58/roles", headers=h, json={"unit": "WOW", "role": "auditor"}
    )
    assert r.status_code == 403
    assert client.get("/api/v1/audit/verify", headers=h).status_code == 403


def test_city_admin_manages_every_unit(backend: Backend, client: TestClient) -> None:
    h = token(client, "admin.wow")
    dept = {"code": "SEK", "name": "Sekretariat"}
    assert client.post("/api/v1/units/SP12/departments", headers=h, json=dept).status_code == 201
    r = client.post(
        "/api/v1/units",
        headers=h,
        json={
            "code": "SP99",
            "name": "Szkoła Podstawowa nr 99",
            "kind": "school",
            "jrwa_plan": "szkola",
        },
    )
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/audit/verify", headers=h).json()["ok"] is True


def test_school_auditor_reads_only_its_school(backend: Backend, client: TestClient) -> None:
    sp58 = register(client, token(client, "clerk.sp58"), letter_meta()).json()
    sp12 = register(client, token(client, "clerk.sp12"), letter_meta()).json()
    school_auditor = token(client, "auditor.sp58")
    city_auditor = token(client, "auditor.wow")
    assert (
        client.get(f"/api/v1/cases/{sp58['case_reference']}", headers=school_auditor).status_code
        == 200
    )
    r = client.get(f"/api/v1/cases/{sp12['case_reference']}", headers=school_auditor)
    assert (r.status_code, error_code(r)) == (404, "case_not_found")
    for ref in (sp58["case_reference"], sp12["case_reference"]):
        assert client.get(f"/api/v1/cases/{ref}", headers=city_auditor).status_code == 200
    # Auditors only read.
    r = register(client, city_auditor, letter_meta(unit="SP12"))
    assert r.status_code == 403


def test_school_admin_lists_only_its_own_users(backend: Backend, client: TestClient) -> None:
    school = client.get("/api/v1/users", headers=token(client, "admin.sp58"))
    assert school.status_code == 200
    names = {u["username"] for u in school.json()}
    assert "clerk.sp58" in names and "clerk.sp12" not in names and "admin.wow" not in names
    city = client.get("/api/v1/users", headers=token(client, "admin.wow")).json()
    assert {"clerk.sp58", "clerk.sp12", "admin.wow"} <= {u["username"] for u in city}
    assert client.get("/api/v1/users", headers=token(client, "clerk.sp58")).status_code == 403
