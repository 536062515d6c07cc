"""The abandoned-generation sweeper closes old unfinished generations, and never one its own server still holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from audit import Ledger
from xp_sdk import init_deployment
from xp_sdk.config import Settings
from xp_sdk.deployment import Deployment
from xp_sdk.server.app import create_app
from xp_sdk.server.serve import BackgroundServer
from xp_sdk.server.sweeper import AbandonedSweeper


@dataclass
class Home:
    deployment: Deployment
    key_id: str

    @property
    def ledger(self) -> Ledger:
        return self.deployment.ledger

    def requested(self, generation_id: str) -> None:
        self.ledger.record_requested(
            generation_id, tenant_id="acme", key_id=self.key_id, subject_id=None, consent_id=None,
            decision={"allowed": True}, source_sha256="0" * 64, driving="template:smile", request={},
        )  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    init = init_deployment(tmp_path / "home", tenant="acme")
    deployment = Deployment.open(Settings.resolve(home=init.home))
    try:
        yield Home(deployment, init.api_key.info.id)
    finally:
        deployment.close()


def test_a_sweep_closes_old_generations_but_not_held_or_young_ones(home: Home) -> None:
    home.requested("00000000000000a1")
    home.requested("00000000000000a2")
    time.sleep(0.3)
    home.requested("00000000000000a3")  # younger than the age below
    sweeper = AbandonedSweeper(home.ledger, older_than=timedelta(seconds=0.2), active=lambda: {"00000000000000a2"})
    assert sweeper.sweep() == ["00000000000000a1"]
    closed = home.ledger.generation("00000000000000a1")
    assert closed.status == "failed" and closed.error_code == "abandoned"
    assert home.ledger.generation("00000000000000a2").status == "requested"  # held by a live job
    assert home.ledger.generation("00000000000000a3").status == "requested"
    assert sweeper.sweep() == []  # nothing is closed twice


def test_a_server_with_the_sweeper_closes_what_a_dead_server_left(home: Home) -> None:
    home.requested("00000000000000b1")  # as if the last server died mid-generation
    app = create_app(home.deployment, close_abandoned_after=timedelta(seconds=0.1))
    with BackgroundServer(app):
        deadline = time.monotonic() + 20
        while home.ledger.generation("00000000000000b1").status == "requested":
            assert time.monotonic() < deadline, "the sweeper did not close the abandoned generation"
            time.sleep(0.05)
    assert home.ledger.generation("00000000000000b1").error_code == "abandoned"


def test_without_the_option_a_server_closes_nothing(home: Home) -> None:
    home.requested("00000000000000c1")
    with BackgroundServer(create_app(home.deployment)):
        time.sleep(0.5)
    assert home.ledger.generation("00000000000000c1").status == "requested"


def test_an_age_that_is_not_positive_is_refused(home: Home) -> None:
    with pytest.raises(ValueError, match="positive"):
        AbandonedSweeper(home.ledger, older_than=timedelta(0), active=set)
