"""Commands for the registers, validated at the edge and handed to the services as they are.
The API uses them as its request schemas, so the rules live in one place."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from workflow.registry.models import Channel
from workflow.text import UNKNOWN_PL, Code, Line, ShortLine, Text


class Party(BaseModel):
    """A sender or recipient: a person or an institution."""

    model_config = ConfigDict(extra="forbid")

    name: ShortLine
    kind: Literal["person", "institution"] | None = None
    address: Line = UNKNOWN_PL
    email: EmailStr | None = None


class RegisterIncoming(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: Code | None = Field(None, description="Unit code; default: the clerk's only unit")
    subject: Line
    sender: Party
    channel: Channel
    jrwa: str | None = Field(None, pattern=r"^\d{1,6}$", description="JRWA class symbol")
    new_case: bool = False
    case_reference: Line | None = None
    case_title: Line | None = Field(None, description="Title of the new case; default: subject")
    department: Code | None = Field(None, description="Department that will hold the new case")
    received_at: datetime | None = None
    sender_reference: ShortLine = UNKNOWN_PL
    letter_date: date | None = None
    attachments_count: int | None = Field(None, ge=0, le=10_000)
    notes: Text = ""

    @field_validator("received_at")
    @classmethod
    def _aware_past(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        if v.tzinfo is None:
            raise ValueError("must include a time zone")
        if v > datetime.now(UTC):
            raise ValueError("must not be in the future")
        return v

    @model_validator(mode="after")
    def _case_choice(self) -> RegisterIncoming:
        if self.new_case and self.case_reference:
            raise ValueError("give either new_case=true or case_reference, not both")
        if self.new_case and not self.jrwa:
            raise ValueError("a new case needs a JRWA class (jrwa)")
        if not self.new_case and not self.case_reference and not self.jrwa:
            raise ValueError("give jrwa (the class the item is filed under) or case_reference")
        return self


class RegisterOutgoing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: Code | None = None
    subject: Line
    recipients: list[Party] = Field(min_length=1, max_length=200)
    channel: Channel
    case_reference: Line | None = None


class OpenCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: Code | None = None
    jrwa: str = Field(pattern=r"^\d{1,6}$")
    title: Line
    department: Code | None = None


class AddDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Line
    creator: ShortLine | None = None
    document_date: date | None = None
    access: Literal["publiczny", "ograniczony", "niejawny"] = "ograniczony"
    recipient: ShortLine | None = None
    description: Text | None = None
    language: str = Field("pol", pattern=r"^[a-z]{3}$")
