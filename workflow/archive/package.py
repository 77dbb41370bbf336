"""Archival packages (paczka archiwalna) for transfer to a state archive, and their verifier.

Layout (a folder, or the same tree in a .zip or .tar):

    paczka.xml                      the package: unit, time, the cases in it
    manifest-sha256.txt             `<sha256>  <path>` for every other file (sha256sum format)
    schemat/paczka.xsd              the schema every XML file of the package follows
    <case reference>/sprawa.xml     the case: reference, class, category, dates, register
                                    position, its documents, and its record (metryka) from
                                    the audit trail
    <case reference>/dok-NNN/metadane.xml      a document's metadata (the 2006 minimum set),
                                               its versions with size and SHA-256
    <case reference>/dok-NNN/vN-<file name>     each version's content (absent once disposed)
    <case reference>/dok-NNN/raport-weryfikacji-podpisu.json   the signature report, if any

Signed files are kept as they are (an XML letter with its enveloped XAdES, a detached .xades
document beside its PDF). `verify_package` needs nothing but the package and the schema in
this repository: it reports every fault it finds (missing, extra or altered files, XML that does
not follow the schema, versions whose content differs from their metadata).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from lxml import etree

from workflow.xmlsafe import XmlRefused, parse_untrusted_xml

NS = "urn:ezd:paczka-archiwalna:2026"
SCHEMA_PATH = Path(__file__).with_name("paczka.xsd")
MANIFEST = "manifest-sha256.txt"
SCHEMA_IN_PACKAGE = "schemat/paczka.xsd"
MAX_XML_BYTES = 50_000_000
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, limit: int = 120) -> str:
    """A file or folder name every archive system accepts (ASCII, no separators)."""
    import unicodedata

    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = _SAFE.sub("_", ascii_name).strip("._") or "plik"
    return cleaned[:limit]


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


def element(
    parent: etree._Element, name: str, text: str | None = None, **attrs: str | None
) -> etree._Element:
    el = etree.SubElement(parent, q(name), {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def xml_bytes(root: etree._Element) -> bytes:
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def new_root(name: str) -> etree._Element:
    return etree.Element(q(name), nsmap={"m": NS})


# ---------------------------------------------------------------------------------------------
# Writing


class PackageWriter(Protocol):
    def write(self, path: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store the file at `path` (posix, relative); return its SHA-256 and size."""

    def close(self) -> None: ...


class FolderWriter:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=False)
        self.root = root

    def write(self, path: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        target = self.root / PurePosixPath(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with open(target, "xb") as f:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
        return digest.hexdigest(), size

    def close(self) -> None:
        pass


class ZipWriter:
    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path, "x", compression=zipfile.ZIP_DEFLATED, allowZip64=True)

    def write(self, path: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        with self.zip.open(path, "w", force_zip64=True) as f:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
        return digest.hexdigest(), size

    def close(self) -> None:
        self.zip.close()


class TarWriter:
    """Tar needs each member's size first: content is spooled (in memory up to 8 MB)."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path, "x")  # noqa: SIM115 (closed by close())

    def write(self, path: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        import tempfile

        digest, size = hashlib.sha256(), 0
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            spool.seek(0)
            info = tarfile.TarInfo(path)
            info.size = size
            info.mode = 0o644
            info.mtime = int(datetime.now().timestamp())
            self.tar.addfile(info, spool)
        return digest.hexdigest(), size

    def close(self) -> None:
        self.tar.close()


def open_writer(path: Path, kind: str) -> PackageWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dir":
        return FolderWriter(path)
    if kind == "zip":
        return ZipWriter(path)
    if kind == "tar":
        return TarWriter(path)
    raise ValueError(f"unknown package format {kind!r} (dir, zip, tar)")


@dataclass
class ManifestingWriter:
    """Writes through `inner` and keeps the manifest of everything written."""

    inner: PackageWriter
    entries: list[tuple[str, str]] = field(default_factory=list)
    bytes_written: int = 0

    def write(self, path: str, chunks: Iterable[bytes]) -> str:
        digest, size = self.inner.write(path, chunks)
        self.entries.append((digest, path))
        self.bytes_written += size
        return digest

    def write_bytes(self, path: str, data: bytes) -> str:
        return self.write(path, [data])

    def finish(self) -> None:
        lines = "".join(
            f"{digest}  {path}\n" for digest, path in sorted(self.entries, key=lambda e: e[1])
        )
        self.inner.write(MANIFEST, [lines.encode("utf-8")])
        self.inner.close()


# ---------------------------------------------------------------------------------------------
# Reading (for the verifier)


class PackageReader(Protocol):
    def names(self) -> list[str]: ...

    def open(self, name: str) -> IO[bytes]: ...


class FolderReader:
    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def open(self, name: str) -> IO[bytes]:
        return open(self.root / PurePosixPath(name), "rb")


class ZipReader:
    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path)

    def names(self) -> list[str]:
        return sorted(i.filename for i in self.zip.infolist() if not i.is_dir())

    def open(self, name: str) -> IO[bytes]:
        return self.zip.open(name)


class TarReader:
    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path)  # noqa: SIM115

    def names(self) -> list[str]:
        return sorted(m.name for m in self.tar.getmembers() if m.isfile())

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(name)
        if f is None:
            raise FileNotFoundError(name)
        return f


def open_reader(path: Path) -> PackageReader:
    if path.is_dir():
        return FolderReader(path)
    if zipfile.is_zipfile(path):
        return ZipReader(path)
    if tarfile.is_tarfile(path):
        return TarReader(path)
    raise ValueError(f"{path}: not a folder, zip or tar")


@dataclass(frozen=True)
class Fault:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _digest(reader: PackageReader, name: str) -> str:
    digest = hashlib.sha256()
    with reader.open(name) as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), parser=parser))


def _load_xml(
    reader: PackageReader, name: str, schema: etree.XMLSchema, faults: list[Fault]
) -> etree._Element | None:
    with reader.open(name) as f:
        data = f.read(MAX_XML_BYTES + 1)
    try:
        root = parse_untrusted_xml(
            data, max_bytes=MAX_XML_BYTES, max_elements=2_000_000, what="XML"
        )
    except XmlRefused as e:
        faults.append(Fault(name, f"not valid XML: {e.message_en}"))
        return None
    if not schema.validate(root):
        for err in list(schema.error_log)[:5]:
            faults.append(Fault(name, f"schema: line {err.line}: {err.message}"))
        return None
    return root


def verify_package(path: Path, progress: Callable[[int, int], None] | None = None) -> list[Fault]:
    """Every fault of the package at `path`, or [] when it is complete and intact."""
    faults: list[Fault] = []
    try:
        reader = open_reader(path)
        names = reader.names()
    except (OSError, ValueError, zipfile.BadZipFile, tarfile.TarError) as e:
        return [Fault(str(path), f"cannot be read: {e}")]
    if MANIFEST not in names:
        return [Fault(MANIFEST, "missing: the package has no manifest")]
    listed: dict[str, str] = {}
    with reader.open(MANIFEST) as f:
        for n, raw in enumerate(io.TextIOWrapper(f, encoding="utf-8", errors="replace"), 1):
            line = raw.rstrip("\n")
            m = re.fullmatch(r"([0-9a-f]{64})  (\S(?:.*\S)?)", line)
            if not m:
                faults.append(Fault(MANIFEST, f"line {n} is not `<sha256>  <path>`"))
                continue
            if m[2] in listed:
                faults.append(Fault(MANIFEST, f"line {n}: {m[2]} listed twice"))
            listed[m[2]] = m[1]
    present = set(names) - {MANIFEST}
    for name in sorted(present - set(listed)):
        faults.append(Fault(name, "not in the manifest"))
    actual: dict[str, str] = {}
    todo = sorted(set(listed) & present)
    for i, name in enumerate(todo, 1):
        actual[name] = _digest(reader, name)
        if actual[name] != listed[name]:
            faults.append(Fault(name, "content differs from the manifest's SHA-256"))
        if progress:
            progress(i, len(todo))
    for name in sorted(set(listed) - present):
        faults.append(Fault(name, "listed in the manifest but missing"))
    schema = _schema()
    if "paczka.xml" not in present:
        faults.append(Fault("paczka.xml", "missing"))
        return faults
    package = _load_xml(reader, "paczka.xml", schema, faults)
    if package is None:
        return faults
    ns = {"m": NS}
    for case_el in package.findall("m:Sprawy/m:Sprawa", ns):
        folder = case_el.get("katalog", "")
        case_xml = f"{folder}/sprawa.xml"
        if case_xml not in present:
            faults.append(Fault(case_xml, "missing (named in paczka.xml)"))
            continue
        case = _load_xml(reader, case_xml, schema, faults)
        if case is None:
            continue
        if case.findtext("m:ZnakSprawy", namespaces=ns) != case_el.get("znak"):
            faults.append(Fault(case_xml, "ZnakSprawy differs from paczka.xml"))
        for doc_el in case.findall("m:Dokumenty/m:Dokument", ns):
            doc_dir = f"{folder}/{doc_el.get('katalog', '')}"
            meta_name = f"{doc_dir}/metadane.xml"
            if meta_name not in present:
                faults.append(Fault(meta_name, "missing (named in sprawa.xml)"))
                continue
            meta = _load_xml(reader, meta_name, schema, faults)
            if meta is None:
                continue
            if meta.findtext("m:Identyfikator", namespaces=ns) != doc_el.get("identyfikator"):
                faults.append(Fault(meta_name, "Identyfikator differs from sprawa.xml"))
            for version in meta.findall("m:Wersje/m:Wersja", ns):
                file_name = f"{doc_dir}/{version.get('plik')}"
                if version.get("wybrakowano"):
                    if file_name in present:
                        faults.append(Fault(file_name, "present although disposed of"))
                    continue
                if file_name not in present:
                    faults.append(Fault(file_name, "missing (named in metadane.xml)"))
                    continue
                if actual.get(file_name) != version.get("sha256"):
                    faults.append(
                        Fault(file_name, "content differs from the SHA-256 in metadane.xml")
                    )
            report = meta.find("m:RaportWeryfikacjiPodpisu", ns)
            if report is not None and f"{doc_dir}/{report.get('plik')}" not in present:
                faults.append(
                    Fault(f"{doc_dir}/{report.get('plik')}", "missing (named in metadane.xml)")
                )
    return faults


def report_json(faults: list[Fault]) -> str:
    return json.dumps(
        {"ok": not faults, "faults": [{"path": f.path, "problem": f.problem} for f in faults]},
        ensure_ascii=False,
        indent=2,
    )
