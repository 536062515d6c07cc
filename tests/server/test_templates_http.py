"""Motion templates over HTTP: a built-in name or uploaded JSON, never a path on the server."""

from __future__ import annotations

import hashlib
import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest

from xp_sdk.engine.templates import MotionTemplate, builtin_names, template_json
from xp_sdk.errors import TemplateError
from xp_sdk.remote import HttpOperations

from .conftest import Deployed

TINY = MotionTemplate.model_validate(
    {
        "name": "tiny_nod",
        "fps": 16,
        "duration": 1.0,
        "keyframes": [{"t": 0.0}, {"t": 0.5, "pose": {"pitch": 8}, "blendshapes": {"jawOpen": 0.4}}, {"t": 1.0}],
    }
)
"""16 frames, as cheap as the shortest driving clip."""
TINY_JSON = TINY.model_dump_json().encode()


def _http(deployed: Deployed) -> httpx.Client:
    return httpx.Client(base_url=deployed.url, headers={"Authorization": f"Bearer {deployed.animator_key}"}, timeout=60)


def _post(
    http: httpx.Client, deployed: Deployed, fields: dict[str, str], files: dict[str, Any] | None = None
) -> httpx.Response:
    with deployed.astronaut.open("rb") as photo:
        return http.post(
            "/v1/animations",
            data={"subject": deployed.eileen, "out_name": "t.mp4", **fields},
            files={"source": (deployed.astronaut.name, photo, "image/png"), **(files or {})},
        )


def _wait(http: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while True:
        job: dict[str, Any] = http.get(f"/v1/animations/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def _server_template(deployed: Deployed) -> str:
    """An absolute path to a valid template file that only the server can read."""
    file = deployed.root / "server-only" / "motion.json"
    file.parent.mkdir(exist_ok=True)
    file.write_bytes(TINY_JSON)
    return str(file)


@pytest.mark.parametrize(
    "attack",
    [
        "/etc/passwd",
        "../../x.json",
        "server-json",
        "built-in-file",
        "smile.json",
        "./smile",
    ],
)
def test_a_path_on_the_server_is_not_a_template(deployed: Deployed, attack: str) -> None:
    if attack == "server-json":
        attack = _server_template(deployed)
    elif attack == "built-in-file":
        attack = str(resources.files("xp_sdk.engine.templates").joinpath("smile.json"))
    with _http(deployed) as http:
        jobs_before = len(list((deployed.home / "server" / "outputs").glob("*")))
        response = _post(http, deployed, {"template": attack})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "TemplateError" and body["error"] == "invalid_template"
    assert "built-in templates: " + ", ".join(builtin_names()) in body["message"]
    assert "root:" not in response.text  # nothing of the file comes back
    assert len(list((deployed.home / "server" / "outputs").glob("*"))) == jobs_before  # no job was started


def test_an_uploaded_template_animates(deployed: Deployed, tmp_path: Path) -> None:
    with _http(deployed) as http:
        created = _post(http, deployed, {}, {"template_json": ("tiny_nod.json", TINY_JSON, "application/json")})
        assert created.status_code == 202, created.text
        job = _wait(http, created.json()["id"])
        video = http.get(job["output_url"]) if job["output_url"] else None
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["frames"] == TINY.frame_count
    assert video is not None and video.status_code == 200 and video.content[4:8] == b"ftyp"
    # The template is on the record by its content's hash, and in the C2PA manifest as an ingredient with it.
    canonical = hashlib.sha256(template_json(TINY)).hexdigest()
    record = deployed.admin.audit.show(job["generation_id"]).generation
    assert record.driving == f"template:tiny_nod@sha256:{canonical}"
    output = tmp_path / "uploaded.mp4"
    output.write_bytes(video.content)
    summary = deployed.admin.verify(output).c2pa.summary
    assert summary is not None
    assert {(i.title, i.sha256) for i in summary.ingredients} >= {("tiny_nod.json", canonical)}


def test_an_uploaded_template_is_validated_before_a_job_starts(deployed: Deployed) -> None:
    bad = json.loads(TINY_JSON)
    bad["keyframes"][1]["blendshapes"] = {"__import__('os')": 1.0}
    with _http(deployed) as http:
        invalid = _post(
            http, deployed, {}, {"template_json": ("bad.json", json.dumps(bad).encode(), "application/json")}
        )
        garbage = _post(http, deployed, {}, {"template_json": ("x.json", b"\x00\xff not json", "application/json")})
        both = _post(
            http,
            deployed,
            {"template": "smile"},
            {"template_json": ("t.json", TINY_JSON, "application/json")},
        )
        with deployed.clip.open("rb") as clip:
            with_driving = _post(http, deployed, {"template": "smile"}, {"driving": ("d.mp4", clip, "video/mp4")})
        neither = _post(http, deployed, {})
    assert invalid.status_code == 400 and invalid.json()["type"] == "TemplateError"
    assert "unknown blendshape names" in invalid.json()["message"]
    assert garbage.status_code == 400 and garbage.json()["type"] == "TemplateError"
    for response in (both, with_driving, neither):
        assert response.status_code == 400 and response.json()["type"] == "InvalidInputError", response.text


def test_the_remote_client_uploads_a_local_template_file(deployed: Deployed, tmp_path: Path) -> None:
    local = tmp_path / "my_motion.json"
    local.write_bytes(TINY_JSON)
    with deployed.client() as client:
        result = client.animate(
            deployed.astronaut, subject=deployed.eileen, template=str(local), out=tmp_path / "a.mp4"
        )
        with pytest.raises(TemplateError, match="does not exist"):
            client.animate(
                deployed.astronaut,
                subject=deployed.eileen,
                template=str(tmp_path / "gone.json"),
                out=tmp_path / "b.mp4",
            )
        with pytest.raises(TemplateError, match="built-in templates"):
            client.animate(
                deployed.astronaut, subject=deployed.eileen, template="no_such_motion", out=tmp_path / "c.mp4"
            )
    assert result.frames == TINY.frame_count and (tmp_path / "a.mp4").is_file()
    assert not (tmp_path / "b.mp4").exists() and not (tmp_path / "c.mp4").exists()


def test_http_operations_upload_a_template_file_given_by_path(deployed: Deployed, tmp_path: Path) -> None:
    local = tmp_path / "by_path.json"
    local.write_bytes(TINY_JSON)
    operations = HttpOperations(deployed.url)
    try:
        result = operations.animate(
            deployed.animator_key, deployed.astronaut, subject=deployed.eileen, template=local, out=tmp_path / "p.mp4"
        )
    finally:
        operations.close()
    assert result.frames == TINY.frame_count and (tmp_path / "p.mp4").is_file()
