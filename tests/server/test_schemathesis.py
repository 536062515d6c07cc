"""A bounded schemathesis run against the live server's own OpenAPI: whatever a caller sends, never a 5xx, and
every answer's status is one its route declares, with a body of the schema declared for that status.

The run is schemathesis's own engine (what ``st run`` does): for every operation its examples, the coverage
phase's boundary cases (missing, wrong-typed and out-of-range values) and a fixed number of generated cases,
valid and invalid, from a fixed seed and derandomized, so each run sends the same requests. Requests carry an
admin key, so they pass authentication and reach the validation behind it.

(schemathesis's pytest plugin is not used: its lazy fixture schema does not run under pytest 9.)
"""

from __future__ import annotations

from collections import Counter

import httpx
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from .conftest import Deployed

MAX_EXAMPLES = 20
"""Generated cases per operation, beside the coverage phase's: about 900 requests in all, 1-1.5 minutes on two
busy CPUs. Starting an animation is among them, bounded by the same count: no generated form names a registered
subject's photo and a built-in template, so each is refused before a job starts."""
SEED = 18


def test_no_request_makes_the_server_fail(deployed: Deployed) -> None:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {deployed.admin_key}"},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{deployed.url}/openapi.json", config=config)
    server_errors: list[str] = []
    undeclared: list[str] = []
    sent: Counter[str] = Counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise AssertionError(f"schemathesis stopped: {event.exception!r}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        for checks in event.recorder.checks.values():
            for check in checks:
                if check.name != "not_a_server_error" and check.failure_info is not None:
                    failure = check.failure_info.failure
                    undeclared.append(f"{event.recorder.label}: {check.name}: {failure.title}: {failure.message[:300]}")
        for interaction in event.recorder.interactions.values():
            sent[event.recorder.label] += 1
            response = interaction.response
            if response is not None and response.status_code >= 500:
                request = interaction.request
                server_errors.append(
                    f"{response.status_code} {request.method} {request.uri} {(request.body or b'')[:300]!r}"
                )
    operations = httpx.get(f"{deployed.url}/openapi.json").json()["paths"]
    labels = {f"{method.upper()} {path}" for path, methods in operations.items() for method in methods}
    assert set(sent) == labels, f"operations never tested: {sorted(labels - set(sent))}"
    assert not server_errors, f"{len(server_errors)} server errors:\n" + "\n".join(server_errors[:40])
    assert not undeclared, f"{len(undeclared)} answers not as declared:\n" + "\n".join(sorted(set(undeclared))[:40])
