"""`siyu demo`: Siyu on one machine with nothing else installed.

Migrates the embedded SQLite database under the data directory (`./var`), seeds a demo corp
(idempotently: a second run finds it and seeds nothing), then runs `siyu serve`, `siyu worker` and,
when installed, the WeCom emulator as child processes until Ctrl-C or SIGTERM.

`python -m siyu.demo seed` only migrates and seeds, and prints what it made as JSON (the browser
tests use it)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from siyu.config import get_settings

DEMO_SLUG = "demo"
DEMO_CORP_NAME = "Siyu 示范银行（演示）"
# One password for every demo login; it is printed on start and written in the README.
DEMO_PASSWORD = "siyu-demo-2026"
API_KEY_FILE = "demo-api-key"
# The demo corp as the WeCom emulator knows it (a real corp's id starts with "ww" too).
DEMO_WECOM_CORP_ID = "wwsiyudemo0000001"
DEMO_WECOM_SECRET = "siyu-demo-customer-contact-secret"
DEMO_CUSTOMERS = ("周先生", "吴女士", "郑先生", "冯女士", "陈先生", "褚女士")

# (login, name, roles, department, WeCom user id, sees its department's customers)
DEMO_STAFF: tuple[tuple[str, str, tuple[str, ...], str | None, str | None, bool], ...] = (
    ("demo.admin", "王敏", ("administrator",), None, "wangmin", False),
    ("demo.ops", "李娜", ("operations",), "财富管理部", "lina", False),
    ("demo.advisor1", "张伟", ("advisor",), "零售一部", "zhangwei", False),
    ("demo.advisor2", "刘洋", ("advisor",), "零售一部", "liuyang", False),
    ("demo.advisor3", "陈静", ("advisor",), "零售二部", "chenjing", True),
    ("demo.compliance", "赵磊", ("compliance",), "合规与风控部", "zhaolei", False),
    ("demo.auditor", "孙丽", ("auditor",), "合规与风控部", "sunli", False),
)
# (name, parent name or None for the corp's root department)
DEMO_DEPARTMENTS: tuple[tuple[str, str | None], ...] = (
    ("财富管理部", None),
    ("零售一部", "财富管理部"),
    ("零售二部", "财富管理部"),
    ("合规与风控部", None),
)


@dataclasses.dataclass
class DemoInfo:
    database_url: str
    corp_id: int
    corp_slug: str
    corp_name: str
    password: str
    logins: list[dict]
    api_key: str | None
    created: bool
    jobs: list[str] = dataclasses.field(default_factory=list)


# --- seeding --------------------------------------------------------------------------------------


def seed_demo(session: Session, *, data_dir: Path) -> DemoInfo:
    """Create the demo corp with its org tree, staff of every role, an API key, a few jobs and some
    audit entries from logins. Safe to call again: an existing demo corp is left as it is."""
    from siyu.tenancy import service
    from siyu.tenancy.models import Corp, Staff

    corp = session.scalar(select(Corp).where(Corp.slug == DEMO_SLUG))
    created = corp is None
    jobs: list[str] = []
    if corp is None:
        corp = service.create_corp(session, slug=DEMO_SLUG, name=DEMO_CORP_NAME, wecom_corp_id=DEMO_WECOM_CORP_ID)
        departments: dict[str, int] = {}
        for name, parent in DEMO_DEPARTMENTS:
            dept = service.create_department(
                session, corp_id=corp.id, name=name, parent_id=departments[parent] if parent else None
            )
            departments[name] = dept.id
        for login, name, roles, dept_name, wecom_userid, sees_department in DEMO_STAFF:
            service.create_staff(
                session,
                corp_id=corp.id,
                login=login,
                name=name,
                roles=roles,
                password=DEMO_PASSWORD,
                department_id=departments[dept_name] if dept_name else None,
                wecom_userid=wecom_userid,
                sees_department=sees_department,
            )
        _seed_logins(session)
        jobs = _seed_jobs(session, corp_id=corp.id)
    _seed_customers(session, corp_id=corp.id)
    _seed_gated_community(session, corp_id=corp.id)
    _seed_quality(session, corp_id=corp.id)
    _seed_communities(session, corp_id=corp.id)
    _seed_sop(session, corp_id=corp.id)
    _seed_group_activity(session, corp_id=corp.id)
    _seed_channel_codes(session, corp_id=corp.id)
    _seed_analytics(session, corp_id=corp.id)
    _seed_broadcast(session, corp_id=corp.id)

    logins = []
    staff_by_login = {s.login: s for s in session.scalars(select(Staff).where(Staff.corp_id == corp.id))}
    dept_names = {d.id: d.name for d in service.list_departments(session, corp_id=corp.id)}
    for login, *_rest in DEMO_STAFF:
        staff = staff_by_login.get(login)
        if staff is not None:
            logins.append(
                {
                    "corp": corp.slug,
                    "login": login,
                    "name": staff.name,
                    "roles": sorted(staff.role_names),
                    "department": dept_names.get(staff.department_id, ""),
                }
            )
    return DemoInfo(
        database_url="",
        corp_id=corp.id,
        corp_slug=corp.slug,
        corp_name=corp.name,
        password=DEMO_PASSWORD,
        logins=logins,
        api_key=_demo_api_key(session, corp_id=corp.id, data_dir=data_dir),
        created=created,
        jobs=jobs,
    )


def _seed_logins(session: Session) -> None:
    """A mistyped password and a few logins, so the audit log has something to show."""
    from siyu.tenancy import service

    with contextlib.suppress(service.LoginFailed):
        service.authenticate(session, corp=DEMO_SLUG, login="demo.advisor1", password="not-the-password",
                             ip="127.0.0.1")
    for login in ("demo.advisor1", "demo.ops", "demo.admin"):
        service.authenticate(session, corp=DEMO_SLUG, login=login, password=DEMO_PASSWORD, ip="127.0.0.1")


def _demo_api_key(session: Session, *, corp_id: int, data_dir: Path) -> str:
    """The key is shown once when created, so the demo keeps it in the data directory."""
    from siyu.tenancy import service

    path = data_dir / API_KEY_FILE
    if path.exists():
        token = path.read_text().strip()
        principal = service.resolve_api_key(session, token=token)
        if principal is not None and principal.corp_id == corp_id:
            return token
    token, _key = service.create_api_key(
        session, corp_id=corp_id, name="演示集成 Demo integration", scopes=["*"], actor="system"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


# Jobs the demo puts in the queue: (name, payload, hours from now, max attempts). `jobs.noop` is
# handled in every installation, so the worker finishes those due now; the one for tomorrow stays
# queued; the last has no handler and one attempt, so it ends as a dead letter.
DEMO_JOBS: tuple[tuple[str, dict, float, int | None], ...] = (
    ("jobs.noop", {"message": "欢迎使用思域"}, 0, None),
    ("jobs.noop", {"message": "第二个任务"}, 0, None),
    ("jobs.noop", {"message": "第三个任务"}, 0, None),
    ("jobs.noop", {"message": "明天运行"}, 24, None),
    ("demo.no_such_handler", {"message": "没有处理程序：成为死信"}, 0, 1),
)


def _seed_jobs(session: Session, *, corp_id: int) -> list[str]:
    """A few jobs through the queue's own `enqueue`, when the jobs domain is installed."""
    try:
        from siyu.jobs.service import enqueue
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("siyu.jobs"):
            return []
        raise
    now = dt.datetime.now(dt.UTC)
    for i, (name, payload, hours, max_attempts) in enumerate(DEMO_JOBS):
        enqueue(
            session,
            name=name,
            payload=payload,
            run_at=now + dt.timedelta(hours=hours),
            max_attempts=max_attempts,
            corp_id=corp_id,
            idempotency_key=f"demo:seed:{corp_id}:{i}",
        )
    return [name for name, *_rest in DEMO_JOBS]


# Customers the demo shows before any WeCom event arrives: (external_userid, name, gender, advisor's
# WeCom user id, channel state, days ago, stage, tags as (group, tag), advisor's note).
DEMO_CUSTOMER_BOOK: tuple[tuple[str, str, int, str, str | None, int, str, tuple[tuple[str, str], ...], str], ...] = (
    ("wmdemo0001zhou", "周建国", 1, "zhangwei", "branch-xuhui-lobby", 41, "reinvested",
     (("风险等级", "C4"), ("意向", "基金")), "到期资金已复投稳健混合基金，关注养老规划。"),
    ("wmdemo0002wu", "吴晓梅", 2, "zhangwei", "ad-douyin-spring", 26, "invested",
     (("风险等级", "C3"), ("意向", "理财")), "首投 5 万元现金管理类理财。"),
    ("wmdemo0003zheng", "郑凯", 1, "liuyang", "sms-reinvest-2026", 19, "activated",
     (("意向", "基金"),), "已完成新手课程第 3 天。"),
    ("wmdemo0004feng", "冯丽", 2, "liuyang", "ad-douyin-spring", 12, "new", (("意向", "存款"),), ""),
    ("wmdemo0005chen", "陈志远", 1, "chenjing", "branch-pudong-event", 9, "activated",
     (("风险等级", "C2"),), "参加了周五理财沙龙，想了解定投。"),
    ("wmdemo0006chu", "褚婷", 2, "chenjing", "mp-menu-benefits", 6, "new", (), ""),
    ("wmdemo0007wei", "卫东", 1, "zhangwei", "branch-xuhui-lobby", 4, "dormant", (("风险等级", "C3"),),
     "三个月未回复消息。"),
    ("wmdemo0008jiang", "蒋雨", 2, "liuyang", "ad-douyin-spring", 2, "new", (("意向", "理财"),), ""),
    ("wmdemo0009shen", "沈浩", 1, "chenjing", "sms-reinvest-2026", 1, "new", (), ""),
    ("wmdemo0010han", "韩雪", 2, "zhangwei", "mp-menu-benefits", 0, "new", (("意向", "基金"),), ""),
)


def _seed_customers(session: Session, *, corp_id: int) -> int:
    """A handful of customers with follows, channels, tags, stages, notes and a risk level, as the
    customers domain records them from WeCom (when it is installed). Customers already there are
    left as they are, so a second run adds nothing."""
    try:
        from siyu.customers import contacts
        from siyu.customers.models import CustomerNote
        from siyu.wecom.schemas import ExternalContactDetail
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("siyu.customers"):
            return 0
        raise
    from siyu.tenancy import service

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    tag_ids: dict[tuple[str, str], str] = {}
    made = 0
    for i, (ext, name, gender, userid, state, days, stage, tags, note) in enumerate(DEMO_CUSTOMER_BOOK):
        if contacts.get_by_external_id(session, corp_id=corp_id, external_userid=ext) is not None:
            continue
        at = now - dt.timedelta(days=days, hours=i)
        contacts.record_add(session, corp_id=corp_id, external_userid=ext, wecom_userid=userid, at=at, state=state,
                            source_key=f"demo:{ext}:added")
        follow = {"userid": userid, "remark": f"{name[0]}{'先生' if gender == 1 else '女士'}",
                  "createtime": int(at.timestamp()), "state": state, "add_way": 1,
                  "tags": [{"tag_id": tag_ids.setdefault(t, f"demo-tag-{len(tag_ids) + 1}"), "group_name": t[0],
                            "tag_name": t[1], "type": 1} for t in tags]}
        customer = contacts.apply_profile(session, corp_id=corp_id, detail=ExternalContactDetail.model_validate(
            {"external_contact": {"external_userid": ext, "name": name, "gender": gender}, "follow_user": [follow]}))
        contacts.change_stage(session, customer, stage, at=at + dt.timedelta(days=max(days - 1, 0) / 2),
                              actor="demo")
        if note:
            author = service.get_staff_by_wecom_userid(session, corp_id=corp_id, wecom_userid=userid)
            session.add(CustomerNote(corp_id=corp_id, customer_id=customer.id, text=note,
                                     author_staff_id=author.id if author else None))
        made += 1
    if made:
        _seed_customer_extras(session, corp_id=corp_id, now=now)
    return made


def _seed_customer_extras(session: Session, *, corp_id: int, now: dt.datetime) -> None:
    """A customer followed by two advisors, one who left, and a risk level from the firm's KYC."""
    from siyu.customers import contacts
    from siyu.customers.models import FollowStatus

    contacts.record_add(session, corp_id=corp_id, external_userid="wmdemo0001zhou", wecom_userid="chenjing",
                        at=now - dt.timedelta(days=30), state="branch-pudong-event", source_key="demo:zhou:second")
    contacts.record_end(session, corp_id=corp_id, external_userid="wmdemo0007wei", wecom_userid="zhangwei",
                        at=now - dt.timedelta(hours=20), status=FollowStatus.LOST, source_key="demo:wei:lost")
    try:
        from siyu.compliance import suitability
    except ModuleNotFoundError:
        return
    suitability.record_assessment(session, corp_id=corp_id, actor="demo", customer_ref="wmdemo0001zhou", level="C4",
                                  source="firm_kyc_api", assessed_at=now - dt.timedelta(days=40))
    # A small catalogue R1–R5, so that the advisor's chat sidebar (/sidebar?external_userid=…) has
    # products to decide and recommend.
    if not suitability.list_products(session, corp_id=corp_id):
        for code, name, kind, level in DEMO_PRODUCTS:
            suitability.create_product(session, corp_id=corp_id, actor="demo", code=code, name=name,
                                       product_type=kind, risk_level=level)


DEMO_PRODUCTS = (
    ("DEP-7D", "七天通知存款", "deposit", "R1"),
    ("WM-STEADY-2", "稳健添利理财 2 号", "wealth_management", "R2"),
    ("FUND-BAL-3", "均衡配置混合基金", "fund", "R3"),
    ("FUND-GROWTH-4", "成长精选股票基金", "fund", "R4"),
    ("FUND-LEV-5", "杠杆增强指数基金", "fund", "R5"),
)


def _seed_quality(session: Session, *, corp_id: int) -> int:
    """Two weeks of archived 1-on-1 chats between the demo advisors and their customers, so that the
    service-quality page (服务质量) has figures, a trend and one customer waiting past the timeout.
    Deterministic; a second run adds nothing."""
    import random

    from sqlalchemy import func

    try:
        from siyu.compliance import archive
        from siyu.compliance.models import ArchiveMessage
        from siyu.quality import service as quality
    except ModuleNotFoundError:
        return 0
    if session.scalar(select(ArchiveMessage.id).where(ArchiveMessage.corp_id == corp_id,
                                                      ArchiveMessage.msgid.like("demo-q-%")).limit(1)):
        return 0
    rng = random.Random(20261001)
    hours = quality.WorkingHours()
    today = quality.china_today()
    # (advisor, customers, typical reply minutes): 张伟 answers fast, 刘洋 slowly, 陈静 in between.
    book = (("zhangwei", ("wmdemo0001zhou", "wmdemo0002wu", "wmdemo0007wei"), 6),
            ("liuyang", ("wmdemo0003zheng", "wmdemo0004feng", "wmdemo0008jiang"), 28),
            ("chenjing", ("wmdemo0005chen", "wmdemo0006chu", "wmdemo0009shen"), 14))
    records, n = [], 0
    zone = quality.ZONE

    def record(sender: str, to: str, at: dt.datetime, text: str) -> None:
        nonlocal n
        n += 1
        records.append(archive.ArchiveRecord(msgid=f"demo-q-{n:05d}", sender=sender, tolist=(to,), roomid="",
                                             msgtype="text", sent_at=at.astimezone(dt.UTC), text=text))

    last_working = None
    for back in range(14, 0, -1):
        day = today - dt.timedelta(days=back)
        if not hours.is_working_day(day):
            continue
        last_working = day
        for advisor, customers, typical in book:
            for customer in customers:
                for _ in range(rng.randint(1, 3)):
                    at = dt.datetime.combine(day, dt.time(9), zone) + dt.timedelta(minutes=rng.randint(0, 500))
                    record(customer, advisor, at, "请问这款产品的申购费率是多少？")
                    if rng.random() < 0.4:
                        record(customer, advisor, at + dt.timedelta(minutes=1), "另外赎回几天到账？")
                    delay = max(1, int(rng.expovariate(1 / typical)))
                    record(advisor, customer, at + dt.timedelta(minutes=delay), "您好，已为您查询，稍后发您说明书。")
    if last_working is not None:  # a question late on the last working day that nobody answered
        record("wmdemo0004feng", "liuyang", dt.datetime.combine(last_working, dt.time(17, 20), zone),
               "明天上午能帮我预约网点吗？")
    result = archive.ingest_records(session, corp_id=corp_id, records=records, source="file")
    first, last = session.execute(select(func.min(ArchiveMessage.id), func.max(ArchiveMessage.id))
                                  .where(ArchiveMessage.corp_id == corp_id,
                                         ArchiveMessage.msgid.like("demo-q-%"))).one()
    quality.update_waits(session, corp_id=corp_id, first_id=first, last_id=last)
    quality.raise_timeouts(session, corp_id=corp_id)
    for back in range(14, 0, -1):
        quality.store_report(session, corp_id=corp_id, day=today - dt.timedelta(days=back))
    return result.stored


DEMO_GATED_COMMUNITY = "财富会员专享群（演示）"


# Customer groups (客户群) the demo shows: (chat id, name, owner's WeCom user id, positioning, set,
# tags, notice, members as (external_userid, days ago joined, days ago left or None)). The emulator
# of `siyu demo` holds the same groups (and their customers), so a sync from it keeps them.
DEMO_GROUP_SET = ("新手课堂", "novice_class", "新客入群后 7 天的理财入门课，每期一个群。")
DEMO_GROUPS: tuple[tuple[str, str, str, str, str | None, tuple[str, ...], str,
                         tuple[tuple[str, int, int | None], ...]], ...] = (
    ("wrdemo0001novice1", "新手课堂第1期", "zhangwei", "novice_class", "新手课堂", ("2026春",),
     "每晚 8 点一节课，共 7 天。",
     (("wmdemo0001zhou", 30, None), ("wmdemo0002wu", 20, None), ("wmdemo0007wei", 18, 3),
      ("wmdemo0010han", 0, None))),
    ("wrdemo0002novice2", "新手课堂第2期", "liuyang", "novice_class", "新手课堂", ("2026春",), "",
     (("wmdemo0003zheng", 12, None), ("wmdemo0004feng", 10, None), ("wmdemo0008jiang", 2, None))),
    ("wrdemo0003benefit", "稳健理财福利群", "chenjing", "benefit", None, ("福利", "周五活动"),
     "每周五晚抽奖，请遵守群规。",
     (("wmdemo0005chen", 8, None), ("wmdemo0006chu", 5, None), ("wmdemo0009shen", 1, None))),
    ("wrdemo0004hnw", "高净值客户沙龙", "zhangwei", "high_net_worth", None, ("私行",), "",
     (("wmdemo0001zhou", 25, None),)),
    ("wrdemo0005welfare1", "稳健理财福利1群", "chenjing", "benefit", None, ("群活码",), "",
     (("wmdemo0006chu", 2, None),)),
    ("wrdemo0006welfare2", "稳健理财福利2群", "chenjing", "benefit", None, ("群活码",), "",
     (("wmdemo0009shen", 1, None),)),
)

# The group set handed out by one join way (群活码) that rolls over: the emulator's groups hold
# DEMO_GROUP_CAPACITY members (its explicit friendlier switch; WeCom's are 200), a group leaves the
# join way at DEMO_ROTATE_AT, and WeCom creates the next group when both are full.
DEMO_JOIN_SET = ("稳健理财福利群组", "benefit", "福利群：扫码入群，满员自动换群。",
                 ("wrdemo0005welfare1", "wrdemo0006welfare2"))
DEMO_GROUP_CAPACITY, DEMO_ROTATE_AT = 6, 5
DEMO_GROUP_WELCOME = ("欢迎加入稳健理财福利群！每周五晚8点福利抽奖，理财问题随时问群主。",
                      "群规：1. 禁止发广告、链接和二维码；2. 不私加群友推销；3. 文明交流。违者移出群聊。",
                      "本群每周五晚8点福利抽奖，请勿相信任何私聊转账要求。")
DEMO_GROUP_SCANS = ("群友钱女士", "群友孙先生", "群友李女士", "群友周先生", "群友吴女士", "群友郑先生")


def demo_group_members() -> set[str]:
    return {ext for *_rest, members in DEMO_GROUPS for ext, _joined, left in members if left is None}


def _seed_communities(session: Session, *, corp_id: int) -> int:
    """A few customer groups with members (one left), positioning, tags and one group set, recorded as
    the communities sync records them from WeCom's `groupchat/get`. Groups already there are left as
    they are."""
    try:
        from siyu.communities import sync
        from siyu.communities.models import GroupSet, GroupTag
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("siyu.communities"):
            return 0
        raise
    from siyu.wecom.schemas import GroupChat as WecomGroupChat

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    made = 0
    group_set = session.scalar(select(GroupSet).where(GroupSet.corp_id == corp_id, GroupSet.name == DEMO_GROUP_SET[0]))
    for chat_id, name, owner, positioning, set_name, tags, notice, members in DEMO_GROUPS:
        if sync.get_by_chat_id(session, corp_id=corp_id, chat_id=chat_id) is not None:
            continue
        if set_name and group_set is None:
            group_set = GroupSet(corp_id=corp_id, name=set_name, positioning=DEMO_GROUP_SET[1],
                                 description=DEMO_GROUP_SET[2])
            session.add(group_set)
            session.flush()
        created = now - dt.timedelta(days=max(d for _e, d, _l in members) + 1)

        def picture(present, chat_id=chat_id, name=name, owner=owner, notice=notice, created=created):
            return WecomGroupChat.model_validate({
                "chat_id": chat_id, "name": name, "owner": owner, "create_time": int(created.timestamp()),
                "notice": notice, "admin_list": [],
                "member_list": [{"userid": owner, "type": 1, "join_time": int(created.timestamp()), "join_scene": 1}]
                + [{"userid": ext, "type": 2, "join_time": int((now - dt.timedelta(days=d, hours=i)).timestamp()),
                    "join_scene": 3 if i % 2 else 2, **({} if i % 2 else {"invitor": {"userid": owner}})}
                   for i, (ext, d, _left) in enumerate(present)]})

        group, _ = sync.apply_group_chat(session, corp_id=corp_id, detail=picture(members), at=created)
        for ext, _d, left in members:
            if left is not None:
                sync.apply_group_chat(session, corp_id=corp_id, at=now - dt.timedelta(days=left), quit_scene=0,
                                      left_ids=[ext], detail=picture([m for m in members if m[0] != ext]))
        group.positioning = positioning
        group.group_set_id = group_set.id if set_name and group_set is not None else None
        session.add_all(GroupTag(corp_id=corp_id, group_id=group.id, tag=t) for t in tags)
        made += 1
    session.flush()
    return made


# The demo group set's SOP week (a template reused across sets) and a customer SOP for new contacts.
DEMO_SOP_TEMPLATE = "新手课堂标准周"
DEMO_SOP_WEEK: tuple[tuple[tuple[int, ...], str, str, str, str, bool], ...] = (
    ((0, 2, 4), "09:30", "product", "产品解读",
     "今日产品解读：稳健理财的风险等级与适合人群。市场有风险，投资需谨慎。", True),
    ((1, 3), "20:00", "interaction", "互动小游戏",
     "互动时间：猜猜本周五沪深300收盘点位，最接近的三位送定制笔记本。", False),
    ((4,), "19:00", "culture", "周五直播", "今晚8点理财知识直播：如何给家庭资产做体检，欢迎带着问题来。", False),
    ((6,), "10:00", "knowledge", "周末知识", "周末小知识：基金定投为什么要长期坚持？过往业绩不代表未来表现。", False),
)
DEMO_SOP_NOW = ("rules", "入群须知", "欢迎来到新手课堂！每晚8点一节课，课后可在群里提问，请勿发广告。")
DEMO_JOURNEY = "新客7天关怀"
DEMO_JOURNEY_STEPS = (
    (0, "00:00", "第0天问候", "您好，欢迎！新手课堂每晚8点开讲，有问题随时问我。"),
    (1, "", "第1天回访", "昨天的入门课听得怎么样？这里有课程回放，有不清楚的地方随时找我。"),
    (3, "10:00", "第3天知识", "理财小贴士：先做风险测评，再挑选与自己风险等级匹配的产品。"),
    (7, "10:00", "第7天结课", "7天入门课结束啦，欢迎参加周五晚的直播答疑。"),
)
DEMO_JOURNEY_DAY1_CUSTOMER = "wmdemo0010han"  # added yesterday in the story: their day-1 step is due today


def _seed_sop(session: Session, *, corp_id: int) -> None:
    """The 新手课堂 set's week from a template (approved by the compliance officer), one slot a few
    minutes after the demo starts so something goes out at once, owners reminded through the
    application (agent 1000002, the emulator's), and a customer SOP whose day-1 step reaches a customer
    added yesterday. Safe to call again: an existing template is left as it is."""
    from siyu.communities.models import GroupSet
    from siyu.compliance import approval
    from siyu.compliance.models import ContentItem
    from siyu.customers import contacts
    from siyu.db import utcnow
    from siyu.sop import service as sop
    from siyu.sop.models import SopSettings, SopTemplate
    from siyu.tenancy.models import Staff
    from siyu.tenancy.principal import Principal

    if session.scalar(select(SopTemplate.id).where(SopTemplate.corp_id == corp_id,
                                                   SopTemplate.name == DEMO_SOP_TEMPLATE)):
        return
    group_set = session.scalar(select(GroupSet).where(GroupSet.corp_id == corp_id,
                                                      GroupSet.name == DEMO_GROUP_SET[0]))
    if group_set is None:
        return

    def principal(login: str) -> Principal:
        staff = session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.login == login))
        return Principal(corp_id=corp_id, kind="staff", label=staff.login, staff_id=staff.id,
                         roles=frozenset(staff.role_names))

    ops = principal("demo.ops")
    session.add(SopSettings(corp_id=corp_id, app_agent_id=1000002, notice_lead_minutes=30,
                            confirm_window_minutes=120, late_after_minutes=10, check_seconds=15))
    template = sop.create_template(session, principal=ops, name=DEMO_SOP_TEMPLATE,
                                   description="一三五产品、二四互动、周五直播、周日知识")
    for days, at, kind, title, text, working in DEMO_SOP_WEEK:
        sop.add_slots(session, principal=ops, template_id=template.id, weekdays=list(days), time=at,
                      content_type=kind, title=title, text=text, working_days_only=working)
    sop.apply_template(session, principal=ops, set_id=group_set.id, template_id=template.id)
    now = utcnow()
    soon = (now + dt.timedelta(minutes=3)).astimezone(sop.CALENDAR_ZONE)
    kind, title, text = DEMO_SOP_NOW
    sop.add_slots(session, principal=ops, set_id=group_set.id, on_date=soon.date(), time=soon.strftime("%H:%M"),
                  content_type=kind, title=title, text=text)
    journey = sop.create_journey(session, principal=ops, name=DEMO_JOURNEY, event="added")
    for day, at, title, text in DEMO_JOURNEY_STEPS:
        if day == 1:  # the day-1 call-back at the time of day the demo starts (+3 min), so it is seen going out
            at = soon.strftime("%H:%M")
        sop.add_step(session, principal=ops, journey_id=journey.id, day_offset=day, time=at, title=title, text=text)
    officer = principal("demo.compliance")
    for item in session.scalars(select(ContentItem).where(ContentItem.corp_id == corp_id,
                                                          ContentItem.status == "submitted",
                                                          ContentItem.owner_type.in_(("sop_slot", "sop_step")))).all():
        approval.approve(session, corp_id=corp_id, actor=officer, item_id=item.id, comment="演示数据：已审核")
    sop.plan(session, corp_id=corp_id, start=now, end=now + sop.PLAN_HORIZON)
    customer = contacts.get_by_external_id(session, corp_id=corp_id, external_userid=DEMO_JOURNEY_DAY1_CUSTOMER)
    advisor = next((row[3] for row in DEMO_CUSTOMER_BOOK if row[0] == DEMO_JOURNEY_DAY1_CUSTOMER), None)
    if customer is not None and advisor:
        day1 = sop.journey_steps(session, corp_id=corp_id, journey_id=journey.id)[1]
        yesterday_at_step = sop.local_due(sop.local_day(now) - dt.timedelta(days=1), day1.minute_of_day)
        sends = sop.enrol(session, corp_id=corp_id, journey=journey, customer_id=customer.id, advisor_userid=advisor,
                          event_at=yesterday_at_step, now=now, enqueue_jobs=False)
        for send in sends:  # the story: day 0 went out yesterday; today is day 1
            if send.step_id != day1.id:
                session.delete(send)
        session.flush()
        from siyu.sop.jobs import enqueue_journey_jobs

        enqueue_journey_jobs(session, corp_id=corp_id, sends=[x for x in sends if x.step_id == day1.id])


# A simulated outsider (a WeChat user who is no advisor's contact) who scanned the benefit group's QR
# code and posted an ad with a phone number: the red-line alert of the demo.
DEMO_OUTSIDER = ("wmdemo0099outsider", "推广小刘")
DEMO_OUTSIDER_AD = "各位老板好，内部渠道高收益理财，保本保息，名额有限，私聊我或打电话 13800138000"
DEMO_LIVE_OUTSIDER = "推广小赵"
DEMO_LIVE_AD = "免费领取内部理财资料，加我微信 vx_fortune888，手机 13900139000"


DEMO_BROADCAST = "年末资产配置直播预约"
DEMO_BROADCAST_TEXT = "您好！本周四晚 8 点有一场年末资产配置直播，讲解如何在稳健与收益之间做平衡，欢迎预约收看。"


def _seed_broadcast(session: Session, *, corp_id: int) -> None:
    """A 1-on-1 broadcast to the demo's customers (approved by the compliance officer, 10% holdout),
    queued to go out over the emulator as soon as the worker runs — quiet hours hold it until 08:00
    Beijing time —, with an exclusion report: a customer who opted out of marketing, one who already
    had today's marketing message (capped), and the control groups. Safe to call again."""
    from siyu.broadcasts import service as broadcasts
    from siyu.broadcasts.models import Broadcast
    from siyu.compliance import approval
    from siyu.compliance.models import ContentItem
    from siyu.customers import contacts
    from siyu.db import utcnow
    from siyu.delivery.models import DeliveryLedger
    from siyu.privacy.service import record_consent
    from siyu.tenancy.models import Staff
    from siyu.tenancy.principal import Principal

    if session.scalar(select(Broadcast.id).where(Broadcast.corp_id == corp_id, Broadcast.name == DEMO_BROADCAST)):
        return

    def principal(login: str) -> Principal:
        staff = session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.login == login))
        return Principal(corp_id=corp_id, kind="staff", label=staff.login, staff_id=staff.id,
                         roles=frozenset(staff.role_names))

    book = [row[0] for row in DEMO_CUSTOMER_BOOK]
    opted = contacts.get_by_external_id(session, corp_id=corp_id, external_userid=book[1])
    capped = contacts.get_by_external_id(session, corp_id=corp_id, external_userid=book[2])
    if opted is None or capped is None:
        return
    record_consent(session, corp_id=corp_id, actor="demo", external_userid=opted.external_userid, purpose="marketing",
                   granted=False, source="chat", note="客户在聊天中回复“退订”")
    session.add(DeliveryLedger(corp_id=corp_id, customer_id=capped.id, kind="sop_step", source="demo:sop_step",
                               state="sent", at=utcnow()))
    ops = principal("demo.ops")
    row = broadcasts.create_broadcast(session, principal=ops, name=DEMO_BROADCAST, text=DEMO_BROADCAST_TEXT,
                                      audience={"stages": []}, holdout_basis_points=1000)
    item = session.scalar(select(ContentItem).where(ContentItem.corp_id == corp_id,
                                                    ContentItem.owner_type == "broadcast",
                                                    ContentItem.status == "submitted"))
    if item is not None:
        approval.approve(session, corp_id=corp_id, actor=principal("demo.compliance"), item_id=item.id,
                         comment="演示数据：直播预告，无收益承诺")
    broadcasts.schedule(session, principal=ops, broadcast_id=row.id)


def _seed_group_activity(session: Session, *, corp_id: int) -> int:
    """Three weeks of archived group chats that make the demo groups' health differ — 新手课堂第1期 lively
    (daily lessons, quick replies), 新手课堂第2期 gone quiet a week ago, 稳健理财福利群 in between with
    slow replies, 高净值客户沙龙 silent — and the outsider who joined the benefit group yesterday and
    posted an ad with a phone number (a red-line alert for its owner). Then the stored daily health of
    the last two weeks. Deterministic; a second run adds nothing."""
    import random

    from sqlalchemy import func

    try:
        from siyu.communities import health, moderation, sync
        from siyu.communities.models import GroupMember
        from siyu.compliance import archive
        from siyu.compliance.models import ArchiveMessage
    except ModuleNotFoundError:
        return 0
    from siyu.wecom.schemas import GroupChat as WecomGroupChat

    if session.scalar(select(ArchiveMessage.id).where(ArchiveMessage.corp_id == corp_id,
                                                      ArchiveMessage.msgid.like("demo-g-%")).limit(1)):
        return 0
    rng = random.Random(20261207)
    zone = health.CALENDAR_ZONE
    today = health.china_today()
    records: list = []

    def say(chat_id: str, sender: str, at: dt.datetime, text: str) -> None:
        records.append(archive.ArchiveRecord(msgid=f"demo-g-{len(records) + 1:05d}", sender=sender, tolist=(),
                                             roomid=chat_id, msgtype="text", sent_at=at.astimezone(dt.UTC),
                                             text=text))

    questions = ("今天的内容讲得很清楚，谢谢老师", "请问定投每个月扣款日可以改吗？", "打卡第{n}天",
                 "这个风险等级适合我吗？", "周五的活动几点开始？", "收到，学习了")
    # (chat id, owner, days with activity, owner's typical reply in minutes, customers who speak)
    plan = (("wrdemo0001novice1", "zhangwei", range(20, -1, -1), 8, ("wmdemo0001zhou", "wmdemo0002wu")),
            ("wrdemo0002novice2", "liuyang", range(12, 7, -1), 25, ("wmdemo0003zheng", "wmdemo0004feng")),
            ("wrdemo0003benefit", "chenjing", range(8, -1, -2), 300, ("wmdemo0005chen",)),
            ("wrdemo0004hnw", "zhangwei", (10,), 60, ("wmdemo0001zhou",)))
    for chat_id, owner, days, typical, speakers in plan:
        for back in days:
            day = today - dt.timedelta(days=back)
            evening = dt.datetime.combine(day, dt.time(20, 0), zone)
            if back == 0 and dt.datetime.now(zone) < evening + dt.timedelta(hours=1):
                evening = dt.datetime.now(zone) - dt.timedelta(hours=2)
            say(chat_id, owner, evening,
                f"各位好，今天的内容：第{21 - back}讲《认识风险与收益》。理财非存款，产品有风险，投资须谨慎。")
            for i, customer in enumerate(speakers):
                asked = evening + dt.timedelta(minutes=10 + 7 * i + rng.randint(0, 5))
                say(chat_id, customer, asked, rng.choice(questions).format(n=21 - back))
            reply = asked + dt.timedelta(minutes=max(1, int(rng.expovariate(1 / typical))))
            say(chat_id, owner, reply, "谢谢大家，问题我逐一回复，有需要可以私聊我。")
    # A product group of last month that lived five days: created 40 days ago, dismissed 20 days ago.
    ended = "wrdemo0005product"
    if sync.get_by_chat_id(session, corp_id=corp_id, chat_id=ended) is None:
        created = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=40)
        old, _ = sync.apply_group_chat(session, corp_id=corp_id, at=created, detail=WecomGroupChat.model_validate({
            "chat_id": ended, "name": "稳健添利产品体验群", "owner": "liuyang", "create_time": int(created.timestamp()),
            "notice": "", "admin_list": [], "member_list": [
                {"userid": "liuyang", "type": 1, "join_time": int(created.timestamp()), "join_scene": 1},
                {"userid": "wmdemo0003zheng", "type": 2, "join_time": int(created.timestamp()), "join_scene": 3}]}))
        old.positioning = "product"
        for back in range(5):
            at = created + dt.timedelta(days=back, hours=11)
            say(ended, "liuyang", at, "今天介绍稳健添利理财 2 号的申赎规则。理财非存款，产品有风险，投资须谨慎。")
            say(ended, "wmdemo0003zheng", at + dt.timedelta(minutes=15), rng.choice(questions).format(n=back + 1))
        sync.mark_dismissed(session, corp_id=corp_id, chat_id=ended, at=created + dt.timedelta(days=20))
    # The outsider scanned the benefit group's QR code yesterday and posted an ad.
    outsider, name = DEMO_OUTSIDER
    joined = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1, hours=3)
    group = sync.get_by_chat_id(session, corp_id=corp_id, chat_id="wrdemo0003benefit")
    if group is not None:
        present = list(session.scalars(select(GroupMember).where(GroupMember.group_id == group.id,
                                                                 GroupMember.left_at.is_(None))))
        if outsider not in {m.member_id for m in present}:
            members = [{"userid": m.member_id, "type": 1 if m.member_type == "staff" else 2,
                        "join_time": int(m.joined_at.timestamp()), "join_scene": m.join_scene,
                        **({"invitor": {"userid": m.invitor_userid}} if m.invitor_userid else {})} for m in present]
            members.append({"userid": outsider, "type": 2, "join_time": int(joined.timestamp()), "join_scene": 3,
                            "name": name})
            sync.apply_group_chat(session, corp_id=corp_id, at=joined, detail=WecomGroupChat.model_validate({
                "chat_id": group.chat_id, "name": group.name, "owner": group.owner_userid,
                "create_time": int((group.wecom_created_at or joined).timestamp()), "notice": group.notice,
                "admin_list": [], "member_list": members}))
        say(group.chat_id, outsider, joined + dt.timedelta(minutes=20), DEMO_OUTSIDER_AD)
    result = archive.ingest_records(session, corp_id=corp_id, records=records, source="file")
    first, last = session.execute(select(func.min(ArchiveMessage.id), func.max(ArchiveMessage.id))
                                  .where(ArchiveMessage.corp_id == corp_id,
                                         ArchiveMessage.msgid.like("demo-g-%"))).one()
    moderation.moderate_range(session, corp_id=corp_id, first_id=first, last_id=last)
    for back in range(14, 0, -1):
        health.store_corp(session, corp_id=corp_id, day=today - dt.timedelta(days=back))
    return result.stored


def _seed_gated_community(session: Session, *, corp_id: int) -> None:
    """One gated community (门槛社群) verified by SMS code, with a group QR image, when acquisition's
    verification gate is installed. Its codes appear in the console's SMS outbox in the demo."""
    try:
        from siyu.acquisition import verification
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("siyu.acquisition"):
            return
        raise
    import io

    import segno

    if verification.list_communities(session, corp_id=corp_id):
        return
    join_url = "https://h5.example/join/siyu-demo-wealth-club"
    buf = io.BytesIO()
    segno.make(join_url, error="m").save(buf, kind="png", scale=8, border=3, dark="#1d2939")
    verification.save_community(session, corp_id=corp_id, actor="demo", name=DEMO_GATED_COMMUNITY, verify_by="sms",
                                join_url=join_url, qr_image=buf.getvalue())


def prepare(*, database_url: str | None = None, data_dir: Path | None = None, reset: bool = False) -> DemoInfo:
    """Migrate and seed the demo database; returns what the demo shows."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from siyu.db import make_engine
    from siyu.migrate import upgrade

    settings = get_settings()
    data_dir = (data_dir or settings.data_dir).resolve()
    url = database_url or settings.resolved_database_url()
    if reset:
        _reset(url, data_dir)
    upgrade("head", url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            info = seed_demo(session, data_dir=data_dir)
    finally:
        engine.dispose()
    info.database_url = make_url(url).render_as_string(hide_password=True)
    return info


def _reset(url: str, data_dir: Path) -> None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        raise SystemExit("--reset only deletes the embedded SQLite database; drop other databases yourself")
    for suffix in ("", "-wal", "-shm"):
        Path(u.database + suffix).unlink(missing_ok=True)
    (data_dir / API_KEY_FILE).unlink(missing_ok=True)


# --- the processes --------------------------------------------------------------------------------


def _set_parent_death_signal() -> None:
    # Linux: a child gets SIGTERM when the demo dies, even by SIGKILL, so nothing is left running.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(name: str, args: list[str], env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    # Own process group: Ctrl-C reaches only the demo, which then stops each child once, cleanly.
    proc = subprocess.Popen([sys.executable, *args], env=env, process_group=0, preexec_fn=_set_parent_death_signal)
    return name, proc


DEMO_WELCOME = "您好，我是您的专属理财顾问。市场有风险，投资需谨慎；有任何问题，随时在这里找我。"


def connect_demo_wecom(*, database_url: str, api_url: str) -> dict[str, str]:
    """Connect the demo corp to the emulator (API base URL, secret, callback token and key) and turn
    on its default welcome. Keeps the token and key saved by an earlier run; returns the callback
    settings the emulator needs."""
    from siyu import pii
    from siyu.db import make_engine
    from siyu.tenancy.models import Corp
    from siyu.wecom import service
    from siyu.wecom.crypto import generate_aes_key

    engine = make_engine(database_url)
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            corp = session.scalar(select(Corp).where(Corp.slug == DEMO_SLUG))
            cfg = service.get_config(session, corp_id=corp.id)
            if cfg is None:
                token, aes_key = "siyudemo" + os.urandom(8).hex(), generate_aes_key()
            else:
                token = pii.decrypt(cfg.token_encrypted, context="wecom_corp_config.token")
                aes_key = pii.decrypt(cfg.aes_key_encrypted, context="wecom_corp_config.aes_key")
            service.configure_connection(session, corp_id=corp.id, actor="demo", wecom_corp_id=DEMO_WECOM_CORP_ID,
                                         secret=DEMO_WECOM_SECRET, token=token, aes_key=aes_key, base_url=api_url)
            if cfg is None:
                service.set_default_welcome(session, corp_id=corp.id, actor="demo", text=DEMO_WELCOME, enabled=True)
                _seed_channel_codes(session, corp_id=corp.id)
                _seed_join_way(session, corp_id=corp.id)
                _approve_seeded_content(session, corp_id=corp.id)
    finally:
        engine.dispose()
    return {"token": token, "encoding_aes_key": aes_key}


# (name, channel, campaign, persona kind, advisors as (WeCom user id, daily cap), ad spend in fen,
#  welcome variants). The worker registers each code with WeCom (the emulator) once it runs.
DEMO_CHANNEL_CODES: tuple[tuple[str, str, str, str, tuple[tuple[str, int], ...], int, tuple[str, ...]], ...] = (
    ("手机银行·理财专区", "mobile_banking", "理财专区常驻", "dedicated_advisor", (("zhangwei", 0),), 0,
     ("您好，我是您的{顾问头衔}{顾问名}。账户、产品和活动问题随时找我；市场有风险，投资需谨慎。",)),
    ("公众号推文·定投课堂", "official_account", "11月定投课堂", "knowledge_expert",
     (("zhangwei", 50), ("liuyang", 50)), 120_000,
     ("{客户称呼}好，我是{顾问名}，每周二晚在这里分享基金定投知识，欢迎提问。",
      "{客户称呼}好，欢迎来到定投课堂！我是{顾问头衔}{顾问名}，有问题随时留言。")),
    ("信息流广告·新客礼", "ad", "双十二新客礼", "benefits_officer", (("liuyang", 30), ("chenjing", 30)), 500_000,
     ("您好，我是{顾问名}，新客礼和会员活动会第一时间通知您。",)),
)


DEMO_CHANNEL_STATES = {"手机银行·理财专区": "demo-mbank-wealth", "公众号推文·定投课堂": "demo-oa-dca-class",
                       "信息流广告·新客礼": "demo-ad-newcomer"}


def _seed_channel_codes(session: Session, *, corp_id: int) -> None:
    """Channel codes with personas, daily caps, ad spend and welcome flows (one with two variants)."""
    from siyu.acquisition import service as acquisition
    from siyu.acquisition import welcome

    acquisition.ensure_seed_personas(session, corp_id=corp_id)
    personas = {p.kind: p.id for p in acquisition.list_personas(session, corp_id=corp_id)}
    for name, channel, campaign, persona, advisors, cost_fen, variants in DEMO_CHANNEL_CODES:
        if acquisition.code_by_state(session, corp_id=corp_id, state=DEMO_CHANNEL_STATES[name]) is not None:
            continue  # seeded before (the seed makes them, connecting the demo's WeCom finds them)
        code = acquisition.create_channel_code(
            session, corp_id=corp_id, actor="demo", name=name, channel=channel, campaign=campaign,
            persona_id=personas.get(persona), cost_fen=cost_fen,
            advisors=[acquisition.AdvisorSpec(userid=u, daily_cap=cap) for u, cap in advisors])
        # A fixed state (the key analytics events carry): the seeded analytics name these codes. WeCom
        # learns the state when the worker registers the code.
        code.state = DEMO_CHANNEL_STATES[name]
        session.flush()
        for text in variants:
            welcome.add_variant(session, corp_id=corp_id, actor="demo", code_id=code.id, text=text)
        welcome.save_flow(session, corp_id=corp_id, actor="demo", code_id=code.id, enabled=True)


# The analytics seed: who came by which code, and what they did in the twelve weeks since (see
# _seed_analytics). Per code: share of the adds, reply rate per welcome variant, verification,
# group join, investment and reinvestment rates; and the ad spend entered for it (yuan).
DEMO_ANALYTICS_CUSTOMERS = 1000
DEMO_ANALYTICS_PROFILE: dict[str, dict[str, object]] = {
    "demo-mbank-wealth": {"share": 0.40, "reply": (0.42,), "verify": 0.70, "join": 0.55, "invest": 0.45,
                          "reinvest": 0.60, "spend_yuan": None},
    "demo-oa-dca-class": {"share": 0.30, "reply": (0.24, 0.36), "verify": 0.55, "join": 0.70, "invest": 0.30,
                          "reinvest": 0.50, "spend_yuan": "1200.00"},
    "demo-ad-newcomer": {"share": 0.30, "reply": (0.18,), "verify": 0.40, "join": 0.65, "invest": 0.18,
                         "reinvest": 0.35, "spend_yuan": "12000.00"},
}
DEMO_AMOUNTS_FEN = (40_000, 160_000, 280_000, 1_000_000)


def _seed_analytics(session: Session, *, corp_id: int) -> int:
    """Twelve weeks of analytics events for the dashboards (1,000 customers over the demo's three
    channel codes: adds, replies per welcome variant, verifications, group joins, investments,
    maturities and reinvestments, lottery rewards and coupons, losses), the ad spend entered for
    two codes, and the backfill of the demo's real customers. Written in bulk (one statement per
    2,000 events); a second run writes nothing."""
    import random

    from sqlalchemy import func

    from siyu.acquisition import service as acquisition
    from siyu.acquisition import welcome
    from siyu.analytics import backfill, service
    from siyu.analytics.models import AnalyticsEvent, AnalyticsSpend

    if session.scalar(select(func.count()).select_from(AnalyticsEvent).where(
            AnalyticsEvent.corp_id == corp_id, AnalyticsEvent.source_key.like("demo:a:%"))):
        return 0
    rng = random.Random(15)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(weeks=12)
    codes = []
    for name, _channel, _campaign, _persona, code_advisors, *_rest in DEMO_CHANNEL_CODES:
        code = acquisition.code_by_state(session, corp_id=corp_id, state=DEMO_CHANNEL_STATES[name])
        if code is None:
            continue
        flow = welcome.get_flow(session, corp_id=corp_id, code_id=code.id)
        variants = [str(v.id) for v in welcome.list_variants(session, corp_id=corp_id, flow_id=flow.id)] if flow else []
        advisors = [u for u, _cap in code_advisors]
        codes.append((code, variants, advisors, DEMO_ANALYTICS_PROFILE[code.state]))
    if not codes:
        return 0
    groups = [chat_id for chat_id, *_rest in DEMO_GROUPS] or ["demo-group"]
    rows, n = [], 0

    def ev(key: str, type: str, at: dt.datetime, **dims) -> None:
        nonlocal n
        if at <= now:
            n += 1
            rows.append(service.event_row(corp_id=corp_id, customer_id=None, customer_key=key, type=type, ts=at,
                                          source_key=f"demo:a:{n}", **dims))

    weights = [p["share"] for *_x, p in codes]
    for i in range(DEMO_ANALYTICS_CUSTOMERS):
        code, variants, advisors, p = rng.choices(codes, weights=weights)[0]
        key = f"demo-{i + 1:05d}"
        # More adds in the recent weeks (the campaigns ramp up).
        added = start + (now - start) * (rng.random() ** 0.7)
        vi = rng.randrange(len(variants)) if variants else None
        advisor = rng.choice(advisors)
        ev(key, "customer.added", added, channel=code.state, campaign=code.campaign or None, advisor=advisor,
           persona=str(code.persona_id) if code.persona_id else None,
           variant=variants[vi] if vi is not None else None)
        reply_rate = p["reply"][vi if vi is not None and vi < len(p["reply"]) else 0]
        if rng.random() < reply_rate:
            ev(key, "message.received", added + dt.timedelta(minutes=rng.randint(2, 2 * 24 * 60)), advisor=advisor)
        if rng.random() < 0.08:
            ev(key, "customer.lost", added + dt.timedelta(days=rng.randint(1, 40)), advisor=advisor)
            continue
        if rng.random() >= p["verify"]:
            continue
        verified = added + dt.timedelta(hours=rng.randint(1, 5 * 24))
        ev(key, "customer.verified", verified)
        if rng.random() >= p["join"]:
            continue
        joined = verified + dt.timedelta(hours=rng.randint(1, 7 * 24))
        group = rng.choice(groups)
        ev(key, "group.joined", joined, group_key=group, advisor=advisor)
        if code.state == "demo-ad-newcomer":  # the group-entry lottery: 5–10 yuan, paid 5 working days later
            ev(key, "campaign.reward_paid", joined + dt.timedelta(days=7), amount_fen=rng.choice((500, 800, 1000)),
               campaign=code.campaign or None)
        if rng.random() < 0.12:
            ev(key, "group.left", joined + dt.timedelta(days=rng.randint(3, 60)), group_key=group)
        if rng.random() >= p["invest"]:
            continue
        invested = joined + dt.timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 23))
        amount = rng.choice(DEMO_AMOUNTS_FEN)
        ev(key, "order.invested", invested, amount_fen=amount, product=rng.choice(("WM-90D", "WM-180D", "FUND-DCA")))
        if code.state == "demo-ad-newcomer" and amount >= 160_000:
            ev(key, "coupon.redeemed", invested, amount_fen=amount // 40, campaign=code.campaign or None)
        matured = invested + dt.timedelta(days=rng.choice((28, 35, 42)))
        ev(key, "order.matured", matured, amount_fen=amount)
        if rng.random() < p["reinvest"]:
            ev(key, "order.invested", matured + dt.timedelta(days=rng.randint(0, 14), hours=rng.randint(1, 20)),
               amount_fen=rng.choice(DEMO_AMOUNTS_FEN), product=rng.choice(("WM-90D", "WM-180D")))
    written = service.record_many(session, rows)
    for code, _variants, _advisors, p in codes:
        if p["spend_yuan"]:
            session.add(AnalyticsSpend(corp_id=corp_id, channel=code.state, day_from=start.date(), day_to=now.date(),
                                       amount_fen=service.parse_yuan(p["spend_yuan"]), note="演示：广告投放"))
    session.flush()
    return written + sum(backfill.run(session, corp_id=corp_id).values())


def _seed_join_way(session: Session, *, corp_id: int) -> None:
    """The set handed out by one join way that rolls over (its groups are small in the demo's
    emulator), its group welcome, rules and announcement (approved with the other seeded content),
    as the operations manager (李娜) sets them up. WeCom (the emulator) makes the join way when the
    worker runs."""
    try:
        from siyu.communities import group_welcome, joinways
        from siyu.communities import service as communities
        from siyu.communities.models import GroupSet
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("siyu.communities"):
            return
        raise
    from siyu.tenancy.models import Staff
    from siyu.tenancy.principal import Principal

    name, positioning, description, chat_ids = DEMO_JOIN_SET
    if session.scalar(select(GroupSet.id).where(GroupSet.corp_id == corp_id, GroupSet.name == name)) is not None:
        return
    staff = session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.login == "demo.ops"))
    ops = Principal(corp_id=corp_id, kind="staff", label=staff.login, staff_id=staff.id,
                    roles=frozenset(staff.role_names))
    group_set = communities.create_set(session, principal=ops, name=name, description=description,
                                       positioning=positioning)
    from siyu.communities import sync

    groups = [g for c in chat_ids if (g := sync.get_by_chat_id(session, corp_id=corp_id, chat_id=c)) is not None]
    communities.assign_groups(session, principal=ops, set_id=group_set.id, group_ids=[g.id for g in groups])
    joinways.configure(session, principal=ops, set_id=group_set.id, capacity=DEMO_GROUP_CAPACITY,
                       rotate_at=DEMO_ROTATE_AT, when_full="auto_create", room_base_name="稳健理财福利",
                       room_base_id=len(chat_ids) + 1)
    joinways.create_way(session, principal=ops, set_id=group_set.id)
    welcome_text, rules, announcement = DEMO_GROUP_WELCOME
    group_welcome.save_texts(session, principal=ops, set_id=group_set.id, welcome_text=welcome_text,
                             rules_text=rules, announcement_text=announcement)


def demo_join_way_config(database_url: str, *, wait: float) -> str | None:
    """The WeCom config id of the demo set's join way, once the worker made it (at most `wait` s)."""
    from siyu.communities.joinway_models import GroupJoinWay
    from siyu.communities.models import GroupSet
    from siyu.db import make_engine
    from siyu.tenancy.models import Corp

    engine = make_engine(database_url)
    deadline = time.monotonic() + wait
    try:
        while True:
            with Session(engine) as session:
                config_id = session.scalar(select(GroupJoinWay.config_id)
                                           .join(GroupSet, GroupSet.id == GroupJoinWay.group_set_id)
                                           .join(Corp, Corp.id == GroupSet.corp_id)
                                           .where(Corp.slug == DEMO_SLUG, GroupSet.name == DEMO_JOIN_SET[0],
                                                  GroupJoinWay.qr_code.is_not(None)))
            if config_id or time.monotonic() > deadline:
                return config_id
            time.sleep(0.5)
    finally:
        engine.dispose()


DEMO_PENDING_EDIT = "您好，我是{顾问名}。双十二新客礼已上线，添加后回复“礼包”即可领取；市场有风险，投资需谨慎。"


def _approve_seeded_content(session: Session, *, corp_id: int) -> None:
    """The demo's welcomes, approved by the demo's compliance officer (赵磊) so the demo welcomes its
    customers, and one edit by the operations manager (李娜) left awaiting approval to look at."""
    from siyu.acquisition import welcome
    from siyu.acquisition.models import ChannelCode
    from siyu.compliance import approval
    from siyu.compliance.models import ContentItem
    from siyu.tenancy.models import Staff
    from siyu.tenancy.principal import Principal

    def principal(login: str) -> Principal:
        staff = session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.login == login))
        return Principal(corp_id=corp_id, kind="staff", label=staff.login, staff_id=staff.id,
                         roles=frozenset(staff.role_names))

    officer = principal("demo.compliance")
    for item in session.scalars(select(ContentItem).where(ContentItem.corp_id == corp_id,
                                                          ContentItem.status == "submitted")).all():
        approval.approve(session, corp_id=corp_id, actor=officer, item_id=item.id, comment="演示数据：已审核")
    code = session.scalar(select(ChannelCode).where(ChannelCode.corp_id == corp_id,
                                                    ChannelCode.name == DEMO_CHANNEL_CODES[-1][0]))
    flow = welcome.get_flow(session, corp_id=corp_id, code_id=code.id)
    variant = welcome.list_variants(session, corp_id=corp_id, flow_id=flow.id)[0]
    welcome.edit_variant(session, corp_id=corp_id, actor=principal("demo.ops"), variant_id=variant.id,
                         text=DEMO_PENDING_EDIT)


def _emulator_command(host: str, port: int, *, data_dir: Path, callback: dict[str, str] | None = None
                      ) -> list[str] | None:
    """How to start the WeCom emulator (when this installation has one), seeded with the demo
    corp: its corp id and customer-contact secret, the demo staff's WeCom user ids, a few customers."""
    try:
        from siyu.wecom.emulator import serve_emulator  # noqa: F401 - only asks whether it exists
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("siyu.wecom"):
            return None
        raise
    advisors = [w for _l, _n, roles, _d, w, _s in DEMO_STAFF if "advisor" in roles and w]
    spec = {
        "corp_id": DEMO_WECOM_CORP_ID,
        "name": DEMO_CORP_NAME,
        "secret": DEMO_WECOM_SECRET,
        "staff": [{"userid": w, "name": n} for _l, n, _r, _d, w, _s in DEMO_STAFF if w],
        "customers": [{"name": name, "follow": [advisors[i % len(advisors)]]} for i, name in enumerate(DEMO_CUSTOMERS)]
        + [{"name": name, "external_userid": ext, "gender": gender, "follow": [userid]}
           for ext, name, gender, userid, *_rest in DEMO_CUSTOMER_BOOK if ext in demo_group_members()],
        "group_chats": [{"chat_id": chat_id, "name": name, "owner": owner, "notice": notice,
                         "members": [ext for ext, _joined, left in members if left is None]}
                        for chat_id, name, owner, _p, _s, _t, notice, members in DEMO_GROUPS],
        # The emulator is as strict as WeCom by default: each mass message waits for its sender to
        # confirm it, which the demo's simulated staff do a few seconds later (`_SimulatedStaff`).
        # Two friendlier switches are on explicitly: the simulated customers' chats reach archive
        # monitoring without each answering the prompt first, and customer groups are small so the
        # demo's join way visibly rolls over to the next group.
        "limits": {"auto_confirm_mass_messages": False, "archive_consent_default": True,
                   "group_capacity": DEMO_GROUP_CAPACITY},
    }
    if callback:
        spec["callback"] = callback
    seed_file = data_dir / "emulator-seed.json"
    seed_file.write_text(json.dumps(spec, ensure_ascii=False, indent=2), encoding="utf-8")
    call = f"host={host!r}, port={port}, seed_file={str(seed_file)!r}, log_level='warning'"
    return ["-c", f"from siyu.wecom.emulator import serve_emulator; serve_emulator({call})"]


def _wait_until_answering(
    url: str, procs: list[tuple[str, subprocess.Popen]], *, cancelled, timeout: float = 60
) -> bool:
    """True once `url` answers; False when `cancelled()` (Ctrl-C while starting)."""
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cancelled():
            return False
        for name, proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode} while starting")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return True
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _stop(procs: list[tuple[str, subprocess.Popen]], grace: float = 10) -> None:
    for _name, proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for _name, proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pad(text: str, width: int) -> str:
    """Left-align in a terminal, where a Chinese character takes two columns."""
    import unicodedata

    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - used)


def _print_banner(info: DemoInfo, *, console_url: str, emulator_url: str | None, worker: bool) -> None:
    role_zh = {
        "administrator": "管理员",
        "operations": "运营",
        "advisor": "理财顾问",
        "compliance": "合规",
        "auditor": "审计",
    }
    lines = [
        "",
        f"Siyu demo — {info.corp_name}",
        f"  Console         {console_url}",
        f"  API docs        {console_url}/api/docs   (Authorization: Bearer <API key>)",
        f"  API key         {info.api_key}",
        f"  WeCom emulator  {emulator_url or 'not installed in this version'}",
        *(
            [f"                  corp id {DEMO_WECOM_CORP_ID}, customer-contact secret {DEMO_WECOM_SECRET}"]
            if emulator_url
            else []
        ),
        f"  Job worker      {'running' if worker else 'not installed in this version'}",
        *(
            [f"  Demo jobs       {len(info.jobs)} enqueued; `demo.no_such_handler` fails on purpose (a dead letter)"]
            if info.jobs
            else []
        ),
        f"  Database        {info.database_url}",
        "",
        f"  Logins (corp code: {info.corp_slug}, password for all: {info.password})",
        f"  Login page      {console_url}/login/{info.corp_slug}",
    ]
    for entry in info.logins:
        roles = ", ".join(f"{role_zh.get(r, r)} {r}" for r in entry["roles"])
        lines.append(f"    {_pad(entry['corp'], 6)} {_pad(entry['login'], 17)} {_pad(entry['name'], 6)} "
                     f"{_pad(roles, 24)} {entry['department']}")
    lines += ["", "  Ctrl-C stops the demo. `siyu demo --reset` starts again from an empty database.", ""]
    print("\n".join(lines), flush=True)


def run_demo(host: str = "127.0.0.1", port: int = 8000, reset: bool = False) -> None:
    # The demo is served over plain HTTP; Secure cookies would not come back (unless configured).
    os.environ.setdefault("SIYU_COOKIE_SECURE", "false")
    # The demo has no SMS gateway: the verification gate's codes are shown in the console's SMS outbox.
    os.environ.setdefault("SIYU_SMS_SHOW_CODES", "true")
    # The demo's WeCom is the emulator on this machine: the explicit setting that lets Siyu call it
    # (an installation trusts no local network by default; see siyu.netguard).
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "", "localhost") else host
    os.environ.setdefault("SIYU_OUTBOUND_LOCAL_NETWORKS", ",".join(dict.fromkeys(["127.0.0.0/8", "::1/128", local])))
    get_settings.cache_clear()
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    url = settings.resolved_database_url()
    info = prepare(database_url=url, data_dir=data_dir, reset=reset)
    # Keys are generated once into the data directory; make them before the children race for them.
    settings.resolved_secret_key()
    settings.resolved_pii_key()

    env = dict(os.environ, SIYU_DATA_DIR=str(data_dir), SIYU_DATABASE_URL=url)
    procs = [_spawn("siyu serve", ["-m", "siyu.cli", "serve", "--host", host, "--port", str(port)], env)]
    has_worker = importlib.util.find_spec("siyu.jobs.worker") is not None
    if has_worker:
        procs.append(_spawn("siyu worker", ["-m", "siyu.cli", "worker"], env))
    console_url = f"http://{local}:{port}"
    emulator_url = f"http://{local}:{port + 1}"
    callback = connect_demo_wecom(database_url=url, api_url=emulator_url + "/cgi-bin/")
    callback["url"] = f"{console_url}/wecom/callback/{DEMO_SLUG}"
    emulator_cmd = _emulator_command(host, port + 1, data_dir=data_dir, callback=callback)
    if emulator_cmd:
        procs.append(_spawn("WeCom emulator", emulator_cmd, env))

    stopping = False

    def _on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        if _wait_until_answering(console_url + "/login", procs, cancelled=lambda: stopping):
            _print_banner(
                info,
                console_url=console_url,
                emulator_url=emulator_url if emulator_cmd else None,
                worker=has_worker,
            )
            if emulator_cmd and _wait_until_answering(emulator_url + "/_emulator/health", procs,
                                                      cancelled=lambda: stopping):
                staff = _SimulatedStaff(emulator_url)
                staff.start()
                _demo_adds(emulator_url, database_url=url)
        while not stopping:
            for name, proc in procs:
                if proc.poll() is not None:
                    print(f"siyu demo: {name} exited with status {proc.returncode}; stopping", file=sys.stderr)
                    status = 1
                    stopping = True
                    break
            time.sleep(0.3)
    except RuntimeError as exc:
        print(f"siyu demo: {exc}", file=sys.stderr)
        status = 1
    finally:
        print("siyu demo: stopping ...", file=sys.stderr, flush=True)
        _stop(procs)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if status:
        raise SystemExit(status)


class _SimulatedStaff(threading.Thread):
    """The demo's staff at their WeCom app: each mass message waiting for a member (an SOP slot for
    a group owner, a customer SOP step or a keyword reply for an advisor) is confirmed about
    `delay` seconds after it appeared, as a person opening the mass-message assistant would."""

    def __init__(self, emulator_url: str, delay: float = 5.0) -> None:
        super().__init__(daemon=True, name="demo-simulated-staff")
        self.url, self.delay = f"{emulator_url}/_emulator/corps/{DEMO_WECOM_CORP_ID}", delay
        self.seen: dict[str, float] = {}

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=5) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    for m in client.get("/mass_messages/pending").json():
                        first = self.seen.setdefault(m["msgid"], time.monotonic())
                        if time.monotonic() - first >= self.delay:
                            for userid in m["userids"]:
                                client.post(f"/mass_messages/{m['msgid']}/confirm", json={"userid": userid})
                time.sleep(1.0)


def _demo_adds(emulator_url: str, *, database_url: str, wait: float = 20.0) -> None:
    """A few customers add advisors as the demo starts, so that callbacks, welcomes and the WeCom
    page have something to show (each start adds new ones): three directly, and one or two through
    each channel code once the worker has registered it with the emulator (at most `wait` seconds)."""
    import httpx

    advisors = [w for _l, _n, roles, _d, w, _s in DEMO_STAFF if "advisor" in roles and w]
    with httpx.Client(base_url=f"{emulator_url}/_emulator/corps/{DEMO_WECOM_CORP_ID}", timeout=5) as client:
        for i, name in enumerate(("何女士", "吕先生", "施女士")):
            with contextlib.suppress(httpx.HTTPError):
                client.post("/add_contact", json={"userid": advisors[i % len(advisors)], "name": name})
        names = iter(("钱先生", "孙女士", "周先生", "吴女士", "郑先生"))
        for position, config_id in enumerate(_registered_codes(database_url, wait=wait)):
            for _ in range(1 + position % 2):
                with contextlib.suppress(httpx.HTTPError):
                    client.post("/add_contact", json={"config_id": config_id, "name": next(names, "")})
        # Customers scan the welfare set's join way: the first group fills and the join way rolls over.
        join_way = demo_join_way_config(database_url, wait=wait)
        for i, name in enumerate(DEMO_GROUP_SCANS if join_way else ()):
            with contextlib.suppress(httpx.HTTPError):
                added = client.post("/add_contact", json={"userid": advisors[i % len(advisors)], "name": name})
                client.post(f"/join_ways/{join_way}/scan", json={"member_id": added.json()["external_userid"]})
                time.sleep(1.0)  # customers scan one after another; the rollover keeps up
        _demo_outsider(client)


def _demo_outsider(client) -> None:
    """A simulated outsider scans the benefit group's QR code and posts an ad with a WeChat id and a phone
    number: the archive feed brings it in within a minute and the group's owner gets a red-line alert."""
    import httpx

    with contextlib.suppress(httpx.HTTPError):
        outsider = client.post("/customers", json={"name": DEMO_LIVE_OUTSIDER}).json().get("external_userid")
        if outsider:
            client.post("/group_chats/wrdemo0003benefit/join", json={"member_id": outsider, "scene": 3})
            client.post("/messages", json={"from": outsider, "roomid": "wrdemo0003benefit", "text": DEMO_LIVE_AD})


def _registered_codes(database_url: str, *, wait: float) -> list[str]:
    """The WeCom config ids of the demo corp's channel codes, once every one is registered."""
    from siyu.acquisition.models import ChannelCode
    from siyu.db import make_engine
    from siyu.tenancy.models import Corp

    engine = make_engine(database_url)
    deadline = time.monotonic() + wait
    try:
        while True:
            with Session(engine) as session:
                codes = session.execute(select(ChannelCode.status, ChannelCode.config_id).join(
                    Corp, Corp.id == ChannelCode.corp_id).where(Corp.slug == DEMO_SLUG)
                    .order_by(ChannelCode.id)).all()
            if codes and all(status != "pending" for status, _ in codes) or time.monotonic() > deadline:
                return [config_id for status, config_id in codes if status == "active" and config_id]
            time.sleep(0.5)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["seed"]:
        raise SystemExit("usage: python -m siyu.demo seed [--reset]")
    info = prepare(reset="--reset" in argv)
    print(json.dumps(dataclasses.asdict(info), ensure_ascii=False))


if __name__ == "__main__":
    main()
