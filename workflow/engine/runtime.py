"""Running process instances: create, restore, step, and read what they wait for.

Execution lives here, persistence in `workflow/processes/` (as in spiff-arena, the execution
strategy is kept apart from storage). A stored state is SpiffWorkflow's serializer dict without
the process spec: the spec comes from `SpecCache`, keyed by definition version, so a running
instance always continues on the version it started with and a state row stays small. Every
restored workflow gets the restricted script engine: SpiffWorkflow would otherwise restore one
with the default, unrestricted engine.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _spiff_timer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from workflow.engine.parsing import ParsedDefinition
from workflow.engine.sandbox import ScriptSandbox
from workflow.engine.scripting import (
    RestrictedScriptEngine,
    ServiceCaller,
    UnknownOperation,
    reset_service_caller,
    with_service_caller,
)

# SpiffWorkflow logs every task state change at INFO; the audit trail records what matters.
for _name in ("spiff", "spiff.task", "spiff.workflow", "spiff.metrics"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# ---------------------------------------------------------------------------------------------
# The engine clock. SpiffWorkflow reads `datetime.now(timezone.utc)` for timers; routing it
# through one clock lets the worker and the tests agree on "now" (tests move it forward instead
# of sleeping through a statutory month).

_clock_offset = timedelta(0)


def engine_now() -> datetime:
    return datetime.now(UTC) + _clock_offset


def advance_clock(delta: timedelta) -> None:
    """Move the engine's time forward (tests and demos only)."""
    global _clock_offset
    _clock_offset += delta


def reset_clock() -> None:
    global _clock_offset
    _clock_offset = timedelta(0)


class _EngineDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _EngineDatetime:
        n = engine_now()
        n = n.astimezone(tz) if tz is not None else n.astimezone().replace(tzinfo=None)
        return cls(n.year, n.month, n.day, n.hour, n.minute, n.second, n.microsecond, n.tzinfo)


_spiff_timer.datetime = _EngineDatetime


# ---------------------------------------------------------------------------------------------
# Serialization without the spec.


@dataclass(frozen=True)
class CompiledProcess:
    """One executable process of one definition version, parsed once."""

    version_id: uuid.UUID
    process_id: str
    spec: BpmnProcessSpec
    subprocess_specs: dict[str, BpmnProcessSpec]
    flavour: str
    lanes: dict[str, str]
    forms: dict[str, str]


_restoring: threading.local = threading.local()


class _SpeclessWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
        dct["spec"] = None
        dct["subprocess_specs"] = {}
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any]) -> BpmnWorkflow:
        compiled: CompiledProcess = _restoring.compiled
        dct.pop("spec", None)
        dct.pop("subprocess_specs", None)
        workflow = self.target_class(compiled.spec, compiled.subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], uuid.UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(uuid.UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _serializer(config: dict[Any, Any]) -> BpmnWorkflowSerializer:
    cfg = dict(config)
    cfg[BpmnWorkflow] = _SpeclessWorkflowConverter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(cfg))


_SERIALIZERS = {"spiff": _serializer(SPIFF_CONFIG), "camunda": _serializer(CAMUNDA_CONFIG)}
SERIALIZER_VERSION = f"spiff-{_SERIALIZERS['spiff'].VERSION}/ezd-1"


# ---------------------------------------------------------------------------------------------
# What an instance waits for.


@dataclass(frozen=True)
class HumanTask:
    id: uuid.UUID
    element_id: str
    name: str
    lane: str | None
    properties: dict[str, str]
    data: dict[str, Any]


@dataclass(frozen=True)
class MessageWait:
    name: str
    correlations: dict[str, Any]


@dataclass(frozen=True)
class ThrownMessage:
    name: str
    payload: Any
    correlations: dict[str, Any]


@dataclass
class Snapshot:
    """What the host persists after each run of an instance."""

    state: dict[str, Any]
    completed: bool
    human_tasks: list[HumanTask]
    next_timer_at: datetime | None
    message_waits: list[MessageWait]
    thrown: list[ThrownMessage]
    active_elements: list[str]
    completed_elements: list[str]
    error: EngineStepError | None = None


@dataclass
class EngineStepError:
    element_id: str | None
    message: str
    script_failure: bool


@dataclass
class SpecCache:
    """Parsed specs by definition version; a bounded LRU (a version never changes)."""

    capacity: int = 256
    _items: OrderedDict[tuple[uuid.UUID, str], CompiledProcess] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(
        self,
        version_id: uuid.UUID,
        process_id: str,
        load: Callable[[], ParsedDefinition],
    ) -> CompiledProcess:
        key = (version_id, process_id)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        parsed = load()
        compiled = CompiledProcess(
            version_id,
            process_id,
            parsed.specs[process_id],
            parsed.subprocess_specs.get(process_id, {}),
            parsed.flavour,
            parsed.lanes,
            parsed.forms,
        )
        with self._lock:
            self._items[key] = compiled
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return compiled

    def put(self, version_id: uuid.UUID, parsed: ParsedDefinition) -> None:
        for pid in parsed.specs:
            self.get(version_id, pid, lambda: parsed)


class Engine:
    """Stateless apart from the spec cache; one per process."""

    def __init__(
        self, sandbox: ScriptSandbox, spec_cache: SpecCache | None = None, max_steps: int = 500
    ) -> None:
        self.sandbox = sandbox
        # SpiffWorkflow stops seeing tasks deeper than 1,000 in its tree (its iterator's depth
        # limit): a run longer than that would look finished. Stop well before.
        self.max_steps = max_steps
        self.script_engine = RestrictedScriptEngine(sandbox)
        self.specs = spec_cache or SpecCache()

    # -- lifecycle -----------------------------------------------------------------------------

    def create(self, compiled: CompiledProcess, data: Mapping[str, Any]) -> BpmnWorkflow:
        wf = BpmnWorkflow(
            compiled.spec, compiled.subprocess_specs, script_engine=self.script_engine
        )
        wf.task_tree.data.update(dict(data))
        for child in wf.task_tree.children:
            child.data.update(dict(data))
        return wf

    def restore(self, compiled: CompiledProcess, state: dict[str, Any]) -> BpmnWorkflow:
        serializer = _SERIALIZERS[compiled.flavour]
        _restoring.compiled = compiled
        try:
            wf: BpmnWorkflow = serializer.from_dict(dict(state))
        finally:
            _restoring.compiled = None
        wf.script_engine = self.script_engine
        return wf

    def dump(self, compiled: CompiledProcess, wf: BpmnWorkflow) -> dict[str, Any]:
        state: dict[str, Any] = _SERIALIZERS[compiled.flavour].to_dict(wf)
        return state

    # -- running -------------------------------------------------------------------------------

    def run(
        self,
        compiled: CompiledProcess,
        wf: BpmnWorkflow,
        action: Callable[[BpmnWorkflow], None] | None = None,
        *,
        services: ServiceCaller | None = None,
    ) -> Snapshot:
        """Apply `action` (complete a task, catch a message…), run engine steps, snapshot.

        A failure inside user code (script, condition, timer, service operation) leaves the
        task in ERROR and comes back as `Snapshot.error`; the state is still consistent and
        is stored, so an admin can retry it. Anything else propagates.
        """
        from workflow.engine.scripting import is_script_failure

        token = with_service_caller(services)
        error: EngineStepError | None = None
        try:
            steps = 0

            def count(task: Any) -> None:
                nonlocal steps
                steps += 1
                if steps > self.max_steps:
                    raise StepLimitExceeded(
                        f"more than {self.max_steps} engine steps in one run "
                        f"(a loop without a user task?) at {task.task_spec.bpmn_id}",
                        element_id=task.task_spec.bpmn_id,
                    )

            if action is not None:
                action(wf)
            wf.do_engine_steps(will_complete_task=count)
            wf.refresh_timers()
            wf.do_engine_steps(will_complete_task=count)
        except Exception as e:
            # User code failing (even when the sandbox saw an OSError underneath) is an
            # incident; a database or I/O failure elsewhere fails the transaction.
            script_failure = is_script_failure(e)
            if not script_failure and (_infrastructure_failure(e) or not _is_workflow_error(e)):
                raise
            failed = wf.get_tasks(state=TaskState.ERROR)
            element = failed[0].task_spec.bpmn_id if failed else getattr(e, "element_id", None)
            error = EngineStepError(
                element if isinstance(element, str) else None, _describe(e), is_script_failure(e)
            )
        finally:
            reset_service_caller(token)
        return self.snapshot(compiled, wf, error)

    def snapshot(
        self, compiled: CompiledProcess, wf: BpmnWorkflow, error: EngineStepError | None = None
    ) -> Snapshot:
        thrown = [
            ThrownMessage(e.event_definition.name, e.payload, dict(e.correlations))
            for e in wf.get_events()
            if isinstance(e.event_definition, MessageEventDefinition)
        ]
        human = [
            HumanTask(
                t.id,
                t.task_spec.bpmn_id or t.task_spec.name,
                t.task_spec.bpmn_name or t.task_spec.bpmn_id or t.task_spec.name,
                t.task_spec.lane,
                dict((getattr(t.task_spec, "extensions", None) or {}).get("properties", {})),
                dict(t.data),
            )
            for t in wf.get_tasks(state=TaskState.READY, manual=True)
        ]
        return Snapshot(
            state=self.dump(compiled, wf),
            # wf.completed is set only by an End task; a path may also end at an activity
            # without outgoing flows (a cancelled transaction, an error end).
            completed=bool(wf.completed or wf.is_completed()),
            human_tasks=human,
            next_timer_at=next_timer(wf),
            message_waits=message_waits(wf),
            thrown=thrown,
            active_elements=sorted(
                {
                    t.task_spec.bpmn_id
                    for t in wf.get_tasks(
                        state=TaskState.READY
                        | TaskState.WAITING
                        | TaskState.STARTED
                        | TaskState.ERROR
                    )
                    if t.task_spec.bpmn_id
                }
            ),
            completed_elements=sorted(
                {
                    t.task_spec.bpmn_id
                    for t in wf.get_tasks(state=TaskState.COMPLETED)
                    if t.task_spec.bpmn_id
                }
            ),
            error=error,
        )

    # -- actions -------------------------------------------------------------------------------

    @staticmethod
    def complete_task(
        task_id: uuid.UUID, data: Mapping[str, Any]
    ) -> Callable[[BpmnWorkflow], None]:
        def action(wf: BpmnWorkflow) -> None:
            task = wf.get_task_from_id(task_id)
            if task is None or task.state != TaskState.READY or not task.task_spec.manual:
                raise TaskNotReady(str(task_id))
            task.data.update(dict(data))
            task.run()

        return action

    @staticmethod
    def catch_message(
        name: str, payload: Any, correlations: Mapping[str, Any] | None = None
    ) -> Callable[[BpmnWorkflow], None]:
        """SpiffWorkflow matches an event by its definition's exact class (the spiff and camunda
        parsers have their own), so the event is built with the class of the waiting task's."""

        def action(wf: BpmnWorkflow) -> None:
            cls: type[MessageEventDefinition] = MessageEventDefinition
            for task in wf.event_manager.tasks.values():
                found = [
                    d
                    for d in event_definitions(task)
                    if isinstance(d, MessageEventDefinition) and d.name == name
                ]
                if found:
                    cls = type(found[0])
                    break
            else:
                for spec in [wf.spec, *wf.subprocess_specs.values()]:
                    for start in getattr(spec, "bpmn_start_events", []) or []:
                        d = getattr(start, "event_definition", None)
                        if isinstance(d, MessageEventDefinition) and d.name == name:
                            cls = type(d)
            wf.catch(BpmnEvent(cls(name), payload, dict(correlations or {})))

        return action

    @staticmethod
    def retry_failed() -> Callable[[BpmnWorkflow], None]:
        def action(wf: BpmnWorkflow) -> None:
            for task in wf.get_tasks(state=TaskState.ERROR):
                task.reset_branch(None)

        return action

    @staticmethod
    def refresh_timers() -> Callable[[BpmnWorkflow], None]:
        def action(wf: BpmnWorkflow) -> None:
            wf.refresh_timers()

        return action


class TaskNotReady(Exception):
    pass


class StepLimitExceeded(UnknownOperation):
    """A run that never reaches a wait state (an endless loop of automatic steps)."""

    def __init__(self, message: str, *, element_id: str | None) -> None:
        super().__init__(message)
        self.element_id = element_id


def _is_workflow_error(e: BaseException) -> bool:
    from SpiffWorkflow.exceptions import WorkflowException

    return isinstance(e, WorkflowException)


def _causes(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and all(cur is not s for s in seen):
        seen.append(cur)
        cur = getattr(cur, "exception", None) or cur.__cause__ or cur.__context__
    return seen


def _infrastructure_failure(e: BaseException) -> bool:
    """A database or I/O failure under a service operation is not the model's fault: it must
    fail the transaction (and be retried), not become an incident."""
    return any(
        type(c).__module__.startswith("sqlalchemy") or isinstance(c, OSError | MemoryError)
        for c in _causes(e)
    )


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text[:2000]


def next_timer(wf: BpmnWorkflow) -> datetime | None:
    """The earliest time a waiting timer can fire (a cycle's next tick, a date, a duration's end).

    An event-based gateway's timer has no due time until it is first evaluated; such a timer is
    polled a minute later rather than missed.
    """
    due: list[datetime] = []
    for task in list(wf.event_manager.tasks.values()):
        if not any(isinstance(d, TimerEventDefinition) for d in event_definitions(task)):
            continue
        if task.state not in (TaskState.WAITING, TaskState.READY) and not task.has_state(
            TaskState.WAITING
        ):
            continue
        value = task._get_internal_data("event_value")
        when: datetime | None = None
        if isinstance(value, dict) and "next" in value:
            when = datetime.fromisoformat(value["next"])
        elif isinstance(value, str):
            try:
                parsed = TimerEventDefinition.parse_time_or_duration(value)
                when = parsed if isinstance(parsed, datetime) else None
            except Exception:
                when = None
        if when is None:
            when = engine_now() + timedelta(minutes=1)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        due.append(datetime.fromtimestamp(when.timestamp(), UTC))
    return min(due) if due else None


def event_definitions(task: Any) -> list[Any]:
    """The event definitions a waiting task catches (an event-based gateway's or a multiple
    event's combined definition is opened up)."""
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [definition] if definition is not None else []


def message_waits(wf: BpmnWorkflow) -> list[MessageWait]:
    waits: dict[str, MessageWait] = {}
    for task in list(wf.event_manager.tasks.values()):
        if task.state != TaskState.WAITING and not task.has_state(TaskState.WAITING):
            continue
        for d in event_definitions(task):
            if isinstance(d, MessageEventDefinition) and d.name:
                waits.setdefault(d.name, MessageWait(d.name, dict(wf.correlations or {})))
    return list(waits.values())
