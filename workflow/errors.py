"""Domain errors: each carries a stable code, an HTTP status and a Polish and English message.

Services raise these; one handler in the API maps them to responses. Services never raise
HTTP exceptions.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the user can act on. `code` is stable and documented; messages may change."""

    code: str = "domain_error"
    status: int = 400
    message_pl: str = "Nie można wykonać operacji."
    message_en: str = "The operation cannot be performed."

    def __init__(
        self,
        message_pl: str | None = None,
        message_en: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if message_pl is not None:
            self.message_pl = message_pl
        if message_en is not None:
            self.message_en = message_en
        self.details: dict[str, Any] = details or {}
        super().__init__(f"{self.code}: {self.message_en}")


class ValidationFailed(DomainError):
    code = "validation_failed"
    status = 422
    message_pl = "Dane są niepoprawne."
    message_en = "The data is invalid."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    message_pl = "Nie znaleziono."
    message_en = "Not found."


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    message_pl = "Brak uprawnień do tej operacji."
    message_en = "You are not allowed to do this."


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401
    message_pl = "Wymagane zalogowanie."
    message_en = "Authentication required."


class Conflict(DomainError):
    code = "conflict"
    status = 409
    message_pl = "Konflikt z bieżącym stanem."
    message_en = "Conflict with the current state."


class PayloadTooLarge(DomainError):
    code = "file_too_large"
    status = 413
    message_pl = "Plik przekracza dopuszczalny rozmiar."
    message_en = "The file exceeds the size limit."


class StorageFailed(DomainError):
    code = "storage_failed"
    status = 503
    message_pl = "Magazyn plików jest chwilowo niedostępny. Spróbuj ponownie."
    message_en = "File storage is temporarily unavailable. Try again."
