"""E-mail to applicants about their case's status: the `Mailer` port (an SMTP adapter is wired
in `api.bootstrap`) and the message. The e-mail carries nothing beyond what the citizen gave:
the tracking code, the new status and the link to the tracking page; never the PIN, the form or
the applicant's name."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from workflow.db import utcnow
from workflow.eservices.access import display_code
from workflow.eservices.models import SubmissionStatus
from workflow.eservices.service import STATUS_LABELS, email_event
from workflow.uow import UnitOfWork


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class Mailer(Protocol):
    def send(self, mail: Mail) -> None:
        """Hand the message to the mail server; raise on failure (the outbox retries)."""


def status_mail(to: str, tracking_code: str, status: str, note: str | None, link: str) -> Mail:
    label = STATUS_LABELS[SubmissionStatus(status)]
    code = display_code(tracking_code)
    lines = [
        "Dzień dobry,",
        "",
        f"status Twojej sprawy o kodzie {code} zmienił się na: {label}.",
    ]
    if status == SubmissionStatus.supplement_requested:
        lines += ["", "Sprawa wymaga uzupełnienia. Szczegóły zobaczysz na stronie sprawy."]
    if status == SubmissionStatus.decided:
        lines += ["", "Rozstrzygnięcie możesz pobrać na stronie sprawy."]
    lines += [
        "",
        f"Sprawdź sprawę: {link}",
        "Do zalogowania potrzebny jest kod sprawy i PIN z potwierdzenia złożenia wniosku.",
        "",
        "Wiadomość wysłana automatycznie – prosimy na nią nie odpowiadać.",
    ]
    del note  # notes may name things the citizen did not give: they stay on the tracking page
    return Mail(to=to, subject=f"Sprawa {code}: {label}", text="\n".join(lines))


def send_status_email(
    uow: UnitOfWork, mailer: Mailer, payload: dict[str, Any], tracking_url: str
) -> None:
    """Outbox step: send the e-mail of one timeline step once (marked in the same transaction;
    a crash between sending and commit may send it twice, never lose it)."""
    found = email_event(uow, uuid.UUID(str(payload["event_id"])))
    if found is None:
        return
    event, submission = found
    assert submission.applicant_email is not None
    mailer.send(
        status_mail(
            submission.applicant_email,
            submission.tracking_code,
            event.status,
            event.note,
            f"{tracking_url}?kod={display_code(submission.tracking_code)}",
        )
    )
    event.emailed_at = utcnow()
    uow.audit(
        "eservice.email_sent",
        "eservice_submission",
        submission.id,
        unit_id=submission.unit_id,
        case_id=submission.case_id,
        details={"status": event.status},
    )
