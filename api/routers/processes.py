"""Processes over HTTP: the inbox and task actions, starting processes, definitions (upload with
a preview, versions, BPMN XML), diagram data of an instance, incidents, substitutes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Actor, UoW, container
from api.errors import BODY_ERRORS, error_responses
from api.presenters import Presenter
from workflow.cases.service import readable_case
from workflow.errors import Forbidden, NotFound
from workflow.org.repository import OrgRepository
from workflow.processes import service
from workflow.processes.models import ProcessDefinition, ProcessInstance, ProcessTask, TaskStatus
from workflow.processes.repository import ProcessRepository
from workflow.registry.service import acting_unit, readable_unit
from workflow.uow import UnitOfWork

router = APIRouter(prefix="/api/v1", tags=["processes"], responses=error_responses(*BODY_ERRORS))

FormData = dict[str, Any]


class TaskOut(BaseModel):
    id: uuid.UUID
    name: str
    element_id: str
    process: str
    instance_id: uuid.UUID
    unit: str
    case_reference: str | None
    lane: str | None
    role: str
    assignee: str | None
    instruction: str | None
    status: str
    due_at: datetime | None
    overdue: bool
    created_at: datetime
    completed_at: datetime | None
    form: dict[str, Any] | None = None


class CompleteTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: FormData = Field(default_factory=dict)


class AssignTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=80)
    instruction: str | None = Field(None, max_length=2000)


class StartProcess(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str | None = Field(None, max_length=20)
    case_reference: str | None = Field(None, max_length=80)
    data: FormData = Field(default_factory=dict)


class InstanceOut(BaseModel):
    id: uuid.UUID
    process: str
    version: int
    unit: str
    case_reference: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    active_elements: list[str]
    completed_elements: list[str]


class DiagramOut(BaseModel):
    instance_id: uuid.UUID
    process: str
    version: int
    bpmn_xml: str
    active_elements: list[str]
    completed_elements: list[str]


class DefinitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bpmn: str = Field(min_length=1, description="The BPMN 2.0 XML")
    forms: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="JSON Schema forms by the file name the tasks use"
    )
    decisions: dict[str, str] = Field(
        default_factory=dict, description="DMN documents (XML) for business rule tasks, by name"
    )
    filename: str = Field("upload.bpmn", max_length=200)


class DefinitionOut(BaseModel):
    id: uuid.UUID
    key: str
    version: int
    name: str
    source: str
    deployed_at: datetime
    message_starts: list[str]


class PreviewTask(BaseModel):
    id: str
    name: str | None
    kind: str
    lane: str | None
    role: str | None
    form: str | None


class DefinitionPreview(BaseModel):
    key: str
    name: str
    next_version: int
    processes: list[str]
    tasks: list[PreviewTask]
    messages: list[str]
    bpmn_xml: str


class IncidentOut(BaseModel):
    id: uuid.UUID
    instance_id: uuid.UUID
    unit: str
    element_id: str | None
    message: str
    created_at: datetime


class SubstitutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str | None = Field(None, max_length=20)
    user: str = Field(max_length=80)
    substitute: str = Field(max_length=80)
    starts_on: date
    ends_on: date


class SubstitutionOut(BaseModel):
    id: uuid.UUID
    unit: str
    user: str
    substitute: str
    starts_on: date
    ends_on: date


# ---------------------------------------------------------------------------------------------


class _Names(Presenter):
    """Presenting tasks and instances: the unit codes and case references come from the shared
    presenter; rows are read through the session's identity map."""

    def __init__(self, uow: UnitOfWork) -> None:
        super().__init__(uow)
        self.processes = ProcessRepository(uow.session)
        self._process_ids: dict[uuid.UUID, str] = {}

    def user(self, user_id: uuid.UUID | None) -> str | None:
        if user_id is None:
            return None
        u = self.org.user(user_id)
        return u.username if u else "?"

    def instance(self, instance_id: uuid.UUID) -> ProcessInstance:
        i = self.processes.instance(instance_id)
        assert i is not None
        return i

    def tasks(self, rows: Sequence[ProcessTask]) -> list[TaskOut]:
        """A page of tasks with two queries for all their process keys and cases, instead of
        two per task (an inbox page; an instance row also carries the engine state)."""
        self._process_ids.update(self.processes.process_ids([t.instance_id for t in rows]))
        self.cases.by_ids([t.case_id for t in rows if t.case_id is not None])
        return [self.task(t) for t in rows]

    def task(self, t: ProcessTask, *, form: dict[str, Any] | None = None) -> TaskOut:
        now = service.business_now()
        process = self._process_ids.get(t.instance_id) or self.instance(t.instance_id).process_id
        return TaskOut(
            id=t.id,
            name=t.name,
            element_id=t.element_id,
            process=process,
            instance_id=t.instance_id,
            unit=self.unit_code(t.unit_id),
            case_reference=self.case_reference(t.case_id),
            lane=t.lane,
            role=t.role,
            assignee=self.user(t.assignee_id),
            instruction=t.instruction,
            status=t.status,
            due_at=t.due_at,
            overdue=bool(t.due_at and t.status == TaskStatus.open and t.due_at < now),
            created_at=t.created_at,
            completed_at=t.completed_at,
            form=form,
        )

    def instance_out(self, i: ProcessInstance) -> InstanceOut:
        d = self.processes.definition(i.definition_id)
        return InstanceOut(
            id=i.id,
            process=i.process_id,
            version=d.version if d else 0,
            unit=self.unit_code(i.unit_id),
            case_reference=self.case_reference(i.case_id),
            status=i.status,
            started_at=i.started_at,
            ended_at=i.ended_at,
            active_elements=list(i.active_elements or []),
            completed_elements=list(i.completed_elements or []),
        )


def _definition_out(d: ProcessDefinition) -> DefinitionOut:
    return DefinitionOut(
        id=d.id,
        key=d.key,
        version=d.version,
        name=d.name,
        source=d.source,
        deployed_at=d.deployed_at,
        message_starts=list(d.message_starts or []),
    )


# -- inbox and tasks -----------------------------------------------------------------------------


@router.get(
    "/tasks", response_model=list[TaskOut], summary="My inbox: my tasks and my roles' pools"
)
def list_tasks(
    uow: UoW,
    actor: Actor,
    status: str = Query("open", pattern="^(open|completed|cancelled)$"),
    unit: str | None = Query(None, max_length=20),
    case: str | None = Query(None, max_length=80, description="Case reference"),
    due_before: datetime | None = None,
    mine: bool = Query(False, description="Only tasks assigned to me (or those I substitute)"),
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[TaskOut]:
    unit_id = readable_unit(uow, actor, unit).id if unit else None
    case_id = readable_case(uow, actor, case).id if case else None
    rows = service.inbox(
        uow,
        service.InboxFilter(
            status=status,
            unit_id=unit_id,
            due_before=due_before,
            case_id=case_id,
            mine_only=mine,
            limit=limit,
            offset=offset,
        ),
    )
    return _Names(uow).tasks(rows)


@router.get(
    "/tasks/{task_id}", response_model=TaskOut, summary="A task with its form (JSON Schema)"
)
def get_task(task_id: uuid.UUID, uow: UoW, actor: Actor) -> TaskOut:
    task = service.readable_task(uow, task_id)
    return _Names(uow).task(task, form=service.form_schema(uow, task))


@router.post(
    "/tasks/{task_id}/complete",
    response_model=TaskOut,
    summary="Complete a task with its form data",
)
def complete_task(
    task_id: uuid.UUID, body: CompleteTask, request: Request, uow: UoW, actor: Actor
) -> TaskOut:
    task = service.complete_task(uow, container(request).engine_runtime, task_id, body.data)
    return _Names(uow).task(task)


@router.post(
    "/tasks/{task_id}/claim", response_model=TaskOut, summary="Take a task from the role's pool"
)
def claim_task(task_id: uuid.UUID, uow: UoW, actor: Actor) -> TaskOut:
    return _Names(uow).task(service.claim_task(uow, task_id))


@router.post(
    "/tasks/{task_id}/release", response_model=TaskOut, summary="Give a task back to the pool"
)
def release_task(task_id: uuid.UUID, uow: UoW, actor: Actor) -> TaskOut:
    return _Names(uow).task(service.release_task(uow, task_id))


@router.post(
    "/tasks/{task_id}/assign",
    response_model=TaskOut,
    summary="Reassign (dekretacja) with an instruction",
)
def assign_task(task_id: uuid.UUID, body: AssignTask, uow: UoW, actor: Actor) -> TaskOut:
    return _Names(uow).task(service.reassign_task(uow, task_id, body.username, body.instruction))


# -- instances -----------------------------------------------------------------------------------


@router.post(
    "/processes/{key}/start", response_model=InstanceOut, status_code=201, summary="Start a process"
)
def start_process(
    key: str, body: StartProcess, request: Request, uow: UoW, actor: Actor
) -> InstanceOut:
    if body.case_reference:
        case = readable_case(uow, actor, body.case_reference)
        unit = OrgRepository(uow.session).unit(case.unit_id)
        assert unit is not None
    else:
        case = None
        unit = acting_unit(uow, body.unit, *service.STARTING_ROLES)
    instance = service.start_process(
        uow, container(request).engine_runtime, key, unit, case=case, data=body.data
    )
    return _Names(uow).instance_out(instance)


@router.get(
    "/process-instances/{instance_id}", response_model=InstanceOut, summary="A process instance"
)
def get_instance(instance_id: uuid.UUID, uow: UoW, actor: Actor) -> InstanceOut:
    return _Names(uow).instance_out(service.readable_instance(uow, instance_id))


@router.get(
    "/process-instances/{instance_id}/diagram",
    response_model=DiagramOut,
    summary="BPMN XML of the instance's version with active and completed element ids",
)
def get_diagram(instance_id: uuid.UUID, uow: UoW, actor: Actor) -> DiagramOut:
    i = service.readable_instance(uow, instance_id)
    d = ProcessRepository(uow.session).definition(i.definition_id)
    assert d is not None
    return DiagramOut(
        instance_id=i.id,
        process=i.process_id,
        version=d.version,
        bpmn_xml=d.bpmn_xml,
        active_elements=list(i.active_elements or []),
        completed_elements=list(i.completed_elements or []),
    )


@router.get(
    "/cases/{reference}/processes", response_model=list[InstanceOut], summary="Processes of a case"
)
def case_processes(reference: str, uow: UoW, actor: Actor) -> list[InstanceOut]:
    case = readable_case(uow, actor, reference)
    names = _Names(uow)
    return [
        names.instance_out(i) for i in ProcessRepository(uow.session).instances_for_case(case.id)
    ]


# -- definitions ---------------------------------------------------------------------------------


@router.get(
    "/process-definitions",
    response_model=list[DefinitionOut],
    summary="Deployed definitions, every version",
)
def list_definitions(uow: UoW, actor: Actor) -> list[DefinitionOut]:
    return [_definition_out(d) for d in ProcessRepository(uow.session).definitions()]


@router.get("/process-definitions/{key}/{version}/xml", summary="The BPMN XML of one version")
def definition_xml(
    key: str, uow: UoW, actor: Actor, version: int = Path(ge=1, le=2_147_483_647)
) -> dict[str, Any]:
    d = ProcessRepository(uow.session).definition_version(key, version)
    if d is None:
        raise NotFound(
            "Nie ma takiej wersji definicji.",
            "No such definition version.",
            code="process_not_found",
        )
    return {
        "key": d.key,
        "version": d.version,
        "bpmn_xml": d.bpmn_xml,
        "forms": d.forms,
        "decisions": d.decisions,
    }


@router.post(
    "/process-definitions/preview",
    response_model=DefinitionPreview,
    summary="Check an upload and show what would be deployed (nothing is stored)",
)
def preview_definition(
    body: DefinitionIn, request: Request, uow: UoW, actor: Actor
) -> DefinitionPreview:
    p = service.preview_definition(uow, container(request).engine_runtime, **_upload(body, request))
    return DefinitionPreview(
        key=p.key,
        name=p.name,
        next_version=p.next_version,
        processes=p.processes,
        tasks=[PreviewTask(**vars(t)) for t in p.tasks],
        messages=p.messages,
        bpmn_xml=body.bpmn,
    )


@router.post(
    "/process-definitions",
    response_model=DefinitionOut,
    status_code=201,
    summary="Deploy a definition",
)
def deploy(body: DefinitionIn, request: Request, uow: UoW, actor: Actor) -> DefinitionOut:
    definition, _ = service.deploy_definition(
        uow, container(request).engine_runtime, source="upload", **_upload(body, request)
    )
    return _definition_out(definition)


def _upload(body: DefinitionIn, request: Request) -> dict[str, Any]:
    settings = container(request).settings
    return {
        "bpmn": body.bpmn.encode("utf-8"),
        "forms": body.forms,
        "decisions": body.decisions,
        "filename": body.filename,
        "max_bytes": settings.bpmn_max_bytes,
        "max_flow_nodes": settings.bpmn_max_flow_nodes,
    }


# -- incidents and substitutes -------------------------------------------------------------------


@router.get(
    "/incidents", response_model=list[IncidentOut], summary="Open incidents an admin can retry"
)
def list_incidents(uow: UoW, actor: Actor) -> list[IncidentOut]:
    if not uow.actor.is_any_admin:
        raise Forbidden()
    scope = None if uow.actor.is_admin else uow.actor.units_with("admin")
    names = _Names(uow)
    return [
        IncidentOut(
            id=i.id,
            instance_id=i.instance_id,
            unit=names.unit_code(i.unit_id),
            element_id=i.element_id,
            message=i.message,
            created_at=i.created_at,
        )
        for i in ProcessRepository(uow.session).open_incidents(scope)
    ]


@router.post(
    "/incidents/{incident_id}/retry", response_model=InstanceOut, summary="Retry the failed step"
)
def retry_incident(incident_id: uuid.UUID, request: Request, uow: UoW, actor: Actor) -> InstanceOut:
    instance = service.retry_incident(uow, container(request).engine_runtime, incident_id)
    return _Names(uow).instance_out(instance)


@router.post(
    "/substitutions",
    response_model=SubstitutionOut,
    status_code=201,
    summary="Set a substitute during absence",
)
def add_substitution(body: SubstitutionIn, uow: UoW, actor: Actor) -> SubstitutionOut:
    unit = readable_unit(uow, actor, body.unit)
    s = service.add_substitution(
        uow, unit, body.user, body.substitute, body.starts_on, body.ends_on
    )
    return SubstitutionOut(
        id=s.id,
        unit=unit.code,
        user=body.user,
        substitute=body.substitute,
        starts_on=s.starts_on,
        ends_on=s.ends_on,
    )
