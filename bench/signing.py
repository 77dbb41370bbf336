"""Signing and verification benchmark: signs/s and verifies/s of ezd (XAdES-BES enveloped over a
letter) next to raw signxml on the same document, key and certificate, in the same run.

    .venv/bin/python bench/signing.py [--seconds 5] [--key rsa|ec]

ezd verification does more than signxml's (every signature, the chain built by hand to the
trust anchors at the signing time, SigningCertificate digest, wrapping checks), so both figures
are printed; the target is ezd ≥ 0.8 × raw signxml for each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from lxml import etree
from signxml import SignatureConstructionMethod
from signxml.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pki import make_pki  # noqa: E402
from workflow.letters.letter import Letter, Party, build_letter_xml  # noqa: E402
from workflow.signing.keys import load_identity  # noqa: E402
from workflow.signing.sign import sign_enveloped  # noqa: E402
from workflow.signing.trust import TrustStore  # noqa: E402
from workflow.signing.verify import verify_xades  # noqa: E402


def rate(fn: object, seconds: float) -> float:
    assert callable(fn)
    fn()  # warm
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def letter() -> bytes:
    return build_letter_xml(
        Letter(
            sender=Party(name="Szkoła Podstawowa nr 58", unit_code="SP58"),
            addressee=Party(name="Wydział Oświaty i Wychowania", unit_code="WOW"),
            letter_date=date(2026, 11, 29),
            place="Miasto",
            our_reference="SP58.4430.12.2026",
            subject="Arkusz organizacji na rok szkolny 2027/2028",
            body=tuple(f"Akapit {i}: " + "treść pisma urzędowego " * 12 for i in range(20)),
            document_id=uuid.uuid4(),
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--key", choices=["rsa", "ec"], default="rsa")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
    issued = pki.seal if args.key == "rsa" else pki.seal_ec
    identity = load_identity(issued.key_pem + issued.cert_pem + pki.intermediate.cert_pem, None)
    doc = letter()
    algorithm = "rsa-sha256" if args.key == "rsa" else "ecdsa-sha256"
    parser = etree.XMLParser(resolve_entities=False, huge_tree=True)

    def raw_sign() -> bytes:
        signer = XAdESSigner(
            method=SignatureConstructionMethod.enveloped, signature_algorithm=algorithm
        )
        signed = signer.sign(
            etree.fromstring(doc, parser), key=issued.key, cert=[issued.cert, *issued.chain]
        )
        return bytes(etree.tostring(signed))

    def ezd_sign() -> bytes:
        return sign_enveloped(doc, identity)

    signed_raw = raw_sign()
    signed_ezd = ezd_sign()
    trust = TrustStore.from_pem(pki.root.cert_pem)
    config = XAdESSignatureConfiguration(expect_references=3)

    def raw_verify() -> None:
        XAdESVerifier().verify(signed_raw, x509_cert=issued.cert, expect_config=config)

    def ezd_verify() -> None:
        report = verify_xades(signed_ezd, trust=trust)
        assert report.passed, report.to_json()

    results = {
        "document_bytes": len(doc),
        "key": args.key,
        "signs_per_s": {
            "signxml": rate(raw_sign, args.seconds),
            "ezd": rate(ezd_sign, args.seconds),
        },
        "verifies_per_s": {
            "signxml": rate(raw_verify, args.seconds),
            "ezd": rate(ezd_verify, args.seconds),
        },
    }
    for what in ("signs_per_s", "verifies_per_s"):
        r = results[what]
        assert isinstance(r, dict)
        r["ratio"] = r["ezd"] / r["signxml"]
        verdict = "meets" if r["ratio"] >= 0.8 else "MISSES"
        print(
            f"{what:15} signxml {r['signxml']:8.1f}  ezd {r['ezd']:8.1f}  "
            f"ratio {r['ratio']:.2f} ({verdict} the 0.8 target)"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"signing-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
