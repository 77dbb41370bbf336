"""Processes: deploying definitions, starting instances, the inbox, completing and assigning
tasks (dekretacja), substitutes, timers, messages between instances and units, incidents.

Every change to an instance runs under its row lock: restore the engine state, apply one action,
run engine steps, then store the new state and bring the task projection, message subscriptions,
the next timer and any incident in step with it, all in the caller's transaction. Thrown messages
leave through the outbox, so they are delivered only after this transaction commits.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from workflow.cases.models import Case
from workflow.cases.repository import CaseRepository
from workflow.cases.service import open_case
from workflow.db import utcnow
from workflow.engine.parsing import BPMN_NS, NS, ParsedDefinition, parse_definition, required_forms
from workflow.engine.runtime import CompiledProcess, Engine, Snapshot, TaskNotReady, engine_now
from workflow.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from workflow.org.models import Role, Unit, UnitKind
from workflow.org.repository import OrgRepository
from workflow.principal import STAFF_ROLES, Principal
from workflow.processes.models import (
    Incident,
    InstanceStatus,
    PendingMessage,
    ProcessDefinition,
    ProcessInstance,
    ProcessTask,
    Substitution,
    TaskStatus,
)
from workflow.processes.operations import OPERATIONS, OperationContext, call_operation
from workflow.processes.repository import ProcessRepository
from workflow.uow import UnitOfWork

# Lanes of a definition name the role whose pool gets the lane's tasks in the instance's unit.
LANE_ROLES: dict[str, str] = {
    "sekretariat": Role.clerk,
    "kancelaria": Role.clerk,
    "referent": Role.handler,
    "prowadzący sprawę": Role.handler,
    "dyrektor": Role.headteacher,
    "wydział oświaty": Role.city_officer,
    "archiwum": Role.archivist,
    "archiwum zakładowe": Role.archivist,
    **{r.value: r.value for r in Role},
}
STARTING_ROLES = (Role.clerk, Role.handler, Role.headteacher, Role.city_officer, Role.archivist)
DEFAULT_LANE_ROLE = Role.clerk


def lane_role(lane: str | None) -> str | None:
    if lane is None:
        return DEFAULT_LANE_ROLE
    return LANE_ROLES.get(lane.strip().lower())


# ---------------------------------------------------------------------------------------------
# Definitions


@dataclass(frozen=True)
class DefinitionCheck:
    parsed: ParsedDefinition
    key: str
    name: str
    message_starts: list[str]


def check_definition(
    engine: Engine,
    bpmn: bytes,
    forms: Mapping[str, Any],
    *,
    filename: str,
    max_bytes: int,
    max_flow_nodes: int,
    decisions: Mapping[str, str] | None = None,
) -> DefinitionCheck:
    """Everything a deployment must pass: XML, schema, size, scripts and decision tables,
    lanes, operators, forms."""
    parsed = parse_definition(
        bpmn,
        filename=filename,
        max_bytes=max_bytes,
        max_flow_nodes=max_flow_nodes,
        check_script=engine.sandbox.check,
        decisions=[d.encode("utf-8") for d in (decisions or {}).values()],
    )
    for node, lane in parsed.lanes.items():
        if lane_role(lane) is None:
            raise ValidationFailed(
                f"Tor (lane) „{lane}” nie odpowiada żadnej roli; dozwolone: "
                + ", ".join(sorted(k for k in LANE_ROLES if k not in Role.__members__)),
                f"Lane '{lane}' does not name a role.",
                code="bpmn_unknown_lane",
                details={"lane": lane, "element": node},
            )
    element_ids = {str(i) for i in parsed.root.xpath(".//bpmn:*/@id", namespaces=NS)}
    for op in parsed.root.xpath(".//spiffworkflow:serviceTaskOperator", namespaces=NS):
        if op.get("id") in element_ids:
            # SpiffWorkflow resolves ids across the document: the task would not parse.
            raise ValidationFailed(
                f"Identyfikator elementu {op.get('id')} jest taki sam jak nazwa operacji; "
                "nadaj zadaniu inny identyfikator.",
                f"Element id {op.get('id')} equals the operation name; give the task another id.",
                code="bpmn_id_clash",
            )
        if op.get("id") not in OPERATIONS:
            raise ValidationFailed(
                f"Nieznana operacja zadania usługowego: {op.get('id')}.",
                f"Unknown service task operation: {op.get('id')}.",
                code="bpmn_unknown_operation",
                details={"operation": op.get("id"), "known": sorted(OPERATIONS)},
            )
    _refuse_call_cycles(parsed)
    required_forms(parsed, forms)
    key = parsed.executable_ids[0]
    process = next(p for p in parsed.processes if p.id == key)
    starts = sorted(
        {
            parsed.root.xpath(f".//bpmn:message[@id='{m.get('messageRef')}']/@name", namespaces=NS)[
                0
            ]
            for m in parsed.root.xpath(
                ".//bpmn:process/bpmn:startEvent/bpmn:messageEventDefinition[@messageRef]",
                namespaces=NS,
            )
            if parsed.root.xpath(f".//bpmn:message[@id='{m.get('messageRef')}']", namespaces=NS)
        }
    )
    return DefinitionCheck(parsed, key, process.name or key, starts)


def _refuse_call_cycles(parsed: ParsedDefinition) -> None:
    """A process that calls itself (directly or through others) would never stop."""
    calls: dict[str, set[str]] = {}
    for process in parsed.root.xpath(".//bpmn:process", namespaces=NS):
        calls[process.get("id", "")] = {
            str(c) for c in process.xpath(".//bpmn:callActivity/@calledElement", namespaces=NS)
        }

    def visit(node: str, path: list[str]) -> None:
        for callee in calls.get(node, ()):
            if callee in path:
                cycle = " → ".join([*path[path.index(callee) :], callee])
                raise ValidationFailed(
                    f"Proces wywołuje sam siebie: {cycle}.",
                    f"The process calls itself: {cycle}.",
                    code="bpmn_call_cycle",
                )
            visit(callee, [*path, callee])

    for pid in calls:
        visit(pid, [pid])


def _require_city_admin(uow: UnitOfWork) -> None:
    if not uow.actor.is_admin:
        raise Forbidden(
            "Definicje procesów wdraża administrator miasta.",
            "Only the city's administrator deploys process definitions.",
        )


@dataclass(frozen=True)
class PreviewTask:
    id: str
    name: str | None
    kind: str
    lane: str | None
    role: str | None
    form: str | None


@dataclass(frozen=True)
class DefinitionPreview:
    key: str
    name: str
    next_version: int
    processes: list[str]
    tasks: list[PreviewTask]
    messages: list[str]


def preview_definition(
    uow: UnitOfWork,
    engine: Engine,
    *,
    bpmn: bytes,
    forms: Mapping[str, Any],
    filename: str,
    max_bytes: int,
    max_flow_nodes: int,
    decisions: Mapping[str, str] | None = None,
) -> DefinitionPreview:
    """What a deployment would bring (its tasks with their lanes, roles and forms), after every
    check a deployment makes; nothing is stored."""
    _require_city_admin(uow)
    check = check_definition(
        engine,
        bpmn,
        forms,
        filename=filename,
        max_bytes=max_bytes,
        max_flow_nodes=max_flow_nodes,
        decisions=decisions,
    )
    latest = ProcessRepository(uow.session).latest_definition(check.key)
    tasks = []
    for el in check.parsed.root.xpath(
        ".//bpmn:userTask|.//bpmn:manualTask|.//bpmn:serviceTask|.//bpmn:scriptTask"
        "|.//bpmn:businessRuleTask|.//bpmn:receiveTask|.//bpmn:sendTask",
        namespaces=NS,
    ):
        ident = str(el.get("id", ""))
        lane = check.parsed.lanes.get(ident)
        tasks.append(
            PreviewTask(
                id=ident,
                name=el.get("name"),
                kind=str(el.tag).split("}")[-1],
                lane=lane,
                role=lane_role(lane),
                form=check.parsed.forms.get(ident),
            )
        )
    return DefinitionPreview(
        key=check.key,
        name=check.name,
        next_version=(latest.version + 1) if latest else 1,
        processes=check.parsed.executable_ids,
        tasks=tasks,
        messages=check.parsed.messages,
    )


def deploy_definition(
    uow: UnitOfWork,
    engine: Engine,
    bpmn: bytes,
    forms: Mapping[str, Any],
    *,
    filename: str,
    source: str,
    max_bytes: int = 5_000_000,
    max_flow_nodes: int = 400,
    decisions: Mapping[str, str] | None = None,
) -> tuple[ProcessDefinition, bool]:
    """Deploy a new version (or return the current one when nothing changed: idempotent)."""
    if source == "upload":
        _require_city_admin(uow)
    decisions = dict(decisions or {})
    check = check_definition(
        engine,
        bpmn,
        forms,
        filename=filename,
        max_bytes=max_bytes,
        max_flow_nodes=max_flow_nodes,
        decisions=decisions,
    )
    digest = definition_digest(bpmn, forms, decisions)
    repo = ProcessRepository(uow.session)
    repo.lock_definition_key(check.key)
    latest = repo.latest_definition(check.key)
    if latest is not None and latest.sha256 == digest:
        return latest, False
    definition = ProcessDefinition(
        key=check.key,
        version=(latest.version + 1) if latest else 1,
        name=check.name,
        bpmn_xml=bpmn.decode("utf-8"),
        forms=dict(forms),
        decisions=decisions,
        sha256=digest,
        source=source,
        message_starts=check.message_starts,
        deployed_by=None if uow.actor.system else uow.actor.user_id,
        deployed_at=utcnow(),
    )
    repo.add(definition)
    uow.flush()
    engine.specs.put(definition.id, check.parsed)
    uow.audit(
        "process.deployed",
        "process_definition",
        definition.id,
        details={"key": definition.key, "version": definition.version, "source": source},
    )
    return definition, True


def definition_digest(
    bpmn: bytes, forms: Mapping[str, Any], decisions: Mapping[str, str] | None = None
) -> str:
    import json

    extra = json.dumps([forms, decisions or {}], sort_keys=True).encode()
    return hashlib.sha256(bpmn + extra).hexdigest()


@dataclass(frozen=True)
class LibraryFile:
    name: str
    bpmn: bytes
    forms: dict[str, Any]
    decisions: dict[str, str]


def library_files(directory: Path) -> list[LibraryFile]:
    """The shipped definitions in `bpmn/`, each with the forms it names and the DMN files in
    `bpmn/decisions/` that define the decisions its business rule tasks call."""
    import json

    from workflow.xmlsafe import parse_untrusted_xml

    # The library folder is configuration (EZD_BPMN_DIR), read through the same hardened gate
    # as uploads; the definitions are checked again, with the upload limits, when deployed.
    def parse(data: bytes, what: str) -> Any:
        return parse_untrusted_xml(data, max_bytes=50_000_000, max_elements=1_000_000, what=what)

    tables: dict[str, tuple[str, str]] = {}  # decision id -> (file name, xml)
    for dmn in sorted((directory / "decisions").glob("*.dmn")):
        text = dmn.read_text("utf-8")
        for ident in parse(text.encode(), "DMN").xpath("//*[local-name()='decision']/@id"):
            tables[str(ident)] = (f"decisions/{dmn.name}", text)
    out = []
    for path in sorted(directory.glob("*.bpmn")):
        data = path.read_bytes()
        root = parse(data, "BPMN")
        forms = {
            str(name): json.loads((directory / str(name)).read_text("utf-8"))
            for name in sorted(
                set(
                    root.xpath(
                        ".//spiffworkflow:property[@name='formJsonSchemaFilename']/@value",
                        namespaces=NS,
                    )
                )
            )
        }
        decisions = dict(
            tables[str(ref)]
            for ref in root.xpath(".//spiffworkflow:calledDecisionId/text()", namespaces=NS)
            if str(ref).strip() in tables
        )
        out.append(LibraryFile(path.name, data, forms, decisions))
    return out


def deploy_library(uow: UnitOfWork, engine: Engine, directory: Path) -> list[ProcessDefinition]:
    """Deploy each file of the library whose content is not deployed yet (cheap when nothing
    changed: known digests are not parsed again)."""
    repo = ProcessRepository(uow.session)
    known = {d.sha256 for d in repo.definitions()}
    return [
        deploy_definition(
            uow, engine, f.bpmn, f.forms, filename=f.name, source="library", decisions=f.decisions
        )[0]
        for f in library_files(directory)
        if definition_digest(f.bpmn, f.forms, f.decisions) not in known
    ]


def compiled_process(
    uow: UnitOfWork, engine: Engine, definition_id: uuid.UUID, process_id: str
) -> CompiledProcess:
    """The parsed spec of a deployed version; the row is read only when the cache misses
    (versions never change)."""

    def load() -> ParsedDefinition:
        definition = ProcessRepository(uow.session).definition(definition_id)
        assert definition is not None
        # Deployed versions passed every check already: no limits or script checks again.
        return parse_definition(
            definition.bpmn_xml.encode("utf-8"),
            filename=definition.key,
            max_bytes=500_000_000,
            max_flow_nodes=1_000_000,
            decisions=[d.encode("utf-8") for d in (definition.decisions or {}).values()],
        )

    return engine.specs.get(definition_id, process_id, load)


# ---------------------------------------------------------------------------------------------
# Instances


def start_process(
    uow: UnitOfWork,
    engine: Engine,
    key: str,
    unit: Unit,
    *,
    case: Case | None = None,
    data: Mapping[str, Any] | None = None,
    correlation_key: str | None = None,
) -> ProcessInstance:
    uow.actor.require_role(unit.id, *STARTING_ROLES)
    repo = ProcessRepository(uow.session)
    definition = repo.latest_definition(key)
    if definition is None:
        raise NotFound(
            f"Nie ma definicji procesu {key}.",
            f"No process definition {key}.",
            code="process_not_found",
        )
    compiled = compiled_process(uow, engine, definition.id, definition.key)
    start_data: dict[str, Any] = {
        "unit_code": unit.code,
        **(
            {
                "case_reference": case.reference,
                "case_title": case.title,
                "subject": case.title,
                "registered_at": case.opened_at.isoformat(),
            }
            if case
            else {}
        ),
        **dict(data or {}),
    }
    instance = ProcessInstance(
        definition_id=definition.id,
        process_id=definition.key,
        unit_id=unit.id,
        case_id=case.id if case else None,
        correlation_key=correlation_key or (case.reference if case else None),
        status=InstanceStatus.running,
        state={},
        serializer_version="",
        started_by=None if uow.actor.system else uow.actor.user_id,
        started_at=utcnow(),
    )
    repo.add(instance)
    uow.flush()
    wf = engine.create(compiled, start_data)
    snapshot = engine.run(compiled, wf, services=_services(uow, instance, unit))
    _store(uow, instance, compiled, snapshot, started=True)
    uow.audit(
        "process.started",
        "process_instance",
        instance.id,
        unit_id=unit.id,
        case_id=instance.case_id,
        details={"process": key, "version": definition.version},
    )
    return instance


def _services(uow: UnitOfWork, instance: ProcessInstance, unit: Unit | None = None) -> Any:
    """The service caller for one run; the unit is read only if an operation runs."""

    def call(operation: str, params: dict[str, Any], data: Mapping[str, Any]) -> Any:
        acting = unit or OrgRepository(uow.session).unit(instance.unit_id)
        assert acting is not None
        ctx = OperationContext(uow=uow, instance=instance, unit=acting, data=data, actor=uow.actor)
        return call_operation(ctx, operation, params)

    return call


def _locked_instance(uow: UnitOfWork, instance_id: uuid.UUID) -> ProcessInstance:
    instance = ProcessRepository(uow.session).instance(instance_id, lock=True)
    if instance is None:
        raise NotFound(
            "Nie znaleziono instancji procesu.",
            "Process instance not found.",
            code="instance_not_found",
        )
    return instance


def _advance(
    uow: UnitOfWork,
    engine: Engine,
    instance: ProcessInstance,
    action: Any,
) -> Snapshot:
    """One run of a locked instance: restore, act, step, store."""
    compiled = compiled_process(uow, engine, instance.definition_id, instance.process_id)
    wf = engine.restore(compiled, instance.state)
    snapshot = engine.run(compiled, wf, action, services=_services(uow, instance))
    _store(uow, instance, compiled, snapshot)
    return snapshot


def _store(
    uow: UnitOfWork,
    instance: ProcessInstance,
    compiled: CompiledProcess,
    snap: Snapshot,
    *,
    started: bool = False,
) -> None:
    from workflow.engine.runtime import SERIALIZER_VERSION

    repo = ProcessRepository(uow.session)
    now = utcnow()
    instance.state = snap.state
    instance.serializer_version = SERIALIZER_VERSION
    instance.revision = (instance.revision or 0) + (0 if started else 1)
    instance.updated_at = now
    instance.next_timer_at = snap.next_timer_at
    instance.active_elements = snap.active_elements
    instance.completed_elements = snap.completed_elements
    if snap.error is not None:
        instance.status = InstanceStatus.incident
        repo.add(
            Incident(
                instance_id=instance.id,
                unit_id=instance.unit_id,
                element_id=snap.error.element_id,
                message=snap.error.message,
                created_at=now,
            )
        )
        uow.audit(
            "process.incident",
            "process_instance",
            instance.id,
            unit_id=instance.unit_id,
            case_id=instance.case_id,
            details={"element": snap.error.element_id, "message": snap.error.message[:500]},
        )
    elif snap.completed:
        instance.status = InstanceStatus.completed
        instance.ended_at = now
        instance.next_timer_at = None
    else:
        instance.status = InstanceStatus.running

    # The inbox projection: open rows for READY human tasks, nothing else.
    ready = {t.id: t for t in snap.human_tasks}
    for row in repo.open_tasks_of_instance(instance.id):
        if row.id not in ready:
            row.status = TaskStatus.cancelled
            row.completed_at = now
        else:
            ready.pop(row.id)
    org = OrgRepository(uow.session)
    for t in ready.values():
        role = lane_role(t.lane) or DEFAULT_LANE_ROLE
        task_unit = _unit_for_role(org, instance.unit_id, role)
        assignee_id = None
        variable = t.properties.get("assigneeVariable")
        if variable and isinstance(t.data.get(variable), str):
            user = org.user_by_username(t.data[variable])
            if user is not None:
                assignee_id = user.id
        due_at = _due(t.data.get(t.properties.get("dueVariable", "deadline")))
        repo.add(
            ProcessTask(
                id=t.id,
                instance_id=instance.id,
                unit_id=task_unit,
                case_id=instance.case_id,
                element_id=t.element_id,
                name=t.name[:300],
                lane=t.lane,
                role=role,
                assignee_id=assignee_id,
                form=t.properties.get("formJsonSchemaFilename"),
                instruction=_instruction(t.data),
                status=TaskStatus.open,
                due_at=due_at,
                created_at=now,
            )
        )
    waits = sorted({w.name for w in snap.message_waits})
    if waits != list(instance.message_waits or []):
        new_waits = sorted(set(waits) - set(instance.message_waits or []))
        instance.message_waits = waits
        repo.replace_subscriptions(instance.id, [(w, instance.correlation_key) for w in waits])
        # Messages that came while nobody waited are handed over now (after this commit).
        for pending in repo.pending_messages(new_waits, instance.correlation_key):
            uow.enqueue("process.message", {**pending.envelope, "pending_id": str(pending.id)})
    for m in snap.thrown:
        payload = m.payload if isinstance(m.payload, dict) else {"value": m.payload}
        key = payload.get("correlation_key") if isinstance(payload, dict) else None
        uow.enqueue(
            "process.message",
            {
                "name": m.name,
                "payload": payload,
                "correlation_key": key or instance.correlation_key,
                "from_instance": str(instance.id),
                "to_unit": payload.get("to_unit") if isinstance(payload, dict) else None,
            },
        )


def _unit_for_role(org: OrgRepository, unit_id: uuid.UUID, role: str) -> uuid.UUID:
    """The Wydział Oświaty lane of a school's process belongs to the city office's pool."""
    if role != Role.city_officer:
        return unit_id
    unit = org.unit(unit_id)
    if unit is not None and unit.kind == UnitKind.city_office:
        return unit_id
    office = org.city_office()
    return office.id if office is not None else unit_id


def _due(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else None
    return None


def _instruction(data: Mapping[str, Any]) -> str | None:
    value = data.get("instruction")
    return str(value)[:2000] if value else None


# ---------------------------------------------------------------------------------------------
# Tasks


def _task_for_actor(uow: UnitOfWork, task_id: uuid.UUID, *, lock: bool = False) -> ProcessTask:
    task = ProcessRepository(uow.session).task(task_id, lock=lock)
    if task is None or not uow.actor.can_read_unit(task.unit_id):
        raise NotFound("Nie znaleziono zadania.", "Task not found.", code="task_not_found")
    return task


def business_now() -> datetime:
    """The time deadlines and timers are judged by (the engine's clock)."""
    return engine_now()


def readable_task(uow: UnitOfWork, task_id: uuid.UUID) -> ProcessTask:
    return _task_for_actor(uow, task_id)


def _stand_ins(uow: UnitOfWork) -> Sequence[tuple[uuid.UUID, uuid.UUID]]:
    """(colleague, unit) for each colleague the actor substitutes today, in that unit only."""
    return ProcessRepository(uow.session).substituted_users(uow.actor.user_id, engine_now().date())


def _acts_for(uow: UnitOfWork, unit_id: uuid.UUID) -> list[uuid.UUID]:
    """The actor and the colleagues they substitute today in the unit (a substitution is one
    unit's arrangement: a teacher of two schools is substituted in each separately)."""
    return [uow.actor.user_id, *(user for user, unit in _stand_ins(uow) if unit == unit_id)]


def _may_work_on(uow: UnitOfWork, task: ProcessTask) -> bool:
    actor = uow.actor
    if task.assignee_id is not None:
        return task.assignee_id in _acts_for(uow, task.unit_id)
    return actor.has_role(task.unit_id, task.role)


def _require_open(task: ProcessTask) -> None:
    if task.status != TaskStatus.open:
        raise Conflict(
            "Zadanie zostało już zakończone.", "The task is no longer open.", code="task_not_open"
        )


_form_validators: dict[tuple[uuid.UUID, str], Draft202012Validator | None] = {}


def form_schema(uow: UnitOfWork, task: ProcessTask) -> dict[str, Any] | None:
    validator = _form_validator(uow, task)
    return dict(validator.schema) if validator is not None else None


def _form_validator(uow: UnitOfWork, task: ProcessTask) -> Draft202012Validator | None:
    """Forms of a deployed version never change: one compiled validator per version and form."""
    if not task.form:
        return None
    repo = ProcessRepository(uow.session)
    instance = repo.instance(task.instance_id)
    assert instance is not None
    key = (instance.definition_id, task.form)
    if key not in _form_validators:
        definition = repo.definition(instance.definition_id)
        assert definition is not None
        schema = definition.forms.get(task.form)
        if len(_form_validators) > 10_000:
            _form_validators.clear()
        _form_validators[key] = Draft202012Validator(schema) if isinstance(schema, dict) else None
    return _form_validators[key]


def validate_form(validator: Draft202012Validator | None, data: Mapping[str, Any]) -> None:
    if validator is None:
        if data:
            raise ValidationFailed(
                "To zadanie nie przyjmuje danych formularza.",
                "This task takes no form data.",
                code="form_invalid",
            )
        return
    errors = sorted(validator.iter_errors(dict(data)), key=lambda e: list(e.path))
    if errors:
        raise ValidationFailed(
            "Formularz zawiera błędy: " + "; ".join(_form_error(e) for e in errors[:10]),
            "The form has errors: " + "; ".join(_form_error(e) for e in errors[:10]),
            code="form_invalid",
            details={
                "errors": [
                    {"field": "/".join(map(str, e.path)), "message": e.message} for e in errors[:50]
                ]
            },
        )


def _form_error(e: Any) -> str:
    where = "/".join(map(str, e.path)) or "(formularz)"
    return f"{where}: {e.message}"[:300]


def complete_task(
    uow: UnitOfWork, engine: Engine, task_id: uuid.UUID, data: Mapping[str, Any]
) -> ProcessTask:
    # Locks in the order every run takes them (instance, then its tasks): the first read only
    # finds the instance; the task is read again under its lock, as it may have changed.
    task = _task_for_actor(uow, task_id)
    instance = _locked_instance(uow, task.instance_id)
    task = _task_for_actor(uow, task_id, lock=True)
    _require_open(task)
    if not _may_work_on(uow, task):
        raise Forbidden(
            "To zadanie jest przydzielone innej osobie lub innej roli.",
            "This task belongs to another person or role.",
            code="task_not_yours",
        )
    if instance.status == InstanceStatus.incident:
        raise Conflict(
            "Proces czeka na usunięcie incydentu przez administratora.",
            "The process has an incident that an administrator must resolve first.",
            code="instance_incident",
        )
    validate_form(_form_validator(uow, task), data)
    now = utcnow()
    task.status = TaskStatus.completed
    task.completed_at = now
    task.completed_by = uow.actor.user_id
    if task.assignee_id is None:
        task.assignee_id = uow.actor.user_id
    try:
        _advance(uow, engine, instance, Engine.complete_task(task.id, data))
    except TaskNotReady as e:
        raise Conflict(
            "Zadanie nie jest już aktywne.", "The task is no longer active.", code="task_not_open"
        ) from e
    uow.audit(
        "task.completed",
        "process_task",
        task.id,
        unit_id=task.unit_id,
        case_id=task.case_id,
        details={"task": task.name, "element": task.element_id, "data": _audit_data(data)},
    )
    return task


def _audit_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, str | int | float | bool) or v is None else str(v))
        for k, v in list(data.items())[:30]
    }


def claim_task(uow: UnitOfWork, task_id: uuid.UUID) -> ProcessTask:
    task = _task_for_actor(uow, task_id, lock=True)
    _require_open(task)
    if task.assignee_id is not None and task.assignee_id not in _acts_for(uow, task.unit_id):
        raise Conflict(
            "Zadanie ma już wykonawcę.", "The task is already assigned.", code="task_taken"
        )
    if not uow.actor.has_role(task.unit_id, task.role) and task.assignee_id is None:
        raise Forbidden(
            "Nie masz roli, do której należy to zadanie.",
            "You lack the task's role.",
            code="task_not_yours",
        )
    task.assignee_id = uow.actor.user_id
    uow.audit("task.claimed", "process_task", task.id, unit_id=task.unit_id, case_id=task.case_id)
    return task


def release_task(uow: UnitOfWork, task_id: uuid.UUID) -> ProcessTask:
    task = _task_for_actor(uow, task_id, lock=True)
    _require_open(task)
    if task.assignee_id is None or task.assignee_id not in _acts_for(uow, task.unit_id):
        raise Forbidden(
            "To nie jest Twoje zadanie.", "This is not your task.", code="task_not_yours"
        )
    task.assignee_id = None
    uow.audit("task.released", "process_task", task.id, unit_id=task.unit_id, case_id=task.case_id)
    return task


ASSIGNING_ROLES = (Role.headteacher, Role.clerk, Role.city_officer)


def reassign_task(
    uow: UnitOfWork, task_id: uuid.UUID, username: str, instruction: str | None
) -> ProcessTask:
    """Dekretacja: the headteacher (or the secretariat) hands a task to a person with an
    instruction; the current assignee may pass it on too."""
    task = _task_for_actor(uow, task_id, lock=True)
    _require_open(task)
    actor = uow.actor
    if not (
        actor.has_role(task.unit_id, *ASSIGNING_ROLES)
        or task.assignee_id in _acts_for(uow, task.unit_id)
    ):
        raise Forbidden(
            "Dekretować mogą dyrektor, sekretariat lub obecny wykonawca.",
            "Only the head, the secretariat or the current assignee may reassign.",
            code="task_not_yours",
        )
    org = OrgRepository(uow.session)
    user = org.user_by_username(username)
    roles = org.roles_of(user.id, task.unit_id) if user is not None and user.active else set()
    if user is None or not (set(roles) & set(STAFF_ROLES)):
        raise ValidationFailed(
            f"Użytkownik {username} nie pracuje w tej jednostce.",
            f"User {username} does not work in this unit.",
            code="assignee_invalid",
        )
    if task.role not in roles:
        raise ValidationFailed(
            f"Użytkownik {username} nie ma roli wymaganej przez zadanie ({task.role}).",
            f"User {username} lacks the task's role ({task.role}).",
            code="assignee_invalid",
        )
    previous = task.assignee_id
    task.assignee_id = user.id
    task.instruction = instruction[:2000] if instruction else task.instruction
    uow.audit(
        "task.reassigned",
        "process_task",
        task.id,
        unit_id=task.unit_id,
        case_id=task.case_id,
        details={
            "to": username,
            "from": str(previous) if previous else None,
            "instruction": instruction or "",
        },
    )
    return task


@dataclass(frozen=True)
class InboxFilter:
    status: str = TaskStatus.open
    unit_id: uuid.UUID | None = None
    due_before: datetime | None = None
    case_id: uuid.UUID | None = None
    mine_only: bool = False
    limit: int = 100
    offset: int = 0


def inbox(uow: UnitOfWork, f: InboxFilter) -> Sequence[ProcessTask]:
    actor = uow.actor
    pools = [(u, r) for u, roles in actor.roles.items() for r in roles]
    return ProcessRepository(uow.session).inbox(
        user_ids=[actor.user_id],
        stand_ins=_stand_ins(uow),
        pools=pools,
        status=f.status,
        unit_id=f.unit_id,
        due_before=f.due_before,
        case_id=f.case_id,
        mine_only=f.mine_only,
        limit=f.limit,
        offset=f.offset,
    )


def add_substitution(
    uow: UnitOfWork, unit: Unit, username: str, substitute: str, starts_on: date, ends_on: date
) -> Substitution:
    org = OrgRepository(uow.session)
    user = org.user_by_username(username)
    sub = org.user_by_username(substitute)
    if user is None or sub is None:
        raise ValidationFailed("Nieznany użytkownik.", "Unknown user.", code="user_not_found")
    if not (
        uow.actor.user_id == user.id
        or uow.actor.has_role(unit.id, Role.headteacher, Role.admin)
        or uow.actor.is_admin
    ):
        raise Forbidden(
            "Zastępstwo ustala dyrektor, administrator lub sam nieobecny.",
            "Only the head, an admin or the absent user sets a substitute.",
        )
    if ends_on < starts_on:
        raise ValidationFailed(
            "Koniec zastępstwa przed jego początkiem.",
            "The substitution ends before it starts.",
            code="substitution_invalid",
        )
    # Both work in the unit: a substitution is the unit's arrangement, and naming another
    # unit's employee would show their tasks (that unit's cases) in the substitute's inbox.
    for name, person in ((username, user), (substitute, sub)):
        if not (set(org.roles_of(person.id, unit.id)) & set(STAFF_ROLES)):
            raise ValidationFailed(
                f"{name} nie pracuje w tej jednostce.",
                f"{name} does not work in this unit.",
                code="substitution_invalid",
            )
    s = Substitution(
        id=uuid.uuid4(),
        unit_id=unit.id,
        user_id=user.id,
        substitute_id=sub.id,
        starts_on=starts_on,
        ends_on=ends_on,
        created_by=None if uow.actor.system else uow.actor.user_id,
    )
    ProcessRepository(uow.session).add(s)
    uow.audit(
        "substitution.added",
        "substitution",
        s.id,
        unit_id=unit.id,
        details={
            "user": username,
            "substitute": substitute,
            "from": str(starts_on),
            "to": str(ends_on),
        },
    )
    return s


# ---------------------------------------------------------------------------------------------
# Timers, messages, incidents (run by the worker, as the system)


def fire_due_timers(
    uow: UnitOfWork, engine: Engine, now: datetime | None = None, limit: int = 50
) -> int:
    now = now or engine_now()
    repo = ProcessRepository(uow.session)
    fired = 0
    for instance_id in repo.due_timer_instances(now, limit):
        instance = _locked_instance(uow, instance_id)
        if (
            instance.status != InstanceStatus.running
            or instance.next_timer_at is None
            or instance.next_timer_at > now
        ):
            continue
        _advance(uow, engine, instance, Engine.refresh_timers())
        uow.audit(
            "process.timer_fired",
            "process_instance",
            instance.id,
            unit_id=instance.unit_id,
            case_id=instance.case_id,
        )
        fired += 1
    return fired


class MessageNotDelivered(DomainError):
    code = "message_not_delivered"
    status = 409


def deliver_message(
    uow: UnitOfWork, engine: Engine, payload: Mapping[str, Any], *, internal_jrwa: str = "43178"
) -> int:
    """Hand a thrown message to the instances waiting for it (same name and correlation key),
    or start the newest definition whose start event waits for it, in the addressed unit."""
    name = str(payload["name"])
    key = payload.get("correlation_key")
    body = payload.get("payload") or {}
    repo = ProcessRepository(uow.session)
    pending = None
    if payload.get("pending_id"):
        pending = repo.pending_message(uuid.UUID(str(payload["pending_id"])))
        if pending is None or pending.delivered_at is not None:
            return 0  # delivered by an earlier event
    delivered = 0
    for instance_id in repo.subscribers(name, key):
        if str(instance_id) == payload.get("from_instance"):
            continue
        instance = _locked_instance(uow, instance_id)
        if instance.status != InstanceStatus.running:
            continue
        _advance(uow, engine, instance, Engine.catch_message(name, body))
        uow.audit(
            "process.message_received",
            "process_instance",
            instance.id,
            unit_id=instance.unit_id,
            case_id=instance.case_id,
            details={"message": name},
        )
        delivered += 1
    if delivered:
        if pending is not None:
            pending.delivered_at = utcnow()
        return delivered
    starters = repo.definitions_started_by_message(name)
    to_unit = payload.get("to_unit")
    if starters and to_unit:
        unit = OrgRepository(uow.session).unit_by_code(str(to_unit))
        if unit is None:
            raise MessageNotDelivered(f"Nieznana jednostka {to_unit}.", f"Unknown unit {to_unit}.")
        registered_case = None
        if payload.get("case_id"):
            # e-delivery registered the letter first: the process runs in the letter's case
            registered_case = CaseRepository(uow.session).by_id(uuid.UUID(str(payload["case_id"])))
        for definition in starters:
            # Otherwise a message from another unit opens a case in the addressed unit (under
            # the class the sender named, or the configured class for internal correspondence).
            case = registered_case or open_case(
                uow,
                unit,
                jrwa_symbol=str(body.get("jrwa") or internal_jrwa),
                title=str(body.get("subject") or name)[:500],
            )
            instance = start_process(
                uow,
                engine,
                definition.key,
                unit,
                case=case,
                correlation_key=key,
                data={"registered_at": utcnow().isoformat()},
            )
            _advance(
                uow, engine, _locked_instance(uow, instance.id), Engine.catch_message(name, body)
            )
            delivered += 1
        return delivered
    if pending is None:
        envelope = {k: v for k, v in payload.items() if k != "pending_id"}
        repo.add(
            PendingMessage(
                message_name=name, correlation_key=key, envelope=envelope, received_at=utcnow()
            )
        )
        uow.audit(
            "process.message_pending",
            "message",
            name,
            details={"message": name, "correlation_key": key},
        )
    return 0


def retry_incident(uow: UnitOfWork, engine: Engine, incident_id: uuid.UUID) -> ProcessInstance:
    incident = ProcessRepository(uow.session).incident(incident_id)
    if incident is None or not uow.actor.can_admin_unit(incident.unit_id):
        raise NotFound(
            "Nie znaleziono incydentu.", "Incident not found.", code="incident_not_found"
        )
    instance = _locked_instance(uow, incident.instance_id)
    if instance.status != InstanceStatus.incident:
        raise Conflict(
            "Incydent już rozwiązano.",
            "The incident is already resolved.",
            code="incident_resolved",
        )
    ProcessRepository(uow.session).resolve_incidents(instance.id, uow.actor.user_id, utcnow())
    uow.audit(
        "process.incident_retried",
        "process_instance",
        instance.id,
        unit_id=instance.unit_id,
        case_id=instance.case_id,
    )
    _advance(uow, engine, instance, Engine.retry_failed())
    return instance


def readable_instance(uow: UnitOfWork, instance_id: uuid.UUID) -> ProcessInstance:
    instance = ProcessRepository(uow.session).instance(instance_id)
    if instance is None or not uow.actor.can_read_unit(instance.unit_id):
        raise NotFound(
            "Nie znaleziono instancji procesu.",
            "Process instance not found.",
            code="instance_not_found",
        )
    return instance


def case_of(uow: UnitOfWork, instance: ProcessInstance) -> Case | None:
    return CaseRepository(uow.session).by_id(instance.case_id) if instance.case_id else None


__all__ = ["BPMN_NS", "Principal"]


def record_notification(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Staff notifications and hand-overs are recorded in the audit trail (the e-mail channel
    for citizens comes with the e-services)."""
    unit = OrgRepository(uow.session).unit_by_code(str(payload.get("unit") or ""))
    uow.audit(
        "notification.recorded",
        "notification",
        str(payload.get("instance") or payload.get("case_reference") or "-"),
        unit_id=unit.id if unit else None,
        details={k: str(v)[:200] for k, v in payload.items()},
    )
