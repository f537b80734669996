"""The per-request transaction (`siyu.db.get_session`) ends before the response is sent: a commit that
fails is answered as an error, and a write the client was told about is already visible to others."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from siyu import db
from siyu.errors import install_error_handlers


class _Base(DeclarativeBase):
    pass


class Thing(_Base):
    __tablename__ = "thing"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


@pytest.fixture
def factory(tmp_path, monkeypatch) -> sessionmaker[Session]:
    """Requests run on a database of their own (so the shared test database gains no table)."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'requests.db'}")
    _Base.metadata.create_all(engine)
    made = sessionmaker(engine, expire_on_commit=False)
    monkeypatch.setattr(db, "_factory", made)
    yield made
    engine.dispose()


def _count(factory: sessionmaker[Session], name: str) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(Thing).where(Thing.name == name))


def _client(factory: sessionmaker[Session]) -> tuple[TestClient, dict[str, int]]:
    """A client of a small app; `seen` holds, per name, the rows another connection saw at the moment
    the response started."""
    app = FastAPI()
    install_error_handlers(app)
    seen: dict[str, int] = {}

    def shared(session: Session = Depends(db.get_session)) -> Session:
        return session

    @app.post("/things/{name}", status_code=201)
    def add(name: str, session: Session = Depends(db.get_session), other: Session = Depends(shared)):
        assert other is session  # one Session per request, however many dependencies ask for it
        session.add(Thing(name=name))  # not flushed: a duplicate fails only when committed
        return {"name": name}

    @app.get("/things/{name}")
    def show(name: str, session: Session = Depends(db.get_session)):
        return {"count": session.scalar(select(func.count()).select_from(Thing).where(Thing.name == name))}

    def watch(inner):
        async def asgi(scope, receive, send):
            async def watched_send(message):
                if message["type"] == "http.response.start" and scope["method"] == "POST":
                    name = scope["path"].rsplit("/", 1)[-1]
                    seen[name] = _count(factory, name)
                await send(message)

            await inner(scope, receive, watched_send)

        return asgi

    return TestClient(watch(app), raise_server_exceptions=True), seen


def test_a_write_is_committed_before_the_response_starts(factory):
    client, seen = _client(factory)
    response = client.post("/things/alpha")
    assert response.status_code == 201
    assert seen["alpha"] == 1  # committed before the client heard of it
    assert client.get("/things/alpha").json() == {"count": 1}


def test_a_commit_that_fails_is_answered_as_an_error(factory):
    with factory() as s:
        s.add(Thing(name="taken"))
        s.commit()
    client, seen = _client(factory)
    response = client.post("/things/taken")
    assert response.status_code == 409, response.text
    assert "conflicts" in response.json()["detail"]
    assert seen["taken"] == 1 and _count(factory, "taken") == 1
    # The failed request's transaction was rolled back: the next write goes through.
    assert client.post("/things/other").status_code == 201


def test_a_database_that_stays_locked_is_answered_503_and_nothing_is_saved(tmp_path, monkeypatch):
    """A write that cannot get the SQLite write lock within the busy timeout is a 503 with Retry-After
    (the caller may try again), not a 500, and leaves nothing behind."""
    import threading

    url = f"sqlite:///{tmp_path / 'busy.db'}"
    engine = db.make_engine(url, busy_timeout=0.2)
    _Base.metadata.create_all(engine)
    made = sessionmaker(engine, expire_on_commit=False)
    monkeypatch.setattr(db, "_factory", made)
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things/{name}", status_code=201)
    def add(name: str, session: Session = Depends(db.get_session)):
        session.add(Thing(name=name))
        return {"name": name}

    client = TestClient(app)
    holding, done = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with made() as s:
            s.add(Thing(name="holder"))
            s.flush()  # BEGIN IMMEDIATE: this transaction has the write lock until it ends
            holding.set()
            done.wait(10)
            s.rollback()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(5)
        response = client.post("/things/beta")
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert "busy" in response.json()["detail"]
    finally:
        done.set()
        holder.join()
    assert _count(made, "beta") == 0
    assert client.post("/things/beta").status_code == 201  # once the lock is free, the write goes through
    engine.dispose()
