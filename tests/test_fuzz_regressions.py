"""Regular tests for what the OpenAPI fuzzing (tests/test_fuzz_openapi.py) found: each failed
before its fix."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import error_code, letter_meta, register, token


def test_a_trust_anchor_that_is_not_ascii_is_refused_not_a_crash(client: TestClient) -> None:
    """The router encoded the PEM text as ASCII before the service saw it: a non-ASCII
    character answered 500 (for an administrator and for a clerk, who should get 403)."""
    body = {"label": "CA", "pem": "-----BEGIN CERTIFICATE-----\nżółć\n-----END CERTIFICATE-----\n"}
    admin = client.post("/api/v1/trust-anchors", headers=token(client, "admin.wow"), json=body)
    assert admin.status_code == 422 and error_code(admin) == "pem_invalid"
    clerk = client.post("/api/v1/trust-anchors", headers=token(client, "clerk.sp58"), json=body)
    assert clerk.status_code == 403


def test_error_answers_are_documented_in_the_one_error_shape(client: TestClient) -> None:
    """Every operation documents the domain errors it can answer with (401, 403, 404, … as the
    `ErrorResponse` body); before, only 200 and FastAPI's 422 (a body never sent) were."""
    schema = client.get("/openapi.json").json()
    assert "ErrorResponse" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            assert "503" in responses, (method, path)
            if path.startswith(("/api/v1/public", "/api/v1/auth")) or path == "/healthz":
                continue
            assert {"401", "403", "404", "422"} <= responses.keys(), (method, path)
            body = responses["404"]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path)
    record = schema["paths"]["/api/v1/cases/{reference}/record.html"]["get"]["responses"]
    assert "application/json" in record["401"]["content"]  # errors are JSON beside the HTML


BIG = 10**20  # beyond a database INTEGER (and SQLite's 64 bits)


def test_integers_beyond_the_database_range_are_a_422_not_a_crash(client: TestClient) -> None:
    """A path or query integer above what the database holds answered 500 (SQLite:
    OverflowError; PostgreSQL: out of range). The parameters are bounded now."""
    clerk = token(client, "clerk.sp58")
    item = register(client, clerk, letter_meta()).json()
    document = item["documents"][0]["id"]
    for url, who in (
        (f"/api/v1/process-definitions/incoming_letter/{BIG}/xml", "admin.wow"),
        (f"/api/v1/process-definitions/incoming_letter/-{BIG}/xml", "admin.wow"),
        (f"/api/v1/documents/{document}/versions/{BIG}/content", "clerk.sp58"),
        (f"/api/v1/incoming?offset={BIG}", "clerk.sp58"),
        (f"/api/v1/outgoing?offset={BIG}", "clerk.sp58"),
        (f"/api/v1/archive/SP58/register?year={BIG}", "archivist.sp58"),
    ):
        r = client.get(url, headers=token(client, who))
        assert r.status_code == 422 and error_code(r) == "validation_failed", (url, r.text)
