"""``/docs`` and ``/redoc`` render the API in headless Chromium with every request to another host refused: the
Swagger UI and ReDoc files come from the package, not a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from xp_sdk import init_deployment
from xp_sdk.config import Settings
from xp_sdk.server.app import create_app
from xp_sdk.server.serve import BackgroundServer

from .test_verification_page import CHROMIUM, browser  # noqa: F401  (the Chromium fixture, reused)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set XP_CHROMIUM to one)"
)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = init_deployment(tmp_path_factory.mktemp("docs") / "home", tenant="acme").home
    with BackgroundServer(create_app(Settings.resolve(home=home))) as live:
        yield live.url


@pytest.fixture
def offline_page(browser: Any, server_url: str) -> Iterator[tuple[Any, list[str]]]:  # noqa: F811
    """A page whose requests to anything but the server are aborted (and listed)."""
    context = browser.new_context()
    outside: list[str] = []

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith(server_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    yield context.new_page(), outside
    context.close()


def _operations(server_url: str) -> list[tuple[str, str]]:
    paths = httpx.get(f"{server_url}/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


def test_swagger_ui_shows_every_operation_offline(offline_page: tuple[Any, list[str]], server_url: str) -> None:
    page, outside = offline_page
    page.goto(f"{server_url}/docs")
    page.wait_for_selector(".opblock", timeout=60_000)
    shown = {
        (block.query_selector(".opblock-summary-method").inner_text().strip(),
         block.query_selector(".opblock-summary-path").get_attribute("data-path"))
        for block in page.query_selector_all(".opblock")
    }  # fmt: skip
    assert shown == set(_operations(server_url))
    assert page.inner_text(".info .title").startswith("xp-sdk")
    assert outside == [], f"/docs asked another host for: {outside}"


def test_redoc_shows_every_operation_offline(offline_page: tuple[Any, list[str]], server_url: str) -> None:
    page, outside = offline_page
    page.goto(f"{server_url}/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", state="attached", timeout=60_000)
    sections = page.eval_on_selector_all("[data-section-id^='operation/']", "all => all.length")
    assert sections == len(_operations(server_url))
    assert outside == [], f"/redoc asked another host for: {outside}"
