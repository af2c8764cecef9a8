"""The command line: refuses configurations that would silently lose events before it does
anything, fails cleanly where a newcomer can go wrong, and prints nothing that is noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatr import cli
from tests.support.processes import embedded_environment

ROOT = Path(__file__).resolve().parents[2]


def _chatr(
    *arguments: str, env: dict[str, str], cwd: Path, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """`python -m chatr.cli ARGUMENTS` without a terminal (stdin from /dev/null)."""
    return subprocess.run(
        [sys.executable, "-m", "chatr.cli", *arguments],
        env=env,
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_refuses_several_workers_without_a_shared_broker_before_migrating(
    tmp_path: Path,
) -> None:
    result = _chatr("serve", "--workers", "2", env=embedded_environment(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
    # refused before anything was done: no database was created, let alone migrated
    assert not (tmp_path / "chatr.db").exists()
    assert "alembic" not in result.stderr


def test_serve_help_describes_every_option_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    options = [
        ("--host HOST", "(default: 127.0.0.1)"),
        ("--port PORT", "(default: 8000)"),
        ("--workers WORKERS", "(default: 1)"),
        ("--migrate", "(default: only on SQLite"),
        ("--trusted-proxies IPS", "(default: CHATR_TRUSTED_PROXIES"),
    ]
    starts = [text.index(option + " ") for option, _ in options] + [len(text)]
    for (option, default), start, end in zip(options, starts, starts[1:], strict=False):
        entry = text[start + len(option) : end]
        description = entry.split("(default:")[0].split()
        assert len(description) >= 3, (option, entry)
        assert default in entry, (option, entry)


def test_migrate_prints_the_revisions_it_applies_and_none_of_alembics_start_up_chatter(
    tmp_path: Path,
) -> None:
    env = embedded_environment(tmp_path)
    first = _chatr("migrate", env=env, cwd=tmp_path)
    again = _chatr("migrate", env=env, cwd=tmp_path)
    assert (first.returncode, again.returncode) == (0, 0)
    assert "Running upgrade  -> 0001" in first.stderr
    for output in (first.stderr, again.stderr):
        assert "setup plugin" not in output
        assert "Context impl" not in output
        assert "Will assume" not in output
    # nothing left to apply, nothing to say
    assert again.stdout + again.stderr == ""


def test_a_migration_that_cannot_reach_its_database_says_so_in_one_line(tmp_path: Path) -> None:
    env = embedded_environment(
        tmp_path, DATABASE_URL="postgresql://postgres:s3cret@127.0.0.1:1/none"
    )
    result = _chatr("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("chatr: cannot reach the database (postgresql+asyncpg://postgres:***@")
    assert line.endswith("Connection refused")
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("CHATR_RATE_LIMITS", "bogus", "is not one of strict, generous, off"),
        ("CHATR_TRUSTED_PROXIES", "10.0.0.0/33", "is not an IP or network"),
        ("CHATR_MAX_BATCH", "ten", "is not a whole number"),
        ("CHATR_SEND_BATCH_CONCURRENCY", "0", "is less than 1"),
        ("CHATR_SEND_HOLD_MS", "-1", "is less than 0"),
        ("CHATR_LIVE_TICK_SECONDS", "soon", "is not a number"),
        ("CHATR_SEND_MESSAGE_LIMIT", "lots", "is not a rate like '100 per minute'"),
    ],
)
def test_a_setting_that_cannot_be_used_stops_serve_with_its_name_and_no_traceback(
    tmp_path: Path, variable: str, value: str, complaint: str
) -> None:
    env = embedded_environment(tmp_path, **{variable: value})
    result = _chatr("serve", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"chatr: {variable}: {value!r} {complaint}"
    # refused before anything was done
    assert not (tmp_path / "chatr.db").exists()


def test_create_admin_without_a_terminal_or_password_variable_exits_with_a_clear_error(
    tmp_path: Path,
) -> None:
    result = _chatr("create-admin", "root", env=embedded_environment(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "set CHATR_ADMIN_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "chatr.db").exists()


def test_create_admin_takes_the_password_from_the_environment(tmp_path: Path) -> None:
    env = embedded_environment(tmp_path, CHATR_ADMIN_PASSWORD="Admin-pass-1")
    result = _chatr("create-admin", "root", "--email", "root@example.com", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "root (id 1) is an administrator" in result.stdout


def test_scripts_chatr_runs_the_command_line_from_anywhere(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "chatr"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "demo", "migrate", "create-admin", "export-schema"):
        assert command in result.stdout


def test_export_schema_writes_the_sdl(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    assert cli.main(["export-schema", "-o", str(target)]) == 0
    assert "type Mutation" in target.read_text()
