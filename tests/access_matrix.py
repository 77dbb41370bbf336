"""The intended access matrix (issue 9, "access control proven"): for every route of the app,
who may call it, and how everyone else must be refused. `tests/test_access_matrix.py` calls
every route as every persona and compares the answers with this table.

It is written from DESIGN.md (the roles table, invariant 6: tenant isolation) and the issues
(2: every endpoint authorised by role and unit; 3: lanes map to roles in the case's unit, the
headteacher or the secretariat assigns; 4: keys imported by the unit's admin, trust anchors by
the city; 6: the citizen API answers by code and PIN; 7: the unit's archivist keeps its archive,
an archivist of one school acting on another's gets nothing; auditors read every unit, change
nothing, every view logged), not from what the code happens to do.

Personas are `<role>@<where>` for every role of `workflow.org.models.Role`, where `own` is the
unit that owns the objects the calls name (SP58), `foreign` another school (SP12) and `city` the
city office (WOW: its admin and auditor are the city's, reaching every unit), plus `anonymous`.

A rule says who is allowed. Everyone else is refused: anonymous with 401 (the web: a redirect to
the login page); a persona that may not even read the owning unit gets 404 on a route that names
one of its objects (`scope="object"`), the answer for something that does not exist; otherwise
403 or 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflow.org.models import Role

OWN, FOREIGN, CITY = "own", "foreign", "city"
UNIT_OF = {OWN: "SP58", FOREIGN: "SP12", CITY: "WOW"}
ANONYMOUS = "anonymous"
ROLES: tuple[str, ...] = tuple(r.value for r in Role)
PERSONAS: tuple[str, ...] = (
    *(f"{role}@{where}" for where in (OWN, FOREIGN, CITY) for role in ROLES),
    ANONYMOUS,
)


def at(where: str, *roles: str) -> frozenset[str]:
    return frozenset(f"{r}@{where}" for r in (roles or ROLES))


# Staff roles make a user a member of a unit's staff (they read its registers and cases); a
# unit's auditor reads the unit too, the city's auditor reads every unit (read-only).
STAFF = ("clerk", "handler", "headteacher", "city_officer", "admin", "archivist")
READERS = at(OWN, *STAFF, "auditor") | {f"auditor@{CITY}"}
AUTHENTICATED = frozenset(p for p in PERSONAS if p != ANONYMOUS)
EVERYONE = frozenset(PERSONAS)
NOBODY: frozenset[str] = frozenset()
CITY_ADMIN = frozenset({f"admin@{CITY}"})
UNIT_ADMINS = frozenset({f"admin@{OWN}", f"admin@{CITY}"})  # the unit's and the city's admin
ANY_ADMIN = frozenset(f"admin@{w}" for w in (OWN, FOREIGN, CITY))  # each within their units
CITY_OVERSIGHT = frozenset({f"admin@{CITY}", f"auditor@{CITY}"})
CLERKS_ANYWHERE = frozenset(f"clerk@{w}" for w in (OWN, FOREIGN, CITY))
AUDITORS = frozenset({f"auditor@{OWN}", f"auditor@{FOREIGN}", f"auditor@{CITY}"})
# Who works on a case (registers replies, opens cases, adds documents and versions).
CASEWORKERS = at(OWN, "clerk", "handler", "headteacher", "city_officer")
# Who closes and reopens a case by hand: the secretariat and the heads.
CLOSERS = at(OWN, "clerk", "headteacher", "city_officer")
# Who starts a process in a unit (an archivist starts the disposal process).
STARTERS = at(OWN, "clerk", "handler", "headteacher", "city_officer", "archivist")
# Dekretacja: the head or the secretariat hands a task to a person.
ASSIGNERS = at(OWN, "headteacher", "clerk", "city_officer")
# The first task of incoming_letter (Dekretacja, lane Dyrektor) sits in the headteacher's pool.
TASK_POOL = at(OWN, "headteacher")
ARCHIVIST = at(OWN, "archivist")
# Whole trail of a case: the head, the unit's admin, auditor and archivist; the city's auditor.
# (Not the city's admin: admins keep the organisation, they do not read cases.)
TRAIL_READERS = at(OWN, "headteacher", "admin", "auditor", "archivist") | {f"auditor@{CITY}"}
# Personas whose answers may name SP58's objects: its readers, and the admins of its
# organisation on the admin routes (keys, incidents, the users' trail for the city).
ADMIN_READERS = READERS | UNIT_ADMINS


@dataclass(frozen=True)
class Rule:
    allow: frozenset[str]
    # "object": the route names an object of the owning unit; a persona that may not read the
    # unit must get 404, exactly as for an object that does not exist.
    scope: str = "unit"
    readers: frozenset[str] = READERS
    # No account needed (the citizen API: code and PIN; the login forms; the health check).
    public: bool = False
    # Statuses that also count as a refusal here, beside 401/403/404 (see the note).
    also_refused: tuple[int, ...] = ()
    note: str = ""


def obj(allow: frozenset[str], readers: frozenset[str] = READERS, note: str = "") -> Rule:
    return Rule(allow, scope="object", readers=readers, note=note)


# A clerk registers into the one unit where they are a clerk: a user who is a clerk nowhere
# gets 422 `unit_required` (no unit to act for), the refusal the registration API gives too.
CLERK_FORM = Rule(CLERKS_ANYWHERE, also_refused=(422,), note="422 unit_required: a clerk nowhere")


PUBLIC = Rule(EVERYONE, public=True)

# Keyed "METHOD path" exactly as the route table has them; the walk runs in this order (reads
# first, then changes, the ones that end something last).
MATRIX: dict[str, Rule] = {
    # -- first: a substitute set here sees the absent user's tasks in every inbox read below ---
    "POST /api/v1/substitutions": Rule(
        at(OWN, "headteacher", "admin") | at(FOREIGN, "headteacher", "admin"),
        also_refused=(422,),
        note="each persona names their own unit, a teacher who works in SP58 and SP12 as the "
        "absent user and themselves as the substitute: the head or admin of a unit the teacher "
        "works in may (and their substitute must then see only that unit's tasks of the "
        "teacher); the city office's must not, the teacher does not work there (422 "
        "substitution_invalid)",
    ),
    # -- auth --------------------------------------------------------------------------------
    "POST /api/v1/auth/token": PUBLIC,
    "POST /api/v1/auth/login": PUBLIC,
    "GET /api/v1/auth/me": Rule(AUTHENTICATED),
    # -- organisation: units are no secret to staff; admins change them ------------------------
    "GET /api/v1/units": Rule(AUTHENTICATED),
    "GET /api/v1/units/{code}/departments": Rule(AUTHENTICATED),
    "GET /api/v1/users": Rule(ANY_ADMIN, note="a unit's admin sees the users of their units"),
    "GET /api/v1/jrwa": Rule(READERS),
    # -- registers and cases -------------------------------------------------------------------
    "GET /api/v1/incoming": Rule(READERS),
    "GET /api/v1/incoming/{item_id}": obj(READERS),
    "GET /api/v1/outgoing": Rule(READERS),
    "GET /api/v1/cases": Rule(READERS),
    "GET /api/v1/cases/{reference}": obj(READERS),
    "GET /api/v1/cases/{reference}/record": obj(READERS),
    "GET /api/v1/cases/{reference}/record.html": obj(READERS),
    "GET /api/v1/cases/{reference}/record.pdf": obj(READERS),
    "GET /api/v1/cases/{reference}/processes": obj(READERS),
    "GET /api/v1/documents/{document_id}": obj(READERS),
    "GET /api/v1/documents/{document_id}/versions/{version}/content": obj(READERS),
    # -- audit ---------------------------------------------------------------------------------
    "GET /api/v1/audit/verify": Rule(CITY_OVERSIGHT),
    "GET /api/v1/audit/cases/{reference}": obj(TRAIL_READERS),
    "GET /api/v1/audit/users/{username}": Rule(CITY_OVERSIGHT, readers=READERS | CITY_OVERSIGHT),
    # -- processes -----------------------------------------------------------------------------
    "GET /api/v1/tasks": Rule(AUTHENTICATED, note="everyone's inbox, trimmed to their units"),
    "GET /api/v1/tasks/{task_id}": obj(READERS),
    "GET /api/v1/process-instances/{instance_id}": obj(READERS),
    "GET /api/v1/process-instances/{instance_id}/diagram": obj(READERS),
    "GET /api/v1/process-definitions": Rule(AUTHENTICATED, note="definitions are code"),
    "GET /api/v1/process-definitions/{key}/{version}/xml": Rule(AUTHENTICATED),
    "GET /api/v1/incidents": Rule(
        ANY_ADMIN, readers=ADMIN_READERS, note="a unit's admin sees their units' incidents"
    ),
    # -- signing -------------------------------------------------------------------------------
    "GET /api/v1/units/{code}/signing-keys": Rule(UNIT_ADMINS, readers=ADMIN_READERS),
    "GET /api/v1/trust-anchors": Rule(AUTHENTICATED, note="public CA certificates"),
    # -- search: everyone searches, the results are trimmed (checked by content) ---------------
    "GET /api/v1/search": Rule(AUTHENTICATED),
    "GET /api/v1/search/open/{kind}/{object_id}": obj(READERS),
    # -- the unit archive ----------------------------------------------------------------------
    "GET /api/v1/archive/{unit}/register": obj(READERS),
    "GET /api/v1/archive/{unit}/eligible": obj(ARCHIVIST),
    "GET /api/v1/archive/{unit}/loans": obj(ARCHIVIST),
    "GET /api/v1/archive/{unit}/disposal-candidates": obj(ARCHIVIST),
    "GET /api/v1/archive/disposals/{disposal_id}": obj(READERS),
    # -- the citizen API (code + PIN, no account) ----------------------------------------------
    "GET /api/v1/public/services": PUBLIC,
    "GET /api/v1/public/services/{code}": PUBLIC,
    "GET /api/v1/public/services/{code}/schema": PUBLIC,
    "POST /api/v1/public/services/{code}/submissions": PUBLIC,
    "POST /api/v1/public/tracking": PUBLIC,
    "POST /api/v1/public/tracking/receipt": PUBLIC,
    "POST /api/v1/public/tracking/decision": PUBLIC,
    "POST /api/v1/public/tracking/supplements": PUBLIC,
    # -- changes -------------------------------------------------------------------------------
    "POST /api/v1/units": Rule(CITY_ADMIN),
    "POST /api/v1/units/{code}/departments": Rule(UNIT_ADMINS),
    "POST /api/v1/users": Rule(
        ANY_ADMIN, note="users belong to no unit; roles are granted per unit"
    ),
    "POST /api/v1/users/{username}/roles": Rule(UNIT_ADMINS),
    "POST /api/v1/incoming": Rule(at(OWN, "clerk")),
    "POST /api/v1/outgoing": obj(CASEWORKERS, note="the caller's unit, SP58's case"),
    "POST /api/v1/cases": Rule(CASEWORKERS),
    "POST /api/v1/cases/{reference}/documents": obj(CASEWORKERS),
    "POST /api/v1/documents/{document_id}/versions": obj(CASEWORKERS),
    "POST /api/v1/processes/{key}/start": obj(STARTERS),
    "POST /api/v1/tasks/{task_id}/claim": obj(TASK_POOL),
    "POST /api/v1/tasks/{task_id}/release": obj(TASK_POOL),
    "POST /api/v1/tasks/{task_id}/assign": obj(ASSIGNERS),
    "POST /api/v1/tasks/{task_id}/complete": obj(TASK_POOL),
    "POST /api/v1/process-definitions/preview": Rule(CITY_ADMIN),
    "POST /api/v1/process-definitions": Rule(CITY_ADMIN),
    "POST /api/v1/incidents/{incident_id}/retry": obj(UNIT_ADMINS, ADMIN_READERS),
    "POST /api/v1/units/{code}/signing-keys": Rule(UNIT_ADMINS),
    "POST /api/v1/trust-anchors": Rule(CITY_ADMIN),
    "POST /api/v1/signatures/verify": Rule(AUTHENTICATED, note="a verification utility"),
    "POST /api/v1/units/{code}/official-letters": Rule(at(OWN, "clerk")),
    "POST /api/v1/archive/transfers": obj(ARCHIVIST),
    "POST /api/v1/archive/{unit}/entries/{entry_id}/loans": obj(ARCHIVIST),
    "POST /api/v1/archive/{unit}/loans/{loan_id}/return": obj(ARCHIVIST),
    "POST /api/v1/archive/disposals": obj(ARCHIVIST),
    "POST /api/v1/cases/{reference}/close": obj(CLOSERS),
    "POST /api/v1/cases/{reference}/reopen": obj(CLOSERS),
    "POST /api/v1/outgoing/{item_id}/dispatch": obj(at(OWN, "clerk")),
    "POST /api/v1/signing-keys/{key_id}/deactivate": obj(UNIT_ADMINS, ADMIN_READERS),
    # -- the staff web application (cookie session + CSRF token) -------------------------------
    "GET /web/login": PUBLIC,
    "GET /web/language/{lang}": PUBLIC,
    "GET /web/": Rule(AUTHENTICATED),
    "GET /web/register": CLERK_FORM,
    "GET /web/senders": CLERK_FORM,
    "GET /web/cases/{reference}": obj(READERS),
    "GET /web/tasks/{task_id}": obj(READERS),
    "GET /web/documents/{document_id}/versions/{version}": obj(READERS),
    "GET /web/search": Rule(AUTHENTICATED),
    "GET /web/search/open/{kind}/{object_id}": obj(READERS),
    "GET /web/audit": Rule(AUDITORS),
    "GET /web/admin": Rule(ANY_ADMIN),
    "GET /web/admin/units": Rule(ANY_ADMIN),
    "GET /web/admin/users": Rule(ANY_ADMIN),
    "GET /web/admin/jrwa": Rule(ANY_ADMIN),
    "GET /web/admin/processes": Rule(ANY_ADMIN, readers=ADMIN_READERS, note="with incidents"),
    "GET /web/admin/processes/{key}/{version}/xml": Rule(ANY_ADMIN),
    "GET /web/admin/signing": Rule(UNIT_ADMINS, readers=ADMIN_READERS, note="?unit=SP58"),
    "POST /web/login": PUBLIC,
    "POST /web/register": CLERK_FORM,
    "POST /web/cases/{reference}/processes": obj(STARTERS),
    "POST /web/tasks/{task_id}/claim": obj(TASK_POOL),
    "POST /web/tasks/{task_id}/release": obj(TASK_POOL),
    "POST /web/tasks/{task_id}/assign": obj(ASSIGNERS),
    "POST /web/tasks/{task_id}/complete": obj(TASK_POOL),
    "POST /web/admin/units": Rule(CITY_ADMIN),
    "POST /web/admin/units/{code}/departments": Rule(UNIT_ADMINS),
    "POST /web/admin/users": Rule(ANY_ADMIN),
    "POST /web/admin/users/{username}/roles": Rule(UNIT_ADMINS),
    "POST /web/admin/processes": Rule(CITY_ADMIN),
    "POST /web/admin/incidents/{incident_id}/retry": obj(UNIT_ADMINS, ADMIN_READERS),
    "POST /web/admin/signing/{code}/keys": Rule(UNIT_ADMINS),
    "POST /web/admin/signing/anchors": Rule(CITY_ADMIN),
    "POST /web/admin/signing/keys/{key_id}/deactivate": obj(UNIT_ADMINS, ADMIN_READERS),
    # -- the citizens' web pages ---------------------------------------------------------------
    "GET /e-uslugi/jezyk/{lang}": PUBLIC,
    "GET /e-uslugi/": PUBLIC,
    "GET /e-uslugi": PUBLIC,
    "GET /e-uslugi/sledzenie": PUBLIC,
    "POST /e-uslugi/sledzenie": PUBLIC,
    "POST /e-uslugi/sledzenie/potwierdzenie": PUBLIC,
    "POST /e-uslugi/sledzenie/rozstrzygniecie": PUBLIC,
    "POST /e-uslugi/sledzenie/uzupelnienie": PUBLIC,
    "GET /e-uslugi/{code}": PUBLIC,
    "POST /e-uslugi/{code}": PUBLIC,
    # -- the rest of the app -------------------------------------------------------------------
    "GET /": PUBLIC,
    "GET /healthz": PUBLIC,
    # -- last: these end the caller's session -------------------------------------------------
    "POST /web/logout": Rule(AUTHENTICATED),
    "POST /api/v1/auth/logout": Rule(AUTHENTICATED),
}
