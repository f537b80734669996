"""The SQLite write turn: handed from one transaction to the next across threads and processes,
owned by the connection (a request may begin its transaction in one thread and commit in another)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from sqlalchemy import text

from siyu.db import make_engine, write_turn


def test_a_transaction_begun_in_one_thread_and_committed_in_another_gives_the_turn_back(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (n INTEGER)"))
    conn = engine.connect()
    began = threading.Event()

    def begin() -> None:
        conn.begin()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        began.set()

    t = threading.Thread(target=begin)
    t.start()
    t.join()
    assert began.is_set()
    conn.commit()  # in this thread
    conn.close()
    started = time.monotonic()
    with engine.begin() as c:  # would wait 30 s if the turn were still held
        c.execute(text("INSERT INTO t VALUES (2)"))
    assert time.monotonic() - started < 1
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar() == 2
    engine.dispose()


def test_another_process_waits_for_the_turn_and_gets_it_when_released(tmp_path):
    db = tmp_path / "p.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (n INTEGER)"))
    holder = engine.connect()
    holder.begin()
    holder.execute(text("INSERT INTO t VALUES (1)"))
    assert write_turn(str(db)).held
    child = subprocess.Popen([sys.executable, "-c", (
        "import time,sys; from sqlalchemy import text; from siyu.db import make_engine\n"
        f"e = make_engine('sqlite:///{db}'); print('ready', flush=True); t0 = time.monotonic()\n"
        "with e.begin() as c: c.execute(text('INSERT INTO t VALUES (2)'))\n"
        "print(round((time.monotonic() - t0) * 1000))")], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    assert child.poll() is None, "the child waits while this process holds the turn"
    holder.commit()
    holder.close()
    out, _ = child.communicate(timeout=30)
    waited_ms = int(out.strip().splitlines()[-1])
    assert 400 <= waited_ms < 5000
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar() == 2
    engine.dispose()
