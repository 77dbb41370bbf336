"""The SMTP adapter of the e-mail port (`workflow.eservices.notifications.Mailer`), with the
standard library's smtplib; wired in `api.bootstrap` when EZD_SMTP_HOST is set."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from workflow.eservices.notifications import Mail
from workflow.settings import Settings


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.sender = settings.smtp_from
        self.username = settings.smtp_username
        self.password = settings.smtp_password.get_secret_value()
        self.starttls = settings.smtp_starttls
        self.use_ssl = settings.smtp_ssl
        self.timeout = settings.smtp_timeout_seconds

    def send(self, mail: Mail) -> None:
        if any(c in mail.to for c in ',;<>\r\n"') or mail.to.count("@") != 1:
            raise ValueError("one plain address expected")  # never a list a citizen typed in
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or "ezd")
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(mail.text, charset="utf-8")
        smtp: smtplib.SMTP
        if self.use_ssl:
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(msg, to_addrs=[mail.to])
