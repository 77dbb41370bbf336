"""What a file really is, from its first bytes, and whether its declared type is honest.

A declared type is accepted when it matches the sniffed one, or when the content has no
recognisable signature and the declared type is one that has none either (plain text, CSV, XML…).
`application/octet-stream` (or nothing) means "don't know" and takes the sniffed type.
"""

from __future__ import annotations

import filetype

SNIFF_BYTES = 8192
UNKNOWN = "application/octet-stream"

# Types without a magic number; their content is checked only for being text-like.
TEXTUAL = {
    "text/plain",
    "text/csv",
    "text/xml",
    "application/xml",
    "text/html",
    "application/json",
    "text/markdown",
    "application/xades+xml",
    "application/vnd.etsi.asic-e+zip",
}
# Containers that sniff as zip: a DOCX/ODT is a zip, so a declared OOXML/ODF type is honest.
ZIP_FAMILY = {
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.etsi.asic-e+zip",
    "application/epub+zip",
}
ALIASES = {
    "application/x-pdf": "application/pdf",
    "image/jpg": "image/jpeg",
    "text/xml": "application/xml",
}


def normalise(media_type: str | None) -> str | None:
    if not media_type:
        return None
    base = media_type.split(";", 1)[0].strip().lower()
    return ALIASES.get(base, base) or None


def _looks_textual(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut at the end of the sniffed block is still text.
        if e.start < len(head) - 4:
            return False
    return True


def detect(head: bytes) -> str:
    kind = filetype.guess(head)
    if kind is not None:
        return normalise(kind.mime) or UNKNOWN
    if head and _looks_textual(head):
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped.startswith(b"<?xml") or stripped.startswith(b"<"):
            return "application/xml"
        return "text/plain"
    return UNKNOWN


def reconcile(declared: str | None, head: bytes) -> tuple[str, bool]:
    """(type to record, honest?)."""
    sniffed = detect(head)
    decl = normalise(declared)
    if decl is None or decl == UNKNOWN:
        return sniffed, True
    if decl == sniffed:
        return decl, True
    if sniffed == "application/zip" and decl in ZIP_FAMILY:
        return decl, True
    if sniffed in ("text/plain", "application/xml") and decl in TEXTUAL:
        return decl, True
    if (
        sniffed == UNKNOWN
        and decl not in TEXTUAL
        and decl not in ZIP_FAMILY
        and not decl.startswith(("image/", "audio/", "video/"))
        and decl != "application/pdf"
    ):
        # A binary type we have no signature for (e.g. a vendor format): trust the declaration.
        return decl, True
    return sniffed, False


def dcmi_type(media_type: str) -> str:
    """The 'typ' of the minimum metadata set, as a DCMI Type."""
    if media_type.startswith("image/"):
        return "StillImage"
    if media_type.startswith("audio/"):
        return "Sound"
    if media_type.startswith("video/"):
        return "MovingImage"
    return "Text"
