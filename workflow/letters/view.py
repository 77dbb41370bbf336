"""A readable, printable HTML page for a letter (`view.xsl`, lxml XSLT).

The letter goes through the same gate as `parse_letter_xml` (hardened parser, `letter.xsd`,
semantic checks) before the stylesheet sees it. Every stylesheet, ezd's own and any other
compiled with `compile_stylesheet`, runs with `XSLTAccessControl.DENY_ALL`, so `document()` of a
file or URL and EXSLT `exsl:document` output fail; `xsl:include`/`xsl:import` are refused before
compiling, because lxml 6.1 with DENY_ALL still loads an include given as a `file://` URL. So
neither a letter nor a stylesheet can read or write a file or reach the network. The stylesheet
itself escapes every value from the letter (it never disables output escaping and makes no link,
style or script from letter data); a `ds:Signature` after the letter's parts is shown as a note
("Dokument podpisany elektronicznie", with the signer's CN from `ds:X509SubjectName`, else
from the certificate in `ds:KeyInfo`, and the XAdES `SigningTime` when present), never
verified here.
"""

from __future__ import annotations

import base64
import binascii
import functools
import threading
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

from workflow.errors import ValidationFailed
from workflow.letters.letter import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ELEMENTS,
    DS_NS,
    load_letter_tree,
    read_letter,
)
from workflow.xmlsafe import parse_untrusted_xml

VIEW_XSL = Path(__file__).with_name("view.xsl")
XSLT_NS = "http://www.w3.org/1999/XSL/Transform"
MAX_STYLESHEET_BYTES = 1024 * 1024

# A compiled XSLT keeps the error log of its last run on the object itself, so two threads
# running it at once could read each other's errors: runs are serialised (a letter's transform
# takes about a millisecond; the expensive parsing and checking happen outside the lock).
_RUN_LOCK = threading.Lock()


class ViewFailed(ValidationFailed):
    code = "letter_view_failed"
    message_pl = "Nie można wyświetlić pisma."
    message_en = "The letter cannot be displayed."


def compile_stylesheet(xsl: bytes) -> etree.XSLT:
    """Compile an XSLT stylesheet that can neither read nor write files nor use the network.

    The stylesheet is parsed with the hardened parser (no DTD, entities or XInclude);
    `xsl:include` and `xsl:import` are refused outright, and the compiled transform runs under
    `XSLTAccessControl.DENY_ALL`, which also stops `document()` and `exsl:document`.
    """
    doc = parse_untrusted_xml(xsl, max_bytes=MAX_STYLESHEET_BYTES, max_elements=20_000, what="XSLT")
    for el in doc.iter(f"{{{XSLT_NS}}}include", f"{{{XSLT_NS}}}import"):
        raise ViewFailed(
            "Arkusz XSLT nie może dołączać innych plików (xsl:include, xsl:import).",
            "An XSLT stylesheet must not include other files (xsl:include, xsl:import).",
            details={"element": etree.QName(el).localname},
        )
    try:
        return etree.XSLT(doc, access_control=etree.XSLTAccessControl.DENY_ALL)
    except etree.XSLTParseError as e:
        raise ViewFailed(
            f"Arkusz XSLT jest niepoprawny: {e}", f"The XSLT stylesheet is invalid: {e}"
        ) from e


def run_stylesheet(xslt: etree.XSLT, doc: etree._Element, **params: str) -> str:
    """Apply a compiled stylesheet; string parameters are passed as XPath string literals.

    Any error the XSLT engine reports (a denied file read included) fails the whole view.
    """
    quoted = {name: etree.XSLT.strparam(value) for name, value in params.items()}
    with _RUN_LOCK:
        try:
            result = xslt(doc, **quoted)
        except etree.XSLTApplyError as e:
            raise ViewFailed(
                f"Nie udało się przekształcić pisma: {e}",
                f"The letter could not be transformed: {e}",
            ) from e
        errors = [entry for entry in xslt.error_log if entry.level >= etree.ErrorLevels.ERROR]
    if errors:
        raise ViewFailed(
            f"Nie udało się przekształcić pisma: {errors[0].message}",
            f"The letter could not be transformed: {errors[0].message}",
        )
    return str(result)


def signer_names(root: etree._Element) -> list[str]:
    """For each `ds:Signature` of the letter, the CN (or whole subject) of the first certificate
    in its `ds:KeyInfo`, or "" when there is none or it does not decode. Unverified: for display
    next to the note that the view does not verify signatures."""
    names: list[str] = []
    for sig in root.iterchildren(f"{{{DS_NS}}}Signature"):
        cert_el = sig.find(f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate")
        name = ""
        if cert_el is not None and cert_el.text:
            try:
                der = base64.b64decode("".join(cert_el.text.split()), validate=True)
                subject = x509.load_der_x509_certificate(der).subject
                cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                value = cns[0].value if cns else subject.rfc4514_string()
                name = value if isinstance(value, str) else value.decode("utf-8", "replace")
            except (ValueError, binascii.Error):
                name = ""
        names.append(" ".join(name.split()))
    return names


@functools.cache
def letter_view() -> etree.XSLT:
    """ezd's letter stylesheet, compiled once per process."""
    return compile_stylesheet(VIEW_XSL.read_bytes())


def render_letter_html(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> str:
    """The letter as a complete HTML page in Polish (lang="pl"), with print CSS inline."""
    root = load_letter_tree(data, max_bytes=max_bytes, max_elements=max_elements)
    letter = read_letter(root)
    sizes = " ".join(str(-1 if a.size is None else a.size) for a in letter.attachments)
    signers = "\n".join(name or "-" for name in signer_names(root))
    return run_stylesheet(
        letter_view(), root, jezyk=letter.language, rozmiary=sizes, podpisujacy=signers
    )
