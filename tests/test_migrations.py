"""The Alembic migrations build exactly the schema the models declare, on the test database
(SQLite, or PostgreSQL with SIYU_TEST_DATABASE_URL), and `siyu db upgrade` can run again."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

import siyu
from siyu.db import make_engine
from siyu.migrate import alembic_config, upgrade
from siyu.models import load_all

SCHEMA = "siyu_migration_check"


@pytest.fixture
def freshly_migrated(database_url, tmp_path):
    """An engine on a database that only the migrations built, on the test database's kind: a new
    SQLite file, or a new schema in the PostgreSQL test database. (The shared test database may hold
    tables that tests create for themselves.)"""
    if make_url(database_url).get_backend_name() == "postgresql":
        admin = make_engine(database_url)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        url = make_url(database_url).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
        url = url.render_as_string(hide_password=False)
    else:
        admin, url = None, f"sqlite:///{tmp_path / 'migrated.db'}"
    upgrade("head", url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            admin.dispose()


def _every_models_module() -> None:
    """Imports `siyu.<package>.models` for every package in siyu, listed in DOMAINS or not, so the
    comparison does not depend on which modules earlier tests happened to import."""
    for module in pkgutil.iter_modules(siyu.__path__):
        if not module.ispkg:
            continue
        name = f"siyu.{module.name}.models"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a models module that is there but imports something missing
                raise


def test_models_and_migrations_agree(freshly_migrated):
    """A model change without its migration (or the reverse) shows up here as a difference."""
    metadata = load_all().metadata
    _every_models_module()
    with freshly_migrated.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"},
        )
        diff = compare_metadata(context, metadata)
    hint = "add the migration (a new domain also goes in siyu.DOMAINS, or Alembic does not see its models)"
    assert diff == [], f"models and migrations differ; {hint}:\n" + "\n".join(map(str, diff))


def test_database_is_at_the_single_head(engine):
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"the migrations have several heads, merge them: {heads}"
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == tuple(heads)


def _siyu(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # The installed console script when there is one (it is what operators run), else the module.
    script = Path(sys.executable).with_name("siyu")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "siyu.cli"]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120)


def test_db_upgrade_twice_is_harmless(tmp_path):
    db = tmp_path / "upgrade.db"
    env = dict(
        os.environ, SIYU_DATABASE_URL=f"sqlite:///{db}", SIYU_DATA_DIR=str(tmp_path / "var"), SIYU_LOG_LEVEL="WARNING"
    )
    first = _siyu("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(db) as conn:
        tables_after_first = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()

    second = _siyu("db", "upgrade", env=env)
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == tables_after_first
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == version
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert [v for (v,) in version] == heads


def test_logins_become_unique_per_corp_without_losing_staff(tmp_path):
    """0009_logins: staff created under installation-wide logins keep their rows (and their password
    hashes); afterwards a second corp may give out a login the first uses, but a corp not twice."""
    url = f"sqlite:///{tmp_path / 'logins.db'}"
    upgrade("0007_communities", url)
    engine = make_engine(url)
    try:
        staff_columns = "corp_id, login, name, password_hash, is_active, sees_department, created_at"
        with engine.begin() as conn:
            for slug in ("bank", "broker"):
                conn.execute(text("INSERT INTO corp (slug, name, is_active, created_at) "
                                  "VALUES (:slug, :slug, 1, '2026-01-01')"), {"slug": slug})
            conn.execute(text(f"INSERT INTO staff ({staff_columns}) VALUES "
                              "(1, 'wang.fang', '王芳', 'argon2-hash', 1, 0, '2026-01-01')"))
        upgrade("head", url)
        insert = text(f"INSERT INTO staff ({staff_columns}) VALUES "
                      "(:corp, 'wang.fang', '王芳', NULL, 1, 0, '2026-01-01')")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT corp_id, login, password_hash FROM staff")).all() == [
                (1, "wang.fang", "argon2-hash")]
            conn.execute(insert, {"corp": 2})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"corp": 1})
    finally:
        engine.dispose()
