"""Demo data for the embedded mode: the education department, the shared finance centre, three
schools and a kindergarten, a user for every role in every unit (`<role>.<unit code>`, password
`demo`), and a few registered letters. Only `ezd demo` calls this; a production start never does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from workflow.documents.service import spooled
from workflow.engine.runtime import Engine
from workflow.org.models import Department, Role, RoleAssignment, Unit, UnitKind, User
from workflow.org.repository import OrgRepository
from workflow.org.service import hash_password, principal_for
from workflow.ports import BlobStore
from workflow.principal import SYSTEM
from workflow.processes.service import start_process
from workflow.registry.schemas import Party, RegisterIncoming
from workflow.registry.service import register_incoming_item
from workflow.uow import UnitOfWork

DEMO_PASSWORD = "demo"


@dataclass(frozen=True)
class DemoUnit:
    code: str
    name: str
    kind: UnitKind
    plan: str
    address: str
    departments: tuple[tuple[str, str], ...] = ()


UNITS = (
    DemoUnit(
        "WOW",
        "Wydział Oświaty i Wychowania Urzędu Miasta",
        UnitKind.city_office,
        "gmina",
        "ul. Ratuszowa 1, 00-001 Miasto",
        (("OS", "Referat Organizacji Szkół"), ("KP", "Referat Kadr i Płac Oświaty")),
    ),
    DemoUnit(
        "CUW",
        "Centrum Usług Wspólnych Oświaty",
        UnitKind.service_centre,
        "gmina",
        "ul. Księgowa 3, 00-002 Miasto",
        (("FK", "Dział Finansowo-Księgowy"),),
    ),
    DemoUnit(
        "SP58",
        "Szkoła Podstawowa nr 58",
        UnitKind.school,
        "szkola",
        "ul. Szkolna 58, 00-058 Miasto",
    ),
    DemoUnit(
        "SP12", "Szkoła Podstawowa nr 12", UnitKind.school, "szkola", "ul. Lipowa 12, 00-012 Miasto"
    ),
    DemoUnit(
        "LO3",
        "III Liceum Ogólnokształcące",
        UnitKind.school,
        "szkola",
        "al. Młodzieży 3, 00-103 Miasto",
    ),
    DemoUnit(
        "P7", "Przedszkole nr 7", UnitKind.kindergarten, "szkola", "ul. Słoneczna 7, 00-007 Miasto"
    ),
)

LETTERS = (
    (
        "SP58",
        "Wniosek o wydanie duplikatu legitymacji szkolnej",
        "Anna Kowalska",
        "person",
        "431",
        True,
        "paper",
    ),
    (
        "SP58",
        "Skarga rodzica na organizację zajęć świetlicowych",
        "Piotr Nowak",
        "person",
        "050",
        True,
        "email",
    ),
    (
        "SP58",
        "Opinia poradni psychologiczno-pedagogicznej w sprawie ucznia klasy 4b",
        "Poradnia Psychologiczno-Pedagogiczna nr 2",
        "institution",
        "4430",
        True,
        "epuap",
    ),
    (
        "WOW",
        "Projekt arkusza organizacji SP58 na rok szkolny 2027/2028",
        "Szkoła Podstawowa nr 58",
        "institution",
        "43170",
        True,
        "internal",
    ),
)


def demo_username(role: str, unit_code: str) -> str:
    return f"{role}.{unit_code.lower()}"


def seed_demo(
    uow: UnitOfWork,
    store: BlobStore,
    engine: Engine | None = None,
    key_encryption_key: Callable[[], bytes] | None = None,
) -> list[str]:
    """Create the demo organisation and letters; idempotent (does nothing when seeded). With an
    engine, each letter that opened a case starts the incoming-letter process, so the heads'
    inboxes have work in them. With the key-encryption key, every unit gets a demo electronic
    seal and the demo CA is trusted, so official letters between units sign and verify."""
    usernames = seed_demo_organisation(uow)
    if usernames:
        _register_letters(uow, store, OrgRepository(uow.session), engine)
        if key_encryption_key is not None:
            seed_demo_seals(uow, key_encryption_key)
    return usernames


def seed_demo_seals(uow: UnitOfWork, key_encryption_key: Callable[[], bytes]) -> None:
    from workflow.signing.demo_pki import demo_seals
    from workflow.signing.service import add_trust_anchors, import_signing_key

    uow.actor = SYSTEM
    repo = OrgRepository(uow.session)
    ca_pem, bundles = demo_seals((u.code, u.name) for u in UNITS)
    add_trust_anchors(uow, ca_pem, label="ezd DEMO CA", source="demo")
    for code, bundle in bundles.items():
        unit = repo.unit_by_code(code)
        assert unit is not None
        import_signing_key(
            uow,
            unit,
            bundle,
            None,
            label=f"Pieczęć elektroniczna {code} (demo)",
            key_encryption_key=key_encryption_key,
        )


def seed_demo_organisation(uow: UnitOfWork) -> list[str]:
    """The demo units, departments and users, without letters (also the tests' fixture)."""
    uow.actor = SYSTEM
    repo = OrgRepository(uow.session)
    if repo.unit_by_code("SP58") is not None:
        return []
    password_hash = hash_password(DEMO_PASSWORD)  # one hash for all demo users: quick to seed
    usernames = []
    for u in UNITS:
        unit = Unit(code=u.code, name=u.name, kind=u.kind, jrwa_plan=u.plan, address=u.address)
        repo.add(unit)
        uow.flush()
        uow.audit("unit.created", "unit", unit.id, unit_id=unit.id, details={"code": u.code})
        for code, name in u.departments:
            repo.add(Department(unit_id=unit.id, code=code, name=name))
        for role in Role:
            username = demo_username(role, u.code)
            user = User(
                username=username,
                full_name=f"{role.value} {u.code} (demo)",
                password_hash=password_hash,
            )
            repo.add(user)
            uow.flush()
            repo.add(RoleAssignment(user_id=user.id, unit_id=unit.id, role=role))
            uow.audit(
                "user.created",
                "user",
                user.id,
                unit_id=unit.id,
                details={"username": username, "role": role.value, "demo": True},
            )
            usernames.append(username)
    uow.flush()
    return usernames


def _register_letters(
    uow: UnitOfWork, store: BlobStore, repo: OrgRepository, engine: Engine | None
) -> None:
    for n, (unit_code, subject, sender, kind, jrwa, new_case, channel) in enumerate(LETTERS):
        clerk = repo.user_by_username(demo_username(Role.clerk, unit_code))
        assert clerk is not None
        uow.actor = principal_for(repo, clerk)
        body = (
            f"{sender}\n\n{subject}\n\nTreść pisma przykładowego nr {n + 1}, "
            "wygenerowanego dla wersji demonstracyjnej ezd.\n"
        ).encode()
        with spooled(body, f"pismo-{n + 1}.txt", "text/plain") as upload:
            registered = register_incoming_item(
                uow,
                store,
                RegisterIncoming(
                    unit=unit_code,
                    subject=subject,
                    sender=Party(name=sender, kind=kind),
                    channel=channel,
                    jrwa=jrwa,
                    new_case=new_case,
                    letter_date=date(2026, 11, 20),
                ),
                [upload],
            )
        if engine is not None and registered.case is not None and new_case:
            unit = repo.unit(registered.case.unit_id)
            assert unit is not None
            start_process(uow, engine, "incoming_letter", unit, case=registered.case)
    uow.actor = SYSTEM
