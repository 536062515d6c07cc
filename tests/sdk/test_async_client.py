"""``xp_sdk.AsyncClient``: ``Client``'s resources and errors, awaited, against a live server (over
``httpx.AsyncClient``) and in process (the deployment's blocking work in worker threads, the event loop free)."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import xp_sdk
import xp_sdk.errors
from xp_sdk import AsyncClient, Client
from xp_sdk.engine import Progress
from xp_sdk.verification import GenerationRecord, Verification

from ..server.conftest import Deployed, serve_deployment
from ..test_readme import section, set_up_as_a_person

RESOURCES = ("audit", "subjects", "consents", "keys")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Deployed]:
    with serve_deployment(tmp_path_factory.mktemp("async"), faces) as served:
        yield served


def _public_methods(owner: object) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(getattr(owner, name))
        for name in dir(owner)
        if not name.startswith("_") and callable(getattr(owner, name)) and name not in ("close", "with_options")
    }


def test_every_documented_error_is_exported_from_the_package() -> None:
    assert set(xp_sdk.errors.__all__) <= set(xp_sdk.__all__)
    for name in xp_sdk.errors.__all__:
        assert getattr(xp_sdk, name) is getattr(xp_sdk.errors, name)
    root = Path(__file__).resolve().parents[2]
    documents = [root / "README.md", root / "SECURITY.md", *sorted((root / "docs").glob("*.md"))]
    named = {m for d in documents for m in re.findall(r"(?<![\w.])([A-Z]\w+Error)\b", d.read_text(encoding="utf-8"))}
    unqualified = named - {"RuntimeError"}  # Python's own; others' errors are written with their module
    assert unqualified and unqualified <= set(xp_sdk.__all__), unqualified - set(xp_sdk.__all__)


def test_a_remote_async_client_loads_no_engine_database_policy_or_provenance_library() -> None:
    from .test_lazy_import import REMOTE_ONLY_MUST_NOT_LOAD

    construct = (
        "import xp_sdk\nxp_sdk.AsyncClient(api_key='xp_000000000000_' + 'a' * 43, base_url='http://127.0.0.1:1')"
    )
    loaded = "{m.split('.')[0] for m in sys.modules}"
    probe = f"import json, sys\n{construct}\nprint(json.dumps(sorted({loaded} & {set(REMOTE_ONLY_MUST_NOT_LOAD)!r})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_the_async_client_offers_what_the_client_offers(deployed: Deployed) -> None:
    with deployed.client() as sync:
        async_client = AsyncClient(deployed.animator_key, base_url=deployed.url)
        assert inspect.iscoroutinefunction(async_client.verify)
        for resource in RESOURCES:
            wanted = _public_methods(getattr(sync, resource))
            found = _public_methods(getattr(async_client, resource))
            assert set(found) == set(wanted), resource
            for name, signature in wanted.items():
                if (resource, name) != ("subjects", "register"):  # Client's photos= also takes one photo alone
                    assert found[name] == signature, f"{resource}.{name}"
        anyio.run(async_client.close)


@pytest.mark.anyio
async def test_animate_verify_and_walk_the_audit_over_http(deployed: Deployed) -> None:
    out = deployed.out("async_remote.mp4")
    stages: list[str] = []
    async with AsyncClient(deployed.animator_key, base_url=deployed.url) as client:
        result = await client.animate(
            deployed.astronaut, subject=deployed.eileen, driving=deployed.clip, out=out,
            progress=lambda p: stages.append(p.stage),
        )  # fmt: skip
        report = await client.verify(out)
    assert out.is_file() and result.output == out and stages
    assert isinstance(report, Verification) and report.generation_id == result.generation_id
    assert isinstance(report.generation, GenerationRecord) and report.generation.subject_id == deployed.eileen
    async with AsyncClient(deployed.admin_key, base_url=deployed.url) as admin:
        events = [e async for e in admin.audit.query(generation_id=result.generation_id, limit=1)]
    types = [e.type for e in events]  # one event a page, walked across pages
    assert types[0] == "generation.requested" and {"generation.completed", "verification.performed"} <= set(types)
    assert [e.seq for e in events] == sorted(e.seq for e in events)


@pytest.mark.anyio
async def test_refusals_raise_the_same_classes_as_the_client(deployed: Deployed) -> None:
    out = deployed.out("async_refused.mp4")
    refused: list[type[BaseException]] = []
    with deployed.client() as sync:
        with pytest.raises(xp_sdk.ConsentRequiredError) as caught:
            sync.animate(deployed.woman, subject=deployed.woman_subject, driving=deployed.clip, out=out)
        refused.append(type(caught.value))
    async with AsyncClient(deployed.animator_key, base_url=deployed.url) as client:
        with pytest.raises(xp_sdk.ConsentRequiredError) as async_caught:
            await client.animate(deployed.woman, subject=deployed.woman_subject, driving=deployed.clip, out=out)
    async with AsyncClient(deployed.admin_key, base_url=deployed.url) as admin:
        with pytest.raises(xp_sdk.NotFoundError):
            await admin.subjects.get("sub_0000000000000000")
    async with AsyncClient("xp_not_a_key", base_url=deployed.url) as stranger:
        with pytest.raises(xp_sdk.AuthenticationError):
            await stranger.subjects.list()
    assert type(async_caught.value) in refused and not out.exists()


@pytest.mark.anyio
async def test_cancelling_the_task_cancels_the_servers_job(deployed: Deployed, faces: Path) -> None:
    """A task that gives up on ``animate`` (its scope cancelled) cancels the server's job, as Ctrl-C does for
    ``Client``: the generation ends failed, and no output is downloaded."""
    out = deployed.out("async_cancelled.mp4")
    running = anyio.Event()
    client = AsyncClient(deployed.animator_key, base_url=deployed.url)

    async def animate() -> None:
        await client.animate(
            deployed.astronaut, subject=deployed.eileen, driving=faces / "driving" / "lp_d5_hist.mp4", out=out,
            progress=lambda p: p.done >= 1 and running.set(),
        )  # fmt: skip

    async with client, anyio.create_task_group() as tasks:
        tasks.start_soon(animate)
        await running.wait()  # 148 frames: far from done when the cancellation is sent
        tasks.cancel_scope.cancel()
    requested = deployed.admin.audit.query(type="generation.requested", limit=1000).events[-1]
    assert requested.generation_id is not None
    for _ in range(600):  # the runner stops the job at its next frame
        record = deployed.admin.audit.show(requested.generation_id).generation
        if record.status != "requested":
            break
        await anyio.sleep(0.2)
    assert record.status == "failed" and not out.exists()


@pytest.mark.anyio
async def test_embedded_work_runs_off_the_event_loop(deployed: Deployed) -> None:
    """The progress callback (in the worker thread) waits for the event loop to answer: were the generation
    running on the loop, nothing would answer and the wait would run out."""
    out = deployed.out("async_embedded.mp4")
    asked, answered = threading.Event(), threading.Event()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        if not seen:
            asked.set()
            assert answered.wait(60), "the event loop did not run while the generation did"
        seen.append(p)

    async def answer() -> None:
        with anyio.move_on_after(300):  # a generation that fails before its first progress never asks
            while not asked.is_set():
                await anyio.sleep(0.01)
            answered.set()

    async with AsyncClient(deployed.admin_key, home=deployed.home) as client:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(answer)
            result = await client.animate(
                deployed.astronaut, subject=deployed.eileen, driving=deployed.clip, out=out, progress=progress
            )
        report = await client.verify(out)
        subjects = await client.subjects.list()
    assert seen and out.is_file() and answered.is_set()
    assert isinstance(report, Verification) and report.generation_id == result.generation_id
    assert isinstance(report.generation, GenerationRecord) and report.generation.file_matches_record
    assert deployed.eileen in {s.id for s in subjects}


@pytest.mark.anyio
async def test_embedded_refusals_raise_the_same_classes(deployed: Deployed) -> None:
    async with AsyncClient(deployed.animator_key, home=deployed.home) as client:
        with pytest.raises(xp_sdk.ConsentRequiredError):
            await client.animate(
                deployed.woman, subject=deployed.woman_subject, driving=deployed.clip,
                out=deployed.out("async_embedded_refused.mp4"),
            )  # fmt: skip
        with pytest.raises(xp_sdk.PermissionDeniedError):  # an animate-and-verify key reads no subjects
            await client.subjects.get("sub_0000000000000000")


def test_the_embedded_async_client_opens_the_same_deployment(deployed: Deployed) -> None:
    async def settings_home() -> Path:
        async with AsyncClient(deployed.animator_key, home=deployed.home) as client:
            return client.settings.home

    with Client(deployed.animator_key, home=deployed.home) as sync:
        assert anyio.run(settings_home) == sync.settings.home


def test_the_readmes_walk_through_runs_awaited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's set-up, then its AsyncClient example as written: the same flow as its three Client examples
    (animate, verify, the audit), awaited."""
    env, subject_id = set_up_as_a_person(tmp_path)
    [example] = re.findall(r"```python\n(.*?)```", section("### Awaited"), flags=re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XP_HOME", env["XP_HOME"])
    monkeypatch.setenv("XP_API_KEY", env["XP_API_KEY"])
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(example, "README.md", "exec"), {"subject_id": subject_id, "__name__": "__main__"})
    first, *events = buffer.getvalue().splitlines()
    generation_id, state, record = first.split(" ", 2)
    assert re.fullmatch(r"[0-9a-f]{16}", generation_id) and state == "trusted", first
    assert f"id='{generation_id}'" in record and "file_matches_record=True" in record
    types = [line.split()[1] for line in events]
    assert types[0] == "generation.requested" and "generation.completed" in types and "verification.performed" in types
    assert (tmp_path / "clip.mp4").is_file()
