"""Shared rules for text that people type: no control characters, trimmed, "brak danych" where
unknown (the instrukcja kancelaryjna's wording for missing data)."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

UNKNOWN_PL = "brak danych"
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def clean_line(value: str) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if _CONTROL.search(value) or "\n" in value or "\r" in value or "\t" in value:
        raise ValueError("must not contain control characters or line breaks")
    if not value:
        raise ValueError("must not be blank")
    return value


def clean_text(value: str) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Line = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(clean_line)]
ShortLine = Annotated[
    str, StringConstraints(min_length=1, max_length=300), AfterValidator(clean_line)
]
Text = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(clean_text)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{0,19}$")]
