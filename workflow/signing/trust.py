"""Trust anchors for verifying incoming signatures.

A `TrustStore` holds the certificates a signature's chain may end in. They come from PEM files
an admin configured (`TrustStore.from_pem`) or from an ETSI TS 119 612 trusted list
(`add_trusted_list`): the X509Certificate of every TSPService that is a CA issuing qualified
certificates (`.../Svctype/CA/QC`) for electronic signatures or seals, with the current status
`granted`. A trusted list's own signature can be checked against a pinned signer first.

Any certificate can be an anchor: a CA, or (pinning) the signer's own certificate. The store
never falls back to the operating system's or a web CA bundle. Nothing here reads a file or
the network; callers pass bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from workflow.errors import ValidationFailed
from workflow.xmlsafe import parse_untrusted_xml

if TYPE_CHECKING:
    from workflow.signing.report import VerificationReport

TSL_NS = "http://uri.etsi.org/02231/v2#"
_T = "{" + TSL_NS + "}"

SVC_CA_QC = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"
SVC_TSA_QTST = "http://uri.etsi.org/TrstSvc/Svctype/TSA/QTST"
STATUS_GRANTED = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted"
_ASI = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/"
ASI_ESIG = _ASI + "ForeSignatures"
ASI_ESEAL = _ASI + "ForeSeals"
ASI_WEB = _ASI + "ForWebSiteAuthentication"

#: A trusted list is a few MB at most (the Polish one is 0.7 MB, Germany's ~2 MB).
MAX_TRUSTED_LIST_BYTES = 20_000_000

Purpose = Literal["signature", "timestamp"]


class TrustListRefused(ValidationFailed):
    code = "trusted_list_refused"


def cert_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class TrustAnchor:
    certificate: x509.Certificate
    #: where it came from: "pem", or "TL PL #110: <provider> / <service>"
    source: str
    purpose: Purpose = "signature"

    @property
    def sha256(self) -> str:
        return cert_sha256(self.certificate)

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


class TrustStore:
    """Certificates a chain may end in, keyed by SHA-256 of their DER."""

    def __init__(self, anchors: Iterable[TrustAnchor] = ()) -> None:
        self._anchors: dict[tuple[str, Purpose], TrustAnchor] = {}
        for anchor in anchors:
            self.add(anchor)

    # -- building -------------------------------------------------------------------------
    @classmethod
    def from_pem(cls, *pems: bytes, source: str = "pem") -> TrustStore:
        """A store of every certificate in the given PEM blobs (each may hold several)."""
        store = cls()
        for pem in pems:
            store.add_pem(pem, source=source)
        return store

    def add(self, anchor: TrustAnchor) -> None:
        self._anchors.setdefault((anchor.sha256, anchor.purpose), anchor)

    def add_certificate(
        self, cert: x509.Certificate, *, source: str = "pem", purpose: Purpose = "signature"
    ) -> None:
        self.add(TrustAnchor(cert, source, purpose))

    def add_pem(self, pem: bytes, *, source: str = "pem", purpose: Purpose = "signature") -> int:
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError as e:
            raise ValidationFailed(
                f"Plik PEM z zaufanymi certyfikatami jest niepoprawny: {e}",
                f"The trust anchor PEM is not valid: {e}",
                code="trust_pem_invalid",
            ) from e
        for cert in certs:
            self.add_certificate(cert, source=source, purpose=purpose)
        return len(certs)

    def add_trusted_list(
        self,
        xml: bytes,
        *,
        signer: TrustStore | None = None,
        verify_at: datetime | Literal["signing_time"] | None = None,
        service_types: Iterable[str] = (SVC_CA_QC,),
        statuses: Iterable[str] = (STATUS_GRANTED,),
        include_timestamping: bool = True,
        max_bytes: int = MAX_TRUSTED_LIST_BYTES,
    ) -> int:
        """Add the qualified CA certificates of a trusted list; return how many CA anchors
        were new (time-stamping anchors are not counted).

        With `signer` (the pinned TL signer certificate(s), as the EU list of trusted lists
        publishes them) the list's XAdES signature must verify as TOTAL_PASSED at `verify_at`
        (None = now, "signing_time" = the list's own signing time) or TrustListRefused is
        raised. Without `signer` the caller vouches for the bytes (e.g. a file an admin put in
        place). Qualified time-stamping services (TSA/QTST) are kept as `timestamp` anchors.
        """
        if signer is not None:
            report = self._verify_list_signature(xml, signer, verify_at, max_bytes)
            if not report.passed:
                raise TrustListRefused(
                    "Podpis listy zaufanych usług jest nieprawidłowy: "
                    f"{report.indication}/{report.sub_indication}",
                    "The trusted list's signature is not valid: "
                    f"{report.indication}/{report.sub_indication}: {'; '.join(report.errors)}",
                )
        root = parse_untrusted_xml(xml, max_bytes=max_bytes, max_elements=2_000_000, what="TSL")
        if root.tag != _T + "TrustServiceStatusList":
            raise TrustListRefused(
                "To nie jest lista zaufanych usług (TrustServiceStatusList).",
                "This is not a trusted list (TrustServiceStatusList).",
            )
        territory = (root.findtext(f"{_T}SchemeInformation/{_T}SchemeTerritory") or "?").strip()
        sequence = (root.findtext(f"{_T}SchemeInformation/{_T}TSLSequenceNumber") or "?").strip()
        types, wanted_status = set(service_types), set(statuses)
        before = len(self)
        for provider in root.iter(_T + "TrustServiceProvider"):
            tsp_name = _first_name(provider.find(f"{_T}TSPInformation/{_T}TSPName"))
            for service in provider.iter(_T + "TSPService"):
                info = service.find(_T + "ServiceInformation")
                if info is None:
                    continue
                stype = (info.findtext(_T + "ServiceTypeIdentifier") or "").strip()
                status = (info.findtext(_T + "ServiceStatus") or "").strip()
                if status not in wanted_status:
                    continue
                if stype in types:
                    if not _for_signatures_or_seals(info):
                        continue
                    purpose: Purpose = "signature"
                elif include_timestamping and stype == SVC_TSA_QTST:
                    purpose = "timestamp"
                else:
                    continue
                service_name = _first_name(info.find(_T + "ServiceName"))
                source = f"TL {territory} #{sequence}: {tsp_name} / {service_name}"
                for cert in _service_certificates(info):
                    self.add_certificate(cert, source=source, purpose=purpose)
        return len(self) - before

    @staticmethod
    def _verify_list_signature(
        xml: bytes,
        signer: TrustStore,
        verify_at: datetime | Literal["signing_time"] | None,
        max_bytes: int,
    ) -> VerificationReport:
        from workflow.signing.verify import verify_xades  # verify imports this module

        return verify_xades(xml, trust=signer, at=verify_at, max_bytes=max_bytes)

    # -- reading --------------------------------------------------------------------------
    def anchors(self, purpose: Purpose = "signature") -> list[TrustAnchor]:
        return [a for (_, p), a in self._anchors.items() if p == purpose]

    def certificates(self, purpose: Purpose = "signature") -> list[x509.Certificate]:
        return [a.certificate for a in self.anchors(purpose)]

    def anchor_for(
        self, cert: x509.Certificate, purpose: Purpose = "signature"
    ) -> TrustAnchor | None:
        """The anchor that is exactly this certificate (same DER), if any."""
        return self._anchors.get((cert_sha256(cert), purpose))

    def issuers_of(
        self, cert: x509.Certificate, purpose: Purpose = "signature"
    ) -> list[x509.Certificate]:
        """Anchors whose subject is the certificate's issuer (signature not yet checked)."""
        return [c for c in self.certificates(purpose) if c.subject == cert.issuer]

    def __len__(self) -> int:
        return len(self.anchors("signature"))

    def __iter__(self) -> Iterator[TrustAnchor]:
        return iter(self.anchors("signature"))


def _first_name(el: etree._Element | None) -> str:
    if el is None:
        return "?"
    names = [n for n in el if isinstance(n.tag, str) and n.tag == _T + "Name"]
    for n in names:
        if n.get("{http://www.w3.org/XML/1998/namespace}lang") == "en":
            return (n.text or "?").strip()
    return (names[0].text or "?").strip() if names else "?"


def _for_signatures_or_seals(info: etree._Element) -> bool:
    """A CA/QC service without AdditionalServiceInformation covers every purpose; with it, it
    must name electronic signatures or seals (not only website authentication)."""
    uris = {
        (u.text or "").strip()
        for u in info.iter(_T + "URI")
        if (u.text or "").strip().startswith(_ASI)
    }
    purposes = uris & {ASI_ESIG, ASI_ESEAL, ASI_WEB}
    return not purposes or bool(purposes & {ASI_ESIG, ASI_ESEAL})


def _service_certificates(info: etree._Element) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for el in info.iterfind(f"{_T}ServiceDigitalIdentity/{_T}DigitalId/{_T}X509Certificate"):
        try:
            der = base64.b64decode("".join((el.text or "").split()), validate=True)
            certs.append(x509.load_der_x509_certificate(der))
        except (ValueError, binascii.Error) as e:
            raise TrustListRefused(
                f"Lista zaufanych usług zawiera uszkodzony certyfikat: {e}",
                f"The trusted list contains a malformed certificate: {e}",
            ) from e
    return certs
