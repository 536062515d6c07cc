"""The verification page, end to end in headless Chromium: upload a generated video, read the verdict off the page.

Needs Debian's Chromium (``apt-get install chromium``) and the ``playwright`` package, which drives that binary
and downloads no browser of its own."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xp_sdk.results import AnimationResult

from .conftest import Deployed

CHROMIUM = os.environ.get("XP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set XP_CHROMIUM to one)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def generated(deployed: Deployed) -> tuple[Path, AnimationResult]:
    out = deployed.out("for the page.mp4")
    with deployed.client() as client:
        result = client.animate(deployed.astronaut, subject=deployed.eileen, driving=deployed.clip, out=out)
    return out, result


@pytest.fixture
def page(browser: Any, deployed: Deployed) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    outside: list[str] = []
    opened.on("request", lambda r: None if r.url.startswith(deployed.url) else outside.append(r.url))
    opened.goto(deployed.url + "/")
    yield opened
    context.close()
    assert outside == [], f"the page fetched from outside its server: {outside}"


def test_the_page_shows_the_verdict_on_a_generated_video(
    page: Any, deployed: Deployed, generated: tuple[Path, AnimationResult]
) -> None:
    video, result = generated
    page.fill("#api-key", deployed.animator_key)
    page.set_input_files("#video", str(video))
    page.click("#submit")
    page.wait_for_selector("#report:not([hidden])", timeout=60_000)

    assert page.inner_text("#file-name") == video.name
    assert page.inner_text("#c2pa-state") == "trusted"
    assert page.inner_text("#wm-detected") == "detected"
    assert page.inner_text("#wm-payload") == result.generation_id
    assert float(page.inner_text("#wm-p-value")) < 1e-9
    assert page.inner_text("#generation-verdict") == "on record"
    assert page.inner_text("#generation-id") == result.generation_id
    assert page.inner_text("#generation-status") == "completed"
    assert page.inner_text("#generation-subject") == deployed.eileen
    assert page.inner_text("#generation-consent") == result.consent_id
    # Her consent is an evidence file: the page says it is the operator's word, and names its digest.
    assert page.inner_text("#generation-consent-kind").startswith("attested")
    evidence = hashlib.sha256(b"Eileen Collins consents (server tests)").hexdigest()
    assert page.inner_text("#generation-consent-evidence") == f"sha256 {evidence}"
    assert page.inner_text("#generation-file-matches") == "yes"
    still = page.eval_on_selector("#still", "img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert still[0] is True and still[1] > 0 and still[2] > 0
    assert page.evaluate("sessionStorage.getItem('xp-sdk.api-key')") == deployed.animator_key


def test_the_page_says_when_a_video_has_no_audited_generation(page: Any, deployed: Deployed) -> None:
    page.fill("#api-key", deployed.animator_key)
    page.set_input_files("#video", str(deployed.clip))
    page.click("#submit")
    page.wait_for_selector("#report:not([hidden])", timeout=60_000)
    assert page.inner_text("#c2pa-state") == "absent"
    assert page.inner_text("#wm-detected") == "not detected"
    assert page.inner_text("#generation-verdict") == "no audited generation"
    assert page.is_hidden("#generation-record")


def test_the_page_shows_a_refusal(page: Any, deployed: Deployed, generated: tuple[Path, AnimationResult]) -> None:
    page.fill("#api-key", "xp_000000000000_" + "x" * 43)
    page.set_input_files("#video", str(generated[0]))
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert page.inner_text("#error").startswith("AuthenticationError: ")
    assert page.is_hidden("#report")


def test_without_a_key_the_page_shows_the_public_verdict_first(
    page: Any, deployed: Deployed, generated: tuple[Path, AnimationResult]
) -> None:
    video, result = generated
    page.set_input_files("#video", str(video))
    page.click("#submit")
    page.wait_for_selector("#overall:not([hidden])", timeout=60_000)
    assert page.inner_text("#overall-verdict") == "AI-generated"
    assert page.inner_text("#overall-statement").startswith("AI-generated by xp-sdk development on ")
    assert page.inner_text("#overall-c2pa") == "trusted"
    assert page.inner_text("#overall-watermark") == "present"
    assert page.is_hidden("#report")  # no record, subject or consent without a key
    assert deployed.eileen not in page.content() and result.generation_id not in page.content()


def test_with_a_key_the_overall_verdict_comes_before_the_details(
    page: Any, deployed: Deployed, generated: tuple[Path, AnimationResult]
) -> None:
    video, _ = generated
    page.fill("#api-key", deployed.animator_key)
    page.set_input_files("#video", str(video))
    page.click("#submit")
    page.wait_for_selector("#report:not([hidden])", timeout=60_000)
    assert page.inner_text("#overall-verdict") == "AI-generated"
    order = page.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
    assert order.index("overall") < order.index("report")
