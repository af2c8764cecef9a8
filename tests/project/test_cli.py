"""The command line refuses configurations that would silently lose events."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatr import cli


def test_serve_refuses_several_workers_without_a_shared_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("REDIS_URL", "CHATR_REDIS_URL", "DATABASE_URL", "CHATR_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CHATR_DATA_DIR", str(tmp_path))
    assert cli.main(["serve", "--workers", "2"]) == 2
    assert "REDIS_URL" in capsys.readouterr().err


def test_export_schema_writes_the_sdl(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    assert cli.main(["export-schema", "-o", str(target)]) == 0
    assert "type Mutation" in target.read_text()
