"""The public catalogue: `bpmn/eservices/catalogue.json` names each service's process, form
(JSON Schema beside it), JRWA class and the kinds of units it may be addressed to. The files are
data the city may change (like the process library); they are read once per folder and change."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from workflow.errors import NotFound, ValidationFailed


@dataclass(frozen=True)
class Service:
    code: str
    title: str
    summary: str
    process: str
    jrwa: str
    deadline_kind: str
    unit_kinds: tuple[str, ...]
    schema: dict[str, Any]

    def validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.schema, format_checker=FormatChecker())


@dataclass(frozen=True)
class Catalogue:
    services: tuple[Service, ...]

    def get(self, code: str) -> Service:
        for s in self.services:
            if s.code == code:
                return s
        raise NotFound("Nie ma takiej e-usługi.", "No such e-service.", code="service_not_found")


_cache: dict[Path, tuple[float, Catalogue]] = {}
_lock = threading.Lock()


def load_catalogue(bpmn_dir: Path) -> Catalogue:
    folder = bpmn_dir / "eservices"
    index = folder / "catalogue.json"
    try:
        mtime = index.stat().st_mtime
    except FileNotFoundError:
        return Catalogue(())
    with _lock:
        hit = _cache.get(folder)
        if hit and hit[0] == mtime:
            return hit[1]
    raw = json.loads(index.read_text("utf-8"))
    services = []
    for s in raw["services"]:
        schema = json.loads((folder / s["form"]).read_text("utf-8"))
        Draft202012Validator.check_schema(schema)
        services.append(
            Service(
                code=s["code"],
                title=s["title"],
                summary=s.get("summary", ""),
                process=s["process"],
                jrwa=s["jrwa"],
                deadline_kind=s.get("deadline_kind", "kpa_35_1m"),
                unit_kinds=tuple(s.get("unit_kinds", ["school", "kindergarten"])),
                schema=schema,
            )
        )
    cat = Catalogue(tuple(services))
    with _lock:
        _cache[folder] = (mtime, cat)
    return cat


def _field_title(schema: dict[str, Any], path: list[Any]) -> str:
    props = schema.get("properties", {})
    if path and isinstance(path[0], str) and path[0] in props:
        return str(props[path[0]].get("title", path[0]))
    return ""


def validate_form(service: Service, data: Any) -> dict[str, Any]:
    """The form's data checked against its schema; every problem named per field."""
    if not isinstance(data, dict):
        raise ValidationFailed(
            "Formularz musi być obiektem JSON.",
            "The form must be a JSON object.",
            code="form_invalid",
        )
    errors: dict[str, str] = {}
    for e in sorted(service.validator().iter_errors(data), key=lambda e: list(e.path)):
        path = list(e.path)
        if e.validator == "required":
            missing = str(e.message).split("'")[1] if "'" in e.message else ""
            key = missing
            title = _field_title(service.schema, [missing]) or missing
            msg = f"{title}: pole wymagane"
        elif e.validator == "additionalProperties":
            key = "_form"
            msg = "Formularz zawiera nieznane pola."
        else:
            key = str(path[0]) if path else "_form"
            title = _field_title(service.schema, path) or key
            msg = f"{title}: niepoprawna wartość ({e.validator})"
        errors.setdefault(key, msg)
    if errors:
        shown = "; ".join(list(errors.values())[:5])
        raise ValidationFailed(
            f"Formularz zawiera błędy: {shown}",
            f"The form has errors in: {', '.join(errors)}",
            code="form_invalid",
            details={"fields": errors},
        )
    return data
