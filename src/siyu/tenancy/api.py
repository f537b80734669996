"""REST API of the tenancy domain: who the key is, the corp's staff and org tree.

Every answer is limited to the API key's own corp; an id of another corp's record is simply not
found (404), never a hint that it exists."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session

from siyu.db import get_session
from siyu.tenancy import service
from siyu.tenancy.deps import api_principal, require_scope
from siyu.tenancy.models import Role, Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.schemas import CorpOut, DepartmentList, DepartmentOut, MeOut, StaffOut, StaffPage

router = APIRouter(prefix="/api/v1", tags=["tenancy"])

ERRORS = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    422: {"description": "a parameter is not valid (`errors[].field` names it)"},
}
ID = {"ge": 1, "le": service.MAX_ID}
read_org = require_scope("customers:read")


def _staff_out(staff: Staff) -> StaffOut:
    return StaffOut(id=staff.id, login=staff.login, name=staff.name, department_id=staff.department_id,
                    wecom_userid=staff.wecom_userid, roles=sorted(staff.role_names), is_active=staff.is_active,
                    sees_department=staff.sees_department, created_at=staff.created_at,
                    last_login_at=staff.last_login_at)


@router.get("/me", response_model=MeOut, responses=ERRORS)
def me(principal: Principal = Depends(api_principal), session: Session = Depends(get_session)) -> MeOut:
    """The calling key's corp and scopes."""
    corp = service.get_corp(session, corp_id=principal.corp_id)
    key = service.get_api_key(session, corp_id=principal.corp_id, api_key_id=principal.api_key_id)
    return MeOut(corp=CorpOut.model_validate(corp), api_key_id=key.id, api_key_prefix=key.prefix,
                 scopes=sorted(principal.scopes))


@router.get("/staff", response_model=StaffPage, responses=ERRORS)
def list_staff(
    role: Role | None = Query(None, description="only staff with this role"),
    is_active: bool | None = Query(None, description="only active (true) or inactive (false) staff"),
    after_id: int | None = Query(None, ge=0, le=service.MAX_ID, description="the previous page's `next_after_id`"),
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = Depends(read_org),
    session: Session = Depends(get_session),
) -> StaffPage:
    """The corp's staff, by id (scope `customers:read`)."""
    rows, next_after_id = service.page_staff(session, corp_id=principal.corp_id, role=role.value if role else None,
                                             is_active=is_active, after_id=after_id, limit=limit)
    return StaffPage(items=[_staff_out(s) for s in rows], next_after_id=next_after_id)


@router.get("/staff/{staff_id}", response_model=StaffOut, responses={**ERRORS, 404: {"description": "no such staff"}})
def get_staff(
    staff_id: int = Path(**ID),
    principal: Principal = Depends(read_org),
    session: Session = Depends(get_session),
) -> StaffOut:
    return _staff_out(service.get_staff(session, corp_id=principal.corp_id, staff_id=staff_id))


def _departments(session: Session, corp_id: int) -> list[DepartmentOut]:
    return [
        DepartmentOut(id=n.department.id, parent_id=n.department.parent_id, name=n.department.name,
                      wecom_department_id=n.department.wecom_department_id, path=n.path, depth=n.depth)
        for n in service.department_tree(session, corp_id=corp_id)
    ]


@router.get("/departments", response_model=DepartmentList, responses=ERRORS)
def list_departments(principal: Principal = Depends(read_org),
                     session: Session = Depends(get_session)) -> DepartmentList:
    """The corp's org tree in tree order, each parent before its children (scope `customers:read`)."""
    return DepartmentList(items=_departments(session, principal.corp_id))


@router.get("/departments/{department_id}", response_model=DepartmentOut,
            responses={**ERRORS, 404: {"description": "no such department"}})
def get_department(
    department_id: int = Path(**ID),
    principal: Principal = Depends(read_org),
    session: Session = Depends(get_session),
) -> DepartmentOut:
    dept = service.get_department(session, corp_id=principal.corp_id, department_id=department_id)
    return next(d for d in _departments(session, principal.corp_id) if d.id == dept.id)
