"""`siyu bench sop`: one week of group SOP content for 2,000 groups, planned and sent over the
emulator by real `siyu worker` processes, the simulated owners confirming each mass message.

A fresh installation on SQLite and a strict emulator (a mass message waits for its owner). The corp
has `--owners` group owners sharing `--groups` groups in one group set, with the standard week
applied as a template: Mon/Wed/Fri 09:30 product content, Tue/Thu 20:00 games, Friday 19:00 the
weekly activity. Siyu plans next week's slot times (`sop.service.plan`: one run per slot time, one
send per owner), each slot's text approved by compliance.

Compressed clock: the week is replayed `--scale` times faster. Each run's due time becomes
`t0 + (due − Monday 00:00) / scale` (the default 1008 plays the week in 10 minutes, Friday 09:30
and 19:00 become 34 s apart), and the send jobs are enqueued at those times with the usual deadline
(due + the confirmation window). A thread plays the owners: it polls the emulator's list of
unconfirmed mass messages and confirms each at once. Figures:

* slots: slot deliveries planned (slot times × the set's groups); slot_times; sends (mass messages due);
* missed: slot deliveries not confirmed-sent when the run ends;
* sent_twice: mass messages WeCom made beyond one per send (the emulator's count against Siyu's msgids);
* lateness_p99_s / lateness_max_s: per slot delivery, from its compressed due time to the send time
  WeCom recorded (whole seconds, as WeCom gives them); handed_p99_s: to the moment WeCom made the task;
* baseline: the same add_msg_template calls (same senders, chat_id_list and text), made directly by a
  tight httpx loop on a twin corp with no Siyu in between: baseline_sends_per_s; and Siyu's own
  rate at each slot time's burst (siyu_burst_sends_per_s, median over slot times: sends / (last
  handed − due))."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import threading
import time
import uuid
from typing import Any

import httpx

from siyu.bench.common import (
    BenchError,
    Installation,
    approve_submitted_content,
    free_port,
    percentile,
    stop_processes,
    workdir,
)

TEXTS = {
    "product": "本周稳健理财产品解读：R2中低风险，过往业绩不代表未来表现。市场有风险，投资需谨慎。",
    "interaction": "互动时间：猜猜本周五沪深300收盘点位，最接近的前三位有小礼品。",
    "culture": "周五活动：今晚8点理财知识直播，欢迎带着问题来。",
}


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="siyu bench sop", description=__doc__.splitlines()[0])
    p.add_argument("--groups", type=int, default=2000, help="groups in the set")
    p.add_argument("--owners", type=int, default=100, help="group owners (the groups are spread evenly)")
    p.add_argument("--scale", type=float, default=1008.0, help="how much faster than real time the week plays")
    p.add_argument("--workers", type=int, default=1, help="`siyu worker` processes")
    p.add_argument("--worker-concurrency", type=int, default=8, help="executor threads per worker process")
    p.add_argument("--keep", metavar="DIR", help="run in DIR (new or empty) and keep it")
    return p.parse_args(argv)


def _setup(inst: Installation, *, emulator_url: str, owners: list[str], chats: dict[str, str]) -> tuple[str, str, Any]:
    """The Siyu corp (connection, owners, groups in one set, the standard week approved) and the
    emulator's seed: the corp and a twin for the baseline, each with the same groups."""
    from sqlalchemy.orm import Session

    from siyu.communities.models import GroupChat, GroupSet
    from siyu.db import make_engine
    from siyu.sop import service
    from siyu.sop.models import SopSettings
    from siyu.tenancy import service as tenancy
    from siyu.tenancy.principal import Principal
    from siyu.wecom import service as wecom
    from siyu.wecom.crypto import generate_aes_key

    wecom_id = "wwsop" + uuid.uuid4().hex[:10]
    secret = "bench-" + uuid.uuid4().hex
    engine = make_engine(inst.database_url)
    with Session(engine) as s, s.begin():
        corp = tenancy.create_corp(s, slug="bench", name="压测银行")
        wecom.configure_connection(s, corp_id=corp.id, actor="bench", wecom_corp_id=wecom_id, secret=secret,
                                   token="benchtoken", aes_key=generate_aes_key(), base_url=emulator_url + "/cgi-bin/")
        for u in owners:
            tenancy.create_staff(s, corp_id=corp.id, login=f"{u}.bench", name=u, roles=["advisor"], password=None,
                                 wecom_userid=u)
        ops = tenancy.create_staff(s, corp_id=corp.id, login="ops.bench", name="运营", roles=["operations"],
                                   password=None)
        principal = Principal(corp_id=corp.id, kind="staff", label=ops.login, staff_id=ops.id,
                              roles=frozenset({"operations"}))
        group_set = GroupSet(corp_id=corp.id, name="压测群组", positioning="product")
        s.add(group_set)
        s.flush()
        s.add_all([GroupChat(corp_id=corp.id, chat_id=chat_id, name=f"理财{i}群", owner_userid=owner,
                             group_set_id=group_set.id, member_count=1)
                   for i, (chat_id, owner) in enumerate(chats.items())])
        s.add(SopSettings(corp_id=corp.id, app_agent_id=1000002, notice_lead_minutes=1, confirm_window_minutes=5,
                          late_after_minutes=1, check_seconds=2))
        template = service.create_template(s, principal=principal, name="标准周")
        service.add_slots(s, principal=principal, template_id=template.id, weekdays=[0, 2, 4], time="09:30",
                          content_type="product", title="产品内容", text=TEXTS["product"])
        service.add_slots(s, principal=principal, template_id=template.id, weekdays=[1, 3], time="20:00",
                          content_type="interaction", title="互动游戏", text=TEXTS["interaction"])
        service.add_slots(s, principal=principal, template_id=template.id, weekdays=[4], time="19:00",
                          content_type="culture", title="周五活动", text=TEXTS["culture"])
        service.apply_template(s, principal=principal, set_id=group_set.id, template_id=template.id)
        approve_submitted_content(s, corp_id=corp.id)
        corp_id = corp.id
    engine.dispose()
    staff = [{"userid": u, "name": u} for u in owners]
    seeded = [{"chat_id": c, "owner": o, "name": "群"} for c, o in chats.items()]
    seed = [{"corp_id": wecom_id, "name": "压测银行", "secret": secret, "staff": staff, "group_chats": seeded},
            {"corp_id": wecom_id + "b", "name": "基线", "secret": secret, "staff": staff, "group_chats": seeded}]
    seed_file = inst.root / "emulator-seed.json"
    seed_file.write_text(json.dumps(seed, ensure_ascii=False), encoding="utf-8")
    return wecom_id, secret, (corp_id, seed_file)


def _plan_compressed(inst: Installation, corp_id: int, *, scale: float, lead_s: float) -> tuple[dt.datetime, dict]:
    """Plan next week, then replay it compressed from t0 (now + lead_s). Returns t0 and each run's
    compressed due time."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from siyu.db import make_engine, utcnow
    from siyu.sop import service
    from siyu.sop.jobs import enqueue_send_jobs
    from siyu.sop.models import SopRun, SopSend

    engine = make_engine(inst.database_url)
    today = service.local_day(utcnow())
    monday = service.week_start(today) + dt.timedelta(days=7)
    week_start = service.local_due(monday, 0)
    t0 = utcnow() + dt.timedelta(seconds=lead_s)
    with Session(engine) as s, s.begin():
        result = service.plan(s, corp_id=corp_id, start=week_start, end=week_start + dt.timedelta(days=7),
                              enqueue_jobs=False)
        dues = {}
        for run in s.scalars(select(SopRun).where(SopRun.corp_id == corp_id)):
            run.due_at = t0 + (run.due_at - week_start) / scale
            dues[run.id] = run.due_at
        s.flush()
        sends = list(s.scalars(select(SopSend).where(SopSend.id.in_(result.send_ids))))
        enqueue_send_jobs(s, corp_id=corp_id, sends=sends)
    engine.dispose()
    return t0, dues


class Owners(threading.Thread):
    """The simulated owners: every mass message waiting for a member is confirmed at once."""

    def __init__(self, admin: httpx.Client) -> None:
        super().__init__(daemon=True)
        self.admin, self.stop = admin, threading.Event()
        self.confirmed = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for m in self.admin.get("/mass_messages/pending").json():
                    for userid in m["userids"]:
                        self.admin.post(f"/mass_messages/{m['msgid']}/confirm", json={"userid": userid})
                        self.confirmed += 1
            except httpx.HTTPError:
                pass
            self.stop.wait(0.25)


def _baseline(emulator_url: str, corp_id: str, secret: str, by_owner: dict[str, list[str]], rounds: int
              ) -> float:
    """The same add_msg_template calls, straight from a tight loop: calls per second."""
    from siyu.wecom.client import WeComClient

    with WeComClient(corp_id, secret, base_url=emulator_url + "/cgi-bin/") as client:
        client.access_token()
        started = time.perf_counter()
        calls = 0
        for r in range(rounds):
            for owner, chats in by_owner.items():
                client.add_msg_template(chat_type="group", sender=owner, chat_ids=chats,
                                        text=list(TEXTS.values())[r % len(TEXTS)])
                calls += 1
        return calls / (time.perf_counter() - started)


def main(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    owners = [f"owner{i:03d}" for i in range(args.owners)]
    chats = {f"wrbench{i:05d}": owners[i % len(owners)] for i in range(args.groups)}
    by_owner: dict[str, list[str]] = {}
    for chat_id, owner in chats.items():
        by_owner.setdefault(owner, []).append(chat_id)
    with workdir(args.keep) as root:
        inst = Installation(root)
        inst.activate()
        emulator_port = free_port()
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        wecom_id, secret, (corp_id, seed_file) = _setup(inst, emulator_url=emulator_url, owners=owners, chats=chats)
        owners_thread = None
        try:
            inst.spawn("emulator", "emulator", "--port", str(emulator_port), "--seed-file", str(seed_file))
            inst.wait_http(emulator_url + "/_emulator/health")
            admin = httpx.Client(base_url=f"{emulator_url}/_emulator/corps/{wecom_id}", timeout=30)
            t0, dues = _plan_compressed(inst, corp_id, scale=args.scale, lead_s=20)
            for i in range(args.workers):
                inst.spawn(f"worker-{i}", "worker", "--concurrency", str(args.worker_concurrency))
            owners_thread = Owners(admin)
            owners_thread.start()
            last_due = max(dues.values())
            deadline = last_due + dt.timedelta(minutes=5, seconds=30)
            while True:
                done, total = _progress(inst, corp_id, set(dues))
                if done >= total or dt.datetime.now(dt.UTC) > deadline:
                    break
                time.sleep(1)
            figures = _figures(inst, corp_id, dues, admin.get("/mass_messages").json())
            owners_thread.stop.set()
            admin.close()
            stop_processes([p for name, p in inst.procs if name.startswith("worker")])  # the baseline has the machine
            baseline = _baseline(emulator_url, wecom_id + "b", secret, by_owner, rounds=3)
        except BenchError as exc:
            raise BenchError(f"{exc}\n{inst.log_tail('worker-0')}\n{inst.log_tail('emulator')}") from None
        finally:
            if owners_thread is not None:
                owners_thread.stop.set()
            inst.stop()
    return {**figures, "baseline_sends_per_s": round(baseline, 1), "scale": args.scale,
            "week_replayed_in_s": round(7 * 86400 / args.scale, 1), "groups": args.groups, "owners": args.owners,
            "database": "sqlite", "workers": args.workers, "worker_concurrency": args.worker_concurrency}


def _progress(inst: Installation, corp_id: int, run_ids: set[int]) -> tuple[int, int]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from siyu.db import make_engine
    from siyu.sop.models import SopSend
    from siyu.sop.service import TERMINAL

    engine = make_engine(inst.database_url)
    with Session(engine) as s:
        total = s.scalar(select(func.count()).select_from(SopSend).where(SopSend.run_id.in_(run_ids)))
        done = s.scalar(select(func.count()).select_from(SopSend).where(SopSend.run_id.in_(run_ids),
                                                                        SopSend.state.in_(TERMINAL)))
    engine.dispose()
    return done or 0, total or 0


def _figures(inst: Installation, corp_id: int, dues: dict[int, dt.datetime], messages: list[dict]) -> dict:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from siyu.db import make_engine
    from siyu.sop.models import SopSend

    engine = make_engine(inst.database_url)
    with Session(engine) as s:
        sends = list(s.scalars(select(SopSend).where(SopSend.run_id.in_(set(dues)))))
        for x in sends:
            s.expunge(x)
    engine.dispose()
    by_msgid = {m["msgid"]: m for m in messages}
    recorded = [x.msgid for x in sends if x.msgid]
    slots = sum(len(x.chat_ids) for x in sends)
    lateness, handed = [], []
    bursts: dict[int, list[float]] = {}
    delivered = 0
    for x in sends:
        m = by_msgid.get(x.msgid or "")
        if m is None:
            continue
        due = dues[x.run_id].timestamp()
        handed.append(m["created"] - due)
        bursts.setdefault(x.run_id, []).append(m["created"] - due)
        for r in m["results"]:
            if r["status"] == 1 and r.get("send_time"):
                delivered += 1
                lateness.append(r["send_time"] - due)
    rates = [len(v) / max(max(v), 0.001) for v in bursts.values() if v]
    states: dict[str, int] = {}
    for x in sends:
        states[x.state] = states.get(x.state, 0) + 1
    return {
        "slots": slots,
        "slot_times": len(dues),
        "sends": len(sends),
        "missed": slots - delivered,
        "sent_twice": len([m for m in messages if m["chat_type"] == "group"]) - len(set(recorded)),
        "lateness_p50_s": round(percentile(lateness, 0.50), 1),
        "lateness_p99_s": round(percentile(lateness, 0.99), 1),
        "lateness_max_s": round(max(lateness), 1) if lateness else None,
        "handed_p99_s": round(percentile(handed, 0.99), 2),
        "siyu_burst_sends_per_s": round(statistics.median(rates), 1) if rates else None,
        "send_states": states,
    }
