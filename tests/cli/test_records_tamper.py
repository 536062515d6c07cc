"""An operator with the home edits a real generation's row in ``<home>/xp.db`` with sqlite3: ``xp verify``,
``xp audit show`` and ``xp audit verify`` report the tampering (exit 20, naming the generation and the column)
instead of the edited value, and all pass again once the row is put back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli.helpers import Deployment, assert_error
from xp_sdk.errors import AuditIntegrityError


@contextmanager
def edited_generation(database: Path, generation_id: str, column: str, value: object) -> Iterator[None]:
    """``UPDATE generations SET column = value`` with the sqlite3 module (no ledger, no log), undone on exit."""
    with sqlite3.connect(database) as db:
        (original,) = db.execute(f"SELECT {column} FROM generations WHERE id = ?", (generation_id,)).fetchone()
        db.execute(f"UPDATE generations SET {column} = ? WHERE id = ?", (value, generation_id))
    try:
        yield
    finally:
        with sqlite3.connect(database) as db:
            db.execute(f"UPDATE generations SET {column} = ? WHERE id = ?", (original, generation_id))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("tenant_id", "someone-else"),  # `xp verify` would show the record to, and as, another tenant
        ("output_sha256", "0" * 64),  # the clip would no longer match its record
        ("status", "failed"),
        ("created_at", "2020-01-01 00:00:00.000000"),
    ],
)
def test_a_tampered_generation_row_is_reported_not_believed(deployment: Deployment, column: str, value: str) -> None:
    generation = deployment.animation["generation_id"]
    clip = deployment.animation["output"]
    reads = [("verify", clip), ("audit", "show", generation), ("audit", "verify")]
    honest = deployment.xp("verify", clip, "--json").json()
    assert honest["generation"]["id"] == generation and honest["generation"]["file_matches_record"] is True

    with edited_generation(deployment.home / "xp.db", generation, column, value):
        for args in reads:
            assert_error(deployment.xp(*args, "--json"), AuditIntegrityError.exit_code, generation, column)

    for args in reads:
        assert deployment.xp(*args, "--json").code == 0
    assert deployment.xp("verify", clip, "--json").json()["generation"] == honest["generation"]
