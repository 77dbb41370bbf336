"""Small helpers shared by the tests: logging in and registering letters over HTTP."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17


def token(client: TestClient, username: str, password: str = "demo") -> dict[str, str]:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def letter_meta(**overrides: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "subject": "Wniosek o wydanie duplikatu legitymacji szkolnej",
        "sender": {
            "name": "Anna Kowalska",
            "kind": "person",
            "address": "ul. Polna 5, 00-100 Miasto",
        },
        "channel": "paper",
        "jrwa": "431",
        "new_case": True,
    }
    meta.update(overrides)
    return meta


def register(
    client: TestClient,
    headers: dict[str, str],
    meta: dict[str, Any] | str | None,
    files: list[tuple[str, bytes, str | None]] | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Any:
    data = {} if meta is None else {"meta": meta if isinstance(meta, str) else json.dumps(meta)}
    parts = [
        ("files", (name, content, ctype) if ctype else (name, content))
        for name, content, ctype in (
            files if files is not None else [("wniosek.pdf", PDF, "application/pdf")]
        )
    ]
    return client.post(
        "/api/v1/incoming",
        headers={**headers, **(extra_headers or {})},
        data=data,
        files=parts or None,
    )


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def install_unit_seals(client: TestClient, pki: Any, *extra_roots: bytes) -> None:
    """Electronic seals for SP58 (RSA) and WOW (EC P-256) from the test PKI, imported by each
    unit's administrator, and the PKI's root (plus `extra_roots`, e.g. a TSA's) trusted."""
    import base64

    for unit, issued in (("SP58", pki.seal), ("WOW", pki.seal_ec)):
        r = client.post(
            f"/api/v1/units/{unit}/signing-keys",
            headers=token(client, f"admin.{unit.lower()}"),
            json={
                "label": f"Pieczęć elektroniczna {unit}",
                "key_base64": base64.b64encode(issued.p12(b"haslo")).decode(),
                "password": "haslo",
            },
        )
        assert r.status_code == 201, r.text
    for n, pem in enumerate((pki.root.cert_pem, *extra_roots)):
        r = client.post(
            "/api/v1/trust-anchors",
            headers=token(client, "admin.wow"),
            json={"label": f"Testowe CA {n}", "pem": pem.decode()},
        )
        assert r.status_code == 201, r.text
