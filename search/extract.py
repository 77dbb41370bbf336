"""Text from attachments: PDF (pypdf), DOCX and ODT (their XML read with the hardened parser),
XML letters (`workflow.letters`) and other XML, plain text; scans (images, image-only PDFs) by
OCR with Tesseract and its Polish data when installed.

Hostile files are refused with a reason, never a crash: encrypted PDFs, ZIP containers whose
declared sizes or compression ratio give a zip bomb away (Python's zipfile never inflates past
a member's declared size, so checking those is enough), oversized XML, corrupt files. Each limit
is a constructor argument.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from workflow.search.port import Extraction, TextExtractor
from workflow.xmlsafe import XmlRefused, parse_untrusted_xml

log = logging.getLogger(__name__)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
IMAGE_TYPES = {"image/png", "image/jpeg", "image/tiff", "image/bmp", "image/gif", "image/webp"}


class Refused(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Extractor(TextExtractor):
    max_chars: int = 1_000_000
    max_zip_total: int = 200 * 1024 * 1024  # declared uncompressed bytes of all members
    max_zip_ratio: int = 200  # uncompressed / compressed, for members above 1 MB
    max_zip_members: int = 5000
    max_xml_bytes: int = 50 * 1024 * 1024
    max_pdf_pages: int = 2000
    max_ocr_pages: int = 30
    ocr_languages: str = "pol"
    ocr_timeout_s: float = 120.0
    ocr_enabled: bool = True

    # --- the one entry point ------------------------------------------------------------------

    def extract(self, path: Path, media_type: str, file_name: str) -> Extraction:
        kind = self._kind(path, media_type, file_name)
        try:
            text, method = self._dispatch(kind, path)
        except Refused as r:
            return Extraction(r.status, kind, reason=r.reason)  # type: ignore[arg-type]
        except Exception as e:  # a corrupt file of any kind: recorded, never raised
            log.info("extraction of %s failed: %s: %s", file_name, type(e).__name__, e)
            return Extraction("failed", kind, reason=f"{type(e).__name__}: {str(e)[:300]}")
        text = text.strip()[: self.max_chars]
        return Extraction("ok" if text else "empty", method, text)

    @staticmethod
    def _kind(path: Path, media_type: str, file_name: str) -> str:
        name = file_name.lower()
        with path.open("rb") as f:
            head = f.read(8)
        if media_type == "application/pdf" or name.endswith(".pdf") or head.startswith(b"%PDF"):
            return "pdf"
        if media_type == DOCX or name.endswith(".docx"):
            return "docx"
        if media_type == ODT or name.endswith(".odt"):
            return "odt"
        if media_type in IMAGE_TYPES or name.endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff")):
            return "image"
        if "xml" in media_type or name.endswith((".xml", ".xades")):
            return "xml"
        if media_type.startswith("text/") or name.endswith((".txt", ".csv", ".md")):
            return "text"
        return "unsupported"

    def _dispatch(self, kind: str, path: Path) -> tuple[str, str]:
        if kind == "pdf":
            return self._pdf(path)
        if kind == "docx":
            return self._zip_xml(path, "word/document.xml", W_NS, ("p",), ("t",)), "docx"
        if kind == "odt":
            return self._zip_xml(path, "content.xml", TEXT_NS, ("p", "h"), None), "odt"
        if kind == "image":
            return self._ocr_images([path.read_bytes()]), "ocr"
        if kind == "xml":
            return self._xml(path)
        if kind == "text":
            return self._plain(path), "text"
        raise Refused("skipped", "unsupported file type")

    # --- formats ------------------------------------------------------------------------------

    def _plain(self, path: Path) -> str:
        data = path.read_bytes()[: self.max_chars * 4]
        for enc in ("utf-8", "cp1250", "iso-8859-2"):
            try:
                return data.decode(enc)
            except UnicodeDecodeError:
                continue
        return data.decode("utf-8", errors="replace")

    def _pdf(self, path: Path) -> tuple[str, str]:
        from pypdf import PdfReader

        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:  # an owner password only (printing restrictions): the text is readable
                if not reader.decrypt(""):
                    raise Refused("skipped", "encrypted PDF")
            except Refused:
                raise
            except Exception as e:
                raise Refused("skipped", f"encrypted PDF ({type(e).__name__})") from e
        if len(reader.pages) > self.max_pdf_pages:
            raise Refused(
                "skipped", f"PDF has {len(reader.pages)} pages (limit {self.max_pdf_pages})"
            )
        parts: list[str] = []
        size = 0
        for page in reader.pages:
            t = page.extract_text() or ""
            parts.append(t)
            size += len(t)
            if size > self.max_chars:
                break
        text = "\n".join(parts)
        if text.strip():
            return text, "pdf"
        # No text layer: a scan. OCR the page images.
        images: list[bytes] = []
        for page in reader.pages[: self.max_ocr_pages]:
            for img in page.images:
                images.append(img.data)
        if not images:
            return "", "pdf"
        return self._ocr_images(images), "pdf+ocr"

    def _check_zip(self, z: zipfile.ZipFile) -> None:
        infos = z.infolist()
        if len(infos) > self.max_zip_members:
            raise Refused("skipped", f"ZIP container with {len(infos)} members")
        total = sum(i.file_size for i in infos)
        if total > self.max_zip_total:
            raise Refused(
                "skipped", f"zip bomb suspected: {total} bytes uncompressed "
                f"(limit {self.max_zip_total})",
            )  # fmt: skip
        for i in infos:
            if i.file_size > 1024 * 1024 and i.file_size > self.max_zip_ratio * max(
                i.compress_size, 1
            ):
                raise Refused(
                    "skipped",
                    f"zip bomb suspected: {i.filename} expands "
                    f"{i.file_size // max(i.compress_size, 1)}×",
                )

    def _zip_xml(
        self,
        path: Path,
        member: str,
        ns: str,
        blocks: tuple[str, ...],
        leaves: tuple[str, ...] | None,
    ) -> str:
        try:
            z = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise Refused("failed", f"not a ZIP container: {e}") from e
        with z:
            self._check_zip(z)
            try:
                data = z.read(member)
            except KeyError as e:
                raise Refused("failed", f"{member} missing") from e
        try:
            root = parse_untrusted_xml(
                data, max_bytes=self.max_xml_bytes, max_elements=5_000_000, huge_tree=True,
                what="DOCX/ODT",
            )  # fmt: skip
        except XmlRefused as e:
            raise Refused("skipped", e.message_en) from e
        out: list[str] = []
        for el in root.iter(*(f"{{{ns}}}{b}" for b in blocks)):
            if leaves is None:
                out.append("".join(el.itertext()))
            else:
                out.append(
                    "".join(t.text or "" for t in el.iter(*(f"{{{ns}}}{x}" for x in leaves)))
                )
        return "\n".join(out)

    def _xml(self, path: Path) -> tuple[str, str]:
        from workflow.letters.letter import parse_letter_xml

        data = path.read_bytes()
        try:
            letter = parse_letter_xml(data)
        except Exception:
            letter = None
        if letter is not None:
            parts = [
                letter.subject,
                letter.sender.name,
                letter.addressee.name,
                letter.our_reference,
                letter.your_reference or "",
                *letter.body,
                *(a.file_name for a in letter.attachments),
            ]
            return "\n".join(p for p in parts if p), "letter"
        try:
            root = parse_untrusted_xml(
                data, max_bytes=self.max_xml_bytes, max_elements=2_000_000, what="XML"
            )
        except XmlRefused as e:
            raise Refused(
                "skipped" if e.status == 413 or "DTD" in e.message_en else "failed", e.message_en
            ) from e
        texts = (t.strip() for t in root.itertext() if not isinstance(t, etree._Comment))
        return "\n".join(t for t in texts if t), "xml"

    # --- OCR ----------------------------------------------------------------------------------

    def ocr_available(self) -> bool:
        if not self.ocr_enabled or not shutil.which("tesseract"):
            return False
        try:
            out = subprocess.run(
                ["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        have = set(out.split())
        return all(lang in have for lang in self.ocr_languages.split("+"))

    def _ocr_images(self, images: list[bytes]) -> str:
        if not self.ocr_available():
            raise Refused("skipped", "OCR unavailable (tesseract with Polish data not installed)")
        from PIL import Image

        out: list[str] = []
        with tempfile.TemporaryDirectory(prefix="ezd-ocr-") as d:
            for n, data in enumerate(images[: self.max_ocr_pages]):
                png = Path(d) / f"page{n}.png"
                with Image.open(io.BytesIO(data)) as img:
                    if img.width * img.height > 100_000_000:
                        raise Refused("skipped", "image too large for OCR")
                    img.convert("L").save(png)
                try:
                    res = subprocess.run(
                        ["tesseract", str(png), "stdout", "-l", self.ocr_languages],
                        capture_output=True,
                        timeout=self.ocr_timeout_s,
                        env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin:/usr/local/bin"},
                    )
                except subprocess.TimeoutExpired as e:
                    raise Refused("skipped", "OCR timed out") from e
                if res.returncode != 0:
                    raise Refused(
                        "failed", f"tesseract: {res.stderr.decode(errors='replace')[:200]}"
                    )
                out.append(res.stdout.decode("utf-8", errors="replace"))
        return "\n".join(out)
