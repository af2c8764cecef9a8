"""The committed schema.graphql is exactly what the code exports."""

from __future__ import annotations

from pathlib import Path

from chatr.schema import export_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == export_sdl(), (
        "schema.graphql is out of date: run `chatr export-schema` and commit the result"
    )
