"""Imports every model so that `Base.metadata` is complete (for Alembic and tests)."""

from workflow.archive.models import ArchiveEntry, ArchiveLoan, Disposal, DisposalItem
from workflow.audit.models import AuditChainHead, AuditEntry
from workflow.cases.models import Case
from workflow.db import Base
from workflow.documents.models import Blob, Document, DocumentVersion
from workflow.eservices.models import AccessThrottle, Submission, SubmissionEvent
from workflow.jrwa.models import JrwaClass, JrwaPlan
from workflow.org.models import AuthSession, Department, RoleAssignment, Unit, User
from workflow.outbox.models import OutboxEvent
from workflow.processes.models import (
    Incident,
    MessageSubscription,
    PendingMessage,
    ProcessDefinition,
    ProcessInstance,
    ProcessTask,
    Substitution,
)
from workflow.registry.models import IncomingItem, NumberCounter, OutgoingItem
from workflow.search.models import DocumentText
from workflow.signing.models import TrustAnchor, UnitSigningKey

__all__ = [
    "AccessThrottle",
    "ArchiveEntry",
    "ArchiveLoan",
    "AuditChainHead",
    "AuditEntry",
    "AuthSession",
    "Base",
    "Blob",
    "Case",
    "Department",
    "Disposal",
    "DisposalItem",
    "Document",
    "DocumentText",
    "DocumentVersion",
    "Incident",
    "IncomingItem",
    "JrwaClass",
    "JrwaPlan",
    "MessageSubscription",
    "NumberCounter",
    "OutboxEvent",
    "OutgoingItem",
    "PendingMessage",
    "ProcessDefinition",
    "ProcessInstance",
    "ProcessTask",
    "RoleAssignment",
    "Submission",
    "SubmissionEvent",
    "Substitution",
    "TrustAnchor",
    "Unit",
    "UnitSigningKey",
    "User",
]
