"""SQL for process definitions, instances, human tasks, subscriptions, incidents, substitutes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session

from workflow.processes.models import (
    Incident,
    InstanceStatus,
    MessageSubscription,
    PendingMessage,
    ProcessDefinition,
    ProcessInstance,
    ProcessTask,
    Substitution,
    TaskStatus,
)


class ProcessRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        obj: ProcessDefinition
        | ProcessInstance
        | ProcessTask
        | MessageSubscription
        | Incident
        | Substitution
        | PendingMessage,
    ) -> None:
        self.session.add(obj)

    # -- definitions ---------------------------------------------------------------------------

    def latest_definition(self, key: str) -> ProcessDefinition | None:
        return self.session.execute(
            select(ProcessDefinition)
            .where(ProcessDefinition.key == key)
            .order_by(ProcessDefinition.version.desc())
            .limit(1)
        ).scalar_one_or_none()

    def definition(self, definition_id: uuid.UUID) -> ProcessDefinition | None:
        return self.session.get(ProcessDefinition, definition_id)

    def definition_version(self, key: str, version: int) -> ProcessDefinition | None:
        return self.session.execute(
            select(ProcessDefinition).where(
                ProcessDefinition.key == key, ProcessDefinition.version == version
            )
        ).scalar_one_or_none()

    def definitions(self) -> Sequence[ProcessDefinition]:
        return (
            self.session.execute(
                select(ProcessDefinition).order_by(
                    ProcessDefinition.key, ProcessDefinition.version.desc()
                )
            )
            .scalars()
            .all()
        )

    def lock_definition_key(self, key: str) -> None:
        """Serialise deployments of one key (row lock on its newest version on PostgreSQL)."""
        self.session.execute(
            select(ProcessDefinition.id).where(ProcessDefinition.key == key).with_for_update()
        )

    def definitions_started_by_message(self, message: str) -> Sequence[ProcessDefinition]:
        latest = (
            select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
            .group_by(ProcessDefinition.key)
            .subquery()
        )
        rows = (
            self.session.execute(
                select(ProcessDefinition).join(
                    latest,
                    (ProcessDefinition.key == latest.c.key)
                    & (ProcessDefinition.version == latest.c.v),
                )
            )
            .scalars()
            .all()
        )
        return [d for d in rows if message in (d.message_starts or [])]

    # -- instances -----------------------------------------------------------------------------

    def instance(self, instance_id: uuid.UUID, *, lock: bool = False) -> ProcessInstance | None:
        """With `lock`, the row stays locked until commit: one run of an instance at a time
        (PostgreSQL row lock; SQLite serialises writers anyway)."""
        if not lock:
            return self.session.get(ProcessInstance, instance_id)  # the identity map first
        q = select(ProcessInstance).where(ProcessInstance.id == instance_id).with_for_update()
        return self.session.execute(q).scalar_one_or_none()

    def process_ids(self, instance_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Process keys of many instances without loading their engine state."""
        if not instance_ids:
            return {}
        rows = self.session.execute(
            select(ProcessInstance.id, ProcessInstance.process_id).where(
                ProcessInstance.id.in_(set(instance_ids))
            )
        )
        return {i: p for i, p in rows.all()}

    def instances_for_case(self, case_id: uuid.UUID) -> Sequence[ProcessInstance]:
        return (
            self.session.execute(
                select(ProcessInstance)
                .where(ProcessInstance.case_id == case_id)
                .order_by(ProcessInstance.started_at)
            )
            .scalars()
            .all()
        )

    def due_timer_instances(self, now: datetime, limit: int) -> Sequence[uuid.UUID]:
        return (
            self.session.execute(
                select(ProcessInstance.id)
                .where(
                    ProcessInstance.status == InstanceStatus.running,
                    ProcessInstance.next_timer_at <= now,
                )
                .order_by(ProcessInstance.next_timer_at)
                .limit(limit)
            )
            .scalars()
            .all()
        )

    def next_timer_at(self) -> datetime | None:
        return self.session.execute(
            select(func.min(ProcessInstance.next_timer_at)).where(
                ProcessInstance.status == InstanceStatus.running
            )
        ).scalar_one_or_none()

    # -- human tasks ---------------------------------------------------------------------------

    def task(self, task_id: uuid.UUID, *, lock: bool = False) -> ProcessTask | None:
        q = select(ProcessTask).where(ProcessTask.id == task_id)
        if lock:
            q = q.with_for_update()
        return self.session.execute(q).scalar_one_or_none()

    def open_tasks_of_case(
        self, case_id: uuid.UUID, except_instance: uuid.UUID | None = None
    ) -> Sequence[ProcessTask]:
        q = select(ProcessTask).where(
            ProcessTask.case_id == case_id, ProcessTask.status == TaskStatus.open
        )
        if except_instance is not None:
            q = q.where(ProcessTask.instance_id != except_instance)
        return self.session.execute(q).scalars().all()

    def open_tasks_of_instance(self, instance_id: uuid.UUID) -> Sequence[ProcessTask]:
        return (
            self.session.execute(
                select(ProcessTask).where(
                    ProcessTask.instance_id == instance_id, ProcessTask.status == TaskStatus.open
                )
            )
            .scalars()
            .all()
        )

    def tasks_of_instance(self, instance_id: uuid.UUID) -> Sequence[ProcessTask]:
        return (
            self.session.execute(
                select(ProcessTask)
                .where(ProcessTask.instance_id == instance_id)
                .order_by(ProcessTask.created_at)
            )
            .scalars()
            .all()
        )

    def inbox(
        self,
        *,
        user_ids: Sequence[uuid.UUID],
        pools: Sequence[tuple[uuid.UUID, str]],
        stand_ins: Sequence[tuple[uuid.UUID, uuid.UUID]] = (),
        status: str,
        unit_id: uuid.UUID | None,
        due_before: datetime | None,
        case_id: uuid.UUID | None,
        mine_only: bool,
        limit: int,
        offset: int,
    ) -> Sequence[ProcessTask]:
        """Tasks assigned to any of `user_ids`, to a substituted (user, unit) in that unit, plus
        unassigned tasks in the (unit, role) pools."""
        who: list[ColumnElement[bool]] = [ProcessTask.assignee_id.in_(user_ids)] if user_ids else []
        who += [
            (ProcessTask.assignee_id == user) & (ProcessTask.unit_id == unit)
            for user, unit in stand_ins
        ]
        if not mine_only:
            who += [
                (ProcessTask.unit_id == u)
                & (ProcessTask.role == r)
                & ProcessTask.assignee_id.is_(None)
                for u, r in pools
            ]
        if not who:
            return []
        q = select(ProcessTask).where(ProcessTask.status == status, or_(*who))
        if unit_id is not None:
            q = q.where(ProcessTask.unit_id == unit_id)
        if due_before is not None:
            q = q.where(ProcessTask.due_at <= due_before)
        if case_id is not None:
            q = q.where(ProcessTask.case_id == case_id)
        q = q.order_by(ProcessTask.due_at.is_(None), ProcessTask.due_at, ProcessTask.created_at)
        return self.session.execute(q.limit(limit).offset(offset)).scalars().all()

    # -- messages ------------------------------------------------------------------------------

    def replace_subscriptions(
        self, instance_id: uuid.UUID, waits: Sequence[tuple[str, str | None]]
    ) -> None:
        self.session.execute(
            delete(MessageSubscription).where(MessageSubscription.instance_id == instance_id)
        )
        for name, key in waits:
            self.session.add(
                MessageSubscription(instance_id=instance_id, message_name=name, correlation_key=key)
            )

    def subscribers(self, message_name: str, correlation_key: str | None) -> Sequence[uuid.UUID]:
        q = select(MessageSubscription.instance_id).where(
            MessageSubscription.message_name == message_name
        )
        if correlation_key is not None:
            q = q.where(
                or_(
                    MessageSubscription.correlation_key == correlation_key,
                    MessageSubscription.correlation_key.is_(None),
                )
            )
        return self.session.execute(q.distinct()).scalars().all()

    def pending_messages(
        self, names: Sequence[str], correlation_key: str | None
    ) -> Sequence[PendingMessage]:
        return (
            self.session.execute(
                select(PendingMessage)
                .where(
                    PendingMessage.message_name.in_(names),
                    PendingMessage.correlation_key == correlation_key,
                    PendingMessage.delivered_at.is_(None),
                )
                .order_by(PendingMessage.received_at)
            )
            .scalars()
            .all()
        )

    def pending_message(self, message_id: uuid.UUID) -> PendingMessage | None:
        q = select(PendingMessage).where(PendingMessage.id == message_id).with_for_update()
        return self.session.execute(q).scalar_one_or_none()

    # -- incidents -----------------------------------------------------------------------------

    def open_incidents(self, unit_ids: Sequence[uuid.UUID] | None) -> Sequence[Incident]:
        q = select(Incident).where(Incident.resolved_at.is_(None))
        if unit_ids is not None:
            q = q.where(Incident.unit_id.in_(unit_ids))
        return self.session.execute(q.order_by(Incident.created_at)).scalars().all()

    def incident(self, incident_id: uuid.UUID) -> Incident | None:
        return self.session.get(Incident, incident_id)

    def resolve_incidents(self, instance_id: uuid.UUID, by: uuid.UUID | None, at: datetime) -> None:
        self.session.execute(
            update(Incident)
            .where(Incident.instance_id == instance_id, Incident.resolved_at.is_(None))
            .values(resolved_at=at, resolved_by=by)
        )

    # -- substitutions -------------------------------------------------------------------------

    def substituted_users(
        self, substitute_id: uuid.UUID, on: date
    ) -> Sequence[tuple[uuid.UUID, uuid.UUID]]:
        """(user, unit) of each substitution `substitute_id` holds on the day."""
        rows = self.session.execute(
            select(Substitution.user_id, Substitution.unit_id).where(
                Substitution.substitute_id == substitute_id,
                Substitution.starts_on <= on,
                Substitution.ends_on >= on,
            )
        ).all()
        return [(user, unit) for user, unit in rows]

    def substitutions(self, unit_id: uuid.UUID) -> Sequence[Substitution]:
        return (
            self.session.execute(
                select(Substitution)
                .where(Substitution.unit_id == unit_id)
                .order_by(Substitution.starts_on)
            )
            .scalars()
            .all()
        )
