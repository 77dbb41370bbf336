"""Who is acting and what their roles allow, resolved once per request from the login."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from workflow.errors import Forbidden
from workflow.org.models import Role

# Roles that make a user a member of a unit's staff: they see the unit's registers and cases.
STAFF_ROLES = frozenset(
    {Role.clerk, Role.handler, Role.headteacher, Role.city_officer, Role.admin, Role.archivist}
)
# Roles that reach across units when held in the city office: the city's administrator and
# auditor. Held in a school, they stay within that school.
CITYWIDE_ROLES = frozenset({Role.admin, Role.auditor})


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    username: str
    full_name: str
    roles: dict[uuid.UUID, frozenset[str]] = field(default_factory=dict)
    citywide: frozenset[str] = frozenset()  # CITYWIDE_ROLES held in the city office
    system: bool = False  # ezd itself (CLI, worker, seeding): every role everywhere

    def has_role(self, unit_id: uuid.UUID, *roles: str) -> bool:
        return self.system or bool(self.roles.get(unit_id, frozenset()) & set(roles))

    def require_role(self, unit_id: uuid.UUID, *roles: str) -> None:
        if not self.has_role(unit_id, *roles):
            raise Forbidden(
                "Twoje role w tej jednostce nie pozwalają na tę operację.",
                "Your roles in this unit do not allow this operation.",
                details={"required_roles": sorted(roles)},
            )

    @property
    def is_admin(self) -> bool:
        """The city's administrator (admin in the city office): manages every unit."""
        return self.system or Role.admin in self.citywide

    @property
    def is_auditor(self) -> bool:
        """The city's auditor (auditor in the city office): reads every unit."""
        return Role.auditor in self.citywide

    @property
    def is_any_admin(self) -> bool:
        return self.is_admin or bool(self.units_with(Role.admin))

    def can_admin_unit(self, unit_id: uuid.UUID) -> bool:
        return self.is_admin or self.has_role(unit_id, Role.admin)

    def can_read_unit(self, unit_id: uuid.UUID) -> bool:
        """Staff and the unit's own auditor read their unit; the city's auditor reads every
        unit (read-only)."""
        return self.is_auditor or self.has_role(unit_id, *STAFF_ROLES, Role.auditor)

    def units_with(self, *roles: str) -> list[uuid.UUID]:
        return [u for u, r in self.roles.items() if r & set(roles)]

    def readable_units(self) -> list[uuid.UUID] | None:
        """None means every unit (auditor)."""
        if self.is_auditor:
            return None
        return self.units_with(*STAFF_ROLES, Role.auditor)


SYSTEM = Principal(
    user_id=uuid.UUID(int=0), username="system", full_name="ezd (system)", system=True
)
