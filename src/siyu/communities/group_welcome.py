"""Welcome into a set's groups: the group welcome (入群欢迎语), the group's rules (群规) and its
announcement (群公告), each a text of the set reviewed by compliance (content gate, kind
"group_welcome"; owner types registered in `siyu.communities.content`).

- The group welcome goes to WeCom's library (`group_welcome_template/add`, then `edit` when a new
  version is approved, `notify` on so the owners apply it to their groups in the app); WeCom greets
  each new member with it. Only an approved version is ever pushed (`push_welcome`, a job).
- The rules are posted in each group when it is created or joins the set: a group mass message
  (`add_msg_template`, chat_type group, the owner as sender, that one group), which the owner
  confirms in the app; once per group (effect key `group_rules:{group}`).
- The announcement has no API: the owner gets a task with the approved text to post; the task is
  done when the owner marks it or when the group's notice shows the text (the sync reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.communities.joinway_models import GroupOwnerTask, GroupSetJoining
from siyu.communities.models import GroupChat
from siyu.db import utcnow
from siyu.errors import InvalidInput, NotFound
from siyu.jobs.service import enqueue
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id

KIND = "group_welcome"
WELCOME, RULES, ANNOUNCEMENT = "group_set_welcome", "group_set_rules", "group_set_announcement"
OWNERS = (WELCOME, RULES, ANNOUNCEMENT)
FIELDS = {WELCOME: "welcome_text", RULES: "rules_text", ANNOUNCEMENT: "announcement_text"}
TITLES = {WELCOME: "入群欢迎语", RULES: "群规", ANNOUNCEMENT: "群公告"}
TEXT_MAX = {WELCOME: 1000, RULES: 2000, ANNOUNCEMENT: 1000}  # WeCom: a group welcome ≤3000 bytes
PUSH_JOB = "communities.group_welcome_push"
NEW_GROUP_JOB = "communities.group_joined_set"
RULES_ENDPOINT = "add_msg_template"
# Who may write a set's texts, and how a set is found in the caller's corp: as for its join ways.
from siyu.communities.joinways import WRITERS, _require_writer, _set  # noqa: E402,F401


@dataclass(frozen=True)
class TextState:
    owner: str
    field: str
    latest: str  # what the maker saved last
    in_force: str | None  # the approved version that goes out
    pending: bool  # the latest waits for a checker


def texts(session: Session, *, corp_id: int, set_id: int) -> dict[str, TextState]:
    """The set's three texts: the latest saved and the approved version in force of each."""
    from siyu.compliance.service import OwnerRef, content_states

    states = content_states(session, corp_id=corp_id, kind=KIND, owners=[OwnerRef(o, set_id) for o in OWNERS])
    out = {}
    for owner in OWNERS:
        st = states.get(OwnerRef(owner, set_id))
        out[owner] = TextState(owner=owner, field=FIELDS[owner], latest=st.latest_text if st else "",
                               in_force=st.in_force_text if st else None, pending=bool(st and st.pending))
    return out


def save_texts(session: Session, *, principal: Principal, set_id: int, welcome_text: str | None = None,
               rules_text: str | None = None, announcement_text: str | None = None,
               ip: str | None = None) -> dict[str, TextState]:
    """Save the set's texts: each changed one is a new version submitted to compliance (a text the
    wording review blocks is refused, naming its field; nothing is saved then). The version in force
    keeps going out until a checker approves the new one. Administrators and operations; audited."""
    from siyu.compliance.service import submit_content

    _require_writer(principal)
    group_set = _set(session, corp_id=principal.corp_id, set_id=set_id)
    given = {WELCOME: welcome_text, RULES: rules_text, ANNOUNCEMENT: announcement_text}
    current = texts(session, corp_id=principal.corp_id, set_id=group_set.id)
    changed = []
    for owner, value in given.items():
        if value is None:
            continue
        value = value.strip()
        if len(value) > TEXT_MAX[owner] or any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise InvalidInput("at most %(n)s characters, without control characters", field=FIELDS[owner],
                               params={"n": TEXT_MAX[owner]})
        if value == current[owner].latest or (not value and not current[owner].latest):
            continue
        if not value:
            raise InvalidInput("a saved text cannot be emptied; write the new text", field=FIELDS[owner])
        with session.begin_nested():
            submit_content(session, corp_id=principal.corp_id, actor=principal, kind=KIND,
                           owner=(owner, group_set.id), body=value, field=FIELDS[owner],
                           title=f"{group_set.name} · {TITLES[owner]}")
        changed.append(owner)
    if changed:
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_set.welcome_saved",
                     target_type="group_set", target_id=group_set.id, detail={"texts": changed}, ip=ip)
        schedule_push(session, corp_id=principal.corp_id, set_id=group_set.id)
    return texts(session, corp_id=principal.corp_id, set_id=group_set.id)


def schedule_push(session: Session, *, corp_id: int, set_id: int) -> None:
    """Queue the push of the set's approved group welcome to WeCom (a no-op when it is there)."""
    stamp = utcnow().strftime("%Y%m%d%H%M%S%f")
    enqueue(session, name=PUSH_JOB, payload={"group_set_id": set_id}, corp_id=corp_id, queue="wecom",
            idempotency_key=f"{PUSH_JOB}:{set_id}:{stamp}")


def welcome_to_push(session: Session, *, corp_id: int, set_id: int) -> tuple[str, int, str | None] | None:
    """(approved text, its version, the template id WeCom has) when WeCom's template is not the
    approved version in force; None when there is nothing to push."""
    from siyu.compliance.service import content_for_send

    sendable = content_for_send(session, corp_id=corp_id, kind=KIND, owner=(WELCOME, set_id))
    if sendable.held or not sendable.text:
        return None
    row = session.scalar(select(GroupSetJoining).where(GroupSetJoining.group_set_id == set_id))
    if row is not None and row.welcome_template_id and row.welcome_version == sendable.version:
        return None
    return sendable.text, sendable.version, row.welcome_template_id if row else None


def sets_to_push(session: Session) -> list[tuple[int, int]]:
    """(corp, set) pairs whose approved group welcome is not the version pushed to WeCom."""
    from siyu.compliance.models import ContentItem

    rows = session.execute(select(ContentItem.corp_id, ContentItem.owner_id, ContentItem.approved_version,
                                  GroupSetJoining.welcome_version)
                           .outerjoin(GroupSetJoining, GroupSetJoining.group_set_id == ContentItem.owner_id)
                           .where(ContentItem.kind == KIND, ContentItem.owner_type == WELCOME,
                                  ContentItem.approved_version.is_not(None)))
    return [(r.corp_id, r.owner_id) for r in rows if r.approved_version != r.welcome_version]


def record_push(session: Session, *, corp_id: int, set_id: int, template_id: str, version: int) -> None:
    from siyu.communities.joinways import settings

    row = settings(session, corp_id=corp_id, set_id=set_id)
    row.welcome_template_id, row.welcome_version = template_id, version
    audit.record(session, corp_id=corp_id, actor="system", action="group_set.welcome_pushed",
                 target_type="group_set", target_id=set_id, detail={"version": version})


# --- a group comes into a set ------------------------------------------------------------------------------


def groups_joined_set(session: Session, *, corp_id: int, set_id: int, group_ids: list[int]) -> None:
    """Groups that came into the set (created for it, or put in it): each gets the set's rules posted
    and the announcement task, once (`NEW_GROUP_JOB`)."""
    for group_id in group_ids:
        enqueue(session, name=NEW_GROUP_JOB, payload={"group_id": group_id, "group_set_id": set_id},
                corp_id=corp_id, queue="wecom", idempotency_key=f"{NEW_GROUP_JOB}:{group_id}:{set_id}")


def rules_effect_key(group_id: int, set_id: int) -> str:
    return f"group_rules:{group_id}:{set_id}"


def open_announcement_task(session: Session, *, corp_id: int, group: GroupChat, set_id: int) -> GroupOwnerTask | None:
    """The owner's task to post the set's approved announcement (once per group); None without one."""
    from siyu.compliance.service import content_for_send

    sendable = content_for_send(session, corp_id=corp_id, kind=KIND, owner=(ANNOUNCEMENT, set_id))
    if sendable.held or not sendable.text:
        return None
    task = session.scalar(select(GroupOwnerTask).where(GroupOwnerTask.group_id == group.id,
                                                       GroupOwnerTask.kind == "announcement"))
    if task is None:
        task = GroupOwnerTask(corp_id=corp_id, group_id=group.id, kind="announcement",
                              owner_userid=group.owner_userid, text=sendable.text, version=sendable.version)
        session.add(task)
        session.flush()
    if group.notice and group.notice.strip() == sendable.text.strip() and task.done_at is None:
        task.done_at = utcnow()  # the owner posted it already
    return task


def _userid(session: Session, principal: Principal) -> str:
    from siyu.tenancy.models import Staff

    staff = session.get(Staff, principal.staff_id) if principal.staff_id else None
    return (staff.wecom_userid if staff else None) or ""


@dataclass
class TaskRow:
    id: int
    group_id: int
    group_name: str
    kind: str
    text: str
    created_at: object
    done_at: object


def list_tasks(session: Session, *, principal: Principal, open_only: bool = True, set_id: int | None = None
               ) -> list[TaskRow]:
    """Owner tasks: an advisor sees their own; operations and administrators see the corp's."""
    query = select(GroupOwnerTask, GroupChat).join(GroupChat, GroupChat.id == GroupOwnerTask.group_id).where(
        GroupOwnerTask.corp_id == principal.corp_id)
    if principal.kind == "staff" and not principal.has_role(*WRITERS):
        query = query.where(GroupOwnerTask.owner_userid == _userid(session, principal))
    if open_only:
        query = query.where(GroupOwnerTask.done_at.is_(None))
    if set_id is not None:
        query = query.where(GroupChat.group_set_id == set_id)
    rows = session.execute(query.order_by(GroupOwnerTask.id.desc()).limit(200))
    return [TaskRow(id=t.id, group_id=g.id, group_name=g.name, kind=t.kind, text=t.text, created_at=t.created_at,
                    done_at=t.done_at) for t, g in rows]


def complete_task(session: Session, *, principal: Principal, task_id: int, ip: str | None = None) -> GroupOwnerTask:
    """The owner (or operations) marks the announcement posted."""
    task = session.get(GroupOwnerTask, task_id) if valid_id(task_id) else None
    if task is None or task.corp_id != principal.corp_id:
        raise NotFound("task not found", field="task_id")
    mine = _userid(session, principal) == task.owner_userid
    if principal.kind == "staff" and not mine and not principal.has_role(*WRITERS):
        raise NotFound("task not found", field="task_id")
    if task.done_at is None:
        task.done_at = utcnow()
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_task.done",
                     target_type="group_owner_task", target_id=task.id, detail={"kind": task.kind}, ip=ip)
    return task
