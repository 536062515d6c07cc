"""``import xp_sdk`` is cheap: its public names are imported when first used (PEP 562), not all at once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import xp_sdk

HEAVY = ("cv2", "av", "sqlalchemy", "cedarpy", "c2pa", "scipy", "mediapipe", "torch", "httpx", "audit", "policy")


def imported_after(code: str) -> list[str]:
    """The heavy top-level modules a fresh interpreter holds after running ``code``."""
    loaded = "{m.split('.')[0] for m in sys.modules}"
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted({loaded} & {set(HEAVY)!r})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(json.loads(result.stdout))


def test_importing_the_package_loads_no_engine_database_or_provenance_library() -> None:
    assert imported_after("import xp_sdk") == []
    assert imported_after("import xp_sdk; xp_sdk.__version__; xp_sdk.XPError") == []


def test_every_public_name_resolves_to_its_module_object() -> None:
    from xp_sdk.client import Client
    from xp_sdk.errors import ConsentRequiredError

    assert xp_sdk.Client is Client and xp_sdk.ConsentRequiredError is ConsentRequiredError
    assert all(getattr(xp_sdk, name) is not None for name in xp_sdk.__all__)
    assert set(xp_sdk.__all__) <= set(dir(xp_sdk))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        xp_sdk.Clinet  # type: ignore[attr-defined]  # noqa: B018


REMOTE_ONLY_MUST_NOT_LOAD = ("cv2", "av", "sqlalchemy", "cedarpy", "c2pa", "scipy", "mediapipe")


def test_a_remote_client_loads_no_engine_database_policy_or_provenance_library() -> None:
    """A remote ``Client`` only talks HTTP: the value types it sends and receives (options, audit records,
    verification reports) come from modules that import no OpenCV, PyAV, SQLAlchemy, Cedar, c2pa, SciPy or
    MediaPipe."""
    construct = "import xp_sdk\nxp_sdk.Client(api_key='xp_000000000000_' + 'a' * 43, base_url='http://127.0.0.1:1')"
    loaded = "{m.split('.')[0] for m in sys.modules}"
    probe = f"import json, sys\n{construct}\nprint(json.dumps(sorted({loaded} & {set(REMOTE_ONLY_MUST_NOT_LOAD)!r})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_the_engine_animate_name_stays_the_function_after_its_module_is_imported() -> None:
    """``xp_sdk.engine`` imports lazily, and its ``animate`` function shares its name with the ``animate`` module:
    importing that module first must not leave ``from xp_sdk.engine import animate`` returning the module."""
    probe = (
        "import inspect, xp_sdk.engine.animate, xp_sdk.engine.options\n"
        "from xp_sdk.engine import animate\n"
        "print(inspect.isfunction(animate))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
