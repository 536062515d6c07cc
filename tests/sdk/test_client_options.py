"""``client.with_options(timeout=..., max_retries=...)``: a configured copy, the original unchanged, both clients.

The network is real: a loopback socket that accepts connections and never answers, so a request can only end
by its timeout, and each attempt is one connection the socket counts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

import xp_sdk
from xp_sdk import AsyncClient, Client, init_deployment


@dataclass
class Silent:
    """A server that takes connections and says nothing."""

    url: str
    connections: list[socket.socket] = field(default_factory=list)


@pytest.fixture
def silent() -> Iterator[Silent]:
    listener = socket.create_server(("127.0.0.1", 0))
    server = Silent(url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            server.connections.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stopping.set()
        listener.close()
        thread.join(5)
        for connection in server.connections:
            connection.close()


def test_with_options_is_a_copy_with_other_settings(silent: Silent) -> None:
    client = Client("xp_key", base_url=silent.url, timeout=600, max_retries=2)
    patient = client.with_options(timeout=30, max_retries=5)
    assert (patient.timeout, patient.max_retries) == (30, 5) and (client.timeout, client.max_retries) == (600, 2)
    assert patient.with_options(max_retries=0).timeout == 30  # what is not given stays
    assert patient.audit._client is patient and client.audit._client is client
    client.close()


def test_the_copy_times_out_and_retries_as_told(silent: Silent) -> None:
    client = Client("xp_key", base_url=silent.url)
    impatient = client.with_options(timeout=0.5, max_retries=1)
    with pytest.raises(xp_sdk.APITimeoutError):
        impatient.subjects.list()  # a read: safe to try again once after it timed out
    assert len(silent.connections) == 2
    with pytest.raises(xp_sdk.APITimeoutError):
        impatient.with_options(max_retries=0).subjects.list()
    assert len(silent.connections) == 3
    client.close()


def test_the_async_copy_times_out_and_retries_as_told(silent: Silent) -> None:
    async def run() -> tuple[float, int]:
        async with AsyncClient("xp_key", base_url=silent.url) as client:
            impatient = client.with_options(timeout=0.5, max_retries=1)
            with pytest.raises(xp_sdk.APITimeoutError):
                await impatient.subjects.list()
            return client.timeout, client.max_retries

    assert anyio.run(run) == (600.0, 2)  # the original keeps its own
    assert len(silent.connections) == 2


def test_bad_options_are_refused_with_a_typed_error(silent: Silent) -> None:
    with Client("xp_key", base_url=silent.url) as client:
        with pytest.raises(xp_sdk.InvalidInputError, match="max_retries"):
            client.with_options(max_retries=-1)
        with pytest.raises(xp_sdk.InvalidInputError, match="timeout"):
            client.with_options(timeout=0)


def test_an_embedded_client_copies_onto_the_same_deployment(tmp_path: Path) -> None:
    init = init_deployment(tmp_path / "home", tenant="acme")
    with Client(init.api_key.secret, home=init.home) as client:
        patient = client.with_options(timeout=5)
        assert patient.deployment is client.deployment and (patient.timeout, client.timeout) == (5, 600)
        assert [k.id for k in patient.keys.list()] == [k.id for k in client.keys.list()]
        with pytest.raises(xp_sdk.InvalidInputError, match="max_retries"):
            client.with_options(max_retries=-1)
