"""Units, departments, users and role assignments (admins change them; staff read units)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.deps import Actor, UoW
from api.errors import STAFF_ERRORS, error_responses
from api.schemas import DepartmentOut, UnitOut, UserOut
from workflow.org import service
from workflow.org.models import Role, UnitKind
from workflow.org.repository import OrgRepository
from workflow.text import Code, Line, ShortLine

router = APIRouter(
    prefix="/api/v1", tags=["organisation"], responses=error_responses(*STAFF_ERRORS)
)


class UnitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Code
    name: Line
    kind: UnitKind
    jrwa_plan: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    address: Line | None = None


class DepartmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Code
    name: Line


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=r"^[a-z0-9._-]{2,80}$")
    full_name: ShortLine
    password: str = Field(min_length=8, max_length=200)
    email: EmailStr | None = None


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: Code
    role: Role
    department: Code | None = None


def _unit_out(u: object) -> UnitOut:
    return UnitOut.model_validate(u, from_attributes=True)


@router.get("/units", response_model=list[UnitOut], summary="All units (schools, office, …)")
def list_units(uow: UoW, actor: Actor) -> list[UnitOut]:
    return [_unit_out(u) for u in OrgRepository(uow.session).units()]


@router.post("/units", response_model=UnitOut, status_code=201, summary="Create a unit (admin)")
def create_unit(body: UnitIn, uow: UoW, actor: Actor) -> UnitOut:
    return _unit_out(
        service.create_unit(
            uow,
            code=body.code,
            name=body.name,
            kind=body.kind,
            jrwa_plan=body.jrwa_plan,
            address=body.address,
        )
    )


@router.get("/units/{code}/departments", response_model=list[DepartmentOut])
def list_departments(code: str, uow: UoW, actor: Actor) -> list[DepartmentOut]:
    repo = OrgRepository(uow.session)
    unit = service.get_unit(repo, code)
    return [DepartmentOut(code=d.code, name=d.name) for d in repo.departments(unit.id)]


@router.post("/units/{code}/departments", response_model=DepartmentOut, status_code=201)
def create_department(code: str, body: DepartmentIn, uow: UoW, actor: Actor) -> DepartmentOut:
    d = service.create_department(uow, code, code=body.code, name=body.name)
    return DepartmentOut(code=d.code, name=d.name)


@router.get("/users", response_model=list[UserOut], summary="Users (admin)")
def list_users(uow: UoW, actor: Actor) -> list[UserOut]:
    return [UserOut.model_validate(u, from_attributes=True) for u in service.list_users(uow)]


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a user (admin)")
def create_user(body: UserIn, uow: UoW, actor: Actor) -> UserOut:
    u = service.create_user(
        uow,
        username=body.username,
        full_name=body.full_name,
        password=body.password,
        email=body.email,
    )
    return UserOut.model_validate(u, from_attributes=True)


@router.post("/users/{username}/roles", status_code=204, summary="Grant a role in a unit (admin)")
def grant_role(username: str, body: RoleIn, uow: UoW, actor: Actor) -> None:
    service.grant_role(uow, username, body.unit, body.role, body.department)
