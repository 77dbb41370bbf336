"""Words the pages show from data (roles, channels, statuses, kinds): marked here so that
`pybabel extract` puts them into the catalogue; the templates translate them with `_()`."""

from __future__ import annotations


def _(message: str) -> str:
    return message


NAVIGATION = (_("Home"), _("Register a letter"), _("Search"), _("Audit"), _("Administration"))
ROLES = (
    _("clerk"), _("handler"), _("headteacher"), _("city_officer"), _("auditor"), _("admin"),
    _("archivist"),
)  # fmt: skip
CHANNELS = (
    _("paper"), _("email"), _("e_delivery"), _("epuap"), _("internal"), _("in_person"),
    _("e_service"),
)  # fmt: skip
STATUSES = (
    _("open"), _("closed"), _("running"), _("completed"), _("incident"), _("cancelled"),
    _("ready"), _("dispatched"), _("delivered"), _("archived"),
)  # fmt: skip
KINDS = (_("incoming"), _("outgoing"), _("case"), _("document"))
UNIT_KINDS = (_("city_office"), _("school"), _("kindergarten"), _("service_centre"))
