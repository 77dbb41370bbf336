"""Bringing a database to the current schema (Alembic) and loading the file plans shipped with
ezd. Used by `ezd db upgrade`, the embedded start and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from workflow.jrwa.loader import shipped_plans
from workflow.jrwa.service import load_plan
from workflow.principal import SYSTEM
from workflow.uow import UnitOfWork

MIGRATIONS = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_database(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


def load_shipped_plans(uow: UnitOfWork) -> list[str]:
    """Load every plan file in workflow/jrwa/data that is not loaded yet."""
    uow.actor = SYSTEM
    loaded = []
    for plan in shipped_plans():
        _, created = load_plan(uow, plan)
        if created:
            loaded.append(f"{plan.code} {plan.version}")
    return loaded
