"""The house rules on imports, checked on the source: every ``import`` statement of every module of the four
packages (inside functions and ``if TYPE_CHECKING:`` too), read from its syntax tree without importing anything.

- ``xp_sdk.engine`` makes pixels and knows nothing of the rest: it imports nothing from ``policy``, ``watermark``
  or ``audit``, and from ``xp_sdk`` only its own modules and the shared error hierarchy (``xp_sdk.errors``), with
  one exception named below.
- ``policy``, ``watermark`` and ``audit`` import nothing from each other, nor from ``xp_sdk`` (the engine
  included): ``xp_sdk`` composes them, never the other way round.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("xp_sdk", "policy", "watermark", "audit")


@dataclass(frozen=True)
class Contract:
    package: str
    """The modules it binds: this package and everything under it."""
    forbidden: tuple[str, ...]
    """Modules (and everything under them) those modules must not import..."""
    allowed: tuple[str, ...] = ()
    """...except these (and everything under them)."""

    def forbids(self, target: str) -> bool:
        return any(_within(target, f) for f in self.forbidden) and not any(_within(target, a) for a in self.allowed)


CONTRACTS = (
    Contract(
        "xp_sdk.engine",
        ("policy", "watermark", "audit", "xp_sdk"),
        # xp_sdk.home: the one upward import left; engine/diffusion/registry.py finds models.toml in the deployment
        # home by itself (Home.resolve()), where the caller should hand it the path.
        allowed=("xp_sdk.engine", "xp_sdk.errors", "xp_sdk.home"),
    ),
    Contract("policy", ("xp_sdk", "watermark", "audit")),
    Contract("watermark", ("xp_sdk", "policy", "audit")),
    Contract("audit", ("xp_sdk", "policy", "watermark")),
)


@dataclass(frozen=True)
class Import:
    importer: str
    where: str
    """``file:line`` of the statement, relative to the repository."""
    target: str
    """The absolute dotted name of what is imported: ``from a.b import c`` gives ``a.b`` and ``a.b.c``."""

    def __str__(self) -> str:
        return f"{self.where} ({self.importer}) imports {self.target}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(path: Path, root: Path = ROOT) -> Iterator[Import]:
    """Every import statement anywhere in ``path`` (module level, functions, classes, TYPE_CHECKING blocks);
    ``root`` is the folder the packages are in."""
    importer = module_name(path, root)
    where = path.relative_to(root).as_posix()
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(importer, f"{where}:{node.lineno}", alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield Import(importer, f"{where}:{node.lineno}", base)
            for alias in node.names:
                if alias.name != "*":
                    yield Import(importer, f"{where}:{node.lineno}", f"{base}.{alias.name}")


def all_imports() -> list[Import]:
    return [i for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py")) for i in imports_in(path)]


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.package)
def test_package_keeps_its_import_contract(contract: Contract) -> None:
    bound = [i for i in all_imports() if _within(i.importer, contract.package)]
    assert bound, f"no module of {contract.package} was read"
    broken = [str(i) for i in bound if contract.forbids(i.target)]
    assert not broken, f"{contract.package} must not import {', '.join(contract.forbidden)}:\n" + "\n".join(broken)


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A contract is only as good as the reader: a breach hidden in a function, a TYPE_CHECKING block or a
    relative import is still seen."""
    module = tmp_path / "policy" / "sub" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import audit.store\n"
        "from .. import watermark_like\n"
        "from ..decision import Decision\n"
        "if TYPE_CHECKING:\n"
        "    from xp_sdk.client import Client\n"
        "def later():\n"
        "    from watermark import detect_watermark\n",
        encoding="utf-8",
    )
    targets = {i.target for i in imports_in(module, root=tmp_path)}
    assert {"audit.store", "policy.watermark_like", "policy.decision.Decision", "xp_sdk.client.Client"} <= targets
    assert "watermark.detect_watermark" in targets
    policy = next(c for c in CONTRACTS if c.package == "policy")
    assert {t for t in targets if policy.forbids(t)} == {
        "audit.store", "xp_sdk.client", "xp_sdk.client.Client", "watermark", "watermark.detect_watermark",
    }  # fmt: skip


def test_the_composer_is_seen_importing_the_parts() -> None:
    """xp_sdk itself may import every part, and does: the reader finds those imports where they are."""
    composer = {i.target.split(".")[0] for i in all_imports() if i.importer == "xp_sdk.generate"}
    assert {"watermark", "xp_sdk"} <= composer
