"""Task forms from their JSON Schema: the fields a template renders and the typed data a
submitted form becomes. Validation stays with the service (`complete_task`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

USERNAME_PATTERN = "^[a-z0-9._-]{2,80}$"
LONG_TEXT = 500  # strings that may be longer than this get a textarea


@dataclass
class Choice:
    value: str
    label: str


@dataclass
class Field:
    name: str
    label: str
    kind: str  # text | textarea | checkbox | radio | select | user | date | number
    required: bool
    description: str | None = None
    choices: list[Choice] = field(default_factory=list)
    max_length: int | None = None
    conditional: bool = False  # required only together with another answer (if/then)


def fields_of(schema: Mapping[str, Any] | None) -> list[Field]:
    if not schema:
        return []
    required = set(schema.get("required", []))
    conditional = set(schema.get("then", {}).get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        out.append(_field(name, prop, name in required, name in conditional))
    return out


def _field(name: str, prop: Mapping[str, Any], required: bool, conditional: bool) -> Field:
    label = str(prop.get("title") or name)
    kind = "text"
    choices: list[Choice] = []
    t = prop.get("type")
    if t == "boolean":
        kind = "checkbox"
    elif t in ("integer", "number"):
        kind = "number"
    elif "oneOf" in prop:
        kind = "radio"
        choices = [Choice(str(o["const"]), str(o.get("title", o["const"]))) for o in prop["oneOf"]]
    elif "enum" in prop:
        kind = "select"
        choices = [Choice(str(v), str(v)) for v in prop["enum"]]
    elif prop.get("format") == "date":
        kind = "date"
    elif prop.get("pattern") == USERNAME_PATTERN:
        kind = "user"
    elif prop.get("maxLength", 10_000) > LONG_TEXT:
        kind = "textarea"
    return Field(
        name=name,
        label=label,
        kind=kind,
        required=required,
        description=prop.get("description"),
        choices=choices,
        max_length=prop.get("maxLength"),
        conditional=conditional,
    )


def data_from_form(schema: Mapping[str, Any] | None, form: Mapping[str, str]) -> dict[str, Any]:
    """Typed values from a submitted form; empty optional fields are left out."""
    data: dict[str, Any] = {}
    if not schema:
        return data
    for name, prop in schema.get("properties", {}).items():
        t = prop.get("type")
        raw = form.get(name)
        if t == "boolean":
            data[name] = raw in ("true", "on", "1")
            continue
        if raw is None or raw.strip() == "":
            continue
        value = raw.strip()
        if t == "integer":
            try:
                data[name] = int(value)
            except ValueError:
                data[name] = value  # the schema check names the field
        elif t == "number":
            try:
                data[name] = float(value.replace(",", "."))
            except ValueError:
                data[name] = value
        else:
            data[name] = value
    return data
