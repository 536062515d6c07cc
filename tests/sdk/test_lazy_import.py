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
