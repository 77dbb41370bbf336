"""The result of verifying a signed document, in ETSI EN 319 102-1 terms.

`indication` is the main status (TOTAL_PASSED, TOTAL_FAILED, INDETERMINATE) and
`sub_indication` the reason (ETSI names: HASH_FAILURE, SIG_CRYPTO_FAILURE, FORMAT_FAILURE,
NO_CERTIFICATE_CHAIN_FOUND, OUT_OF_BOUNDS_NO_POE, ...). A document with several ds:Signature
elements (parallel signatures, counter-signatures) gets one report per signature in
`signatures` and a summary at the top level: the worst indication, the first signature's signer,
time and level, and every error and warning prefixed with the signature's Id.

The report is plain data: `to_json()` gives a JSON-safe dict (ISO 8601 times) that EZD stores
with the document and shows to the clerk; `from_json()` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

Indication = Literal["TOTAL_PASSED", "TOTAL_FAILED", "INDETERMINATE"]

#: Worst first: a failed signature outweighs an undecided one, which outweighs a passed one.
_SEVERITY: dict[str, int] = {"TOTAL_FAILED": 2, "INDETERMINATE": 1, "TOTAL_PASSED": 0}

#: What the clerk sees (Polish): the indication, then the reason.
INDICATION_PL: dict[str, str] = {
    "TOTAL_PASSED": "Podpis prawidłowy",
    "TOTAL_FAILED": "Podpis nieprawidłowy",
    "INDETERMINATE": "Nie można rozstrzygnąć ważności podpisu",
}
SUB_INDICATION_PL: dict[str, str] = {
    "HASH_FAILURE": "podpisane dane zostały zmienione",
    "SIG_CRYPTO_FAILURE": "wartość podpisu nie zgadza się z certyfikatem",
    "FORMAT_FAILURE": "plik ma niepoprawny lub niedozwolony format albo podpis nie obejmuje "
    "całego dokumentu",
    "SIG_CONSTRAINTS_FAILURE": "atrybuty podpisu (np. znacznik czasu) są nieprawidłowe",
    "CHAIN_CONSTRAINTS_FAILURE": "certyfikat lub jego wystawca nie spełnia wymagań "
    "(np. dozwolone użycie klucza)",
    "CRYPTO_CONSTRAINTS_FAILURE": "użyto niedozwolonego algorytmu (np. SHA-1)",
    "EXPIRED": "podpis złożono po wygaśnięciu certyfikatu",
    "NOT_YET_VALID": "podpis złożono przed początkiem ważności certyfikatu",
    "NO_CERTIFICATE_CHAIN_FOUND": "certyfikat nie pochodzi od zaufanego wystawcy",
    "NO_SIGNING_CERTIFICATE_FOUND": "nie znaleziono certyfikatu osoby podpisującej",
    "OUT_OF_BOUNDS_NO_POE": "certyfikat jest nieważny w chwili weryfikacji, a czas złożenia "
    "podpisu nie jest potwierdzony",
    "SIGNED_DATA_NOT_FOUND": "nie znaleziono podpisanych danych (np. brak pliku podpisanego "
    "podpisem zewnętrznym)",
    "NO_POE": "nie jest znany czas złożenia podpisu (brak znacznika czasu i czasu podpisu)",
}

#: The six keys `ezd verify` prints.
CLI_KEYS = ("indication", "sub_indication", "signed_by", "signing_time", "level", "errors")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _from_iso(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass
class VerificationReport:
    indication: Indication
    sub_indication: str | None = None
    #: subject CN (and O when present) of the signing certificate
    signed_by: str | None = None
    #: the best known signing time: the verified time-stamp's genTime, else xades:SigningTime
    signing_time: datetime | None = None
    #: "XMLDSig", "XAdES-BES", "XAdES-EPES", "XAdES-T", "XAdES-C", "XAdES-X", "XAdES-X-L",
    #: "XAdES-A", "XAdES-B-LT", "XAdES-B-LTA"
    level: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signature_id: str | None = None
    signer_certificate_sha256: str | None = None
    #: genTime of a signature time-stamp whose imprint and TSA signature were verified
    timestamp_time: datetime | None = None
    #: xades:SigningTime as claimed by the signer (not proven)
    claimed_signing_time: datetime | None = None
    #: the time the certificates were validated at (None when no time could be established)
    validation_time: datetime | None = None
    #: what the signature was found to cover: "document", "ds:Object #id", "detached:<uri>"...
    signed_data: list[str] = field(default_factory=list)
    #: subjects of the certificate path, signer first, trust anchor last
    certificate_chain: list[str] = field(default_factory=list)
    #: per-signature reports when the document holds more than one ds:Signature
    signatures: list[VerificationReport] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.indication == "TOTAL_PASSED"

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed, 2 indeterminate (the `ezd verify` convention)."""
        return {"TOTAL_PASSED": 0, "TOTAL_FAILED": 1, "INDETERMINATE": 2}[self.indication]

    @property
    def message_pl(self) -> str:
        """One sentence for the clerk, e.g. "Podpis nieprawidłowy: podpisane dane zostały
        zmienione"."""
        text = INDICATION_PL[self.indication]
        if self.sub_indication:
            text += ": " + SUB_INDICATION_PL.get(self.sub_indication, self.sub_indication)
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "indication": self.indication,
            "sub_indication": self.sub_indication,
            "signed_by": self.signed_by,
            "signing_time": _iso(self.signing_time),
            "level": self.level,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "signature_id": self.signature_id,
            "signer_certificate_sha256": self.signer_certificate_sha256,
            "timestamp_time": _iso(self.timestamp_time),
            "claimed_signing_time": _iso(self.claimed_signing_time),
            "validation_time": _iso(self.validation_time),
            "signed_data": list(self.signed_data),
            "certificate_chain": list(self.certificate_chain),
            "signatures": [s.to_json() for s in self.signatures],
            "message_pl": self.message_pl,
        }

    def cli_json(self) -> dict[str, Any]:
        """The object `ezd verify` prints: exactly the keys in `CLI_KEYS`."""
        full = self.to_json()
        return {k: full[k] for k in CLI_KEYS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerificationReport:
        indication = data.get("indication")
        if indication not in _SEVERITY:
            raise ValueError(f"unknown indication {indication!r}")
        return cls(
            indication=cast(Indication, indication),
            sub_indication=data.get("sub_indication"),
            signed_by=data.get("signed_by"),
            signing_time=_from_iso(data.get("signing_time")),
            level=data.get("level"),
            errors=[str(e) for e in data.get("errors") or []],
            warnings=[str(w) for w in data.get("warnings") or []],
            signature_id=data.get("signature_id"),
            signer_certificate_sha256=data.get("signer_certificate_sha256"),
            timestamp_time=_from_iso(data.get("timestamp_time")),
            claimed_signing_time=_from_iso(data.get("claimed_signing_time")),
            validation_time=_from_iso(data.get("validation_time")),
            signed_data=[str(s) for s in data.get("signed_data") or []],
            certificate_chain=[str(s) for s in data.get("certificate_chain") or []],
            signatures=[cls.from_json(s) for s in data.get("signatures") or []],
        )

    @classmethod
    def refused(cls, sub_indication: str, *errors: str) -> VerificationReport:
        """A document that was not verified at all because its format was refused."""
        return cls(indication="TOTAL_FAILED", sub_indication=sub_indication, errors=list(errors))

    @classmethod
    def summarise(cls, reports: list[VerificationReport]) -> VerificationReport:
        """One report for a document: the worst indication over all its signatures."""
        if not reports:
            return cls(
                indication="INDETERMINATE",
                sub_indication="SIGNED_DATA_NOT_FOUND",
                errors=["The document contains no ds:Signature element."],
            )
        if len(reports) == 1:
            return reports[0]
        worst = max(reports, key=lambda r: _SEVERITY[r.indication])
        first = reports[0]
        summary = cls(
            indication=worst.indication,
            sub_indication=worst.sub_indication,
            signed_by=first.signed_by,
            signing_time=first.signing_time,
            level=first.level,
            signature_id=first.signature_id,
            signer_certificate_sha256=first.signer_certificate_sha256,
            timestamp_time=first.timestamp_time,
            claimed_signing_time=first.claimed_signing_time,
            validation_time=first.validation_time,
            signed_data=list(first.signed_data),
            certificate_chain=list(first.certificate_chain),
            signatures=list(reports),
        )
        for r in reports:
            label = r.signature_id or "?"
            summary.errors.extend(f"[{label}] {e}" for e in r.errors)
            summary.warnings.extend(f"[{label}] {w}" for w in r.warnings)
        return summary
