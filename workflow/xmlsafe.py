"""Hardened XML parsing for everything that arrives from outside (BPMN uploads, signed letters).

lxml's parser with `resolve_entities=False, no_network=True` still accepts a document that carries
a DTD (entities left unresolved), so any DOCTYPE, entity declaration or XInclude is refused
explicitly, and so are documents above a size or element-count limit.
"""

from __future__ import annotations

from lxml import etree

from workflow.errors import ValidationFailed

XINCLUDE_NS = "http://www.w3.org/2001/XInclude"


class XmlRefused(ValidationFailed):
    code = "xml_refused"


def hardened_parser(*, huge_tree: bool, keep_pis: bool) -> etree.XMLParser:
    """The parser settings for anything from outside (also for libraries that re-parse a tree we
    already checked, such as signxml). One per use: lxml parsers are not shared between threads."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        dtd_validation=False,
        load_dtd=False,
        remove_comments=False,
        remove_pis=not keep_pis,
        huge_tree=huge_tree,
    )


def parse_untrusted_xml(
    data: bytes,
    *,
    max_bytes: int,
    max_elements: int,
    huge_tree: bool = False,
    what: str = "XML",
    keep_processing_instructions: bool = False,
) -> etree._Element:
    """Parse `data` or raise `XmlRefused` with a message a user can act on. Processing
    instructions are dropped unless kept on purpose (signed content must stay byte-exact)."""
    if len(data) > max_bytes:
        raise XmlRefused(
            f"Plik {what} jest za duży (limit {max_bytes} bajtów).",
            f"The {what} file is too large (limit {max_bytes} bytes).",
            status=413,
            code="xml_too_large",
        )
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise XmlRefused(
            f"Plik {what} zawiera deklarację DTD lub encji, które są niedozwolone.",
            f"The {what} file contains a DTD or entity declaration, which is not allowed.",
        )
    try:
        root = etree.fromstring(
            data, parser=hardened_parser(huge_tree=huge_tree, keep_pis=keep_processing_instructions)
        )
    except etree.XMLSyntaxError as e:
        raise XmlRefused(
            f"Plik {what} nie jest poprawnym XML: {e}",
            f"The {what} file is not well-formed XML: {e}",
            code="xml_malformed",
        ) from e
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XmlRefused(
            f"Plik {what} zawiera deklarację DTD, która jest niedozwolona.",
            f"The {what} file contains a DTD, which is not allowed.",
        )
    for count, el in enumerate(root.iter(), start=1):
        if count > max_elements:
            raise XmlRefused(
                f"Plik {what} ma za dużo elementów (limit {max_elements}).",
                f"The {what} file has too many elements (limit {max_elements}).",
                status=413,
                code="xml_too_many_elements",
            )
        if isinstance(el, etree._Entity):
            raise XmlRefused(
                f"Plik {what} zawiera odwołanie do encji.",
                f"The {what} file contains an entity reference.",
            )
        tag = el.tag
        if isinstance(tag, str) and tag.startswith("{" + XINCLUDE_NS + "}"):
            raise XmlRefused(
                f"Plik {what} zawiera XInclude, który jest niedozwolony.",
                f"The {what} file contains XInclude, which is not allowed.",
            )
    return root
