"""One deployment and one live server per test module: a fresh home, the app on a loopback port, real faces."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.server.app import create_app
from xp_sdk.server.serve import BackgroundServer

SHORT_CLIP = "lp_d1_hist.mp4"  # 16 frames: the cheapest real generation


@dataclass
class Deployed:
    """The astronaut (Eileen Collins, consented) and a woman (registered, no consent) on a running server."""

    root: Path
    home: Path
    url: str
    admin_key: str
    admin: Client
    animator_key: str
    eileen: str
    woman_subject: str
    astronaut: Path
    woman: Path
    clip: Path

    def client(self, key: str | None = None, **kwargs: object) -> Client:
        return Client(key or self.animator_key, base_url=self.url, **kwargs)  # type: ignore[arg-type]

    def local(self, key: str | None = None) -> Client:
        """The same deployment in process, to compare the two transports."""
        return Client(key or self.animator_key, home=self.home)

    def out(self, name: str) -> Path:
        folder = self.root / "out"
        folder.mkdir(exist_ok=True)
        return folder / name


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Deployed]:
    with serve_deployment(tmp_path_factory.mktemp("server"), faces) as served:
        yield served


@contextmanager
def serve_deployment(root: Path, faces: Path) -> Iterator[Deployed]:
    """A fresh deployment under ``root`` on a live server, as ``deployed`` gives it (for test modules elsewhere)."""
    init = init_deployment(root / "home", tenant="acme")
    app = create_app(Settings.resolve(home=init.home), workers=2)
    with BackgroundServer(app) as live:
        first = Client(init.api_key.secret, base_url=live.url)
        # The admin key from `xp init` allows 60 requests a minute; the tests' admin needs more.
        admin_key = first.keys.create(
            scopes="animate verify audit:read subjects:write consents:write keys:admin",
            name="test admin",
            rate_limit_per_minute=6000,
        ).secret
        first.close()
        admin = Client(admin_key, base_url=live.url)
        astronaut = faces / "source" / "skimage_astronaut.png"
        woman = faces / "source" / "lp_d30.jpg"
        eileen = admin.subjects.register("Eileen Collins", [astronaut]).id
        admin.consents.grant(eileen, evidence=b"Eileen Collins consents (server tests)")
        woman_subject = admin.subjects.register("A woman who did not consent", [woman]).id
        animator = admin.keys.create(scopes="animate verify", name="animator", rate_limit_per_minute=6000).secret
        try:
            yield Deployed(
                root=root, home=init.home, url=live.url, admin_key=admin_key, admin=admin, animator_key=animator,
                eileen=eileen, woman_subject=woman_subject, astronaut=astronaut, woman=woman,
                clip=faces / "driving" / SHORT_CLIP,
            )  # fmt: skip
        finally:
            admin.close()
