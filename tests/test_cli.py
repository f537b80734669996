"""The `siyu` command as an operator meets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _siyu(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("siyu")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "siyu.cli"]
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60)


def test_help_lists_the_commands():
    result = _siyu("--help")
    assert result.returncode == 0, result.stderr
    for command in ("demo", "serve", "worker", "db", "bench", "audit"):
        assert any(line.strip(" │|").startswith(command + " ") for line in result.stdout.splitlines()), (
            f"`siyu --help` does not list {command}:\n{result.stdout}"
        )


@pytest.mark.parametrize("group", ["db", "audit"])
def test_command_groups_have_help(group):
    result = _siyu(group, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_unknown_bench_scenario_is_a_clear_error():
    result = _siyu("bench", "no-such-scenario")
    assert result.returncode == 2
    assert "unknown scenario: no-such-scenario" in result.stderr
