"""Process definitions (versioned BPMN), instances with their engine state, the human tasks
they wait on (the inbox), message subscriptions, incidents and substitutes during absence.

`process_tasks` is a projection of the engine state kept in step on every run, so the inbox is a
plain indexed query rather than a scan of serialized workflows.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from workflow.db import Base, new_id, utcnow


class InstanceStatus(enum.StrEnum):
    running = "running"
    incident = "incident"
    completed = "completed"
    cancelled = "cancelled"


class TaskStatus(enum.StrEnum):
    open = "open"
    completed = "completed"
    cancelled = "cancelled"


class ProcessDefinition(Base):
    """One deployed version of a BPMN file; never changed after deployment."""

    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(120), index=True)  # the main process id
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(300))
    bpmn_xml: Mapped[str] = mapped_column(Text)
    forms: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decisions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # DMN by file name
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20))  # "library" (bpmn/) or "upload"
    message_starts: Mapped[list[str]] = mapped_column(JSON, default=list)
    deployed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    deployed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessInstance(Base):
    __tablename__ = "process_instances"
    __table_args__ = (Index("ix_process_instances_timer", "status", "next_timer_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    definition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("process_definitions.id"))
    process_id: Mapped[str] = mapped_column(String(120))
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"), index=True)
    correlation_key: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), default=InstanceStatus.running)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    serializer_version: Mapped[str] = mapped_column(String(40))
    revision: Mapped[int] = mapped_column(default=1)
    next_timer_at: Mapped[datetime | None]
    active_elements: Mapped[list[str]] = mapped_column(JSON, default=list)
    completed_elements: Mapped[list[str]] = mapped_column(JSON, default=list)
    message_waits: Mapped[list[str]] = mapped_column(JSON, default=list)  # as subscribed
    started_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class ProcessTask(Base):
    """A human task: the engine's READY user/manual task, for a person or a role's pool."""

    __tablename__ = "process_tasks"
    __table_args__ = (
        Index("ix_process_tasks_pool", "unit_id", "role", "status"),
        Index("ix_process_tasks_assignee", "assignee_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the engine's task id
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("process_instances.id"), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"))
    element_id: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(300))
    lane: Mapped[str | None] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(30))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    form: Mapped[str | None] = mapped_column(String(200))
    instruction: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.open)
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class MessageSubscription(Base):
    """An instance waiting for a message, by name and correlation key."""

    __tablename__ = "process_message_subscriptions"
    __table_args__ = (
        Index("ix_process_message_subscriptions_name", "message_name", "correlation_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("process_instances.id"), index=True)
    message_name: Mapped[str] = mapped_column(String(200))
    correlation_key: Mapped[str | None] = mapped_column(String(200))


class Incident(Base):
    """A script, condition, timer or service operation that failed; an admin retries it."""

    __tablename__ = "process_incidents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("process_instances.id"), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    element_id: Mapped[str | None] = mapped_column(String(120))
    message: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class Substitution(Base):
    """While `user_id` is absent, `substitute_id` sees and may take their tasks in the unit."""

    __tablename__ = "substitutions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    substitute_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PendingMessage(Base):
    """A message that arrived while nobody waited for it (e.g. a reply during a reminder):
    kept, and handed over as soon as an instance starts waiting for its name and key."""

    __tablename__ = "process_pending_messages"
    __table_args__ = (Index("ix_process_pending_messages_name", "message_name", "correlation_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    message_name: Mapped[str] = mapped_column(String(200))
    correlation_key: Mapped[str | None] = mapped_column(String(200))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)  # the outbox payload as thrown
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
