"""Reads a JRWA plan file: `# key: value` header lines (plan, version, title, valid_from,
optional valid_to, legal_basis, status), then CSV with columns
`symbol,title,leaf,category_lead,category_other,notes` (the format of the shared reference data).

Every class keeps its `notes`, which say where the row comes from.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
CATEGORY = re.compile(r"^(A|Bc|B\d{1,3}|BE\d{1,3})$")
SYMBOL = re.compile(r"^\d{1,6}$")


class PlanFileError(ValueError):
    pass


@dataclass(frozen=True)
class ClassRow:
    symbol: str
    title: str
    is_leaf: bool
    category_lead: str | None
    category_other: str | None
    notes: str

    @property
    def parent_symbol(self) -> str | None:
        return self.symbol[:-1] or None


@dataclass
class PlanFile:
    code: str
    version: str
    title: str
    valid_from: date
    valid_to: date | None
    legal_basis: str
    sha256: str
    classes: list[ClassRow] = field(default_factory=list)


def _header_date(header: dict[str, str], key: str) -> date:
    try:
        return date.fromisoformat(header[key])
    except ValueError:
        raise PlanFileError(f"header '# {key}:' must be a date (YYYY-MM-DD)") from None


def parse_plan(text: str) -> PlanFile:
    header: dict[str, str] = {}
    body_lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("#") and not body_lines:
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
        else:
            body_lines.append(line)
    for required in ("plan", "version", "title", "valid_from", "legal_basis"):
        if not header.get(required):
            raise PlanFileError(f"header line '# {required}: …' is missing")
    classes: list[ClassRow] = []
    seen: set[str] = set()
    reader = csv.DictReader(io.StringIO("\n".join(body_lines)))
    expected = ["symbol", "title", "leaf", "category_lead", "category_other", "notes"]
    if reader.fieldnames != expected:
        raise PlanFileError(f"columns must be {','.join(expected)}")
    for n, row in enumerate(reader, start=2):
        if None in row or None in row.values():  # DictReader's marks of extra / missing cells
            raise PlanFileError(f"row {n}: expected {len(expected)} columns")
        symbol = (row["symbol"] or "").strip()
        if not SYMBOL.match(symbol):
            raise PlanFileError(f"row {n}: bad symbol {symbol!r}")
        if symbol in seen:
            raise PlanFileError(f"row {n}: duplicate symbol {symbol}")
        seen.add(symbol)
        cats: list[str | None] = []
        for col in ("category_lead", "category_other"):
            cat = (row[col] or "").strip() or None
            if cat is not None and not CATEGORY.match(cat):
                raise PlanFileError(f"row {n}: bad retention category {cat!r}")
            cats.append(cat)
        leaf = (row["leaf"] or "").strip().lower()
        if leaf not in ("true", "false", ""):
            raise PlanFileError(f"row {n}: leaf must be true, false or blank")
        classes.append(
            ClassRow(
                symbol,
                row["title"].strip(),
                leaf == "true",
                cats[0],
                cats[1],
                (row["notes"] or "").strip(),
            )
        )
    for c in classes:
        if c.parent_symbol and c.parent_symbol not in seen and len(c.symbol) > 1:
            # The reference data skips no levels; a missing parent means a typo in the file.
            raise PlanFileError(f"class {c.symbol} has no parent class {c.parent_symbol}")
    return PlanFile(
        code=header["plan"],
        version=header["version"],
        title=header["title"],
        valid_from=_header_date(header, "valid_from"),
        valid_to=_header_date(header, "valid_to") if header.get("valid_to") else None,
        legal_basis=header["legal_basis"],
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        classes=classes,
    )


def shipped_plans() -> list[PlanFile]:
    return [parse_plan(p.read_text(encoding="utf-8")) for p in sorted(DATA_DIR.glob("*.csv"))]
